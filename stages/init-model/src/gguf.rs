//! The text half of a snapshot from a Qwen2-architecture GGUF decoder (llama.cpp's format), dequantised.
//!
//! llama.cpp's converter stores Qwen2 tensors unpermuted (unlike LLaMA's q/k), so a dequantised GGUF
//! tensor is the Hugging Face tensor; candle's reader lists dimensions slowest first, as PyTorch does.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};

use crate::config::TextShape;

/// What a GGUF file gave: the decoder's shape and its tensors under original-layout checkpoint names
/// (`model.*`, plus `lm_head.weight` when the file has an untied `output.weight`).
pub struct GgufText {
    pub shape: TextShape,
    pub tensors: HashMap<String, Tensor>,
    /// The token strings by id (`tokenizer.ggml.tokens`), when the file has them.
    pub tokens: Option<Vec<String>>,
}

/// GGUF names of a Qwen2 decoder's per-layer modules and the Hugging Face modules they are.
const LAYER_PARTS: [(&str, &str); 9] = [
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("attn_norm", "input_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
    ("ffn_norm", "post_attention_layernorm"),
];

/// GGUF names of the tensors outside the layers and their checkpoint names.
const GLOBAL: [(&str, &str); 3] = [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// The checkpoint name of a GGUF tensor name, or None for a name a Qwen2 decoder does not have.
pub fn checkpoint_name(gguf: &str) -> Option<String> {
    if let Some((_, hf)) = GLOBAL.iter().find(|(g, _)| *g == gguf) {
        return Some(hf.to_string());
    }
    let (layer, rest) = gguf.strip_prefix("blk.")?.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, suffix) = rest.rsplit_once('.')?;
    let (_, module) = LAYER_PARTS.iter().find(|(g, _)| *g == part)?;
    matches!(suffix, "weight" | "bias").then(|| format!("model.layers.{layer}.{module}.{suffix}"))
}

/// The GGUF name of a checkpoint name (the inverse of [`checkpoint_name`]).
pub fn gguf_name(checkpoint: &str) -> Option<String> {
    if let Some((g, _)) = GLOBAL.iter().find(|(_, hf)| *hf == checkpoint) {
        return Some(g.to_string());
    }
    let (layer, rest) = checkpoint.strip_prefix("model.layers.")?.split_once('.')?;
    let (module, suffix) = rest.rsplit_once('.')?;
    let (part, _) = LAYER_PARTS.iter().find(|(_, hf)| *hf == module)?;
    Some(format!("blk.{layer}.{part}.{suffix}"))
}

pub fn read(path: &Path) -> Result<GgufText> {
    let file = File::open(path).with_context(|| format!("--text-from-gguf {}: cannot open", path.display()))?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader)
        .map_err(|e| anyhow::anyhow!("--text-from-gguf {}: not a readable GGUF file: {e}", path.display()))?;
    let meta = Meta {
        content: &content,
        path,
    };
    let arch = meta.string("general.architecture")?;
    if arch != "qwen2" {
        bail!(
            "--text-from-gguf {}: general.architecture is `{arch}`; only Qwen2-architecture decoders (`qwen2`) \
             have the text half of Qwen2-VL",
            path.display()
        );
    }
    if let Ok(kind) = meta.string("qwen2.rope.scaling.type") {
        if kind != "none" {
            bail!(
                "--text-from-gguf {}: qwen2.rope.scaling.type is `{kind}`; Qwen2-VL's M-RoPE has no rope scaling",
                path.display()
            );
        }
    }
    let embed = content
        .tensor_infos
        .get("token_embd.weight")
        .with_context(|| format!("--text-from-gguf {}: no token_embd.weight tensor", path.display()))?;
    let [vocab, _] = embed.shape.dims() else {
        bail!(
            "--text-from-gguf {}: token_embd.weight has shape {:?}, expected [vocab, hidden]",
            path.display(),
            embed.shape.dims()
        );
    };
    let shape = TextShape {
        hidden: meta.usize("qwen2.embedding_length")?,
        intermediate: meta.usize("qwen2.feed_forward_length")?,
        layers: meta.usize("qwen2.block_count")?,
        heads: meta.usize("qwen2.attention.head_count")?,
        kv_heads: meta.usize("qwen2.attention.head_count_kv")?,
        vocab: *vocab,
        rms_norm_eps: shortest(meta.f32("qwen2.attention.layer_norm_rms_epsilon")?),
        rope_theta: shortest(meta.f32("qwen2.rope.freq_base")?),
        tied: !content.tensor_infos.contains_key("output.weight"),
    };
    check_shape(&shape, path)?;
    let tokens = meta.strings("tokenizer.ggml.tokens");

    let mut tensors = HashMap::new();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let Some(target) = checkpoint_name(name) else {
            bail!(
                "--text-from-gguf {}: tensor `{name}` is not part of a Qwen2 decoder (expected token_embd, \
                 blk.N.attn_{{q,k,v,output,norm}}, blk.N.ffn_{{gate,up,down,norm}}, output_norm, output)",
                path.display()
            );
        };
        let tensor = content
            .tensor(&mut reader, name, &Device::Cpu)
            .and_then(|q| q.dequantize(&Device::Cpu))
            .map_err(|e| anyhow::anyhow!("--text-from-gguf {}: tensor `{name}`: {e}", path.display()))?;
        let largest = tensor.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        if !largest.is_finite() {
            bail!(
                "--text-from-gguf {}: tensor `{name}` holds non-finite values",
                path.display()
            );
        }
        tensors.insert(target, tensor);
    }
    Ok(GgufText { shape, tensors, tokens })
}

fn check_shape(shape: &TextShape, path: &Path) -> Result<()> {
    let fail = |what: String| bail!("--text-from-gguf {}: {what}", path.display());
    if shape.heads == 0 || shape.kv_heads == 0 || shape.layers == 0 || shape.hidden == 0 {
        return fail(format!("a zero in the decoder's shape: {shape:?}"));
    }
    if shape.hidden % shape.heads != 0 || shape.head_dim() % 2 != 0 {
        return fail(format!(
            "width {} over {} heads does not give an even head size",
            shape.hidden, shape.heads
        ));
    }
    if shape.heads % shape.kv_heads != 0 {
        return fail(format!(
            "{} attention heads are not a multiple of {} key/value heads",
            shape.heads, shape.kv_heads
        ));
    }
    Ok(())
}

/// The shortest decimal that reads back as the same f32 (1e-6 rather than 9.999999974752427e-7), so
/// config.json says what the model was trained with.
fn shortest(value: f32) -> f64 {
    value.to_string().parse().expect("an f32 prints as a number")
}

struct Meta<'a> {
    content: &'a Content,
    path: &'a Path,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Result<&Value> {
        self.content.metadata.get(key).with_context(|| {
            format!(
                "--text-from-gguf {}: metadata key `{key}` is missing",
                self.path.display()
            )
        })
    }

    fn string(&self, key: &str) -> Result<String> {
        let value = self.get(key)?;
        value.to_string().cloned().map_err(|_| self.wrong(key, value))
    }

    fn usize(&self, key: &str) -> Result<usize> {
        let value = self.get(key)?;
        value.to_u64().map(|v| v as usize).map_err(|_| self.wrong(key, value))
    }

    fn f32(&self, key: &str) -> Result<f32> {
        let value = self.get(key)?;
        value
            .to_f32()
            .or_else(|_| value.to_f64().map(|v| v as f32))
            .map_err(|_| self.wrong(key, value))
    }

    fn strings(&self, key: &str) -> Option<Vec<String>> {
        let values = self.content.metadata.get(key)?.to_vec().ok()?;
        values.iter().map(|v| v.to_string().ok().cloned()).collect()
    }

    fn wrong(&self, key: &str, value: &Value) -> anyhow::Error {
        anyhow::anyhow!(
            "--text-from-gguf {}: metadata key `{key}` has type {:?}",
            self.path.display(),
            value.value_type()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{checkpoint_name, gguf_name};

    #[test]
    fn gguf_names_map_to_hugging_face_names() {
        for (gguf, hf) in [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            ("blk.0.attn_q.bias", "model.layers.0.self_attn.q_proj.bias"),
            ("blk.23.attn_output.weight", "model.layers.23.self_attn.o_proj.weight"),
            ("blk.3.attn_norm.weight", "model.layers.3.input_layernorm.weight"),
            (
                "blk.3.ffn_norm.weight",
                "model.layers.3.post_attention_layernorm.weight",
            ),
            ("blk.7.ffn_down.weight", "model.layers.7.mlp.down_proj.weight"),
        ] {
            assert_eq!(checkpoint_name(gguf).as_deref(), Some(hf), "{gguf}");
            assert_eq!(gguf_name(hf).as_deref(), Some(gguf), "{hf}");
        }
        for other in [
            "rope_freqs.weight",
            "blk.x.attn_q.weight",
            "blk.0.attn_qkv.weight",
            "blk.0.attn_q.scale",
        ] {
            assert_eq!(checkpoint_name(other), None, "{other}");
        }
    }
}
