//! `saha-wordnet`: WordNet 3.0's noun synsets (Debian's `wordnet-base`) as MMEB-format text data.
//!
//! Writes `OUT/train/<Subset>.parquet` (MMEB-train columns), `OUT/eval/<Subset>.parquet` (MMEB-eval
//! columns) and `OUT/wordnet.json`, for three subsets (see [`tasks`]): word -> synonym, word -> definition,
//! word + definition -> category (hypernym). Every row's `label` is a WordNet synset id, so the mining's
//! false-negative audit counts mined negatives that mean what the positive means. Train and eval use
//! disjoint synsets, drawn with a seed from those that are the most frequent sense of a word found in
//! WordNet's sense-tagged corpus (common words). Eval candidates: see [`candidates`].

pub mod candidates;
pub mod parse;
pub mod tasks;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Parser;
use saha_common::rng::Rng;
use saha_schemas::mmeb_data::{eval_batch, replace_folder, train_batch, write_data_file};
use saha_schemas::Provenance;

use crate::candidates::{eval_rows, Sizes};
use crate::parse::{read_common, read_nouns};
use crate::tasks::{train_rows, usable, Lexicon, SUBSETS};

pub const STAGE: &str = "saha-wordnet";

#[derive(Debug, Clone, Parser, serde::Serialize)]
#[command(version, about)]
pub struct Args {
    /// Folder of the WordNet 3.0 database (`data.noun` and `index.noun` are read): Debian's wordnet-base installs it in
    /// /usr/share/wordnet.
    #[arg(long, default_value = "/usr/share/wordnet")]
    #[serde(skip)]
    pub wordnet: PathBuf,
    /// Output folder; replaced as a whole, atomically.
    #[arg(long)]
    #[serde(skip)]
    pub out: PathBuf,
    /// Seed of the synset draw and the distractors: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Synsets per subset for training (the synonym subset makes up to three pairs of each, the gloss
    /// subset two).
    #[arg(long, default_value_t = 64)]
    pub train_per_subset: usize,
    /// Evaluation queries per subset (synsets not used for training).
    #[arg(long, default_value_t = 100)]
    pub eval_per_subset: usize,
    /// Candidates per evaluation query, the positive included; the distractors other than the hard ones
    /// are drawn from the subset's other candidates.
    #[arg(long, default_value_t = 50)]
    pub candidates: usize,
    /// Hard distractors per evaluation query, at most: the positive's siblings under its hypernym, then
    /// lemmas sharing a word with it (never a text WordNet also makes a right answer). [default: 8, or
    /// --candidates − 1 when that is fewer]
    #[arg(long)]
    pub hard_distractors: Option<usize>,
}

/// Hard distractors per evaluation query when `--hard-distractors` is not given (fewer when the
/// candidate lists are shorter).
const DEFAULT_HARD_DISTRACTORS: usize = 8;

/// `train_per_subset` synsets, at most [`PER_CATEGORY`] of each category (hypernym) that has at least
/// three, categories in seeded order; then `eval_per_subset` other synsets.
fn by_category<'a>(
    rest: &[&'a parse::Synset],
    lex: &Lexicon,
    args: &Args,
    rng: &mut Rng,
    data: &Path,
) -> Result<Vec<&'a parse::Synset>> {
    let mut groups: std::collections::BTreeMap<&str, Vec<&parse::Synset>> = Default::default();
    for s in rest {
        if let Some(h) = lex.hypernym(s) {
            groups.entry(h.id.as_str()).or_default().push(s);
        }
    }
    let mut categories: Vec<_> = groups.into_values().filter(|g| g.len() >= 3).collect();
    for i in (1..categories.len()).rev() {
        categories.swap(i, rng.below(i + 1));
    }
    let mut train: Vec<&parse::Synset> = Vec::new();
    for group in &categories {
        for s in group.iter().take(PER_CATEGORY) {
            if train.len() < args.train_per_subset {
                train.push(s);
            }
        }
    }
    if train.len() < args.train_per_subset {
        bail!(
            "{}: only {} synsets in categories of three or more for the {} training rows of the hypernym subset",
            data.display(),
            train.len(),
            args.train_per_subset
        );
    }
    let eval = rest
        .iter()
        .filter(|s| !train.iter().any(|t| t.id == s.id))
        .take(args.eval_per_subset);
    Ok(train.iter().copied().chain(eval.copied()).collect())
}

/// Training synsets per category in the hypernym subset.
pub const PER_CATEGORY: usize = 4;

pub struct Summary {
    pub synsets: usize,
    pub train_rows: usize,
    pub eval_rows: usize,
}

pub fn generate(args: &Args) -> Result<Summary> {
    if args.candidates < 2 {
        bail!("--candidates must be at least 2 (the positive and a distractor)");
    }
    let hard_distractors = match args.hard_distractors {
        Some(hard) if hard >= args.candidates => bail!(
            "--hard-distractors ({hard}) must be below --candidates ({})",
            args.candidates
        ),
        Some(hard) => hard,
        None => DEFAULT_HARD_DISTRACTORS.min(args.candidates - 1),
    };
    if args.train_per_subset == 0 {
        bail!("--train-per-subset must be at least 1");
    }
    let data = args.wordnet.join("data.noun");
    let all = read_nouns(&data)?;
    let lex = Lexicon::new(&all);
    // Synsets that are some tagged word's first sense: common words, which a small model knows.
    let index = args.wordnet.join("index.noun");
    let common = read_common(&index)?;
    let pool: Vec<_> = all
        .iter()
        .filter(|s| usable(s) && common.contains(&s.id) && lex.hypernym(s).is_some())
        .collect();
    let per_subset = args.train_per_subset.saturating_add(args.eval_per_subset);
    if pool.len() < per_subset.saturating_mul(SUBSETS.len()) {
        bail!(
            "{} with {}: {} usable synsets, fewer than the {} that --train-per-subset and --eval-per-subset ask for",
            data.display(),
            index.display(),
            pool.len(),
            per_subset.saturating_mul(SUBSETS.len())
        );
    }
    // A seeded shuffle; each subset takes its own slice, train first.
    let mut order: Vec<usize> = (0..pool.len()).collect();
    let mut rng = Rng::fork(args.seed, 0x3e7, 0);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut prov = Provenance::new(STAGE, env!("CARGO_PKG_VERSION"));
    prov.param("args", args);
    for file in [&data, &index] {
        prov.input(file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    // Retrieval subsets take consecutive slices of the shuffled pool; the hypernym subset's training
    // synsets come a few per category, so each category is the positive of several pairs.
    let mut picks: Vec<Vec<&parse::Synset>> = SUBSETS[..SUBSETS.len() - 1]
        .iter()
        .enumerate()
        .map(|(k, _)| {
            order[k * per_subset..(k + 1) * per_subset]
                .iter()
                .map(|&i| pool[i])
                .collect()
        })
        .collect();
    let rest: Vec<_> = order[(SUBSETS.len() - 1) * per_subset..]
        .iter()
        .map(|&i| pool[i])
        .collect();
    picks.push(by_category(&rest, &lex, args, &mut rng, &data)?);
    replace_folder(&args.out, |dir: &Path| -> Result<Summary> {
        let (mut n_train, mut n_eval) = (0, 0);
        for (k, (subset, _)) in SUBSETS.iter().enumerate() {
            let (train, eval) = picks[k].split_at(args.train_per_subset);
            let mut rng = Rng::fork(args.seed, 0x3e7, 1 + k as u64);
            let train = train_rows(subset, train, &lex, &mut rng);
            let sizes = Sizes {
                candidates: args.candidates,
                hard: hard_distractors,
            };
            let eval = eval_rows(subset, eval, &lex, sizes, &mut rng);
            if let Some(short) = eval.iter().find(|r| r.targets.len() != args.candidates) {
                bail!(
                    "{subset}: found only {} distinct candidates for {:?}; raise --eval-per-subset or lower --candidates",
                    short.targets.len(),
                    short.query
                );
            }
            n_train += train.len();
            n_eval += eval.len();
            let file = format!("{subset}.parquet");
            write_data_file(
                &dir.join("train").join(&file),
                &train_batch(&train),
                &prov,
                "mmeb-train",
            )?;
            write_data_file(&dir.join("eval").join(&file), &eval_batch(&eval), &prov, "mmeb-eval")?;
        }
        let manifest = serde_json::json!({
            "stage": STAGE,
            "version": env!("CARGO_PKG_VERSION"),
            "params": args,
            "source": data.display().to_string(),
            "usable_synsets": pool.len(),
            "subsets": SUBSETS.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            "classification_subsets": SUBSETS.iter().filter(|(_, c)| *c).map(|(s, _)| *s).collect::<Vec<_>>(),
            "train_rows": n_train,
            "eval_rows": n_eval,
        });
        std::fs::write(
            dir.join("wordnet.json"),
            serde_json::to_string_pretty(&manifest)? + "\n",
        )?;
        Ok(Summary {
            synsets: all.len(),
            train_rows: n_train,
            eval_rows: n_eval,
        })
    })
}
