//! Markdown reports: scores per subset and per aggregate, and before/after comparisons.

use std::fmt::Write;
use std::path::PathBuf;

use saha_schemas::{EvalScore, SugarCrepeScore};

use crate::aggregate::{Aggregate, OVERALL};
use crate::compare::Comparison;

/// A rate (0..1) as a percentage with two decimals.
pub fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn signed(x: f64) -> String {
    let v = 100.0 * x;
    // -0.00 reads as a change; print it as +0.00.
    if v.abs() < 0.005 {
        "+0.00".to_string()
    } else {
        format!("{v:+.2}")
    }
}

fn label(name: &str) -> String {
    if name == OVERALL {
        format!("**{name}**")
    } else {
        name.to_string()
    }
}

/// The before/after table of a --compare run.
fn comparison_markdown(c: &Comparison, model_now: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Compared with `{}`\n", c.path.display());
    if c.model == model_now {
        let _ = writeln!(s, "Same model on both sides: `{}`.\n", crate::models::shown(model_now));
    } else {
        let _ = writeln!(
            s,
            "Before: `{}`; after: `{}`.\n",
            crate::models::shown(&c.model),
            crate::models::shown(model_now)
        );
    }
    s.push_str("| | P@1 before | P@1 after | Δ P@1 | Δ hit@5 | Δ MRR |\n|---|---:|---:|---:|---:|---:|\n");
    for (name, b, a) in c.aggregates.iter().chain(&c.subsets) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            label(name),
            pct(b[0]),
            pct(a[0]),
            signed(a[0] - b[0]),
            signed(a[1] - b[1]),
            signed(a[2] - b[2])
        );
    }
    s
}

pub struct MmebReport<'a> {
    pub rows: &'a [EvalScore],
    pub aggregates: &'a [Aggregate],
    pub model: &'a str,
    pub embeddings: &'a [PathBuf],
    pub eval_set: &'a str,
    pub queries: usize,
    pub mmeb_present: usize,
    pub normalized: bool,
    pub comparison: Option<&'a Comparison>,
    pub notes: &'a [String],
}

pub fn mmeb_markdown(r: &MmebReport) -> String {
    let mut s = String::new();
    s.push_str("# MMEB evaluation\n\n");
    let files: Vec<String> = r.embeddings.iter().map(|p| format!("`{}`", p.display())).collect();
    let _ = writeln!(
        s,
        "- model: `{}` (from {})",
        crate::models::shown(r.model),
        files.join(", ")
    );
    let _ = writeln!(
        s,
        "- eval set: {} queries in {} subsets ({} of the 36 MMEB subsets), fingerprint `{}`",
        r.queries,
        r.rows.len(),
        r.mmeb_present,
        r.eval_set
    );
    let _ = writeln!(
        s,
        "- metric: Precision@1 (hit@1) x100, ground truth = candidate 0, ties resolved to the first maximum \
         (the ground truth) as the reference's `np.argmax`; hit@5 and MRR (x100) rank the ground truth at 1 + \
         the number of candidates scoring strictly higher; scores are f32 inner products of {} vectors",
        if r.normalized {
            "L2-normalised"
        } else {
            "raw (not normalised)"
        }
    );
    s.push_str("- aggregates: unweighted means over the subsets present\n\n");

    s.push_str("| score | subsets | P@1 | hit@5 | MRR |\n|---|---:|---:|---:|---:|\n");
    for a in r.aggregates {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            label(&a.name),
            a.subsets,
            pct(a.p_at_1),
            pct(a.hit_at_5),
            pct(a.mrr)
        );
    }
    s.push('\n');
    s.push_str(
        "| subset | meta-task | IND/OOD | n | correct | P@1 | hit@5 | MRR | ties won | candidates |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in r.rows {
        let cands = if row.min_candidates == row.max_candidates {
            row.max_candidates.to_string()
        } else {
            format!("{}-{}", row.min_candidates, row.max_candidates)
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.subset,
            row.meta_task,
            row.ind_ood,
            row.n,
            row.correct,
            pct(row.p_at_1),
            pct(row.hit_at_5),
            pct(row.mrr),
            row.ties_won,
            cands
        );
    }
    let mut notes: Vec<String> = r.notes.to_vec();
    if r.mmeb_present < 36 && r.mmeb_present > 0 {
        notes.push(format!(
            "only {} of the 36 MMEB subsets are present: the aggregates are not comparable with published MMEB scores",
            r.mmeb_present
        ));
    }
    let ties: u32 = r.rows.iter().map(|x| x.ties_won).sum();
    if ties > 0 {
        notes.push(format!(
            "{ties} queries counted correct only through the first-maximum tie rule (ties won)"
        ));
    }
    if !notes.is_empty() {
        s.push('\n');
        for n in &notes {
            let _ = writeln!(s, "Note: {n}.");
        }
    }
    if let Some(c) = r.comparison {
        s.push('\n');
        s.push_str(&comparison_markdown(c, r.model));
    }
    s
}

/// SugarCrepe / SugarCrepe++ per subset, with the SugarCrepe average over its subsets.
pub fn sugarcrepe_markdown(rows: &[SugarCrepeScore], model: &str, average: Option<f64>) -> String {
    let mut s = String::new();
    let plus = rows.iter().any(|r| r.tot_correct.is_some());
    s.push_str(if plus {
        "# SugarCrepe++ evaluation\n\n"
    } else {
        "# SugarCrepe evaluation\n\n"
    });
    let _ = writeln!(s, "- model: `{}`", crate::models::shown(model));
    s.push_str(
        "- accuracy x100; a comparison is won only when strictly greater (`>`), as in the reference, so an \
         exact tie counts as wrong\n\n",
    );
    if plus {
        s.push_str("| subset | n | ITT | TOT | ties |\n|---|---:|---:|---:|---:|\n");
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.subset,
                r.n,
                pct(r.itt_accuracy),
                r.tot_accuracy.map(pct).unwrap_or_default(),
                r.ties
            );
        }
    } else {
        s.push_str("| subset | n | accuracy | ties |\n|---|---:|---:|---:|\n");
        for r in rows {
            let _ = writeln!(s, "| {} | {} | {} | {} |", r.subset, r.n, pct(r.itt_accuracy), r.ties);
        }
        if let Some(avg) = average {
            let _ = writeln!(s, "| **Average** | | {} | |", pct(avg));
        }
    }
    s
}
