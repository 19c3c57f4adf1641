//! `config.json` of a Qwen3-VL snapshot (`model_type` `qwen3_vl`): the text fields under `text_config` (or
//! at the top level), `rope_scaling` (4.57) or `rope_parameters` (5.x), and the vision tower's own names
//! (`hidden_size` is its width, `out_hidden_size` the merger's).

use serde_json::Value;

use crate::config::{
    mrope_section, special_tokens, usize_field, usize_or, Arch, ModelConfig, TextConfig, VisionConfig,
};
use crate::error::{ModelError, Result};

/// transformers' defaults for what a Qwen3-VL config may leave out.
const DEFAULT_ROPE_THETA: f64 = 500_000.0;
const DEFAULT_MROPE_SECTION: [usize; 3] = [24, 20, 20];
const VISION_ROPE_THETA: f64 = 10_000.0;

pub fn from_value(root: &Value) -> Result<ModelConfig> {
    let text_section = root.get("text_config").filter(|v| v.is_object());
    let text_field = |key: &str| text_section.and_then(|t| t.get(key)).or_else(|| root.get(key));
    let rope = text_field("rope_parameters").or_else(|| text_field("rope_scaling"));
    let hidden_size = usize_field(text_field("hidden_size"), "text_config.hidden_size")?;
    let num_attention_heads = usize_field(text_field("num_attention_heads"), "text_config.num_attention_heads")?;
    if num_attention_heads == 0 {
        return Err(ModelError::Config(
            "text_config.num_attention_heads must be positive".into(),
        ));
    }
    if let Some(false) = rope.and_then(|r| r.get("mrope_interleaved")).and_then(Value::as_bool) {
        return Err(ModelError::Config(
            "rope_scaling.mrope_interleaved is false, but transformers' Qwen3-VL always interleaves the \
             M-RoPE sections; refusing a config whose meaning is ambiguous"
                .into(),
        ));
    }
    if let Some(act) = text_field("hidden_act").and_then(Value::as_str) {
        if act != "silu" {
            return Err(ModelError::Config(format!(
                "text_config.hidden_act is `{act}`; the Qwen3 decoder uses `silu`"
            )));
        }
    }
    let bias = text_field("attention_bias").and_then(Value::as_bool).unwrap_or(false);
    let text = TextConfig {
        hidden_size,
        intermediate_size: usize_field(text_field("intermediate_size"), "text_config.intermediate_size")?,
        num_hidden_layers: usize_field(text_field("num_hidden_layers"), "text_config.num_hidden_layers")?,
        num_attention_heads,
        num_key_value_heads: usize_or(
            text_field("num_key_value_heads"),
            "text_config.num_key_value_heads",
            num_attention_heads,
        )?,
        head_dim: usize_or(
            text_field("head_dim"),
            "text_config.head_dim",
            hidden_size / num_attention_heads,
        )?,
        rms_norm_eps: text_field("rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6),
        rope_theta: text_field("rope_theta")
            .or_else(|| rope.and_then(|r| r.get("rope_theta")))
            .and_then(Value::as_f64)
            .unwrap_or(DEFAULT_ROPE_THETA),
        mrope_section: mrope_section(rope)?.unwrap_or(DEFAULT_MROPE_SECTION),
        mrope_interleaved: true,
        qkv_bias: bias,
        o_bias: bias,
        qk_norm: true,
        vocab_size: usize_or(text_field("vocab_size"), "text_config.vocab_size", 151_936)?,
    };

    let vision_section = root
        .get("vision_config")
        .filter(|v| v.is_object())
        .ok_or_else(|| ModelError::Config("missing object `vision_config`".into()))?;
    let field = |key: &str| vision_section.get(key);
    if let Some(act) = field("hidden_act").and_then(Value::as_str) {
        if act != "gelu_pytorch_tanh" {
            return Err(ModelError::Config(format!(
                "vision_config.hidden_act is `{act}`; the qwen3_vl vision tower uses `gelu_pytorch_tanh`"
            )));
        }
    }
    let theta = field("rope_parameters")
        .and_then(|r| r.get("rope_theta"))
        .and_then(Value::as_f64)
        .unwrap_or(VISION_ROPE_THETA);
    if theta != VISION_ROPE_THETA {
        return Err(ModelError::Config(format!(
            "vision_config.rope_parameters.rope_theta is {theta}; only {VISION_ROPE_THETA} is supported"
        )));
    }
    let deepstack = match field("deepstack_visual_indexes") {
        None => vec![8, 16, 24],
        Some(list) => list
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_u64().map(|n| n as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| {
                ModelError::Config(format!(
                    "vision_config.deepstack_visual_indexes must be integers, found {list}"
                ))
            })?,
    };
    let vision = VisionConfig {
        depth: usize_or(field("depth"), "vision_config.depth", 27)?,
        embed_dim: usize_or(field("hidden_size"), "vision_config.hidden_size", 1152)?,
        num_heads: usize_or(field("num_heads"), "vision_config.num_heads", 16)?,
        intermediate_size: usize_or(field("intermediate_size"), "vision_config.intermediate_size", 4304)?,
        patch_size: usize_or(field("patch_size"), "vision_config.patch_size", 16)?,
        spatial_merge_size: usize_or(field("spatial_merge_size"), "vision_config.spatial_merge_size", 2)?,
        temporal_patch_size: usize_or(field("temporal_patch_size"), "vision_config.temporal_patch_size", 2)?,
        in_channels: usize_or(field("in_channels"), "vision_config.in_channels", 3)?,
        hidden_size: usize_or(field("out_hidden_size"), "vision_config.out_hidden_size", 3584)?,
        windows: None,
        num_position_embeddings: usize_or(
            field("num_position_embeddings"),
            "vision_config.num_position_embeddings",
            2304,
        )?,
        deepstack_visual_indexes: deepstack,
    };
    let side = grid_side(vision.num_position_embeddings);
    if side * side != vision.num_position_embeddings || side < 2 {
        return Err(ModelError::Config(format!(
            "vision_config.num_position_embeddings {} must be the square of a side of at least 2",
            vision.num_position_embeddings
        )));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(&bad) = vision
        .deepstack_visual_indexes
        .iter()
        .find(|&&i| i >= vision.depth || !seen.insert(i))
    {
        return Err(ModelError::Config(format!(
            "vision_config.deepstack_visual_indexes {:?}: block {bad} is repeated or beyond depth {}",
            vision.deepstack_visual_indexes, vision.depth
        )));
    }
    Ok(ModelConfig {
        arch: Arch::Qwen3Vl,
        text,
        vision,
        tokens: special_tokens(root)?,
    })
}

/// Side of the learned position grid: `int(num_position_embeddings ** 0.5)` as transformers takes it.
pub fn grid_side(num_position_embeddings: usize) -> usize {
    (num_position_embeddings as f64).sqrt() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Qwen3-VL-4B-Instruct's published config.json (transformers 4.57 layout).
    const QWEN3_VL_4B: &str = r#"{"architectures":["Qwen3VLForConditionalGeneration"],"image_token_id":151655,
 "model_type":"qwen3_vl","text_config":{"attention_bias":false,"attention_dropout":0.0,"bos_token_id":151643,
 "dtype":"bfloat16","eos_token_id":151645,"head_dim":128,"hidden_act":"silu","hidden_size":2560,
 "initializer_range":0.02,"intermediate_size":9728,"max_position_embeddings":262144,"model_type":"qwen3_vl_text",
 "num_attention_heads":32,"num_hidden_layers":36,"num_key_value_heads":8,"rms_norm_eps":1e-06,
 "rope_scaling":{"mrope_interleaved":true,"mrope_section":[24,20,20],"rope_type":"default"},
 "rope_theta":5000000,"tie_word_embeddings":true,"use_cache":true,"vocab_size":151936},
 "tie_word_embeddings":true,"transformers_version":"4.57.0.dev0","video_token_id":151656,
 "vision_config":{"deepstack_visual_indexes":[5,11,17],"depth":24,"hidden_act":"gelu_pytorch_tanh",
 "hidden_size":1024,"in_channels":3,"initializer_range":0.02,"intermediate_size":4096,"model_type":"qwen3_vl",
 "num_heads":16,"num_position_embeddings":2304,"out_hidden_size":2560,"patch_size":16,"spatial_merge_size":2,
 "temporal_patch_size":2},"vision_end_token_id":151653,"vision_start_token_id":151652}"#;

    #[test]
    fn the_published_4b_config_reads_with_head_dim_from_the_config() {
        let c = ModelConfig::from_json(QWEN3_VL_4B).unwrap();
        assert_eq!(c.arch, Arch::Qwen3Vl);
        assert_eq!(c.text.head_dim(), 128, "not 2560 / 32 = 80");
        assert_eq!(c.text.rope_theta, 5_000_000.0);
        assert_eq!(c.text.mrope_section, [24, 20, 20]);
        assert!(c.text.mrope_interleaved && c.text.qk_norm && !c.text.qkv_bias && !c.text.o_bias);
        assert_eq!(c.vision.embed_dim, 1024);
        assert_eq!(c.vision.hidden_size, 2560);
        assert_eq!(c.vision.patch_values(), 3 * 2 * 16 * 16);
        assert_eq!(c.vision.deepstack_visual_indexes, vec![5, 11, 17]);
        assert_eq!(c.tokens.image, 151655);
    }

    #[test]
    fn the_5x_layout_with_rope_parameters_reads_the_same() {
        let mut v: Value = serde_json::from_str(QWEN3_VL_4B).unwrap();
        let text = v["text_config"].as_object_mut().unwrap();
        let mut rope = text.remove("rope_scaling").unwrap();
        rope["rope_theta"] = text.remove("rope_theta").unwrap();
        text.insert("rope_parameters".into(), rope);
        v["vision_config"]["rope_parameters"] = serde_json::json!({"rope_type": "axial", "rope_theta": 10000.0});
        assert_eq!(
            ModelConfig::from_value(&v).unwrap(),
            ModelConfig::from_json(QWEN3_VL_4B).unwrap()
        );
    }

    #[test]
    fn a_flat_layout_with_the_text_fields_at_the_top_level_reads_the_same() {
        let mut v: Value = serde_json::from_str(QWEN3_VL_4B).unwrap();
        let text = v.as_object_mut().unwrap().remove("text_config").unwrap();
        for (key, value) in text.as_object().unwrap().iter().filter(|(k, _)| *k != "model_type") {
            v[key] = value.clone();
        }
        assert_eq!(
            ModelConfig::from_value(&v).unwrap(),
            ModelConfig::from_json(QWEN3_VL_4B).unwrap()
        );
    }

    #[test]
    fn inconsistent_configs_are_refused() {
        for (from, to, says) in [
            ("[5,11,17]", "[5,11,24]", "deepstack_visual_indexes"),
            (
                "\"mrope_interleaved\":true",
                "\"mrope_interleaved\":false",
                "mrope_interleaved",
            ),
            ("[24,20,20]", "[24,20,21]", "mrope_section"),
            (
                "\"num_position_embeddings\":2304",
                "\"num_position_embeddings\":2300",
                "num_position_embeddings",
            ),
            (
                "\"out_hidden_size\":2560",
                "\"out_hidden_size\":2048",
                "out_hidden_size",
            ),
        ] {
            let err = ModelConfig::from_json(&QWEN3_VL_4B.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{to}: {err}");
        }
    }
}
