//! Prompt presets: the project's hierarchical prompt (the reference's, the default) and the format a
//! published embedding model was trained with, so that model is evaluated as its authors run it.
//!
//! Qwen3-VL-Embedding (`Qwen3VLEmbedder.format_model_input` in QwenLM/Qwen3-VL-Embedding, rendered by
//! Qwen3-VL's chat template): the instruction is the system turn (default "Represent the user's input.",
//! a full stop added when it does not end in punctuation), the user turn holds the image first,
//! `<|vision_start|><|image_pad|><|vision_end|>`, then the text, with no suffix; generation prompt
//! `<|im_start|>assistant\n`; last-token pooling. Queries and documents are formatted alike.

use clap::ValueEnum;
use serde::Serialize;

use crate::config::PromptSettings;

/// Qwen3-VL-Embedding's default instruction.
pub const QWEN3_VL_EMBEDDING_INSTRUCTION: &str = "Represent the user's input.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The hierarchical prompt as the reference renders it.
    #[default]
    Hierarchical,
    /// Qwen3-VL-Embedding's own instruction format and default instruction (images wrapped, image first).
    Qwen3VlEmbedding,
}

impl Preset {
    /// The settings the preset starts from (the command line and prompt files apply on top).
    pub fn settings(self) -> PromptSettings {
        match self {
            Preset::Hierarchical => PromptSettings::default(),
            Preset::Qwen3VlEmbedding => PromptSettings {
                query_system: Some(QWEN3_VL_EMBEDDING_INSTRUCTION.to_string()),
                target_system: Some(QWEN3_VL_EMBEDDING_INSTRUCTION.to_string()),
                query_suffix_text: String::new(),
                query_suffix_image: String::new(),
                target_suffix_text: String::new(),
                target_suffix_image: String::new(),
                image_first: true,
                ..PromptSettings::default()
            },
        }
    }

    /// Whether image tokens are wrapped in `<|vision_start|>`/`<|vision_end|>` whatever `--wrap-vision` says.
    pub fn wraps_vision(self) -> bool {
        self == Preset::Qwen3VlEmbedding
    }

    /// A system instruction as the preset uses it: Qwen3-VL-Embedding trims it and ends it with a full stop
    /// unless its last character is punctuation.
    pub fn instruction(self, text: &str) -> String {
        match self {
            Preset::Hierarchical => text.to_string(),
            Preset::Qwen3VlEmbedding => {
                let trimmed = text.trim();
                match trimmed.chars().last() {
                    Some(c) if !is_punctuation(c) => format!("{trimmed}."),
                    _ => trimmed.to_string(),
                }
            }
        }
    }
}

/// Unicode general category P* (what `unicodedata.category(c).startswith('P')` tests) for ASCII and the
/// common CJK and typographic marks; ASCII symbols such as `$ + < = > ^ | ~` are category S, not P.
fn is_punctuation(c: char) -> bool {
    matches!(
        c,
        '!' | '"'
            | '#'
            | '%'
            | '&'
            | '\''
            | '('
            | ')'
            | '*'
            | ','
            | '-'
            | '.'
            | '/'
            | ':'
            | ';'
            | '?'
            | '@'
            | '['
            | '\\'
            | ']'
            | '_'
            | '{'
            | '}'
    ) || matches!(
        c,
        '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{205E}' | '\u{3001}'..='\u{3003}' | '\u{3008}'..='\u{3011}'
            | '\u{FF01}'..='\u{FF03}' | '\u{FF05}'..='\u{FF0A}' | '\u{FF0C}'..='\u{FF0F}' | '\u{FF1A}'
            | '\u{FF1B}' | '\u{FF1F}' | '\u{FF20}' | '¡' | '§' | '«' | '¶' | '·' | '»' | '¿'
    ) && !matches!(c, '\u{2044}' | '\u{2052}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{Renderer, Role, SpecialTextPolicy};
    use crate::template::Backbone;

    fn render(text: &str, image: bool, role: Role) -> String {
        let settings = Preset::Qwen3VlEmbedding.settings();
        let renderer = Renderer {
            backbone: Backbone::Qwen2Vl,
            wrap_vision: Preset::Qwen3VlEmbedding.wraps_vision(),
            policy: SpecialTextPolicy::Escape,
            settings: &settings,
        };
        renderer.render(text, image, role).unwrap().prompt
    }

    #[test]
    fn qwen3_vl_embedding_format_matches_its_chat_template() {
        // What Qwen3-VL's chat template renders for format_model_input's conversation with the default
        // instruction, an image and a text (image first, no separator), add_generation_prompt=True.
        assert_eq!(
            render("<|image_1|>\nA dog on a beach.", true, Role::Query),
            "<|im_start|>system\nRepresent the user's input.<|im_end|>\n<|im_start|>user\n\
             <|vision_start|><|image_pad|><|vision_end|>A dog on a beach.<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            render("A dog on a beach.", false, Role::Document),
            "<|im_start|>system\nRepresent the user's input.<|im_end|>\n<|im_start|>user\n\
             A dog on a beach.<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            render("<|image_1|>", true, Role::Document),
            "<|im_start|>system\nRepresent the user's input.<|im_end|>\n<|im_start|>user\n\
             <|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn instructions_end_in_punctuation() {
        let p = Preset::Qwen3VlEmbedding;
        assert_eq!(
            p.instruction(" Retrieve images relevant to the query "),
            "Retrieve images relevant to the query."
        );
        assert_eq!(p.instruction("Which one?"), "Which one?");
        assert_eq!(p.instruction("检索相关图片。"), "检索相关图片。");
        assert_eq!(p.instruction("Cost in $"), "Cost in $.");
        assert_eq!(Preset::Hierarchical.instruction(" x "), " x ");
    }
}
