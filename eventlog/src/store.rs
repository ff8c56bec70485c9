//! The store directory: recognising it, locking it, opening sled inside it, and
//! making sled's writes durable.
//!
//! Layout of a store directory:
//!
//! ```text
//! <store>/BACKCHANNEL_STORE   marker: "backchannel-store\nformat 3\n"
//! <store>/HEAD                the committed head record (see `head.rs`)
//! <store>/LOCK                exclusive lock while a process has the store open
//! <store>/sled/               sled's own files: conf, db, blobs/, snap.*
//! ```
//!
//! Format 3 is format 2 plus `HEAD`; the sled key layout is the same (its
//! `mformat` key still says `backchannel-eventlog/2`). A format-2 store opens:
//! its first open records the head it finds (nothing earlier can be checked)
//! and rewrites the marker to format 3. A format-3 store without `HEAD`, or
//! with both of its slots damaged, is refused.
//!
//! Decision record: `docs/decisions/fsync-after-sled-flush.md`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use crate::error::{OpenError, StorageError};
use crate::head::{HEAD_FILE, HeadFile, ReadHead};
use crate::keys;
use crate::writer::ChainHead;

pub(crate) const MARKER_FILE: &str = "BACKCHANNEL_STORE";
pub(crate) const LOCK_FILE: &str = "LOCK";
const SLED_DIR: &str = "sled";
/// The version of the directory layout and key layout together. Format 3 is
/// format 2 (records in chunks, no index keys) plus the `HEAD` record; format 2
/// stores are upgraded at their first open; format 1 (a key per record plus
/// index keys) was never deployed and is refused, not migrated.
pub(crate) const STORE_FORMAT: u32 = 3;
/// The format before the head record, still opened (and upgraded).
const LEGACY_FORMAT: u32 = 2;
/// sled's page cache, in bytes (see `open`).
const SLED_CACHE_BYTES: u64 = 32 * 1024 * 1024;

fn marker_contents(format: u32) -> String {
    format!("backchannel-store\nformat {format}\n")
}

/// What the marker file says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// None yet: a new store.
    Missing,
    /// Format 2: no head record yet.
    Legacy,
    Current,
}

/// sled keeps its own lock on its `db` file until the last of its internal
/// handles is gone, which can be a moment after a previous `SledEventLog` in this
/// process was closed (sled's I/O threads finish on their own). We hold our own
/// lock already, so no other Backchannel process has the store: wait, briefly,
/// for sled's lock to be free rather than fail a close-then-reopen.
fn wait_for_sled_lock(path: &Path, db_file: &Path) -> Result<(), OpenError> {
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);
    let start = std::time::Instant::now();
    loop {
        let file = match File::open(db_file) {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(OpenError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        match file.try_lock() {
            // Dropping `file` releases the probe lock at once.
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if start.elapsed() < PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(OpenError::StoreInUse {
                    path: path.to_owned(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(OpenError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}

/// An open, locked store. Dropping it releases the lock (the `lock` field).
pub(crate) struct OpenedStore {
    pub(crate) db: sled::Db,
    pub(crate) syncer: Syncer,
    /// The committed head record; the writer's head stage writes it after
    /// each sync.
    pub(crate) head_file: HeadFile,
    pub(crate) lock: File,
    /// The committed head as `HEAD` recorded it when the store was opened.
    pub(crate) recorded: ChainHead,
    /// A format-2 store: its marker is rewritten once its head is recorded.
    legacy: bool,
}

pub(crate) fn open(path: &Path) -> Result<OpenedStore, OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_owned(),
        source,
    };
    let marker = inspect(path)?;
    let has_marker = marker != Marker::Missing;

    // The lock comes before anything that writes, so two processes can never
    // both open sled (sled's own lock would also refuse, but less clearly).
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.join(LOCK_FILE))
        .map_err(io)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(OpenError::StoreInUse {
                path: path.to_owned(),
            });
        }
        Err(TryLockError::Error(source)) => return Err(io(source)),
    }

    let sled_path = path.join(SLED_DIR);
    let db = open_sled(path, &sled_path)?;

    // sled writes its `conf` file and creates its directories without fsync;
    // make them durable before the first acknowledged commit depends on them.
    sync_path(&sled_path.join("conf")).map_err(io)?;
    sync_path(&sled_path.join("blobs")).map_err(io)?;
    sync_path(&sled_path).map_err(io)?;
    sync_path(path).map_err(io)?;

    let (head_file, recorded) = match HeadFile::read(path).map_err(io)? {
        ReadHead::Found(file, recorded) if has_marker => (file, recorded),
        ReadHead::Missing | ReadHead::Found(..) | ReadHead::Damaged
            if marker != Marker::Current =>
        {
            // A new store (or one whose creation was interrupted), or a
            // format-2 store: nothing was recorded, so every log passes the
            // check once and the open records its head.
            let empty = ChainHead {
                position: 0,
                hash: [0; 32],
            };
            (HeadFile::create(path, empty).map_err(io)?, empty)
        }
        ReadHead::Missing | ReadHead::Found(..) => {
            return Err(OpenError::Corrupt {
                path: path.to_owned(),
                reason: format!(
                    "its committed head record ({HEAD_FILE}) is missing, so the log cannot be \
                     checked against what was acknowledged"
                ),
            });
        }
        ReadHead::Damaged => {
            return Err(OpenError::Corrupt {
                path: path.to_owned(),
                reason: format!(
                    "both slots of its committed head record ({HEAD_FILE}) are damaged, so the \
                     log cannot be checked against what was acknowledged"
                ),
            });
        }
    };
    let syncer = Syncer::new(&sled_path).map_err(io)?;
    let mut opened = OpenedStore {
        db,
        syncer,
        head_file,
        lock,
        recorded,
        legacy: marker == Marker::Legacy,
    };
    check_format(path, &mut opened, has_marker)?;
    // The marker is written last: a directory holding it always holds an
    // initialised database and a head record, so a database without its
    // format key, or a format-3 store without `HEAD`, is corruption.
    if !has_marker {
        write_marker(path).map_err(io)?;
    }
    Ok(opened)
}

/// After the log was checked against the recorded head (`index::load`):
/// records the log's actual head if it is further (records durable but never
/// acknowledged, or a format-2 store's first open), and upgrades a format-2
/// marker.
pub(crate) fn settle_head(
    path: &Path,
    opened: &mut OpenedStore,
    head: ChainHead,
) -> Result<(), OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_owned(),
        source,
    };
    if head.position != opened.recorded.position || head.hash != opened.recorded.hash {
        opened.head_file.record(head).map_err(io)?;
        opened.recorded = head;
    }
    if opened.legacy {
        write_marker(path).map_err(io)?;
        opened.legacy = false;
    }
    Ok(())
}

/// Opens sled in `sled_path`, turning its errors (and its panics on some
/// corrupt files) into [`OpenError`]s.
fn open_sled(path: &Path, sled_path: &Path) -> Result<sled::Db, OpenError> {
    wait_for_sled_lock(path, &sled_path.join("db"))?;
    let config = sled::Config::new()
        .path(sled_path)
        // Every commit flushes and fsyncs explicitly; the background flusher
        // would only add contention.
        .flush_every_ms(None)
        // sled's default page cache is 1 GiB. Reads after start are by
        // position (a timeline, a page of the log), which the OS page cache
        // serves well. (sled does not hold to this bound during a bulk scan,
        // hence [`reopen`].)
        .cache_capacity(SLED_CACHE_BYTES);
    match catch_unwind(AssertUnwindSafe(|| config.open())) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Corruption { .. })) => Err(OpenError::Corrupt {
            path: path.to_owned(),
            reason: "sled reports corruption in its files".to_owned(),
        }),
        Ok(Err(err)) => Err(OpenError::Storage {
            path: path.to_owned(),
            source: err.into(),
        }),
        Err(_) => Err(OpenError::Corrupt {
            path: path.to_owned(),
            reason: "sled panicked while recovering its files".to_owned(),
        }),
    }
}

/// Closes sled and opens it again, keeping our lock on the store: what sled
/// has read is dropped with it.
///
/// sled 0.34 evicts from its page cache only after enough accesses per cache
/// shard (it batches them), so one pass over the whole log leaves every page
/// it read resident, whatever `cache_capacity` says (spacejam/sled#1410): at 1M
/// events, ~235 MiB. Opening replays the log once; dropping sled afterwards
/// returns that memory. Nothing is written in between, so nothing needs a sync.
pub(crate) fn reopen(path: &Path, opened: OpenedStore) -> Result<OpenedStore, OpenError> {
    drop(opened.syncer);
    drop(opened.db);
    let sled_path = path.join(SLED_DIR);
    let db = open_sled(path, &sled_path)?;
    let syncer = Syncer::new(&sled_path).map_err(|source| OpenError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(OpenedStore {
        db,
        syncer,
        ..opened
    })
}

/// Refuses anything that is not (or cannot become) a store. Returns whether the
/// marker is present; a missing or empty directory will become a new store, and
/// so will one holding only what an interrupted creation leaves behind.
fn inspect(path: &Path) -> Result<Marker, OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_owned(),
        source,
    };
    match fs::metadata(path) {
        Err(err) if err.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(path).map_err(io)?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_path(parent).map_err(io)?;
            }
            return Ok(Marker::Missing);
        }
        Err(err) => return Err(io(err)),
        Ok(meta) if !meta.is_dir() => {
            return Err(OpenError::NotADirectory {
                path: path.to_owned(),
            });
        }
        Ok(_) => {}
    }
    match fs::read_to_string(path.join(MARKER_FILE)) {
        Ok(contents) if contents == marker_contents(STORE_FORMAT) => Ok(Marker::Current),
        Ok(contents) if contents == marker_contents(LEGACY_FORMAT) => Ok(Marker::Legacy),
        Ok(contents) => Err(OpenError::UnsupportedFormat {
            path: path.to_owned(),
            found: contents.trim().replace('\n', " "),
            supported: STORE_FORMAT,
        }),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            // Only a directory that is empty, or holds nothing but what a
            // creation that died before writing the marker leaves, may become a
            // store. (A leftover `sled` directory holding data without our format
            // key is refused later, by `check_format`.)
            let tmp_marker = format!("{MARKER_FILE}.tmp");
            let tmp_head = format!("{HEAD_FILE}.tmp");
            let mut entries = fs::read_dir(path).map_err(io)?;
            let foreign = entries.any(|entry| match entry {
                Ok(entry) => {
                    let name = entry.file_name();
                    name != LOCK_FILE
                        && name != SLED_DIR
                        && name != HEAD_FILE
                        && name != tmp_marker.as_str()
                        && name != tmp_head.as_str()
                }
                Err(_) => true,
            });
            if foreign {
                Err(OpenError::NotAStore {
                    path: path.to_owned(),
                })
            } else {
                Ok(Marker::Missing)
            }
        }
        Err(err) => Err(io(err)),
    }
}

fn write_marker(path: &Path) -> std::io::Result<()> {
    let tmp = path.join(format!("{MARKER_FILE}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(marker_contents(STORE_FORMAT).as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, path.join(MARKER_FILE))?;
    sync_path(path)
}

fn check_format(path: &Path, store: &mut OpenedStore, has_marker: bool) -> Result<(), OpenError> {
    let storage = |source: sled::Error| OpenError::Storage {
        path: path.to_owned(),
        source: source.into(),
    };
    match store.db.get(keys::FORMAT_KEY).map_err(storage)? {
        Some(found) if found == keys::FORMAT_MAGIC => Ok(()),
        Some(found) => Err(OpenError::UnsupportedFormat {
            path: path.to_owned(),
            found: String::from_utf8_lossy(&found).into_owned(),
            supported: STORE_FORMAT,
        }),
        None if has_marker => Err(OpenError::Corrupt {
            path: path.to_owned(),
            reason: "its database has lost its format key (sled recovered nothing \
                     readable); refusing to start an empty log over it"
                .to_owned(),
        }),
        None => {
            if store.db.first().map_err(storage)?.is_some() {
                return Err(OpenError::NotAStore {
                    path: path.to_owned(),
                });
            }
            store
                .db
                .insert(keys::FORMAT_KEY, keys::FORMAT_MAGIC)
                .map_err(storage)?;
            store.db.flush().map_err(storage)?;
            store.syncer.sync().map_err(|source| OpenError::Storage {
                path: path.to_owned(),
                source,
            })
        }
    }
}

/// Opens a file or directory and fsyncs it; a missing path is not an error.
fn sync_path(path: &Path) -> std::io::Result<()> {
    match File::open(path) {
        Ok(file) => file.sync_all(),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Makes what sled has written durable.
///
/// sled 0.34's `flush` writes its log with `pwrite` and `sync_file_range`
/// (spacejam/sled#1452), which neither persists file metadata (the file's new
/// length) nor flushes the drive's write cache. So after every `flush` we
/// `fdatasync` the `db` file ourselves through a handle kept open for the life of
/// the store. sled writes pages too large for its log (over a quarter of a
/// segment, e.g. a leaf holding many large records) to separate files under
/// `blobs/`, without any sync; we fsync every blob file we have not synced yet,
/// then the `blobs` directory. A blob is written once and never changes, but a
/// reader thread consolidating a page may be writing one while we list them, so
/// we remember each blob's length when we synced it and sync again if it grew.
pub(crate) struct Syncer {
    db_file: File,
    blobs_dir_path: PathBuf,
    blobs_dir: File,
    /// Blob file name → its length when we last fsynced it.
    synced_blobs: HashMap<OsString, u64>,
}

impl Syncer {
    fn new(sled_path: &Path) -> std::io::Result<Self> {
        let blobs_dir_path = sled_path.join("blobs");
        let mut syncer = Syncer {
            db_file: File::open(sled_path.join("db"))?,
            blobs_dir: File::open(&blobs_dir_path)?,
            blobs_dir_path,
            synced_blobs: HashMap::new(),
        };
        // Blobs left by an earlier run may never have been synced.
        syncer.sync_new_blobs()?;
        Ok(syncer)
    }

    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        self.db_file.sync_data()?;
        self.sync_new_blobs()?;
        Ok(())
    }

    fn sync_new_blobs(&mut self) -> std::io::Result<()> {
        let mut present = HashMap::with_capacity(self.synced_blobs.len());
        let mut synced_any = false;
        for entry in fs::read_dir(&self.blobs_dir_path)? {
            let entry = entry?;
            let name = entry.file_name();
            let len = match entry.metadata() {
                Ok(meta) => meta.len(),
                // Garbage-collected between listing and looking.
                Err(err) if err.kind() == ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            if self.synced_blobs.get(&name) != Some(&len) {
                match File::open(self.blobs_dir_path.join(&name)) {
                    Ok(file) => file.sync_all()?,
                    Err(err) if err.kind() == ErrorKind::NotFound => continue,
                    Err(err) => return Err(err),
                }
                synced_any = true;
            }
            present.insert(name, len);
        }
        if synced_any {
            self.blobs_dir.sync_all()?;
        }
        self.synced_blobs = present;
        Ok(())
    }
}
