//! SIGKILL at several points of every long stage, then a rerun: after each kill every output is
//! absent or already complete (never half written), and the final rerun leaves exactly the files,
//! byte for byte, of an uninterrupted run at the same paths (no temporary or work file).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use saha_tests::bin;

use crate::bad_files::stages;
use crate::fixture::{fixture, listing};
use crate::harness::Stage;

/// When to kill: a share of the uninterrupted run's wall time, or once a path under the output
/// folder matches (polled), e.g. the first temporary file or the n-th finished part.
#[derive(Clone, Copy, Debug)]
enum Point {
    Share(f64),
    Files(&'static str, usize),
}

/// Wall-clock figures, not results: left out of the comparison.
const TIMINGS: &[&str] = &["timings.json"];

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    listing(dir)
        .into_iter()
        .filter(|p| !TIMINGS.iter().any(|t| p.ends_with(t)))
        .map(|p| {
            let full = dir.join(&p);
            let bytes = if full.is_dir() {
                Vec::new()
            } else {
                std::fs::read(&full).unwrap()
            };
            (p, bytes)
        })
        .collect()
}

fn spawn(stage: &Stage, args: &[String]) -> std::process::Child {
    Command::new(bin(stage.bin))
        .args(args)
        .env("SAHA_NO_PROGRESS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// How many files or folders under `dir` have `pattern` in their name.
fn count(dir: &Path, pattern: &str) -> usize {
    listing(dir)
        .iter()
        .filter(|p| p.rsplit('/').next().unwrap().contains(pattern))
        .count()
}

/// Runs the stage until `point`, kills it there (unless it ended first); whether the kill landed.
fn run_until(stage: &Stage, args: &[String], out: &Path, point: Point, full: Duration) -> bool {
    let mut child = spawn(stage, args);
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let due = match point {
            Point::Share(s) => start.elapsed() >= full.mul_f64(s),
            Point::Files(pattern, n) => count(out, pattern) >= n,
        };
        if due || start.elapsed() > full * 20 + Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The kill-and-rerun check of one stage: `lead` replaces the table's fixed flags, `rerun` gives the
/// flags added to every run after the first from what the output folder holds (e.g. `--resume`).
fn killed_and_rerun(bin_name: &str, sub: &str, lead: &[&str], rerun: fn(&Path) -> Vec<String>, points: &[Point]) {
    let mut stage = stages()
        .into_iter()
        .find(|s| s.bin == bin_name && (sub.is_empty() || s.lead.first().map(String::as_str) == Some(sub)))
        .unwrap();
    stage.lead = lead.iter().map(|s| s.to_string()).collect();
    let dir = fixture().scratch(&format!("kill-{}", bin_name.trim_start_matches("saha-")));
    let out = dir.join("out");
    let args = stage.args(None, &out);

    // The uninterrupted run, at the same paths (outputs record their arguments), moved aside.
    let start = Instant::now();
    let done = stage.run(&args);
    let full = start.elapsed();
    assert!(done.status.success(), "{bin_name}: {}", saha_tests::stderr(&done));
    let reference = tree(&out);
    std::fs::rename(&out, dir.join("reference")).unwrap();

    let outputs: Vec<String> = stage.outputs.iter().map(|(_, name)| name.to_string()).collect();
    let rerun_args = || [args.clone(), rerun(&out)].concat();
    let mut landed = Vec::new();
    for (i, &point) in points.iter().enumerate() {
        let args = if i == 0 { args.clone() } else { rerun_args() };
        if run_until(&stage, &args, &out, point, full) {
            landed.push(format!("{point:?}"));
        }
        // An output file is there only once complete (outputs that are folders fill step by step).
        for name in &outputs {
            if let Ok(bytes) = std::fs::read(out.join(name)) {
                assert!(
                    reference.get(name) == Some(&bytes),
                    "{bin_name}: after a kill at {point:?}, {name} is there but differs from a complete run's"
                );
            }
        }
    }
    let last = stage.run(&rerun_args());
    assert!(
        last.status.success(),
        "{bin_name}: the rerun after the kills fails: {}",
        saha_tests::stderr(&last)
    );
    let after = tree(&out);
    let names = |t: &BTreeMap<String, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&after),
        names(&reference),
        "{bin_name}: the files after kills and a rerun are not those of an uninterrupted run"
    );
    for (path, bytes) in &after {
        assert!(
            &reference[path] == bytes,
            "{bin_name}: {path} differs from the uninterrupted run's"
        );
    }
    assert!(!landed.is_empty(), "{bin_name}: no kill landed while the stage ran");
    eprintln!(
        "{bin_name}: uninterrupted {:.2} s; killed at {landed:?}; rerun identical",
        full.as_secs_f64()
    );
}

const SHARES: [Point; 4] = [
    Point::Share(0.0),
    Point::Share(0.3),
    Point::Share(0.6),
    Point::Share(0.9),
];

#[test]
fn embed_killed_and_rerun_gives_the_same_bytes() {
    killed_and_rerun(
        "saha-embed",
        "",
        &["--part-items", "16"],
        |_| Vec::new(),
        &[
            Point::Share(0.0),
            Point::Files("part-", 1),
            Point::Share(0.5),
            Point::Files("part-", 4),
            Point::Files(".tmp-", 1),
            Point::Share(0.9),
        ],
    );
}

#[test]
fn mining_stages_killed_and_rerun_give_the_same_bytes() {
    let points = [&SHARES[..], &[Point::Files(".tmp-", 1)]].concat();
    killed_and_rerun("saha-retrieve", "", &[], |_| Vec::new(), &points);
    killed_and_rerun("saha-remap", "", &[], |_| Vec::new(), &points);
    killed_and_rerun(
        "saha-filter",
        "",
        &["--also-classification", "ShapeClass"],
        |_| Vec::new(),
        &points,
    );
}

#[test]
fn train_killed_and_resumed_gives_the_same_bytes() {
    killed_and_rerun(
        "saha-train",
        "",
        &["--max-steps", "6", "--clusters-per-step", "2", "--save-steps", "2"],
        // As the Makefile reruns it: resume from the newest checkpoint, or start over when there is none.
        |out| {
            let finished = |e: std::fs::DirEntry| e.file_name().to_string_lossy().starts_with("checkpoint-");
            let resumable = std::fs::read_dir(out.join("train")).is_ok_and(|rd| rd.flatten().any(finished));
            vec![if resumable { "--resume" } else { "--overwrite" }.to_string()]
        },
        &[
            Point::Share(0.0),
            Point::Share(0.2),
            Point::Files("checkpoint-", 1),
            Point::Share(0.6),
            Point::Files("checkpoint-", 2),
            Point::Share(0.95),
        ],
    );
}

#[test]
fn eval_killed_and_rerun_gives_the_same_bytes() {
    let points = [&SHARES[..], &[Point::Files(".tmp-", 1)]].concat();
    killed_and_rerun("saha-eval", "mmeb", &["mmeb", "--quiet"], |_| Vec::new(), &points);
}
