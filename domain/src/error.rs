//! Why a command or a lookup was refused. Each variant maps to exactly one error
//! code of SPEC section 8; messages are safe to show to the caller and never name
//! anything the caller may not see.

use std::fmt;

use crate::ids::StaffId;
use crate::values::ValueError;

/// The error codes of SPEC section 8, as clients see them in `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    RestrictedAccess,
    NotFound,
    Validation,
    Conflict,
    PrivateMessagesUnsupported,
    ConversationClosed,
    QueryTooComplex,
    PayloadTooLarge,
    RateLimited,
    /// The server is still building its read models from the log (at start,
    /// SPEC section 11); retry after the delay the error names.
    NotCaughtUp,
    Erased,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::RestrictedAccess => "RESTRICTED_ACCESS",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Validation => "VALIDATION",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::PrivateMessagesUnsupported => "PRIVATE_MESSAGES_UNSUPPORTED",
            ErrorCode::ConversationClosed => "CONVERSATION_CLOSED",
            ErrorCode::QueryTooComplex => "QUERY_TOO_COMPLEX",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::NotCaughtUp => "NOT_CAUGHT_UP",
            ErrorCode::Erased => "ERASED",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of thing was not found. Another company's object and an id that
/// does not exist give the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Company,
    Staff,
    Group,
    Conversation,
    /// Whatever `node(id)` was asked for: its answer names no kind, so it
    /// tells nothing about what the id might belong to.
    Object,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Missing::Company => "company",
            Missing::Staff => "staff member",
            Missing::Group => "group",
            Missing::Conversation => "conversation",
            Missing::Object => "object",
        })
    }
}

/// A refused command or lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The actor is unknown or deactivated.
    #[error("not signed in, or the account is no longer active")]
    Unauthenticated,
    /// The actor may see the target but not do this to it.
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    /// The conversation exists but the viewer may not see it (SPEC section 3).
    #[error("you do not have access to this conversation")]
    RestrictedAccess,
    #[error("{0} not found")]
    NotFound(Missing),
    #[error("{0}")]
    Validation(String),
    /// Someone else changed the target first, e.g. took the conversation.
    #[error("the conversation was already taken")]
    Conflict { current_assignee: Option<StaffId> },
    #[error("private messages are not available in email and call conversations")]
    PrivateMessagesUnsupported,
    #[error("the conversation is closed")]
    ConversationClosed,
    /// The conversation's content was stored before encryption: it cannot be
    /// erased in place (SPEC section 12).
    #[error(
        "this conversation was stored before encryption, so its content cannot be erased in place; \
         migrate the store as docs/erasure.md describes (export, re-encrypt, import into a new store)"
    )]
    StoredInClear,
    #[error("the conversation's content was erased")]
    Erased,
}

impl DomainError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DomainError::Unauthenticated => ErrorCode::Unauthenticated,
            DomainError::Forbidden(_) => ErrorCode::Forbidden,
            DomainError::RestrictedAccess => ErrorCode::RestrictedAccess,
            DomainError::NotFound(_) => ErrorCode::NotFound,
            DomainError::Validation(_) => ErrorCode::Validation,
            DomainError::Conflict { .. } => ErrorCode::Conflict,
            DomainError::PrivateMessagesUnsupported => ErrorCode::PrivateMessagesUnsupported,
            DomainError::ConversationClosed => ErrorCode::ConversationClosed,
            DomainError::StoredInClear => ErrorCode::Validation,
            DomainError::Erased => ErrorCode::Erased,
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        DomainError::Validation(message.into())
    }
}

impl From<ValueError> for DomainError {
    fn from(err: ValueError) -> Self {
        DomainError::Validation(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_error_has_its_spec_code() {
        let cases = [
            (DomainError::Unauthenticated, "UNAUTHENTICATED"),
            (DomainError::Forbidden("x"), "FORBIDDEN"),
            (DomainError::RestrictedAccess, "RESTRICTED_ACCESS"),
            (DomainError::NotFound(Missing::Conversation), "NOT_FOUND"),
            (DomainError::validation("x"), "VALIDATION"),
            (
                DomainError::Conflict {
                    current_assignee: None,
                },
                "CONFLICT",
            ),
            (
                DomainError::PrivateMessagesUnsupported,
                "PRIVATE_MESSAGES_UNSUPPORTED",
            ),
            (DomainError::ConversationClosed, "CONVERSATION_CLOSED"),
            (DomainError::StoredInClear, "VALIDATION"),
            (DomainError::Erased, "ERASED"),
        ];
        for (error, code) in cases {
            assert_eq!(error.code().as_str(), code);
        }
    }

    #[test]
    fn not_found_reads_the_same_for_any_missing_conversation() {
        // Another company's conversation and a missing one share this message.
        assert_eq!(
            DomainError::NotFound(Missing::Conversation).to_string(),
            "conversation not found"
        );
    }
}
