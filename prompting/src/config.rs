//! Prompt settings: the reference defaults, command-line overrides, and an optional prompt file
//! (TOML or JSON) that refines them per task or per subset.
//!
//! ```toml
//! [default]                      # every subset
//! query_system = "..."
//! [[task]]                       # a named group of subsets
//! name = "classification"
//! subsets = ["ImageNet_1K", "SUN397"]
//! query_system = "Classify the image into one of the dataset's classes."
//! [subset.VisDial]               # one subset; wins over task and default
//! query_prefix = "Dialogue: "
//! replace = [["<|image_1|> Represent", "<|image_1|> Describe"]]
//! ```
//! Precedence, lowest first: built-in reference defaults, command line, `[default]`,
//! `[[task]]` (in file order), `[subset.*]`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The system prompt every README command of the reference passes as both Q_prompt and D_prompt.
pub const REFERENCE_SYSTEM: &str =
    "Given an image, summarize the provided image in one word. Given only text, describe the text in one word.";
pub const QUERY_SUFFIX_TEXT: &str = "\nRepresent the given text in one word.";
pub const QUERY_SUFFIX_IMAGE: &str = "\nRepresent the given text/image in one word.";

/// Everything that shapes one subset's prompts. `None` in a system field means "no system block".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptSettings {
    pub query_system: Option<String>,
    pub target_system: Option<String>,
    pub query_suffix_text: String,
    pub query_suffix_image: String,
    pub target_suffix_text: String,
    pub target_suffix_image: String,
    /// Prepended to the dataset text (after escaping, before the image placeholder is replaced).
    pub query_prefix: String,
    pub target_prefix: String,
    /// Literal (from, to) rewrites of the dataset text, e.g. to swap an instruction.
    pub replace: Vec<(String, String)>,
    /// The image token goes before the text with nothing between (the image placeholder and the white
    /// space after it removed), as Qwen3-VL-Embedding formats its inputs; otherwise it replaces the placeholder.
    pub image_first: bool,
}

impl Default for PromptSettings {
    fn default() -> Self {
        Self {
            query_system: Some(REFERENCE_SYSTEM.to_string()),
            target_system: Some(REFERENCE_SYSTEM.to_string()),
            query_suffix_text: QUERY_SUFFIX_TEXT.to_string(),
            query_suffix_image: QUERY_SUFFIX_IMAGE.to_string(),
            target_suffix_text: String::new(),
            target_suffix_image: String::new(),
            query_prefix: String::new(),
            target_prefix: String::new(),
            replace: Vec::new(),
            image_first: false,
        }
    }
}

/// A partial set of settings as written in a prompt file. A system field set to `""` in the
/// file removes the system block.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Only in `[[task]]` sections: the task's name and the subsets it covers.
    pub name: Option<String>,
    #[serde(default)]
    pub subsets: Vec<String>,
    pub system: Option<String>,
    pub query_system: Option<String>,
    pub target_system: Option<String>,
    pub query_suffix_text: Option<String>,
    pub query_suffix_image: Option<String>,
    pub target_suffix_text: Option<String>,
    pub target_suffix_image: Option<String>,
    pub query_prefix: Option<String>,
    pub target_prefix: Option<String>,
    pub replace: Option<Vec<(String, String)>>,
}

fn system_value(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl Overrides {
    pub fn apply(&self, s: &mut PromptSettings) {
        if let Some(v) = &self.system {
            s.query_system = system_value(v);
            s.target_system = system_value(v);
        }
        if let Some(v) = &self.query_system {
            s.query_system = system_value(v);
        }
        if let Some(v) = &self.target_system {
            s.target_system = system_value(v);
        }
        let set = |dst: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                dst.clone_from(v);
            }
        };
        set(&mut s.query_suffix_text, &self.query_suffix_text);
        set(&mut s.query_suffix_image, &self.query_suffix_image);
        set(&mut s.target_suffix_text, &self.target_suffix_text);
        set(&mut s.target_suffix_image, &self.target_suffix_image);
        set(&mut s.query_prefix, &self.query_prefix);
        set(&mut s.target_prefix, &self.target_prefix);
        if let Some(r) = &self.replace {
            s.replace.clone_from(r);
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PromptFile {
    #[serde(default)]
    pub default: Overrides,
    /// `[[task]]` sections, applied in file order.
    #[serde(default)]
    pub task: Vec<Overrides>,
    #[serde(default)]
    pub subset: BTreeMap<String, Overrides>,
}

impl PromptFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("prompt file {}", path.display()))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(anyhow::Error::from)
        } else {
            toml::from_str(&text).map_err(anyhow::Error::from)
        };
        let file: PromptFile = parsed.with_context(|| format!("prompt file {}: invalid", path.display()))?;
        for (i, section) in file.task.iter().enumerate() {
            if section.subsets.is_empty() {
                let name = section.name.clone().unwrap_or_else(|| format!("#{}", i + 1));
                bail!("prompt file {}: task {name} lists no `subsets`", path.display());
            }
        }
        Ok(file)
    }

    /// Names of subsets the file mentions, to warn about ones not in the data.
    pub fn mentioned_subsets(&self) -> impl Iterator<Item = &str> {
        self.subset
            .keys()
            .map(String::as_str)
            .chain(self.task.iter().flat_map(|t| t.subsets.iter().map(String::as_str)))
    }

    /// The settings for `subset`, starting from `base` (reference defaults plus command line).
    pub fn resolve(&self, base: &PromptSettings, subset: &str) -> PromptSettings {
        let mut s = base.clone();
        self.default.apply(&mut s);
        for task in &self.task {
            if task.subsets.iter().any(|x| x == subset) {
                task.apply(&mut s);
            }
        }
        if let Some(o) = self.subset.get(subset) {
            o.apply(&mut s);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_default_task_subset() {
        let file: PromptFile = toml::from_str(
            r#"
            [default]
            query_system = "D"
            [[task]]
            name = "cls"
            subsets = ["A", "B"]
            query_system = "T"
            target_system = ""
            [subset.A]
            query_system = "S"
            "#,
        )
        .unwrap();
        let base = PromptSettings::default();
        let a = file.resolve(&base, "A");
        assert_eq!(a.query_system.as_deref(), Some("S"));
        assert_eq!(a.target_system, None);
        assert_eq!(file.resolve(&base, "B").query_system.as_deref(), Some("T"));
        let c = file.resolve(&base, "C");
        assert_eq!(c.query_system.as_deref(), Some("D"));
        assert_eq!(c.target_system.as_deref(), Some(REFERENCE_SYSTEM));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<PromptFile>("[default]\nsystem_prompt = \"x\"").is_err());
    }
}
