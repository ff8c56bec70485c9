//! Websockets: the `graphql-transport-ws` protocol (SPEC section 8), as in
//! graphql-ws's PROTOCOL.md, for both endpoints.
//!
//! - The token is checked at `connection_init` (from its payload's
//!   `Authorization`, `authorization` or `token`, else the upgrade request's
//!   `Authorization` header): a missing or bad one closes with 4403.
//! - 4400 for a malformed or unknown message, 4401 for a `subscribe` before
//!   the ack, 4408 when no `connection_init` arrives within
//!   `ws_init_timeout`, 4409 for a `subscribe` whose id is live, 4429 for a
//!   second `connection_init`. Every close reason fits a control frame.
//! - `next`/`complete` per operation; an `error` message for an operation
//!   refused before execution (the pre-scan, parsing, validation, the depth
//!   and complexity limits, the subscription cap). Queries and mutations have
//!   an execution deadline (`ws_operation_timeout`).
//! - When the token expires the socket closes with 4403 ("token expired"),
//!   on a timer, so idle subscriptions end too. A staff member who loses
//!   access is caught on the next event by the subscriptions themselves.
//! - At most `ws_max_subscriptions` live operations per socket (beyond: an
//!   `error` with `QUERY_TOO_COMPLEX` for that `subscribe`), and at most
//!   `ws_max_per_address` sockets per client address (beyond: the upgrade is
//!   refused with 429).
//!   A socket keeps its connection's place under `max_connections` while it
//!   is open, so the connection cap bounds websockets from all addresses too.
//! - On a graceful stop every socket closes with 1001.
//!
//! Layout: this file holds the upgrade and what an endpoint provides;
//! [`sockets`] the per-address count and the stop signal; [`connection`]
//! the protocol on one socket.

mod connection;
mod sockets;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_graphql::{Data, ObjectType, Schema, SubscriptionType};
use axum::extract::ws::WebSocketUpgrade;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use backchannel_domain::ErrorCode;
use serde_json::Value;
use tokio_stream::StreamMap;

use crate::config::Limits;
use crate::graphql::parsed::{ParsedQueries, PersistedQueries};
use crate::http::Refusal;
use crate::transport::ConnectionPlace;

use connection::Connection;
pub(crate) use connection::persisted_hash;
pub(crate) use sockets::Sockets;

/// The one subprotocol served.
pub(crate) const PROTOCOL: &str = "graphql-transport-ws";

/// The longest close reason: a control frame carries 125 bytes, two of them
/// the code.
pub(crate) const MAX_CLOSE_REASON: usize = 123;

/// The longest operation id accepted (ids are kept while the operation lives).
const MAX_ID_BYTES: usize = 128;

/// How long one frame may take to go out before the socket is dropped (a
/// client that stops reading cannot hold the socket's task forever).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Who a socket's `connection_init` authenticated: the data its operations
/// see (the endpoint's auth type) and when its token expires.
pub(crate) struct Session {
    pub data: Data,
    pub expires_at: SystemTime,
}

/// Checks an init payload's token: `Some` session, or `None` for 4403.
pub(crate) type Authenticate = Box<dyn FnOnce(&Value) -> Option<Session> + Send>;

/// What one socket needs besides the socket itself.
pub(crate) struct Endpoint<Q, M, S> {
    pub schema: Schema<Q, M, S>,
    /// For `minPosition` and mutations' positions (`crate::position`).
    pub desk: Arc<crate::desk::Desk>,
    pub parsed: Arc<ParsedQueries>,
    /// The persisted queries the schema's extension runs hashes from.
    pub persisted: PersistedQueries,
    pub limits: Limits,
    pub authenticate: Authenticate,
}

/// Answers a websocket upgrade on an endpoint: refuses it when the client
/// offers no `graphql-transport-ws` or its address has its share of
/// sockets, else serves the protocol on it, keeping the connection's
/// `connection_place` (if the transport gave one) while the socket is open.
pub(crate) fn upgrade<Q, M, S>(
    sockets: &Arc<Sockets>,
    remote: SocketAddr,
    connection_place: Option<ConnectionPlace>,
    upgrade: WebSocketUpgrade,
    endpoint: Endpoint<Q, M, S>,
) -> HttpResponse
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let upgrade = upgrade.protocols([PROTOCOL]);
    if upgrade.selected_protocol().is_none() {
        return Refusal::validation("websockets speak the graphql-transport-ws subprotocol: offer it in Sec-WebSocket-Protocol").into_response();
    }
    let Some(place) = sockets.admit(remote.ip()) else {
        let mut refused = Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited.as_str(),
            format!(
                "at most {} websockets per client address are open at once",
                sockets.limits.ws_max_per_address
            ),
        )
        .into_response();
        refused.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return refused;
    };
    let limits = sockets.limits;
    let stop = sockets.stop.clone();
    let Endpoint {
        schema,
        desk,
        parsed,
        persisted,
        limits: request_limits,
        authenticate,
    } = endpoint;
    let max_message = request_limits.max_body_bytes;
    upgrade
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| async move {
            let _place = place;
            let _connection_place = connection_place;
            Connection {
                socket,
                schema,
                desk,
                parsed,
                persisted,
                request_limits,
                limits,
                stop,
                operations: StreamMap::new(),
            }
            .run(authenticate)
            .await;
        })
        .into_response()
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::types::OperationType;

    use super::*;

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("short", MAX_CLOSE_REASON), "short");
        let long = "é".repeat(100);
        let cut = truncate(&long, MAX_CLOSE_REASON);
        assert!(cut.len() <= MAX_CLOSE_REASON);
        assert_eq!(cut, "é".repeat(61));
    }

    fn kind(query: &str, name: Option<&str>) -> bool {
        let Ok(document) = async_graphql::parser::parse_query(query) else {
            panic!("{query} does not parse");
        };
        crate::position::operation_type(&document, name) == Some(OperationType::Subscription)
    }

    #[test]
    fn the_operation_kind_is_read_from_the_document() {
        assert!(kind("subscription { notifications { id } }", None));
        assert!(!kind("{ me { id } }", None));
        let both = "query A { me { id } } subscription B { notifications { id } }";
        assert!(kind(both, Some("B")));
        assert!(!kind(both, Some("A")));
        assert!(!kind(both, None));
        assert!(!kind(both, Some("C")));
    }
}
