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
        let prefix = format!(".{}.tmp-", name.to_string_lossy());
        remove_stale_temps(dir, &prefix);
        let temp = dir.join(format!("{prefix}{}", std::process::id()));
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

/// Removes the temporaries `<prefix><pid>` in `dir` of processes that no longer run (killed before
/// they could), so a rerun after `kill -9` leaves the folder as an uninterrupted run does. Where
/// running processes cannot be told (no /proc), nothing is removed.
fn remove_stale_temps(dir: &Path, prefix: &str) {
    let proc = Path::new("/proc");
    let Ok(entries) = fs::read_dir(dir) else { return };
    if !proc.join("self").exists() {
        return;
    }
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !proc.join(pid).exists() {
            let _ = fs::remove_file(e.path());
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

    #[test]
    fn temporaries_of_dead_processes_are_removed_those_of_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        // A pid above Linux's pid_max (2^22) runs nowhere; pid 1 always runs.
        let dead = dir.path().join(".out.txt.tmp-4194399");
        let live = dir.path().join(".out.txt.tmp-1");
        let other = dir.path().join(".other.txt.tmp-4194399");
        for p in [&dead, &live, &other] {
            fs::write(p, b"half").unwrap();
        }
        let mut names = Vec::new();
        {
            let _open = AtomicFile::create(&target).unwrap();
            names.extend(fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()));
        }
        assert!(names.contains(&live) && names.contains(&other) && !names.contains(&dead));
    }
}
