//! Where the log comes from. Sources are never written to.
//!
//! - `--data-dir`: a stopped server's store, read through a copy
//!   (`Log::open_read_only`, which for sled copies the store: sled cannot
//!   open read-only, and its recovery may write); a running server's store is
//!   refused as in use.
//! - `--file`: an exported log file. The first pass of a command checks all
//!   of it (chain, invariants, trailer) on a second thread while it replays;
//!   later passes of the same command only decode, while the file's length
//!   and modification time are unchanged.
//! - `--server URL --token T`: a running server's `GET /log`, fetched into a
//!   temporary portable file (see [`crate::remote`]), then read as `--file`.

use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, mpsc};

use backchannel_eventlog::portable::{PortableError, PortableReader};
use backchannel_eventlog::{Log, OpenError, RecordedEvent, StoreSpec, codec};
use backchannel_projections::EventSource;

use crate::failure::{Failure, Kind};
use crate::progress::Progress;

pub enum Source {
    Store {
        log: Log,
        /// The copy; removed when the source is dropped.
        _scratch: tempfile::TempDir,
        path: PathBuf,
    },
    File {
        path: PathBuf,
        events: u64,
        /// What `describe` says (the file, or the server it came from).
        label: String,
        /// The temporary directory of a downloaded log; removed on drop.
        _scratch: Option<tempfile::TempDir>,
        /// Set once a pass read the whole file without a fault (see
        /// [`Source::replay`]).
        verified: Mutex<Option<Stamp>>,
    },
}

/// What a file looked like when it was verified: later passes trust it only
/// while its length and modification time are unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// Records per batch handed from the checking thread to the replay.
const BATCH: usize = 1024;

/// A batch of checked records: their bytes back to back, and where each ends.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// Why reading a source failed part way.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Store(#[from] backchannel_eventlog::Error),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: PortableError,
    },
    /// A checked record of a file whose payload does not decode.
    #[error("{path}: {source}")]
    Record {
        path: PathBuf,
        #[source]
        source: backchannel_eventlog::Error,
    },
}

pub fn open_error(path: &Path, err: OpenError) -> Failure {
    let kind = match &err {
        OpenError::StoreInUse { .. } => {
            return Failure::new(
                Kind::Unavailable,
                format!(
                    "the store at {} is in use by a running server (its LOCK is held); \
                     stop the server, or export the log from it, and try again",
                    path.display()
                ),
            );
        }
        OpenError::Corrupt { .. }
        | OpenError::Replay { .. }
        | OpenError::HeadMismatch { .. }
        | OpenError::CheckpointAhead { .. } => Kind::Broken,
        // The tool never resumes from a checkpoint; a server falls back itself.
        OpenError::DoesNotContinue { .. } => Kind::Broken,
        OpenError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Kind::Unavailable
        }
        OpenError::NotAStore { .. }
        | OpenError::NotADirectory { .. }
        | OpenError::UnsupportedFormat { .. }
        | OpenError::EngineNotBuilt { .. } => Kind::Unavailable,
        OpenError::BadStoreSpec { .. } => Kind::Usage,
        OpenError::Io { .. } | OpenError::Storage { .. } => Kind::Io,
    };
    Failure::new(kind, err.to_string())
}

pub fn file_error(path: &Path, err: PortableError) -> Failure {
    let kind = match &err {
        PortableError::Io(_) => Kind::Io,
        PortableError::Foreign
        | PortableError::Empty
        | PortableError::UnsupportedFileVersion { .. }
        | PortableError::UnsupportedCodecVersion { .. } => Kind::BadInput,
        _ => Kind::Broken,
    };
    Failure::new(kind, format!("{}: {err}", path.display()))
}

impl Source {
    pub fn open_store(path: &Path, scratch_parent: Option<&Path>) -> Result<Source, Failure> {
        Self::open_store_showing(path, scratch_parent, &Progress::new("", true))
    }

    /// `--data-dir DIR`: the server's data directory (the value `backchannel
    /// serve --data-dir` takes, holding `store/` and `secret`) or the store
    /// itself, copied with `progress` showing how far the copy is.
    pub fn open_store_showing(
        dir: &Path,
        scratch_parent: Option<&Path>,
        progress: &Progress,
    ) -> Result<Source, Failure> {
        if !dir.exists() {
            return Err(Failure::new(
                Kind::Unavailable,
                format!("{}: no such directory", dir.display()),
            ));
        }
        let scratch = scratch_dir(scratch_parent)?;
        let copy = scratch.path().join("store");
        let mut show = |step| progress.copying(step);
        let inner = dir.join("store");
        let (log, path) = match Log::open_read_only(&StoreSpec::sled(dir), &copy, &mut show) {
            Err(OpenError::NotAStore { .. }) if inner.is_dir() => {
                let log = Log::open_read_only(&StoreSpec::sled(&inner), &copy, &mut show)
                    .map_err(|err| open_error(&inner, err))?;
                (log, inner)
            }
            Err(OpenError::NotAStore { .. }) => {
                return Err(Failure::new(
                    Kind::Unavailable,
                    format!(
                        "{}: not a Backchannel store, nor a server's data directory holding \
                         one (store/); --data-dir takes the directory `backchannel serve \
                         --data-dir` was given, or its store/",
                        dir.display()
                    ),
                ));
            }
            opened => (opened.map_err(|err| open_error(dir, err))?, dir.to_owned()),
        };
        Ok(Source::Store {
            log,
            _scratch: scratch,
            path,
        })
    }

    /// `--store postgres://…`: the log through read-only sessions and no
    /// writer ([`Log::open_read_only`]); nothing is copied.
    pub fn open_postgres(
        spec: &StoreSpec,
        scratch_parent: Option<&Path>,
    ) -> Result<Source, Failure> {
        let scratch = scratch_dir(scratch_parent)?;
        let path = PathBuf::from(spec.to_string());
        let log = Log::open_read_only(spec, scratch.path(), &mut |_| {})
            .map_err(|err| open_error(&path, err))?;
        Ok(Source::Store {
            log,
            _scratch: scratch,
            path,
        })
    }

    pub fn open_file(path: &Path) -> Result<Source, Failure> {
        let reader = open_reader(path)?;
        Ok(Source::File {
            path: path.to_owned(),
            events: reader.header().events,
            label: format!("file {}", path.display()),
            _scratch: None,
            verified: Mutex::new(None),
        })
    }

    /// A running server's log (`GET /log`), fetched into a temporary file
    /// under `scratch_parent` (checked as it arrives), then read as a file.
    pub fn open_server(
        server: &crate::remote::Server<'_>,
        page: u64,
        scratch_parent: Option<&Path>,
        quiet: bool,
    ) -> Result<Source, Failure> {
        let scratch = scratch_dir(scratch_parent)?;
        let path = scratch.path().join("server.bclog");
        let events =
            crate::remote::download(server, page, &path, &Progress::new("downloading", quiet))?;
        Ok(Source::File {
            path,
            events,
            label: format!("server {}", server.url),
            _scratch: Some(scratch),
            verified: Mutex::new(None),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Store { path, .. } => format!("store {}", path.display()),
            Source::File { label, .. } => label.clone(),
        }
    }
}

fn scratch_dir(parent: Option<&Path>) -> Result<tempfile::TempDir, Failure> {
    match parent {
        Some(parent) => tempfile::Builder::new()
            .prefix("replay-tool-")
            .tempdir_in(parent),
        None => tempfile::Builder::new().prefix("replay-tool-").tempdir(),
    }
    .map_err(|err| {
        Failure::new(
            Kind::Io,
            format!("cannot create a scratch directory: {err}"),
        )
    })
}

pub fn open_reader(path: &Path) -> Result<PortableReader<BufReader<File>>, Failure> {
    let file = File::open(path).map_err(|err| {
        let kind = if err.kind() == std::io::ErrorKind::NotFound {
            Kind::Unavailable
        } else {
            Kind::Io
        };
        Failure::new(kind, format!("{}: {err}", path.display()))
    })?;
    PortableReader::new(BufReader::with_capacity(1 << 20, file))
        .map_err(|err| file_error(path, err))
}

impl EventSource for Source {
    type Error = SourceError;

    fn head(&self) -> u64 {
        match self {
            Source::Store { log, .. } => log.head(),
            Source::File { events, .. } => *events,
        }
    }

    fn replay(
        &self,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(&RecordedEvent) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        match self {
            Source::Store { log, .. } => Ok(log.replay(from, to, visit)?),
            Source::File { path, verified, .. } => {
                let stamp = Stamp::of(path);
                let trusted = {
                    let verified = verified.lock().unwrap_or_else(PoisonError::into_inner);
                    verified.is_some() && *verified == stamp
                };
                if trusted {
                    return trusted_pass(path, from, to, visit);
                }
                checked_pass(path, from, to, visit)?;
                if stamp.is_some() && Stamp::of(path) == stamp {
                    *verified.lock().unwrap_or_else(PoisonError::into_inner) = stamp;
                }
                Ok(())
            }
        }
    }
}

/// A pass over a file that checks all of it, whatever `from` and `to` say:
/// a thread reads the file and checks framing, positions, hash links, stream
/// versions, the head hash and the trailer checksum (`next_checked_raw`),
/// handing each record on only once it passed; this thread decodes the
/// payloads and visits `from..=to`. The two overlap, so the check costs
/// little time. Any fault fails the pass, also one after `to` or after the
/// visitor stopped.
fn checked_pass(
    path: &Path,
    from: u64,
    to: u64,
    visit: &mut dyn FnMut(&RecordedEvent) -> ControlFlow<()>,
) -> Result<(), SourceError> {
    let fail = |source| SourceError::File {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(|err| fail(err.into()))?;
    let mut reader = PortableReader::new(BufReader::with_capacity(1 << 20, file)).map_err(fail)?;
    let (sender, batches) = mpsc::sync_channel::<Batch>(8);
    std::thread::scope(|scope| {
        let checker = scope.spawn(move || {
            let mut sender = Some(sender);
            let mut batch = Batch::default();
            while let Some(checked) = reader.next_checked_raw() {
                checked?;
                let Some(to_replay) = &sender else { continue };
                batch.bytes.extend_from_slice(reader.record_bytes());
                batch.ends.push(batch.bytes.len());
                if batch.ends.len() == BATCH && to_replay.send(std::mem::take(&mut batch)).is_err()
                {
                    // The replay stopped: keep checking, stop handing over.
                    sender = None;
                }
            }
            if let Some(to_replay) = sender
                && !batch.ends.is_empty()
            {
                let _ = to_replay.send(batch);
            }
            Ok::<(), PortableError>(())
        });
        let mut position = 0u64;
        let mut replayed = Ok(());
        'batches: for batch in batches.iter() {
            let mut start = 0;
            for &end in &batch.ends {
                let bytes = &batch.bytes[start..end];
                start = end;
                position += 1;
                if position > to {
                    break 'batches;
                }
                if position < from {
                    continue;
                }
                match codec::decode_record(bytes) {
                    Ok(event) => {
                        if visit(&event).is_break() {
                            break 'batches;
                        }
                    }
                    Err(source) => {
                        replayed = Err(SourceError::Record {
                            path: path.to_owned(),
                            source: backchannel_eventlog::Error::Corrupt { position, source },
                        });
                        break 'batches;
                    }
                }
            }
        }
        drop(batches);
        let checked = checker
            .join()
            .unwrap_or_else(|_| Err(PortableError::Io(std::io::Error::other("the check failed"))));
        // A record the replay could not decode comes before any fault the
        // check found later.
        replayed?;
        checked.map_err(fail)
    })
}

/// A later pass over a file a pass of this process verified completely:
/// records are decoded and their positions checked, the chain not again.
fn trusted_pass(
    path: &Path,
    from: u64,
    to: u64,
    visit: &mut dyn FnMut(&RecordedEvent) -> ControlFlow<()>,
) -> Result<(), SourceError> {
    let fail = |source| SourceError::File {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(|err| fail(err.into()))?;
    let mut reader = PortableReader::new(BufReader::with_capacity(1 << 20, file)).map_err(fail)?;
    while let Some(event) = reader.next_trusted() {
        let event = event.map_err(fail)?;
        let position = event.envelope.position;
        if position > to {
            break;
        }
        if position >= from && visit(&event).is_break() {
            break;
        }
    }
    Ok(())
}

/// A source that moves a progress bar as events go by.
pub struct Tracked<'a> {
    pub source: &'a Source,
    pub progress: &'a Progress,
}

impl EventSource for Tracked<'_> {
    type Error = SourceError;

    fn head(&self) -> u64 {
        self.source.head()
    }

    fn replay(
        &self,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(&RecordedEvent) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        self.progress.start_pass(to.min(self.source.head()));
        let result = self.source.replay(from, to, &mut |event| {
            self.progress.at(event.envelope.position);
            visit(event)
        });
        self.progress.end_pass();
        result
    }
}
