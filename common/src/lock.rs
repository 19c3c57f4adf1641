//! One process per output: a stage holds an exclusive lock on a file in its output's working folder
//! for as long as it runs. The lock is the operating system's (`flock` on Linux), so it goes away
//! with the process however that ends, `kill -9` included; the file itself stays and means nothing
//! when no one holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// The name of the lock file inside the locked folder (hidden, so no stage mistakes it for data).
pub const FILE: &str = ".lock";

/// Held while the value lives.
#[derive(Debug)]
pub struct FolderLock {
    path: PathBuf,
    /// Whether `acquire` made the folder (then a failed run may remove it again).
    created: bool,
    _file: File,
}

impl FolderLock {
    /// Creates `folder` if needed and locks `folder/.lock`, or fails at once, naming the lock file and
    /// `output` (what the folder belongs to) when another process holds it.
    pub fn acquire(folder: &Path, output: &Path) -> Result<Self, String> {
        let created = !folder.exists();
        std::fs::create_dir_all(folder).map_err(|e| format!("creating {}: {e}", folder.display()))?;
        let path = folder.join(FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("opening the lock file {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(FolderLock {
                path,
                created,
                _file: file,
            }),
            Err(TryLockError::WouldBlock) => Err(format!(
                "another process is writing {} (it holds the lock {}); one process per output: wait for it to end, \
                 or give this one another output",
                output.display(),
                path.display()
            )),
            Err(TryLockError::Error(e)) => Err(format!("locking {}: {e}", path.display())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// After a failed run: when this lock made its folder and nothing but the lock file is in it,
    /// removes both, so a run that stopped before writing anything leaves nothing behind.
    pub fn discard_if_alone(self) {
        let Some(folder) = self.path.parent() else { return };
        let alone = std::fs::read_dir(folder).is_ok_and(|entries| entries.flatten().all(|e| e.path() == self.path));
        if self.created && alone {
            let _ = std::fs::remove_file(&self.path);
            let _ = std::fs::remove_dir(folder);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("out.work");
        let first = FolderLock::acquire(&folder, Path::new("out")).unwrap();
        assert_eq!(first.path(), folder.join(FILE));
        // A second open file description conflicts with the first even inside one process.
        let err = FolderLock::acquire(&folder, Path::new("out")).unwrap_err();
        assert!(
            err.contains("another process is writing out") && err.contains(".lock"),
            "{err}"
        );
        drop(first);
        FolderLock::acquire(&folder, Path::new("out")).unwrap();
    }

    #[test]
    fn a_failed_run_removes_only_a_folder_it_made_and_left_empty() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("train");
        FolderLock::acquire(&folder, &folder).unwrap().discard_if_alone();
        assert!(!folder.exists());
        let lock = FolderLock::acquire(&folder, &folder).unwrap();
        std::fs::write(folder.join("checkpoint"), b"").unwrap();
        lock.discard_if_alone();
        assert!(folder.join(FILE).exists());
        std::fs::remove_file(folder.join("checkpoint")).unwrap();
        FolderLock::acquire(&folder, &folder).unwrap().discard_if_alone();
        assert!(folder.exists(), "a folder that was there before stays");
    }
}
