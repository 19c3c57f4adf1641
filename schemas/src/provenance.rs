use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::marker::PhantomData;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, SchemaError};

/// Parquet key-value metadata keys written on every artefact.
pub const KEY_ARTEFACT: &str = "saha.artefact";
pub const KEY_STAGE: &str = "saha.stage";
pub const KEY_VERSION: &str = "saha.version";
pub const KEY_PARAMS: &str = "saha.params";
pub const KEY_INPUTS: &str = "saha.inputs";
pub const KEY_STATS: &str = "saha.stats";

/// A footer parameter that another stage reads back: its name and its type in one place, so the
/// writer and the readers cannot disagree on either.
pub struct ParamKey<T> {
    pub name: &'static str,
    value: PhantomData<fn() -> T>,
}

impl<T> ParamKey<T> {
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            value: PhantomData,
        }
    }
}

/// How deep saha-retrieve retrieved (candidates per query); saha-filter checks its budget against it.
pub const RETRIEVAL_DEPTH: ParamKey<usize> = ParamKey::new("pool");

/// The run an artefact belongs to: the fingerprint of the saha-prompt (or sugarcrepe-items) call
/// that made its items and pairs, inherited by every artefact made from them. Inputs of different
/// origins are refused (see [`Provenance::input`]).
pub const ORIGIN: ParamKey<String> = ParamKey::new("origin");
/// The backbone items were rendered for (`saha-prompt --backbone`: `qwen2-vl`, `qwen2.5-vl`, ...): its chat
/// template and image tokens. saha-embed refuses items rendered for another backbone than its model's.
pub const BACKBONE: ParamKey<String> = ParamKey::new("backbone");

/// Refuses items rendered for another backbone than the model's (`model`, e.g. `qwen2.5-vl`, of the snapshot
/// in `model_dir`): their chat template or image tokens would be wrong for it. Items that record no
/// backbone (made before it was recorded, or by another tool) pass.
pub fn check_backbone(
    items: &Path,
    provenance: Option<&Provenance>,
    model: &str,
    model_dir: &Path,
) -> std::result::Result<(), String> {
    match provenance.and_then(|p| p.get(&BACKBONE)) {
        Some(rendered) if rendered != model => Err(format!(
            "{}: the items were rendered for backbone `{rendered}` (saha-prompt --backbone {rendered}), but the \
             model {} is `{model}`; render them again with --backbone {model}, or use a {rendered} model",
            items.display(),
            model_dir.display()
        )),
        _ => Ok(()),
    }
}

/// Further origins of inputs combined deliberately (`--allow-mixed-runs`).
pub const MIXED_ORIGINS: ParamKey<Vec<String>> = ParamKey::new("mixed_origins");

/// Footer stat of saha-embed with `--on-bad-image skip`: the ids of the items it left out (ascending).
/// Only these items may lack an embedding downstream; the stages that drop pairs for them pass the
/// list on in their own footers (retrieve to remap, filter to train).
pub const SKIPPED_ITEM_IDS: &str = "skipped_item_ids";
/// Footer stat of saha-embed: skipped items counted by kind of fault (`missing`, `undecodable`, ...).
pub const SKIPPED_REASONS: &str = "skipped_reasons";
/// Footer stat of the stages that leave pairs out because an item of theirs was skipped by saha-embed.
pub const LEFT_OUT_PAIRS: &str = "left_out_pairs";
/// Why [`LEFT_OUT_PAIRS`] were left out, as the stages print it.
pub const LEFT_OUT_REASON: &str = "their query or positive image was skipped by saha-embed (--on-bad-image skip)";

/// The items recorded as skipped ([`SKIPPED_ITEM_IDS`]) in a footer; empty when none.
pub fn skipped_item_ids(provenance: Option<&Provenance>) -> Vec<u32> {
    provenance
        .and_then(|p| p.stats.get(SKIPPED_ITEM_IDS))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// One input file of a stage and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputHash {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

impl InputHash {
    /// Hashes the file at `path`.
    pub fn of(path: &Path) -> Result<Self> {
        let (sha256, bytes) = sha256_file(path)?;
        Ok(InputHash {
            path: path.display().to_string(),
            sha256,
            bytes,
        })
    }
}

/// What produced an artefact: stage, version, parameters, inputs and summary counts.
/// It is stored in the Parquet footer, so `saha-sql` and any Parquet tool can show it, and it
/// holds no clock time, so the same inputs and parameters give byte-identical files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub stage: String,
    pub version: String,
    pub params: BTreeMap<String, serde_json::Value>,
    pub inputs: Vec<InputHash>,
    pub stats: BTreeMap<String, serde_json::Value>,
    /// The input whose origin this artefact inherited (for error messages; not stored).
    #[serde(skip)]
    origin_from: Option<String>,
    /// Accept inputs of different origins, recording them under [`MIXED_ORIGINS`] (not stored).
    #[serde(skip)]
    pub allow_mixed_runs: bool,
}

impl Provenance {
    pub fn new(stage: &str, version: &str) -> Self {
        Self {
            stage: stage.to_string(),
            version: version.to_string(),
            ..Self::default()
        }
    }

    pub fn param(&mut self, key: &str, value: impl Serialize) -> &mut Self {
        self.params.insert(key.to_string(), to_json(value));
        self
    }

    /// Records a parameter that other stages read back through the same key.
    pub fn set<T: Serialize>(&mut self, key: &ParamKey<T>, value: T) -> &mut Self {
        self.param(key.name, value)
    }

    /// A parameter recorded with [`Self::set`]; `None` when absent or not of the key's type.
    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &ParamKey<T>) -> Option<T> {
        self.params
            .get(key.name)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    pub fn stat(&mut self, key: &str, value: impl Serialize) -> &mut Self {
        self.stats.insert(key.to_string(), to_json(value));
        self
    }

    /// Hashes `path` and records it as an input, inheriting its origin (see [`Self::add_input`]).
    pub fn input(&mut self, path: &Path) -> Result<&mut Self> {
        let hash = InputHash::of(path)?;
        self.add_input(path, hash)
    }

    /// Records an input hashed elsewhere. When `path` is an artefact of some run (its footer has an
    /// [`ORIGIN`]), this artefact inherits that origin; an input of another origin than the inputs
    /// before it is an error naming both files, unless `allow_mixed_runs`.
    pub fn add_input(&mut self, path: &Path, hash: InputHash) -> Result<&mut Self> {
        if let Some(theirs) = origin_of(path) {
            match self.get(&ORIGIN) {
                None => {
                    self.set(&ORIGIN, theirs);
                    self.origin_from = Some(path.display().to_string());
                }
                Some(ours) if ours == theirs => {}
                Some(_) if self.allow_mixed_runs => {
                    let mut mixed = self.get(&MIXED_ORIGINS).unwrap_or_default();
                    if !mixed.contains(&theirs) {
                        mixed.push(theirs);
                    }
                    self.set(&MIXED_ORIGINS, mixed);
                }
                Some(ours) => {
                    return Err(SchemaError::invalid(
                        path,
                        format!(
                            "comes from another run than {} (origin {} vs {}): files of different runs cannot be \
mixed (--allow-mixed-runs combines them deliberately)",
                            self.origin_from.as_deref().unwrap_or("the inputs before it"),
                            short(&theirs),
                            short(&ours),
                        ),
                    ))
                }
            }
        }
        self.inputs.push(hash);
        Ok(self)
    }

    /// A hash of everything that decides a stage's result, parameters and input contents (not paths):
    /// equal fingerprints mean a resumed run may reuse what an interrupted one wrote.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(to_json_string(&self.params));
        for input in &self.inputs {
            hash.update(input.sha256.as_bytes());
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key-value pairs to store in a Parquet footer for artefact `artefact`.
    pub fn to_key_values(&self, artefact: &str) -> Vec<(String, String)> {
        vec![
            (KEY_ARTEFACT.into(), artefact.into()),
            (KEY_STAGE.into(), self.stage.clone()),
            (KEY_VERSION.into(), self.version.clone()),
            (KEY_PARAMS.into(), to_json_string(&self.params)),
            (KEY_INPUTS.into(), to_json_string(&self.inputs)),
            (KEY_STATS.into(), to_json_string(&self.stats)),
        ]
    }

    /// Reads provenance back from footer key-values; `None` when the file was not written by a
    /// saha stage.
    pub fn from_key_values(kv: &BTreeMap<String, String>) -> Option<Self> {
        let stage = kv.get(KEY_STAGE)?.clone();
        fn parse<T: serde::de::DeserializeOwned>(kv: &BTreeMap<String, String>, key: &str) -> Option<T> {
            kv.get(key).and_then(|s| serde_json::from_str(s).ok())
        }
        Some(Self {
            stage,
            version: kv.get(KEY_VERSION).cloned().unwrap_or_default(),
            params: parse(kv, KEY_PARAMS).unwrap_or_default(),
            inputs: parse(kv, KEY_INPUTS).unwrap_or_default(),
            stats: parse(kv, KEY_STATS).unwrap_or_default(),
            ..Self::default()
        })
    }
}

/// The origin recorded in `path`'s footer, if `path` is a saha artefact that has one.
fn origin_of(path: &Path) -> Option<String> {
    let is_parquet = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    if !is_parquet {
        return None;
    }
    crate::read::ParquetTable::open(path).ok()?.provenance()?.get(&ORIGIN)
}

fn short(origin: &str) -> &str {
    &origin[..origin.len().min(12)]
}

fn to_json_string(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("provenance values serialise")
}

fn to_json(value: impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).expect("provenance values serialise")
}

/// SHA-256 of a file's bytes, streamed, as lowercase hex, and its length.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path).map_err(|e| SchemaError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| SchemaError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let hex = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_key_values() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.bin");
        std::fs::write(&input, b"abc").unwrap();
        let mut p = Provenance::new("prompt", "0.1.0");
        p.param("top_k", 15).param("system", "sys");
        p.input(&input).unwrap();
        p.stat("rows", 3);
        assert_eq!(
            p.inputs[0].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let kv: BTreeMap<_, _> = p.to_key_values("pairs").into_iter().collect();
        assert_eq!(kv[KEY_ARTEFACT], "pairs");
        assert_eq!(Provenance::from_key_values(&kv).unwrap(), p);
    }
}
