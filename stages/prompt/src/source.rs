//! Finds the Parquet files of each subset in `--data`: one file, a folder with one file per
//! subset, or a Hugging Face dataset folder (one sub-folder per subset, files per split).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsetSource {
    pub name: String,
    pub files: Vec<PathBuf>,
}

fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The split a Hugging Face file belongs to: `test-00000-of-00001.parquet` and `test.parquet`
/// are split `test`.
fn split_of_file(p: &Path) -> String {
    let s = stem(p);
    match s.find("-0") {
        Some(i) if s[i..].contains("-of-") => s[..i].to_string(),
        _ => s,
    }
}

/// The files of each split inside one Hugging Face subset folder: `<split>-*.parquet` files,
/// `<split>/*.parquet` folders, and the same under `data/`.
fn splits_in(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut splits: Vec<(String, Vec<PathBuf>)> = Vec::new();
    let mut add = |name: String, file: PathBuf| match splits.iter_mut().find(|(n, _)| *n == name) {
        Some((_, files)) => files.push(file),
        None => splits.push((name, vec![file])),
    };
    let data = dir.join("data");
    for base in [dir, data.as_path()] {
        if !base.is_dir() {
            continue;
        }
        for f in parquet_files(base)? {
            add(split_of_file(&f), f);
        }
        for sub in subdirs(base)? {
            if sub == data {
                continue;
            }
            for f in parquet_files(&sub)? {
                add(stem(&sub), f);
            }
        }
    }
    splits.sort();
    Ok(splits)
}

/// Resolves `data` into subsets. `split` picks the split in Hugging Face folders (optional when
/// there is only one); `only` keeps and orders the named subsets.
pub fn discover(data: &Path, split: Option<&str>, only: &[String]) -> Result<Vec<SubsetSource>> {
    if !data.exists() {
        bail!("data {}: no such file or folder", data.display());
    }
    let mut found = if data.is_file() {
        vec![SubsetSource {
            name: stem(data),
            files: vec![data.to_path_buf()],
        }]
    } else {
        let direct = parquet_files(data)?;
        if !direct.is_empty() {
            direct
                .into_iter()
                .map(|f| SubsetSource {
                    name: stem(&f),
                    files: vec![f],
                })
                .collect()
        } else {
            let mut out = Vec::new();
            for dir in subdirs(data)? {
                let splits = splits_in(&dir)?;
                if splits.is_empty() {
                    continue;
                }
                let files = pick_split(&dir, splits, split)?;
                out.push(SubsetSource {
                    name: stem(&dir),
                    files,
                });
            }
            out
        }
    };
    if found.is_empty() {
        bail!("data {}: no Parquet files found (expected a .parquet file, a folder of them, or a Hugging Face dataset folder)", data.display());
    }
    if only.is_empty() {
        return Ok(found);
    }
    let mut picked = Vec::with_capacity(only.len());
    for name in only {
        let Some(i) = found.iter().position(|s| &s.name == name) else {
            let names: Vec<_> = found.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "data {}: no subset `{name}`; available: {}",
                data.display(),
                names.join(", ")
            );
        };
        picked.push(found.swap_remove(i));
    }
    Ok(picked)
}

fn pick_split(dir: &Path, splits: Vec<(String, Vec<PathBuf>)>, split: Option<&str>) -> Result<Vec<PathBuf>> {
    let names = || splits.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
    match split {
        Some(want) => match splits.iter().find(|(n, _)| n == want) {
            Some((_, files)) => Ok(files.clone()),
            None => bail!("{}: no split `{want}`; available: {}", dir.display(), names()),
        },
        None if splits.len() == 1 => Ok(splits.into_iter().next().unwrap().1),
        None => bail!(
            "{}: several splits ({}); choose one with --split",
            dir.display(),
            names()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"").unwrap();
    }

    #[test]
    fn three_layouts() {
        let d = tempfile::tempdir().unwrap();
        let one = d.path().join("one/VisDial.parquet");
        touch(&one);
        assert_eq!(discover(&one, None, &[]).unwrap()[0].name, "VisDial");

        touch(&d.path().join("flat/B.parquet"));
        touch(&d.path().join("flat/A.parquet"));
        let names: Vec<_> = discover(&d.path().join("flat"), None, &[])
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["A", "B"]);

        let hf = d.path().join("hf");
        touch(&hf.join("CIRR/original-00000-of-00001.parquet"));
        touch(&hf.join("CIRR/diverse_instruction-00000-of-00002.parquet"));
        touch(&hf.join("CIRR/diverse_instruction-00001-of-00002.parquet"));
        touch(&hf.join("N24News/data/diverse_instruction-00000-of-00001.parquet"));
        touch(&hf.join("N24News/data/original-00000-of-00001.parquet"));
        let err = discover(&hf, None, &[]).unwrap_err().to_string();
        assert!(
            err.contains("several splits") && err.contains("diverse_instruction, original"),
            "{err}"
        );
        let subsets = discover(&hf, Some("diverse_instruction"), &["N24News".into(), "CIRR".into()]).unwrap();
        assert_eq!(subsets[0].name, "N24News");
        assert_eq!(subsets[1].files.len(), 2);
        let err = discover(&hf, Some("train"), &[]).unwrap_err().to_string();
        assert!(err.contains("no split `train`"), "{err}");
        let err = discover(&hf, Some("original"), &["Nope".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no subset `Nope`"), "{err}");
    }
}
