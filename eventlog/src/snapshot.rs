//! [`SledEventLog::open_snapshot`]: reading a stopped server's store without
//! writing to it.
//!
//! sled 0.34 has no read-only mode: opening a database may write (recovery
//! rewrites its log tail, opening writes `conf` and may create files), and our
//! own `open` takes the store's lock file for writing. An auditor's tool must
//! never change the evidence, so instead it takes the store's lock (a shared
//! flock on the existing `LOCK` file, opened read-only: a running server holds
//! it exclusively, so this fails with [`OpenError::StoreInUse`]), copies the
//! store directory while holding it, releases it, and opens the copy.
//! The cost is one copy of the store (disk space and a sequential read).
//! The copy includes the committed head record (`HEAD`), so opening it checks
//! the log against what was acknowledged exactly as the server's open does.

use std::fs::{self, File, TryLockError};
use std::io::ErrorKind;
use std::path::Path;

use crate::checkpoint::CHECKPOINT_DIR;
use crate::error::OpenError;
use crate::log::SledEventLog;
use crate::store::{LOCK_FILE, MARKER_FILE};

impl SledEventLog {
    /// Copies the store at `source` (which must be a store, and not in use)
    /// into `scratch` (a missing or empty directory) and opens the copy.
    /// Nothing under `source` is created, changed or locked for writing.
    pub fn open_snapshot(
        source: impl AsRef<Path>,
        scratch: impl AsRef<Path>,
    ) -> Result<SledEventLog, OpenError> {
        let source = source.as_ref();
        let scratch = scratch.as_ref();
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| OpenError::Io { path, source }
        };
        match fs::metadata(source) {
            Ok(meta) if !meta.is_dir() => {
                return Err(OpenError::NotADirectory {
                    path: source.to_owned(),
                });
            }
            Ok(_) => {}
            Err(err) => return Err(io(source)(err)),
        }
        match fs::metadata(source.join(MARKER_FILE)) {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::NotFound => {
                return Err(OpenError::NotAStore {
                    path: source.to_owned(),
                });
            }
            Err(err) => return Err(io(source)(err)),
        }
        // A store that was never opened has no lock file; nothing can hold it.
        let lock = match File::open(source.join(LOCK_FILE)) {
            Ok(file) => Some(file),
            Err(err) if err.kind() == ErrorKind::NotFound => None,
            Err(err) => return Err(io(source)(err)),
        };
        if let Some(lock) = &lock {
            match lock.try_lock_shared() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(OpenError::StoreInUse {
                        path: source.to_owned(),
                    });
                }
                Err(TryLockError::Error(err)) => return Err(io(source)(err)),
            }
        }
        fs::create_dir_all(scratch).map_err(io(scratch))?;
        copy_dir(source, scratch, true).map_err(io(source))?;
        drop(lock);
        SledEventLog::open(scratch)
    }
}

fn copy_dir(from: &Path, to: &Path, top: bool) -> std::io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        // The lock is the source's; checkpoints are a server's start-up cache,
        // which a read-only copy never uses.
        if top && (name == LOCK_FILE || name == CHECKPOINT_DIR) {
            continue;
        }
        let kind = entry.file_type()?;
        let target = to.join(&name);
        if kind.is_dir() {
            fs::create_dir_all(&target)?;
            copy_dir(&entry.path(), &target, false)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
