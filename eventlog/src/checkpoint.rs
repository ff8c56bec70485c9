//! Checkpoints: a read model's state saved at a position of the log, so that a
//! restart replays only the events after it instead of the whole log.
//!
//! A checkpoint lives in a directory of its owner's choosing: a sled store's
//! `<store>/checkpoints/<name>`, or a node's own data directory when several
//! nodes share one log. It records the position it was taken at and the hash
//! of the record there, and a start resumes from it with
//! [`crate::Log::open_resuming`], which refuses unless
//! the log still holds that very record (then the caller rebuilds from position
//! 1). The log itself never reads a checkpoint and nothing depends on one: it
//! is a cache of a replay, and losing it costs only a longer start.
//!
//! What the payload is, and its version, is the caller's `kind` (for example
//! `backchannel-projections/read-models/1`): a payload type that changes shape
//! must change its kind, and a checkpoint of another kind is refused rather
//! than decoded.
//!
//! # File format (checkpoint format 2)
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 23 | magic `backchannel-checkpoint\n` |
//! | 23 | 1 | checkpoint format (`2`; `1` is still read) |
//! | 24 | 1 | codec version of the payload ([`codec::CODEC_VERSION`]) |
//! | 25 | 1 | length `k` of the kind |
//! | 26 | k | kind, UTF-8 |
//! | 26+k | 8 | position (u64 BE) |
//! | 34+k | 32 | hash of the record at that position |
//! | 66+k | 8 | payload length `n` (u64 BE) |
//! | 74+k | 1 | flags: bit 0 set when the MAC is present; other bits `0` |
//! | 75+k | 32 | seal: blake3 of the header's bytes before it and the payload's blake3 |
//! | 107+k | 32 | MAC of the seal with the server's head key (see `mac.rs`); zeros when written without a key |
//! | 139+k | n | payload ([`codec::encode_checkpoint`]) |
//!
//! Format 1 has neither flags nor MAC (the seal at `74+k`, the payload at
//! `106+k`): read, and reported as not authenticated. The seal catches damage; the MAC, which
//! covers the seal and so the head and the payload, shows the server wrote
//! it. A checkpoint whose MAC the key does not verify is refused
//! ([`CheckpointError::Unauthentic`]): the caller rebuilds from the log.
//!
//! A checkpoint is written to a temporary file, fsynced, renamed over the old
//! one and its directory fsynced, so a crash leaves the old checkpoint or the
//! new one, never a mix. Reading hashes the payload before decoding it.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, CodecError};
use crate::envelope::Hash;
use crate::error::Error;
use crate::log::SledEventLog;
use crate::mac::HeadKey;

const MAGIC: &[u8; 23] = b"backchannel-checkpoint\n";
/// The checkpoint file format this build writes (it reads 1 too).
pub const CHECKPOINT_FORMAT: u8 = 2;
/// The format before the MAC.
const UNAUTHENTICATED_FORMAT: u8 = 1;
/// The directory under the store that holds checkpoints.
pub(crate) const CHECKPOINT_DIR: &str = "checkpoints";
const IO_BUFFER: usize = 256 * 1024;

/// Where a replay resumes: after the record at `position`, whose stored bytes
/// hash to `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    pub position: u64,
    pub hash: Hash,
}

/// A checkpoint read back: the state of a read model after applying the log up
/// to `after.position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint<T> {
    pub after: ResumePoint,
    pub value: T,
    /// Whether its MAC was checked with the key and verified (false: read
    /// without a key, written without one, or checkpoint format 1).
    pub authenticated: bool,
}

/// What [`SledEventLog::save_checkpoint`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCheckpoint {
    pub path: PathBuf,
    pub after: ResumePoint,
    /// The file's size.
    pub bytes: u64,
}

/// Why a checkpoint could not be written or read. A caller that cannot read
/// one rebuilds from the log; nothing is lost.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("a checkpoint name is 1 to 64 lowercase letters, digits and dashes, not {0:?}")]
    BadName(String),
    #[error("a checkpoint kind is 1 to 255 bytes of UTF-8, not {0:?}")]
    BadKind(String),
    #[error("cannot checkpoint at position {position}: {source}")]
    Position {
        position: u64,
        #[source]
        source: Error,
    },
    #[error("cannot write or read the checkpoint {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a Backchannel checkpoint")]
    NotACheckpoint { path: PathBuf },
    #[error(
        "{path} is checkpoint format {format} with codec version {codec}; this build reads \
         format {CHECKPOINT_FORMAT} with codec version {}",
        codec::CODEC_VERSION
    )]
    UnsupportedFormat {
        path: PathBuf,
        format: u8,
        codec: u8,
    },
    #[error("{path} holds a {found:?} checkpoint, not {expected:?}")]
    OtherKind {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "{path} was not written by this server (its MAC does not verify with this server's \
         key): forged, or the secret changed"
    )]
    Unauthentic { path: PathBuf },
    #[error("{path} is damaged: {problem}")]
    Damaged { path: PathBuf, problem: String },
    #[error("the checkpoint {path} does not encode or decode: {source}")]
    Codec {
        path: PathBuf,
        #[source]
        source: CodecError,
    },
}

impl SledEventLog {
    /// Saves `value`, the state of a read model that has applied this log up to
    /// `position` (committed, ≥ 1), as the checkpoint `name` of this store
    /// (`<store>/checkpoints/<name>`), replacing the previous one durably,
    /// authenticated with the log's head key if it has one
    /// ([`SledEventLog::set_head_key`]). Blocking: writes and fsyncs the whole
    /// value. [`crate::Log::save_checkpoint`] is the same into any directory.
    pub fn save_checkpoint<T: Serialize>(
        &self,
        name: &str,
        kind: &str,
        position: u64,
        value: &T,
    ) -> Result<SavedCheckpoint, CheckpointError> {
        crate::Log::from(self.clone()).save_checkpoint(
            &self.path().join(CHECKPOINT_DIR),
            name,
            kind,
            position,
            value,
        )
    }

    /// Reads the checkpoint `name` of the store at `store` (before the store is
    /// opened: its position says where [`SledEventLog::open_resuming`] starts).
    /// `Ok(None)` when there is none. Blocking. Its MAC is not checked.
    pub fn load_checkpoint<T: DeserializeOwned>(
        store: impl AsRef<Path>,
        name: &str,
        kind: &str,
    ) -> Result<Option<Checkpoint<T>>, CheckpointError> {
        Self::load_checkpoint_keyed(store, name, kind, None)
    }

    /// [`SledEventLog::load_checkpoint`], checking its MAC with `key`: a
    /// checkpoint carrying a MAC the key does not verify is
    /// [`CheckpointError::Unauthentic`].
    pub fn load_checkpoint_keyed<T: DeserializeOwned>(
        store: impl AsRef<Path>,
        name: &str,
        kind: &str,
        key: Option<&HeadKey>,
    ) -> Result<Option<Checkpoint<T>>, CheckpointError> {
        load_checkpoint(&store.as_ref().join(CHECKPOINT_DIR), name, kind, key)
    }
}

/// Reads the checkpoint `name` in the directory `dir` (a sled store's
/// `<store>/checkpoints`, or a node's own checkpoint directory), checking its
/// MAC with `key` if given. `Ok(None)` when there is none. Blocking.
pub fn load_checkpoint<T: DeserializeOwned>(
    dir: &Path,
    name: &str,
    kind: &str,
    key: Option<&HeadKey>,
) -> Result<Option<Checkpoint<T>>, CheckpointError> {
    check_name(name)?;
    check_kind(kind)?;
    let path = dir.join(name);
    match File::open(&path) {
        Ok(file) => read_file(&path, file, kind, key).map(Some),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Io { path, source }),
    }
}

/// Writes the checkpoint `name` in `dir` (created if missing) durably: a
/// temporary file, fsynced, renamed over the old one, the directory fsynced.
pub(crate) fn save_in<T: Serialize>(
    dir: &Path,
    name: &str,
    kind: &str,
    after: ResumePoint,
    value: &T,
    key: Option<&HeadKey>,
) -> Result<SavedCheckpoint, CheckpointError> {
    check_name(name)?;
    check_kind(kind)?;
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let bytes = write_file(&tmp, kind, after, value, key)?;
    fs::rename(&tmp, &path).map_err(io_at(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    Ok(SavedCheckpoint { path, after, bytes })
}

/// [`CheckpointError::Io`] on `path`, for `map_err`.
fn io_at(path: &Path) -> impl Fn(io::Error) -> CheckpointError + Copy + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

fn check_name(name: &str) -> Result<(), CheckpointError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CheckpointError::BadName(name.to_owned()))
    }
}

fn check_kind(kind: &str) -> Result<(), CheckpointError> {
    if (1..=255).contains(&kind.len()) {
        Ok(())
    } else {
        Err(CheckpointError::BadKind(kind.to_owned()))
    }
}

/// The header up to (not including) its seal.
fn header_fields(kind: &str, after: ResumePoint, payload_len: u64, flags: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(139 + kind.len());
    out.extend_from_slice(MAGIC);
    out.push(CHECKPOINT_FORMAT);
    out.push(codec::CODEC_VERSION);
    // check_kind bounds the length to a byte.
    out.push(u8::try_from(kind.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(&after.position.to_be_bytes());
    out.extend_from_slice(&after.hash);
    out.extend_from_slice(&payload_len.to_be_bytes());
    out.push(flags);
    out
}

/// Flag bit: the checkpoint carries a MAC.
const FLAG_MAC: u8 = 1;

/// What the header ends with: covers every header field and the payload, so a
/// flipped position is caught like a flipped payload byte.
fn seal(fields: &[u8], payload_hash: &blake3::Hash) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(fields).update(payload_hash.as_bytes());
    *hasher.finalize().as_bytes()
}

/// Counts and hashes what passes through to the file.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the header with a zero checksum, streams the payload while hashing
/// it, then writes the real header over the first one and fsyncs.
fn write_file<T: Serialize>(
    path: &Path,
    kind: &str,
    after: ResumePoint,
    value: &T,
    key: Option<&HeadKey>,
) -> Result<u64, CheckpointError> {
    let io = io_at(path);
    let mut file = File::create(path).map_err(io)?;
    let flags = if key.is_some() { FLAG_MAC } else { 0 };
    file.write_all(&header_fields(kind, after, 0, flags))
        .and_then(|()| file.write_all(&[0; 64]))
        .map_err(io)?;
    let mut out = BufWriter::with_capacity(
        IO_BUFFER,
        Hashing {
            inner: file,
            hasher: blake3::Hasher::new(),
            len: 0,
        },
    );
    codec::encode_checkpoint(value, &mut out).map_err(|source| CheckpointError::Codec {
        path: path.to_owned(),
        source,
    })?;
    let Hashing {
        inner: mut file,
        hasher,
        len,
    } = out.into_inner().map_err(|err| io(err.into_error()))?;
    let mut header = header_fields(kind, after, len, flags);
    let sealed = seal(&header, &hasher.finalize());
    header.extend_from_slice(&sealed);
    header.extend_from_slice(&key.map_or([0; 32], |key| key.checkpoint_mac(&sealed)));
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&header).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(header.len() as u64 + len)
}

fn read_file<T: DeserializeOwned>(
    path: &Path,
    mut file: File,
    expected_kind: &str,
    key: Option<&HeadKey>,
) -> Result<Checkpoint<T>, CheckpointError> {
    let io = io_at(path);
    let damaged = |problem: &str| CheckpointError::Damaged {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let file_len = file.metadata().map_err(io)?.len();
    let mut fixed = [0u8; 26];
    if read_exactly(&mut file, &mut fixed).map_err(io)? < fixed.len() || fixed[..23] != MAGIC[..] {
        return Err(CheckpointError::NotACheckpoint {
            path: path.to_owned(),
        });
    }
    let (format, codec_version, kind_len) = (fixed[23], fixed[24], usize::from(fixed[25]));
    let known = format == CHECKPOINT_FORMAT || format == UNAUTHENTICATED_FORMAT;
    if !known || codec_version != codec::CODEC_VERSION {
        return Err(CheckpointError::UnsupportedFormat {
            path: path.to_owned(),
            format,
            codec: codec_version,
        });
    }
    // Format 2 adds the flags byte (sealed) and the MAC (after the seal).
    let (flags_len, mac_len) = if format == CHECKPOINT_FORMAT {
        (1, 32)
    } else {
        (0, 0)
    };
    let mut rest = vec![0u8; kind_len + 80 + flags_len + mac_len];
    if read_exactly(&mut file, &mut rest).map_err(io)? < rest.len() {
        return Err(damaged("the header is truncated"));
    }
    let mut fields = fixed.to_vec();
    fields.extend_from_slice(&rest[..kind_len + 48 + flags_len]);
    let (kind, rest) = rest.split_at(kind_len);
    if kind != expected_kind.as_bytes() {
        return Err(CheckpointError::OtherKind {
            path: path.to_owned(),
            found: String::from_utf8_lossy(kind).into_owned(),
            expected: expected_kind.to_owned(),
        });
    }
    let (position, rest) = split_u64(rest);
    let (hash, rest) = split_hash(rest);
    let (payload_len, rest) = split_u64(rest);
    let (flags, rest) = rest.split_at(flags_len);
    let flags = flags.first().copied().unwrap_or(0);
    let (sealed, rest) = split_hash(rest);
    let mac = (mac_len > 0).then(|| split_hash(rest).0);
    let payload_at = 106 + (kind_len + flags_len + mac_len) as u64;
    if file_len.checked_sub(payload_at) != Some(payload_len) {
        return Err(damaged("its length does not match its header"));
    }
    // First pass: the seal, so the decoder only ever sees bytes we wrote.
    let mut hasher = blake3::Hasher::new();
    io::copy(
        &mut BufReader::with_capacity(IO_BUFFER, (&mut file).take(payload_len)),
        &mut hasher,
    )
    .map_err(io)?;
    if seal(&fields, &hasher.finalize()) != sealed {
        return Err(damaged("it does not match its seal"));
    }
    // The flags are sealed; the MAC is not (it covers the seal), so one that
    // the flags say is absent must be zeros.
    if flags & !FLAG_MAC != 0 {
        return Err(damaged("unknown header flags"));
    }
    let mac = match mac {
        Some(mac) if flags & FLAG_MAC != 0 => Some(mac),
        Some(mac) if mac != [0; 32] => {
            return Err(damaged("a MAC where its header says there is none"));
        }
        _ => None,
    };
    let authenticated = match (key, mac) {
        (Some(key), Some(mac)) => {
            let expected = blake3::Hash::from_bytes(key.checkpoint_mac(&sealed));
            if expected != blake3::Hash::from_bytes(mac) {
                return Err(CheckpointError::Unauthentic {
                    path: path.to_owned(),
                });
            }
            true
        }
        _ => false,
    };
    file.seek(SeekFrom::Start(payload_at)).map_err(io)?;
    let mut payload = BufReader::with_capacity(IO_BUFFER, file.take(payload_len));
    let value =
        codec::decode_checkpoint(&mut payload).map_err(|source| CheckpointError::Codec {
            path: path.to_owned(),
            source,
        })?;
    if payload.read(&mut [0u8; 1]).map_err(io)? != 0 {
        return Err(damaged("bytes are left over after its payload"));
    }
    Ok(Checkpoint {
        after: ResumePoint { position, hash },
        value,
        authenticated,
    })
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_exactly(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

fn split_u64(bytes: &[u8]) -> (u64, &[u8]) {
    let (head, rest) = bytes.split_at(8);
    let mut be = [0u8; 8];
    be.copy_from_slice(head);
    (u64::from_be_bytes(be), rest)
}

fn split_hash(bytes: &[u8]) -> (Hash, &[u8]) {
    let (head, rest) = bytes.split_at(32);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(head);
    (hash, rest)
}
