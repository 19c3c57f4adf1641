//! The language model: a Qwen2 decoder (GQA, RMSNorm, SwiGLU) with multimodal rotary positions, an
//! explicit causal + padding mask and no KV cache, returning final-norm hidden states. Qwen3-VL's decoder is
//! the same with per-head q/k RMSNorm, no biases, interleaved M-RoPE and DeepStack additions.

use candle_core::{DType, Device, Tensor};

use crate::config::TextConfig;
use crate::error::Result;
use crate::fused;
use crate::layers::{apply_rotary, softmax_f32, Linear, Mode, RmsNorm};
use crate::weights::Weights;

/// Masked attention scores get this instead of -inf, as transformers does, so a fully masked padding row
/// stays finite (uniform weights) instead of turning into NaN that later layers would spread.
pub const MASKED: f32 = f32::MIN;

/// Per-batch tensors every layer shares.
pub struct TextInputs {
    /// `[batch, len, hidden]` token embeddings with image embeddings already in place.
    pub embeds: Tensor,
    /// cos and sin `[batch, len, head_dim / 2]`, M-RoPE sections already selected.
    pub rope: (Tensor, Tensor),
    pub attention: AttentionLayout,
    /// DeepStack: `[batch, len, hidden]` added to the output of layer `i` (zero outside image tokens).
    pub deepstack: Vec<Tensor>,
    pub mode: Mode,
}

/// Which keys each query sees.
pub enum AttentionLayout {
    /// A padded batch: `[batch, 1, len, len]` additive f32 mask, 0 where a query may attend, `f32::MIN`
    /// elsewhere.
    Masked(Tensor),
    /// One row of inputs packed one after the other, (start, len) each, causal within each: f32 on the CPU
    /// at inference only, which [`fused::packed_decoder_attention`] serves.
    Packed(Vec<(usize, usize)>),
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// Qwen3's per-head RMSNorms of queries and keys.
    qk_norm: Option<(RmsNorm, RmsNorm)>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(w: &Weights, cfg: &TextConfig, prefix: &str) -> Result<Self> {
        let (h, hd, bias) = (cfg.hidden_size, cfg.head_dim(), cfg.qkv_bias);
        let qk_norm = if cfg.qk_norm {
            let norm = |name: &str| RmsNorm::load(w, &format!("{prefix}.{name}"), hd, cfg.rms_norm_eps);
            Some((norm("q_norm")?, norm("k_norm")?))
        } else {
            None
        };
        Ok(Attention {
            q: Linear::load(w, &format!("{prefix}.q_proj"), h, cfg.num_attention_heads * hd, bias)?,
            k: Linear::load(w, &format!("{prefix}.k_proj"), h, cfg.num_key_value_heads * hd, bias)?,
            v: Linear::load(w, &format!("{prefix}.v_proj"), h, cfg.num_key_value_heads * hd, bias)?,
            o: Linear::load(
                w,
                &format!("{prefix}.o_proj"),
                cfg.num_attention_heads * hd,
                h,
                cfg.o_bias,
            )?,
            qk_norm,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: hd,
        })
    }

    fn forward(&self, x: &Tensor, inputs: &TextInputs) -> Result<Tensor> {
        self.o.forward_mode(&self.mixed(x, inputs)?, &inputs.mode)
    }

    /// The attention's output before the output projection, `[batch, len, heads * head_dim]`.
    fn mixed(&self, x: &Tensor, inputs: &TextInputs) -> Result<Tensor> {
        let mode = &inputs.mode;
        let (mut q, mut k, v) = (
            self.q.forward_mode(x, mode)?,
            self.k.forward_mode(x, mode)?,
            self.v.forward_mode(x, mode)?,
        );
        if let Some((q_norm, k_norm)) = &self.qk_norm {
            let per_head = |t: &Tensor, norm: &RmsNorm| -> Result<Tensor> {
                let (b, l, width) = t.dims3()?;
                let heads = t.reshape((b, l, width / self.head_dim, self.head_dim))?;
                Ok(norm.forward_mode(&heads, mode)?.reshape((b, l, width))?)
            };
            q = per_head(&q, q_norm)?;
            k = per_head(&k, k_norm)?;
        }
        let heads = fused::Heads {
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
        };
        let (cos, sin) = &inputs.rope;
        let mask = match &inputs.attention {
            AttentionLayout::Packed(sequences) => {
                return fused::packed_decoder_attention(&q, &k, &v, (cos, sin), sequences, heads);
            }
            AttentionLayout::Masked(mask) => mask,
        };
        if mode.differentiable {
            fused::self_attention(&q, &k, &v, (cos, sin), mask, heads)
        } else if fused::supported(&q) {
            fused::decoder_attention(&q, &k, &v, (cos, sin), mask, heads)
        } else {
            self.attend(&q, &k, &v, (cos, sin), mask, mode)
        }
    }

    /// The attention between the projections, op by op: every dtype and device but f32 on the CPU.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        (cos, sin): (&Tensor, &Tensor),
        mask: &Tensor,
        mode: &Mode,
    ) -> Result<Tensor> {
        let (b, l, _) = q.dims3()?;
        let split = |t: &Tensor, heads: usize| -> Result<Tensor> {
            Ok(t.reshape((b, l, heads, self.head_dim))?.transpose(1, 2)?.contiguous()?)
        };
        let q = apply_rotary(&split(q, self.heads)?, cos, sin, mode)?;
        let k = apply_rotary(&split(k, self.kv_heads)?, cos, sin, mode)?;
        let v = split(v, self.kv_heads)?;
        // Grouped-query attention without copying K and V: the query heads that share a KV head are
        // stacked along the sequence axis, so one batched matmul serves the whole group.
        let group = self.heads / self.kv_heads;
        let q = q.reshape((b, self.kv_heads, group * l, self.head_dim))?;
        let scores = (q.matmul(&k.t()?)? / (self.head_dim as f64).sqrt())?
            .reshape((b, self.heads, l, l))?
            .to_dtype(DType::F32)?
            .broadcast_add(mask)?;
        let probs = softmax_f32(&scores, mode)?
            .to_dtype(v.dtype())?
            .reshape((b, self.kv_heads, group * l, l))?;
        let out = probs.matmul(&v)?.reshape((b, self.heads, l, self.head_dim))?;
        Ok(out.transpose(1, 2)?.reshape((b, l, self.heads * self.head_dim))?)
    }

    fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 4] {
        [
            ("q_proj", &mut self.q),
            ("k_proj", &mut self.k),
            ("v_proj", &mut self.v),
            ("o_proj", &mut self.o),
        ]
    }
}

/// SwiGLU MLP, `down(silu(gate(x)) * up(x))`: the decoder's (no biases) and Qwen2.5-VL's vision blocks'.
pub(crate) struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
    pub(crate) fn load(w: &Weights, prefix: &str, hidden: usize, intermediate: usize, bias: bool) -> Result<Self> {
        let (h, i) = (hidden, intermediate);
        Ok(Mlp {
            gate: Linear::load(w, &format!("{prefix}.gate_proj"), h, i, bias)?,
            up: Linear::load(w, &format!("{prefix}.up_proj"), h, i, bias)?,
            down: Linear::load(w, &format!("{prefix}.down_proj"), i, h, bias)?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, mode: &Mode) -> Result<Tensor> {
        let (gate, up) = (self.gate.forward_mode(x, mode)?, self.up.forward_mode(x, mode)?);
        let activated = if mode.differentiable {
            fused::swiglu(&gate, &up)?
        } else if fused::supported(&gate) {
            fused::sigmoid_gated(&gate, 1.0, Some(&up))?
        } else {
            (gate.silu()? * up)?
        };
        self.down.forward_mode(&activated, mode)
    }

    pub(crate) fn linears(&self) -> [(&'static str, &Linear); 3] {
        [
            ("gate_proj", &self.gate),
            ("up_proj", &self.up),
            ("down_proj", &self.down),
        ]
    }

    pub(crate) fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 3] {
        [
            ("gate_proj", &mut self.gate),
            ("up_proj", &mut self.up),
            ("down_proj", &mut self.down),
        ]
    }
}

struct DecoderLayer {
    input_norm: RmsNorm,
    attention: Attention,
    post_attention_norm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn load(w: &Weights, cfg: &TextConfig, i: usize) -> Result<Self> {
        let p = format!("model.layers.{i}");
        let (h, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(DecoderLayer {
            input_norm: RmsNorm::load(w, &format!("{p}.input_layernorm"), h, eps)?,
            attention: Attention::load(w, cfg, &format!("{p}.self_attn"))?,
            post_attention_norm: RmsNorm::load(w, &format!("{p}.post_attention_layernorm"), h, eps)?,
            mlp: Mlp::load(w, &format!("{p}.mlp"), h, cfg.intermediate_size, false)?,
        })
    }

    fn forward(&self, x: &Tensor, inputs: &TextInputs) -> Result<Tensor> {
        let mode = &inputs.mode;
        let x = (x + self
            .attention
            .forward(&self.input_norm.forward_mode(x, mode)?, inputs)?)?;
        self.mlp_block(&x, mode)
    }

    /// The layer's output at the flattened `[batch * len]` positions `rows` only, `[rows, hidden]`: attention
    /// still reads every position's keys and values, but the output projection, the residuals and the MLP
    /// run on those rows alone, each as [`Self::forward`] computes it (products over fewer rows may round
    /// differently).
    fn forward_rows(&self, x: &Tensor, inputs: &TextInputs, rows: &Tensor) -> Result<Tensor> {
        let mode = &inputs.mode;
        let mixed = self.attention.mixed(&self.input_norm.forward_mode(x, mode)?, inputs)?;
        let x = (pick_rows(x, rows)? + self.attention.o.forward_mode(&pick_rows(&mixed, rows)?, mode)?)?;
        self.mlp_block(&x, mode)
    }

    fn mlp_block(&self, x: &Tensor, mode: &Mode) -> Result<Tensor> {
        Ok((x + self
            .mlp
            .forward(&self.post_attention_norm.forward_mode(x, mode)?, mode)?)?)
    }
}

/// Rows `rows` of `x` flattened to `[batch * len, hidden]`.
fn pick_rows(x: &Tensor, rows: &Tensor) -> Result<Tensor> {
    Ok(x.flatten_to(1)?.index_select(rows, 0)?)
}

pub struct TextModel {
    cfg: TextConfig,
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
}

impl TextModel {
    pub fn load(w: &Weights, cfg: &TextConfig) -> Result<Self> {
        Ok(TextModel {
            cfg: cfg.clone(),
            embed_tokens: w.get("model.embed_tokens.weight", &[cfg.vocab_size, cfg.hidden_size])?,
            layers: (0..cfg.num_hidden_layers)
                .map(|i| DecoderLayer::load(w, cfg, i))
                .collect::<Result<_>>()?,
            norm: RmsNorm::load(w, "model.norm", cfg.hidden_size, cfg.rms_norm_eps)?,
        })
    }

    pub fn config(&self) -> &TextConfig {
        &self.cfg
    }

    /// Every linear layer of the decoder with its original-layout name (`model.layers.3.self_attn.q_proj`).
    pub fn for_each_linear_mut(&mut self, f: &mut dyn FnMut(&str, &mut Linear) -> Result<()>) -> Result<()> {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for (name, linear) in layer.attention.linears_mut() {
                f(&format!("model.layers.{i}.self_attn.{name}"), linear)?;
            }
            for (name, linear) in layer.mlp.linears_mut() {
                f(&format!("model.layers.{i}.mlp.{name}"), linear)?;
            }
        }
        Ok(())
    }

    pub fn for_each_linear(&self, f: &mut dyn FnMut(&str, &Linear)) {
        for (i, layer) in self.layers.iter().enumerate() {
            let a = &layer.attention;
            for (name, linear) in [("q_proj", &a.q), ("k_proj", &a.k), ("v_proj", &a.v), ("o_proj", &a.o)] {
                f(&format!("model.layers.{i}.self_attn.{name}"), linear);
            }
            for (name, linear) in layer.mlp.linears() {
                f(&format!("model.layers.{i}.mlp.{name}"), linear);
            }
        }
    }

    /// Embedding rows of `ids` (flattened `[n]`), `[n, hidden]`.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.embed_tokens.index_select(ids, 0)?)
    }

    /// Final-norm hidden states `[batch, len, hidden]`.
    pub fn forward(&self, inputs: &TextInputs) -> Result<Tensor> {
        let x = self.run_layers(inputs.embeds.clone(), &self.layers, inputs)?;
        self.norm.forward_mode(&x, &inputs.mode)
    }

    /// Final-norm hidden states at the flattened `[batch * len]` positions `rows` only, `[rows, hidden]`: the
    /// same values as those rows of [`Self::forward`], without the last layer's output projection and MLP
    /// for the positions nobody reads (the embedding reads one per sequence). Under adapter dropout the last
    /// layer's adapters draw each row's mask as for a one-token row (position 0): independent masks as
    /// before, though not the bits [`Self::forward`] draws for that position.
    pub fn forward_rows(&self, inputs: &TextInputs, rows: &[usize]) -> Result<Tensor> {
        let index = Tensor::from_iter(rows.iter().map(|&r| r as u32), inputs.embeds.device())?;
        let x = match self.layers.split_last() {
            Some((last, before)) => {
                let x = self.run_layers(inputs.embeds.clone(), before, inputs)?;
                let mut x = last.forward_rows(&x, inputs, &index)?;
                if let Some(visual) = inputs.deepstack.get(before.len()) {
                    x = (x + pick_rows(visual, &index)?)?;
                }
                x
            }
            None => pick_rows(&inputs.embeds, &index)?,
        };
        self.norm.forward_mode(&x, &inputs.mode)
    }

    /// `x` through `layers`, the first layers of the decoder, with their DeepStack additions.
    fn run_layers(&self, mut x: Tensor, layers: &[DecoderLayer], inputs: &TextInputs) -> Result<Tensor> {
        for (i, layer) in layers.iter().enumerate() {
            x = layer.forward(&x, inputs)?;
            if let Some(visual) = inputs.deepstack.get(i) {
                x = (x + visual)?;
            }
        }
        Ok(x)
    }

    /// cos/sin `[batch, len, head_dim / 2]` for positions `[batch][3][len]`: each frequency of the rotary half
    /// dimension takes its angle from the position row (t, h or w) its `mrope_section` assigns.
    pub fn rope_tables(&self, positions: &[[Vec<i64>; 3]], device: &Device) -> Result<(Tensor, Tensor)> {
        let head_dim = self.cfg.head_dim();
        let half = head_dim / 2;
        let theta = self.cfg.rope_theta as f32;
        let inv_freq: Vec<f32> = (0..half)
            .map(|k| 1.0 / theta.powf((2 * k) as f32 / head_dim as f32))
            .collect();
        let row_of = mrope_rows(self.cfg.mrope_section, self.cfg.mrope_interleaved);
        let len = positions.first().map_or(0, |p| p[0].len());
        let mut angles = Vec::with_capacity(positions.len() * len * head_dim);
        for rows in positions {
            for l in 0..len {
                angles.extend((0..half).map(|k| rows[row_of[k]][l] as f32 * inv_freq[k]));
            }
        }
        let angles = Tensor::from_vec(angles, (positions.len(), len, half), device)?;
        Ok((angles.cos()?, angles.sin()?))
    }
}

/// The position row (0 = t, 1 = h, 2 = w) of each rotary frequency. Consecutive sections (Qwen2-VL):
/// `[t; s0] [h; s1] [w; s2]`. Interleaved (Qwen3-VL): frequency `k` takes row `k % 3` while `k < 3 * s_row`
/// for h and w, and t otherwise, as transformers' `Qwen3VLTextRotaryEmbedding` recomposes them.
fn mrope_rows(section: [usize; 3], interleaved: bool) -> Vec<usize> {
    let half: usize = section.iter().sum();
    if !interleaved {
        return (0..3).flat_map(|row| std::iter::repeat_n(row, section[row])).collect();
    }
    (0..half)
        .map(|k| match k % 3 {
            row @ (1 | 2) if k < 3 * section[row] => row,
            _ => 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::mrope_rows;

    #[test]
    fn mrope_rows_in_both_layouts() {
        assert_eq!(mrope_rows([2, 3, 3], false), vec![0, 0, 1, 1, 1, 2, 2, 2]);
        // Qwen3-VL's [24, 20, 20]: t h w repeated up to frequency 59, then t for 60..63.
        let rows = mrope_rows([24, 20, 20], true);
        assert_eq!(&rows[..6], &[0, 1, 2, 0, 1, 2]);
        assert_eq!(&rows[57..], &[0, 1, 2, 0, 0, 0, 0]);
        for (row, want) in [(0, 24), (1, 20), (2, 20)] {
            assert_eq!(rows.iter().filter(|&&r| r == row).count(), want);
        }
        // A short w section: w only on frequencies 2 and 5, t takes the rest.
        assert_eq!(mrope_rows([3, 3, 2], true), vec![0, 1, 2, 0, 1, 2, 0, 1]);
    }
}
