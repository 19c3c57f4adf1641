//! Cluster sizes per miner.

use std::fmt::Write as _;

use anyhow::Result;

use super::miner_color;
use crate::html::{esc, missing};
use crate::inputs::Miner;
use crate::plot;
use crate::stats::{cluster_members, size_counts};

pub fn section(miners: &[Miner]) -> Result<Option<String>> {
    if miners.iter().all(|m| m.clusters.is_none()) {
        return Ok(None);
    }
    let mut html = String::from(
        "<p>Clusters per size (the anchor and its negatives); a training step takes whole clusters.</p>\n\
<div class=\"grid small\">\n",
    );
    for (i, m) in miners.iter().enumerate() {
        let Some(clusters) = &m.clusters else { continue };
        let per_cluster = cluster_members(clusters);
        let sizes = size_counts(&per_cluster);
        let n = per_cluster.len();
        let members: u32 = per_cluster.values().sum();
        writeln!(
            html,
            "<figure><figcaption><b>{}</b> {n} clusters{}</figcaption>",
            esc(&m.name),
            if n > 0 {
                format!(
                    ", mean size {:.2}, largest {}",
                    members as f64 / n as f64,
                    sizes.keys().last().unwrap()
                )
            } else {
                String::new()
            }
        )?;
        if n == 0 {
            html.push_str(&missing("No clusters."));
        } else {
            let sizes: Vec<(u32, u32)> = sizes.into_iter().collect();
            html.push_str(&plot::size_histogram(&sizes, miner_color(i))?);
        }
        html.push_str("</figure>\n");
    }
    html.push_str("</div>\n");
    Ok(Some(html))
}
