//! Flags that several stage binaries take, declared once (each stage flattens the groups it needs
//! with `#[command(flatten)]`), so a flag has one name, one help text and one default everywhere.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use clap::{Args, ValueEnum};
use serde::Serialize;

/// The one rule for image paths: every stage that reads images joins the paths written in the data
/// to `--image-root`, which defaults to the current folder, and opens nothing outside it.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ImageRoot {
    /// Folder that the image paths in the data are relative to (the same folder for every stage of
    /// a run).
    #[arg(long, default_value = ".")]
    pub image_root: PathBuf,
    /// Accept image paths that leave the image root: absolute paths, paths that climb out with
    /// `..`, and symbolic links inside the root that point outside it.
    #[arg(long)]
    pub allow_outside_root: bool,
    /// The root's real path (symbolic links followed), resolved on first use; `None` when the
    /// root does not exist.
    #[arg(skip)]
    #[serde(skip)]
    real_root: OnceLock<Option<PathBuf>>,
}

impl ImageRoot {
    pub fn new(image_root: impl Into<PathBuf>) -> Self {
        ImageRoot {
            image_root: image_root.into(),
            ..Self::default()
        }
    }

    /// The same root with `--allow-outside-root` set (absolute paths, as benchmarks write them).
    pub fn allowing_outside_root(self) -> Self {
        ImageRoot {
            allow_outside_root: true,
            ..self
        }
    }

    pub fn path(&self) -> &Path {
        &self.image_root
    }

    /// `relative` joined to the root, or why it may not be opened: an absolute path, a path that
    /// climbs out of the root with `..`, or a file whose real location (symbolic links followed)
    /// is outside the root's real location. A file that does not exist is left to the caller.
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, String> {
        let joined = self.image_root.join(relative);
        if self.allow_outside_root {
            return Ok(joined);
        }
        let flag = "--allow-outside-root permits it";
        let path = Path::new(relative);
        if path.is_absolute() {
            return Err(format!(
                "image path `{relative}` is absolute; paths must be relative to the image root ({flag})"
            ));
        }
        let mut depth: i64 = 0;
        for c in path.components() {
            match c {
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
                _ => {}
            }
            if depth < 0 {
                return Err(format!(
                    "image path `{relative}` escapes the image root with `..` ({flag})"
                ));
            }
        }
        let root = self.real_root.get_or_init(|| self.image_root.canonicalize().ok());
        if let (Ok(real), Some(root)) = (joined.canonicalize(), root) {
            if !real.starts_with(root) {
                return Err(format!(
                    "image path `{relative}` leads through a symbolic link to {}, outside the image root {} ({flag})",
                    real.display(),
                    root.display()
                ));
            }
        }
        Ok(joined)
    }
}

/// How large an image file may be decoded, for the stages that decode images (embed, train).
#[derive(Debug, Clone, Copy, Args, Serialize)]
pub struct ImageLimits {
    /// Images with more pixels are bad images (skipped with --on-bad-image skip), as Pillow refuses
    /// them as decompression bombs (default: Pillow's limit, 2 x MAX_IMAGE_PIXELS). Raise it for
    /// genuinely huge images.
    #[arg(long, default_value_t = 178_956_970, value_parser = crate::numbers::count_u64)]
    pub max_image_pixels: u64,
}

/// Artefacts remember the run they come from (the saha-prompt call that made their items and
/// pairs); a stage refuses inputs of different runs unless told that the mix is deliberate.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct MixedRuns {
    /// Accept inputs that come from different runs (e.g. embeddings made elsewhere for these
    /// pairs); the other runs are recorded in the output's footer as mixed_origins.
    #[arg(long)]
    pub allow_mixed_runs: bool,
}

/// Embeddings a stage scores or mines with.
#[derive(Debug, Clone, Args, Serialize)]
pub struct EmbeddingsInput {
    /// embeddings.parquet from saha-embed; repeat to combine files (e.g. queries and targets
    /// embedded apart; all must come from the same model).
    #[arg(long, required = true)]
    pub embeddings: Vec<PathBuf>,
    /// Use raw inner products, without L2-normalising the vectors (the reference normalises).
    #[arg(long)]
    pub no_normalize: bool,
}

impl EmbeddingsInput {
    pub fn normalize(&self) -> bool {
        !self.no_normalize
    }
}

/// The model a stage runs, and where and in what precision it computes.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ModelArgs {
    /// Hugging Face snapshot folder of a Qwen2-VL model (config.json, *.safetensors,
    /// tokenizer.json, preprocessor_config.json).
    #[arg(long, required = true)]
    #[serde(skip)]
    pub model: Option<PathBuf>,
    /// cpu, or cuda:N (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Compute dtype; auto is f32 on the CPU (candle has no fast bf16 matmul there) and bf16 on CUDA.
    #[arg(long, value_enum, default_value_t = Dtype::Auto)]
    pub dtype: Dtype,
}

impl ModelArgs {
    /// The snapshot folder (`None` only where a subcommand lifted the requirement).
    pub fn dir(&self) -> Option<&Path> {
        self.model.as_deref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dtype {
    Auto,
    F32,
    Bf16,
    F16,
}

/// How a prompt longer than the stage's token limit is made to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Truncate {
    /// Drop tokens from the end of the user's text, never the chat tail or image tokens (the
    /// reference cuts the tail, which moves the pooled token).
    UserText,
    /// Stop with an error naming the item.
    Error,
}

#[cfg(test)]
mod image_root_tests {
    use super::*;

    #[test]
    fn refuses_absolute_escaping_and_linked_out_paths() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.png"), b"x").unwrap();
        std::fs::create_dir(root.path().join("A")).unwrap();
        std::fs::write(root.path().join("A/b.png"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.png"), root.path().join("A/link.png")).unwrap();
        std::os::unix::fs::symlink(root.path().join("A/b.png"), root.path().join("inside.png")).unwrap();
        let r = ImageRoot::new(root.path());
        assert_eq!(r.resolve("A/b.png").unwrap(), root.path().join("A/b.png"));
        assert!(r.resolve("A/../A/b.png").is_ok());
        assert!(r.resolve("inside.png").is_ok(), "a link that stays inside the root");
        assert!(
            r.resolve("missing.png").is_ok(),
            "missing files are the caller's business"
        );
        assert!(r.resolve("/etc/passwd").unwrap_err().contains("absolute"));
        assert!(r.resolve("A/../../b.png").unwrap_err().contains("escapes"));
        let e = r.resolve("A/link.png").unwrap_err();
        assert!(
            e.contains("symbolic link") && e.contains("secret.png") && e.contains("--allow-outside-root"),
            "{e}"
        );
        let open = r.allowing_outside_root();
        assert!(open.resolve("A/link.png").is_ok() && open.resolve("../x.png").is_ok());
    }
}
