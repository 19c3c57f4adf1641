//! Every tensor a Qwen2-VL, Qwen2.5-VL or Qwen3-VL checkpoint holds, by original-layout name, with its shape.

use crate::config::{Arch, ModelConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    /// A matrix or the patch-embedding kernel.
    Weight,
    /// A bias vector.
    Bias,
    /// The scale vector of a LayerNorm or RMSNorm.
    NormScale,
    /// The shift vector of a LayerNorm.
    NormShift,
    /// The token embedding table.
    Embedding,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: TensorKind,
}

/// Collects [`TensorSpec`]s in order.
#[derive(Default)]
pub struct Specs(pub Vec<TensorSpec>);

impl Specs {
    pub fn add(&mut self, name: String, shape: Vec<usize>, kind: TensorKind) {
        self.0.push(TensorSpec { name, shape, kind });
    }

    /// `{prefix}.weight` `[out, in]` and `{prefix}.bias` `[out]`.
    pub fn linear(&mut self, prefix: &str, out: usize, inp: usize) {
        self.add(format!("{prefix}.weight"), vec![out, inp], TensorKind::Weight);
        self.add(format!("{prefix}.bias"), vec![out], TensorKind::Bias);
    }

    /// A LayerNorm's scale and shift of width `dim`.
    pub fn layer_norm(&mut self, prefix: &str, dim: usize) {
        self.add(format!("{prefix}.weight"), vec![dim], TensorKind::NormScale);
        self.add(format!("{prefix}.bias"), vec![dim], TensorKind::NormShift);
    }
}

pub fn checkpoint_tensors(cfg: &ModelConfig) -> Vec<TensorSpec> {
    let mut specs = Specs::default();
    match cfg.arch {
        Arch::Qwen2Vl | Arch::Qwen2_5Vl => qwen2_vision(cfg, &mut specs),
        Arch::Qwen3Vl => crate::qwen3_vl::tensors::vision(cfg, &mut specs),
    }
    text(cfg, &mut specs);
    specs.0
}

/// Qwen2-VL's and Qwen2.5-VL's vision tower.
fn qwen2_vision(cfg: &ModelConfig, specs: &mut Specs) {
    let mut add = |name: String, shape: Vec<usize>, kind| specs.add(name, shape, kind);
    let v = &cfg.vision;
    let e = v.embed_dim;
    add(
        "visual.patch_embed.proj.weight".into(),
        vec![e, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size],
        TensorKind::Weight,
    );
    let m = v.intermediate_size;
    let (norm_shift, mlp) = match cfg.arch {
        Arch::Qwen2Vl => (true, vec![("mlp.fc1", m, e), ("mlp.fc2", e, m)]),
        Arch::Qwen2_5Vl => (
            false,
            vec![("mlp.gate_proj", m, e), ("mlp.up_proj", m, e), ("mlp.down_proj", e, m)],
        ),
        Arch::Qwen3Vl => unreachable!("qwen3_vl::tensors lists Qwen3-VL's vision tensors"),
    };
    let add_norm = |add: &mut dyn FnMut(String, Vec<usize>, TensorKind), name: String| {
        add(format!("{name}.weight"), vec![e], TensorKind::NormScale);
        if norm_shift {
            add(format!("{name}.bias"), vec![e], TensorKind::NormShift);
        }
    };
    for i in 0..v.depth {
        let p = format!("visual.blocks.{i}");
        for norm in ["norm1", "norm2"] {
            add_norm(&mut add, format!("{p}.{norm}"));
        }
        for &(name, out, inp) in [("attn.qkv", 3 * e, e), ("attn.proj", e, e)].iter().chain(&mlp) {
            add(format!("{p}.{name}.weight"), vec![out, inp], TensorKind::Weight);
            add(format!("{p}.{name}.bias"), vec![out], TensorKind::Bias);
        }
    }
    let merged = e * v.merge_unit();
    add_norm(&mut add, "visual.merger.ln_q".into());
    for (name, out, inp) in [("mlp.0", merged, merged), ("mlp.2", v.hidden_size, merged)] {
        add(
            format!("visual.merger.{name}.weight"),
            vec![out, inp],
            TensorKind::Weight,
        );
        add(format!("visual.merger.{name}.bias"), vec![out], TensorKind::Bias);
    }
}

fn text(cfg: &ModelConfig, specs: &mut Specs) {
    let mut add = |name: String, shape: Vec<usize>, kind| specs.add(name, shape, kind);
    let t = &cfg.text;
    let (h, hd) = (t.hidden_size, t.head_dim());
    add(
        "model.embed_tokens.weight".into(),
        vec![t.vocab_size, h],
        TensorKind::Embedding,
    );
    for i in 0..t.num_hidden_layers {
        let p = format!("model.layers.{i}");
        for (name, out) in [
            ("q_proj", t.num_attention_heads * hd),
            ("k_proj", t.num_key_value_heads * hd),
            ("v_proj", t.num_key_value_heads * hd),
        ] {
            add(format!("{p}.self_attn.{name}.weight"), vec![out, h], TensorKind::Weight);
            if t.qkv_bias {
                add(format!("{p}.self_attn.{name}.bias"), vec![out], TensorKind::Bias);
            }
        }
        add(
            format!("{p}.self_attn.o_proj.weight"),
            vec![h, t.num_attention_heads * hd],
            TensorKind::Weight,
        );
        if t.o_bias {
            add(format!("{p}.self_attn.o_proj.bias"), vec![h], TensorKind::Bias);
        }
        if t.qk_norm {
            add(format!("{p}.self_attn.q_norm.weight"), vec![hd], TensorKind::NormScale);
            add(format!("{p}.self_attn.k_norm.weight"), vec![hd], TensorKind::NormScale);
        }
        add(
            format!("{p}.mlp.gate_proj.weight"),
            vec![t.intermediate_size, h],
            TensorKind::Weight,
        );
        add(
            format!("{p}.mlp.up_proj.weight"),
            vec![t.intermediate_size, h],
            TensorKind::Weight,
        );
        add(
            format!("{p}.mlp.down_proj.weight"),
            vec![h, t.intermediate_size],
            TensorKind::Weight,
        );
        add(format!("{p}.input_layernorm.weight"), vec![h], TensorKind::NormScale);
        add(
            format!("{p}.post_attention_layernorm.weight"),
            vec![h],
            TensorKind::NormScale,
        );
    }
    add("model.norm.weight".into(), vec![h], TensorKind::NormScale);
}

/// The name a tensor is stored under in checkpoints saved by newer transformers.
pub fn nested_name(original: &str) -> String {
    if let Some(rest) = original.strip_prefix("visual.") {
        format!("model.visual.{rest}")
    } else if let Some(rest) = original.strip_prefix("model.") {
        format!("model.language_model.{rest}")
    } else {
        original.to_string()
    }
}
