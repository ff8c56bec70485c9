//! `GET /log?from=P&limit=N[&to=Q]`: the stored log, paged by global position,
//! for `replay-tool --server` (SPEC section 9).
//!
//! The body is the records from `P` up to `min(P + N − 1, upto)` exactly as
//! the store holds them, each preceded by its length (u32 big-endian): the
//! record framing of the portable export file (`eventlog::portable`), so the
//! client checks the hash chain exactly as for an exported file. `upto` is
//! the last position this caller may read now (capped by `to`, which the
//! client sets to the first page's `upto` so every page belongs to one
//! snapshot); the headers say it and the hash of its record:
//!
//! - `x-backchannel-upto`: that position (0: an empty log);
//! - `x-backchannel-upto-hash`: blake3 of its stored record, hex (the
//!   export header's head hash);
//! - `x-backchannel-upto-mac`: the server's MAC of that head (see
//!   `eventlog`'s `mac.rs`: blake3 keyed with a key derived from the server's
//!   secret), hex; the replay tool puts it in the export's header, so
//!   `replay-tool verify --key` can tell the server wrote that head;
//! - `x-backchannel-codec`: the records' codec version.
//!
//! `GET /log/head` answers the same caller the head alone, as JSON
//! (`{"position": N, "hash": "<hex>", "mac": "<hex>"}`), for an operator to
//! publish elsewhere: `replay-tool verify --expect-head N:<hash>` later checks
//! that a log (an export, a restored store) still holds it.
//!
//! # Who may read it
//!
//! The log is one hash chain across every company, so a page cannot be
//! narrowed to one company without breaking the chain (and `verify`). It is
//! served whole, and so only to:
//!
//! - a **server operator** token (`backchannel token --operator`, minted with
//!   the server's secret: whoever runs the server can read its store anyway);
//! - an active **owner or admin** (role read from the current state) while
//!   their company is the only company on the server: every record up to
//!   `upto` is then their company's. `upto` is the read models' position read
//!   under the same lock as that check, so a company created meanwhile is never
//!   in the page; once a second company exists, owners and admins get
//!   `FORBIDDEN` and need the operator.
//!
//! Anyone else is `FORBIDDEN`; a missing, bad or expired token, or a
//! deactivated account, `UNAUTHENTICATED`. Errors are GraphQL-shaped JSON.
//! The staff side of this rule is `domain::permissions::may_read_log` (after
//! `signed_in_staff`); only the operator token is checked here.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use backchannel_domain::DomainError;
use backchannel_domain::permissions;
use backchannel_eventlog::codec;
use serde::Deserialize;

use crate::auth::bearer;
use crate::http::{AppState, Refusal};

/// The most records one page holds.
pub(crate) const MAX_PAGE: u64 = 10_000;

#[derive(Debug, Deserialize)]
pub(crate) struct LogParams {
    from: Option<u64>,
    limit: Option<u64>,
    to: Option<u64>,
}

/// The last position the caller may read, or the refusal.
fn readable_upto(app: &AppState, headers: &HeaderMap) -> Result<u64, Refusal> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Ok(token) = bearer(header) else {
        return Err(Refusal::unauthenticated(
            "an operator token, or an owner's or admin's token, is required",
        ));
    };
    let tokens = &app.shared.tokens;
    if tokens.verify_operator(token).is_ok() {
        return Ok(app.shared.desk.log().head());
    }
    let Ok(identity) = tokens.verify_staff(token) else {
        return Err(Refusal::unauthenticated(
            "the token is invalid or has expired",
        ));
    };
    let models = app.shared.desk.models();
    let state = models.state();
    let Some(me) = permissions::signed_in_staff(state, identity.staff, identity.company) else {
        return Err(Refusal::unauthenticated(
            "not signed in, or the account is no longer active",
        ));
    };
    if let Err(refused) = permissions::may_read_log(state, me) {
        let reason = match refused {
            DomainError::Forbidden(reason) => reason.to_owned(),
            other => other.to_string(),
        };
        return Err(Refusal::forbidden(reason));
    }
    Ok(models.position())
}

pub(crate) async fn page(
    State(app): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<LogParams>, QueryRejection>,
) -> Result<Response, Refusal> {
    let upto = readable_upto(&app, &headers)?;
    let Ok(Query(params)) = params else {
        return Err(Refusal::validation(
            "`from`, `limit` and `to` are positions (whole numbers)",
        ));
    };
    let from = params.from.unwrap_or(1);
    let limit = params.limit.unwrap_or(MAX_PAGE);
    if from == 0 {
        return Err(Refusal::validation("`from` starts at 1"));
    }
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Refusal::validation(format!(
            "`limit` must be in 1..={MAX_PAGE}"
        )));
    }
    let upto = match params.to {
        Some(to) if to > upto => {
            return Err(Refusal::validation(format!(
                "`to` {to} is past the last position you may read ({upto})"
            )));
        }
        Some(to) => to,
        None => upto,
    };
    let last = upto.min(from.saturating_add(limit - 1));
    let log = app.shared.desk.log().clone();
    let read = tokio::task::spawn_blocking(move || {
        let signed = signed_head(&log, upto)?;
        let upto_hash = signed.hash;
        let mut body = Vec::new();
        if from <= last {
            for record in log.raw_records(from, last) {
                let (_, bytes) = record?;
                let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                body.extend_from_slice(&len.to_be_bytes());
                body.extend_from_slice(&bytes);
            }
        }
        Ok::<_, backchannel_eventlog::Error>((upto_hash, signed.mac, body))
    })
    .await;
    let (upto_hash, upto_mac, body) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(err)) => return Err(unreadable("GET /log", err)),
        Err(err) => return Err(unreadable("GET /log", err)),
    };
    let hex = backchannel_eventlog::hex(&upto_hash);
    let mut response = Body::from(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.backchannel.log-page"),
    );
    headers.insert("x-backchannel-upto", HeaderValue::from(upto));
    if let Ok(value) = HeaderValue::from_str(&hex) {
        headers.insert("x-backchannel-upto-hash", value);
    }
    if let Some(mac) = upto_mac
        && let Ok(value) = HeaderValue::from_str(&backchannel_eventlog::hex(&mac))
    {
        headers.insert("x-backchannel-upto-mac", value);
    }
    headers.insert(
        "x-backchannel-codec",
        HeaderValue::from(u16::from(codec::CODEC_VERSION)),
    );
    Ok(response)
}

/// The answer when the log cannot be read (or its reading task failed): the
/// cause is logged, the caller learns only that it failed.
fn unreadable<E: std::error::Error>(route: &'static str, err: E) -> Refusal {
    Refusal::internal(
        &format!("reading the log failed ({route})"),
        err,
        "the log could not be read",
    )
}

/// The head at `upto` with the log's MAC of it (`None` while the log has no
/// key, which a server's always has).
struct Signed {
    hash: backchannel_eventlog::Hash,
    mac: Option<backchannel_eventlog::Hash>,
}

fn signed_head(
    log: &backchannel_eventlog::Log,
    upto: u64,
) -> Result<Signed, backchannel_eventlog::Error> {
    match log.head_key() {
        Some(key) => log.signed_head_at(key, upto).map(|signed| Signed {
            hash: signed.hash,
            mac: Some(signed.mac),
        }),
        None => Ok(Signed {
            hash: log.record_hash(upto)?,
            mac: None,
        }),
    }
}

/// `GET /log/head`: the last position the caller may read, the hash of its
/// record and the server's MAC of both, as JSON; same callers as `GET /log`.
pub(crate) async fn head(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let upto = readable_upto(&app, &headers)?;
    let log = app.shared.desk.log().clone();
    let read = tokio::task::spawn_blocking(move || signed_head(&log, upto)).await;
    let signed = match read {
        Ok(Ok(signed)) => signed,
        Ok(Err(err)) => return Err(unreadable("GET /log/head", err)),
        Err(err) => return Err(unreadable("GET /log/head", err)),
    };
    Ok(axum::Json(serde_json::json!({
        "position": upto,
        "hash": backchannel_eventlog::hex(&signed.hash),
        "mac": signed.mac.map(|mac| backchannel_eventlog::hex(&mac)),
        "macAlgorithm": format!(
            "blake3 keyed_hash(derive_key({:?}, secret), position u64 BE || hash)",
            backchannel_eventlog::HEAD_MAC_CONTEXT
        ),
    }))
    .into_response())
}
