//! Values that parse, don't validate: once a `MessageBody` or a `Name` exists,
//! it satisfies SPEC section 8's bounds, so no later layer checks them again.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `Debug` and `Display` for values that wrap one `String`: shown as the
/// text itself (`Debug` quoted, as a `String` is), never as `Name("…")`.
macro_rules! text_formatting {
    ($($value:ty),+) => {$(
        impl fmt::Debug for $value {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $value {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )+};
}

mod content;
mod origins;

pub use content::{Content, ERASED_MARKER, SEALED_MARKER, SealedValue};
pub use origins::{WebOrigin, WidgetOrigins};

/// Longest message body, in characters, after trimming.
pub const MAX_MESSAGE_CHARS: usize = 10_000;
/// Longest name (company, staff, group, customer), in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 200;

/// Most origins one company's widget may be embedded on.
pub const MAX_WIDGET_ORIGINS: usize = 20;
/// Longest widget origin, in characters.
pub const MAX_ORIGIN_CHARS: usize = 200;

/// Why a value was rejected at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(
        "{input:?} is not an origin: give scheme://host[:port] with http or https, no path ({reason})"
    )]
    NotAnOrigin { input: String, reason: &'static str },
    #[error("at most {max} widget origins, got {actual}")]
    TooMany { max: usize, actual: usize },
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} must be at most {max} characters, got {actual}")]
    TooLong {
        what: &'static str,
        max: usize,
        actual: usize,
    },
}

fn parse_bounded(input: &str, what: &'static str, max: usize) -> Result<String, ValueError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(ValueError::Empty { what });
    }
    let actual = trimmed.chars().count();
    if actual > max {
        return Err(ValueError::TooLong { what, max, actual });
    }
    Ok(trimmed.to_owned())
}

/// The text of a public or private message: 1..=10,000 characters after trimming.
///
/// Deserialization does not re-check the bounds: stored events were checked when
/// they were written and must stay readable even if the bounds change later.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        parse_bounded(input, "message body", MAX_MESSAGE_CHARS).map(Self)
    }

    /// A body as it was stored (opened from its sealed form): checked when it
    /// was written, so not checked again, like a deserialized one.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A human-readable name: 1..=200 characters after trimming.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        parse_bounded(input, "name", MAX_NAME_CHARS).map(Self)
    }

    /// A name as it was stored (opened from its sealed form): checked when it
    /// was written, so not checked again, like a deserialized one.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a conversation is erased (SPEC section 12): 1..=500 characters after
/// trimming, recorded with the erasure.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErasureReason(String);

/// The longest erasure reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

impl ErasureReason {
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        parse_bounded(input, "reason", MAX_REASON_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ErasureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}
impl AsRef<str> for MessageBody {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

text_formatting!(MessageBody, Name);

#[cfg(test)]
mod tests;
