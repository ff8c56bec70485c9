//! The one error type of the routes outside GraphQL execution (`/log`,
//! `/log/head`, `/reports/enquiries`, and the GraphQL endpoints before a
//! request executes: body, batch, admission, tokens, origins, positions).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use backchannel_domain::ErrorCode;
use serde_json::json;

use crate::error::{Chain, INTERNAL};
use crate::ratelimit::RetryAfter;

/// A refused request: its HTTP status and one GraphQL-shaped error,
/// `{"errors": [{"message": …, "extensions": {"code": …}}]}`, so a client
/// reads every refusal of the server the same way. When the client should
/// come back later, the error carries `retryAfterMs` and the response a
/// `Retry-After` header (whole seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry: Option<RetryAfter>,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
            retry: None,
        }
    }

    /// `400 VALIDATION`.
    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Validation.as_str(),
            message,
        )
    }

    /// `401 UNAUTHENTICATED`.
    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated.as_str(),
            message,
        )
    }

    /// `403 FORBIDDEN`.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Refusal::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden.as_str(),
            message,
        )
    }

    /// `500 INTERNAL`: `cause` is logged with its whole chain under
    /// `context`; the client reads only `message`.
    pub(crate) fn internal<E: std::error::Error>(
        context: &str,
        cause: E,
        message: impl Into<String>,
    ) -> Self {
        tracing::error!(cause = %Chain(&cause), "{context}");
        Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL, message)
    }

    /// `429 RATE_LIMITED`, to try again after `retry`.
    pub(crate) fn rate_limited(retry: RetryAfter, message: &str) -> Self {
        Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited.as_str(),
            format!("{message}: try again in {} ms", retry.millis()),
        )
        .retry_after(retry)
    }

    /// `503 NOT_CAUGHT_UP`, to try again after `retry`: the one shape of
    /// "this node cannot answer yet" (start, `X-Min-Position`).
    pub(crate) fn not_caught_up(message: impl Into<String>, retry: RetryAfter) -> Self {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotCaughtUp.as_str(),
            message,
        )
        .retry_after(retry)
    }

    /// The same refusal, telling the client when to come back.
    pub(crate) fn retry_after(mut self, retry: RetryAfter) -> Self {
        self.retry = Some(retry);
        self
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut extensions = json!({ "code": self.code });
        if let Some(retry) = self.retry {
            extensions["retryAfterMs"] = json!(retry.millis());
        }
        let body = json!({ "errors": [{ "message": self.message, "extensions": extensions }] });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(retry) = self.retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry.seconds().into());
        }
        response
    }
}
