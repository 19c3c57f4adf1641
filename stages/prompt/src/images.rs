//! Image path policy: paths are relative to the image root and may not leave it.

use std::path::{Component, Path, PathBuf};

use clap::ValueEnum;
use rayon::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnMissing {
    /// Stop with an error naming the first missing image (file, row, column).
    Error,
    /// Leave out rows with a missing image and list them in skipped.parquet.
    Skip,
}

pub struct ImagePolicy {
    pub root: PathBuf,
    pub allow_outside_root: bool,
}

impl ImagePolicy {
    /// Why `rel` is not an acceptable image path, if it is not.
    pub fn refuse(&self, rel: &str) -> Option<String> {
        if self.allow_outside_root {
            return None;
        }
        let path = Path::new(rel);
        if path.is_absolute() {
            return Some(format!("image path `{rel}` is absolute; paths must be relative to the image root (--allow-outside-root permits it)"));
        }
        let mut depth: i64 = 0;
        for c in path.components() {
            match c {
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
                _ => {}
            }
            if depth < 0 {
                return Some(format!(
                    "image path `{rel}` escapes the image root with `..` (--allow-outside-root permits it)"
                ));
            }
        }
        None
    }

    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Which of `paths` do not exist as files, checked in parallel.
    pub fn missing<'a>(&self, paths: &[&'a str]) -> Vec<&'a str> {
        paths
            .par_iter()
            .filter(|p| !self.resolve(p).is_file())
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_absolute_and_escaping_paths() {
        let p = ImagePolicy {
            root: "/data".into(),
            allow_outside_root: false,
        };
        assert!(p.refuse("A/b.png").is_none());
        assert!(p.refuse("A/../b.png").is_none());
        assert!(p.refuse("/etc/passwd").unwrap().contains("absolute"));
        assert!(p.refuse("A/../../b.png").unwrap().contains("escapes"));
        let open = ImagePolicy {
            allow_outside_root: true,
            ..p
        };
        assert!(open.refuse("../x.png").is_none());
    }
}
