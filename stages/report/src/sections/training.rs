//! Training: the loss (with its moving mean) and the learning rate per step.

use std::fmt::Write as _;

use anyhow::Result;
use saha_schemas::TrainLogRow;

use crate::html::{chip, missing};
use crate::plot;
use crate::stats::moving_mean;

pub fn section(log: Option<&[TrainLogRow]>) -> Result<Option<String>> {
    let Some(log) = log else { return Ok(None) };
    if log.is_empty() {
        return Ok(Some(missing("train/train_log.parquet has no steps.")));
    }
    let mut log = log.to_vec();
    log.sort_by_key(|r| r.step);
    let loss: Vec<(f64, f64)> = log.iter().map(|r| (r.step as f64, r.loss as f64)).collect();
    // Moving average over about a twentieth of the run.
    let w = (log.len() / 20).max(1);
    let smooth = moving_mean(&loss, w);
    let lr: Vec<(f64, f64)> = log.iter().map(|r| (r.step as f64, r.lr)).collect();
    let pairs: u64 = log.iter().map(|r| r.pairs as u64).sum();
    let k = (log.len() / 10).max(1);
    let head = log[..k].iter().map(|r| r.loss as f64).sum::<f64>() / k as f64;
    let tail = log[log.len() - k..].iter().map(|r| r.loss as f64).sum::<f64>() / k as f64;
    let mut html = String::new();
    writeln!(
        html,
        "<p>{} steps ({} to {}), {pairs} (query, positive) pairs. \
Mean loss of the first {k} steps {head:.3}, of the last {k} {tail:.3}; peak learning rate {:.3e}, \
largest gradient norm {:.3}.</p>",
        log.len(),
        log[0].step,
        log[log.len() - 1].step,
        log.iter().map(|r| r.lr).fold(0.0, f64::max),
        log.iter().map(|r| r.grad_norm).fold(0.0, f64::max),
    )?;
    let light = plotters::style::RGBColor(170, 198, 224);
    let step = |v: f64| {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            String::new()
        }
    };
    write!(
        html,
        "<div class=\"grid\">\n<figure><figcaption><b>loss</b> {} {}</figcaption>\n{}</figure>\n\
<figure><figcaption><b>learning rate</b> {}</figcaption>\n{}</figure>\n</div>\n",
        chip(light, "per step"),
        chip(plot::AFTER, &format!("moving mean of {w}")),
        plot::lines(
            &[(loss, light, 1), (smooth, plot::AFTER, 2)],
            "step",
            "InfoNCE loss",
            &step,
            &|v| format!("{v:.2}")
        )?,
        chip(plot::PALETTE[1], "lr"),
        plot::lines(
            &[(lr, plot::PALETTE[1], 2)],
            "step",
            "learning rate",
            &step,
            &|v| format!("{v:.1e}")
        )?,
    )?;
    Ok(Some(html))
}
