//! The data directory's exclusive lock: one process at a time writes a data dir,
//! so two servers on one `--data-dir` cannot overwrite each other's lists.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the data directory's lock could not be taken; the message names the
/// directory or file, and the OS error is the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The data directory could not be created.
    #[error("cannot create data directory {}: {source}", dir.display())]
    CreateDir {
        /// The data directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The lock file could not be opened.
    #[error("cannot open the lock file {}: {source}", path.display())]
    Open {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process (or another server in this one) holds the lock.
    #[error(
        "data directory {} is in use by another sluicegate process ({holder}; lock file {}): \
         stop it or choose another --data-dir",
        dir.display(),
        path.display()
    )]
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// The lock file.
        path: PathBuf,
        /// Who holds it: `pid N`, or that the holder has not written its pid yet.
        holder: String,
    },
    /// Locking failed for another reason than a holder.
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// This process's pid could not be written into the lock file.
    #[error("cannot write the lock file {}: {source}", path.display())]
    Write {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Name of the lock file inside the data directory; it holds the holder's pid.
pub const LOCK_FILE: &str = "sluicegate.lock";

/// An OS lock (`flock`) on `DATA_DIR/sluicegate.lock`, held until dropped or the
/// process ends (also by SIGKILL: the OS releases it).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Creates `data_dir` if missing and takes its lock without waiting; writes
    /// this process's pid into the lock file. Fails at once, naming the directory
    /// and the holder's pid, when another process (or another server in this
    /// process) holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, LockError> {
        std::fs::create_dir_all(data_dir).map_err(|source| LockError::CreateDir {
            dir: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| LockError::Open {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "a process that has not written its pid yet".to_string(),
                };
                return Err(LockError::InUse {
                    dir: data_dir.to_path_buf(),
                    path,
                    holder,
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(LockError::Lock { path, source });
            }
        }
        let pid = format!("{}\n", std::process::id());
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(pid.as_bytes()))
            .and_then(|_| file.set_len(pid.len() as u64))
            .map_err(|source| LockError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(DataDirLock { _file: file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        let again = DataDirLock::acquire(dir.path()).unwrap();
        let pid = std::fs::read_to_string(again.path()).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
    }
}
