//! Keyed tamper evidence (SPEC section 7, "Tamper evidence"): the log's head
//! authenticated with a key only the server holds.
//!
//! The hash chain proves order and completeness, but anyone can recompute it
//! after rewriting a record. So exports (`portable`), checkpoints and the
//! server's `GET /log/head` carry a MAC of the head:
//!
//! ```text
//! key = blake3::derive_key("backchannel head mac v1", secret)
//! mac = blake3::keyed_hash(key, position (u64 big-endian) || hash of the record there)
//! ```
//!
//! `secret` is the server's signing secret (`<data-dir>/secret`, or the
//! configured one). A forged export whose chain, head hash and trailer were
//! recomputed carries a head the key does not authenticate, which
//! `replay-tool verify --key` reports. The derived key is used for nothing
//! else; a checkpoint's MAC covers its seal (header and payload) with the
//! prefix `checkpoint seal\0`, so neither MAC can pass for the other.
//!
//! Decision record: `docs/decisions/head-mac.md`.

use crate::codec;
use crate::envelope::Hash;
use crate::error::Error;
use crate::log::SledEventLog;

/// The key head MACs are computed with; derived from the server's secret.
#[derive(Clone)]
pub struct HeadKey([u8; 32]);

/// The key-derivation context (blake3's `derive_key`).
pub const HEAD_MAC_CONTEXT: &str = "backchannel head mac v1";

impl std::fmt::Debug for HeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadKey(..)")
    }
}

impl HeadKey {
    pub fn from_secret(secret: &[u8]) -> Self {
        HeadKey(blake3::derive_key(HEAD_MAC_CONTEXT, secret))
    }

    /// The MAC of the head at `position` whose record hashes to `hash`.
    pub fn mac(&self, position: u64, hash: &Hash) -> Hash {
        let mut message = [0u8; 40];
        message[..8].copy_from_slice(&position.to_be_bytes());
        message[8..].copy_from_slice(hash);
        *blake3::keyed_hash(&self.0, &message).as_bytes()
    }

    /// Whether `mac` authenticates the head (compared in constant time).
    pub fn verifies(&self, position: u64, hash: &Hash, mac: &Hash) -> bool {
        let expected = blake3::Hash::from_bytes(self.mac(position, hash));
        expected == blake3::Hash::from_bytes(*mac)
    }

    /// The MAC of a checkpoint's seal.
    pub(crate) fn checkpoint_mac(&self, seal: &Hash) -> Hash {
        let mut message = [0u8; 48];
        message[..16].copy_from_slice(b"checkpoint seal\0");
        message[16..].copy_from_slice(seal);
        *blake3::keyed_hash(&self.0, &message).as_bytes()
    }
}

/// A head with its MAC: what the server publishes and exports carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedHead {
    pub position: u64,
    /// blake3 of the record at `position` (zeros for an empty log).
    pub hash: Hash,
    pub mac: Hash,
}

impl SledEventLog {
    /// Gives the log the key its exports and checkpoints authenticate the
    /// head with (once; a second key is ignored and returned).
    pub fn set_head_key(&self, key: HeadKey) -> Result<(), HeadKey> {
        self.inner.head_key.set(key)
    }

    pub fn head_key(&self) -> Option<&HeadKey> {
        self.inner.head_key.get()
    }

    /// The committed head with its MAC, or `None` when the log has no key.
    pub fn signed_head(&self) -> Result<Option<SignedHead>, Error> {
        let Some(key) = self.head_key() else {
            return Ok(None);
        };
        self.signed_head_at(key, self.head()).map(Some)
    }

    /// The head at `position` (committed) with its MAC under `key`.
    pub fn signed_head_at(&self, key: &HeadKey, position: u64) -> Result<SignedHead, Error> {
        let hash = match position {
            0 => [0; 32],
            _ => codec::record_hash(&self.raw_record(position)?),
        };
        Ok(SignedHead {
            position,
            hash,
            mac: key.mac(position, &hash),
        })
    }
}

/// Lower-case hex, as hashes are shown and published.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// A 32-byte hash from 64 hex digits (surrounding whitespace ignored).
pub fn parse_hash(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_depends_on_the_key_the_position_and_the_hash() {
        let key = HeadKey::from_secret(b"a secret of at least thirty-two bytes!");
        let other = HeadKey::from_secret(b"another secret of thirty-two bytes!!!!");
        let mac = key.mac(7, &[1; 32]);
        assert!(key.verifies(7, &[1; 32], &mac));
        assert!(!key.verifies(8, &[1; 32], &mac));
        assert!(!key.verifies(7, &[2; 32], &mac));
        assert!(!other.verifies(7, &[1; 32], &mac));
        assert_ne!(key.checkpoint_mac(&[1; 32]), mac);
        assert_eq!(parse_hash(&hex(&mac)), Some(mac));
        assert_eq!(parse_hash("xyz"), None);
    }
}
