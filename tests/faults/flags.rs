//! Extreme flag values (0, negative, NaN, huge, overflowing, out of range) on every stage with good
//! inputs: refused with a message naming the flag, nothing written.

use crate::bad_files::stages;
use crate::fixture::fixture;
use crate::harness::{check_refused, Stage};

const HUGE: &str = "18446744073709551615";
const OVER: &str = "18446744073709551616";

/// Per stage binary: (flag, value and any further arguments the case needs).
const CASES: &[(&str, &[(&str, &str)])] = &[
    (
        "saha-embed",
        &[
            ("--batch-tokens", "0"),
            ("--batch-tokens", OVER),
            ("--max-batch", "-1"),
            ("--max-len", "0"),
            ("--max-len", "1"),
            ("--part-items", "0"),
            ("--max-image-pixels", "0"),
            ("--max-image-pixels", "nan"),
            ("--shard", "3/2"),
            ("--shard", "0/0"),
            ("--shard", "1/18446744073709551616"),
            ("--resolution", "-5"),
        ],
    ),
    (
        "saha-retrieve",
        &[
            ("--pool", "0"),
            ("--pool", HUGE),
            ("--pool", "nan"),
            ("--top-k", "0"),
            ("--top-k", "-3"),
            ("--pool-mult", "6148914691236517207"),
            ("--oversample", "0"),
        ],
    ),
    (
        "saha-filter",
        &[
            ("--positive-fraction", "NaN"),
            ("--positive-fraction", "-5"),
            ("--positive-fraction", "0"),
            ("--positive-fraction", "1.5"),
            ("--pool-mult", "6148914691236517207"),
            ("--top-k", "0"),
            ("--top-k", HUGE),
            ("--range-start", "18446744073709551615 --strategy range"),
            ("--range-start", "20 --range-end 10 --strategy range"),
            ("--seed", "-1"),
        ],
    ),
    (
        "saha-train",
        &[
            ("--dropout", "2"),
            ("--dropout", "nan"),
            ("--lr", "-1"),
            ("--lr", "inf"),
            ("--rank", "0"),
            ("--rank", HUGE),
            ("--temperature", "0"),
            ("--warmup-steps", "-1"),
            ("--save-steps", "0"),
            ("--max-len", "1"),
            ("--chunk", "-1"),
        ],
    ),
    ("saha-report", &[("--bins", "0"), ("--bins", HUGE)]),
    ("saha-sql", &[("--max-width", "-1")]),
    (
        "saha-init-model",
        &[
            ("--hidden", "0"),
            ("--hidden", HUGE),
            ("--layers", "0"),
            ("--heads", "0"),
            ("--heads", "7"),
            ("--vocab", "0"),
            ("--init-std", "nan"),
            ("--init-std", "-1"),
            ("--vision-depth", "0"),
            ("--shards", "0"),
            ("--min-pixels", "0"),
        ],
    ),
    (
        "saha-wordnet",
        &[
            ("--train-per-subset", "0"),
            ("--candidates", "0"),
            ("--candidates", HUGE),
        ],
    ),
    (
        "saha-synth",
        &[
            ("--train-per-subset", "0"),
            ("--train-per-subset", HUGE),
            ("--eval-per-subset", "0"),
            ("--candidates", "0"),
            ("--candidates", "1"),
            ("--candidates", HUGE),
            ("--seed", "-1"),
        ],
    ),
];

/// `--flag=value` (so that a negative value is the flag's, not an argument of its own) and the rest.
fn flag_args(flag: &str, value: &str) -> Vec<String> {
    let mut words = value.split_whitespace();
    let mut args = vec![format!("{flag}={}", words.next().unwrap())];
    args.extend(words.map(str::to_string));
    args
}

/// saha-synth has no input files: only its output.
fn synth() -> Stage {
    Stage::new("saha-synth", &[]).output("--out", "data")
}

#[test]
fn every_stage_refuses_extreme_flags_naming_them() {
    let start = std::time::Instant::now();
    let mut stages = stages();
    stages.push(synth());
    let (mut problems, mut cases) = (Vec::new(), 0);
    for (bin, flags) in CASES {
        let stage = stages.iter().find(|s| s.bin == *bin).unwrap();
        for (flag, value) in *flags {
            let out_dir = fixture().scratch("flags");
            let mut args = stage.args(None, &out_dir);
            args.extend(flag_args(flag, value));
            let out = stage.run(&args);
            problems.extend(check_refused(
                &format!("{bin} {flag} {value}"),
                &args,
                &out,
                &[flag],
                &out_dir,
            ));
            cases += 1;
        }
    }
    eprintln!("{cases} flag cases in {:.1} s", start.elapsed().as_secs_f64());
    assert!(
        problems.is_empty(),
        "{} of {cases} cases went wrong:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
