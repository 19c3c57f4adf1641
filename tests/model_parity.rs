//! Parity of the candle Qwen2-VL and Qwen3-VL with transformers on the same tiny random weights.
//!
//! tests/fixtures/qwen2vl/ holds what transformers computed (tests/oracle/qwen2vl_fixtures.py) for the
//! snapshot `saha-init-model --seed 0` writes, tests/fixtures/qwen3vl/ the same for `--arch qwen3-vl`
//! (tests/oracle/qwen3vl_fixtures.py); the tests rebuild each snapshot, check its hashes against the
//! fixture's, and compare token ids, pixel values, positions, hidden states and embeddings.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use saha_model::batch::pad_batch;
use saha_model::image::PilImage;
use saha_model::{Embedder, EncodedInput, Padding};
use saha_tests::{init_model, repo_root};
use serde_json::Value;

struct Fixture {
    cases: Value,
    expected: HashMap<String, Tensor>,
    dir: PathBuf,
    /// The `saha-init-model` flags of the snapshot the fixtures come from (besides `--seed 0`).
    init_args: &'static [&'static str],
}

const QWEN2_VL: (&str, &[&str]) = ("qwen2vl", &[]);
const QWEN3_VL: (&str, &[&str]) = ("qwen3vl", &["--arch", "qwen3-vl"]);

fn fixture((name, init_args): (&str, &'static [&'static str])) -> Fixture {
    let dir = repo_root().join("tests/fixtures").join(name);
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let expected = candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    Fixture {
        cases,
        expected,
        dir,
        init_args,
    }
}

fn sha256(path: &std::path::Path) -> String {
    saha_schemas::provenance::sha256_file(path).unwrap().0
}

fn load_embedder(tmp: &std::path::Path, fx: &Fixture) -> Embedder {
    let snapshot = init_model(tmp, 0, fx.init_args);
    for (file, hash) in fx.cases["snapshot"]["sha256"].as_object().unwrap() {
        assert_eq!(
            &sha256(&snapshot.join(file)),
            hash.as_str().unwrap(),
            "{file} of `saha-init-model --seed 0` differs from the snapshot the fixtures were made from; \
             regenerate them (the fixture folder's README.md)"
        );
    }
    Embedder::load(&snapshot, DType::F32, &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    saha_tests::max_abs(&(a - b).unwrap())
}

fn mean_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn items_of(case: &Value) -> &Vec<Value> {
    case["items"].as_array().unwrap()
}

/// Encodes one case's items as the embedder does, checking ids and pixels against transformers on the way.
fn encode_case(embedder: &Embedder, fx: &Fixture, case: &Value) -> Vec<EncodedInput> {
    let id = case["id"].as_str().unwrap();
    let ids = fx.expected[&format!("{id}.input_ids")].to_vec2::<i64>().unwrap();
    let mask = fx.expected[&format!("{id}.attention_mask")].to_vec2::<i64>().unwrap();
    let mut inputs = Vec::new();
    for (row, item) in items_of(case).iter().enumerate() {
        let images: Vec<PilImage> = item["image"]
            .as_str()
            .map(|name| PilImage::open(fx.dir.join("images").join(name)).unwrap())
            .into_iter()
            .collect();
        let input = embedder.encode(item["prompt"].as_str().unwrap(), &images).unwrap();
        let want = saha_tests::unpadded_ids(&ids[row], &mask[row]);
        assert_eq!(input.ids, want, "{id} row {row}: token ids differ from transformers");
        if let Some(name) = item["image"].as_str() {
            check_pixels(fx, id, name, &input.images[0], item);
        }
        inputs.push(input);
    }
    inputs
}

/// The processor's output for image `name` against transformers': bit-identical where the fixture records
/// the values' sha256 (Qwen3-VL's), within the stored tolerance where it holds only the values (Qwen2-VL's).
fn check_pixels(fx: &Fixture, id: &str, name: &str, got: &saha_model::image::PixelPatches, item: &Value) {
    assert_eq!(
        got.grid_thw.to_vec(),
        item["grid_thw"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect::<Vec<_>>()
    );
    let meta = fx.cases["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["file"].as_str() == Some(&format!("images/{name}")))
        .unwrap();
    if let Some(want) = meta["pixel_values_sha256"].as_str() {
        use sha2::Digest;
        let bytes: Vec<u8> = got.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let digest: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, want, "{id} {name}: pixel values are not bit-identical to transformers'");
    }
    let stem = name.trim_end_matches(".png");
    if let Some(want) = fx.expected.get(&format!("image.{stem}.pixel_values")) {
        let got_t = Tensor::from_slice(&got.values, want.shape(), &Device::Cpu).unwrap();
        let (max, mean) = (max_abs_diff(&got_t, want), mean_abs_diff(&got_t, want));
        assert!(
            max <= 1e-2 && mean <= 1e-3,
            "{id} {name}: pixel values differ, max {max} mean {mean}"
        );
    }
}

#[test]
fn tokens_pixels_positions_hidden_states_and_embeddings_match_transformers() {
    every_case_matches_transformers(QWEN2_VL);
}

#[test]
fn qwen3_vl_tokens_pixels_positions_hidden_states_and_embeddings_match_transformers() {
    every_case_matches_transformers(QWEN3_VL);
}

fn every_case_matches_transformers(which: (&str, &'static [&'static str])) {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture(which);
    let embedder = load_embedder(tmp.path(), &fx);
    let tokens = &embedder.config.tokens;
    let mut worst = 0f32;
    for case in fx.cases["cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let inputs = encode_case(&embedder, &fx, case);
        let padding = match case["padding_side"].as_str() {
            Some("left") => Padding::Left,
            _ => Padding::Right,
        };
        let mask = fx.expected[&format!("{id}.attention_mask")].to_vec2::<i64>().unwrap();
        let batch = pad_batch(
            &inputs,
            padding,
            embedder.tokenizer.pad_token(),
            embedder.config.vision.spatial_merge_size,
            tokens.image,
            tokens.vision_start,
        )
        .unwrap();
        let want_positions = fx.expected[&format!("{id}.position_ids")].to_dtype(DType::I64).unwrap();
        for r in 0..3 {
            let rows = want_positions.get(r).unwrap().to_vec2::<i64>().unwrap();
            for (b, row) in rows.iter().enumerate() {
                for (l, &p) in row.iter().enumerate() {
                    if mask[b][l] == 1 {
                        assert_eq!(batch.positions[b][r][l], p, "{id}: position row {r} of item {b} at {l}");
                    }
                }
            }
        }

        let out = embedder
            .model
            .forward(&inputs, padding, embedder.tokenizer.pad_token())
            .unwrap();
        let want_hidden = &fx.expected[&format!("{id}.last_hidden")];
        let real = Tensor::from_vec(
            mask.iter().flatten().map(|&m| m as f32).collect::<Vec<_>>(),
            (mask.len(), mask[0].len(), 1),
            &Device::Cpu,
        )
        .unwrap();
        let got_hidden = out.hidden.broadcast_mul(&real).unwrap();
        let hidden_diff = max_abs_diff(&got_hidden, want_hidden);
        assert!(hidden_diff <= 1e-4, "{id}: final hidden states differ by {hidden_diff}");

        let pooled = out.pooled().unwrap();
        let pooled_diff = max_abs_diff(&pooled, &fx.expected[&format!("{id}.pooled")]);
        let embedding = embedder
            .model
            .embed(&inputs, padding, embedder.tokenizer.pad_token())
            .unwrap();
        let embedding_diff = max_abs_diff(&embedding, &fx.expected[&format!("{id}.embedding")]);
        assert!(
            pooled_diff <= 1e-4 && embedding_diff <= 1e-4,
            "{id}: pooled {pooled_diff}, embedding {embedding_diff}"
        );
        worst = worst.max(hidden_diff).max(embedding_diff);
    }
    eprintln!("largest difference from transformers over all cases: {worst:e}");
}

#[test]
fn vision_tower_matches_transformers_block_by_block() {
    vision_tower_matches(QWEN2_VL);
}

#[test]
fn qwen3_vl_vision_tower_and_deepstack_features_match_transformers() {
    vision_tower_matches(QWEN3_VL);
}

fn vision_tower_matches(which: (&str, &'static [&'static str])) {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture(which);
    let embedder = load_embedder(tmp.path(), &fx);
    let case = fx.cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "case03")
        .unwrap();
    let inputs = encode_case(&embedder, &fx, case);
    let image = &inputs[0].images[0];
    let values = embedder.config.vision.patch_values();
    let n = image.values.len() / values;
    let patches = Tensor::from_slice(&image.values, (n, values), &Device::Cpu).unwrap();

    // Stage by stage, so a bug shows where it enters: the patch embedding (Conv3d, plus Qwen3-VL's position
    // table), the last block's output (before the merger), the merger's output, the DeepStack features.
    let trace = embedder
        .model
        .vision()
        .forward_traced(&patches, &[image.grid_thw])
        .unwrap();
    assert_eq!(
        trace.blocks.len(),
        fx.cases["snapshot"]["config"]["vision_config"]["depth"]
            .as_u64()
            .unwrap() as usize,
        "one traced output per vision block"
    );
    let deepstack_keys: Vec<String> = (0..trace.deepstack.len())
        .map(|i| format!("case03.vision.deepstack.{i}"))
        .collect();
    assert_eq!(
        trace.deepstack.len(),
        fx.expected.keys().filter(|k| k.starts_with("case03.vision.deepstack.")).count(),
        "one DeepStack feature per transformers' deepstack_features entry"
    );
    let mut stages = vec![
        ("patch embedding", &trace.patch_embed, "case03.vision.patch_embed"),
        (
            "last vision block's output",
            trace.blocks.last().expect("the tower has blocks"),
            "case03.vision.blocks_out",
        ),
        ("merged (traced)", &trace.merged, "case03.vision.merged"),
    ];
    for (feature, key) in trace.deepstack.iter().zip(&deepstack_keys) {
        stages.push(("DeepStack feature", feature, key.as_str()));
    }
    for (what, got, key) in stages {
        let want = &fx.expected[key];
        assert_eq!(got.dims(), want.dims(), "{what}: shape");
        let diff = max_abs_diff(got, want);
        eprintln!(
            "{what}: max |diff| from transformers {diff:e} (largest value {:e})",
            saha_tests::max_abs(want)
        );
        assert!(diff <= 1e-4, "{what} differs from transformers' {key} by {diff}");
    }

    let merged = embedder.model.vision().forward(&patches, &[image.grid_thw]).unwrap();
    let diff = max_abs_diff(&merged, &fx.expected["case03.vision.merged"]);
    assert!(diff <= 1e-4, "merged image embeddings differ by {diff}");
    assert_eq!(
        max_abs_diff(&merged, &trace.merged),
        0.0,
        "forward and forward_traced give the same output"
    );
}

#[test]
fn truncation_cuts_user_text_and_keeps_system_images_and_chat_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture(QWEN2_VL);
    let embedder = load_embedder(tmp.path(), &fx);
    let tok = &embedder.tokenizer;
    let system =
        "<|im_start|>system\nGiven an image, summarize the provided image in one word.<|im_end|>\n<|im_start|>user\n";
    let tail = "<|im_end|>\n<|im_start|>assistant\n";
    let prompt = format!("{system}<|image_pad|> {}{tail}", "many words of user text ".repeat(20));
    let full = tok.expand_images(&tok.encode(&prompt).unwrap(), &[6]).unwrap();
    let head = tok.encode(system).unwrap();
    let tail_ids = tok.encode(tail).unwrap();
    let mut cut = full.clone();
    let dropped = tok.fit_user_text(&mut cut, 60).unwrap();
    assert_eq!(cut.len(), 60);
    assert_eq!(dropped, full.len() - 60);
    assert_eq!(&cut[..head.len()], &head[..], "system turn kept");
    assert!(
        cut.ends_with(&tail_ids),
        "chat tail kept, so the pooled token is still the assistant header's"
    );
    assert_eq!(
        cut.iter().filter(|&&id| id == tok.image_token()).count(),
        6,
        "image tokens kept"
    );
    let mut short = full.clone();
    assert!(tok.fit_user_text(&mut short, head.len() + tail_ids.len()).is_err());
}
