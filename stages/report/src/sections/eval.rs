//! Held-out P@1, hit@5 and MRR per subset for each series of scores: before and after training, or the
//! `--scores` files (e.g. prompt variants, then a fine-tune).

use std::fmt::Write as _;

use anyhow::Result;
use saha_schemas::EvalScore;

use crate::html::{chip, esc, missing};
use crate::inputs::Scores;
use crate::plot::{self, Bars};

/// The first series grey, the last blue, those between from the palette.
fn color(i: usize, n: usize) -> plotters::style::RGBColor {
    match i {
        0 => plot::BEFORE,
        _ if i + 1 == n => plot::AFTER,
        _ => plot::PALETTE[i % plot::PALETTE.len()],
    }
}

fn rows(s: &Scores) -> Option<&[EvalScore]> {
    s.rows.as_deref()
}

pub fn section(series: &[Scores]) -> Result<Option<String>> {
    if series.iter().all(|s| s.rows.is_none()) {
        return Ok(None);
    }
    let mut subsets: Vec<&EvalScore> = Vec::new();
    for s in series.iter().filter_map(rows).flatten() {
        if !subsets.iter().any(|t| t.subset == s.subset) {
            subsets.push(s);
        }
    }
    let find = |s: &Scores, subset: &str| -> Option<EvalScore> {
        rows(s).and_then(|v| v.iter().find(|e| e.subset == subset).cloned())
    };
    let mut html = String::new();
    for s in series.iter().filter(|s| s.rows.is_none()) {
        html.push_str(&missing(&s.missing));
    }
    let (first, last) = (&series[0], &series[series.len() - 1]);
    let differ: Vec<&str> = subsets
        .iter()
        .filter(|sub| {
            let set = |s: &Scores| find(s, &sub.subset).map(|e| e.eval_set);
            series
                .iter()
                .any(|s| matches!((set(first), set(s)), (Some(a), Some(b)) if a != b))
        })
        .map(|s| s.subset.as_str())
        .collect();
    if !differ.is_empty() {
        html.push_str(&missing(&format!(
            "{} and the others were scored on different eval sets for: {}; their difference is not an effect of what \
changed between them.",
            esc(&first.label),
            esc(&differ.join(", "))
        )));
    }
    let mean_of = |s: &Scores| -> Option<f64> {
        let v = rows(s)?;
        (!v.is_empty()).then(|| v.iter().map(|e| e.p_at_1).sum::<f64>() / v.len() as f64)
    };
    let mut categories: Vec<String> = subsets.iter().map(|s| s.subset.clone()).collect();
    categories.push("mean over subsets".into());
    let columns: Vec<Vec<Option<f64>>> = series
        .iter()
        .map(|s| {
            subsets
                .iter()
                .map(|sub| find(s, &sub.subset).map(|e| e.p_at_1))
                .chain(std::iter::once(mean_of(s)))
                .collect()
        })
        .collect();
    let mut bars = Vec::new();
    let mut legend = String::new();
    for (i, (s, values)) in series.iter().zip(&columns).enumerate() {
        if s.rows.is_some() {
            let color = color(i, series.len());
            bars.push(Bars { color, values });
            legend.push_str(&chip(color, &format!("{} ({})", s.label, s.file)));
        }
    }
    let x_max = columns.iter().flatten().flatten().fold(0.0f64, |m, &v| m.max(v));
    let x_max = (x_max * 1.2).clamp(0.1, 1.0);
    write!(
        html,
        "<p>{legend}</p>\n{}",
        plot::grouped_hbars(&categories, &bars, x_max, "P@1", &|v| { format!("{:.1}", v * 100.0) })?
    )?;
    let heads = |metric: &str| -> String {
        series
            .iter()
            .map(|s| format!("<th>{metric} {}</th>", esc(&s.label)))
            .collect()
    };
    // With more than two series, hit@5 and MRR get a table each, so no table runs off the page.
    let split = series.len() > 2;
    let others = format!("{}{}", heads("hit@5"), heads("MRR"));
    writeln!(
        html,
        "<table><tr><th>subset</th><th>meta-task</th><th>queries</th>{}<th>&Delta;</th>{}</tr>",
        heads("P@1"),
        if split { "" } else { &others }
    )?;
    let mut hits = format!("<table><tr><th>subset</th>{}</tr>\n", heads("hit@5"));
    let mut mrrs = format!("<table><tr><th>subset</th>{}</tr>\n", heads("MRR"));
    let num = |v: Option<f64>| v.map(|v| format!("{:.1}", v * 100.0)).unwrap_or_else(|| "n/a".into());
    let delta = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:+.1}", (b - a) * 100.0),
        _ => "n/a".into(),
    };
    let cells = |values: &mut dyn Iterator<Item = Option<f64>>| -> String {
        values.map(|v| format!("<td>{}</td>", num(v))).collect()
    };
    for sub in &subsets {
        let metric = |f: fn(&EvalScore) -> f64| -> Vec<Option<f64>> {
            series.iter().map(|s| find(s, &sub.subset).map(|e| f(&e))).collect()
        };
        let p1 = metric(|e| e.p_at_1);
        let (hit, mrr) = (
            cells(&mut metric(|e| e.hit_at_5).into_iter()),
            cells(&mut metric(|e| e.mrr).into_iter()),
        );
        let rest = format!("{hit}{mrr}");
        writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td>{}</tr>",
            esc(&sub.subset),
            esc(&sub.meta_task),
            sub.n,
            cells(&mut p1.iter().copied()),
            delta(p1[0], p1[p1.len() - 1]),
            if split { "" } else { &rest }
        )?;
        writeln!(hits, "<tr><td>{}</td>{hit}</tr>", esc(&sub.subset))?;
        writeln!(mrrs, "<tr><td>{}</td>{mrr}</tr>", esc(&sub.subset))?;
    }
    let means: Vec<Option<f64>> = series.iter().map(mean_of).collect();
    writeln!(
        html,
        "<tr class=\"total\"><td>mean over subsets</td><td></td><td></td>{}<td>{}</td>{}</tr>\n</table>",
        cells(&mut means.iter().copied()),
        delta(means[0], means[means.len() - 1]),
        if split {
            String::new()
        } else {
            "<td></td>".repeat(2 * series.len())
        }
    )?;
    if split {
        write!(html, "{hits}</table>\n{mrrs}</table>\n")?;
    }
    writeln!(
        html,
        "<p class=\"dim\">P@1, hit@5 and MRR in percent; &Delta;: P@1 {} minus P@1 {}. Meta-task, IND/OOD and \
overall averages: the eval_report.md next to each scores file.</p>",
        esc(&last.label),
        esc(&first.label)
    )?;
    Ok(Some(html))
}
