//! Assembles pairs, items and eval lists from the subsets of a dataset.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use rayon::prelude::*;
use saha_common::progress;
use saha_schemas::{EvalListEntry, Item, Pair, Side, SkippedRow};
use serde::Serialize;

use crate::images::{ImagePolicy, OnMissing};
use crate::mmeb::{read_file, Input, Layout, RawRow};
use crate::source::SubsetSource;
use saha_prompting::config::{PromptFile, PromptSettings};
use saha_prompting::render::{Renderer, Role, SpecialTextPolicy};
use saha_prompting::template::Backbone;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnDuplicate {
    /// Stop with an error naming both rows.
    Error,
    /// Keep every copy (what the reference does: duplicates share one item).
    Keep,
    /// Keep the first copy and list the others in skipped.parquet.
    Drop,
}

pub struct BuildOptions {
    pub backbone: Backbone,
    pub wrap_vision: bool,
    pub special_text: SpecialTextPolicy,
    pub on_missing: OnMissing,
    pub on_duplicate: OnDuplicate,
    pub images: ImagePolicy,
    pub settings: PromptSettings,
    pub prompt_file: Option<PromptFile>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub rows_read: usize,
    pub pairs: usize,
    pub query_items: usize,
    pub target_items: usize,
    pub skipped_rows: usize,
    pub duplicate_rows: usize,
    pub escaped_control_strings: usize,
    pub image_tokens_prepended: usize,
    pub subsets: Vec<(String, usize)>,
}

pub struct Built {
    pub layout: Layout,
    pub pairs: Vec<Pair>,
    pub items: Vec<Item>,
    pub eval_lists: Vec<EvalListEntry>,
    pub skipped: Vec<SkippedRow>,
    pub input_files: Vec<PathBuf>,
    pub stats: Stats,
}

/// Where an item was first seen, to name it in errors.
#[derive(Clone)]
struct Origin {
    file: usize,
    row: u32,
    column: &'static str,
}

struct ItemKey<'a> {
    side: Side,
    subset: usize,
    input: &'a Input,
    role: Role,
    origin: Origin,
}

/// Assigns item ids in order of first use, de-duplicating by `(side, subset, text, image)`.
#[derive(Default)]
struct Interner<'a> {
    index: HashMap<(Side, usize, &'a Input), u32>,
    keys: Vec<ItemKey<'a>>,
}

impl<'a> Interner<'a> {
    fn id(&mut self, side: Side, subset: usize, input: &'a Input, role: Role, origin: Origin) -> u32 {
        let keys = &mut self.keys;
        *self.index.entry((side, subset, input)).or_insert_with(|| {
            keys.push(ItemKey {
                side,
                subset,
                input,
                role,
                origin,
            });
            (keys.len() - 1) as u32
        })
    }
}

/// The reference encodes RefCOCO-Matching's targets as queries (`'matching' in subset.lower()`).
pub fn targets_are_queries(subset: &str) -> bool {
    subset.to_lowercase().contains("matching")
}

/// Every input file's rows, with the subset each file belongs to.
struct Loaded {
    subset_of: Vec<usize>,
    paths: Vec<PathBuf>,
    names: Vec<String>,
    rows: Vec<Vec<RawRow>>,
    layout: Layout,
    /// Query text, query image, target text, target image column names of the layout.
    cols: [&'static str; 4],
}

impl Loaded {
    fn skip(&self, file: usize, row: &RawRow, column: &str, reason: String, value: Option<String>) -> SkippedRow {
        SkippedRow {
            source_file: self.names[file].clone(),
            source_row: row.source_row,
            column: column.to_string(),
            reason,
            value,
        }
    }

    /// The image column of input `k` of a row (0 = the query, then the targets).
    fn image_column(&self, k: usize) -> &'static str {
        if k == 0 {
            self.cols[1]
        } else {
            self.cols[3]
        }
    }
}

fn load(subsets: &[SubsetSource]) -> Result<Loaded> {
    let files: Vec<(usize, PathBuf)> = subsets
        .iter()
        .enumerate()
        .flat_map(|(s, src)| src.files.iter().map(move |f| (s, f.clone())))
        .collect();
    let read: Vec<(Layout, Vec<RawRow>)> = files
        .par_iter()
        .map(|(_, f)| read_file(f).map_err(anyhow::Error::from))
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<_>>()?;
    let layout = read[0].0;
    if let Some(((_, f), _)) = files.iter().zip(&read).find(|(_, (l, _))| *l != layout) {
        bail!(
            "{}: mixes MMEB-train and MMEB-eval files; pass one kind at a time",
            f.display()
        );
    }
    for (s, src) in subsets.iter().enumerate() {
        let rows: usize = files
            .iter()
            .zip(&read)
            .filter(|((fs, _), _)| *fs == s)
            .map(|(_, (_, r))| r.len())
            .sum();
        if rows == 0 {
            let names: Vec<_> = src.files.iter().map(|f| f.display().to_string()).collect();
            bail!("subset `{}` is empty: no rows in {}", src.name, names.join(", "));
        }
    }
    Ok(Loaded {
        subset_of: files.iter().map(|(s, _)| *s).collect(),
        names: files.iter().map(|(_, f)| f.display().to_string()).collect(),
        paths: files.into_iter().map(|(_, f)| f).collect(),
        rows: read.into_iter().map(|(_, r)| r).collect(),
        layout,
        cols: RawRow::columns(layout),
    })
}

/// Refuses unsafe image paths (always) and handles missing image files per `--on-missing`.
fn check_images(
    l: &Loaded,
    images: &ImagePolicy,
    on_missing: OnMissing,
    keep: &mut [Vec<bool>],
    skipped: &mut Vec<SkippedRow>,
) -> Result<()> {
    let mut refs: Vec<&str> = Vec::new();
    for (fi, rows) in l.rows.iter().enumerate() {
        for row in rows {
            for (k, (_, img)) in std::iter::once(&row.query).chain(&row.targets).enumerate() {
                if let Some(img) = img {
                    if let Some(why) = images.refuse(img) {
                        bail!(
                            "{}: row {}, column `{}`: {why}",
                            l.names[fi],
                            row.source_row,
                            l.image_column(k)
                        );
                    }
                    refs.push(img);
                }
            }
        }
    }
    refs.sort_unstable();
    refs.dedup();
    let missing: HashSet<&str> = images.missing(&refs).into_iter().collect();
    if missing.is_empty() {
        return Ok(());
    }
    for (fi, rows) in l.rows.iter().enumerate() {
        for (ri, row) in rows.iter().enumerate() {
            let hit = std::iter::once(&row.query)
                .chain(&row.targets)
                .enumerate()
                .find_map(|(k, (_, img))| img.as_deref().filter(|i| missing.contains(i)).map(|i| (k, i)));
            let Some((k, img)) = hit else { continue };
            let column = l.image_column(k);
            if on_missing == OnMissing::Error {
                bail!(
                    "{}: row {}, column `{column}`: image {} does not exist ({} missing images in all; --on-missing skip leaves such rows out)",
                    l.names[fi],
                    row.source_row,
                    images.resolve(img).display(),
                    missing.len()
                );
            }
            keep[fi][ri] = false;
            skipped.push(l.skip(fi, row, column, "missing image".into(), Some(img.to_string())));
        }
    }
    Ok(())
}

/// Rows repeated within a subset, handled per `--on-duplicate`; returns how many there were.
fn check_duplicates(
    l: &Loaded,
    on_duplicate: OnDuplicate,
    keep: &mut [Vec<bool>],
    skipped: &mut Vec<SkippedRow>,
) -> Result<usize> {
    let mut first_seen: HashMap<(usize, &Input, &[Input]), (usize, u32)> = HashMap::new();
    let mut duplicates = 0;
    for (fi, rows) in l.rows.iter().enumerate() {
        for (ri, row) in rows.iter().enumerate() {
            if !keep[fi][ri] {
                continue;
            }
            let key = (l.subset_of[fi], &row.query, row.targets.as_slice());
            let Some(&(ffi, frow)) = first_seen.get(&key) else {
                first_seen.insert(key, (fi, row.source_row));
                continue;
            };
            duplicates += 1;
            let what = format!("duplicate of {} row {frow}", l.names[ffi]);
            match on_duplicate {
                OnDuplicate::Keep => {}
                OnDuplicate::Error => bail!(
                    "{}: row {}: duplicate row ({} repeated: {what}; --on-duplicate keep|drop accepts them)",
                    l.names[fi],
                    row.source_row,
                    l.cols.join(", ")
                ),
                OnDuplicate::Drop => {
                    keep[fi][ri] = false;
                    skipped.push(l.skip(fi, row, l.cols[0], what, None));
                }
            }
        }
    }
    Ok(duplicates)
}

/// Item ids of the kept rows: queries first, then targets, each in order of first use.
/// Returns the interned keys, and per file and row the query id and the target ids.
#[allow(clippy::type_complexity)]
fn intern<'a>(
    l: &'a Loaded,
    subsets: &[SubsetSource],
    keep: &[Vec<bool>],
) -> (Vec<ItemKey<'a>>, Vec<Vec<u32>>, Vec<Vec<Vec<u32>>>) {
    let mut index = Interner::default();
    let kept = |fi: usize| l.rows[fi].iter().zip(&keep[fi]);
    let mut query_ids = Vec::with_capacity(l.rows.len());
    for fi in 0..l.rows.len() {
        let ids = kept(fi)
            .map(|(row, &k)| {
                let origin = Origin {
                    file: fi,
                    row: row.source_row,
                    column: l.cols[0],
                };
                if k {
                    index.id(Side::Query, l.subset_of[fi], &row.query, Role::Query, origin)
                } else {
                    u32::MAX
                }
            })
            .collect();
        query_ids.push(ids);
    }
    let mut target_ids = Vec::with_capacity(l.rows.len());
    for fi in 0..l.rows.len() {
        let subset = l.subset_of[fi];
        let role = if targets_are_queries(&subsets[subset].name) {
            Role::Query
        } else {
            Role::Document
        };
        let ids = kept(fi)
            .map(|(row, &k)| {
                let origin = Origin {
                    file: fi,
                    row: row.source_row,
                    column: l.cols[2],
                };
                if !k {
                    return Vec::new();
                }
                row.targets
                    .iter()
                    .map(|t| index.id(Side::Target, subset, t, role, origin.clone()))
                    .collect()
            })
            .collect();
        target_ids.push(ids);
    }
    (index.keys, query_ids, target_ids)
}

/// Renders every item in parallel; errors name the row where the item was first seen.
fn render_items(
    keys: &[ItemKey],
    l: &Loaded,
    subsets: &[SubsetSource],
    opts: &BuildOptions,
    stats: &mut Stats,
) -> Result<Vec<Item>> {
    let resolved: Vec<PromptSettings> = subsets
        .iter()
        .map(|s| match &opts.prompt_file {
            Some(f) => f.resolve(&opts.settings, &s.name),
            None => opts.settings.clone(),
        })
        .collect();
    let bar = progress::bar(keys.len() as u64, "prompts");
    let rendered: Vec<(Item, usize, bool)> = keys
        .par_iter()
        .enumerate()
        .map(|(id, k)| {
            let renderer = Renderer {
                backbone: opts.backbone,
                wrap_vision: opts.wrap_vision,
                policy: opts.special_text,
                settings: &resolved[k.subset],
            };
            let (text, image) = k.input;
            let r = renderer.render(text, image.is_some(), k.role).map_err(|msg| {
                anyhow::anyhow!(
                    "{}: row {}, column `{}`: {msg}",
                    l.names[k.origin.file],
                    k.origin.row,
                    k.origin.column
                )
            })?;
            bar.inc(1);
            let item = Item {
                item_id: id as u32,
                side: k.side,
                subset: subsets[k.subset].name.clone(),
                text: text.clone(),
                image_path: image.clone(),
                system: r.system,
                user: r.user,
                prompt: r.prompt,
                role: k.role.code().to_string(),
            };
            Ok((item, r.escaped, r.image_token_prepended))
        })
        // Collected in order first, so that of several bad rows the first is reported, whichever
        // thread reached its error first (rayon's collect into a Result keeps any one).
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<_>>()?;
    bar.finish_and_clear();
    let mut items = Vec::with_capacity(rendered.len());
    for (item, escaped, prepended) in rendered {
        stats.escaped_control_strings += escaped;
        stats.image_tokens_prepended += usize::from(prepended);
        items.push(item);
    }
    Ok(items)
}

pub fn build(subsets: &[SubsetSource], opts: &BuildOptions) -> Result<Built> {
    let l = load(subsets)?;
    let mut keep: Vec<Vec<bool>> = l.rows.iter().map(|rows| vec![true; rows.len()]).collect();
    let mut skipped = Vec::new();
    let mut stats = Stats::default();
    check_images(&l, &opts.images, opts.on_missing, &mut keep, &mut skipped)?;
    stats.duplicate_rows = check_duplicates(&l, opts.on_duplicate, &mut keep, &mut skipped)?;
    let (keys, query_ids, target_ids) = intern(&l, subsets, &keep);
    let items = render_items(&keys, &l, subsets, opts, &mut stats)?;

    let mut pairs = Vec::new();
    let mut eval_lists = Vec::new();
    for (fi, rows) in l.rows.iter().enumerate() {
        let subset = &subsets[l.subset_of[fi]].name;
        for (ri, row) in rows.iter().enumerate() {
            if !keep[fi][ri] {
                continue;
            }
            let pair_id = u32::try_from(pairs.len()).context("more than 4 billion pairs")?;
            let tids = &target_ids[fi][ri];
            if l.layout == Layout::Eval {
                eval_lists.extend(tids.iter().enumerate().map(|(rank, &item_id)| EvalListEntry {
                    pair_id,
                    rank: rank as u16,
                    item_id,
                }));
            }
            let (pos_text, pos_image) = &row.targets[0];
            pairs.push(Pair {
                pair_id,
                subset: subset.clone(),
                qry: row.query.0.clone(),
                qry_image_path: row.query.1.clone(),
                pos_text: pos_text.clone(),
                pos_image_path: pos_image.clone(),
                query_id: query_ids[fi][ri],
                target_id: tids[0],
                label: row.label.clone(),
                source_file: l.names[fi].clone(),
                source_row: row.source_row,
            });
        }
    }
    if pairs.is_empty() {
        bail!(
            "no rows left after skipping ({} skipped); nothing to write",
            skipped.len()
        );
    }
    stats.rows_read = l.rows.iter().map(Vec::len).sum();
    stats.pairs = pairs.len();
    stats.query_items = items.iter().filter(|i| i.side == Side::Query).count();
    stats.target_items = items.len() - stats.query_items;
    stats.skipped_rows = skipped.len();
    let mut per_subset: HashMap<&str, usize> = HashMap::new();
    for p in &pairs {
        *per_subset.entry(p.subset.as_str()).or_default() += 1;
    }
    stats.subsets = subsets
        .iter()
        .map(|s| (s.name.clone(), per_subset.get(s.name.as_str()).copied().unwrap_or(0)))
        .collect();
    Ok(Built {
        layout: l.layout,
        pairs,
        items,
        eval_lists,
        skipped,
        input_files: l.paths,
        stats,
    })
}
