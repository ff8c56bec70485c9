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

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use backchannel_domain::events::{Event, EventType};
use backchannel_domain::ids::ConversationId;
use backchannel_domain::values::Content;
use backchannel_eventlog::portable::{PortableError, PortableReader};
use backchannel_eventlog::{
    DirKeyStore, KEYS_DIR, KeyState, KeyStore, KeyStoreError, KeyWrap, Log, OpenError,
    RecordedEvent, StoreSpec, codec,
};
use backchannel_projections::EventSource;

use crate::failure::{Failure, Kind};
use crate::progress::Progress;

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

/// How a source's customer data is shown (SPEC section 12).
///
/// - A file's sealed data is opened with `keys` (an auditor's bundle) as it
///   is decoded; a store's log opens its own (`Log::with_keys`).
/// - A reader without keys cannot tell an erased conversation from one whose
///   key it was not given: both are sealed. So the first time a pass meets
///   customer data stored since encryption existed, the source's
///   `ConversationErased` events are collected in one pass over the records
///   that decodes only their envelopes (and the payload of those few
///   events); from then on that content of those conversations is
///   [`Content::Erased`], with or without a key. A log of the plaintext era
///   never pays for that pass.
#[derive(Default)]
pub struct Reading {
    keys: Option<KeyStore>,
    erased: Mutex<Option<Arc<HashSet<ConversationId>>>>,
}

impl Reading {
    /// The key store sealed data is opened with, if any.
    pub fn keys(&self) -> Option<&KeyStore> {
        self.keys.as_ref()
    }
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

    /// This source with `keys` (an auditor's key bundle) to open sealed data
    /// with.
    pub fn with_keys(self, keys: KeyStore) -> Source {
        match self {
            Source::Store {
                log,
                _scratch,
                path,
                reading,
            } => Source::Store {
                log: log.with_keys(keys.clone()),
                _scratch,
                path,
                reading: Reading {
                    keys: Some(keys),
                    ..reading
                },
            },
            Source::File {
                path,
                events,
                label,
                _scratch,
                verified,
                reading,
            } => Source::File {
                path,
                events,
                label,
                _scratch,
                verified,
                reading: Reading {
                    keys: Some(keys),
                    ..reading
                },
            },
        }
    }

    /// The store's own key store, read-only, unwrapped with `wrap` (from the
    /// server's secret): `<store>/keys/` of the original store (its copy
    /// holds no keys) or the database's `data_keys` table. A file has none.
    pub fn store_keys(&self, wrap: &KeyWrap) -> Result<KeyStore, Failure> {
        match self {
            Source::File { label, .. } => Err(Failure::new(
                Kind::Usage,
                format!(
                    "--key opens a store's own keys (--data-dir or --store); {label} has \
                     none: give an export's key bundle with --keys"
                ),
            )),
            Source::Store { log, path, .. } => match log.as_postgres() {
                None => {
                    let dir = DirKeyStore::open_read_only(path, wrap.clone());
                    // A wrong secret fails here, not part way through a
                    // replay: one live key is unwrapped first.
                    if let Some(conversation) = first_live_key(&path.join(KEYS_DIR)) {
                        dir.get(conversation).map_err(|err| self.key_failure(err))?;
                    }
                    Ok(dir.into())
                }
                Some(pg) => {
                    // Every key at once (one query): a replay then asks none.
                    let keys = KeyStore::from(pg.key_store_read_only(wrap.clone()));
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|err| Failure::new(Kind::Io, err.to_string()))?
                        .block_on(keys.preload())
                        .map_err(|err| self.key_failure(err))?;
                    Ok(keys)
                }
            },
        }
    }

    /// A key store's failure: a key that does not unwrap means `--key` is
    /// not this server's secret.
    fn key_failure(&self, err: KeyStoreError) -> Failure {
        match err {
            KeyStoreError::Damaged { .. } => Failure::new(
                Kind::Usage,
                format!(
                    "--key does not unwrap the keys of {} (is it this server's secret?): {err}",
                    self.describe()
                ),
            ),
            other => Failure::new(
                Kind::Unavailable,
                format!("the key store of {}: {other}", self.describe()),
            ),
        }
    }

    /// Every key of the store's own key store (see [`Source::store_keys`]),
    /// unwrapped with `wrap`: for an auditor's key bundle.
    pub fn store_key_list(
        &self,
        wrap: &KeyWrap,
    ) -> Result<Vec<(ConversationId, KeyState)>, Failure> {
        let listed = match self {
            Source::File { label, .. } => {
                return Err(Failure::new(
                    Kind::Usage,
                    format!(
                        "--keys-out needs the store the keys live in (--data-dir or --store); \
                         {label} holds no keys"
                    ),
                ));
            }
            Source::Store { log, path, .. } => match log.as_postgres() {
                None => DirKeyStore::open_read_only(path, wrap.clone()).all(),
                Some(pg) => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|err| Failure::new(Kind::Io, err.to_string()))?
                    .block_on(pg.key_store_read_only(wrap.clone()).all()),
            },
        };
        listed.map_err(|err| self.key_failure(err))
    }

    /// This source reading a store's own keys (see [`Source::store_keys`]).
    pub fn with_store_keys(self, wrap: &KeyWrap) -> Result<Source, Failure> {
        let keys = self.store_keys(wrap)?;
        Ok(self.with_keys(keys))
    }

    /// Makes `recorded` show what this reader may see: a file's sealed data
    /// opened with the reader's keys, and any stored-sealed content of an
    /// erased conversation erased.
    fn prepare(&self, recorded: &mut RecordedEvent) -> Result<(), SourceError> {
        // A store's log opened its events itself (`Log::with_keys`).
        if let (Source::File { .. }, Some(keys)) = (self, self.reading().keys()) {
            match &recorded.event {
                Event::ConversationErased(e) => keys.forget(e.conversation),
                _ => keys.open_blocking(&mut recorded.event)?,
            }
        }
        if let Some(conversation) = sealed_era_conversation(&recorded.event)
            && self.erased()?.contains(&conversation)
        {
            erase_content(&mut recorded.event);
        }
        Ok(())
    }

    /// The conversations this source holds a `ConversationErased` for,
    /// collected on first use.
    fn erased(&self) -> Result<Arc<HashSet<ConversationId>>, SourceError> {
        let mut erased = self
            .reading()
            .erased
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = &*erased {
            return Ok(set.clone());
        }
        let set = Arc::new(self.collect_erased()?);
        *erased = Some(set.clone());
        Ok(set)
    }

    fn collect_erased(&self) -> Result<HashSet<ConversationId>, SourceError> {
        let mut erased = HashSet::new();
        let mut note = |bytes: &[u8], position: u64| -> Result<(), backchannel_eventlog::Error> {
            let corrupt = |source| backchannel_eventlog::Error::Corrupt { position, source };
            let (envelope, _) = codec::decode_envelope(bytes).map_err(corrupt)?;
            if envelope.event_type == EventType::ConversationErased
                && let Event::ConversationErased(e) =
                    codec::decode_record(bytes).map_err(corrupt)?.event
            {
                erased.insert(e.conversation);
            }
            Ok(())
        };
        match self {
            Source::Store { log, .. } => {
                for record in log.raw_records(1, log.head()) {
                    let (position, bytes) = record?;
                    note(&bytes, position)?;
                }
            }
            Source::File { path, .. } => {
                let fail = |source| SourceError::File {
                    path: path.to_owned(),
                    source,
                };
                let file = File::open(path).map_err(|err| fail(err.into()))?;
                let mut reader =
                    PortableReader::new(BufReader::with_capacity(1 << 20, file)).map_err(fail)?;
                let mut position = 0;
                while let Some(checked) = reader.next_checked_raw() {
                    checked.map_err(fail)?;
                    position += 1;
                    note(reader.record_bytes(), position).map_err(|source| {
                        SourceError::Record {
                            path: path.to_owned(),
                            source,
                        }
                    })?;
                }
            }
        }
        Ok(erased)
    }
}

/// A conversation whose key file in `dir` holds a key (not a tombstone).
fn first_live_key(dir: &Path) -> Option<ConversationId> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find_map(|entry| {
            let name = entry.file_name();
            let id = name.to_str()?.parse::<ConversationId>().ok()?;
            (entry.metadata().ok()?.len() > 0).then_some(id)
        })
}

/// The conversation of `event`'s customer data if it was stored sealed (any
/// content but the plaintext era's).
fn sealed_era_conversation(event: &Event) -> Option<ConversationId> {
    fn sealed_era<T>(content: &Content<T>) -> bool {
        !content.is_legacy()
    }
    match event {
        Event::ConversationOpened(e) => sealed_era(&e.customer).then_some(e.conversation),
        Event::MessagePosted(e) => sealed_era(&e.body).then_some(e.conversation),
        Event::PrivateMessagePosted(e) => sealed_era(&e.body).then_some(e.conversation),
        _ => None,
    }
}

fn erase_content(event: &mut Event) {
    match event {
        Event::ConversationOpened(e) => e.customer = Content::Erased,
        Event::MessagePosted(e) => e.body = Content::Erased,
        Event::PrivateMessagePosted(e) => e.body = Content::Erased,
        _ => {}
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
                let stamp = Stamp::of(path);
                let trusted = {
                    let verified = verified.lock().unwrap_or_else(PoisonError::into_inner);
                    verified.is_some() && *verified == stamp
                };
                if trusted {
                    return trusted_pass(path, from, to, prepare, visit);
                }
                checked_pass(path, from, to, prepare, visit)?;
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
    prepare: &dyn Fn(&mut RecordedEvent) -> Result<(), SourceError>,
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
                    Ok(mut event) => {
                        if let Err(err) = prepare(&mut event) {
                            replayed = Err(err);
                            break 'batches;
                        }
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
    prepare: &dyn Fn(&mut RecordedEvent) -> Result<(), SourceError>,
    visit: &mut dyn FnMut(&RecordedEvent) -> ControlFlow<()>,
) -> Result<(), SourceError> {
    let fail = |source| SourceError::File {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(|err| fail(err.into()))?;
    let mut reader = PortableReader::new(BufReader::with_capacity(1 << 20, file)).map_err(fail)?;
    while let Some(event) = reader.next_trusted() {
        let mut event = event.map_err(fail)?;
        let position = event.envelope.position;
        if position > to {
            break;
        }
        if position < from {
            continue;
        }
        prepare(&mut event)?;
        if visit(&event).is_break() {
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
