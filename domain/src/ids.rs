//! Identifiers. Every id is a UUIDv7 newtype, so ids sort by creation time and
//! one kind of id can never be passed where another is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id (UUIDv7: time-ordered, random in its low bits).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID, e.g. one read back from storage.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }

            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", $label, self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| IdParseError { kind: $label })
            }
        }
    };
}

/// The input was not a well-formed id of the named kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id")]
pub struct IdParseError {
    pub kind: &'static str,
}

id_type!(
    /// A tenant.
    CompanyId, "company"
);
id_type!(
    /// A member of a company's staff.
    StaffId, "staff"
);
id_type!(
    /// A team inside a company.
    GroupId, "group"
);
id_type!(
    /// One customer case (an enquiry).
    ConversationId, "conversation"
);
id_type!(
    /// One message, public or private.
    MessageId, "message"
);
id_type!(
    /// The public key a company's chat widget uses to open conversations.
    WidgetKey, "widget key"
);
id_type!(
    /// One stored event.
    EventId, "event"
);
id_type!(
    /// One command as issued by a client; the idempotency key of an append.
    CommandId, "command"
);
id_type!(
    /// Ties together the events caused by one request.
    CorrelationId, "correlation"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = ConversationId::new();
        assert_eq!(id.to_string().parse::<ConversationId>(), Ok(id));
    }

    #[test]
    fn malformed_ids_are_rejected_with_their_kind() {
        let err = "not-a-uuid".parse::<StaffId>().unwrap_err();
        assert_eq!(err.to_string(), "not a valid staff id");
    }

    #[test]
    fn ids_are_time_ordered() {
        let first = EventId::new();
        let second = EventId::new();
        assert!(first < second);
    }
}
