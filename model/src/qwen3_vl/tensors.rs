//! The vision tensors of a Qwen3-VL checkpoint, by original-layout name, in the order transformers
//! declares the modules.

use crate::config::ModelConfig;
use crate::tensors::{Specs, TensorKind};

pub fn vision(cfg: &ModelConfig, specs: &mut Specs) {
    let v = &cfg.vision;
    let e = v.embed_dim;
    specs.add(
        "visual.patch_embed.proj.weight".into(),
        vec![e, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size],
        TensorKind::Weight,
    );
    specs.add("visual.patch_embed.proj.bias".into(), vec![e], TensorKind::Bias);
    specs.add(
        "visual.pos_embed.weight".into(),
        vec![v.num_position_embeddings, e],
        TensorKind::Embedding,
    );
    for i in 0..v.depth {
        let p = format!("visual.blocks.{i}");
        specs.layer_norm(&format!("{p}.norm1"), e);
        specs.layer_norm(&format!("{p}.norm2"), e);
        specs.linear(&format!("{p}.attn.qkv"), 3 * e, e);
        specs.linear(&format!("{p}.attn.proj"), e, e);
        specs.linear(&format!("{p}.mlp.linear_fc1"), v.intermediate_size, e);
        specs.linear(&format!("{p}.mlp.linear_fc2"), e, v.intermediate_size);
    }
    let grouped = e * v.merge_unit();
    let merger = |specs: &mut Specs, prefix: &str, norm: usize| {
        specs.layer_norm(&format!("{prefix}.norm"), norm);
        specs.linear(&format!("{prefix}.linear_fc1"), grouped, grouped);
        specs.linear(&format!("{prefix}.linear_fc2"), v.hidden_size, grouped);
    };
    merger(specs, "visual.merger", e);
    for i in 0..v.deepstack_visual_indexes.len() {
        merger(specs, &format!("visual.deepstack_merger_list.{i}"), grouped);
    }
}
