use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, SchemaError};

/// A file that appears at its final path only when [`AtomicFile::commit`] succeeds.
///
/// Bytes go to a hidden temporary file in the same folder (so the final rename never crosses a
/// file system); commit flushes and fsyncs it, renames it over the target and fsyncs the folder.
/// Dropping an uncommitted file removes the temporary, so a failed stage leaves nothing behind
/// for make to mistake for a finished artefact.
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<Self> {
        let dir = parent_dir(target);
        fs::create_dir_all(dir).map_err(|e| SchemaError::io(dir, e))?;
        let name = target
            .file_name()
            .ok_or_else(|| SchemaError::invalid(target, "output path has no file name"))?;
        let temp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
        let file = File::create(&temp).map_err(|e| SchemaError::io(&temp, e))?;
        Ok(Self {
            target: target.to_path_buf(),
            temp,
            file: Some(file),
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("AtomicFile used after commit")
    }

    /// Replaces the file handle with one the caller got back from a writer that owned it.
    pub fn restore(&mut self, file: File) {
        self.file = Some(file);
    }

    pub fn take(&mut self) -> File {
        self.file.take().expect("AtomicFile used after commit")
    }

    pub fn commit(mut self) -> Result<PathBuf> {
        let mut file = self.file.take().expect("AtomicFile committed twice");
        file.flush().map_err(|e| SchemaError::io(&self.temp, e))?;
        file.sync_all().map_err(|e| SchemaError::io(&self.temp, e))?;
        drop(file);
        fs::rename(&self.temp, &self.target).map_err(|e| SchemaError::io(&self.target, e))?;
        if let Ok(dir) = File::open(parent_dir(&self.target)) {
            // Persisting the rename is best effort: some file systems refuse fsync on folders.
            let _ = dir.sync_all();
        }
        let target = std::mem::take(&mut self.target);
        self.temp = PathBuf::new();
        Ok(target)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `target` atomically.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> Result<()> {
    let mut out = AtomicFile::create(target)?;
    out.file().write_all(bytes).map_err(|e| SchemaError::io(target, e))?;
    out.commit()?;
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.parquet");
        {
            let mut f = AtomicFile::create(&target).unwrap();
            f.file().write_all(b"half").unwrap();
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_replaces_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/out.txt");
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path().join("sub")).unwrap().count(), 1);
    }
}
