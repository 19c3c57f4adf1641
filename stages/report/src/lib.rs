//! `saha-report`: one self-contained HTML page per run (`runs/<run>/report.html`) with inline SVG
//! charts: anchor-positive vs anchor-negative similarities per miner, the false-negative audit,
//! cluster sizes, the training loss and learning rate, and P@1 per subset before and after
//! training. Every input is optional: a section whose artefact is missing says so. The footer
//! lists each input with its SHA-256; the page holds no clock time, so the same inputs give the
//! same bytes.

pub mod plot;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use saha_schemas::embeddings::Embeddings;
use saha_schemas::records::read_records;
use saha_schemas::{ClusterMember, EvalScore, InputHash, MiningStats, ParquetTable, Record, TrainLogRow};

use plot::{hex, Bars};

pub const STAGE: &str = "saha-report";

#[derive(Debug, Parser, serde::Serialize)]
#[command(
    name = "saha-report",
    version,
    about = "Write a self-contained HTML report of a run (report.html): mining, false-negative audit, \
cluster sizes, training curves, P@1 before/after",
    long_about = "Write a self-contained HTML report of a run (report.html, charts as inline SVG).\n\n\
Inputs, all looked up in --run and all optional (a missing one leaves its section saying so): \
clusters.parquet + mining_stats.parquet (SaHa) and mining/<baseline>/ (the baseline miners), \
embeddings.parquet (for anchor-positive / anchor-negative similarities), train/train_log.parquet, \
eval/eval_scores.parquet (before training) and eval/tuned/eval_scores.parquet (after). The footer lists \
every input with its SHA-256. The page holds no clock time: the same inputs give the same bytes."
)]
pub struct Args {
    /// The run folder (runs/<run>).
    #[arg(long)]
    #[serde(skip)]
    pub run: PathBuf,
    /// Output HTML file [default: <run>/report.html].
    #[arg(long)]
    #[serde(skip)]
    pub out: Option<PathBuf>,
    /// Embeddings the miners ran on [default: <run>/embeddings.parquet].
    #[arg(long)]
    #[serde(skip)]
    pub embeddings: Option<PathBuf>,
    /// A baseline miner, read from <run>/mining/<NAME>/; repeat for several [default: every folder
    /// under <run>/mining/, sorted].
    #[arg(long = "baseline", value_name = "NAME")]
    pub baselines: Vec<String>,
    /// Bins of the similarity histograms.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(2..=400))]
    pub bins: u32,
    /// Page title [default: "saha run <run folder name>"].
    #[arg(long)]
    pub title: Option<String>,
}

pub struct Summary {
    pub out: PathBuf,
    pub inputs: usize,
    /// Sections that had nothing to show.
    pub missing_sections: Vec<&'static str>,
}

/// The files the report read, for the footer.
struct Inputs<'a> {
    run: &'a Path,
    used: Vec<(String, Option<String>, InputHash)>,
    missing: Vec<String>,
}

impl<'a> Inputs<'a> {
    fn name(&self, path: &Path) -> String {
        path.strip_prefix(self.run).unwrap_or(path).display().to_string()
    }

    /// `Some(path)` when it exists (recorded with its hash); otherwise noted as missing.
    fn optional(&mut self, path: PathBuf) -> Result<Option<PathBuf>> {
        if !path.exists() {
            self.missing.push(self.name(&path));
            return Ok(None);
        }
        let mut hash = InputHash::of(&path)?;
        hash.path = self.name(&path);
        let made_by = ParquetTable::open(&path)
            .ok()
            .and_then(|t| t.provenance())
            .map(|p| format!("{} {}", p.stage, p.version));
        self.used.push((hash.path.clone(), made_by, hash));
        Ok(Some(path))
    }

    fn records<R: Record>(&mut self, path: PathBuf) -> Result<Option<Vec<R>>> {
        match self.optional(path)? {
            None => Ok(None),
            Some(p) => Ok(Some(read_records::<R>(&p)?.0)),
        }
    }
}

/// One miner's artefacts.
struct Miner {
    name: String,
    clusters_path: String,
    clusters: Option<Vec<ClusterMember>>,
    stats: Option<Vec<MiningStats>>,
}

/// Anchor-positive and anchor-negative cosine similarities of one miner's clusters.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Similarities {
    pub positives: Vec<f32>,
    pub negatives: Vec<f32>,
    /// Negatives scoring at least their anchor's positive.
    pub above_positive: usize,
}

/// Unit-norm lookups into an embeddings file.
pub struct Vectors {
    embeddings: Embeddings,
    row: HashMap<u32, usize>,
    inv_norm: Vec<f32>,
}

impl Vectors {
    pub fn new(embeddings: Embeddings) -> Self {
        let row = embeddings.item_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let inv_norm = (0..embeddings.len())
            .map(|i| {
                let n = embeddings.row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
                if n > 0.0 {
                    1.0 / n
                } else {
                    0.0
                }
            })
            .collect();
        Self {
            embeddings,
            row,
            inv_norm,
        }
    }

    /// Cosine similarity of two items; `None` when either has no embedding.
    pub fn cosine(&self, a: u32, b: u32) -> Option<f32> {
        let (i, j) = (*self.row.get(&a)?, *self.row.get(&b)?);
        let dot: f32 = self
            .embeddings
            .row(i)
            .iter()
            .zip(self.embeddings.row(j))
            .map(|(x, y)| x * y)
            .sum();
        Some(dot * self.inv_norm[i] * self.inv_norm[j])
    }
}

/// For each cluster, the anchor's query (position 0) against every member's target: the anchor's
/// own target is the positive, the others' targets are the mined negatives.
pub fn similarities(clusters: &[ClusterMember], vectors: &Vectors, what: &str) -> Result<Similarities> {
    let mut rows: Vec<&ClusterMember> = clusters.iter().collect();
    rows.sort_by_key(|r| (r.cluster_id, r.position));
    let mut out = Similarities::default();
    for cluster in rows.chunk_by(|a, b| a.cluster_id == b.cluster_id) {
        let anchor = cluster[0];
        if anchor.position != 0 {
            bail!("{what}: cluster {} has no anchor (position 0)", anchor.cluster_id);
        }
        let sim = |target: u32| {
            vectors.cosine(anchor.query_id, target).with_context(|| {
                format!(
                    "{what}: cluster {}: query {} or target {} has no embedding: clusters and embeddings do not match",
                    anchor.cluster_id, anchor.query_id, target
                )
            })
        };
        let positive = sim(anchor.target_id)?;
        out.positives.push(positive);
        for m in &cluster[1..] {
            let s = sim(m.target_id)?;
            out.above_positive += usize::from(s >= positive);
            out.negatives.push(s);
        }
    }
    Ok(out)
}

/// Shares (summing to 1) of `values` in `bins` equal bins over `lo..hi`.
pub fn shares(values: &[f32], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let mut counts = vec![0usize; bins];
    let width = (hi - lo) / bins as f64;
    for &v in values {
        let b = (((v as f64) - lo) / width).floor().clamp(0.0, (bins - 1) as f64) as usize;
        counts[b] += 1;
    }
    let total = values.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / total).collect()
}

fn mean(values: &[f32]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64)
}

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn opt_pct(v: Option<f64>) -> String {
    v.map(pct).unwrap_or_else(|| "n/a".into())
}

fn missing(what: &str) -> String {
    format!("<p class=\"missing\">{what}</p>\n")
}

fn chip(color: plotters::style::RGBColor, label: &str) -> String {
    format!(
        "<span class=\"chip\"><i style=\"background:{}\"></i>{}</span>",
        hex(color),
        esc(label)
    )
}

pub fn run(args: &Args) -> Result<Summary> {
    if !args.run.is_dir() {
        bail!("--run {}: not a folder", args.run.display());
    }
    let out_path = args.out.clone().unwrap_or_else(|| args.run.join("report.html"));
    let run_name = args
        .run
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| args.run.display().to_string());
    let title = args.title.clone().unwrap_or_else(|| format!("saha run {run_name}"));
    let mut inputs = Inputs {
        run: &args.run,
        used: Vec::new(),
        missing: Vec::new(),
    };

    // Miners: SaHa at the run's root, baselines under mining/<name>/.
    let baselines = if args.baselines.is_empty() {
        let mut found: Vec<String> = std::fs::read_dir(args.run.join("mining"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    } else {
        args.baselines.clone()
    };
    let mut miners = Vec::new();
    for (name, dir) in std::iter::once(("saha".to_string(), args.run.clone()))
        .chain(baselines.iter().map(|b| (b.clone(), args.run.join("mining").join(b))))
    {
        let clusters_path = dir.join("clusters.parquet");
        miners.push(Miner {
            name,
            clusters_path: inputs.name(&clusters_path),
            clusters: inputs.records::<ClusterMember>(clusters_path)?,
            stats: inputs.records::<MiningStats>(dir.join("mining_stats.parquet"))?,
        });
    }
    let any_clusters = miners.iter().any(|m| m.clusters.is_some());
    let embeddings_path = args
        .embeddings
        .clone()
        .unwrap_or_else(|| args.run.join("embeddings.parquet"));
    let vectors = if any_clusters {
        match inputs.optional(embeddings_path.clone())? {
            Some(p) => Some(Vectors::new(Embeddings::read(&p)?)),
            None => None,
        }
    } else {
        None
    };
    let train = inputs.records::<TrainLogRow>(args.run.join("train/train_log.parquet"))?;
    let before = inputs.records::<EvalScore>(args.run.join("eval/eval_scores.parquet"))?;
    let after = inputs.records::<EvalScore>(args.run.join("eval/tuned/eval_scores.parquet"))?;

    let mut missing_sections = Vec::new();
    let mut body = String::new();
    let mut nav = Vec::new();
    let mut section = |id: &'static str, heading: &str, html: Result<Option<String>>, empty: &str| -> Result<()> {
        let html = html?;
        if html.is_none() {
            missing_sections.push(id);
        }
        nav.push(format!("<a href=\"#{id}\">{}</a>", esc(heading)));
        write!(
            body,
            "<section id=\"{id}\">\n<h2>{}</h2>\n{}</section>\n",
            esc(heading),
            html.unwrap_or_else(|| missing(empty))
        )?;
        Ok(())
    };
    section(
        "similarities",
        "Hard negatives: anchor-positive vs anchor-negative similarity",
        similarity_section(
            &miners,
            vectors.as_ref(),
            &inputs.name(&embeddings_path),
            args.bins as usize,
        ),
        "No clusters.parquet in this run (nor under mining/): run the mining stages (make filter).",
    )?;
    section(
        "audit",
        "False-negative audit",
        audit_section(&miners),
        "No mining_stats.parquet in this run: run the mining stages (make filter).",
    )?;
    section(
        "sizes",
        "Cluster sizes",
        sizes_section(&miners),
        "No clusters.parquet in this run: run the mining stages (make filter).",
    )?;
    section(
        "training",
        "Training",
        training_section(train.as_deref()),
        "No training yet (train/train_log.parquet is missing): make train.",
    )?;
    section(
        "eval",
        "Held-out P@1 per subset, before and after training",
        eval_section(before.as_deref(), after.as_deref()),
        "No evaluation yet (eval/eval_scores.parquet and eval/tuned/eval_scores.parquet are missing): make eval, \
then make eval-tuned after training.",
    )?;

    let page = page(&title, &nav, &body, &inputs, args)?;
    saha_schemas::atomic::write_atomic(&out_path, page.as_bytes())?;
    Ok(Summary {
        out: out_path,
        inputs: inputs.used.len(),
        missing_sections,
    })
}

fn miner_color(i: usize) -> plotters::style::RGBColor {
    plot::PALETTE[i % plot::PALETTE.len()]
}

fn similarity_section(
    miners: &[Miner],
    vectors: Option<&Vectors>,
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
    let Some(vectors) = vectors else {
        html.push_str(&missing(&format!(
            "{embeddings} is missing: the similarities need the embeddings the miners ran on (make embed, or --embeddings)."
        )));
        return Ok(Some(html));
    };
    let mut sims = Vec::new();
    for m in miners {
        if let Some(c) = &m.clusters {
            sims.push((m, similarities(c, vectors, &m.clusters_path)?));
        }
    }
    let all = || {
        sims.iter()
            .flat_map(|(_, s)| s.positives.iter().chain(&s.negatives))
            .map(|&v| v as f64)
    };
    let (mut lo, mut hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        (lo, hi) = (-1.0, 1.0);
    }
    lo = ((lo * 20.0).floor() / 20.0).max(-1.0);
    hi = ((hi * 20.0).ceil() / 20.0).min(1.0);
    if hi - lo < 0.05 {
        (lo, hi) = ((lo - 0.05).max(-1.0), (hi + 0.05).min(1.0));
    }
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
    for (m, s) in &sims {
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

fn audit_section(miners: &[Miner]) -> Result<Option<String>> {
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
    let rate = |stats: &[MiningStats], subset: Option<&str>| -> (Option<f64>, u64, u64) {
        let (f, l) = stats
            .iter()
            .filter(|s| subset.is_none_or(|name| s.subset == name))
            .fold((0u64, 0u64), |(f, l), s| {
                (f + s.false_negatives as u64, l + s.labelled_negatives as u64)
            });
        ((l > 0).then(|| f as f64 / l as f64), f, l)
    };
    let mut categories = subsets.clone();
    categories.push("all subsets".into());
    let values: Vec<Vec<Option<f64>>> = with
        .iter()
        .map(|(_, _, stats)| {
            subsets
                .iter()
                .map(|s| rate(stats, Some(s)).0)
                .chain(std::iter::once(rate(stats, None).0))
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
            let (r, f, l) = rate(stats, subset.map(|s| s.as_str()));
            write!(html, "<td>{} <span class=\"dim\">({f} / {l})</span></td>", opt_pct(r))?;
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    Ok(Some(html))
}

fn sizes_section(miners: &[Miner]) -> Result<Option<String>> {
    if miners.iter().all(|m| m.clusters.is_none()) {
        return Ok(None);
    }
    let mut html = String::from(
        "<p>Clusters per size (the anchor and its negatives); a training step takes whole clusters.</p>\n\
<div class=\"grid small\">\n",
    );
    for (i, m) in miners.iter().enumerate() {
        let Some(clusters) = &m.clusters else { continue };
        let mut per_cluster: BTreeMap<u32, u32> = BTreeMap::new();
        for c in clusters {
            *per_cluster.entry(c.cluster_id).or_default() += 1;
        }
        let mut sizes: BTreeMap<u32, u32> = BTreeMap::new();
        for &s in per_cluster.values() {
            *sizes.entry(s).or_default() += 1;
        }
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

fn training_section(log: Option<&[TrainLogRow]>) -> Result<Option<String>> {
    let Some(log) = log else { return Ok(None) };
    if log.is_empty() {
        return Ok(Some(missing("train/train_log.parquet has no steps.")));
    }
    let mut log = log.to_vec();
    log.sort_by_key(|r| r.step);
    let loss: Vec<(f64, f64)> = log.iter().map(|r| (r.step as f64, r.loss as f64)).collect();
    // Moving average over about a twentieth of the run.
    let w = (log.len() / 20).max(1);
    let smooth: Vec<(f64, f64)> = (0..log.len())
        .map(|i| {
            let from = i.saturating_sub(w - 1);
            let window = &loss[from..=i];
            (loss[i].0, window.iter().map(|p| p.1).sum::<f64>() / window.len() as f64)
        })
        .collect();
    let lr: Vec<(f64, f64)> = log.iter().map(|r| (r.step as f64, r.lr)).collect();
    let pairs: u64 = log.iter().map(|r| r.pairs as u64).sum();
    let seconds: f64 = log.iter().map(|r| r.seconds).sum();
    let k = (log.len() / 10).max(1);
    let head = log[..k].iter().map(|r| r.loss as f64).sum::<f64>() / k as f64;
    let tail = log[log.len() - k..].iter().map(|r| r.loss as f64).sum::<f64>() / k as f64;
    let mut html = String::new();
    writeln!(
        html,
        "<p>{} steps ({} to {}), {pairs} (query, positive) pairs, {:.1} s of steps ({:.1} pairs/s). \
Mean loss of the first {k} steps {head:.3}, of the last {k} {tail:.3}; peak learning rate {:.3e}, \
largest gradient norm {:.3}.</p>",
        log.len(),
        log[0].step,
        log[log.len() - 1].step,
        seconds,
        if seconds > 0.0 { pairs as f64 / seconds } else { 0.0 },
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

fn eval_section(before: Option<&[EvalScore]>, after: Option<&[EvalScore]>) -> Result<Option<String>> {
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

const CSS: &str = "body{font-family:\"DejaVu Sans\",\"Helvetica Neue\",Arial,sans-serif;margin:0;background:#f4f5f7;\
color:#1d232b;font-size:14px}\
main{max-width:1120px;margin:0 auto;padding:10px 20px 30px}\
h1{font-size:22px;margin:10px 0 4px}h2{font-size:17px;margin:4px 0 8px}\
nav a{margin-right:14px;color:#1f5fa0;text-decoration:none;font-size:13px}\
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 16px 12px;margin:12px 0}\
p{margin:6px 0}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:10px 16px}\
.grid.small{grid-template-columns:repeat(auto-fill,minmax(340px,1fr))}\
figure{margin:0}figcaption{font-size:13px;margin:4px 0 2px}\
svg{max-width:100%;height:auto;display:block}\
table{border-collapse:collapse;font-size:13px;margin:8px 0}\
th,td{padding:3px 10px;border-bottom:1px solid #e6e8eb;text-align:right;white-space:nowrap}\
th:first-child,td:first-child{text-align:left}th{background:#f4f5f7;font-weight:600}\
tr.total td{font-weight:600}\
.chip{display:inline-block;margin-right:12px;font-size:12px}\
.chip i{display:inline-block;width:11px;height:11px;margin-right:5px;vertical-align:-1px;border-radius:2px}\
.missing{color:#6b5315;background:#fcf5dc;border:1px solid #efe0a6;padding:6px 10px;border-radius:4px}\
.dim{color:#6a7380}\
footer{font-size:12px;color:#4a525c}footer td{font-family:\"DejaVu Sans Mono\",monospace;font-size:11px}";

fn page(title: &str, nav: &[String], body: &str, inputs: &Inputs, args: &Args) -> Result<String> {
    let mut html = String::new();
    write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n\
<meta name=\"generator\" content=\"{STAGE} {v}\">\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n\
<h1>{t}</h1>\n<p class=\"dim\">Run folder <code>{run}</code>. Written by {STAGE} {v} from the artefacts listed at the end.</p>\n\
<nav>{nav}</nav>\n{body}",
        t = esc(title),
        v = env!("CARGO_PKG_VERSION"),
        run = esc(&args.run.display().to_string()),
        nav = nav.join(""),
    )?;
    html.push_str(
        "<footer>\n<section id=\"inputs\">\n<h2>Inputs</h2>\n<table><tr><th>file</th><th>written by</th>\
<th>bytes</th><th>SHA-256</th></tr>\n",
    );
    for (name, made_by, hash) in &inputs.used {
        writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            esc(made_by.as_deref().unwrap_or("")),
            hash.bytes,
            hash.sha256
        )?;
    }
    html.push_str("</table>\n");
    if !inputs.missing.is_empty() {
        writeln!(
            html,
            "<p>Not in this run: {}.</p>",
            inputs
                .missing
                .iter()
                .map(|m| format!("<code>{}</code>", esc(m)))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    writeln!(
        html,
        "<p>Parameters: {}</p>\n</section>\n</footer>\n</main>\n</body>\n</html>",
        esc(&serde_json::to_string(args).unwrap_or_default())
    )?;
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(cluster_id: u32, position: u16, query_id: u32, target_id: u32) -> ClusterMember {
        ClusterMember {
            cluster_id,
            position,
            pair_id: query_id,
            query_id,
            target_id,
            phase: 1,
            subset: "s".into(),
            anchor_similarity: 0.0,
        }
    }

    #[test]
    fn anchor_against_member_targets() {
        // Items 0/1: queries; 10/11: their targets. Not normalised: the cosine normalises.
        let vectors = Vectors::new(Embeddings {
            item_ids: vec![0, 1, 10, 11],
            dim: 2,
            values: vec![2.0, 0.0, 0.0, 1.0, 3.0, 4.0, 0.0, 5.0],
            model: "m".into(),
            normalized: false,
        });
        // Stored out of order: the cluster is rebuilt by (cluster_id, position).
        let clusters = vec![member(0, 1, 1, 11), member(0, 0, 0, 10)];
        let s = similarities(&clusters, &vectors, "c").unwrap();
        assert_eq!(s.positives, vec![0.6]);
        assert_eq!(s.negatives, vec![0.0]);
        assert_eq!(s.above_positive, 0);
        let bad = similarities(&[member(0, 0, 0, 99)], &vectors, "c").unwrap_err();
        assert!(format!("{bad:#}").contains("target 99"), "{bad:#}");
        let no_anchor = similarities(&[member(3, 1, 0, 10)], &vectors, "c").unwrap_err();
        assert!(no_anchor.to_string().contains("no anchor"));
    }

    #[test]
    fn shares_sum_to_one_and_clamp() {
        let s = shares(&[-1.0, 0.0, 0.49, 1.0, 2.0], -1.0, 1.0, 4);
        assert_eq!(s, vec![0.2, 0.0, 0.4, 0.4]);
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
