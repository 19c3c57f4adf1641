//! Puts the snapshot's tensors together (random, or the GGUF decoder plus a random vision tower) and
//! writes it.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use saha_model::tensors::checkpoint_tensors;
use saha_model::ModelConfig;

use crate::{gguf, random_tensors, vocab, write_snapshot, Args};

/// What was written: parameter counts by origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Built {
    /// Parameters taken from the GGUF file (0 for a fully random model), `lm_head.weight` included.
    pub from_file: usize,
    pub random: usize,
}

/// The flags that size the model, named when a shape is refused.
const SHAPE_FLAGS: &str = "--hidden, --intermediate, --layers, --heads, --kv-heads, --head-dim, --vocab, --vision-*";

/// 8 GiB of f32 weights: far beyond a test model, below what would exhaust memory unannounced.
const MAX_PARAMETERS: usize = 1 << 31;

/// Writes the snapshot `args` describe.
pub fn run(args: &Args) -> Result<Built> {
    if !args.tokenizer.is_file() {
        bail!(
            "--tokenizer {}: not found (run scripts/fetch-tokenizer.sh)",
            args.tokenizer.display()
        );
    }
    if args.arch == crate::ArchArg::Qwen3Vl && args.text_from_gguf.is_some() {
        bail!("--text-from-gguf takes a Qwen2 decoder; it cannot be combined with --arch qwen3-vl");
    }
    if args.arch != crate::ArchArg::Qwen3Vl {
        for (flag, given) in [
            ("--head-dim", args.head_dim.is_some()),
            ("--deepstack", args.deepstack.is_some()),
        ] {
            if given {
                bail!("{flag} is a Qwen3-VL setting; add --arch qwen3-vl");
            }
        }
    }
    let (text, mut from_gguf) = match &args.text_from_gguf {
        Some(path) => {
            let read = gguf::read(path)?;
            vocab::check_tokenizer(&args.tokenizer, read.tokens.as_deref(), read.shape.vocab, path)?;
            (read.shape, Some(read.tensors))
        }
        None => {
            let shape = args.flag_text_shape();
            vocab::check_tokenizer(&args.tokenizer, None, shape.vocab, Path::new("--vocab"))?;
            (shape, None)
        }
    };
    let mrope_section = match args.mrope_section.as_deref() {
        None if args.arch == crate::ArchArg::Qwen3Vl => crate::qwen3_vl::default_mrope_section(args.qwen3_head_dim()),
        None => text.default_mrope_section(),
        Some(&[t, h, w]) => [t, h, w],
        Some(other) => bail!("--mrope-section needs three numbers (t,h,w), got {other:?}"),
    };
    let config_json = args.config_json(&text, mrope_section);
    let config = ModelConfig::from_value(&config_json).with_context(|| {
        format!(
            "the shape the flags ask for ({SHAPE_FLAGS}) is not a valid {}",
            args.arch.arch().model_type()
        )
    })?;
    let parameters = checkpoint_tensors(&config).iter().try_fold(0usize, |sum, spec| {
        let n = spec.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        sum.checked_add(n)
    });
    if parameters.is_none_or(|n| n > MAX_PARAMETERS) {
        bail!("the shape the flags ask for ({SHAPE_FLAGS}) has more than {MAX_PARAMETERS} parameters: saha-init-model makes small models");
    }

    let Some(file_tensors) = from_gguf.as_mut() else {
        let tensors = random_tensors(&config, args.seed, args.init_std, |_| true)?;
        let random = tensors.iter().map(|(_, t)| t.elem_count()).sum();
        write_snapshot(args, &config_json, &tensors)?;
        return Ok(Built { from_file: 0, random });
    };
    let source = args.text_from_gguf.as_deref().expect("from_gguf is set with the flag");
    let vision = |name: &str| name.starts_with("visual.");
    let mut tensors = random_tensors(&config, args.seed, args.init_std, |spec| vision(&spec.name))?;
    let random = tensors.iter().map(|(_, t)| t.elem_count()).sum();
    let mut from_file = 0;
    let text_specs = checkpoint_tensors(&config).into_iter().filter(|s| !vision(&s.name));
    let lm_head = (!text.tied).then(|| saha_model::tensors::TensorSpec {
        name: "lm_head.weight".into(),
        shape: vec![text.vocab, text.hidden],
        kind: saha_model::tensors::TensorKind::Weight,
    });
    for spec in text_specs.chain(lm_head) {
        let tensor = take(file_tensors, &spec.name, &spec.shape, source)?;
        from_file += tensor.elem_count();
        tensors.push((spec.name, tensor));
    }
    if let Some(extra) = file_tensors.keys().min() {
        bail!(
            "--text-from-gguf {}: holds {extra} beyond the {} layers its metadata declares",
            source.display(),
            text.layers
        );
    }
    write_snapshot(args, &config_json, &tensors)?;
    Ok(Built { from_file, random })
}

fn take(
    tensors: &mut HashMap<String, Tensor>,
    name: &str,
    shape: &[usize],
    source: &std::path::Path,
) -> Result<Tensor> {
    let tensor = tensors.remove(name).with_context(|| {
        format!(
            "--text-from-gguf {}: the decoder lacks {name} (GGUF name {})",
            source.display(),
            gguf::gguf_name(name).unwrap_or_default()
        )
    })?;
    if tensor.dims() != shape {
        bail!(
            "--text-from-gguf {}: {name} (GGUF {}) has shape {:?}, the metadata's shape needs {shape:?}",
            source.display(),
            gguf::gguf_name(name).unwrap_or_default(),
            tensor.dims()
        );
    }
    Ok(tensor)
}
