//! `config.json` of a Qwen2-VL or Qwen3-VL snapshot, in the flat original layout or the newer nested one
//! (`text_config`, `rope_parameters`). The architecture comes from `model_type`.

use serde_json::Value;

use crate::error::{ModelError, Result};

/// Which published model family a snapshot belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arch {
    /// `qwen2_vl` (also the default when `model_type` is absent).
    #[default]
    Qwen2Vl,
    /// `qwen3_vl` (the dense models; Qwen3-VL-Embedding is one).
    Qwen3Vl,
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
    /// Bias on the q, k and v projections (Qwen2) and on the output projection.
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

/// The vision MLP's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionAct {
    /// CLIP's `x * sigmoid(1.702 x)` (Qwen2-VL).
    QuickGelu,
    /// `gelu_pytorch_tanh` (Qwen3-VL).
    GeluTanh,
    /// The exact `gelu`.
    Gelu,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub depth: usize,
    pub embed_dim: usize,
    pub num_heads: usize,
    /// Width of each block's MLP.
    pub intermediate_size: usize,
    pub hidden_act: VisionAct,
    pub patch_size: usize,
    pub spatial_merge_size: usize,
    pub temporal_patch_size: usize,
    pub in_channels: usize,
    /// Width of the merger's output, which must equal the text hidden size.
    pub hidden_size: usize,
    /// Qwen3-VL: rows of the learned position-embedding table (a square grid), 0 where there is none.
    pub num_position_embeddings: usize,
    /// Qwen3-VL: the blocks whose outputs, merged, are added to the first text layers (DeepStack).
    pub deepstack_visual_indexes: Vec<usize>,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }
    pub fn mlp_dim(&self) -> usize {
        self.intermediate_size
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
        let config = match root.get("model_type").and_then(Value::as_str) {
            Some("qwen3_vl") => crate::qwen3_vl::config::from_value(root)?,
            Some("qwen2_vl") | None => Self::qwen2_vl(root)?,
            Some(other) => {
                return Err(ModelError::Config(format!(
                    "model_type `{other}` is not supported (qwen2_vl, qwen3_vl)"
                )))
            }
        };
        config.validate()?;
        Ok(config)
    }

    fn qwen2_vl(root: &Value) -> Result<Self> {
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
        let vision_field = |key: &str| vision_section.get(key);
        let embed_dim = usize_field(vision_field("embed_dim"), "vision_config.embed_dim")?;
        let mlp_ratio = vision_field("mlp_ratio").and_then(Value::as_f64).unwrap_or(4.0);
        let vision = VisionConfig {
            depth: usize_field(vision_field("depth"), "vision_config.depth")?,
            embed_dim,
            num_heads: usize_field(vision_field("num_heads"), "vision_config.num_heads")?,
            intermediate_size: (embed_dim as f64 * mlp_ratio) as usize,
            hidden_act: VisionAct::QuickGelu,
            patch_size: usize_or(vision_field("patch_size"), "vision_config.patch_size", 14)?,
            spatial_merge_size: usize_or(
                vision_field("spatial_merge_size"),
                "vision_config.spatial_merge_size",
                2,
            )?,
            temporal_patch_size: usize_or(
                vision_field("temporal_patch_size"),
                "vision_config.temporal_patch_size",
                2,
            )?,
            in_channels: usize_or(vision_field("in_channels"), "vision_config.in_channels", 3)?,
            hidden_size: usize_or(
                vision_field("hidden_size"),
                "vision_config.hidden_size",
                text.hidden_size,
            )?,
            num_position_embeddings: 0,
            deepstack_visual_indexes: Vec::new(),
        };
        if let Some(act) = vision_field("hidden_act").and_then(Value::as_str) {
            if act != "quick_gelu" {
                return Err(ModelError::Config(format!(
                    "vision_config.hidden_act is `{act}`; Qwen2-VL's vision tower uses `quick_gelu`"
                )));
            }
        }
        Ok(ModelConfig {
            arch: Arch::Qwen2Vl,
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
        if v.hidden_size != t.hidden_size {
            return fail(format!(
                "vision_config.hidden_size (the merger's output; out_hidden_size in Qwen3-VL) {} differs from the \
                 text hidden_size {}",
                v.hidden_size, t.hidden_size
            ));
        }
        Ok(())
    }
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
