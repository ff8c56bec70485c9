//! Values that parse, don't validate: once a `MessageBody` or a `Name` exists,
//! it satisfies SPEC section 8's bounds, so no later layer checks them again.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest message body, in characters, after trimming.
pub const MAX_MESSAGE_CHARS: usize = 10_000;
/// Longest name (company, staff, group, customer), in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 200;

/// Why a value was rejected at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
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

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MessageBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for MessageBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_body(input: &str, expect: Result<&str, ValueError>) {
        let got = MessageBody::parse(input);
        assert_eq!(
            got.as_ref().map(MessageBody::as_str),
            expect.as_ref().copied()
        );
    }

    #[test]
    fn message_bodies_are_trimmed_and_bounded() {
        check_body("  hello  ", Ok("hello"));
        check_body(
            "",
            Err(ValueError::Empty {
                what: "message body",
            }),
        );
        check_body(
            " \n\t ",
            Err(ValueError::Empty {
                what: "message body",
            }),
        );
        let max = "é".repeat(MAX_MESSAGE_CHARS);
        check_body(&max, Ok(&max));
        check_body(
            &"x".repeat(MAX_MESSAGE_CHARS + 1),
            Err(ValueError::TooLong {
                what: "message body",
                max: MAX_MESSAGE_CHARS,
                actual: MAX_MESSAGE_CHARS + 1,
            }),
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse(" Support ").unwrap().as_str(), "Support");
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"n".repeat(MAX_NAME_CHARS)).is_ok());
        assert_eq!(
            Name::parse(&"n".repeat(MAX_NAME_CHARS + 1)),
            Err(ValueError::TooLong {
                what: "name",
                max: MAX_NAME_CHARS,
                actual: MAX_NAME_CHARS + 1
            })
        );
    }
}
