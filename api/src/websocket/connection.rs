//! The `graphql-transport-ws` protocol on one socket: the handshake, the
//! operations it runs, their deadlines and the closes.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_graphql::parser::types::OperationType;
use async_graphql::{Data, ObjectType, Response, Schema, ServerError, SubscriptionType};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use backchannel_domain::ErrorCode;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_stream::StreamMap;

use crate::config::Limits;
use crate::graphql::codes::add_code;
use crate::graphql::parsed::{ParsedQueries, PersistedQueries};
use crate::graphql::prescan::check_request;
use crate::transport::{TransportLimits, deadline_after};
use async_graphql::extensions::apollo_persisted_queries::CacheStorage;

use super::{Authenticate, MAX_CLOSE_REASON, MAX_ID_BYTES, WRITE_TIMEOUT, truncate};

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
pub(super) enum Out {
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
pub(super) struct Connection<Q, M, S> {
    pub(super) socket: WebSocket,
    pub(super) schema: Schema<Q, M, S>,
    pub(super) desk: Arc<crate::desk::Desk>,
    pub(super) parsed: Arc<ParsedQueries>,
    pub(super) persisted: PersistedQueries,
    /// What one request may ask (checked by the pre-scan).
    pub(super) request_limits: Limits,
    pub(super) limits: TransportLimits,
    pub(super) stop: watch::Receiver<bool>,
    /// The live operations by id.
    pub(super) operations: StreamMap<String, BoxStream<'static, Out>>,
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
    pub(super) async fn run(mut self, authenticate: Authenticate) {
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
