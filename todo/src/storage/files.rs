//! The book's one-file-per-list design made crash-safe: write a temp file, fsync,
//! rename over the old one, fsync the directory. A damaged file harms only its list.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::{decode, encode, ListWrite, Storage, StorageError};
use crate::domain::{decode_path, encode_path, ListName, TodoList};

/// One JSON file per list under `data_dir/lists/`.
pub struct FileStorage {
    /// `data_dir/lists`: every file this backend writes is below it.
    root: Arc<PathBuf>,
    /// Makes temp file names unique within the process.
    seq: AtomicU64,
}

const TMP_SUFFIX: &str = ".tmp";

/// Most list files one batch writes at the same time.
pub const PARALLEL_WRITES: usize = 16;

impl FileStorage {
    /// Opens (creating) `data_dir/lists` and removes temp files a crash left behind.
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        let root = data_dir.join("lists");
        create_dirs_durably(&root).map_err(|e| StorageError::io(None, e))?;
        remove_temp_files(&root);
        Ok(FileStorage {
            root: Arc::new(root),
            seq: AtomicU64::new(0),
        })
    }

    /// The file of a list.
    pub fn path_of(&self, name: &ListName) -> PathBuf {
        self.root.join(encode_path(name))
    }
}

fn remove_temp_files(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let p = entry.path();
        if p.is_dir() {
            remove_temp_files(&p);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(TMP_SUFFIX))
        {
            let _ = fs::remove_file(&p);
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Creates `dir` and its missing ancestors, and fsyncs the parent of each one
/// created, so that a file renamed into a new directory (a long name's
/// `d…` components) is still reachable after a power loss.
fn create_dirs_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn write_atomically(path: &Path, tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dirs_durably(dir)?;
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

fn collect_names(root: &Path, dir: &Path, out: &mut Vec<ListName>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let p = entry.path();
        if entry.file_type()?.is_dir() {
            collect_names(root, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(root) {
            if let Some(name) = decode_path(rel) {
                out.push(name);
            }
        }
    }
    Ok(())
}

/// Every list stored under `data_dir/lists/` by this backend, read without a
/// runtime (for the import into SQLite); `Ok(None)` when there is no such directory.
/// A file that cannot be read back is an error naming it: nothing is skipped.
pub(crate) fn read_all(data_dir: &Path) -> Result<Option<Vec<(ListName, TodoList)>>, StorageError> {
    let root = data_dir.join("lists");
    if !root.is_dir() {
        return Ok(None);
    }
    let mut names = Vec::new();
    collect_names(&root, &root, &mut names).map_err(|e| StorageError::io(None, e))?;
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let path = root.join(encode_path(&name));
        let bytes = fs::read(&path).map_err(|e| StorageError::io(Some(&name), e))?;
        let list = decode(&name, &bytes)?;
        out.push((name, list));
    }
    Ok(Some(out))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StorageError::Io {
            list: None,
            source: std::io::Error::other(format!("storage task failed: {e}")),
        })
    })
}

#[async_trait]
impl Storage for FileStorage {
    async fn load(&self, name: &ListName) -> Result<Option<TodoList>, StorageError> {
        let path = self.path_of(name);
        let name = name.clone();
        blocking(move || match fs::read(&path) {
            Ok(bytes) => decode(&name, &bytes).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(Some(&name), e)),
        })
        .await
    }

    async fn store(&self, name: &ListName, list: &TodoList) -> Result<(), StorageError> {
        let path = self.path_of(name);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".{}-{seq}{TMP_SUFFIX}", std::process::id()));
        let bytes = encode(name, list);
        let name = name.clone();
        blocking(move || {
            write_atomically(&path, Path::new(&tmp), &bytes)
                .map_err(|e| StorageError::io(Some(&name), e))
        })
        .await
    }

    /// Writes the batch's lists up to `PARALLEL_WRITES` at a time, each whole and
    /// crash-safe as [`store`](Storage::store) does, so their fsyncs overlap instead
    /// of queueing one behind the other. A batch naming a list twice is written in
    /// order, one list at a time, so the later version is the one that stays.
    async fn store_batch(&self, writes: &[ListWrite]) -> Vec<Result<(), StorageError>> {
        let distinct: std::collections::HashSet<&ListName> =
            writes.iter().map(|w| &w.name).collect();
        let parallel = if distinct.len() == writes.len() {
            PARALLEL_WRITES
        } else {
            1
        };
        let mut out = Vec::with_capacity(writes.len());
        for chunk in writes.chunks(parallel) {
            let stores: Vec<_> = chunk.iter().map(|w| self.store(&w.name, &w.list)).collect();
            out.extend(futures::future::join_all(stores).await);
        }
        out
    }

    /// Removes the list's file and fsyncs its directory, so the delete survives a
    /// power loss once answered.
    async fn delete_list(&self, name: &ListName) -> Result<bool, StorageError> {
        let path = self.path_of(name);
        let name = name.clone();
        blocking(move || {
            let removed = match fs::remove_file(&path) {
                Ok(()) => true,
                Err(e) if e.kind() == ErrorKind::NotFound => false,
                Err(e) => return Err(StorageError::io(Some(&name), e)),
            };
            if removed {
                sync_dir(path.parent().unwrap_or(Path::new(".")))
                    .map_err(|e| StorageError::io(Some(&name), e))?;
            }
            Ok(removed)
        })
        .await
    }

    async fn list_names(&self) -> Result<Vec<ListName>, StorageError> {
        let root = self.root.clone();
        blocking(move || {
            let mut out = Vec::new();
            collect_names(&root, &root, &mut out).map_err(|e| StorageError::io(None, e))?;
            out.sort();
            Ok(out)
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "files"
    }
}
