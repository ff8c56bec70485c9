//! The one error type of the API boundary and its mapping to GraphQL errors.
//!
//! Every error a client sees carries `extensions.code` (SPEC section 8). Domain
//! refusals keep their own code and safe message; storage failures are logged
//! with their whole cause chain ([`Chain`]) and shown as a bland `INTERNAL`
//! error.

use async_graphql::ErrorExtensions;
use backchannel_domain::{DomainError, ErrorCode};

use crate::ratelimit::RetryAfter;

/// Why a GraphQL operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// A refusal by the domain rules (or by the visibility policy on a read).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Missing, malformed, expired or revoked credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Bad input caught at the edge (ids, cursors, page sizes, bodies).
    #[error("{0}")]
    Validation(String),
    /// The command kept losing optimistic-concurrency races.
    #[error("the target kept changing while the command was decided; try again")]
    Busy,
    /// A live subscription fell too far behind the log and was ended.
    #[error("the subscription fell behind; subscribe again")]
    Lagged,
    /// Too many calls of this kind from this caller; try again after the delay.
    #[error("too many requests: try again in {} ms", .0.millis())]
    RateLimited(RetryAfter),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A failure of the server (storage, projections); the cause is logged.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Validation(message.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Domain(err) => err.code().as_str(),
            ApiError::Unauthenticated(_) => ErrorCode::Unauthenticated.as_str(),
            ApiError::Validation(_) => ErrorCode::Validation.as_str(),
            ApiError::Busy => ErrorCode::Conflict.as_str(),
            ApiError::RateLimited(_) => ErrorCode::RateLimited.as_str(),
            ApiError::Lagged => LAGGED,
            ApiError::ShuttingDown | ApiError::Internal => INTERNAL,
        }
    }

    /// Logs an internal failure with its whole cause chain (the error and
    /// every `source()` below it) and returns the bland error the client
    /// sees.
    pub fn internal<E: std::error::Error>(context: &str, cause: E) -> Self {
        tracing::error!(cause = %Chain(&cause), "{context}");
        ApiError::Internal
    }

    /// Logs a broken expectation of the server about itself (no underlying
    /// error to chain: e.g. a command that appended without its event) and
    /// returns the bland error the client sees.
    pub fn broken(context: &str, what: &str) -> Self {
        tracing::error!(cause = what, "{context}");
        ApiError::Internal
    }
}

/// The text of a conversation's customer data (its customer's name, a
/// message's body) for the GraphQL APIs: `ERASED` once the conversation was
/// erased (SPEC section 12). Sealed data the server has no key for is a
/// server failure, never shown.
pub(crate) fn content_text<T: AsRef<str>>(
    content: &backchannel_domain::values::Content<T>,
) -> ApiResult<Option<String>> {
    use backchannel_domain::values::Content;
    match content {
        Content::Plain(value) | Content::Legacy(value) => Ok(Some(value.as_ref().to_owned())),
        Content::Erased => Err(ApiError::Domain(DomainError::Erased)),
        Content::Sealed(_) => Err(ApiError::broken(
            "opening customer data",
            "sealed content without its key in this server's key store",
        )),
    }
}

/// [`content_text`] for a nullable content field: its text, or `null` with
/// the error (`ERASED`) reported beside it. Returning the error from the
/// resolver instead would leave the field out of the answer altogether
/// (async-graphql does not set a failed field to `null`), and GraphQL wants
/// it there, `null`.
pub(crate) fn content_field<T: AsRef<str>>(
    ctx: &async_graphql::Context<'_>,
    content: &backchannel_domain::values::Content<T>,
) -> Option<String> {
    match content_text(content) {
        Ok(text) => text,
        Err(err) => {
            let error = err.extend().into_server_error(ctx.item.pos);
            ctx.add_error(ctx.set_error_path(error));
            None
        }
    }
}

/// A customer's name for the GraphQL APIs ([`content_field`]): a name the
/// read models kept sealed (applied at the catch-up, unopened) is opened with
/// the log's key store first.
pub(crate) async fn customer_name_field(
    ctx: &async_graphql::Context<'_>,
    conversation: backchannel_domain::ids::ConversationId,
    customer: &backchannel_domain::values::Content<backchannel_domain::values::Name>,
) -> Option<String> {
    use backchannel_domain::values::Content;
    if let Content::Sealed(_) = customer
        && let Ok(shared) = crate::context::shared(ctx)
        && let Some(keys) = shared.desk.log().keys()
    {
        return match keys.open_customer(conversation, customer).await {
            Ok(opened) => content_field(ctx, &opened),
            Err(err) => {
                let error = ApiError::internal("opening a customer's name", err)
                    .extend()
                    .into_server_error(ctx.item.pos);
                ctx.add_error(ctx.set_error_path(error));
                None
            }
        };
    }
    content_field(ctx, customer)
}

/// An error and its causes, outermost first, separated by `: ` (as
/// `anyhow`'s `{:#}`), for the logs.
pub(crate) struct Chain<'a>(pub(crate) &'a dyn std::error::Error);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The code of server failures (not a client error, so not in SPEC's list).
pub(crate) const INTERNAL: &str = "INTERNAL";

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, e| {
            e.set("code", self.code());
            if let ApiError::Domain(DomainError::Conflict {
                current_assignee: Some(assignee),
            }) = self
            {
                e.set("currentAssignee", assignee.to_string());
            }
            if let ApiError::RateLimited(retry) = self {
                e.set("retryAfterMs", retry.millis());
            }
        })
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        err.extend()
    }
}

/// The code of a request stopped at its execution deadline (`Limits::deadline`):
/// not one of SPEC's client errors, since the cause may be the server's load
/// as much as the request.
pub(crate) const TIMEOUT: &str = "TIMEOUT";

/// The error of a request stopped at its deadline.
pub(crate) fn timed_out(deadline: std::time::Duration) -> async_graphql::ServerError {
    let mut error = async_graphql::ServerError::new(
        format!(
            "the request did not finish within {} ms and was stopped; a mutation in it may \
             have taken effect: retry with the same idempotencyKey to learn its outcome",
            deadline.as_millis()
        ),
        None,
    );
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", TIMEOUT);
    error
}

/// The code of a subscription ended because it fell behind.
pub(crate) const LAGGED: &str = "LAGGED";

/// Results of resolvers.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("appending failed")]
    struct Appending(#[source] Store);

    #[derive(Debug, thiserror::Error)]
    #[error("the store refused the write")]
    struct Store(#[source] std::io::Error);

    fn nested() -> Appending {
        Appending(Store(std::io::Error::other("disk full")))
    }

    #[test]
    fn the_chain_lists_every_cause_outermost_first() {
        assert_eq!(
            Chain(&nested()).to_string(),
            "appending failed: the store refused the write: disk full"
        );
        let alone = std::io::Error::other("disk full");
        assert_eq!(Chain(&alone).to_string(), "disk full");
    }

    /// A log line sink for one test's subscriber.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_internal_error_logs_its_whole_chain_and_tells_the_client_nothing_of_it() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let err = tracing::subscriber::with_default(subscriber, || {
            ApiError::internal("reading the log", nested())
        });
        let logged = String::from_utf8_lossy(
            &captured
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
        .into_owned();
        assert!(logged.contains("reading the log"), "{logged}");
        assert!(
            logged.contains("appending failed: the store refused the write: disk full"),
            "{logged}"
        );
        assert_eq!(err.code(), INTERNAL);
        let shown = err.extend().message;
        assert_eq!(shown, "internal error");
    }
}
