//! Customer data as a reader holds it: [`Content`] (plain, sealed, erased or
//! from before encryption), the markers text outputs show for it, and
//! [`SealedValue`], the sealed bytes the log stores.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A conversation's customer data (its customer's name, its messages'
/// bodies) as one reader holds it (SPEC section 12).
///
/// `decide` makes [`Content::Plain`] values; the event log seals them under
/// the conversation's data key when it appends them, and opens them again when
/// it reads them back with the key store beside it. A reader without keys (an
/// export read without its key bundle) gets [`Content::Sealed`]; once the
/// conversation is erased, every reader gets [`Content::Erased`]. Only values
/// written before encryption existed are [`Content::Legacy`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content<T> {
    /// Readable; sealed in the log (or to be sealed when appended).
    Plain(T),
    /// Readable; stored in clear, before encryption existed (the plaintext
    /// era). Such a conversation cannot be erased in place.
    Legacy(T),
    /// Stored sealed, not opened by this reader: it holds no key for it, or
    /// has not opened it yet (a server's catch-up applies sealed values
    /// unopened; its api opens a name when it is asked for).
    Sealed(SealedValue),
    /// The conversation was erased: its data key is destroyed.
    Erased,
}

impl<T> Content<T> {
    /// The plaintext, if this reader can read it.
    pub fn readable(&self) -> Option<&T> {
        match self {
            Content::Plain(value) | Content::Legacy(value) => Some(value),
            Content::Sealed(_) | Content::Erased => None,
        }
    }

    pub fn is_erased(&self) -> bool {
        matches!(self, Content::Erased)
    }

    /// True for values stored in clear (the plaintext era).
    pub fn is_legacy(&self) -> bool {
        matches!(self, Content::Legacy(_))
    }
}

impl<T: AsRef<str>> Content<T> {
    /// The plaintext, or the marker [`ERASED_MARKER`] or [`SEALED_MARKER`].
    pub fn text(&self) -> &str {
        match self {
            Content::Plain(value) | Content::Legacy(value) => value.as_ref(),
            Content::Sealed(_) => SEALED_MARKER,
            Content::Erased => ERASED_MARKER,
        }
    }
}

/// What text outputs (reports, the replay tool) show for erased content.
pub const ERASED_MARKER: &str = "[erased]";
/// What text outputs show for sealed content read without its key.
pub const SEALED_MARKER: &str = "[sealed]";

impl<T: fmt::Debug> fmt::Debug for Content<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Plain(value) => f.debug_tuple("Plain").field(value).finish(),
            Content::Legacy(value) => f.debug_tuple("Legacy").field(value).finish(),
            Content::Sealed(sealed) => write!(f, "Sealed({} bytes)", sealed.0.len()),
            Content::Erased => f.write_str("Erased"),
        }
    }
}

/// Sealed bytes as the log stores them (format byte, nonce, ciphertext,
/// tag); opaque outside the event log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedValue(Vec<u8>);

impl SealedValue {
    pub fn new(bytes: Vec<u8>) -> Self {
        SealedValue(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedValue({} bytes)", self.0.len())
    }
}
