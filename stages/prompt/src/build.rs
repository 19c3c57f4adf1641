//! Assembles pairs, items and eval lists from the subsets of a dataset.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use rayon::prelude::*;
use saha_schemas::{progress, EvalListEntry, Item, Pair, Side, SkippedRow};
use serde::Serialize;

use crate::config::{PromptFile, PromptSettings};
use crate::images::{ImagePolicy, OnMissing};
use crate::mmeb::{read_file, Input, Layout, RawRow};
use crate::render::{Renderer, Role, SpecialTextPolicy};
use crate::source::SubsetSource;
use crate::template::Backbone;

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

pub fn build(subsets: &[SubsetSource], opts: &BuildOptions) -> Result<Built> {
    let files: Vec<(usize, PathBuf)> = subsets
        .iter()
        .enumerate()
        .flat_map(|(s, src)| src.files.iter().map(move |f| (s, f.clone())))
        .collect();
    let read: Vec<(Layout, Vec<RawRow>)> = files
        .par_iter()
        .map(|(_, f)| read_file(f).map_err(anyhow::Error::from))
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
    let cols = RawRow::columns(layout);
    let file_names: Vec<String> = files.iter().map(|(_, f)| f.display().to_string()).collect();
    let mut skipped = Vec::new();
    let mut stats = Stats::default();

    // Path safety is never optional; existence follows --on-missing.
    let mut image_refs: Vec<&str> = Vec::new();
    for (fi, (_, rows)) in read.iter().enumerate() {
        for row in rows {
            for (k, (_, img)) in std::iter::once(&row.query).chain(&row.targets).enumerate() {
                if let Some(img) = img {
                    if let Some(why) = opts.images.refuse(img) {
                        let col = if k == 0 { cols[1] } else { cols[3] };
                        bail!("{}: row {}, column `{col}`: {why}", file_names[fi], row.source_row);
                    }
                    image_refs.push(img);
                }
            }
        }
    }
    image_refs.sort_unstable();
    image_refs.dedup();
    let missing: std::collections::HashSet<&str> = opts.images.missing(&image_refs).into_iter().collect();

    let mut keep: Vec<Vec<bool>> = read.iter().map(|(_, rows)| vec![true; rows.len()]).collect();
    for (fi, (_, rows)) in read.iter().enumerate() {
        for (ri, row) in rows.iter().enumerate() {
            let hit = std::iter::once(&row.query)
                .chain(&row.targets)
                .enumerate()
                .find_map(|(k, (_, img))| img.as_deref().filter(|i| missing.contains(i)).map(|i| (k, i)));
            if let Some((k, img)) = hit {
                let column = if k == 0 { cols[1] } else { cols[3] };
                let path = opts.images.resolve(img);
                if opts.on_missing == OnMissing::Error {
                    bail!(
                        "{}: row {}, column `{column}`: image {} does not exist ({} missing images in all; --on-missing skip leaves such rows out)",
                        file_names[fi], row.source_row, path.display(), missing.len()
                    );
                }
                keep[fi][ri] = false;
                skipped.push(SkippedRow {
                    source_file: file_names[fi].clone(),
                    source_row: row.source_row,
                    column: column.to_string(),
                    reason: "missing image".to_string(),
                    value: Some(img.to_string()),
                });
            }
        }
    }

    // Duplicate rows, within a subset.
    let mut first_seen: HashMap<(usize, &Input, &[Input]), (usize, u32)> = HashMap::new();
    for (fi, (_, rows)) in read.iter().enumerate() {
        let subset = files[fi].0;
        for (ri, row) in rows.iter().enumerate() {
            if !keep[fi][ri] {
                continue;
            }
            let key = (subset, &row.query, row.targets.as_slice());
            match first_seen.get(&key) {
                None => {
                    first_seen.insert(key, (fi, row.source_row));
                }
                Some(&(ffi, frow)) => {
                    stats.duplicate_rows += 1;
                    let what = format!("duplicate of {} row {frow}", file_names[ffi]);
                    match opts.on_duplicate {
                        OnDuplicate::Keep => {}
                        OnDuplicate::Error => {
                            bail!(
                            "{}: row {}: duplicate row ({} repeated: {what}; --on-duplicate keep|drop accepts them)",
                            file_names[fi], row.source_row, cols.join(", ")
                        )
                        }
                        OnDuplicate::Drop => {
                            keep[fi][ri] = false;
                            skipped.push(SkippedRow {
                                source_file: file_names[fi].clone(),
                                source_row: row.source_row,
                                column: cols[0].to_string(),
                                reason: what,
                                value: None,
                            });
                        }
                    }
                }
            }
        }
    }

    // Items: queries first, then targets, each in order of first use.
    let mut items_index = Interner::default();
    let query_ids: Vec<Vec<u32>> = read
        .iter()
        .enumerate()
        .map(|(fi, (_, rows))| {
            rows.iter()
                .map(|row| {
                    let origin = Origin {
                        file: fi,
                        row: row.source_row,
                        column: cols[0],
                    };
                    items_index.id(Side::Query, files[fi].0, &row.query, Role::Query, origin)
                })
                .collect()
        })
        .collect();
    let target_ids: Vec<Vec<Vec<u32>>> = read
        .iter()
        .enumerate()
        .map(|(fi, (_, rows))| {
            let subset = files[fi].0;
            let role = if targets_are_queries(&subsets[subset].name) {
                Role::Query
            } else {
                Role::Document
            };
            rows.iter()
                .map(|row| {
                    let origin = Origin {
                        file: fi,
                        row: row.source_row,
                        column: cols[2],
                    };
                    row.targets
                        .iter()
                        .map(|t| items_index.id(Side::Target, subset, t, role, origin.clone()))
                        .collect()
                })
                .collect()
        })
        .collect();
    let keys = items_index.keys;

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
                    file_names[k.origin.file],
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
        .collect::<Result<_>>()?;
    let mut items = Vec::with_capacity(rendered.len());
    for (item, escaped, prepended) in rendered {
        stats.escaped_control_strings += escaped;
        stats.image_tokens_prepended += prepended as usize;
        items.push(item);
    }
    bar.finish_and_clear();

    let mut pairs = Vec::new();
    let mut eval_lists = Vec::new();
    for (fi, (_, rows)) in read.iter().enumerate() {
        let subset = &subsets[files[fi].0].name;
        for (ri, row) in rows.iter().enumerate() {
            if !keep[fi][ri] {
                continue;
            }
            let pair_id = u32::try_from(pairs.len()).context("more than 4 billion pairs")?;
            let tids = &target_ids[fi][ri];
            if layout == Layout::Eval {
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
                source_file: file_names[fi].clone(),
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
    stats.rows_read = read.iter().map(|(_, r)| r.len()).sum();
    stats.pairs = pairs.len();
    stats.query_items = items.iter().filter(|i| i.side == Side::Query).count();
    stats.target_items = items.len() - stats.query_items;
    stats.skipped_rows = skipped.len();
    stats.subsets = subsets
        .iter()
        .map(|s| (s.name.clone(), pairs.iter().filter(|p| p.subset == s.name).count()))
        .collect();
    Ok(Built {
        layout,
        pairs,
        items,
        eval_lists,
        skipped,
        input_files: files.into_iter().map(|(_, f)| f).collect(),
        stats,
    })
}
