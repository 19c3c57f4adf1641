//! `saha-init-model --text-from-gguf` on small GGUF files written here: a Qwen2 decoder lands in the snapshot
//! unchanged (dequantised), and other architectures, shapes, tensors or vocabularies are refused with a
//! message naming the file and what is wrong, leaving no snapshot behind.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use saha_model::Embedder;
use saha_tests::{max_abs, qwen_tokenizer, run, stderr};

const HIDDEN: usize = 32;
const INTERMEDIATE: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const LAYERS: usize = 2;
const VOCAB: usize = 151936;

/// A decoder to write: metadata and (name, tensor, storage type) in GGUF naming.
struct Decoder {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(String, Tensor, GgmlDType)>,
}

fn values(shape: &[usize], seed: usize) -> Tensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| (((i * 7919 + seed * 104729) % 2003) as f32 / 2003.0 - 0.5) * 0.2)
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// The token strings by id from the tokenizer (BPE vocabulary and added tokens), padded as llama.cpp pads.
fn token_list() -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(qwen_tokenizer()).unwrap()).unwrap();
    let mut tokens: Vec<String> = (0..VOCAB).map(|i| format!("[PAD{i}]")).collect();
    for (token, id) in json["model"]["vocab"].as_object().unwrap() {
        tokens[id.as_u64().unwrap() as usize] = token.clone();
    }
    for added in json["added_tokens"].as_array().unwrap() {
        tokens[added["id"].as_u64().unwrap() as usize] = added["content"].as_str().unwrap().to_string();
    }
    tokens
}

fn qwen2() -> Decoder {
    let head_dim = HIDDEN / HEADS;
    let metadata = vec![
        ("general.architecture".to_string(), Value::String("qwen2".into())),
        ("qwen2.block_count".into(), Value::U32(LAYERS as u32)),
        ("qwen2.embedding_length".into(), Value::U32(HIDDEN as u32)),
        ("qwen2.feed_forward_length".into(), Value::U32(INTERMEDIATE as u32)),
        ("qwen2.attention.head_count".into(), Value::U32(HEADS as u32)),
        ("qwen2.attention.head_count_kv".into(), Value::U32(KV_HEADS as u32)),
        ("qwen2.rope.freq_base".into(), Value::F32(10000.0)),
        ("qwen2.attention.layer_norm_rms_epsilon".into(), Value::F32(1e-5)),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(token_list().into_iter().map(Value::String).collect()),
        ),
    ];
    let mut tensors = Vec::new();
    let mut add = |name: String, shape: &[usize], dtype| {
        let seed = tensors.len();
        tensors.push((name, values(shape, seed), dtype));
    };
    add("token_embd.weight".into(), &[VOCAB, HIDDEN], GgmlDType::Q8_0);
    add("output.weight".into(), &[VOCAB, HIDDEN], GgmlDType::F32);
    add("output_norm.weight".into(), &[HIDDEN], GgmlDType::F32);
    for i in 0..LAYERS {
        let kv = KV_HEADS * head_dim;
        for (part, out, inp) in [
            ("attn_q", HIDDEN, HIDDEN),
            ("attn_k", kv, HIDDEN),
            ("attn_v", kv, HIDDEN),
            ("attn_output", HIDDEN, HIDDEN),
            ("ffn_gate", INTERMEDIATE, HIDDEN),
            ("ffn_up", INTERMEDIATE, HIDDEN),
            ("ffn_down", HIDDEN, INTERMEDIATE),
        ] {
            add(format!("blk.{i}.{part}.weight"), &[out, inp], GgmlDType::Q8_0);
        }
        for (part, n) in [("attn_q", HIDDEN), ("attn_k", kv), ("attn_v", kv)] {
            add(format!("blk.{i}.{part}.bias"), &[n], GgmlDType::F32);
        }
        add(format!("blk.{i}.attn_norm.weight"), &[HIDDEN], GgmlDType::F32);
        add(format!("blk.{i}.ffn_norm.weight"), &[HIDDEN], GgmlDType::F32);
    }
    Decoder { metadata, tensors }
}

impl Decoder {
    fn write(&self, path: &Path) -> PathBuf {
        let quantized: Vec<(String, QTensor)> = self
            .tensors
            .iter()
            .map(|(name, t, dtype)| (name.clone(), QTensor::quantize(t, *dtype).unwrap()))
            .collect();
        let metadata: Vec<(&str, &Value)> = self.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tensors: Vec<(&str, &QTensor)> = quantized.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut file = std::fs::File::create(path).unwrap();
        gguf_file::write(&mut file, &metadata, &tensors).unwrap();
        path.to_path_buf()
    }

    fn set(mut self, key: &str, value: Value) -> Self {
        self.metadata.retain(|(k, _)| k != key);
        self.metadata.push((key.to_string(), value));
        self
    }

    fn unset(mut self, key: &str) -> Self {
        self.metadata.retain(|(k, _)| k != key);
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.tensors.retain(|(n, _, _)| n != name);
        self
    }

    fn with(mut self, name: &str, shape: &[usize]) -> Self {
        self.tensors.retain(|(n, _, _)| n != name);
        self.tensors.push((name.to_string(), values(shape, 99), GgmlDType::F32));
        self
    }
}

fn convert(gguf: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let tokenizer = qwen_tokenizer();
    let mut args = vec![
        "--out",
        out.to_str().unwrap(),
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--text-from-gguf",
        gguf.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run("saha-init-model", &args)
}

#[test]
fn a_qwen2_gguf_becomes_the_text_half_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let decoder = qwen2();
    let gguf = decoder.write(&dir.path().join("qwen2.gguf"));
    let out = dir.path().join("snapshot");
    let result = convert(&gguf, &out, &["--vision-dim", "16", "--vision-heads", "2"]);
    assert!(result.status.success(), "{}", stderr(&result));

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["hidden_size"], HIDDEN);
    assert_eq!(config["num_hidden_layers"], LAYERS);
    assert_eq!(config["num_key_value_heads"], KV_HEADS);
    assert_eq!(
        config["rms_norm_eps"].as_f64(),
        Some(1e-5),
        "the shortest decimal of the f32"
    );
    assert_eq!(config["rope_theta"].as_f64(), Some(10000.0));
    assert_eq!(
        config["rope_scaling"]["mrope_section"],
        serde_json::json!([1, 1, 2]),
        "head_dim 8"
    );
    assert_eq!(
        config["vision_config"]["hidden_size"], HIDDEN,
        "the merger feeds the decoder"
    );
    assert_eq!(
        config["tie_word_embeddings"], false,
        "the GGUF has its own output.weight"
    );

    // Every text tensor is the GGUF's, dequantised, under its Hugging Face name and in PyTorch order.
    let stored = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    let reread = gguf_file::Content::read(&mut std::fs::File::open(&gguf).unwrap()).unwrap();
    let mut file = std::fs::File::open(&gguf).unwrap();
    for (gguf_name, hf_name) in [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output.weight", "lm_head.weight"),
        ("blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj.weight"),
        ("blk.1.ffn_down.weight", "model.layers.1.mlp.down_proj.weight"),
        ("blk.0.attn_v.bias", "model.layers.0.self_attn.v_proj.bias"),
        (
            "blk.0.ffn_norm.weight",
            "model.layers.0.post_attention_layernorm.weight",
        ),
    ] {
        let want = reread
            .tensor(&mut file, gguf_name, &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        let got = &stored[hf_name];
        assert_eq!(got.dims(), want.dims(), "{hf_name}");
        let diff = (got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{hf_name} differs from {gguf_name}");
    }
    let original = &decoder
        .tensors
        .iter()
        .find(|(n, _, _)| n == "blk.1.ffn_down.weight")
        .unwrap()
        .1;
    let q8_error = (&stored["model.layers.1.mlp.down_proj.weight"] - original)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        q8_error < 1e-3,
        "Q8_0 round trip of a [-0.1, 0.1] matrix is close: {q8_error}"
    );
    assert!(stored.keys().any(|k| k.starts_with("visual.")), "a random vision tower");

    // It loads and embeds.
    let embedder = Embedder::load(&out, DType::F32, &Device::Cpu).unwrap();
    let input = embedder.encode("<|im_start|>user\nhello<|im_end|>\n", &[]).unwrap();
    let embedding = embedder.embed(&[input]).unwrap();
    assert_eq!(embedding[0].len(), HIDDEN);
    assert!(embedding[0].iter().all(|v| v.is_finite()));

    // Stored in bf16 on request: the same values, rounded.
    let bf16 = dir.path().join("bf16");
    let result = convert(&gguf, &bf16, &["--dtype", "bf16"]);
    assert!(result.status.success(), "{}", stderr(&result));
    let stored_bf16 = candle_core::safetensors::load(bf16.join("model.safetensors"), &Device::Cpu).unwrap();
    let name = "model.layers.1.mlp.down_proj.weight";
    assert_eq!(stored_bf16[name].dtype(), DType::BF16);
    let want = stored[name]
        .to_dtype(DType::BF16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let got = stored_bf16[name].to_dtype(DType::F32).unwrap();
    assert_eq!(max_abs(&(got - want).unwrap()), 0.0, "bf16 is the f32 snapshot rounded");

    // Without output.weight the head is tied, as Qwen2.5-0.5B publishes it.
    let tied = qwen2().without("output.weight").write(&dir.path().join("tied.gguf"));
    let out = dir.path().join("tied");
    let result = convert(&tied, &out, &[]);
    assert!(result.status.success(), "{}", stderr(&result));
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("\"tie_word_embeddings\": true"), "{config}");
    let stored = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(!stored.contains_key("lm_head.weight"));
}

#[test]
fn other_architectures_shapes_tensors_and_vocabularies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut tokens = token_list();
    tokens.swap(100, 101);
    let not_gguf = dir.path().join("not.gguf");
    std::fs::write(&not_gguf, b"this is not a GGUF file at all").unwrap();
    let cases: Vec<(&str, PathBuf, Vec<&str>)> = vec![
        (
            "llama",
            qwen2()
                .set("general.architecture", Value::String("llama".into()))
                .write(&dir.path().join("llama.gguf")),
            vec!["general.architecture is `llama`", "qwen2"],
        ),
        (
            "yarn",
            qwen2()
                .set("qwen2.rope.scaling.type", Value::String("yarn".into()))
                .write(&dir.path().join("yarn.gguf")),
            vec!["rope.scaling.type is `yarn`"],
        ),
        (
            "heads",
            qwen2()
                .set("qwen2.attention.head_count_kv", Value::U32(3))
                .write(&dir.path().join("heads.gguf")),
            vec!["4 attention heads are not a multiple of 3"],
        ),
        (
            "no metadata",
            qwen2()
                .set("qwen2.block_count", Value::String("two".into()))
                .write(&dir.path().join("meta.gguf")),
            vec!["qwen2.block_count", "type"],
        ),
        (
            "shape",
            qwen2()
                .with("blk.0.attn_q.weight", &[HIDDEN, 2 * HIDDEN])
                .write(&dir.path().join("shape.gguf")),
            vec![
                "model.layers.0.self_attn.q_proj.weight",
                "blk.0.attn_q.weight",
                "[32, 64]",
            ],
        ),
        (
            "missing",
            qwen2()
                .without("blk.1.attn_k.bias")
                .write(&dir.path().join("missing.gguf")),
            vec!["lacks model.layers.1.self_attn.k_proj.bias", "blk.1.attn_k.bias"],
        ),
        (
            "extra layer",
            qwen2()
                .with("blk.2.attn_norm.weight", &[HIDDEN])
                .write(&dir.path().join("extra.gguf")),
            vec!["model.layers.2.input_layernorm.weight", "beyond the 2 layers"],
        ),
        (
            "unknown tensor",
            qwen2()
                .with("rope_freqs.weight", &[4])
                .write(&dir.path().join("unknown.gguf")),
            vec!["rope_freqs.weight", "not part of a Qwen2 decoder"],
        ),
        (
            "vocabulary",
            qwen2()
                .set(
                    "tokenizer.ggml.tokens",
                    Value::Array(tokens.into_iter().map(Value::String).collect()),
                )
                .write(&dir.path().join("vocab.gguf")),
            vec!["does not match", "id 100"],
        ),
        (
            "small vocabulary",
            qwen2()
                .with("token_embd.weight", &[1000, HIDDEN])
                .without("output.weight")
                .unset("tokenizer.ggml.tokens")
                .write(&dir.path().join("small.gguf")),
            vec!["beyond the 1000 rows"],
        ),
        ("not a GGUF", not_gguf, vec!["not a readable GGUF file"]),
    ];
    for (what, gguf, needles) in cases {
        let out = dir.path().join(format!("out-{}", what.replace(' ', "-")));
        let result = convert(&gguf, &out, &[]);
        let message = stderr(&result);
        assert_eq!(result.status.code(), Some(1), "{what}: {message}");
        assert!(!message.contains("panicked"), "{what}: {message}");
        assert!(
            message.contains(gguf.to_str().unwrap()),
            "{what}: names the file: {message}"
        );
        for needle in needles {
            assert!(message.contains(needle), "{what}: expected {needle:?} in {message}");
        }
        assert!(!out.exists(), "{what}: no snapshot written");
    }
    let gguf = qwen2().write(&dir.path().join("ok.gguf"));
    let result = convert(&gguf, &dir.path().join("flags"), &["--hidden", "64"]);
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    assert!(stderr(&result).contains("--hidden"), "{}", stderr(&result));
}
