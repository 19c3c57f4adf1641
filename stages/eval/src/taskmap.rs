//! Which meta-task each subset belongs to and whether it is in-distribution (an MMEB-train subset)
//! or out-of-distribution: the 36 MMEB-V1 subsets built in, others from a `--task-map` file.
//!
//! ```toml
//! # task-map.toml: one entry per subset; a later entry for a built-in subset replaces it.
//! [subsets]
//! ShapeClass = { meta_task = "Classification", ind_ood = "IND" }
//! ShapeVQA = "VQA"                     # short form: meta-task only, ind_ood = "custom"
//! ```
//! The same in JSON: `{"subsets": {"ShapeClass": {"meta_task": "Classification", "ind_ood": "IND"}}}`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

pub const CLASSIFICATION: &str = "Classification";
pub const VQA: &str = "VQA";
pub const RETRIEVAL: &str = "Retrieval";
pub const GROUNDING: &str = "Visual Grounding";
/// Meta-task of a subset in neither map.
pub const UNKNOWN: &str = "unknown";

/// The four MMEB meta-tasks in the papers' column order.
pub const META_TASKS: [&str; 4] = [CLASSIFICATION, VQA, RETRIEVAL, GROUNDING];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Split {
    Ind,
    Ood,
    Custom,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Ind => "IND",
            Split::Ood => "OOD",
            Split::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ind" => Some(Split::Ind),
            "ood" => Some(Split::Ood),
            "custom" => Some(Split::Custom),
            _ => None,
        }
    }
}

/// The 36 MMEB-V1 subsets (names as in TIGER-Lab/MMEB-eval), in the order of mmeb.md section 1:
/// 20 IND (the MMEB-train subsets), 16 OOD. Source: VLM2Vec `experiments/public/eval/image.yaml`.
pub const MMEB: [(&str, &str, Split); 36] = [
    ("ImageNet-1K", CLASSIFICATION, Split::Ind),
    ("N24News", CLASSIFICATION, Split::Ind),
    ("HatefulMemes", CLASSIFICATION, Split::Ind),
    ("VOC2007", CLASSIFICATION, Split::Ind),
    ("SUN397", CLASSIFICATION, Split::Ind),
    ("Place365", CLASSIFICATION, Split::Ood),
    ("ImageNet-A", CLASSIFICATION, Split::Ood),
    ("ImageNet-R", CLASSIFICATION, Split::Ood),
    ("ObjectNet", CLASSIFICATION, Split::Ood),
    ("Country211", CLASSIFICATION, Split::Ood),
    ("OK-VQA", VQA, Split::Ind),
    ("A-OKVQA", VQA, Split::Ind),
    ("DocVQA", VQA, Split::Ind),
    ("InfographicsVQA", VQA, Split::Ind),
    ("ChartQA", VQA, Split::Ind),
    ("Visual7W", VQA, Split::Ind),
    ("ScienceQA", VQA, Split::Ood),
    ("VizWiz", VQA, Split::Ood),
    ("GQA", VQA, Split::Ood),
    ("TextVQA", VQA, Split::Ood),
    ("VisDial", RETRIEVAL, Split::Ind),
    ("CIRR", RETRIEVAL, Split::Ind),
    ("VisualNews_t2i", RETRIEVAL, Split::Ind),
    ("VisualNews_i2t", RETRIEVAL, Split::Ind),
    ("MSCOCO_t2i", RETRIEVAL, Split::Ind),
    ("MSCOCO_i2t", RETRIEVAL, Split::Ind),
    ("NIGHTS", RETRIEVAL, Split::Ind),
    ("WebQA", RETRIEVAL, Split::Ind),
    ("FashionIQ", RETRIEVAL, Split::Ood),
    ("Wiki-SS-NQ", RETRIEVAL, Split::Ood),
    ("OVEN", RETRIEVAL, Split::Ood),
    ("EDIS", RETRIEVAL, Split::Ood),
    ("MSCOCO", GROUNDING, Split::Ind),
    ("RefCOCO", GROUNDING, Split::Ood),
    ("RefCOCO-Matching", GROUNDING, Split::Ood),
    ("Visual7W-Pointing", GROUNDING, Split::Ood),
];

/// MMEB-train spells one subset differently from MMEB-eval.
const ALIASES: [(&str, &str); 1] = [("ImageNet_1K", "ImageNet-1K")];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub meta_task: String,
    pub split: Split,
    /// Position in the built-in list; custom subsets sort after it.
    pub builtin_index: Option<usize>,
    /// Where the assignment came from: `built-in`, the task-map file, or `default`.
    pub source: &'static str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MapFile {
    subsets: BTreeMap<String, Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Entry {
    Short(String),
    Full(FullEntry),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FullEntry {
    meta_task: String,
    #[serde(default)]
    ind_ood: Option<String>,
}

/// The built-in map plus the entries of an optional task-map file.
#[derive(Debug, Default)]
pub struct TaskMap {
    custom: BTreeMap<String, (String, Split)>,
}

impl TaskMap {
    /// Reads a task-map file: TOML, or JSON when the name ends in `.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("task map {}", path.display()))?;
        let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let file: MapFile = if is_json {
            serde_json::from_str(&text)
                .with_context(|| format!("task map {}: not a valid JSON task map", path.display()))?
        } else {
            toml::from_str(&text).with_context(|| format!("task map {}: not a valid TOML task map", path.display()))?
        };
        let mut custom = BTreeMap::new();
        for (subset, entry) in file.subsets {
            let (meta_task, split) = match entry {
                Entry::Short(m) => (m, Split::Custom),
                Entry::Full(f) => {
                    let split = match f.ind_ood.as_deref() {
                        None => Split::Custom,
                        Some(s) => Split::parse(s).with_context(|| {
                            format!(
                                "task map {}: subset `{subset}`: ind_ood = `{s}`, expected IND, OOD or custom",
                                path.display()
                            )
                        })?,
                    };
                    (f.meta_task, split)
                }
            };
            if meta_task.trim().is_empty() {
                bail!("task map {}: subset `{subset}` has an empty meta_task", path.display());
            }
            custom.insert(subset, (meta_task, split));
        }
        Ok(Self { custom })
    }

    /// The subset's meta-task and IND/OOD class: the task map first, then the built-in map
    /// (aliases included), else `unknown` / `custom`.
    pub fn lookup(&self, subset: &str) -> Task {
        let canonical = ALIASES
            .iter()
            .find(|(alias, _)| *alias == subset)
            .map_or(subset, |(_, name)| name);
        let builtin_index = MMEB.iter().position(|(name, _, _)| *name == canonical);
        if let Some((meta_task, split)) = self.custom.get(subset) {
            return Task {
                meta_task: meta_task.clone(),
                split: *split,
                builtin_index,
                source: "task map",
            };
        }
        match builtin_index {
            Some(i) => Task {
                meta_task: MMEB[i].1.to_string(),
                split: MMEB[i].2,
                builtin_index,
                source: "built-in",
            },
            None => Task {
                meta_task: UNKNOWN.to_string(),
                split: Split::Custom,
                builtin_index: None,
                source: "default",
            },
        }
    }

    /// Task-map subsets, for a note about entries that matched nothing.
    pub fn custom_subsets(&self) -> impl Iterator<Item = &str> {
        self.custom.keys().map(String::as_str)
    }
}

/// Sort key of a meta-task in reports: the four MMEB ones first, `unknown` last, others by name.
pub fn meta_task_order(meta_task: &str) -> (usize, String) {
    match META_TASKS.iter().position(|m| *m == meta_task) {
        Some(i) => (i, String::new()),
        None if meta_task == UNKNOWN => (META_TASKS.len() + 1, String::new()),
        None => (META_TASKS.len(), meta_task.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_map_has_the_papers_counts() {
        let count = |m: &str| MMEB.iter().filter(|e| e.1 == m).count();
        assert_eq!(
            (count(CLASSIFICATION), count(VQA), count(RETRIEVAL), count(GROUNDING)),
            (10, 10, 12, 4)
        );
        assert_eq!(MMEB.iter().filter(|e| e.2 == Split::Ind).count(), 20);
        assert_eq!(MMEB.iter().filter(|e| e.2 == Split::Ood).count(), 16);
        let mut names: Vec<_> = MMEB.iter().map(|e| e.0).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 36);
    }

    #[test]
    fn lookup_order_and_aliases() {
        let map = TaskMap::default();
        assert_eq!(map.lookup("ImageNet_1K").meta_task, CLASSIFICATION);
        assert_eq!(map.lookup("ImageNet_1K").split, Split::Ind);
        assert_eq!(map.lookup("RefCOCO-Matching").split, Split::Ood);
        let t = map.lookup("Shapes");
        assert_eq!((t.meta_task.as_str(), t.split), (UNKNOWN, Split::Custom));

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.toml");
        std::fs::write(
            &p,
            "[subsets]\nShapes = \"VQA\"\nGQA = { meta_task = \"Mine\", ind_ood = \"ind\" }\n",
        )
        .unwrap();
        let map = TaskMap::load(&p).unwrap();
        assert_eq!(map.lookup("Shapes").meta_task, VQA);
        assert_eq!(map.lookup("Shapes").split, Split::Custom);
        assert_eq!(
            (map.lookup("GQA").meta_task.as_str(), map.lookup("GQA").split),
            ("Mine", Split::Ind)
        );

        let p = dir.path().join("m.json");
        std::fs::write(&p, r#"{"subsets": {"S": {"meta_task": "VQA", "ind_ood": "maybe"}}}"#).unwrap();
        let err = format!("{:#}", TaskMap::load(&p).unwrap_err());
        assert!(
            err.contains("m.json") && err.contains("`maybe`") && err.contains("subset `S`"),
            "{err}"
        );
        std::fs::write(&p, r#"{"subsets": {"S": {"meta": "VQA"}}}"#).unwrap();
        let err = format!("{:#}", TaskMap::load(&p).unwrap_err());
        assert!(err.contains("not a valid JSON task map"), "{err}");
    }
}
