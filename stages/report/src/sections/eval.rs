//! Held-out P@1, hit@5 and MRR per subset before and after training.

use std::fmt::Write as _;

use anyhow::Result;
use saha_schemas::EvalScore;

use crate::html::{chip, esc, missing};
use crate::plot::{self, Bars};

pub fn section(before: Option<&[EvalScore]>, after: Option<&[EvalScore]>) -> Result<Option<String>> {
    if before.is_none() && after.is_none() {
        return Ok(None);
    }
    let mut subsets: Vec<&EvalScore> = Vec::new();
    for s in before.into_iter().chain(after).flatten() {
        if !subsets.iter().any(|t| t.subset == s.subset) {
            subsets.push(s);
        }
    }
    let find = |scores: Option<&[EvalScore]>, subset: &str| -> Option<EvalScore> {
        scores.and_then(|v| v.iter().find(|s| s.subset == subset).cloned())
    };
    let mut html = String::new();
    if before.is_none() {
        html.push_str(&missing(
            "No scores before training (eval/eval_scores.parquet is missing): make eval.",
        ));
    }
    if after.is_none() {
        html.push_str(&missing(
            "No scores after training yet (eval/tuned/eval_scores.parquet is missing): make train eval-tuned.",
        ));
    }
    let differ: Vec<&str> = subsets
        .iter()
        .filter(|s| match (find(before, &s.subset), find(after, &s.subset)) {
            (Some(b), Some(a)) => b.eval_set != a.eval_set,
            _ => false,
        })
        .map(|s| s.subset.as_str())
        .collect();
    if !differ.is_empty() {
        html.push_str(&missing(&format!(
            "Before and after were scored on different eval sets for: {}; their difference is not a training effect.",
            esc(&differ.join(", "))
        )));
    }
    let mean_of = |scores: Option<&[EvalScore]>| -> Option<f64> {
        let v = scores?;
        (!v.is_empty()).then(|| v.iter().map(|s| s.p_at_1).sum::<f64>() / v.len() as f64)
    };
    let mut categories: Vec<String> = subsets.iter().map(|s| s.subset.clone()).collect();
    categories.push("mean over subsets".into());
    let column = |scores: Option<&[EvalScore]>| -> Vec<Option<f64>> {
        subsets
            .iter()
            .map(|s| find(scores, &s.subset).map(|e| e.p_at_1))
            .chain(std::iter::once(mean_of(scores)))
            .collect()
    };
    let (b, a) = (column(before), column(after));
    let mut series = Vec::new();
    let mut legend = String::new();
    if before.is_some() {
        series.push(Bars {
            color: plot::BEFORE,
            values: &b,
        });
        legend.push_str(&chip(plot::BEFORE, "before training (eval/eval_scores.parquet)"));
    }
    if after.is_some() {
        series.push(Bars {
            color: plot::AFTER,
            values: &a,
        });
        legend.push_str(&chip(plot::AFTER, "after training (eval/tuned/eval_scores.parquet)"));
    }
    let x_max = b.iter().chain(&a).flatten().fold(0.0f64, |m, &v| m.max(v));
    let x_max = (x_max * 1.2).clamp(0.1, 1.0);
    write!(
        html,
        "<p>{legend}</p>\n{}",
        plot::grouped_hbars(&categories, &series, x_max, "P@1", &|v| { format!("{:.1}", v * 100.0) })?
    )?;
    html.push_str(
        "<table><tr><th>subset</th><th>meta-task</th><th>queries</th><th>P@1 before</th><th>P@1 after</th>\
<th>&Delta;</th><th>hit@5 before</th><th>hit@5 after</th><th>MRR before</th><th>MRR after</th></tr>\n",
    );
    let num = |v: Option<f64>| v.map(|v| format!("{:.1}", v * 100.0)).unwrap_or_else(|| "n/a".into());
    for s in &subsets {
        let (bs, as_) = (find(before, &s.subset), find(after, &s.subset));
        let delta = match (&bs, &as_) {
            (Some(b), Some(a)) => format!("{:+.1}", (a.p_at_1 - b.p_at_1) * 100.0),
            _ => "n/a".into(),
        };
        writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{delta}</td><td>{}</td><td>{}</td>\
<td>{}</td><td>{}</td></tr>",
            esc(&s.subset),
            esc(&s.meta_task),
            s.n,
            num(bs.as_ref().map(|e| e.p_at_1)),
            num(as_.as_ref().map(|e| e.p_at_1)),
            num(bs.as_ref().map(|e| e.hit_at_5)),
            num(as_.as_ref().map(|e| e.hit_at_5)),
            num(bs.as_ref().map(|e| e.mrr)),
            num(as_.as_ref().map(|e| e.mrr)),
        )?;
    }
    let (mb, ma) = (mean_of(before), mean_of(after));
    writeln!(
        html,
        "<tr class=\"total\"><td>mean over subsets</td><td></td><td></td><td>{}</td><td>{}</td><td>{}</td>\
<td></td><td></td><td></td><td></td></tr>\n</table>",
        num(mb),
        num(ma),
        match (mb, ma) {
            (Some(b), Some(a)) => format!("{:+.1}", (a - b) * 100.0),
            _ => "n/a".into(),
        }
    )?;
    html.push_str(
        "<p class=\"dim\">P@1, hit@5 and MRR in percent. Meta-task, IND/OOD and overall averages: \
eval/eval_report.md and eval/tuned/eval_report.md.</p>\n",
    );
    Ok(Some(html))
}
