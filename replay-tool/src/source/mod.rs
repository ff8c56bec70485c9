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
//!
//! Customer data (SPEC section 12) is stored sealed. A store's log opens it
//! with the store's own key store when given the server's secret
//! ([`Source::with_store_keys`]); any source opens it with an auditor's key
//! bundle ([`Source::with_keys`]). Whatever the keys, the content of a
//! conversation the source holds a `ConversationErased` for is shown erased,
//! and content without its key stays sealed: see [`Reading`].
//!
//! Layout: this module opens sources and replays them; [`reading`] is how
//! customer data is shown (keys, erasure); `file` is the passes over an
//! export file (checked, then trusted).

mod file;
mod reading;

use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use backchannel_eventlog::portable::{PortableError, PortableReader};
use backchannel_eventlog::{KeyStoreError, Log, OpenError, RecordedEvent, StoreSpec};
use backchannel_projections::EventSource;

use crate::failure::{self, Failure, Kind};
use crate::progress::Progress;

pub use file::Stamp;
pub use reading::Reading;

pub enum Source {
    Store {
        log: Log,
        /// The copy; removed when the source is dropped.
        _scratch: tempfile::TempDir,
        path: PathBuf,
        reading: Reading,
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
        reading: Reading,
    },
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
    /// A key could not be read (a damaged key, or the key store failed).
    #[error("{0} (is --key this server's secret?)")]
    Keys(#[from] KeyStoreError),
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
            reading: Reading::default(),
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
            reading: Reading::default(),
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
            reading: Reading::default(),
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
            reading: Reading::default(),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Store { path, .. } => format!("store {}", path.display()),
            Source::File { label, .. } => label.clone(),
        }
    }

    pub fn reading(&self) -> &Reading {
        match self {
            Source::Store { reading, .. } | Source::File { reading, .. } => reading,
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
    let file = File::open(path).map_err(|err| failure::input(path.display(), err))?;
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
        let prepare = &|recorded: &mut RecordedEvent| self.prepare(recorded);
        match self {
            Source::Store { log, .. } => {
                for recorded in log.scan(from) {
                    let mut recorded = recorded?;
                    if recorded.envelope.position > to {
                        break;
                    }
                    prepare(&mut recorded)?;
                    if visit(&recorded).is_break() {
                        break;
                    }
                }
                Ok(())
            }
            Source::File { path, verified, .. } => {
                file::replay(path, verified, from, to, prepare, visit)
            }
        }
    }
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
