//! The report's aggregate rows: unweighted means of the subsets' scores per meta-task, IND, OOD
//! and overall.

use saha_schemas::EvalScore;

use crate::taskmap::{meta_task_order, Split};

/// An aggregate row of the report: a meta-task, IND, OOD or the overall mean.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub name: String,
    pub subsets: usize,
    pub p_at_1: f64,
    pub hit_at_5: f64,
    pub mrr: f64,
}

pub const OVERALL: &str = "Overall";

/// Unweighted means over subsets: each meta-task present (papers' order, then others, then
/// `unknown`), IND and OOD (when any subset is), and the overall mean over every subset.
pub fn aggregate(rows: &[EvalScore]) -> Vec<Aggregate> {
    let mean = |name: &str, sel: Vec<&EvalScore>| Aggregate {
        name: name.to_string(),
        subsets: sel.len(),
        p_at_1: sel.iter().map(|r| r.p_at_1).sum::<f64>() / sel.len() as f64,
        hit_at_5: sel.iter().map(|r| r.hit_at_5).sum::<f64>() / sel.len() as f64,
        mrr: sel.iter().map(|r| r.mrr).sum::<f64>() / sel.len() as f64,
    };
    let mut metas: Vec<&str> = rows.iter().map(|r| r.meta_task.as_str()).collect();
    metas.sort_by_key(|m| meta_task_order(m));
    metas.dedup();
    let mut out: Vec<Aggregate> = metas
        .into_iter()
        .map(|m| mean(m, rows.iter().filter(|r| r.meta_task == m).collect()))
        .collect();
    for split in [Split::Ind, Split::Ood] {
        let sel: Vec<&EvalScore> = rows.iter().filter(|r| r.ind_ood == split.as_str()).collect();
        if !sel.is_empty() {
            out.push(mean(split.as_str(), sel));
        }
    }
    if !rows.is_empty() {
        out.push(mean(OVERALL, rows.iter().collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(subset: &str, meta: &str, split: &str, p: f64) -> EvalScore {
        EvalScore {
            subset: subset.into(),
            meta_task: meta.into(),
            ind_ood: split.into(),
            n: 10,
            correct: 0,
            p_at_1: p,
            hits_at_5: 0,
            hit_at_5: p,
            mrr: p,
            ties_won: 0,
            min_candidates: 2,
            max_candidates: 2,
            eval_set: String::new(),
        }
    }

    #[test]
    fn aggregates_are_unweighted_means() {
        let rows = vec![
            score("a", "Classification", "IND", 0.8),
            score("b", "Classification", "OOD", 0.4),
            score("c", "Retrieval", "IND", 0.3),
            score("d", "Mine", "custom", 0.1),
        ];
        let agg = aggregate(&rows);
        let names: Vec<&str> = agg.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["Classification", "Retrieval", "Mine", "IND", "OOD", "Overall"]);
        let p: Vec<f64> = agg.iter().map(|a| (a.p_at_1 * 1000.0).round() / 1000.0).collect();
        assert_eq!(p, [0.6, 0.3, 0.1, 0.55, 0.4, 0.4]);
    }
}
