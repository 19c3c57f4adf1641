//! The false-negative audit: per miner, the share of mined negatives that carry the anchor's label.

use std::fmt::Write as _;

use anyhow::Result;
use saha_schemas::provenance::LEFT_OUT_REASON;
use saha_schemas::MiningStats;

use super::miner_color;
use crate::html::{chip, esc, missing, opt_pct};
use crate::inputs::Miner;
use crate::plot::{self, Bars};
use crate::stats::false_negative_rate;

pub fn section(miners: &[Miner]) -> Result<Option<String>> {
    let with: Vec<(usize, &Miner, &Vec<MiningStats>)> = miners
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.stats.as_ref().map(|s| (i, m, s)))
        .collect();
    if with.is_empty() {
        return Ok(None);
    }
    let mut subsets: Vec<String> = Vec::new();
    for (_, _, stats) in &with {
        for s in stats.iter() {
            if !subsets.contains(&s.subset) {
                subsets.push(s.subset.clone());
            }
        }
    }
    let mut categories = subsets.clone();
    categories.push("all subsets".into());
    let values: Vec<Vec<Option<f64>>> = with
        .iter()
        .map(|(_, _, stats)| {
            subsets
                .iter()
                .map(|s| false_negative_rate(stats, Some(s)).0)
                .chain(std::iter::once(false_negative_rate(stats, None).0))
                .collect()
        })
        .collect();
    if values.iter().flatten().all(Option::is_none) {
        return Ok(Some(missing(
            "No labelled negatives: the pairs carry no labels, so the false-negative rate is unknown.",
        )));
    }
    let x_max = values.iter().flatten().flatten().fold(0.0f64, |a, &b| a.max(b));
    let x_max = if x_max <= 0.0 { 0.05 } else { (x_max * 1.25).min(1.0) };
    let bars: Vec<Bars> = with
        .iter()
        .zip(&values)
        .map(|((i, _, _), v)| Bars {
            color: miner_color(*i),
            values: v,
        })
        .collect();
    let mut html = String::from(
        "<p>Share of mined negatives whose label equals the anchor's (among negatives where both carry a \
label), per subset and over all subsets: negatives that are in fact positives.</p>\n<p>",
    );
    for (i, m, _) in &with {
        html.push_str(&chip(miner_color(*i), &m.name));
    }
    html.push_str("</p>\n");
    html.push_str(&plot::grouped_hbars(
        &categories,
        &bars,
        x_max,
        "false-negative rate",
        &|v| format!("{:.1}%", v * 100.0),
    )?);
    html.push_str("<table><tr><th>subset</th>");
    for (_, m, _) in &with {
        write!(html, "<th>{}</th>", esc(&m.name))?;
    }
    html.push_str("</tr>\n");
    for subset in subsets.iter().map(Some).chain(std::iter::once(None)) {
        write!(
            html,
            "<tr><td>{}</td>",
            esc(subset.map_or("all subsets", |s| s.as_str()))
        )?;
        for (_, _, stats) in &with {
            let (r, f, l) = false_negative_rate(stats, subset.map(|s| s.as_str()));
            write!(html, "<td>{} <span class=\"dim\">({f} / {l})</span></td>", opt_pct(r))?;
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    for (_, m, _) in with.iter().filter(|(_, m, _)| m.left_out_pairs > 0) {
        write!(
            html,
            "<p>{}: {} pairs left out before mining: {}.</p>\n",
            esc(&m.name),
            m.left_out_pairs,
            esc(LEFT_OUT_REASON)
        )?;
    }
    Ok(Some(html))
}
