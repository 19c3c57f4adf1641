//! The table-driven harness: a stage invocation with well-formed inputs, one input at a time
//! replaced by a faulty one, and the checks every refusal must pass.

use std::path::{Path, PathBuf};
use std::process::Output;

use saha_tests::{run, stderr};

use crate::fixture::{fixture, listing};

/// What is wrong with the file given for one input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    Missing,
    Directory,
    Empty,
    /// The first half of the file.
    Truncated,
    /// Bytes in the middle of the Parquet footer (the metadata every reader trusts) inverted.
    BitFlip,
    /// A well-formed file of another schema.
    OtherSchema,
    /// The same artefact of another run (lineage).
    OtherRun,
    /// A file where a folder is expected.
    FileForFolder,
    /// An empty folder where a model or run folder is expected.
    EmptyFolder,
    /// A model folder with one file truncated (`Input::inner` names it).
    InnerTruncated,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Parquet,
    /// JSON, TOML or text: every fault but the Parquet-specific bit flip.
    Text,
    Folder,
}

pub struct Input {
    pub flag: &'static str,
    pub good: PathBuf,
    pub kind: Kind,
    /// A well-formed file of another schema.
    pub other_schema: Option<PathBuf>,
    /// The same input from run `b`.
    pub other_run: Option<PathBuf>,
    /// Files inside a folder input to truncate, one case each.
    pub inner: Vec<&'static str>,
    /// Faults that are not faults for this input (documented behaviour instead).
    pub except: Vec<Fault>,
}

impl Input {
    pub fn parquet(flag: &'static str, good: PathBuf) -> Self {
        Input {
            flag,
            good,
            kind: Kind::Parquet,
            other_schema: None,
            other_run: None,
            inner: Vec::new(),
            except: Vec::new(),
        }
    }

    pub fn text(flag: &'static str, good: PathBuf) -> Self {
        Input {
            kind: Kind::Text,
            ..Self::parquet(flag, good)
        }
    }

    pub fn folder(flag: &'static str, good: PathBuf, inner: &[&'static str]) -> Self {
        Input {
            kind: Kind::Folder,
            inner: inner.to_vec(),
            ..Self::parquet(flag, good)
        }
    }

    pub fn schema(mut self, other: PathBuf) -> Self {
        self.other_schema = Some(other);
        self
    }

    pub fn lineage(mut self, other: PathBuf) -> Self {
        self.other_run = Some(other);
        self
    }

    pub fn except(mut self, faults: &[Fault]) -> Self {
        self.except.extend_from_slice(faults);
        self
    }

    fn faults(&self) -> Vec<Fault> {
        use Fault::*;
        let mut v = match self.kind {
            Kind::Parquet => vec![Missing, Directory, Empty, Truncated, BitFlip],
            Kind::Text => vec![Missing, Directory, Empty, Truncated],
            Kind::Folder => vec![Missing, FileForFolder, EmptyFolder],
        };
        if self.other_schema.is_some() {
            v.push(OtherSchema);
        }
        if self.other_run.is_some() {
            v.push(OtherRun);
        }
        v.retain(|f| !self.except.contains(f));
        v.extend(self.inner.iter().map(|_| InnerTruncated));
        v
    }
}

/// One stage invocation: `lead` (a subcommand and fixed flags), the inputs, and the outputs, each
/// a flag and a name inside the case's own output folder.
pub struct Stage {
    pub bin: &'static str,
    pub lead: Vec<String>,
    pub inputs: Vec<Input>,
    pub outputs: Vec<(&'static str, &'static str)>,
}

impl Stage {
    pub fn new(bin: &'static str, lead: &[&str]) -> Self {
        Stage {
            bin,
            lead: lead.iter().map(|s| s.to_string()).collect(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    pub fn input(mut self, input: Input) -> Self {
        self.inputs.push(input);
        self
    }

    pub fn output(mut self, flag: &'static str, name: &'static str) -> Self {
        self.outputs.push((flag, name));
        self
    }

    /// The arguments with input `swap` (an index and a path) replaced, writing into `out`.
    pub fn args(&self, swap: Option<(usize, &Path)>, out: &Path) -> Vec<String> {
        let mut args = self.lead.clone();
        for (i, input) in self.inputs.iter().enumerate() {
            let path = match swap {
                Some((j, p)) if j == i => p,
                _ => &input.good,
            };
            args.push(input.flag.into());
            args.push(path.display().to_string());
        }
        for (flag, name) in &self.outputs {
            args.push(flag.to_string());
            args.push(out.join(name).display().to_string());
        }
        args
    }

    pub fn run(&self, args: &[String]) -> Output {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(self.bin, &args)
    }

    /// Runs the stage once per input and fault; returns one line per case that went wrong, and the
    /// number of cases.
    pub fn bad_files(&self) -> (Vec<String>, usize) {
        let out = self.run(&self.args(None, &fixture().scratch("good")));
        if !out.status.success() {
            return (
                vec![format!("{} with good inputs fails: {}", self.bin, stderr(&out))],
                1,
            );
        }
        let mut problems = Vec::new();
        let mut cases = 0;
        for (i, input) in self.inputs.iter().enumerate() {
            let mut inner = input.inner.iter();
            for fault in input.faults() {
                let bad_dir = fixture().scratch("bad");
                let (bad, names) = make_bad(input, fault, &bad_dir, inner.by_ref());
                let out_dir = fixture().scratch("out");
                let args = self.args(Some((i, &bad)), &out_dir);
                let label = format!("{} {} {fault:?}", self.bin, input.flag);
                let result = self.run(&args);
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                problems.extend(check_refused(&label, &args, &result, &names, &out_dir));
                cases += 1;
            }
        }
        (problems, cases)
    }
}

/// The faulty stand-in for `input` in `dir`, and the texts the refusal must contain.
fn make_bad<'a>(
    input: &Input,
    fault: Fault,
    dir: &Path,
    inner: &mut impl Iterator<Item = &'a &'static str>,
) -> (PathBuf, Vec<String>) {
    let name = input.good.file_name().unwrap().to_string_lossy().into_owned();
    let bad = dir.join(format!("{fault:?}-{name}").to_lowercase());
    let shown = |p: &Path| vec![p.display().to_string()];
    match fault {
        Fault::Missing => (bad.clone(), shown(&bad)),
        Fault::Directory | Fault::EmptyFolder => {
            std::fs::create_dir_all(&bad).unwrap();
            (bad.clone(), shown(&bad))
        }
        Fault::Empty | Fault::FileForFolder => {
            std::fs::write(&bad, b"").unwrap();
            (bad.clone(), shown(&bad))
        }
        Fault::Truncated => {
            let bytes = std::fs::read(&input.good).unwrap();
            std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
            (bad.clone(), shown(&bad))
        }
        Fault::BitFlip => {
            std::fs::write(&bad, flip_footer(&std::fs::read(&input.good).unwrap())).unwrap();
            (bad.clone(), shown(&bad))
        }
        Fault::OtherSchema => {
            std::fs::copy(input.other_schema.as_ref().unwrap(), &bad).unwrap();
            (bad.clone(), shown(&bad))
        }
        Fault::OtherRun => {
            let other = input.other_run.clone().unwrap();
            let names = shown(&other);
            (other, names)
        }
        Fault::InnerTruncated => {
            let file = *inner.next().unwrap();
            link_tree(&input.good, &bad);
            let target = bad.join(file);
            let bytes = std::fs::read(&target).unwrap();
            std::fs::remove_file(&target).unwrap();
            std::fs::write(&target, &bytes[..bytes.len() / 2]).unwrap();
            (bad, shown(&target))
        }
    }
}

/// A copy of the folder `from` at `to` whose files are hard links (cheap, and the original is never
/// written: a corrupted file is replaced, not changed in place).
fn link_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            link_tree(&src, &dst);
        } else {
            std::fs::hard_link(&src, &dst).unwrap();
        }
    }
}

/// The bytes of a Parquet file with 16 bytes in the middle of its footer metadata inverted.
pub fn flip_footer(bytes: &[u8]) -> Vec<u8> {
    let n = bytes.len();
    let meta_len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    let mid = n - 8 - meta_len / 2;
    let mut out = bytes.to_vec();
    for b in &mut out[mid - 8..mid + 8] {
        *b ^= 0xff;
    }
    out
}

/// What a refusal must look like: a non-zero exit status (not a signal), the `names` in stderr, no
/// panic or backtrace hint, and nothing left in `out_dir`. Returns the problems found.
pub fn check_refused(label: &str, args: &[String], out: &Output, names: &[&str], out_dir: &Path) -> Vec<String> {
    let err = stderr(out);
    let mut problems = Vec::new();
    match out.status.code() {
        Some(0) => problems.push("exit status 0".to_string()),
        None => problems.push(format!("killed by a signal ({:?})", out.status)),
        Some(_) => {}
    }
    for name in names {
        if !err.contains(name) {
            problems.push(format!("stderr does not name {name}"));
        }
    }
    for bad in ["panicked at", "RUST_BACKTRACE"] {
        if err.contains(bad) {
            problems.push(format!("stderr has {bad:?}"));
        }
    }
    let left = listing(out_dir);
    if !left.is_empty() {
        problems.push(format!("left behind in the output folder: {left:?}"));
    }
    if problems.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "{label}: {}\n    args: {}\n    stderr: {}",
        problems.join("; "),
        args.join(" "),
        err.trim().replace('\n', "\n            ")
    )]
}
