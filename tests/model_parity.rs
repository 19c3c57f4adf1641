//! Parity of the candle Qwen2-VL, Qwen2.5-VL and Qwen3-VL with transformers on the same tiny random weights.
//!
//! tests/fixtures/qwen2vl/ holds what transformers computed (tests/oracle/qwen2vl_fixtures.py) for the
//! snapshot `saha-init-model --seed 0` writes, tests/fixtures/qwen2_5vl/ the same for
//! `saha-init-model --seed 0 --arch qwen2.5-vl --max-pixels 28224` (plus an image of several attention
//! windows), tests/fixtures/qwen3vl/ for `--arch qwen3-vl` (tests/oracle/qwen3vl_fixtures.py); each test rebuilds its snapshot, checks its hashes against the fixture's, and compares token
//! ids, pixel values, positions, hidden states and embeddings.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use saha_model::batch::pad_batch;
use saha_model::image::PilImage;
use saha_model::model::l2_normalize;
use saha_model::{Embedder, EncodedInput, Padding};
use saha_tests::{init_model, repo_root};
use serde_json::Value;
use sha2::Digest;

struct Fixture {
    cases: Value,
    expected: HashMap<String, Tensor>,
    dir: PathBuf,
    init_flags: &'static [&'static str],
}

/// A fixture folder and the `saha-init-model` flags (besides `--seed 0`) of the snapshot it was made from.
struct Suite(&'static str, &'static [&'static str]);

const QWEN2_VL: Suite = Suite("tests/fixtures/qwen2vl", &[]);
const QWEN2_5_VL: Suite = Suite(
    "tests/fixtures/qwen2_5vl",
    &["--arch", "qwen2.5-vl", "--max-pixels", "28224"],
);
const QWEN3_VL: Suite = Suite("tests/fixtures/qwen3vl", &["--arch", "qwen3-vl"]);

fn fixture(suite: Suite) -> Fixture {
    let dir = repo_root().join(suite.0);
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let expected = candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    Fixture {
        cases,
        expected,
        dir,
        init_flags: suite.1,
    }
}

fn sha256(path: &std::path::Path) -> String {
    saha_schemas::provenance::sha256_file(path).unwrap().0
}

fn load_embedder(tmp: &std::path::Path, fx: &Fixture) -> Embedder {
    let snapshot = init_model(tmp, 0, fx.init_flags);
    for (file, hash) in fx.cases["snapshot"]["sha256"].as_object().unwrap() {
        assert_eq!(
            &sha256(&snapshot.join(file)),
            hash.as_str().unwrap(),
            "{file} of `saha-init-model --seed 0` differs from the snapshot the fixtures were made from; \
             regenerate them ({}/README.md)",
            fx.dir.display()
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

/// The fixture's case `id`.
fn case_of<'a>(fx: &'a Fixture, id: &str) -> &'a Value {
    fx.cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
}

fn first_image<'a>(fx: &'a Fixture, id: &str) -> &'a str {
    items_of(case_of(fx, id))
        .iter()
        .find_map(|item| item["image"].as_str())
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
            let got = &input.images[0];
            assert_eq!(
                got.grid_thw.to_vec(),
                item["grid_thw"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect::<Vec<_>>()
            );
            check_pixels(fx, name, &got.values);
        }
        inputs.push(input);
    }
    inputs
}

/// The image processor's output for fixture image `name`: close to the stored values, or bit-identical
/// to the stored hash of their float32 bytes (fixtures made with `--pixel-hashes`).
fn check_pixels(fx: &Fixture, name: &str, values: &[f32]) {
    let stem = name.trim_end_matches(".png");
    if let Some(want) = fx.expected.get(&format!("image.{stem}.pixel_values")) {
        let got = Tensor::from_slice(values, want.shape(), &Device::Cpu).unwrap();
        let (max, mean) = (max_abs_diff(&got, want), mean_abs_diff(&got, want));
        assert!(
            max <= 1e-2 && mean <= 1e-3,
            "{name}: pixel values differ, max {max} mean {mean}"
        );
        return;
    }
    let image = fx.cases["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["file"] == format!("images/{name}"))
        .unwrap();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let got = format!("{:x}", sha2::Sha256::digest(&bytes));
    assert_eq!(
        got,
        image["pixel_values_sha256"].as_str().unwrap(),
        "{name}: pixel values are not bit-identical to transformers'"
    );
}

#[test]
fn tokens_pixels_positions_hidden_states_and_embeddings_match_transformers() {
    all_cases_match(QWEN2_VL);
}

#[test]
fn qwen2_5_vl_tokens_pixels_positions_hidden_states_and_embeddings_match_transformers() {
    all_cases_match(QWEN2_5_VL);
}

/// Qwen3-VL: q/k norms, head_dim 32 != hidden / heads, interleaved M-RoPE, DeepStack on text layers 0 and 1
/// of 3 in every image case, patch-16 pixels bit-identical.
#[test]
fn qwen3_vl_tokens_pixels_positions_hidden_states_and_embeddings_match_transformers() {
    all_cases_match(QWEN3_VL);
}

fn all_cases_match(suite: Suite) {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture(suite);
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
        // The embedding packs the inputs and runs the last layer on the pooled rows alone: the same values as
        // the padded full forward's.
        let own_diff = max_abs_diff(&embedding, &l2_normalize(&pooled).unwrap());
        assert!(
            own_diff <= 1e-6,
            "{id}: embedding and the full forward's pooled rows differ by {own_diff}"
        );
        worst = worst.max(hidden_diff).max(embedding_diff);
    }
    eprintln!("largest difference from transformers over all cases: {worst:e}");
}

#[test]
fn vision_tower_matches_transformers_block_by_block() {
    vision_tower_matches(QWEN2_VL, "case03");
}

/// Two images packed, one of four attention windows (two of them partial): the window reordering, the
/// windowed and the full-attention blocks, and the order restored after the merger.
#[test]
fn qwen2_5_vl_vision_tower_matches_transformers_over_several_windows() {
    vision_tower_matches(QWEN2_5_VL, "case08");
    vision_tower_matches(QWEN2_5_VL, "case03");
}

/// The patch embedding with the resampled position table, the blocks, the merger and both DeepStack mergers.
#[test]
fn qwen3_vl_vision_tower_and_deepstack_features_match_transformers() {
    vision_tower_matches(QWEN3_VL, "case03");
}

fn vision_tower_matches(suite: Suite, id: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture(suite);
    let embedder = load_embedder(tmp.path(), &fx);
    let case = case_of(&fx, id);
    let inputs = encode_case(&embedder, &fx, case);
    let images: Vec<_> = inputs.iter().flat_map(|i| &i.images).collect();
    let values: Vec<f32> = images.iter().flat_map(|i| i.values.iter().copied()).collect();
    let grids: Vec<[usize; 3]> = images.iter().map(|i| i.grid_thw).collect();
    let patch_values = embedder.config.vision.patch_values();
    let n = values.len() / patch_values;
    let patches = Tensor::from_vec(values, (n, patch_values), &Device::Cpu).unwrap();

    // Stage by stage, so a bug shows where it enters: the patch embedding (Conv3d, plus Qwen3-VL's position
    // table), the last block's output (before the merger), the merger's output, the DeepStack features.
    let trace = embedder.model.vision().forward_traced(&patches, &grids).unwrap();
    assert_eq!(
        trace.blocks.len(),
        fx.cases["snapshot"]["config"]["vision_config"]["depth"]
            .as_u64()
            .unwrap() as usize,
        "one traced output per vision block"
    );
    let deepstack_keys: Vec<String> = (0..trace.deepstack.len())
        .map(|i| format!("vision.deepstack.{i}"))
        .collect();
    assert_eq!(
        trace.deepstack.len(),
        fx.expected
            .keys()
            .filter(|k| k.starts_with(&format!("{id}.vision.deepstack.")))
            .count(),
        "one DeepStack feature per transformers' deepstack_features entry"
    );
    let mut stages = vec![
        ("patch embedding", &trace.patch_embed, "vision.patch_embed"),
        (
            "last vision block's output",
            trace.blocks.last().expect("the tower has blocks"),
            "vision.blocks_out",
        ),
        ("merged (traced)", &trace.merged, "vision.merged"),
    ];
    for (feature, key) in trace.deepstack.iter().zip(&deepstack_keys) {
        stages.push(("DeepStack feature", feature, key.as_str()));
    }
    for (what, got, key) in stages {
        let key = format!("{id}.{key}");
        let want = &fx.expected[&key];
        assert_eq!(got.dims(), want.dims(), "{what}: shape");
        let diff = max_abs_diff(got, want);
        eprintln!(
            "{id} {what}: max |diff| from transformers {diff:e} (largest value {:e})",
            saha_tests::max_abs(want)
        );
        assert!(diff <= 1e-4, "{what} differs from transformers' {key} by {diff}");
    }

    let merged = embedder.model.vision().forward(&patches, &grids).unwrap();
    let diff = max_abs_diff(&merged, &fx.expected[&format!("{id}.vision.merged")]);
    assert!(diff <= 1e-4, "merged image embeddings differ by {diff}");
    assert_eq!(
        max_abs_diff(&merged, &trace.merged),
        0.0,
        "forward and forward_traced give the same output"
    );
}

/// A Qwen2.5-VL snapshot in transformers' newer layout (nested config, `model.visual.*` /
/// `model.language_model.*` names), split over shards, gives exactly the original layout's outputs.
#[test]
fn qwen2_5_vl_nested_sharded_snapshot_gives_the_same_outputs() {
    nested_sharded_snapshot_gives_the_same_outputs(QWEN2_5_VL, "case08");
}

/// Qwen3-VL in transformers 5's config layout (`rope_parameters`), split over shards.
#[test]
fn qwen3_vl_nested_sharded_snapshot_gives_the_same_outputs() {
    nested_sharded_snapshot_gives_the_same_outputs(QWEN3_VL, "case07r");
}

fn nested_sharded_snapshot_gives_the_same_outputs(suite: Suite, id: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture(suite);
    let original = load_embedder(&tmp.path().join("a"), &fx);
    let flags = [fx.init_flags, &["--layout", "nested", "--shards", "3"]].concat();
    let nested_dir = init_model(&tmp.path().join("b"), 0, &flags);
    assert!(nested_dir.join("model.safetensors.index.json").is_file());
    let nested = Embedder::load(&nested_dir, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(nested.config, original.config);
    let case = case_of(&fx, id);
    let inputs = encode_case(&original, &fx, case);
    let pad = original.tokenizer.pad_token();
    let a = original.model.embed(&inputs, Padding::Right, pad).unwrap();
    let b = nested.model.embed(&inputs, Padding::Right, pad).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    assert!(max_abs_diff(&b, &fx.expected[&format!("{id}.embedding")]) <= 1e-4);
}

/// The embedding (inputs packed, the last layer on each input's last token only) equals the padded full
/// forward's last tokens, with DeepStack reaching the last layer too (Qwen3-VL, features on every layer), on
/// a batch of images and texts of different lengths, both paddings.
#[test]
fn embedding_equals_the_full_forwards_last_tokens_with_deepstack_on_the_last_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture(QWEN3_VL);
    let flags = [fx.init_flags, &["--vision-depth", "3", "--deepstack", "0,1,2"]].concat();
    let embedder = Embedder::load(&init_model(tmp.path(), 0, &flags), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(embedder.config.vision.deepstack_visual_indexes.len(), 3);
    let mut inputs = encode_case(&embedder, &fx, case_of(&fx, "case07r"));
    // DeepStack only adds at image tokens, and a chat prompt never ends on one: this input does, so the last
    // layer's DeepStack addition reaches a pooled row.
    let image = PilImage::open(fx.dir.join("images").join(first_image(&fx, "case07r"))).unwrap();
    inputs.push(embedder.encode("<|vision_start|><|image_pad|>", &[image]).unwrap());
    let pad = embedder.tokenizer.pad_token();
    for padding in [Padding::Right, Padding::Left] {
        let full = embedder.model.forward(&inputs, padding, pad).unwrap().pooled().unwrap();
        let embedding = embedder.model.embed(&inputs, padding, pad).unwrap();
        let diff = max_abs_diff(&embedding, &l2_normalize(&full).unwrap());
        assert!(diff <= 1e-6, "{padding:?}: differs by {diff}");
    }
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
