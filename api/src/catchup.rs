//! What the port answers while the server starts (SPEC sections 10 and 11).
//!
//! The listener is bound before the store is opened, so health checks reach
//! the process while a large log replays into the read models. Until the
//! application is ready the [`Gate`] answers by itself: `/healthz` 200,
//! `/readyz` 503 `catching up: applied X of Y`, the GraphQL endpoints 503
//! with a `NOT_CAUGHT_UP` error and a retry delay, anything else 503. Once
//! the application's router is installed, every request goes to it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::http::Refusal;

/// How long a client is asked to wait before retrying during catch-up.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How far the opening pass has got.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The position the read models have applied so far.
    pub applied: AtomicU64,
    /// The position the store's committed head record names (what the pass
    /// replays to, at least).
    pub head: AtomicU64,
}

/// The router in front of the application: answers by itself until the
/// application's router is installed.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    ready: OnceLock<Router>,
    pub progress: Progress,
}

impl Gate {
    /// Installs the application's router; from now on it answers everything.
    pub(crate) fn open(&self, router: Router) {
        let _ = self.ready.set(router);
    }

    /// The router the transport serves.
    pub(crate) fn router(self: &Arc<Self>) -> Router {
        let gate = self.clone();
        Router::new().fallback(move |request: Request<Body>| {
            let gate = gate.clone();
            async move { gate.answer(request).await }
        })
    }

    async fn answer(&self, request: Request<Body>) -> Response {
        if let Some(app) = self.ready.get() {
            return match app.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
        let applied = self.progress.applied.load(Ordering::Relaxed);
        let head = self.progress.head.load(Ordering::Relaxed).max(applied);
        match request.uri().path() {
            "/healthz" => (StatusCode::OK, "alive\n").into_response(),
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("catching up: applied {applied} of {head}\n"),
            )
                .into_response(),
            "/graphql" | "/customer/graphql" => not_caught_up(applied, head),
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, RETRY_AFTER.as_secs().to_string())],
                "catching up with the log; try again shortly\n",
            )
                .into_response(),
        }
    }
}

/// `503` with a GraphQL-shaped `NOT_CAUGHT_UP` error, its `retryAfterMs` and
/// the `Retry-After` header.
fn not_caught_up(applied: u64, head: u64) -> Response {
    let retry = crate::ratelimit::RetryAfter(RETRY_AFTER);
    let message = format!(
        "the server is starting and catching up with its log (applied {applied} of {head}): \
         try again in {} ms",
        retry.millis()
    );
    Refusal::not_caught_up(message, retry).into_response()
}
