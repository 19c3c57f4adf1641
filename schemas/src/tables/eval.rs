//! Tables written by `saha-eval`: MMEB-eval scores and SugarCrepe sets and scores.

/// Footer key of score files: the eval-set fingerprint (SHA-256 over every subset's `eval_set`).
pub const KEY_EVAL_SET: &str = "saha.eval.set";

table! {
    artefact eval_scores {
        produced_by: "saha-eval mmeb",
        doc: "MMEB-eval scores, one row per subset, in report order (meta-task, then subset). Each query is scored \
            against its own candidate list (eval_lists.parquet) by the inner product of the L2-normalised vectors \
            in f32; the ground truth is candidate 0 and ties resolve to the first maximum, i.e. to the ground \
            truth, as the reference's `np.argmax` does. The ground truth's rank is 1 + the number of candidates \
            scoring strictly higher. Rates are fractions (0..1); the report shows them x100. Aggregates (meta-task, \
            IND, OOD, overall) are unweighted means over subsets and are in the footer stats and eval_report.md. \
            Footer metadata: the model (`saha.embedding.model`, copied from the embeddings) and the eval-set \
            fingerprint (`saha.eval.set`).",
    }
    /// One subset's MMEB-eval scores (`eval_scores.parquet`).
    #[derive(Debug, Clone, PartialEq)]
    pub struct EvalScore {
        subset: String => "Subset (dataset) name.",
        meta_task: String => "Classification, VQA, Retrieval or Visual Grounding for the 36 MMEB subsets; from \
            `--task-map` for others, else `unknown`.",
        ind_ood: String => "`IND` (an MMEB-train subset), `OOD` (evaluation only) or `custom` (neither: not in \
            IND/OOD means).",
        n: u32 => "Queries (eval rows).",
        correct: u32 => "Queries whose ground truth scored highest (first maximum).",
        p_at_1: f64 => "Precision@1 (hit@1) = correct / n, the MMEB metric.",
        hits_at_5: u32 => "Queries whose ground truth ranks 1 to 5.",
        hit_at_5: f64 => "hits_at_5 / n (not reported by the reference).",
        mrr: f64 => "Mean reciprocal rank of the ground truth (not reported by the reference).",
        ties_won: u32 => "Correct queries where another candidate scored exactly as high as the ground truth: \
            counted correct only by the first-maximum rule. Many of these point at a degenerate encoder.",
        min_candidates: u32 => "Shortest candidate list in the subset.",
        max_candidates: u32 => "Longest candidate list in the subset.",
        eval_set: String => "Fingerprint (SHA-256, 16 hex digits) of the subset's queries and candidate lists (raw \
            text and image paths, in order): equal fingerprints mean the same eval rows.",
    }
}

table! {
    artefact sugarcrepe_sets {
        produced_by: "saha-eval sugarcrepe-items",
        doc: "SugarCrepe / SugarCrepe++ test examples as item ids into the items.parquet written next to it: an \
            image, its positive caption(s) and the hard negative caption.",
    }
    /// One SugarCrepe / SugarCrepe++ example as item ids (`sugarcrepe_sets.parquet`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SugarCrepeExample {
        example: u32 => "Row number in this file, from 0.",
        benchmark: String => "`sugarcrepe` or `sugarcrepe++`.",
        subset: String => "replace_obj, swap_att, add_obj ... (the input file stem).",
        key: String => "The example's key in the input: the JSON object key (SugarCrepe) or list index \
            (SugarCrepe++).",
        image_id: u32 => "`item_id` of the image item.",
        pos_id: u32 => "`item_id` of the positive caption (`caption`).",
        pos2_id: Option<u32> => "`item_id` of the second positive (`caption2`, SugarCrepe++ only).",
        neg_id: u32 => "`item_id` of the negative caption (`negative_caption`).",
        source_file: String => "Input file the example came from.",
    }
}

table! {
    artefact sugarcrepe_scores {
        produced_by: "saha-eval sugarcrepe",
        doc: "SugarCrepe / SugarCrepe++ accuracy per subset. Comparisons are strict (`>`), as in the reference: an \
            exact tie counts as wrong. Footer metadata names the model (`saha.embedding.model`).",
    }
    /// One subset's SugarCrepe / SugarCrepe++ accuracy (`sugarcrepe_scores.parquet`).
    #[derive(Debug, Clone, PartialEq)]
    pub struct SugarCrepeScore {
        benchmark: String => "`sugarcrepe` or `sugarcrepe++`.",
        subset: String => "Subset.",
        n: u32 => "Examples.",
        itt_correct: u32 => "Image-to-text: cos(image, positive) > cos(image, negative); for SugarCrepe++ both \
            positives must beat the negative.",
        itt_accuracy: f64 => "itt_correct / n.",
        tot_correct: Option<u32> => "Text-only (SugarCrepe++): cos(p1, p2) > cos(p1, neg) and cos(p1, p2) > cos(p2, \
            neg); null for SugarCrepe.",
        tot_accuracy: Option<f64> => "tot_correct / n; null for SugarCrepe.",
        ties: u32 => "Examples with an exact tie in some comparison (counted wrong).",
    }
}
