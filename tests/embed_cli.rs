//! `saha-embed` end to end: resumption, shards, and every bad input the issue lists.

use std::path::{Path, PathBuf};

use saha_tests::{footer_stat, init_model, run, stderr, write_train};

/// The tiny model's snapshot, the prompt stage's items for `rows`, and the image folder.
struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    model: PathBuf,
    items: PathBuf,
    images: PathBuf,
}

fn setup(rows: &[[&str; 4]], write_images: impl Fn(&Path)) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    write_images(&images);
    write_train(&dir.join("data/train.parquet"), rows, None);
    let out = prompt(&dir, &images, "run", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let model = init_model(&dir, 0, &[]);
    Setup {
        items: dir.join("run/items.parquet"),
        model,
        images,
        dir,
        _tmp: tmp,
    }
}

/// saha-prompt on `dir/data` with images in `images`, writing into `dir/<out>`.
fn prompt(dir: &Path, images: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    saha_tests::run_prompt(&dir.join("data"), images, &dir.join(out), extra)
}

fn embed(s: &Setup, out: &str, extra: &[&str]) -> std::process::Output {
    embed_with(s, &s.items, &s.model, out, extra)
}

/// saha-embed of `items` with `model`, writing `s.dir/<out>`.
fn embed_with(s: &Setup, items: &Path, model: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let out = s.dir.join(out);
    let mut args = vec![
        "--items",
        items.to_str().unwrap(),
        "--image-root",
        s.images.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run("saha-embed", &args)
}

fn save_rgb(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x + y) % 256) as u8])
    });
    img.save(path).unwrap();
}

fn demo_rows() -> (Vec<[&'static str; 4]>, impl Fn(&Path)) {
    let rows = vec![
        [
            "<|image_pad|> Represent the given image with the following question: What shape is this?",
            "a.png",
            "circle",
            "",
        ],
        ["A red square on a blue background.", "", "<|image_pad|>", "b.png"],
        ["<|image_pad|> Find a caption.", "c.png", "A green triangle.", ""],
        ["What colour is the sky?", "", "blue", ""],
        [
            "<|image_pad|> Describe.",
            "d.png",
            "two circles side by side, touching at one point",
            "",
        ],
        [
            "A long caption about a yellow star drawn at the top left of a white page.",
            "",
            "<|image_pad|>",
            "a.png",
        ],
    ];
    let images = |dir: &Path| {
        for (name, w, h) in [
            ("a.png", 64, 48),
            ("b.png", 90, 30),
            ("c.png", 40, 40),
            ("d.png", 120, 200),
        ] {
            save_rgb(&dir.join(name), w, h);
        }
    };
    (rows, images)
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn embeddings_are_unit_vectors_for_every_item() {
    let (rows, images) = demo_rows();
    let s = setup(&rows, images);
    let out = embed(&s, "emb.parquet", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = saha_schemas::embeddings::Embeddings::read(&s.dir.join("emb.parquet")).unwrap();
    let (items, _): (Vec<saha_schemas::Item>, _) = saha_schemas::records::read_records(&s.items).unwrap();
    assert_eq!(e.len(), items.len());
    assert_eq!(e.dim, 64);
    assert!(e.model.starts_with("qwen2-vl:tiny-0@"), "{}", e.model);
    for i in 0..e.len() {
        let norm: f32 = e.row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "row {i} norm {norm}");
    }
    // Distinct inputs give distinct vectors (the model is random, not constant).
    assert_ne!(e.row(0), e.row(1));
}

#[test]
fn a_stopped_run_resumes_to_a_byte_identical_file_and_shards_merge_to_it_too() {
    let (rows, images) = demo_rows();
    let s = setup(&rows, images);
    let small = ["--part-items", "2", "--max-batch", "2"];
    let whole = embed(&s, "whole.parquet", &small);
    assert!(whole.status.success(), "{}", stderr(&whole));

    let mut stopped_args = small.to_vec();
    stopped_args.extend(["--stop-after-parts", "2"]);
    let stopped = embed(&s, "resumed.parquet", &stopped_args);
    assert!(!stopped.status.success());
    assert!(!s.dir.join("resumed.parquet").exists(), "no output after a stop");
    assert!(s.dir.join("resumed.parquet.work").is_dir());

    // A different setting must not reuse the parts of the stopped run.
    let other = embed(
        &s,
        "resumed.parquet",
        &["--part-items", "2", "--max-batch", "2", "--max-len", "1000"],
    );
    assert!(!other.status.success());
    assert!(stderr(&other).contains("different run"), "{}", stderr(&other));

    let resumed = embed(&s, "resumed.parquet", &small);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("2 of"),
        "the rerun must reuse the finished parts: {}",
        stderr(&resumed)
    );
    assert_eq!(
        bytes(&s.dir.join("whole.parquet")),
        bytes(&s.dir.join("resumed.parquet"))
    );
    assert!(
        !s.dir.join("resumed.parquet.work").exists(),
        "work folder removed at the end"
    );

    let mut shard_files = Vec::new();
    for i in 1..=3 {
        let name = format!("shard{i}.parquet");
        let shard = format!("{i}/3");
        let mut args = small.to_vec();
        args.extend(["--shard", &shard]);
        let out = embed(&s, &name, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        shard_files.push(s.dir.join(name).to_str().unwrap().to_string());
    }
    let merged = s.dir.join("merged.parquet");
    let mut args = vec!["merge", "--out", merged.to_str().unwrap()];
    args.extend(shard_files.iter().rev().map(String::as_str));
    let out = run("saha-embed", &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        bytes(&s.dir.join("whole.parquet")),
        bytes(&merged),
        "merged shards equal the unsharded file"
    );

    let out = run(
        "saha-embed",
        &[
            "merge",
            "--out",
            merged.to_str().unwrap(),
            &shard_files[0],
            &shard_files[1],
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
}

#[test]
fn missing_and_corrupt_images_are_named_or_skipped_with_a_report() {
    let rows = [
        ["<|image_pad|> What is this?", "ok.png", "a", ""],
        ["<|image_pad|> What is this?", "gone.png", "b", ""],
        ["<|image_pad|> What is this?", "broken.png", "c", ""],
    ];
    let s = setup(&rows, |dir| {
        save_rgb(&dir.join("ok.png"), 40, 40);
        save_rgb(&dir.join("gone.png"), 40, 40);
        std::fs::write(dir.join("broken.png"), b"not an image at all").unwrap();
    });
    std::fs::remove_file(s.images.join("gone.png")).unwrap();
    let out = embed(&s, "emb.parquet", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("gone.png") && err.contains("not found") && err.contains("row"),
        "{err}"
    );
    assert!(!s.dir.join("emb.parquet").exists());

    let out = embed(&s, "emb.parquet", &["--on-bad-image", "skip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 skipped"), "{}", stderr(&out));
    let (skipped, _): (Vec<saha_schemas::SkippedRow>, _) =
        saha_schemas::records::read_records(&s.dir.join("embed_skipped.parquet")).unwrap();
    let values: Vec<_> = skipped.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values, ["gone.png", "broken.png"]);
    let e = saha_schemas::embeddings::Embeddings::read(&s.dir.join("emb.parquet")).unwrap();
    assert_eq!(e.len(), 4, "1 good image query + 3 text targets");
}

#[test]
fn gray_alpha_16_bit_tiny_and_huge_images_all_embed() {
    let rows = [
        ["<|image_pad|> a", "gray.png", "t1", ""],
        ["<|image_pad|> b", "rgba.png", "t2", ""],
        ["<|image_pad|> c", "deep.png", "t3", ""],
        ["<|image_pad|> d", "tiny.png", "t4", ""],
        ["<|image_pad|> e", "huge.png", "t5", ""],
        ["<|image_pad|> f", "photo.jpg", "t6", ""],
    ];
    let s = setup(&rows, |dir| {
        image::GrayImage::from_fn(50, 30, |x, y| image::Luma([(x * y % 256) as u8]))
            .save(dir.join("gray.png"))
            .unwrap();
        image::RgbaImage::from_fn(30, 50, |x, y| image::Rgba([x as u8 * 4, y as u8 * 3, 9, (x * 8) as u8]))
            .save(dir.join("rgba.png"))
            .unwrap();
        image::ImageBuffer::<image::Luma<u16>, _>::from_fn(40, 40, |x, y| image::Luma([(x * 1500 + y * 30) as u16]))
            .save(dir.join("deep.png"))
            .unwrap();
        save_rgb(&dir.join("tiny.png"), 5, 5);
        save_rgb(&dir.join("huge.png"), 2400, 1800);
        save_rgb(&dir.join("photo.jpg"), 64, 64);
    });
    for policy in ["random", "native", "mid_low"] {
        let out = embed(&s, "emb.parquet", &["--resolution", policy]);
        assert!(out.status.success(), "--resolution {policy}: {}", stderr(&out));
        let e = saha_schemas::embeddings::Embeddings::read(&s.dir.join("emb.parquet")).unwrap();
        assert_eq!(e.len(), 12);
        assert!(e.values.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn an_extreme_aspect_ratio_is_an_error_naming_the_item() {
    let rows = [["<|image_pad|> a", "strip.png", "t", ""]];
    let s = setup(&rows, |dir| save_rgb(&dir.join("strip.png"), 3000, 10));
    let out = embed(&s, "emb.parquet", &["--resolution", "native"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("strip.png") && err.contains("aspect"), "{err}");
    // The reference's aspect-clamping policy makes the same image usable.
    let out = embed(&s, "emb.parquet", &["--resolution", "random"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn long_prompts_lose_user_text_not_the_chat_tail_or_fail_when_asked() {
    let long = "word ".repeat(400);
    let rows = [
        [long.as_str(), "", "short", ""],
        ["Which image?", "", "<|image_pad|>", "a.png"],
    ];
    let s = setup(&rows, |dir| save_rgb(&dir.join("a.png"), 56, 56));
    let out = embed(&s, "emb.parquet", &["--max-len", "100", "--truncate", "error"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--max-len 100"), "{}", stderr(&out));

    let out = embed(&s, "emb.parquet", &["--max-len", "100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 prompts shortened"), "{}", stderr(&out));

    // Below the fixed part of the prompt (system turn + chat tail), nothing can be cut: an error.
    let out = embed(&s, "emb.parquet", &["--max-len", "20"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot fit"), "{}", stderr(&out));
}

#[test]
fn broken_snapshots_name_the_tensor_or_file() {
    let (rows, images) = demo_rows();
    let s = setup(&rows[..1], images);
    let weights = s.model.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &candle_core::Device::Cpu).unwrap();

    let mut missing = tensors.clone();
    missing.remove("model.layers.1.mlp.down_proj.weight");
    candle_core::safetensors::save(&missing, &weights).unwrap();
    let out = embed(&s, "emb.parquet", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("model.layers.1.mlp.down_proj.weight") && stderr(&out).contains("missing"),
        "{}",
        stderr(&out)
    );

    tensors.insert(
        "visual.blocks.0.attn.qkv.bias".into(),
        candle_core::Tensor::zeros(7, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let out = embed(&s, "emb.parquet", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("visual.blocks.0.attn.qkv.bias") && stderr(&out).contains("[7]"),
        "{}",
        stderr(&out)
    );

    let s = setup(&rows[..1], demo_rows().1);
    let tokenizer = s.model.join("tokenizer.json");
    let text = std::fs::read_to_string(&tokenizer)
        .unwrap()
        .replace("<|image_pad|>", "<|image_gone|>");
    std::fs::write(&tokenizer, text).unwrap();
    let out = embed(&s, "emb.parquet", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("<|image_pad|>") && stderr(&out).contains("tokenizer"),
        "{}",
        stderr(&out)
    );

    std::fs::remove_file(s.model.join("preprocessor_config.json")).unwrap();
    let out = embed(&s, "emb.parquet", &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("preprocessor_config.json"), "{}", stderr(&out));
}

/// Items rendered for Qwen2-VL are refused by a Qwen2.5-VL snapshot (naming both), and the same data
/// rendered for Qwen2.5-VL embeds with it.
#[test]
fn items_for_another_backbone_are_refused_and_qwen2_5_vl_items_embed() {
    another_backbone("qwen2.5-vl", &[]);
}

/// Likewise for Qwen3-VL, its items rendered in Qwen3-VL-Embedding's own format.
#[test]
fn items_for_another_backbone_are_refused_and_qwen3_vl_items_embed() {
    another_backbone("qwen3-vl", &["--preset", "qwen3-vl-embedding"]);
}

fn another_backbone(backbone: &str, prompt_flags: &[&str]) {
    let (rows, images) = demo_rows();
    let s = setup(&rows, images);
    let model = init_model(&s.dir.join("other"), 0, &["--arch", backbone]);
    let refused = embed_with(&s, &s.items, &model, "refused.parquet", &[]);
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(
        err.contains("`qwen2-vl`") && err.contains(&format!("`{backbone}`")) && err.contains("items.parquet"),
        "{err}"
    );
    assert!(!s.dir.join("refused.parquet").exists());

    let flags = [&["--backbone", backbone], prompt_flags].concat();
    let out = prompt(&s.dir, &s.images, "run", &flags);
    assert!(out.status.success(), "{}", stderr(&out));
    let done = embed_with(&s, &s.dir.join("run/items.parquet"), &model, "other.parquet", &[]);
    assert!(done.status.success(), "{}", stderr(&done));
    let e = saha_schemas::embeddings::Embeddings::read(&s.dir.join("other.parquet")).unwrap();
    let (items, _): (Vec<saha_schemas::Item>, _) =
        saha_schemas::records::read_records(&s.dir.join("run/items.parquet")).unwrap();
    assert_eq!(e.len(), items.len());
    assert!(e.model.starts_with(&format!("{backbone}:tiny-0@")), "{}", e.model);
    for i in 0..e.len() {
        let norm: f32 = e.row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "row {i} norm {norm}");
    }
}

#[test]
fn sharded_and_nested_layout_snapshots_load_like_the_single_file() {
    let (rows, images) = demo_rows();
    let s = setup(&rows, images);
    let reference = embed(&s, "a.parquet", &[]);
    assert!(reference.status.success(), "{}", stderr(&reference));
    let a = saha_schemas::embeddings::Embeddings::read(&s.dir.join("a.parquet")).unwrap();
    for (i, extra) in [
        vec!["--shards", "3"],
        vec!["--layout", "nested"],
        vec!["--dtype", "bf16"],
    ]
    .into_iter()
    .enumerate()
    {
        let variant = init_model(&s.dir.join(format!("v{i}")), 0, &extra);
        let out = embed_with(&s, &s.items, &variant, "b.parquet", &[]);
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        let b = saha_schemas::embeddings::Embeddings::read(&s.dir.join("b.parquet")).unwrap();
        assert_eq!(b.item_ids, a.item_ids, "{extra:?}: item ids");
        assert_eq!(b.dim, a.dim, "{extra:?}: dimension");
        assert_eq!(b.values.len(), a.values.len(), "{extra:?}: value count");
        assert!(!a.values.is_empty());
        let worst = max_abs_difference(&a.values, &b.values);
        // bf16 weights (8-bit mantissa, relative rounding up to 2^-9) measured 1.29e-3 here (max abs
        // over the unit-vector components, CPU, float32 compute); 4e-3 leaves about 3x for other summation
        // orders and thread counts while catching errors the earlier 5e-2 let through.
        let tolerance = if extra.contains(&"bf16") { 4e-3 } else { 0.0 };
        eprintln!("{extra:?}: max abs difference from the float32 single-file snapshot {worst:e}");
        assert!(worst <= tolerance, "{extra:?}: differs by {worst}");
    }
}

#[test]
fn left_padding_gives_the_embeddings_of_right_padding_and_is_recorded() {
    let (rows, images) = demo_rows();
    let s = setup(&rows, images);
    // One batch holds every item, so most rows are padded. f32 on the CPU packs the inputs instead of
    // padding them, so bf16 (padded, as on a GPU) is where the side matters.
    for (dtype, bound) in [("f32", 1e-5), ("bf16", 4e-3)] {
        for side in ["right", "left"] {
            let out = embed(
                &s,
                &format!("{side}-{dtype}.parquet"),
                &["--padding", side, "--dtype", dtype],
            );
            assert!(out.status.success(), "{side}: {}", stderr(&out));
        }
        let read = |side: &str| {
            saha_schemas::embeddings::Embeddings::read(&s.dir.join(format!("{side}-{dtype}.parquet"))).unwrap()
        };
        let (right, left) = (read("right"), read("left"));
        assert_eq!(right.item_ids, left.item_ids);
        assert_eq!(right.values.len(), left.values.len());
        let worst = max_abs_difference(&right.values, &left.values);
        // Same tokens and positions; only the order of padded rows inside the attention sums moves.
        eprintln!("{dtype}: left and right padding differ by {worst}");
        assert!(worst <= bound, "{dtype}: left and right padding differ by {worst}");
    }
    // The footer records the side the model padded on, read back from the loaded embedder.
    let table = saha_schemas::ParquetTable::open(&s.dir.join("left-bf16.parquet")).unwrap();
    let params = table.provenance().unwrap().params;
    assert_eq!(params["padding"], "left", "{params:?}");
}

#[test]
fn one_process_per_output_and_a_failed_start_leaves_no_work_folder() {
    let (rows, images) = demo_rows();
    let s = setup(&rows[..2], images);
    let work = s.dir.join("emb.parquet.work");
    let lock = work.join(".lock");
    std::fs::create_dir_all(&work).unwrap();
    // This test process plays the other saha-embed writing emb.parquet.
    let held = std::fs::File::create(&lock).unwrap();
    held.try_lock().unwrap();
    let out = embed(&s, "emb.parquet", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("another process is writing") && err.contains(&lock.display().to_string()),
        "{err}"
    );
    assert!(!s.dir.join("emb.parquet").exists());
    drop(held);
    let out = embed(&s, "emb.parquet", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!work.exists(), "the work folder goes with the finished run");

    // A run that stops before it computes anything takes its work folder (and lock) with it.
    let out = embed(&s, "bad.parquet", &["--resolution", "huge"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--resolution"), "{}", stderr(&out));
    assert!(!s.dir.join("bad.parquet.work").exists());
}

#[test]
fn a_config_with_fewer_layers_than_the_weights_names_the_unused_tensors() {
    let (rows, images) = demo_rows();
    let s = setup(&rows[..1], images);
    let path = s.model.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let text = if config.get("num_hidden_layers").is_some() {
        &mut config
    } else {
        &mut config["text_config"]
    };
    assert_eq!(text["num_hidden_layers"], 2);
    text["num_hidden_layers"] = 1.into();
    std::fs::write(&path, config.to_string()).unwrap();
    let out = embed(&s, "emb.parquet", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("config.json")
            && err.contains("does not use")
            && err.contains("model.layers.1.input_layernorm.weight"),
        "{err}"
    );
}

#[test]
fn an_all_zero_embedding_is_refused_naming_file_and_row() {
    let (rows, images) = demo_rows();
    let s = setup(&rows[..2], images);
    // A final norm of zeros makes every last hidden state zero.
    let weights = s.model.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &candle_core::Device::Cpu).unwrap();
    let norm = tensors["model.norm.weight"].zeros_like().unwrap();
    tensors.insert("model.norm.weight".into(), norm);
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let out = embed(&s, "emb.parquet", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&s.items.display().to_string()) && err.contains(" row ") && err.contains("all-zero embedding"),
        "{err}"
    );
    assert!(!s.dir.join("emb.parquet").exists());

    // An embeddings file with a zero vector is refused wherever it is read (here: merging shards).
    let shard = s.dir.join("zero.parquet");
    let e = saha_schemas::embeddings::Embeddings {
        item_ids: vec![0, 1],
        dim: 3,
        values: vec![0.6, 0.8, 0.0, 0.0, 0.0, 0.0],
        model: "m".into(),
        normalized: true,
    };
    let mut prov = saha_schemas::Provenance::new("saha-embed", "0");
    prov.stat("shard", "1/1");
    prov.stat("plan_fingerprint", "f");
    e.write(&shard, &prov).unwrap();
    let merged = s.dir.join("merged.parquet");
    let out = run(
        "saha-embed",
        &["merge", "--out", merged.to_str().unwrap(), shard.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("zero.parquet: row 1, column `embedding`: item 1 has an all-zero vector"),
        "{err}"
    );
}

/// A symbolic link inside the image root that points outside it is not followed, by the prompt
/// stage nor by saha-embed (which once opened /etc/passwd through one), unless
/// `--allow-outside-root` says so.
#[test]
fn symbolic_links_out_of_the_image_root_are_refused() {
    let rows = [["<|image_pad|> What is this?", "link.png", "a", ""]];
    let outside = tempfile::tempdir().unwrap();
    save_rgb(&outside.path().join("elsewhere.png"), 40, 40);
    let s = setup(&rows, |dir| save_rgb(&dir.join("link.png"), 40, 40));
    std::fs::remove_file(s.images.join("link.png")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("elsewhere.png"), s.images.join("link.png")).unwrap();
    let out = embed(&s, "emb.parquet", &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("link.png") && err.contains("symbolic link") && err.contains("--allow-outside-root"),
        "{err}"
    );
    assert!(!s.dir.join("emb.parquet").exists());
    let out = embed(&s, "emb.parquet", &["--allow-outside-root"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let prompted = prompt(&s.dir, &s.images, "run2", &[]);
    let err = stderr(&prompted);
    assert!(
        !prompted.status.success() && err.contains("symbolic link") && err.contains("row"),
        "{err}"
    );
    assert!(!s.dir.join("run2/items.parquet").exists());
}

/// A truncated PNG and a decompression bomb (a small file that declares 14000 x 14000 pixels, more than Pillow opens) are
/// bad images like any other: named in the error, or skipped with `--on-bad-image skip`.
#[test]
fn truncated_images_and_decompression_bombs_are_bad_images() {
    let rows = [
        ["<|image_pad|> What is this?", "ok.png", "a", ""],
        ["<|image_pad|> What is this?", "truncated.png", "b", ""],
        ["<|image_pad|> What is this?", "bomb.png", "c", ""],
        ["<|image_pad|> What is this?", "truncated.webp", "d", ""],
    ];
    let s = setup(&rows, |dir| {
        save_rgb(&dir.join("ok.png"), 40, 40);
        save_rgb(&dir.join("full.png"), 64, 64);
        let full = std::fs::read(dir.join("full.png")).unwrap();
        std::fs::write(dir.join("truncated.png"), &full[..full.len() * 2 / 3]).unwrap();
        save_rgb(&dir.join("full.webp"), 64, 64);
        let full = std::fs::read(dir.join("full.webp")).unwrap();
        std::fs::write(dir.join("truncated.webp"), &full[..full.len() - 10]).unwrap();
        let bomb = image::GrayImage::new(14_000, 14_000);
        bomb.save(dir.join("bomb.png")).unwrap();
    });
    assert!(std::fs::metadata(s.images.join("bomb.png")).unwrap().len() < 2_000_000);
    let out = embed(&s, "emb.parquet", &[]);
    let err = stderr(&out);
    assert!(!out.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("truncated.png") || err.contains("bomb.png"), "{err}");
    let out = embed(&s, "emb.parquet", &["--on-bad-image", "skip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("3 skipped"), "{}", stderr(&out));
    assert_eq!(
        footer_stat(&s.dir.join("emb.parquet"), "skipped_reasons"),
        serde_json::json!({"too_large": 1, "truncated": 2})
    );
}

#[test]
fn images_corrupt_inside_are_skipped_when_computed_and_a_resumed_run_skips_alike() {
    let rows = [
        ["<|image_pad|> What is this?", "ok.png", "a", ""],
        ["<|image_pad|> What is this?", "bad_crc.png", "b", ""],
        ["<|image_pad|> What is this?", "cut.gif", "c", ""],
        ["<|image_pad|> What is this?", "ok.gif", "d", ""],
        ["<|image_pad|> What is this?", "ok.webp", "e", ""],
        ["<|image_pad|> What is this?", "gone.png", "f", ""],
    ];
    let s = setup(&rows, |dir| {
        save_rgb(&dir.join("gone.png"), 40, 40);
        save_rgb(&dir.join("ok.png"), 40, 40);
        save_rgb(&dir.join("ok.gif"), 36, 30);
        save_rgb(&dir.join("ok.webp"), 30, 36);
        // Complete files (end markers in place) whose insides are broken: found only when decoded.
        save_rgb(&dir.join("bad_crc.png"), 64, 64);
        saha_tests::corrupt_png_inside(&dir.join("bad_crc.png"));
        save_rgb(&dir.join("full.gif"), 64, 64);
        let gif = std::fs::read(dir.join("full.gif")).unwrap();
        std::fs::write(dir.join("cut.gif"), &gif[..gif.len() / 2]).unwrap();
    });
    // Found when planning: a missing file.
    std::fs::remove_file(s.images.join("gone.png")).unwrap();
    let out = embed(&s, "emb.parquet", &[]);
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("gone.png"), "{err}");
    std::fs::copy(s.images.join("ok.png"), s.images.join("gone.png")).unwrap();
    let out = embed(&s, "emb.parquet", &[]);
    let err = stderr(&out);
    assert!(!out.status.success() && !err.contains("panicked"), "{err}");
    assert!(
        (err.contains("bad_crc.png") || err.contains("cut.gif")) && err.contains("row"),
        "{err}"
    );
    std::fs::remove_file(s.images.join("gone.png")).unwrap();
    assert!(!s.dir.join("emb.parquet").exists());

    let small = ["--on-bad-image", "skip", "--part-items", "1", "--max-batch", "1"];
    let out = embed(&s, "emb.parquet", &small);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("3 skipped"), "{}", stderr(&out));
    let emb = s.dir.join("emb.parquet");
    let e = saha_schemas::embeddings::Embeddings::read(&emb).unwrap();
    assert_eq!(e.len(), 9, "3 good image queries + 6 text targets");
    assert_eq!(footer_stat(&emb, "skipped_items"), serde_json::json!(3));
    assert_eq!(
        footer_stat(&emb, "skipped_reasons"),
        serde_json::json!({"missing": 1, "undecodable": 2})
    );
    let ids = footer_stat(&emb, "skipped_item_ids");
    assert_eq!(ids.as_array().map(Vec::len), Some(3), "{ids}");
    for id in ids.as_array().unwrap() {
        assert!(!e.item_ids.contains(&(id.as_u64().unwrap() as u32)));
    }
    let skipped_list = std::fs::read(s.dir.join("embed_skipped.parquet")).unwrap();
    let (skipped, _): (Vec<saha_schemas::SkippedRow>, _) =
        saha_schemas::records::read_records(&s.dir.join("embed_skipped.parquet")).unwrap();
    let values: Vec<_> = skipped.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values, ["bad_crc.png", "cut.gif", "gone.png"]);
    let kinds: Vec<&str> = skipped.iter().map(|r| r.reason.split(':').next().unwrap()).collect();
    assert_eq!(kinds, ["undecodable", "undecodable", "missing"]);
    let first = std::fs::read(&emb).unwrap();

    // Stopped after two parts, then resumed: the skips of the finished parts come from the work folder.
    std::fs::remove_file(&emb).unwrap();
    let mut stopped = small.to_vec();
    stopped.extend(["--stop-after-parts", "2"]);
    let out = embed(&s, "emb.parquet", &stopped);
    assert!(!out.status.success(), "{}", stderr(&out));
    let out = embed(&s, "emb.parquet", &small);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("resumed"), "{}", stderr(&out));
    assert!(std::fs::read(&emb).unwrap() == first, "resumed output differs");
    assert!(
        std::fs::read(s.dir.join("embed_skipped.parquet")).unwrap() == skipped_list,
        "resumed skip list differs"
    );

    // Two shards, each listing its own skips (shard 1 those found when planning), merge to the same file.
    let mut merge = vec![
        "merge".to_string(),
        "--out".into(),
        s.dir.join("merged.parquet").display().to_string(),
    ];
    for i in 1..=2 {
        let shard = format!("{i}/2");
        let mut args = small.to_vec();
        args.extend(["--shard", &shard]);
        let out = embed(&s, &format!("shard{i}.parquet"), &args);
        assert!(out.status.success(), "{}", stderr(&out));
        let (rows, _): (Vec<saha_schemas::SkippedRow>, _) =
            saha_schemas::records::read_records(&s.dir.join(format!("embed_skipped.{i}-of-2.parquet"))).unwrap();
        assert_eq!(rows.iter().any(|r| r.value.as_deref() == Some("gone.png")), i == 1);
        merge.push(s.dir.join(format!("shard{i}.parquet")).display().to_string());
    }
    let out = run("saha-embed", &merge.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read(s.dir.join("merged.parquet")).unwrap() == first,
        "merged shards differ"
    );
}

/// The largest absolute difference between two equally long value lists.
fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "value counts differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}
