//! `GET /reports/enquiries?from=…&to=…&format=csv|json[&group=…]` (SPEC
//! section 8): the closed-enquiry chat history, private messages included and
//! marked, for those SPEC section 4 allows. The rows are written by
//! `projections::report::write_report`, the same code as `replay-tool report`,
//! so both produce the same bytes for the same log; the response is streamed
//! as the report is written, never buffered whole.
//!
//! A report opens the content of every conversation it holds: each is recorded
//! by the read audit (`read_audit`) once the report is written.
//!
//! Refusals (bad token, bad parameters, no permission) are decided before the
//! first byte and answered as GraphQL-shaped JSON errors with their code.

use std::io::{BufWriter, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backchannel_domain::ErrorCode;
use backchannel_domain::events::ContentPath;
use backchannel_domain::ids::GroupId;
use backchannel_projections::report::{
    Included, ReportError, ReportFormat, ReportRequest, write_report_opening,
};
use backchannel_projections::time::parse_rfc3339;
use futures_util::{StreamExt, future, stream};
use serde::Deserialize;
use tokio_util::io::{ReaderStream, SyncIoBridge};

use crate::auth::bearer;
use crate::http::{AppState, Refusal};
use crate::read_audit::Open;

#[derive(Debug, Deserialize)]
pub(crate) struct ReportParams {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    group: Option<String>,
}

pub(crate) async fn enquiries(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<ReportParams>,
) -> Result<Response, Refusal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Ok(identity) = bearer(token).and_then(|t| app.shared.tokens.verify_staff(t)) else {
        return Err(Refusal::unauthenticated("a valid staff token is required"));
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
        return Err(Refusal::unauthenticated(
            "not signed in, or the account is no longer active",
        ));
    }
    let request = parse(&params, identity).map_err(Refusal::validation)?;
    let content_type = match request.format {
        ReportFormat::Csv => "text/csv; charset=utf-8",
        ReportFormat::Json => "application/json",
    };

    // The report is written on a blocking thread through `SyncIoBridge` into
    // a pipe the body streams from. A refusal writes nothing, so the pipe
    // closes empty and the task's error becomes the answer.
    let (reader, writer) = tokio::io::duplex(CHUNK);
    let log = app.shared.desk.log().clone();
    let desk = app.shared.desk.clone();
    let mut task = tokio::task::spawn_blocking(move || {
        let mut out = BufWriter::with_capacity(CHUNK, SyncIoBridge::new(writer));
        // Each conversation the report held was opened: the read audit
        // records it (without waiting).
        let mut record = |i: Included| {
            desk.record_open(Open {
                company: i.company,
                conversation: i.conversation,
                staff: i.viewer,
                rule: i.rule,
                path: ContentPath::Report,
            });
        };
        let written = write_report_opening(&log, &request, &mut out, &mut record);
        match written.and_then(|_| Ok(out.flush()?)) {
            Ok(()) => Ok(()),
            Err(err) => {
                // Bytes not yet sent stay unsent: a failure before the first
                // chunk is still a clean refusal.
                drop(out.into_parts());
                Err(err)
            }
        }
    });
    let mut chunks = ReaderStream::with_capacity(reader, CHUNK);
    let first = match chunks.next().await {
        Some(chunk) => chunk,
        None => match (&mut task).await {
            // An empty report still starts (and ends) the response.
            Ok(Ok(())) => Ok(Bytes::new()),
            Ok(Err(err)) => return Err(refusal(err)),
            Err(err) => {
                return Err(Refusal::internal(
                    "the enquiry report failed",
                    err,
                    "the report could not be written",
                ));
            }
        },
    };
    // After the first bytes, a failure ends the body with an error, so the
    // client sees a broken response rather than a short one.
    let outcome = stream::once(async move {
        match task.await {
            Ok(Ok(())) => None,
            Ok(Err(err)) => {
                tracing::error!(cause = %crate::error::Chain(&err), "the enquiry report failed while streaming");
                Some(Err(std::io::Error::other("the report failed")))
            }
            Err(_) => Some(Err(std::io::Error::other("the report failed"))),
        }
    })
    .filter_map(future::ready);
    let body = stream::once(future::ready(first))
        .chain(chunks)
        .chain(outcome);
    let mut response = Body::from_stream(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
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

fn refusal(err: ReportError) -> Refusal {
    let (status, code) = match &err {
        ReportError::EmptyRange => (StatusCode::BAD_REQUEST, ErrorCode::Validation),
        ReportError::UnknownViewer(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated),
        ReportError::UnknownGroup(_) | ReportError::UnknownCompany(_) => {
            (StatusCode::NOT_FOUND, ErrorCode::NotFound)
        }
        ReportError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
        ReportError::Source(_) | ReportError::Output(_) | ReportError::Time(_) => {
            return Refusal::internal(
                "the enquiry report failed",
                err,
                "the report could not be written",
            );
        }
    };
    Refusal::new(status, code.as_str(), err.to_string())
}

/// The pipe's and the writer's buffer: the size of the body's chunks.
const CHUNK: usize = 64 * 1024;
