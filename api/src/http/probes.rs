//! Health, readiness and metrics: plain-text answers for orchestrators and
//! Prometheus.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

pub(super) async fn healthz() -> &'static str {
    "alive\n"
}

/// Ready while the read models follow the log: not when their tail has
/// stopped (the reason), nor when they trail the log's head as far as this
/// node knows it (its own commits; on a shared log every doorbell or poll)
/// by more than `ready_max_lag` events (the lag).
pub(super) async fn readyz(State(app): State<AppState>) -> Response {
    let desk = &app.shared.desk;
    if let Some(reason) = desk.halted() {
        let body = format!("not serving: {reason}\n");
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    let lag = desk.lag();
    if lag <= app.ready_max_lag {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let body = format!(
            "catching up: applied {} of {} (lag {lag})\n",
            desk.applied_position(),
            desk.log().head()
        );
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// The metrics in Prometheus' text format (see [`crate::metrics`]).
pub(super) async fn metrics(State(app): State<AppState>) -> Response {
    if !app.serve_metrics {
        return StatusCode::NOT_FOUND.into_response();
    }
    let text = app
        .metrics
        .render(Some(&app.shared.desk), &app.sockets, &app.shared.limiters);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
