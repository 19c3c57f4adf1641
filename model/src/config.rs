//! `config.json` of a Qwen2-VL, Qwen2.5-VL or Qwen3-VL snapshot, in the flat original layout or the newer
//! nested one (`text_config`, `rope_parameters`). Qwen3-VL's is read by [`crate::qwen3_vl::config`].

use serde_json::Value;

use crate::error::{ModelError, Result};

/// The model family a snapshot belongs to, from config.json's `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `qwen2_vl`: LayerNorm + QuickGELU vision blocks, attention over each whole image.
    Qwen2Vl,
    /// `qwen2_5_vl`: RMSNorm + SwiGLU vision blocks, window attention except in `fullatt_block_indexes`.
    Qwen2_5Vl,
    /// `qwen3_vl` (dense): Qwen3 decoder (q/k norms, interleaved M-RoPE), LayerNorm + GELU-tanh vision blocks,
    /// a learned position table and DeepStack features added to the first text layers.
    Qwen3Vl,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::Qwen2Vl, Arch::Qwen2_5Vl, Arch::Qwen3Vl];

    pub fn from_model_type(model_type: &str) -> Result<Self> {
        Arch::ALL
            .into_iter()
            .find(|a| a.model_type() == model_type)
            .ok_or_else(|| {
                let known: Vec<&str> = Arch::ALL.iter().map(|a| a.model_type()).collect();
                ModelError::Config(format!(
                    "model_type `{model_type}` is not supported (supported: {})",
                    known.join(", ")
                ))
            })
    }

    /// config.json's `model_type`.
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::Qwen2Vl => "qwen2_vl",
            Arch::Qwen2_5Vl => "qwen2_5_vl",
            Arch::Qwen3Vl => "qwen3_vl",
        }
    }

    /// The backbone name prompts are rendered for (`saha-prompt --backbone`, `saha-init-model --arch`).
    pub fn backbone(self) -> &'static str {
        match self {
            Arch::Qwen2Vl => "qwen2-vl",
            Arch::Qwen2_5Vl => "qwen2.5-vl",
            Arch::Qwen3Vl => "qwen3-vl",
        }
    }

    /// The transformers class config.json's `architectures` names.
    pub fn class_name(self) -> &'static str {
        match self {
            Arch::Qwen2Vl => "Qwen2VLForConditionalGeneration",
            Arch::Qwen2_5Vl => "Qwen2_5_VLForConditionalGeneration",
            Arch::Qwen3Vl => "Qwen3VLForConditionalGeneration",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Per attention head; Qwen2 derives it from the hidden size, Qwen3 configs state it.
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Split of the rotary half-dimension between the temporal, height and width position rows.
    pub mrope_section: [usize; 3],
    /// Qwen3-VL's layout: frequency `k` takes row `k % 3` (within the h and w sections' reach) instead of
    /// consecutive t, h, w blocks.
    pub mrope_interleaved: bool,
    /// Bias on the q, k and v projections (Qwen2), and on the output projection.
    pub qkv_bias: bool,
    pub o_bias: bool,
    /// RMSNorm over each query and key head before the rotary embedding (Qwen3).
    pub qk_norm: bool,
    pub vocab_size: usize,
}

impl TextConfig {
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }
}

/// Qwen2.5-VL's window attention: blocks not listed in `full_attention_blocks` attend within square
/// windows of `window_size` pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowAttention {
    pub window_size: usize,
    pub full_attention_blocks: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub depth: usize,
    pub embed_dim: usize,
    pub num_heads: usize,
    /// Width of each block's MLP (Qwen2-VL: `embed_dim * mlp_ratio`).
    pub intermediate_size: usize,
    pub patch_size: usize,
    pub spatial_merge_size: usize,
    pub temporal_patch_size: usize,
    pub in_channels: usize,
    /// Width of the merger's output, which must equal the text hidden size.
    pub hidden_size: usize,
    /// Window attention (Qwen2.5-VL); `None`: every block attends over each whole image.
    pub windows: Option<WindowAttention>,
    /// Qwen3-VL: rows of the learned position-embedding table (a square grid), 0 where there is none.
    pub num_position_embeddings: usize,
    /// Qwen3-VL: the blocks whose outputs, merged, are added to the first text layers (DeepStack).
    pub deepstack_visual_indexes: Vec<usize>,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }
    /// Side of an attention window in merged tokens (transformers' `vit_merger_window_size`).
    pub fn window_tokens(&self) -> Option<usize> {
        let w = self.windows.as_ref()?;
        Some(w.window_size / self.spatial_merge_size / self.patch_size)
    }
    /// Values in one flattened patch: channels x temporal x patch x patch (1176 for Qwen2-VL).
    pub fn patch_values(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }
    pub fn merge_unit(&self) -> usize {
        self.spatial_merge_size * self.spatial_merge_size
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    pub image: u32,
    pub video: u32,
    pub vision_start: u32,
    pub vision_end: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub tokens: SpecialTokens,
}

impl ModelConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let root: Value = serde_json::from_str(text).map_err(|e| ModelError::Config(format!("not valid JSON: {e}")))?;
        Self::from_value(&root)
    }

    pub fn from_value(root: &Value) -> Result<Self> {
        let arch = match root.get("model_type").and_then(Value::as_str) {
            Some(model_type) => Arch::from_model_type(model_type)?,
            None => return Err(ModelError::Config("missing field `model_type`".into())),
        };
        let config = match arch {
            Arch::Qwen3Vl => crate::qwen3_vl::config::from_value(root)?,
            Arch::Qwen2Vl | Arch::Qwen2_5Vl => Self::qwen2(arch, root)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Qwen2-VL and Qwen2.5-VL: a Qwen2 decoder.
    fn qwen2(arch: Arch, root: &Value) -> Result<Self> {
        let text_section = root.get("text_config").filter(|v| v.is_object());
        // Text fields live under `text_config` in the newer layout and at the top level in the original one.
        let text_field = |key: &str| text_section.and_then(|t| t.get(key)).or_else(|| root.get(key));
        let rope = text_field("rope_parameters").or_else(|| text_field("rope_scaling"));
        let hidden_size = usize_field(text_field("hidden_size"), "hidden_size")?;
        let num_attention_heads = usize_field(text_field("num_attention_heads"), "num_attention_heads")?;
        if num_attention_heads == 0 || hidden_size % num_attention_heads != 0 {
            return Err(ModelError::Config(format!(
                "hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}"
            )));
        }
        let text = TextConfig {
            hidden_size,
            intermediate_size: usize_field(text_field("intermediate_size"), "intermediate_size")?,
            num_hidden_layers: usize_field(text_field("num_hidden_layers"), "num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads: usize_field(text_field("num_key_value_heads"), "num_key_value_heads")?,
            head_dim: hidden_size / num_attention_heads,
            rms_norm_eps: text_field("rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6),
            rope_theta: text_field("rope_theta")
                .or_else(|| rope.and_then(|r| r.get("rope_theta")))
                .and_then(Value::as_f64)
                .unwrap_or(1_000_000.0),
            mrope_section: mrope_section(rope)?.ok_or_else(|| {
                ModelError::Config("missing `rope_scaling.mrope_section` (or `rope_parameters.mrope_section`)".into())
            })?,
            mrope_interleaved: false,
            qkv_bias: true,
            o_bias: false,
            qk_norm: false,
            vocab_size: usize_field(text_field("vocab_size"), "vocab_size")?,
        };
        let vision_section = root
            .get("vision_config")
            .filter(|v| v.is_object())
            .ok_or_else(|| ModelError::Config("missing object `vision_config`".into()))?;
        let vision = vision_config(arch, vision_section, text.hidden_size)?;
        Ok(ModelConfig {
            arch,
            text,
            vision,
            tokens: special_tokens(root)?,
        })
    }

    fn validate(&self) -> Result<()> {
        let t = &self.text;
        let v = &self.vision;
        let fail = |m: String| Err(ModelError::Config(m));
        if t.num_attention_heads == 0 || t.head_dim == 0 {
            return fail("num_attention_heads and head_dim must be positive".into());
        }
        if t.num_key_value_heads == 0 || t.num_attention_heads % t.num_key_value_heads != 0 {
            return fail(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                t.num_attention_heads, t.num_key_value_heads
            ));
        }
        if t.mrope_section.iter().sum::<usize>() * 2 != t.head_dim() {
            return fail(format!(
                "mrope_section {:?} must sum to head_dim / 2 = {}",
                t.mrope_section,
                t.head_dim() / 2
            ));
        }
        if v.num_heads == 0 || v.embed_dim % v.num_heads != 0 || v.head_dim() % 4 != 0 {
            return fail(format!(
                "vision embed_dim {} / num_heads {} must give a head dimension divisible by 4",
                v.embed_dim, v.num_heads
            ));
        }
        if let Some(w) = &v.windows {
            let unit = v.spatial_merge_size * v.patch_size;
            if w.window_size == 0 || w.window_size % unit != 0 {
                return fail(format!(
                    "vision_config.window_size {} must be a positive multiple of spatial_merge_size x patch_size = {unit}",
                    w.window_size
                ));
            }
            if let Some(i) = w.full_attention_blocks.iter().find(|&&i| i >= v.depth) {
                return fail(format!(
                    "vision_config.fullatt_block_indexes names block {i}; the tower has {} blocks",
                    v.depth
                ));
            }
        }
        if v.hidden_size != t.hidden_size {
            let field = match self.arch {
                Arch::Qwen2Vl => "hidden_size",
                Arch::Qwen2_5Vl | Arch::Qwen3Vl => "out_hidden_size",
            };
            return fail(format!(
                "vision_config.{field} {} differs from hidden_size {}",
                v.hidden_size, t.hidden_size
            ));
        }
        Ok(())
    }
}

/// `vision_config` as each architecture names its fields: Qwen2-VL's `embed_dim` is Qwen2.5-VL's
/// `hidden_size`, and Qwen2-VL's `hidden_size` (the merger's output) is Qwen2.5-VL's `out_hidden_size`.
fn vision_config(arch: Arch, section: &Value, text_hidden: usize) -> Result<VisionConfig> {
    let field = |key: &str| section.get(key);
    let named = |key: &str| format!("vision_config.{key}");
    let required = |key: &str| usize_field(field(key), &named(key));
    let or = |key: &str, default: usize| usize_or(field(key), &named(key), default);
    let activation = field("hidden_act").and_then(Value::as_str);
    let (embed_dim, intermediate_size, hidden_size, windows, expected_act) = match arch {
        Arch::Qwen2Vl => {
            let embed_dim = required("embed_dim")?;
            let mlp_ratio = field("mlp_ratio").and_then(Value::as_f64).unwrap_or(4.0);
            let intermediate = (embed_dim as f64 * mlp_ratio) as usize;
            (
                embed_dim,
                intermediate,
                or("hidden_size", text_hidden)?,
                None,
                "quick_gelu",
            )
        }
        Arch::Qwen3Vl => unreachable!("qwen3_vl::config reads Qwen3-VL's vision_config"),
        Arch::Qwen2_5Vl => {
            let full_attention_blocks = match field("fullatt_block_indexes") {
                None => vec![7, 15, 23, 31],
                Some(list) => list
                    .as_array()
                    .and_then(|a| a.iter().map(|x| x.as_u64().map(|n| n as usize)).collect())
                    .ok_or_else(|| {
                        ModelError::Config(format!(
                            "vision_config.fullatt_block_indexes must be integers, found {list}"
                        ))
                    })?,
            };
            let windows = WindowAttention {
                window_size: or("window_size", 112)?,
                full_attention_blocks,
            };
            let out = or("out_hidden_size", text_hidden)?;
            (
                required("hidden_size")?,
                required("intermediate_size")?,
                out,
                Some(windows),
                "silu",
            )
        }
    };
    if let Some(act) = activation {
        if act != expected_act {
            return Err(ModelError::Config(format!(
                "vision_config.hidden_act is `{act}`; the {} vision tower uses `{expected_act}`",
                arch.model_type()
            )));
        }
    }
    // Published Qwen2.5-VL configs say `in_chans`, transformers writes `in_channels`.
    let in_channels = match field("in_channels") {
        Some(_) => or("in_channels", 3)?,
        None => or("in_chans", 3)?,
    };
    Ok(VisionConfig {
        depth: required("depth")?,
        embed_dim,
        num_heads: required("num_heads")?,
        intermediate_size,
        patch_size: or("patch_size", 14)?,
        spatial_merge_size: or("spatial_merge_size", 2)?,
        temporal_patch_size: or("temporal_patch_size", 2)?,
        in_channels,
        hidden_size,
        windows,
        num_position_embeddings: 0,
        deepstack_visual_indexes: Vec::new(),
    })
}

/// The special token ids, at the top level or in `text_config`, with Qwen's ids as defaults.
pub(crate) fn special_tokens(root: &Value) -> Result<SpecialTokens> {
    let text_section = root.get("text_config").filter(|v| v.is_object());
    let token = |key: &str, default: u32| -> Result<u32> {
        let value = root.get(key).or_else(|| text_section.and_then(|t| t.get(key)));
        Ok(usize_or(value, key, default as usize)? as u32)
    };
    Ok(SpecialTokens {
        image: token("image_token_id", 151655)?,
        video: token("video_token_id", 151656)?,
        vision_start: token("vision_start_token_id", 151652)?,
        vision_end: token("vision_end_token_id", 151653)?,
    })
}

pub(crate) fn usize_field(value: Option<&Value>, key: &str) -> Result<usize> {
    match value {
        None => Err(ModelError::Config(format!("missing field `{key}`"))),
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| ModelError::Config(format!("`{key}` must be a non-negative integer, found {v}"))),
    }
}

pub(crate) fn usize_or(value: Option<&Value>, key: &str, default: usize) -> Result<usize> {
    match value {
        None | Some(Value::Null) => Ok(default),
        some => usize_field(some, key),
    }
}

/// `mrope_section` of the rope settings, `None` when absent.
pub(crate) fn mrope_section(rope: Option<&Value>) -> Result<Option<[usize; 3]>> {
    let Some(list) = rope.and_then(|r| r.get("mrope_section")) else {
        return Ok(None);
    };
    let parts: Option<Vec<usize>> = list
        .as_array()
        .map(|a| a.iter().map(|x| x.as_u64().map(|n| n as usize)).collect())
        .flatten();
    match parts.as_deref() {
        Some([t, h, w]) => Ok(Some([*t, *h, *w])),
        _ => Err(ModelError::Config(format!(
            "mrope_section must be three integers, found {list}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAT: &str = r#"{"model_type":"qwen2_vl","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
 "num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-6,"rope_theta":1000000.0,
 "rope_scaling":{"type":"mrope","mrope_section":[2,3,3]},"vocab_size":151936,"tie_word_embeddings":true,
 "image_token_id":151655,"video_token_id":151656,"vision_start_token_id":151652,"vision_end_token_id":151653,
 "vision_config":{"depth":2,"embed_dim":32,"num_heads":4,"mlp_ratio":4,"hidden_act":"quick_gelu",
   "patch_size":14,"spatial_merge_size":2,"temporal_patch_size":2,"in_channels":3,"hidden_size":64}}"#;

    const NESTED: &str = r#"{"model_type":"qwen2_vl","image_token_id":151655,"video_token_id":151656,
 "vision_start_token_id":151652,"vision_end_token_id":151653,
 "text_config":{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,
   "num_key_value_heads":2,"rms_norm_eps":1e-6,"vocab_size":151936,
   "rope_parameters":{"rope_type":"default","rope_theta":1000000.0,"mrope_section":[2,3,3]}},
 "vision_config":{"depth":2,"embed_dim":32,"num_heads":4,"mlp_ratio":4,"hidden_act":"quick_gelu",
   "patch_size":14,"spatial_merge_size":2,"temporal_patch_size":2,"in_channels":3,"hidden_size":64}}"#;

    #[test]
    fn both_layouts_give_the_same_config() {
        let flat = ModelConfig::from_json(FLAT).unwrap();
        let nested = ModelConfig::from_json(NESTED).unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.text.head_dim(), 16);
        assert_eq!(flat.vision.patch_values(), 1176);
        assert_eq!(flat.text.mrope_section, [2, 3, 3]);
    }

    /// Qwen2.5-VL-3B-Instruct's config.json as published (flat, `in_chans`), trimmed to what is read.
    const QWEN2_5_3B: &str = r#"{"architectures":["Qwen2_5_VLForConditionalGeneration"],"model_type":"qwen2_5_vl",
 "hidden_size":2048,"intermediate_size":11008,"num_hidden_layers":36,"num_attention_heads":16,"num_key_value_heads":2,
 "rms_norm_eps":1e-06,"rope_theta":1000000.0,"vocab_size":151936,"tie_word_embeddings":true,
 "rope_scaling":{"type":"mrope","mrope_section":[16,24,24]},"image_token_id":151655,"video_token_id":151656,
 "vision_start_token_id":151652,"vision_end_token_id":151653,
 "vision_config":{"depth":32,"hidden_act":"silu","hidden_size":1280,"intermediate_size":3420,"num_heads":16,
   "in_chans":3,"out_hidden_size":2048,"patch_size":14,"spatial_merge_size":2,"spatial_patch_size":14,
   "window_size":112,"fullatt_block_indexes":[7,15,23,31],"tokens_per_second":2,"temporal_patch_size":2}}"#;

    /// The same model as transformers 5 saves it (nested, `rope_parameters`, `in_channels`).
    const QWEN2_5_3B_NESTED: &str = r#"{"architectures":["Qwen2_5_VLForConditionalGeneration"],"model_type":"qwen2_5_vl",
 "image_token_id":151655,"video_token_id":151656,"vision_start_token_id":151652,"vision_end_token_id":151653,
 "text_config":{"model_type":"qwen2_5_vl_text","hidden_size":2048,"intermediate_size":11008,"num_hidden_layers":36,
   "num_attention_heads":16,"num_key_value_heads":2,"rms_norm_eps":1e-06,"vocab_size":151936,
   "rope_parameters":{"rope_type":"default","rope_theta":1000000.0,"mrope_section":[16,24,24]}},
 "vision_config":{"model_type":"qwen2_5_vl_vision","depth":32,"hidden_act":"silu","hidden_size":1280,
   "intermediate_size":3420,"num_heads":16,"in_channels":3,"out_hidden_size":2048,"patch_size":14,
   "spatial_merge_size":2,"window_size":112,"fullatt_block_indexes":[7,15,23,31],"tokens_per_second":2,
   "temporal_patch_size":2,"rope_parameters":{"rope_type":"axial","rope_theta":10000.0}}}"#;

    /// Qwen2.5-VL-7B-Instruct as transformers 4.53 re-saved it (trimmed): text fields both at the top level
    /// and in `text_config` (with `rope_scaling` there, `"type": "default"`), `video_token_id` null in
    /// `text_config`, vision with both `in_chans` and `in_channels`.
    const QWEN2_5_7B_4_53: &str = r#"{"architectures":["Qwen2_5_VLForConditionalGeneration"],"model_type":"qwen2_5_vl",
 "hidden_size":3584,"intermediate_size":18944,"num_hidden_layers":28,"num_attention_heads":28,"num_key_value_heads":4,
 "rms_norm_eps":1e-06,"rope_theta":1000000.0,"vocab_size":152064,"tie_word_embeddings":false,
 "rope_scaling":{"mrope_section":[16,24,24],"rope_type":"default","type":"default"},
 "image_token_id":151655,"video_token_id":151656,"vision_start_token_id":151652,"vision_end_token_id":151653,
 "text_config":{"hidden_size":3584,"intermediate_size":18944,"num_hidden_layers":28,"num_attention_heads":28,
   "num_key_value_heads":4,"rms_norm_eps":1e-06,"rope_theta":1000000.0,"vocab_size":152064,"video_token_id":null,
   "rope_scaling":{"mrope_section":[16,24,24],"rope_type":"default","type":"default"}},
 "vision_config":{"depth":32,"fullatt_block_indexes":[7,15,23,31],"hidden_act":"silu","hidden_size":1280,
   "in_channels":3,"in_chans":3,"intermediate_size":3420,"model_type":"qwen2_5_vl","num_heads":16,
   "out_hidden_size":3584,"patch_size":14,"spatial_merge_size":2,"spatial_patch_size":14,"temporal_patch_size":2,
   "tokens_per_second":2,"window_size":112}}"#;

    #[test]
    fn qwen2_5_vl_7b_as_transformers_4_53_saves_it() {
        let c = ModelConfig::from_json(QWEN2_5_7B_4_53).unwrap();
        assert_eq!(
            (c.arch, c.text.hidden_size, c.text.head_dim()),
            (Arch::Qwen2_5Vl, 3584, 128)
        );
        assert_eq!(
            (c.vision.embed_dim, c.vision.hidden_size, c.vision.in_channels),
            (1280, 3584, 3)
        );
        assert_eq!(c.tokens.video, 151656);
    }

    #[test]
    fn qwen2_5_vl_reads_its_own_vision_field_names_in_both_layouts() {
        let flat = ModelConfig::from_json(QWEN2_5_3B).unwrap();
        assert_eq!(flat, ModelConfig::from_json(QWEN2_5_3B_NESTED).unwrap());
        assert_eq!(flat.arch, Arch::Qwen2_5Vl);
        let v = &flat.vision;
        assert_eq!((v.embed_dim, v.intermediate_size, v.hidden_size), (1280, 3420, 2048));
        assert_eq!(v.window_tokens(), Some(4), "112 px windows are 4 x 4 merged tokens");
        assert_eq!(v.windows.as_ref().unwrap().full_attention_blocks, vec![7, 15, 23, 31]);
        assert_eq!(v.patch_values(), 1176);
        let qwen2 = ModelConfig::from_json(FLAT).unwrap();
        assert_eq!(
            (qwen2.arch, qwen2.vision.intermediate_size, qwen2.vision.windows.clone()),
            (Arch::Qwen2Vl, 128, None)
        );
    }

    #[test]
    fn unknown_architectures_and_bad_windows_are_refused() {
        let err = ModelConfig::from_json(&FLAT.replace("qwen2_vl", "llava_next"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("llava_next") && err.contains("qwen2_5_vl"), "{err}");
        let err = ModelConfig::from_json(&QWEN2_5_3B.replace("[7,15,23,31]", "[7,32]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("fullatt_block_indexes"), "{err}");
        let err = ModelConfig::from_json(&QWEN2_5_3B.replace("\"window_size\":112", "\"window_size\":100"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("window_size"), "{err}");
        let err =
            ModelConfig::from_json(&QWEN2_5_3B.replace("\"hidden_act\":\"silu\"", "\"hidden_act\":\"quick_gelu\""))
                .unwrap_err()
                .to_string();
        assert!(err.contains("hidden_act"), "{err}");
    }

    #[test]
    fn inconsistent_configs_are_refused_with_the_field_named() {
        let bad = FLAT.replace("[2,3,3]", "[2,3,4]");
        let err = ModelConfig::from_json(&bad).unwrap_err().to_string();
        assert!(err.contains("mrope_section"), "{err}");
        let bad = FLAT.replace("\"num_key_value_heads\":2", "\"num_key_value_heads\":3");
        assert!(ModelConfig::from_json(&bad)
            .unwrap_err()
            .to_string()
            .contains("num_key_value_heads"));
        let bad = FLAT.replace("\"hidden_size\":64}}", "\"hidden_size\":32}}");
        assert!(ModelConfig::from_json(&bad)
            .unwrap_err()
            .to_string()
            .contains("vision_config.hidden_size"));
        let bad = FLAT.replace("\"intermediate_size\":128,", "");
        assert!(ModelConfig::from_json(&bad)
            .unwrap_err()
            .to_string()
            .contains("intermediate_size"));
    }
}
