//! Anchor-positive vs anchor-negative similarities per miner.

use std::fmt::Write as _;

use anyhow::Result;

use crate::html::{chip, esc, missing, pct};
use crate::inputs::Miner;
use crate::plot;
use crate::stats::{mean, shares, similarity_range, Similarities};

/// `similarities` is `None` when the embeddings (named `embeddings`) are missing.
pub fn section(
    miners: &[Miner],
    similarities: Option<&[(&Miner, Similarities)]>,
    embeddings: &str,
    bins: usize,
) -> Result<Option<String>> {
    if miners.iter().all(|m| m.clusters.is_none()) {
        return Ok(None);
    }
    let mut html = String::from(
        "<p>Per cluster, the anchor's query against each member's target (cosine of the embeddings the \
miners ran on): the anchor's own target is the positive, the other members' targets are its mined \
negatives. Bars are shares of each group, so the two groups compare whatever their sizes.</p>\n",
    );
    let Some(sims) = similarities else {
        html.push_str(&missing(&format!(
            "{embeddings} is missing: the similarities need the embeddings the miners ran on (make embed, or --embeddings)."
        )));
        return Ok(Some(html));
    };
    let (lo, hi) = similarity_range(sims.iter().map(|(_, s)| s));
    let hists: Vec<(Vec<f64>, Vec<f64>)> = sims
        .iter()
        .map(|(_, s)| (shares(&s.positives, lo, hi, bins), shares(&s.negatives, lo, hi, bins)))
        .collect();
    let y_max = hists
        .iter()
        .flat_map(|(p, n)| p.iter().chain(n))
        .fold(0.0f64, |a, &b| a.max(b));
    html.push_str(
        "<table><tr><th>miner</th><th>clusters</th><th>negatives</th><th>mean anchor-positive</th>\
<th>mean anchor-negative</th><th>negatives &ge; their positive</th></tr>\n",
    );
    for (m, s) in sims {
        let f = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "n/a".into());
        writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.name),
            s.positives.len(),
            s.negatives.len(),
            f(mean(&s.positives)),
            f(mean(&s.negatives)),
            if s.negatives.is_empty() {
                "n/a".into()
            } else {
                pct(s.above_positive as f64 / s.negatives.len() as f64)
            }
        )?;
    }
    html.push_str("</table>\n<div class=\"grid\">\n");
    for ((m, s), (p, n)) in sims.iter().zip(&hists) {
        writeln!(
            html,
            "<figure><figcaption><b>{}</b> {} {}</figcaption>",
            esc(&m.name),
            chip(plot::POSITIVE, &format!("anchor-positive ({})", s.positives.len())),
            chip(plot::NEGATIVE, &format!("anchor-negative ({})", s.negatives.len()))
        )?;
        if s.positives.is_empty() {
            html.push_str(&missing("No clusters: this miner mined nothing on this run."));
        } else {
            html.push_str(&plot::similarity_histogram(p, n, lo, hi, y_max)?);
        }
        html.push_str("</figure>\n");
    }
    html.push_str("</div>\n");
    Ok(Some(html))
}
