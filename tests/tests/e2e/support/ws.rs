//! A `graphql-transport-ws` client: one websocket, one subscription.
//!
//! It records the raw text of every frame the server sent, so tests can check
//! that something (a private message's body) never crossed the wire.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// How long a test waits for a frame it expects.
pub const PATIENCE: Duration = Duration::from_secs(10);

const ID: &str = "1";

/// What the server sent for the subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A `next` with data and no errors: the `data` object.
    Data(Value),
    /// A `next` with errors, or an `error` message: the errors array.
    Errors(Value),
    /// `complete`, or the socket closed.
    Complete,
    /// The socket closed with this code before the subscription started: a
    /// refused `connection_init` (4403 for a missing or bad token).
    Closed(u16),
}

impl Frame {
    /// The first error's code, if this frame is errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            Frame::Errors(errors) => errors[0]["extensions"]["code"].as_str(),
            _ => None,
        }
    }
}

pub struct Subscription {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every text frame the server sent on this socket, in order.
    pub transcript: Vec<String>,
    /// Messages that arrived while waiting for a pong.
    early: Vec<Value>,
    ended: bool,
    /// The close code, when the server closed the socket.
    close_code: Option<u16>,
    /// Closed before the ack: the init was refused with this code.
    refused: Option<u16>,
}

impl Subscription {
    /// Connects, initialises with the token, subscribes, and waits until the
    /// server has started the subscription's stream (see [`Self::settle`]).
    pub async fn open(
        addr: SocketAddr,
        path: &str,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Subscription {
        let payload = match token {
            Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
            None => json!({}),
        };
        Subscription::open_with(addr, path, payload, query, variables).await
    }

    /// [`Subscription::open`] with this `connection_init` payload.
    pub async fn open_with(
        addr: SocketAddr,
        path: &str,
        payload: Value,
        query: &str,
        variables: Value,
    ) -> Subscription {
        let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (socket, _) = connect_async(request).await.unwrap();
        let mut subscription = Subscription {
            socket,
            transcript: Vec::new(),
            early: Vec::new(),
            ended: false,
            close_code: None,
            refused: None,
        };
        subscription
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        let Some(ack) = subscription.message().await else {
            subscription.ended = true;
            subscription.refused = Some(subscription.close_code.unwrap_or(1005));
            return subscription;
        };
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        subscription
            .send(json!({
                "id": ID,
                "type": "subscribe",
                "payload": { "query": query, "variables": variables },
            }))
            .await;
        subscription.settle().await;
        subscription
    }

    /// Waits until the server has polled the subscription's stream at least
    /// once (so it listens to commits): async-graphql reads incoming messages
    /// before it polls streams, so after a first pong it polls the stream
    /// before it can see a second ping.
    async fn settle(&mut self) {
        for _ in 0..2 {
            self.send(json!({ "type": "ping" })).await;
            loop {
                match self.message().await {
                    Some(m) if m["type"] == "pong" => break,
                    Some(m) => self.early.push(m),
                    None => {
                        self.ended = true;
                        return;
                    }
                }
            }
        }
    }

    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// The next protocol message (pings answered), or `None` when closed.
    async fn message(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("the server sent nothing in time")?;
            match frame.ok()? {
                Message::Text(text) => {
                    self.transcript.push(text.to_string());
                    let message: Value = serde_json::from_str(&text).unwrap();
                    if message["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return Some(message);
                }
                Message::Close(frame) => {
                    self.close_code = frame.map(|f| u16::from(f.code));
                    return None;
                }
                _ => continue,
            }
        }
    }

    /// The next frame of the subscription; panics after [`PATIENCE`].
    pub async fn next(&mut self) -> Frame {
        if let Some(code) = self.refused {
            return Frame::Closed(code);
        }
        if !self.early.is_empty() {
            let message = self.early.remove(0);
            return self.frame(message);
        }
        if self.ended {
            return Frame::Complete;
        }
        match self.message().await {
            Some(message) => self.frame(message),
            None => {
                self.ended = true;
                Frame::Complete
            }
        }
    }

    fn frame(&mut self, message: Value) -> Frame {
        match message["type"].as_str() {
            Some("next") if message["payload"]["errors"].is_array() => {
                Frame::Errors(message["payload"]["errors"].clone())
            }
            Some("next") => Frame::Data(message["payload"]["data"].clone()),
            Some("error") => Frame::Errors(message["payload"].clone()),
            Some("complete") => {
                self.ended = true;
                Frame::Complete
            }
            _ => panic!("unexpected message {message}"),
        }
    }

    /// A frame the server already sent while the subscription was opened
    /// (a refusal, an end, or data), without waiting for another.
    pub async fn received(&mut self) -> Option<Frame> {
        if !self.early.is_empty() || self.ended || self.refused.is_some() {
            return Some(self.next().await);
        }
        None
    }

    /// The next frame if one comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Frame> {
        if !self.early.is_empty() || self.ended || self.refused.is_some() {
            return Some(self.next().await);
        }
        tokio::time::timeout(wait, self.next()).await.ok()
    }

    /// The next data frame's field, skipping nothing: panics on anything else.
    pub async fn next_data(&mut self, field: &str) -> Value {
        match self.next().await {
            Frame::Data(data) => data[field].clone(),
            other => panic!("expected data of {field}, got {other:?}"),
        }
    }

    /// Everything the server sent on this socket, as one string.
    pub fn wire(&self) -> String {
        self.transcript.join("\n")
    }
}
