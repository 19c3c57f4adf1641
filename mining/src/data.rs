//! Pairs grouped by subset, with the maps the reference sampler builds (`D2Q`, `Q2RID`).

use std::collections::HashMap;

use saha_schemas::Pair;

/// One pair of a subset, in dataset order.
#[derive(Debug, Clone)]
pub struct Row {
    pub pair_id: u32,
    pub query: u32,
    pub target: u32,
    pub label: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Subset {
    pub name: String,
    pub rows: Vec<Row>,
    /// Unique query items, in order of first appearance.
    pub queries: Vec<u32>,
    /// Unique target items (the candidate pool), in order of first appearance.
    pub targets: Vec<u32>,
    /// Target -> the distinct queries whose positive it is (the reference's `D2Q`).
    pub owners: HashMap<u32, Vec<u32>>,
    /// Query -> index in `rows` of its last occurrence (the reference's `Q2RID`).
    pub last_row: HashMap<u32, usize>,
    /// (query, target) -> index in `rows` of the last pair with exactly that query and positive.
    pub pair_of: HashMap<(u32, u32), usize>,
}

impl Subset {
    pub fn label_of_query(&self, query: u32) -> Option<&str> {
        self.last_row.get(&query).and_then(|&r| self.rows[r].label.as_deref())
    }
}

/// Groups pairs by subset, keeping the order in which subsets first appear.
pub fn group_pairs(pairs: &[Pair]) -> Vec<Subset> {
    let mut order: Vec<String> = Vec::new();
    let mut by_name: HashMap<&str, Vec<&Pair>> = HashMap::new();
    for p in pairs {
        by_name
            .entry(p.subset.as_str())
            .or_insert_with(|| {
                order.push(p.subset.clone());
                Vec::new()
            })
            .push(p);
    }
    order
        .into_iter()
        .map(|name| {
            let rows: Vec<Row> = by_name[name.as_str()]
                .iter()
                .map(|p| Row {
                    pair_id: p.pair_id,
                    query: p.query_id,
                    target: p.target_id,
                    label: p.label.clone(),
                })
                .collect();
            let mut queries = Vec::new();
            let mut targets = Vec::new();
            let mut owners: HashMap<u32, Vec<u32>> = HashMap::new();
            let mut last_row = HashMap::new();
            let mut pair_of = HashMap::new();
            for (i, r) in rows.iter().enumerate() {
                if last_row.insert(r.query, i).is_none() {
                    queries.push(r.query);
                }
                let o = owners.entry(r.target).or_insert_with(|| {
                    targets.push(r.target);
                    Vec::new()
                });
                if !o.contains(&r.query) {
                    o.push(r.query);
                }
                pair_of.insert((r.query, r.target), i);
            }
            Subset {
                name,
                rows,
                queries,
                targets,
                owners,
                last_row,
                pair_of,
            }
        })
        .collect()
}
