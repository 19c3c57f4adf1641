//! Numeric flags with meaningless values are refused before a stage reads anything, with a message
//! naming the flag.

use saha_tests::{run, stderr};

/// Runs `stage` with `required` (paths that need not exist) plus `flag value`, and checks it fails
/// naming the flag.
fn refused(stage: &str, required: &[&str], flag: &str, value: &str) {
    let pair = format!("{flag}={value}");
    let mut args = required.to_vec();
    args.push(&pair);
    let out = run(stage, &args);
    let err = stderr(&out);
    assert!(!out.status.success(), "{stage} {pair} was accepted");
    assert!(
        err.contains(&format!("for '{flag} <")) && err.contains(&format!("'{value}'")),
        "{stage} {pair}: {err}"
    );
}

#[test]
fn train_refuses_meaningless_numbers() {
    let required = [
        "--clusters",
        "absent/clusters.parquet",
        "--items",
        "absent/items.parquet",
        "--model",
        "absent/model",
        "--out-dir",
        "absent/train",
    ];
    for (flag, value) in [
        ("--dropout", "1"),
        ("--dropout", "-0.1"),
        ("--dropout", "nan"),
        ("--lr", "0"),
        ("--lr", "-1e-4"),
        ("--lr", "nan"),
        ("--lr", "inf"),
        ("--temperature", "0"),
        ("--temperature", "NaN"),
        ("--alpha", "0"),
        ("--weight-decay", "-0.01"),
        ("--max-grad-norm", "nan"),
        ("--max-grad-norm", "-1"),
        ("--rank", "0"),
        ("--max-steps", "0"),
        ("--clusters-per-step", "0"),
        ("--save-steps", "0"),
        ("--max-len", "0"),
    ] {
        refused("saha-train", &required, flag, value);
    }
    assert!(!std::path::Path::new("absent").exists(), "nothing was created");
}

#[test]
fn embed_refuses_meaningless_numbers() {
    let required = [
        "--items",
        "absent/items.parquet",
        "--model",
        "absent/model",
        "--out",
        "absent/e.parquet",
    ];
    for (flag, value) in [
        ("--batch-tokens", "0"),
        ("--max-batch", "0"),
        ("--max-len", "0"),
        ("--part-items", "0"),
        ("--max-batch", "-3"),
    ] {
        refused("saha-embed", &required, flag, value);
    }
}
