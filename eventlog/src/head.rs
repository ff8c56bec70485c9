//! The committed head record: `<store>/HEAD`, where the log was acknowledged
//! to end, kept apart from sled's files (SPEC section 7, "Integrity").
//!
//! sled 0.34's recovery stops at the first log message that fails its
//! checksum and carries on with what came before it, silently: one flipped
//! bit, a lost file or a restored old copy of `sled/` would otherwise give a
//! shorter log that opens as if nothing happened. So the syncer records the
//! head (position and the hash of the record there) after every flush + fsync
//! of sled and before it acknowledges the group, and opening the store checks
//! the log against it (`index::load`): a log that ends before it, or whose
//! record at that position hashes differently, is refused with
//! [`crate::OpenError::HeadMismatch`]. A log *longer* than the record is
//! fine: a crash between sled's fsync and the head write leaves records that
//! were durable but never acknowledged; the open advances the record.
//!
//! # File format
//!
//! Two slots of [`SLOT_LEN`] bytes, written alternately, so a torn write
//! leaves the other slot (the previous head) intact. A slot, integers
//! big-endian:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `BCHEAD01` |
//! | 8 | 8 | sequence number (the newest valid slot wins) |
//! | 16 | 8 | position (0: empty log) |
//! | 24 | 32 | blake3 of the record at that position (zeros for 0) |
//! | 56 | 32 | blake3 of bytes 0..56 of the slot |
//!
//! The file is created whole (both slots) through a temporary file, a rename
//! and a directory fsync; later writes are one `pwrite` of a slot and an
//! `fdatasync`. It is a checksum, not a signature: it guards against media
//! faults and lost writes, not against someone who can rewrite the store (for
//! that, exports and checkpoints carry a MAC, see [`crate::HeadKey`]).
//!
//! Decision record: `docs/decisions/committed-head-record.md`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::envelope::Hash;
use crate::writer::ChainHead;

pub(crate) const HEAD_FILE: &str = "HEAD";
const MAGIC: &[u8; 8] = b"BCHEAD01";
const SLOT_LEN: usize = 88;

/// The open head record; [`HeadFile::record`] overwrites its older slot.
#[derive(Debug)]
pub(crate) struct HeadFile {
    file: File,
    /// The sequence number of the newest slot.
    sequence: u64,
}

/// What reading `HEAD` found.
pub(crate) enum ReadHead {
    Missing,
    /// Neither slot holds a valid record.
    Damaged,
    Found(HeadFile, ChainHead),
}

fn encode(sequence: u64, head: ChainHead) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[..8].copy_from_slice(MAGIC);
    slot[8..16].copy_from_slice(&sequence.to_be_bytes());
    slot[16..24].copy_from_slice(&head.position.to_be_bytes());
    slot[24..56].copy_from_slice(&head.hash);
    let check = blake3::hash(&slot[..56]);
    slot[56..].copy_from_slice(check.as_bytes());
    slot
}

fn decode(slot: &[u8]) -> Option<(u64, ChainHead)> {
    if slot.len() != SLOT_LEN || &slot[..8] != MAGIC {
        return None;
    }
    if blake3::hash(&slot[..56]) != blake3::Hash::from_bytes(slot[56..].try_into().ok()?) {
        return None;
    }
    let sequence = u64::from_be_bytes(slot[8..16].try_into().ok()?);
    let position = u64::from_be_bytes(slot[16..24].try_into().ok()?);
    let hash: Hash = slot[24..56].try_into().ok()?;
    Some((sequence, ChainHead { position, hash }))
}

impl HeadFile {
    /// Creates (or replaces) the store's head record, durably, naming `head`.
    pub(crate) fn create(store: &Path, head: ChainHead) -> std::io::Result<HeadFile> {
        let tmp = store.join(format!("{HEAD_FILE}.tmp"));
        let path = store.join(HEAD_FILE);
        let mut file = File::create(&tmp)?;
        file.write_all(&encode(0, head))?;
        file.write_all(&encode(1, head))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &path)?;
        File::open(store)?.sync_all()?;
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        Ok(HeadFile { file, sequence: 1 })
    }

    /// Reads the store's head record: the newest valid slot.
    pub(crate) fn read(store: &Path) -> std::io::Result<ReadHead> {
        let path = store.join(HEAD_FILE);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(ReadHead::Missing),
            Err(err) => return Err(err),
        };
        let mut bytes = [0u8; 2 * SLOT_LEN];
        let mut filled = 0;
        while filled < bytes.len() {
            match file.read_at(&mut bytes[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        let newest = bytes[..filled]
            .chunks(SLOT_LEN)
            .filter_map(decode)
            .max_by_key(|(sequence, _)| *sequence);
        Ok(match newest {
            Some((sequence, head)) => ReadHead::Found(HeadFile { file, sequence }, head),
            None => ReadHead::Damaged,
        })
    }

    /// Records `head` durably in the older slot (the newer one stays valid
    /// until this write is complete).
    pub(crate) fn record(&mut self, head: ChainHead) -> std::io::Result<()> {
        let sequence = self.sequence.wrapping_add(1);
        let offset = (sequence % 2) * SLOT_LEN as u64;
        self.file.write_all_at(&encode(sequence, head), offset)?;
        self.file.sync_data()?;
        self.sequence = sequence;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(position: u64) -> ChainHead {
        ChainHead {
            position,
            hash: [position as u8; 32],
        }
    }

    fn read(store: &Path) -> Option<ChainHead> {
        match HeadFile::read(store).unwrap() {
            ReadHead::Found(_, head) => Some(head),
            _ => None,
        }
    }

    #[test]
    fn the_newest_slot_wins_and_a_torn_one_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = HeadFile::create(dir.path(), head(0)).unwrap();
        assert_eq!(read(dir.path()).map(|h| h.position), Some(0));
        for position in 1..=5 {
            file.record(head(position)).unwrap();
            assert_eq!(read(dir.path()).map(|h| h.position), Some(position));
        }
        // Tear the newest slot (sequence 6 sits in slot 0): the previous
        // head (5) is read.
        let path = dir.path().join(HEAD_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[30] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let found = read(dir.path()).unwrap();
        assert_eq!((found.position, found.hash), (4, [4; 32]));
        bytes[SLOT_LEN + 30] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            HeadFile::read(dir.path()).unwrap(),
            ReadHead::Damaged
        ));
        fs::remove_file(&path).unwrap();
        assert!(matches!(
            HeadFile::read(dir.path()).unwrap(),
            ReadHead::Missing
        ));
    }
}
