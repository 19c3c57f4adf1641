//! Extreme flag values (0, negative, NaN, huge, overflowing, out of range) on every stage with good
//! inputs: refused with a message naming the flag, nothing written.

use crate::bad_files::stages;
use crate::fixture::fixture;
use crate::harness::check_refused;

const HUGE: &str = "18446744073709551615";
const OVER: &str = "18446744073709551616";

/// (stage binary, its subcommand or "", flag, value and any further arguments the case needs).
const CASES: &[(&str, &str, &str, &str)] = &[
    ("saha-embed", "", "--batch-tokens", "0"),
    ("saha-embed", "", "--batch-tokens", OVER),
    ("saha-embed", "", "--max-batch", "-1"),
    ("saha-embed", "", "--max-len", "0"),
    ("saha-embed", "", "--max-len", "1"),
    ("saha-embed", "", "--part-items", "0"),
    ("saha-embed", "", "--max-image-pixels", "0"),
    ("saha-embed", "", "--max-image-pixels", "nan"),
    ("saha-embed", "", "--shard", "3/2"),
    ("saha-embed", "", "--shard", "0/0"),
    ("saha-embed", "", "--shard", "1/18446744073709551616"),
    ("saha-embed", "", "--resolution", "-5"),
    ("saha-retrieve", "", "--pool", "0"),
    ("saha-retrieve", "", "--pool", HUGE),
    ("saha-retrieve", "", "--pool", "nan"),
    ("saha-retrieve", "", "--top-k", "0"),
    ("saha-retrieve", "", "--top-k", "-3"),
    ("saha-retrieve", "", "--pool-mult", "6148914691236517207"),
    ("saha-retrieve", "", "--oversample", "0"),
    ("saha-filter", "", "--positive-fraction", "NaN"),
    ("saha-filter", "", "--positive-fraction", "-5"),
    ("saha-filter", "", "--positive-fraction", "0"),
    ("saha-filter", "", "--positive-fraction", "1.5"),
    ("saha-filter", "", "--pool-mult", "6148914691236517207"),
    ("saha-filter", "", "--top-k", "0"),
    ("saha-filter", "", "--top-k", HUGE),
    ("saha-filter", "", "--range-start", "18446744073709551615 --strategy range"),
    ("saha-filter", "", "--range-start", "20 --range-end 10 --strategy range"),
    ("saha-filter", "", "--seed", "-1"),
    ("saha-train", "", "--dropout", "2"),
    ("saha-train", "", "--dropout", "nan"),
    ("saha-train", "", "--lr", "-1"),
    ("saha-train", "", "--lr", "inf"),
    ("saha-train", "", "--rank", "0"),
    ("saha-train", "", "--rank", HUGE),
    ("saha-train", "", "--temperature", "0"),
    ("saha-train", "", "--warmup-steps", "-1"),
    ("saha-train", "", "--save-steps", "0"),
    ("saha-train", "", "--max-len", "1"),
    ("saha-train", "", "--chunk", "-1"),
    ("saha-report", "", "--bins", "0"),
    ("saha-report", "", "--bins", HUGE),
    ("saha-sql", "", "--max-width", "-1"),
    ("saha-init-model", "", "--hidden", "0"),
    ("saha-init-model", "", "--hidden", HUGE),
    ("saha-init-model", "", "--layers", "0"),
    ("saha-init-model", "", "--heads", "0"),
    ("saha-init-model", "", "--heads", "7"),
    ("saha-init-model", "", "--vocab", "0"),
    ("saha-init-model", "", "--init-std", "nan"),
    ("saha-init-model", "", "--init-std", "-1"),
    ("saha-init-model", "", "--vision-depth", "0"),
    ("saha-init-model", "", "--shards", "0"),
    ("saha-init-model", "", "--min-pixels", "0"),
    ("saha-wordnet", "", "--train-per-subset", "0"),
    ("saha-wordnet", "", "--candidates", "0"),
    ("saha-wordnet", "", "--candidates", HUGE),
];

/// saha-synth has no input files: it is run here with only flags.
const SYNTH: &[(&str, &str)] = &[
    ("--train-per-subset", "0"),
    ("--train-per-subset", HUGE),
    ("--eval-per-subset", "0"),
    ("--candidates", "0"),
    ("--candidates", "1"),
    ("--candidates", HUGE),
    ("--seed", "-1"),
];

/// `--flag=value` (so that a negative value is the flag's, not an argument of its own) and the rest.
fn flag_args(flag: &str, value: &str) -> Vec<String> {
    let mut words = value.split_whitespace();
    let mut args = vec![format!("{flag}={}", words.next().unwrap())];
    args.extend(words.map(str::to_string));
    args
}

#[test]
fn every_stage_refuses_extreme_flags_naming_them() {
    let start = std::time::Instant::now();
    let stages = stages();
    let mut problems = Vec::new();
    for (bin, sub, flag, value) in CASES {
        let stage = stages
            .iter()
            .find(|s| s.bin == *bin && (sub.is_empty() || s.lead.first().map(String::as_str) == Some(sub)))
            .unwrap_or_else(|| panic!("no stage {bin} {sub} in the table"));
        let out_dir = fixture().scratch("flags");
        let mut args = stage.args(None, &out_dir);
        args.extend(flag_args(flag, value));
        let out = stage.run(&args);
        problems.extend(check_refused(&format!("{bin} {flag} {value}"), &args, &out, &[flag], &out_dir));
    }
    for (flag, value) in SYNTH {
        let out_dir = fixture().scratch("flags");
        let mut args = vec!["--out".to_string(), out_dir.join("data").display().to_string()];
        args.extend(flag_args(flag, value));
        let str_args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = saha_tests::run("saha-synth", &str_args);
        problems.extend(check_refused(&format!("saha-synth {flag} {value}"), &args, &out, &[flag], &out_dir));
    }
    let cases = CASES.len() + SYNTH.len();
    eprintln!("{cases} flag cases in {:.1} s", start.elapsed().as_secs_f64());
    assert!(
        problems.is_empty(),
        "{} of {cases} cases went wrong:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
