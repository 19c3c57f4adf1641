//! Tables of the mining stages: `saha-retrieve`, `saha-remap` and `saha-filter`.

table! {
    artefact candidates {
        produced_by: "saha-retrieve",
        doc: "Candidate space: for every unique query, the top `P` targets of its own subset by inner product \
            (exact), best first. The query's positive is included when retrieved.",
    }
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Candidate {
        query_id: u32 => "The query item.",
        rank: u16 => "0 = highest score.",
        target_id: u32 => "The retrieved target item.",
        score: f32 => "Inner product of the query and target embeddings (cosine when normalised).",
    }
}

table! {
    artefact owners {
        produced_by: "saha-remap",
        doc: "Query space: every retrieved target with the queries that own it (whose positive it is), in order of \
            first appearance in pairs.parquet. Every owner is listed (no cap); saha-filter scores them against each \
            anchor as it walks. Join with candidates.parquet on target_id for the owners of a query's candidates.",
    }
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Owner {
        target_id: u32 => "A target retrieved for some query.",
        owner_rank: u32 => "0.. the owner's place among the target's owners, in order of first appearance.",
        owner_id: u32 => "An owner query item of the target.",
        owners_total: u32 => "How many owner queries the target has.",
    }
}

table! {
    artefact clusters {
        produced_by: "saha-filter",
        doc: "Training clusters: an anchor pair and its mined negative pairs. Footer metadata names the strategy; \
            SaHa's phase-1 clusters are disjoint.",
    }
    #[derive(Debug, Clone, PartialEq)]
    pub struct ClusterMember {
        cluster_id: u32 => "Cluster number, from 0, in construction order.",
        position: u16 => "0 = the anchor; 1.. the negatives in the reference's order.",
        pair_id: u32 => "The (query, positive) pair (pairs.parquet).",
        query_id: u32 => "The pair's query item.",
        target_id: u32 => "The pair's positive target item.",
        phase: u8 => "1 = main pass, 2 = leftover pass (SaHa); 1 for other strategies.",
        subset: String => "Subset of the cluster.",
        anchor_similarity: f32 => "Query-query inner product with the anchor (the anchor's own norm at position 0).",
    }
}

table! {
    artefact mining_stats {
        produced_by: "saha-filter",
        doc: "One row per (strategy, subset): cluster counts and sizes, leftovers, visits to targets shared by several queries, and the \
            false-negative audit when pairs carry labels.",
    }
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct MiningStats {
        strategy: String => "saha, topk, positive-aware or range.",
        subset: String => "Subset.",
        pairs: u32 => "Pairs in the subset.",
        clusters: u32 => "Clusters built.",
        phase2_clusters: u32 => "Of those, built in the leftover pass.",
        covered_pairs: u32 => "Distinct pairs that appear in some cluster.",
        mean_size: f64 => "Mean cluster size (anchor included).",
        max_size: u32 => "Largest cluster.",
        leftover_anchors: u32 => "Queries left unused after the main pass.",
        shared_target_visits: u32 => "Candidate visits whose target has several owner queries: where the most \
            anchor-similar free owner was chosen (SaHa, both passes).",
        negatives: u32 => "Mined negatives (cluster members).",
        labelled_negatives: u32 => "Negatives where both anchor and negative carry a label.",
        false_negatives: u32 => "Labelled negatives whose label equals the anchor's.",
        false_negative_rate: Option<f64> => "false_negatives / labelled_negatives; null without labels.",
    }
}
