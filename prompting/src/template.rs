//! Chat templates of the reference backbones and the special tokens each one's tokenizer
//! treats as control tokens.

use clap::ValueEnum;
use serde::Serialize;

/// The placeholder MMEB data uses for "the image goes here" (Phi-3-V's image token).
pub const IMAGE_PLACEHOLDER: &str = "<|image_1|>";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backbone {
    /// Qwen2-VL: `<|im_start|>` chat template, `<|image_pad|>` image token.
    #[value(name = "qwen2-vl")]
    #[serde(rename = "qwen2-vl")]
    Qwen2Vl,
    /// Qwen2.5-VL: Qwen2-VL's chat template and image tokens.
    #[value(name = "qwen2.5-vl")]
    #[serde(rename = "qwen2.5-vl")]
    Qwen2_5Vl,
    /// Qwen3-VL (and Qwen3-VL-Embedding): Qwen2-VL's chat template and image tokens; its own chat template
    /// wraps every image in `<|vision_start|>`/`<|vision_end|>`.
    #[value(name = "qwen3-vl")]
    #[serde(rename = "qwen3-vl")]
    Qwen3Vl,
    /// LLaVA-NeXT (Mistral): `[INST] ... [/INST]`, `<image>` image token.
    LlavaNext,
    /// Phi-3.5-V: `<|system|>` chat template, `<|image_1|>` image token.
    Phi3V,
}

const QWEN2_SPECIAL: &[&str] = &[
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
];
const LLAVA_SPECIAL: &[&str] = &["[INST]", "[/INST]", "<image>", "<s>", "</s>", "<unk>"];
const PHI3_SPECIAL: &[&str] = &["<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>"];

impl Backbone {
    /// The name on the command line and in the items' metadata (`qwen2-vl`, `qwen2.5-vl`, ...), which
    /// is also saha-model's name for a snapshot's architecture.
    pub fn name(self) -> String {
        self.to_possible_value()
            .expect("no variant is skipped")
            .get_name()
            .to_string()
    }

    /// The token that replaces [`IMAGE_PLACEHOLDER`]. `wrap` adds Qwen2-VL's vision start/end
    /// tokens, which the reference omits (so its image tokens get 1-D positions).
    pub fn image_token(self, wrap: bool) -> &'static str {
        match (self, wrap) {
            (Backbone::Qwen2Vl | Backbone::Qwen2_5Vl | Backbone::Qwen3Vl, false) => "<|image_pad|>",
            (Backbone::Qwen2Vl | Backbone::Qwen2_5Vl | Backbone::Qwen3Vl, true) => {
                "<|vision_start|><|image_pad|><|vision_end|>"
            }
            (Backbone::LlavaNext, _) => "<image>",
            (Backbone::Phi3V, _) => IMAGE_PLACEHOLDER,
        }
    }

    /// Strings the backbone's tokenizer turns into control tokens when they occur in text.
    pub fn special_tokens(self) -> &'static [&'static str] {
        match self {
            Backbone::Qwen2Vl | Backbone::Qwen2_5Vl | Backbone::Qwen3Vl => QWEN2_SPECIAL,
            Backbone::LlavaNext => LLAVA_SPECIAL,
            Backbone::Phi3V => PHI3_SPECIAL,
        }
    }

    /// The full chat string: system block only when a system prompt is given; the string ends
    /// where generation would start, so the last token is the one the embedding pools.
    pub fn render(self, system: Option<&str>, user: &str) -> String {
        match (self, system) {
            (Backbone::Qwen2Vl | Backbone::Qwen2_5Vl | Backbone::Qwen3Vl, Some(s)) => format!(
                "<|im_start|>system\n{s}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
            ),
            (Backbone::Qwen2Vl | Backbone::Qwen2_5Vl | Backbone::Qwen3Vl, None) => {
                format!("<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
            }
            (Backbone::LlavaNext, Some(s)) => format!("[INST] {s}\n{user} [/INST]"),
            (Backbone::LlavaNext, None) => format!("[INST] {user} [/INST]"),
            (Backbone::Phi3V, Some(s)) => format!("<|system|>\n{s}<|end|>\n<|user|>\n{user}<|end|>\n<|assistant|>\n"),
            (Backbone::Phi3V, None) => format!("<|user|>\n{user}<|end|>\n<|assistant|>\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYS: &str =
        "Given an image, summarize the provided image in one word. Given only text, describe the text in one word.";

    #[test]
    fn qwen_template_matches_reference_bytes() {
        let user = "Find me an everyday image that matches the given caption: A man riding a bike.\nRepresent the given text in one word.";
        assert_eq!(
            Backbone::Qwen2Vl.render(Some(SYS), user),
            "<|im_start|>system\nGiven an image, summarize the provided image in one word. Given only text, describe the text in one word.<|im_end|>\n<|im_start|>user\nFind me an everyday image that matches the given caption: A man riding a bike.\nRepresent the given text in one word.<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            Backbone::Qwen2Vl.render(None, "x"),
            "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn qwen2_5_vl_renders_like_qwen2_vl_under_its_own_name() {
        let (a, b) = (Backbone::Qwen2Vl, Backbone::Qwen2_5Vl);
        assert_eq!(
            a.render(Some(SYS), "<|image_pad|> x"),
            b.render(Some(SYS), "<|image_pad|> x")
        );
        assert_eq!(a.render(None, "x"), b.render(None, "x"));
        assert_eq!(
            (a.image_token(true), a.special_tokens()),
            (b.image_token(true), b.special_tokens())
        );
        assert_eq!((a.name().as_str(), b.name().as_str()), ("qwen2-vl", "qwen2.5-vl"));
        assert_eq!(serde_json::to_value(b).unwrap(), "qwen2.5-vl");
        assert_eq!(Backbone::Phi3V.name(), "phi3-v");
    }

    #[test]
    fn other_backbones_match_reference_bytes() {
        assert_eq!(Backbone::LlavaNext.render(Some("S"), "U"), "[INST] S\nU [/INST]");
        assert_eq!(Backbone::LlavaNext.render(None, "U"), "[INST] U [/INST]");
        assert_eq!(
            Backbone::Phi3V.render(Some("S"), "U"),
            "<|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\n"
        );
        assert_eq!(Backbone::Phi3V.render(None, "U"), "<|user|>\nU<|end|>\n<|assistant|>\n");
    }
}
