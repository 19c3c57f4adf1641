//! The snapshot's `config.json` and `preprocessor_config.json`.

use crate::{ArchArg, Args, Layout};

/// The text decoder's shape and constants: from the flags for a random model, or from a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct TextShape {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub vocab: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Whether the output projection is the token embedding (no `lm_head.weight` in the snapshot).
    pub tied: bool,
}

impl TextShape {
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// Qwen2-VL's split of the rotary half-dimension (16, 24, 24 of 64) scaled to this head size.
    pub fn default_mrope_section(&self) -> [usize; 3] {
        let half = self.head_dim() / 2;
        let t = half / 4;
        let h = (half - t) / 2;
        [t, h, half - t - h]
    }
}

impl Args {
    /// The text shape the flags ask for (the random-weight model).
    pub fn flag_text_shape(&self) -> TextShape {
        TextShape {
            hidden: self.hidden,
            intermediate: self.intermediate,
            layers: self.layers.unwrap_or(match self.arch {
                ArchArg::Qwen2Vl | ArchArg::Qwen2_5Vl => 2,
                ArchArg::Qwen3Vl => 3,
            }),
            heads: self.heads,
            kv_heads: self.kv_heads,
            vocab: self.vocab,
            rms_norm_eps: 1e-6,
            rope_theta: match self.arch {
                ArchArg::Qwen2Vl | ArchArg::Qwen2_5Vl => 1_000_000.0,
                ArchArg::Qwen3Vl => 5_000_000.0,
            },
            tied: true,
        }
    }

    pub fn config_json(&self, text: &TextShape, mrope_section: [usize; 3]) -> serde_json::Value {
        if self.arch == ArchArg::Qwen3Vl {
            return crate::qwen3_vl::config_json(self, text, mrope_section);
        }
        let [t, h, w] = mrope_section;
        let arch = self.arch.arch();
        let vision = self.vision_json(text.hidden);
        let text_json = serde_json::json!({
            "hidden_size": text.hidden, "intermediate_size": text.intermediate, "num_hidden_layers": text.layers,
            "num_attention_heads": text.heads, "num_key_value_heads": text.kv_heads,
            "rms_norm_eps": text.rms_norm_eps, "vocab_size": text.vocab, "hidden_act": "silu",
            "max_position_embeddings": 32768,
        });
        let ids = serde_json::json!({
            "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
            "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
            "video_token_id": 151656,
        });
        let mut root = serde_json::json!({
            "architectures": [arch.class_name()], "model_type": arch.model_type(),
            "tie_word_embeddings": text.tied, "torch_dtype": self.dtype_name(), "vision_config": vision,
        });
        let object = root.as_object_mut().expect("object");
        object.extend(ids.as_object().expect("object").clone());
        match self.layout {
            Layout::Original => {
                object.extend(text_json.as_object().expect("object").clone());
                object.insert("rope_theta".into(), text.rope_theta.into());
                object.insert(
                    "rope_scaling".into(),
                    serde_json::json!({"type": "mrope", "mrope_section": [t, h, w]}),
                );
            }
            Layout::Nested => {
                let mut text_json = text_json;
                text_json["rope_parameters"] = serde_json::json!({"rope_type": "default", "rope_theta": text.rope_theta, "mrope_section": [t, h, w]});
                text_json["model_type"] = format!("{}_text", arch.model_type()).into();
                object.insert("text_config".into(), text_json);
            }
        }
        root
    }

    /// `vision_config` with each architecture's field names (see saha_model::config).
    fn vision_json(&self, text_hidden: usize) -> serde_json::Value {
        let intermediate = self.vision_intermediate.unwrap_or(4 * self.vision_dim);
        let mut vision = serde_json::json!({
            "depth": self.vision_depth, "num_heads": self.vision_heads, "patch_size": 14, "spatial_merge_size": 2,
            "temporal_patch_size": 2, "in_channels": 3,
        });
        let fields = match self.arch {
            crate::ArchArg::Qwen2Vl => {
                // Qwen2-VL states the MLP width as a ratio (an integer where it is one).
                let ratio: serde_json::Value = if intermediate % self.vision_dim == 0 {
                    (intermediate / self.vision_dim).into()
                } else {
                    (intermediate as f64 / self.vision_dim as f64).into()
                };
                serde_json::json!({"embed_dim": self.vision_dim, "mlp_ratio": ratio, "hidden_act": "quick_gelu",
                    "hidden_size": text_hidden})
            }
            crate::ArchArg::Qwen3Vl => unreachable!("qwen3_vl::config_json writes Qwen3-VL's config"),
            crate::ArchArg::Qwen2_5Vl => {
                let every = self.vision_depth.min(8);
                let full: Vec<usize> = (0..self.vision_depth).filter(|i| (i + 1) % every == 0).collect();
                serde_json::json!({"hidden_size": self.vision_dim, "intermediate_size": intermediate,
                    "out_hidden_size": text_hidden, "hidden_act": "silu", "window_size": 112,
                    "fullatt_block_indexes": full, "tokens_per_second": 2})
            }
        };
        let object = vision.as_object_mut().expect("object");
        object.extend(fields.as_object().expect("object").clone());
        vision
    }

    pub fn preprocessor_json(&self) -> serde_json::Value {
        if self.arch == ArchArg::Qwen3Vl {
            return crate::qwen3_vl::preprocessor_json(self);
        }
        serde_json::json!({
            "image_processor_type": "Qwen2VLImageProcessor", "min_pixels": self.min_pixels.unwrap_or(3136),
            "max_pixels": self.max_pixels.unwrap_or(28 * 28 * 16), "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
            "do_resize": true, "do_rescale": true, "rescale_factor": 1.0 / 255.0, "do_normalize": true,
            "do_convert_rgb": true, "resample": 3,
        })
    }

    pub(crate) fn dtype_name(&self) -> &'static str {
        match self.dtype {
            crate::StoredDtype::F32 => "float32",
            crate::StoredDtype::Bf16 => "bfloat16",
            crate::StoredDtype::F16 => "float16",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mrope_section_scales_qwen2_vl_split() {
        let mut shape = TextShape {
            hidden: 1536,
            intermediate: 8960,
            layers: 28,
            heads: 12,
            kv_heads: 2,
            vocab: 151936,
            rms_norm_eps: 1e-6,
            rope_theta: 1e6,
            tied: true,
        };
        assert_eq!(shape.default_mrope_section(), [16, 24, 24], "Qwen2-VL-2B, head_dim 128");
        shape.hidden = 896;
        shape.heads = 14;
        assert_eq!(shape.default_mrope_section(), [8, 12, 12], "head_dim 64");
        shape.hidden = 64;
        shape.heads = 4;
        assert_eq!(shape.default_mrope_section().iter().sum::<usize>(), 8, "head_dim 16");
    }
}
