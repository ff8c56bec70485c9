//! Read-your-writes across nodes (SPEC section 11).
//!
//! - Every mutation's answer carries a log position: `extensions.position`
//!   (and, over HTTP, the `X-Log-Position` header). It is the last position
//!   its fields appended (for a retried idempotency key: the first attempt's),
//!   or, when it appended nothing, the position this node's read models had
//!   applied when it answered — in every case a position at which the
//!   mutation's effect is visible.
//! - A client passes it back as `X-Min-Position: <n>` on any HTTP request, or
//!   `minPosition` in a websocket's `connection_init` payload. The node then
//!   waits, at most `Limits::min_position_wait` (2 s by default), until its
//!   read models have applied position *n*, and answers; past that it answers
//!   `503 NOT_CAUGHT_UP` with `retryAfterMs` and `Retry-After` (a websocket
//!   closes with 1013, "try again later"). A position beyond the log's head
//!   only costs that bounded wait.
//! - A value that is not a decimal position (digits only, 0 to 2^63 − 1, the
//!   range PostgreSQL's `bigint` positions have) is `400 VALIDATION`, before
//!   any waiting.
//! - A node whose projections stopped (the tail failed, e.g. a failover lost
//!   data it had applied) answers every GraphQL request `503` with the reason
//!   (code `NOT_CAUGHT_UP`: another node can serve it) and `/readyz` 503.
//!
//! Decision record: `docs/decisions/read-your-writes-positions.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_graphql::Context;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::desk::{Desk, Executed, NotApplied};
use crate::http::Refusal;

/// The request header naming the position a read must reflect.
pub(crate) const MIN_POSITION_HEADER: &str = "x-min-position";
/// The response header carrying a mutation's log position.
pub(crate) const LOG_POSITION_HEADER: &str = "x-log-position";
/// The `connection_init` payload field naming the position a websocket's
/// operations must reflect.
pub(crate) const MIN_POSITION_FIELD: &str = "minPosition";
/// The highest position accepted (PostgreSQL's `bigint`).
pub(crate) const MAX_POSITION: u64 = i64::MAX as u64;
/// How long a client is asked to wait before retrying a read that found this
/// node behind.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The highest position a request's mutations appended, shared with its
/// resolvers through the request data.
#[derive(Debug, Clone, Default)]
pub(crate) struct Appended(Arc<AtomicU64>);

impl Appended {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn note(&self, position: u64) {
        self.0.fetch_max(position, Ordering::Relaxed);
    }
}

/// Records what a mutation's command appended (or was answered from) in the
/// request's [`Appended`], if it has one.
pub(crate) fn note(ctx: &Context<'_>, executed: &Executed) {
    if let (Some(appended), Some(last)) = (ctx.data_opt::<Appended>(), executed.events.last()) {
        appended.note(last.envelope.position);
    }
}

/// The position a mutation's answer carries: what it appended, else what
/// this node had applied.
pub(crate) fn answer_position(appended: &Appended, desk: &Desk) -> u64 {
    match appended.get() {
        0 => desk.applied_position(),
        position => position,
    }
}

/// Sets `extensions.position` of a mutation's response.
pub(crate) fn stamp(response: &mut async_graphql::Response, position: u64) {
    response.extensions.insert(
        "position".to_owned(),
        async_graphql::Value::Number(position.into()),
    );
}

/// The type of the operation a request will run, if its document names one.
pub(crate) fn operation_type(
    document: &ExecutableDocument,
    name: Option<&str>,
) -> Option<OperationType> {
    let operation = match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()
        }
        (DocumentOperations::Multiple(_), None) => None,
    };
    operation.map(|op| op.node.ty)
}

/// Parses a position as `X-Min-Position` or `minPosition` give it.
pub(crate) fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "a minimum position is a log position: a decimal number from 0 to {MAX_POSITION}"
        ));
    }
    match text.parse::<u64>() {
        Ok(position) if position <= MAX_POSITION => Ok(position),
        _ => Err(format!(
            "a minimum position is at most {MAX_POSITION}, the log's largest position"
        )),
    }
}

/// The request's `X-Min-Position`, if any; `Err` is the `400` to answer.
#[allow(clippy::result_large_err)] // the refusal is the response itself
pub(crate) fn min_position(headers: &HeaderMap) -> Result<Option<u64>, Response> {
    let mut values = headers.get_all(MIN_POSITION_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(bad_request("send X-Min-Position once"));
    }
    let text = value
        .to_str()
        .map_err(|_| bad_request("X-Min-Position must be a decimal number"))?;
    parse(text)
        .map(Some)
        .map_err(|problem| bad_request(&format!("X-Min-Position: {problem}")))
}

/// A websocket's `minPosition` (a number or a decimal string), if any.
pub(crate) fn payload_min_position(payload: &serde_json::Value) -> Result<Option<u64>, String> {
    match payload.get(MIN_POSITION_FIELD) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(position) => parse(&position.to_string()).map(Some),
            None => Err(format!(
                "{MIN_POSITION_FIELD} must be a whole number from 0 to {MAX_POSITION}"
            )),
        },
        Some(serde_json::Value::String(text)) => parse(text).map(Some),
        Some(_) => Err(format!(
            "{MIN_POSITION_FIELD} must be a number or a decimal string"
        )),
    }
}

fn bad_request(message: &str) -> Response {
    Refusal::validation(message).into_response()
}

/// Waits (bounded) for `desk` to apply `position`, or answers why not: `503
/// NOT_CAUGHT_UP` with a retry delay.
pub(crate) async fn wait(desk: &Desk, position: u64, patience: Duration) -> Result<(), Response> {
    desk.wait_applied_within(position, patience)
        .await
        .map_err(|why| refusal(position, &why))
}

/// What a caller is told when this node's projections stopped; the reason
/// itself (storage or projection errors) goes to the server log and
/// `/readyz`, not to every caller.
const HALTED: &str = "this node stopped following the log and does not serve (the reason is in its log and /readyz); try another node";

/// The `503` for a request this node cannot answer at `position`.
pub(crate) fn refusal(position: u64, why: &NotApplied) -> Response {
    let message = match why {
        NotApplied::Behind { .. } => {
            format!("this node has not reached log position {position} yet")
        }
        NotApplied::Halted(_) => HALTED.to_owned(),
    };
    Refusal::not_caught_up(&message, crate::ratelimit::RetryAfter(RETRY_AFTER)).into_response()
}

/// The `503` every GraphQL request gets from a node whose projections stopped.
pub(crate) fn halted(desk: &Desk) -> Option<Response> {
    desk.halted().map(|_| {
        Refusal::not_caught_up(HALTED, crate::ratelimit::RetryAfter(RETRY_AFTER)).into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_as_plain_decimals_within_bigint() {
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse(" 42 "), Ok(42));
        assert_eq!(parse("9223372036854775807"), Ok(MAX_POSITION));
        for bad in [
            "",
            "-1",
            "+1",
            "1e3",
            "0x10",
            "abc",
            "1.5",
            "9223372036854775808",
            "99999999999999999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn websocket_positions_are_numbers_or_decimal_strings() {
        let at =
            |v: serde_json::Value| payload_min_position(&serde_json::json!({ "minPosition": v }));
        assert_eq!(at(serde_json::json!(7)), Ok(Some(7)));
        assert_eq!(at(serde_json::json!("7")), Ok(Some(7)));
        assert_eq!(payload_min_position(&serde_json::json!({})), Ok(None));
        assert!(at(serde_json::json!(-1)).is_err());
        assert!(at(serde_json::json!(1.5)).is_err());
        assert!(at(serde_json::json!(u64::MAX)).is_err());
        assert!(at(serde_json::json!([1])).is_err());
    }
}
