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
//!
//! Decision record: `docs/decisions/replay-tool-reads-through-a-copy.md`.

use std::fs::{self, File, TryLockError};
use std::io::{ErrorKind, Read};
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
        Self::open_snapshot_with_progress(source.as_ref(), scratch.as_ref(), &mut |_| {})
    }

    /// [`SledEventLog::open_snapshot`], reporting the copy as it goes (for a
    /// progress bar): first [`CopyProgress::Total`], then the bytes copied so
    /// far, then [`CopyProgress::Opening`] once the copy is opened (which
    /// scans every record to build the indexes).
    pub fn open_snapshot_with_progress(
        source: &Path,
        scratch: &Path,
        progress: &mut dyn FnMut(CopyProgress),
    ) -> Result<SledEventLog, OpenError> {
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
        progress(CopyProgress::Total(
            copied_size(source, true).map_err(io(source))?,
        ));
        let mut copied = 0;
        copy_dir(source, scratch, true, &mut |bytes| {
            copied += bytes;
            progress(CopyProgress::Copied(copied));
        })
        .map_err(io(source))?;
        drop(lock);
        progress(CopyProgress::Opening);
        SledEventLog::open(scratch)
    }
}

/// How far [`SledEventLog::open_snapshot_with_progress`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyProgress {
    /// The bytes the copy will hold.
    Total(u64),
    /// Bytes copied so far.
    Copied(u64),
    /// The copy is done and being opened.
    Opening,
}

/// Bytes copied per step of a file's copy (each step can still use
/// `copy_file_range`).
const COPY_STEP: u64 = 64 << 20;

/// The entries of the directory `from` that a copy takes, with their kinds.
/// At the top of the store, the lock is the source's; checkpoints are a
/// server's start-up cache, which a read-only copy never uses; keys are never
/// copied (a copy would outlive an erasure).
fn copied_entries(from: &Path, top: bool) -> std::io::Result<Vec<(fs::DirEntry, fs::FileType)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if top && (name == LOCK_FILE || name == CHECKPOINT_DIR || name == crate::keystore::KEYS_DIR)
        {
            continue;
        }
        let kind = entry.file_type()?;
        entries.push((entry, kind));
    }
    Ok(entries)
}

/// The bytes [`copy_dir`] would copy.
fn copied_size(from: &Path, top: bool) -> std::io::Result<u64> {
    let mut total = 0;
    for (entry, kind) in copied_entries(from, top)? {
        if kind.is_dir() {
            total += copied_size(&entry.path(), false)?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

fn copy_dir(from: &Path, to: &Path, top: bool, copied: &mut dyn FnMut(u64)) -> std::io::Result<()> {
    for (entry, kind) in copied_entries(from, top)? {
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            fs::create_dir_all(&target)?;
            copy_dir(&entry.path(), &target, false, copied)?;
        } else if kind.is_file() {
            let mut from = File::open(entry.path())?;
            let mut to = File::create(&target)?;
            loop {
                let bytes = std::io::copy(&mut (&mut from).take(COPY_STEP), &mut to)?;
                if bytes == 0 {
                    break;
                }
                copied(bytes);
            }
        }
    }
    Ok(())
}
