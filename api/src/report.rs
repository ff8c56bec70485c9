//! `GET /reports/enquiries?from=…&to=…&format=csv|json[&group=…]` (SPEC
//! section 8): the closed-enquiry chat history, private messages included and
//! marked, for those SPEC section 4 allows. The rows are written by
//! `projections::report::write_report`, the same code as `replay-tool report`,
//! so both produce the same bytes for the same log; the response is streamed
//! as the report is written, never buffered whole.
//!
//! Refusals (bad token, bad parameters, no permission) are decided before the
//! first byte and answered as GraphQL-shaped JSON errors with their code.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backchannel_domain::ErrorCode;
use backchannel_domain::ids::GroupId;
use backchannel_projections::report::{ReportError, ReportFormat, ReportRequest, write_report};
use backchannel_projections::time::parse_rfc3339;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::auth::bearer;
use crate::http::{AppState, error_response};

#[derive(Debug, Deserialize)]
pub struct ReportParams {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    group: Option<String>,
}

pub async fn enquiries(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<ReportParams>,
) -> Response {
    let refuse =
        |status, code: ErrorCode, message: &str| error_response(status, code.as_str(), message);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Ok(identity) = bearer(token).and_then(|t| app.shared.tokens.verify_staff(t)) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "a valid staff token is required",
        );
    };
    let active = app
        .shared
        .desk
        .models()
        .state()
        .staff
        .get(&identity.staff)
        .is_some_and(|s| s.active && s.company == identity.company);
    if !active {
        return refuse(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "not signed in, or the account is no longer active",
        );
    }
    let request = match parse(&params, identity) {
        Ok(request) => request,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, ErrorCode::Validation, &message),
    };
    let content_type = match request.format {
        ReportFormat::Csv => "text/csv; charset=utf-8",
        ReportFormat::Json => "application/json",
    };

    // The report is written on a blocking thread into a channel; the first
    // message says whether it started (or why it was refused).
    let (chunks_tx, chunks_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let (started_tx, started_rx) = oneshot::channel::<Result<(), ReportError>>();
    let log = app.shared.desk.log().clone();
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            chunks: chunks_tx,
            buffer: Vec::with_capacity(CHUNK),
            started: Some(started_tx),
        };
        let result = write_report(&log, &request, &mut out).and_then(|summary| {
            out.flush_all()?;
            Ok(summary)
        });
        match result {
            Ok(_) => {
                // An empty report still starts (and ends) the response.
                if let Some(started) = out.started.take() {
                    let _ = started.send(Ok(()));
                }
            }
            Err(err) => match out.started.take() {
                Some(started) => {
                    let _ = started.send(Err(err));
                }
                None => {
                    tracing::error!(%err, "the enquiry report failed while streaming");
                    let _ = out
                        .chunks
                        .blocking_send(Err(std::io::Error::other("the report failed")));
                }
            },
        }
    });
    match started_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return refusal(err),
        Err(_) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "the report could not be written",
            );
        }
    }
    let stream = tokio_stream::wrappers::ReceiverStream::new(chunks_rx);
    let mut response = Body::from_stream(stream).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn parse(
    params: &ReportParams,
    identity: crate::auth::StaffIdentity,
) -> Result<ReportRequest, String> {
    let time = |name: &str, value: &Option<String>| {
        let value = value
            .as_deref()
            .ok_or_else(|| format!("`{name}` is required (RFC 3339, UTC)"))?;
        parse_rfc3339(value).map_err(|err| format!("`{name}`: {err}"))
    };
    let format = match params.format.as_deref().unwrap_or("csv") {
        "csv" => ReportFormat::Csv,
        "json" => ReportFormat::Json,
        other => return Err(format!("`format` must be csv or json, not {other:?}")),
    };
    let group = params
        .group
        .as_deref()
        .map(|g| {
            g.parse::<GroupId>()
                .map_err(|err| format!("`group`: {err}"))
        })
        .transpose()?;
    Ok(ReportRequest {
        from: time("from", &params.from)?,
        to: time("to", &params.to)?,
        group,
        company: Some(identity.company),
        viewer: Some(identity.staff),
        format,
    })
}

fn refusal(err: ReportError) -> Response {
    let (status, code) = match &err {
        ReportError::EmptyRange => (StatusCode::BAD_REQUEST, ErrorCode::Validation),
        ReportError::UnknownViewer(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated),
        ReportError::UnknownGroup(_) | ReportError::UnknownCompany(_) => {
            (StatusCode::NOT_FOUND, ErrorCode::NotFound)
        }
        ReportError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
        ReportError::Source(_) | ReportError::Output(_) => {
            tracing::error!(%err, "the enquiry report failed");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "the report could not be written",
            );
        }
    };
    error_response(status, code.as_str(), &err.to_string())
}

const CHUNK: usize = 64 * 1024;

/// Hands the report's bytes to the response body in chunks of `CHUNK`.
struct ChannelWriter {
    chunks: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
    /// Told once the first bytes are ready: the report was not refused.
    started: Option<oneshot::Sender<Result<(), ReportError>>>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if let Some(started) = self.started.take() {
            let _ = started.send(Ok(()));
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.chunks
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::other("the client went away"))
    }

    fn flush_all(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
