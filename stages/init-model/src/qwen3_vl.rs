//! A Qwen3-VL snapshot's `config.json` and `preprocessor_config.json`, as the published models have them:
//! `text_config` with `rope_scaling` and `rope_theta` (transformers 4.57, `--layout original`) or with
//! `rope_parameters` (5.x, `--layout nested`); tensors are named `model.visual.*` / `model.language_model.*`
//! in both, as published.

use crate::config::TextShape;
use crate::Args;

/// Qwen3-VL's split of the rotary half-dimension (24, 20, 20 of 64) scaled to a head of `head_dim`.
pub fn default_mrope_section(head_dim: usize) -> [usize; 3] {
    let half = head_dim / 2;
    let t = half * 3 / 8;
    let h = (half - t) / 2;
    [t, h, half - t - h]
}

impl Args {
    pub(crate) fn qwen3_head_dim(&self) -> usize {
        self.head_dim.unwrap_or(2 * self.hidden / self.heads.max(1))
    }
}

pub fn config_json(args: &Args, text: &TextShape, mrope_section: [usize; 3]) -> serde_json::Value {
    let deepstack: Vec<usize> = args
        .deepstack
        .clone()
        .unwrap_or_else(|| (0..args.vision_depth).collect());
    let mut text_json = serde_json::json!({
        "model_type": "qwen3_vl_text", "hidden_size": text.hidden, "intermediate_size": text.intermediate,
        "num_hidden_layers": text.layers, "num_attention_heads": text.heads, "num_key_value_heads": text.kv_heads,
        "head_dim": args.qwen3_head_dim(), "hidden_act": "silu", "attention_bias": false,
        "rms_norm_eps": text.rms_norm_eps, "vocab_size": text.vocab, "max_position_embeddings": 262144,
        "tie_word_embeddings": text.tied, "bos_token_id": 151643, "eos_token_id": 151645,
    });
    let rope = serde_json::json!({"rope_type": "default", "mrope_section": mrope_section, "mrope_interleaved": true});
    match args.layout {
        crate::Layout::Original => {
            text_json["rope_scaling"] = rope;
            text_json["rope_theta"] = text.rope_theta.into();
        }
        crate::Layout::Nested => {
            let mut rope = rope;
            rope["rope_theta"] = text.rope_theta.into();
            text_json["rope_parameters"] = rope;
        }
    }
    serde_json::json!({
        "architectures": ["Qwen3VLForConditionalGeneration"], "model_type": "qwen3_vl",
        "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
        "vision_end_token_id": 151653, "tie_word_embeddings": text.tied, "torch_dtype": args.dtype_name(),
        "text_config": text_json,
        "vision_config": {
            "model_type": "qwen3_vl_vision", "depth": args.vision_depth, "hidden_size": args.vision_dim,
            "num_heads": args.vision_heads, "intermediate_size": args.vision_intermediate.unwrap_or(4 * args.vision_dim),
            "hidden_act": "gelu_pytorch_tanh", "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
            "in_channels": 3, "out_hidden_size": text.hidden, "num_position_embeddings": args.vision_positions,
            "deepstack_visual_indexes": deepstack,
        },
    })
}

/// The processor settings of the published Qwen3-VL snapshots (patch 16, merge 2, mean and std 0.5, limits
/// in `size`), with small limits for the tiny model.
pub fn preprocessor_json(args: &Args) -> serde_json::Value {
    serde_json::json!({
        "image_processor_type": "Qwen2VLImageProcessorFast", "processor_class": "Qwen3VLProcessor",
        "size": {"shortest_edge": args.min_pixels.unwrap_or(64 * 64), "longest_edge": args.max_pixels.unwrap_or(32 * 32 * 16)},
        "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "do_resize": true, "do_rescale": true, "rescale_factor": 1.0 / 255.0, "do_normalize": true,
        "do_convert_rgb": true, "resample": 3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mrope_section_scales_qwen3_vl_split() {
        assert_eq!(default_mrope_section(128), [24, 20, 20]);
        assert_eq!(default_mrope_section(32), [6, 5, 5]);
    }
}
