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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_graphql::parser::types::OperationType;
use async_graphql::{Data, ObjectType, Response, Schema, ServerError, SubscriptionType};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use backchannel_domain::ErrorCode;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::time::Sleep;
use tokio_stream::StreamMap;

use crate::config::Limits;
use crate::graphql::codes::add_code;
use crate::graphql::parsed::{ParsedQueries, PersistedQueries};
use crate::graphql::prescan::check_request;
use crate::http::error_response;
use crate::transport::{ConnectionPlace, TransportLimits, deadline_after};
use async_graphql::extensions::apollo_persisted_queries::CacheStorage;

/// The one subprotocol served.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// The longest close reason: a control frame carries 125 bytes, two of them
/// the code.
pub const MAX_CLOSE_REASON: usize = 123;

/// The longest operation id accepted (ids are kept while the operation lives).
const MAX_ID_BYTES: usize = 128;

/// How long one frame may take to go out before the socket is dropped (a
/// client that stops reading cannot hold the socket's task forever).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The websockets of the server: their caps, the count per client address,
/// and the stop signal. Shared by every upgrade handler.
pub struct Sockets {
    limits: TransportLimits,
    /// Open sockets by client address; an address leaves the map when its
    /// last socket closes. Locked only to count, never across an await.
    open: Mutex<HashMap<IpAddr, usize>>,
    /// Notified whenever the last socket closes.
    all_closed: Notify,
    /// Turns true when the server stops.
    stop: watch::Receiver<bool>,
}

impl std::fmt::Debug for Sockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sockets")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A socket's place in the count of its address; gives it back when dropped.
struct Place {
    sockets: Arc<Sockets>,
    address: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.sockets.lock();
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
            }
        }
        if open.is_empty() {
            self.sockets.all_closed.notify_waiters();
        }
    }
}

impl Sockets {
    pub fn new(limits: TransportLimits, stop: watch::Receiver<bool>) -> Arc<Sockets> {
        Arc::new(Sockets {
            limits,
            open: Mutex::new(HashMap::new()),
            all_closed: Notify::new(),
            stop,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more socket from `address`, unless it has its share.
    fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Place> {
        let mut open = self.lock();
        let count = open.entry(address).or_insert(0);
        if *count >= self.limits.ws_max_per_address {
            return None;
        }
        *count += 1;
        Some(Place {
            sockets: self.clone(),
            address,
        })
    }

    /// Open sockets, all addresses together.
    pub fn open_count(&self) -> usize {
        self.lock().values().sum()
    }

    /// Waits until every socket has closed (after a stop, they close with 1001).
    pub async fn closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }
}

/// Who a socket's `connection_init` authenticated: the data its operations
/// see (the endpoint's auth type) and when its token expires.
pub struct Session {
    pub data: Data,
    pub expires_at: SystemTime,
}

/// Checks an init payload's token: `Some` session, or `None` for 4403.
pub type Authenticate = Box<dyn FnOnce(&Value) -> Option<Session> + Send>;

/// What one socket needs besides the socket itself.
pub struct Endpoint<Q, M, S> {
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
pub fn upgrade<Q, M, S>(
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
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::Validation.as_str(),
            "websockets speak the graphql-transport-ws subprotocol: offer it in Sec-WebSocket-Protocol",
        );
    }
    let Some(place) = sockets.admit(remote.ip()) else {
        let mut refused = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited.as_str(),
            &format!(
                "at most {} websockets per client address are open at once",
                sockets.limits.ws_max_per_address
            ),
        );
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

/// A message from the client.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {
        #[serde(default)]
        payload: Option<Value>,
    },
    Pong {},
    Subscribe {
        id: String,
        payload: Box<async_graphql::Request>,
    },
    Complete {
        id: String,
    },
}

/// What an operation's stream yields.
enum Out {
    /// A `next` message.
    Next(Response),
    /// An `error` message: the operation was refused before execution.
    Error(Vec<ServerError>),
    /// A `complete` message.
    Done,
}

/// Why the socket closes.
struct Close {
    code: u16,
    reason: String,
}

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Close {
        Close {
            code,
            reason: reason.into(),
        }
    }
}

/// One socket's state.
struct Connection<Q, M, S> {
    socket: WebSocket,
    schema: Schema<Q, M, S>,
    desk: Arc<crate::desk::Desk>,
    parsed: Arc<ParsedQueries>,
    persisted: PersistedQueries,
    /// What one request may ask (checked by the pre-scan).
    request_limits: Limits,
    limits: TransportLimits,
    stop: watch::Receiver<bool>,
    /// The live operations by id.
    operations: StreamMap<String, BoxStream<'static, Out>>,
}

/// The state of the handshake.
enum Handshake {
    Waiting(Authenticate),
    Acked(Arc<Data>),
    /// A `connection_init` was refused (the socket is closing).
    Refused,
}

enum Event {
    Stop,
    InitTimeout,
    Expired,
    Operation(String, Out),
    Message(Option<Result<Message, axum::Error>>),
}

impl<Q, M, S> Connection<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    async fn run(mut self, authenticate: Authenticate) {
        let mut handshake = Handshake::Waiting(authenticate);
        let init_timer = tokio::time::sleep(self.limits.ws_init_timeout);
        tokio::pin!(init_timer);
        // Armed at the ack.
        let mut expiry: Option<Pin<Box<Sleep>>> = None;
        let mut stop = self.stop.clone();
        let close = loop {
            let waiting = matches!(handshake, Handshake::Waiting(_));
            // Operations are polled before the next message is read, so a
            // subscription is listening once a later `ping` is answered.
            let event = tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => Event::Stop,
                () = &mut init_timer, if waiting => Event::InitTimeout,
                () = async { if let Some(timer) = expiry.as_mut() { timer.await } }, if expiry.is_some() => Event::Expired,
                Some((id, out)) = self.operations.next(), if !self.operations.is_empty() => Event::Operation(id, out),
                message = self.socket.recv() => Event::Message(message),
            };
            let step = match event {
                Event::Stop => Err(Close::new(1001, "the server is shutting down")),
                Event::InitTimeout => Err(Close::new(4408, "Connection initialisation timeout")),
                Event::Expired => Err(Close::new(4403, "token expired")),
                Event::Operation(id, out) => self.deliver(id, out).await,
                Event::Message(Some(Err(err))) if too_big(&err) => Err(Close::new(
                    1009,
                    format!(
                        "Message too big: the limit is {} bytes",
                        self.request_limits.max_body_bytes
                    ),
                )),
                Event::Message(None | Some(Err(_))) => return,
                Event::Message(Some(Ok(message))) => {
                    self.receive(message, &mut handshake, &mut expiry).await
                }
            };
            match step {
                Ok(true) => continue,
                // The client went away (or stopped reading).
                Ok(false) => return,
                Err(close) => break close,
            }
        };
        self.close(close).await;
    }

    /// Handles one message from the client. `Ok(false)`: the socket is gone.
    async fn receive(
        &mut self,
        message: Message,
        handshake: &mut Handshake,
        expiry: &mut Option<Pin<Box<Sleep>>>,
    ) -> Result<bool, Close> {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return Err(Close::new(4400, "Binary messages are not supported"));
            }
            Message::Close(_) => return Ok(false),
            // Websocket pings are answered by the socket itself.
            Message::Ping(_) | Message::Pong(_) => return Ok(true),
        };
        let message: ClientMessage = serde_json::from_str(text.as_str())
            .map_err(|err| Close::new(4400, format!("Invalid message received: {err}")))?;
        match message {
            ClientMessage::ConnectionInit { payload } => {
                let authenticate = match std::mem::replace(handshake, Handshake::Refused) {
                    Handshake::Waiting(authenticate) => authenticate,
                    Handshake::Acked(data) => {
                        *handshake = Handshake::Acked(data);
                        return Err(Close::new(4429, "Too many initialisation requests"));
                    }
                    Handshake::Refused => {
                        return Err(Close::new(4429, "Too many initialisation requests"));
                    }
                };
                let payload = payload.unwrap_or(Value::Null);
                let Some(session) = authenticate(&payload) else {
                    return Err(Close::new(4403, "Forbidden"));
                };
                reach_min_position(
                    self.desk.clone(),
                    self.request_limits.min_position_wait,
                    &payload,
                )
                .await?;
                let Ok(left) = session.expires_at.duration_since(SystemTime::now()) else {
                    return Err(Close::new(4403, "Forbidden"));
                };
                *expiry = Some(Box::pin(tokio::time::sleep_until(deadline_after(left))));
                *handshake = Handshake::Acked(Arc::new(session.data));
                Ok(self.send(json!({ "type": "connection_ack" })).await)
            }
            ClientMessage::Ping { payload } => {
                let pong = match payload {
                    Some(payload) => json!({ "type": "pong", "payload": payload }),
                    None => json!({ "type": "pong" }),
                };
                Ok(self.send(pong).await)
            }
            ClientMessage::Pong {} => Ok(true),
            ClientMessage::Subscribe { id, payload } => {
                let Handshake::Acked(data) = handshake else {
                    return Err(Close::new(4401, "Unauthorized"));
                };
                let data = data.clone();
                self.subscribe(id, *payload, data).await
            }
            ClientMessage::Complete { id } => {
                self.operations.remove(&id);
                Ok(true)
            }
        }
    }

    /// Starts an operation, or answers why not.
    async fn subscribe(
        &mut self,
        id: String,
        mut request: async_graphql::Request,
        data: Arc<Data>,
    ) -> Result<bool, Close> {
        if id.is_empty() || id.len() > MAX_ID_BYTES {
            return Err(Close::new(
                4400,
                format!("An operation id has 1 to {MAX_ID_BYTES} bytes"),
            ));
        }
        if self.operations.contains_key(&id) {
            return Err(Close::new(
                4409,
                format!("Subscriber for {id} already exists"),
            ));
        }
        if self.operations.len() >= self.limits.ws_max_subscriptions {
            let refusal = ServerError::new(
                format!(
                    "at most {} operations may be live on one websocket: complete one first",
                    self.limits.ws_max_subscriptions
                ),
                None,
            );
            return Ok(self.refuse(&id, refusal).await);
        }
        if let Err(refusal) = check_request(&request, &self.request_limits) {
            return Ok(self.refuse(&id, refusal).await);
        }
        crate::graphql::parsed::bound_persisted(&mut request);
        let kind = match self.parsed.document(&request.query) {
            Some(document) => {
                let kind =
                    crate::position::operation_type(&document, request.operation_name.as_deref());
                request.set_parsed_query(document);
                kind
            }
            // A persisted query's hash alone: its stored document says
            // (the schema's extension runs it, or answers
            // `PersistedQueryNotFound`).
            None if request.query.is_empty() => match persisted_hash(&request) {
                Some(hash) => self.persisted.0.get(hash).await.and_then(|d| {
                    crate::position::operation_type(&d, request.operation_name.as_deref())
                }),
                None => None,
            },
            // The schema answers the syntax error itself, at once.
            None => None,
        };
        let subscription = kind == Some(OperationType::Subscription);
        // A mutation's answer carries its log position (`crate::position`).
        let position = (kind == Some(OperationType::Mutation)).then(|| {
            let appended = crate::position::Appended::default();
            request.data.insert(appended.clone());
            (appended, self.desk.clone())
        });
        let responses = self.schema.execute_stream_with_session_data(request, data);
        let responses = if subscription {
            responses
        } else {
            with_deadline(responses, self.limits.ws_operation_timeout)
        };
        let mut first = true;
        let outs = responses
            .map(move |response| {
                let refused = first && refused_before_execution(&response);
                first = false;
                if refused {
                    Out::Error(response.errors)
                } else {
                    let mut response = response;
                    if let Some((appended, desk)) = &position {
                        crate::position::stamp(
                            &mut response,
                            crate::position::answer_position(appended, desk),
                        );
                    }
                    Out::Next(response)
                }
            })
            .chain(stream::once(async { Out::Done }))
            .boxed();
        self.operations.insert(id, outs);
        Ok(true)
    }

    /// Sends what an operation yielded. `Ok(false)`: the socket is gone.
    async fn deliver(&mut self, id: String, out: Out) -> Result<bool, Close> {
        let message = match out {
            Out::Next(mut response) => {
                response.errors.iter_mut().for_each(add_code);
                json!({ "id": id, "type": "next", "payload": response })
            }
            Out::Error(errors) => {
                self.operations.remove(&id);
                return Ok(self.send_error(&id, errors).await);
            }
            Out::Done => {
                self.operations.remove(&id);
                json!({ "id": id, "type": "complete" })
            }
        };
        Ok(self.send(message).await)
    }

    /// An `error` message for an operation that was not started.
    async fn refuse(&mut self, id: &str, mut refusal: ServerError) -> bool {
        let has_code = refusal
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if !has_code {
            refusal
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", ErrorCode::QueryTooComplex.as_str());
        }
        self.send_error(id, vec![refusal]).await
    }

    async fn send_error(&mut self, id: &str, mut errors: Vec<ServerError>) -> bool {
        errors.iter_mut().for_each(add_code);
        self.send(json!({ "id": id, "type": "error", "payload": errors }))
            .await
    }

    /// Sends one message; `false` if the socket is gone or would not take it
    /// in time.
    async fn send(&mut self, message: Value) -> bool {
        let sent = tokio::time::timeout(
            WRITE_TIMEOUT,
            self.socket.send(Message::text(message.to_string())),
        )
        .await;
        matches!(sent, Ok(Ok(())))
    }

    async fn close(mut self, close: Close) {
        tracing::debug!(code = close.code, reason = %close.reason, "closing a websocket");
        let frame = CloseFrame {
            code: close.code,
            reason: truncate(&close.reason, MAX_CLOSE_REASON).into(),
        };
        let _ = tokio::time::timeout(WRITE_TIMEOUT, self.socket.send(Message::Close(Some(frame))))
            .await;
    }
}

/// Whether a receive failed on a message (or frame) over the size limit; the
/// socket is still writable, so the client is told why (1009).
fn too_big(err: &axum::Error) -> bool {
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<tungstenite::Error>())
        .is_some_and(|err| matches!(err, tungstenite::Error::Capacity(_)))
}

/// The hash of a request's `extensions.persistedQuery`, if it names one.
pub(crate) fn persisted_hash(request: &async_graphql::Request) -> Option<String> {
    match request.extensions.get("persistedQuery")? {
        async_graphql::Value::Object(fields) => match fields.get("sha256Hash")? {
            async_graphql::Value::String(hash) => Some(hash.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Waits (bounded) until this node has applied the payload's
/// `minPosition`, if any (`crate::position`): 4400 for a bad value, 1013
/// ("try again later") naming `NOT_CAUGHT_UP` and the retry delay when
/// the node is still behind or has stopped following the log.
async fn reach_min_position(
    desk: Arc<crate::desk::Desk>,
    patience: Duration,
    payload: &Value,
) -> Result<(), Close> {
    if let Some(reason) = desk.halted() {
        return Err(Close::new(1013, format!("NOT_CAUGHT_UP: {reason}")));
    }
    let Some(position) = crate::position::payload_min_position(payload)
        .map_err(|problem| Close::new(4400, problem))?
    else {
        return Ok(());
    };
    desk.wait_applied_within(position, patience)
        .await
        .map_err(|why| {
            let retry = crate::position::RETRY_AFTER.as_millis();
            let detail = match why {
                crate::desk::NotApplied::Behind { applied, .. } => {
                    format!("applied {applied} of {position}")
                }
                crate::desk::NotApplied::Halted(reason) => reason,
            };
            Close::new(
                1013,
                format!("NOT_CAUGHT_UP retryAfterMs={retry}: {detail}"),
            )
        })
}

/// A query's or mutation's one response, or a `TIMEOUT` error once
/// `deadline` has passed (the execution is dropped then).
fn with_deadline(
    mut responses: BoxStream<'static, Response>,
    deadline: Duration,
) -> BoxStream<'static, Response> {
    stream::once(async move {
        match tokio::time::timeout(deadline, responses.next()).await {
            Ok(response) => response,
            Err(_) => Some(Response::from_errors(vec![crate::error::timed_out(
                deadline,
            )])),
        }
    })
    .filter_map(|response| async move { response })
    .boxed()
}

/// A request error as GraphQL over HTTP means it: no data, and errors that
/// belong to no field (parsing, validation, limits). Errors of fields,
/// the subscription's root field included, have a path.
fn refused_before_execution(response: &Response) -> bool {
    matches!(response.data, async_graphql::Value::Null)
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn truncate(text: &str, max: usize) -> String {
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
