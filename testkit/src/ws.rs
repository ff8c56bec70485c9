//! The one websocket client: `graphql-transport-ws` over a real socket.
//!
//! [`Ws`] is the raw socket, for the protocol's own tests (close codes and
//! reasons, the init, pings). A [`Subscription`] is one operation on its own
//! socket: it answers the server's pings, turns messages into [`Frame`]s, and
//! records the raw text of every frame the server sent, so tests can check
//! that something (a private message's body) never crossed the wire.
//!
//! Live frames are awaited by event, never by a window of time:
//! [`Subscription::until`] reads up to a marker, an event the test caused
//! after the ones it checks and that this subscription must see. A
//! subscription's frames follow commit order, so whatever an earlier event
//! sent it arrives before the marker; what came before the marker is all
//! that ever will.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// How long a test waits for a frame it expects (a bound for a broken
/// server, not a window a late frame could miss).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// What the server sent on a raw socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Message(Value),
    /// The close code and reason (1006 when the socket ended without a close frame).
    Closed(u16, String),
}

/// A raw `graphql-transport-ws` socket.
pub struct Ws {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every text frame the server sent on this socket, in order.
    pub transcript: Vec<String>,
}

impl Ws {
    pub async fn connect(addr: SocketAddr, path: &str) -> Ws {
        Ws::connect_with_headers(addr, path, &[]).await
    }

    /// Connects with these extra upgrade request headers.
    pub async fn connect_with_headers(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Ws {
        match Ws::try_connect_with_headers(addr, path, headers).await {
            Ok(ws) => ws,
            Err(status) => panic!("the upgrade was refused with {status}"),
        }
    }

    /// Connects, or the HTTP status of the refusal.
    pub async fn try_connect(addr: SocketAddr, path: &str) -> Result<Ws, u16> {
        Ws::try_connect_with_headers(addr, path, &[]).await
    }

    async fn try_connect_with_headers(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Ws, u16> {
        let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        match connect_async(request).await {
            Ok((socket, _)) => Ok(Ws {
                socket,
                transcript: Vec::new(),
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(err) => panic!("cannot connect: {err}"),
        }
    }

    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    /// Sends this text frame as it is (say, JSON that is not).
    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    /// The next message or the close, or the error of a frame the client
    /// cannot read (say a close reason over 123 bytes); panics after
    /// [`PATIENCE`].
    pub async fn read(&mut self) -> Result<Received, String> {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("the server sent nothing in time");
            match frame {
                None => return Ok(Received::Closed(1006, String::new())),
                Some(Err(err)) => return Err(err.to_string()),
                Some(Ok(Message::Text(text))) => {
                    self.transcript.push(text.to_string());
                    return Ok(Received::Message(serde_json::from_str(&text).unwrap()));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Ok(match frame {
                        Some(frame) => {
                            Received::Closed(u16::from(frame.code), frame.reason.to_string())
                        }
                        None => Received::Closed(1005, String::new()),
                    });
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// [`Ws::read`], panicking on an unreadable frame.
    pub async fn recv(&mut self) -> Received {
        match self.read().await {
            Ok(received) => received,
            Err(err) => panic!("unreadable frame: {err}"),
        }
    }

    pub async fn message(&mut self) -> Value {
        match self.recv().await {
            Received::Message(message) => message,
            closed => panic!("expected a message, got {closed:?}"),
        }
    }

    /// The close code and reason; panics on any message before it.
    pub async fn closed(&mut self) -> (u16, String) {
        match self.recv().await {
            Received::Closed(code, reason) => (code, reason),
            message => panic!("expected the socket to close, got {message:?}"),
        }
    }

    /// `connection_init` with the token, and its ack.
    pub async fn init(&mut self, token: &str) {
        self.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }))
            .await;
        let ack = self.message().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// A ping, and every message before its pong. The server starts each
    /// operation before it reads the next message, so after the pong every
    /// earlier subscription listens.
    pub async fn ping(&mut self) -> Vec<Value> {
        self.send(json!({ "type": "ping" })).await;
        let mut before = Vec::new();
        loop {
            let message = self.message().await;
            if message["type"] == "pong" {
                return before;
            }
            before.push(message);
        }
    }
}

const ID: &str = "1";

/// What the server sent for a subscription.
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

/// One subscription on its own socket.
pub struct Subscription {
    ws: Ws,
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
        let mut subscription = Subscription {
            ws: Ws::connect(addr, path).await,
            early: Vec::new(),
            ended: false,
            close_code: None,
            refused: None,
        };
        subscription
            .ws
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        let Some(ack) = subscription.message().await else {
            subscription.ended = true;
            subscription.refused = Some(subscription.close_code.unwrap_or(1005));
            return subscription;
        };
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        subscription.ws.subscribe(ID, query, variables).await;
        subscription.settle().await;
        subscription
    }

    /// Waits until the server has polled the subscription's stream at least
    /// once (so it listens to commits): async-graphql reads incoming messages
    /// before it polls streams, so after a first pong it polls the stream
    /// before it can see a second ping.
    async fn settle(&mut self) {
        for _ in 0..2 {
            self.ws.send(json!({ "type": "ping" })).await;
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

    /// The next protocol message (pings answered), or `None` when closed.
    async fn message(&mut self) -> Option<Value> {
        loop {
            match self.ws.read().await {
                Ok(Received::Message(message)) if message["type"] == "ping" => {
                    self.ws.send(json!({ "type": "pong" })).await;
                }
                Ok(Received::Message(message)) => return Some(message),
                Ok(Received::Closed(code, _)) => {
                    self.close_code = Some(code);
                    return None;
                }
                Err(_) => return None,
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

    /// The next frame if one comes within `wait` (for a frame that must come:
    /// `wait` bounds a broken server, it is no window to prove silence).
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

    /// Every frame before the first data frame `is_marker` accepts (given
    /// the frame's `data` object), the marker consumed. Panics when the
    /// subscription ends or fails before its marker, or when nothing comes
    /// within [`PATIENCE`].
    pub async fn until(&mut self, is_marker: impl Fn(&Value) -> bool) -> Vec<Frame> {
        let mut before = Vec::new();
        loop {
            match self.next().await {
                Frame::Data(data) if is_marker(&data) => return before,
                frame @ Frame::Data(_) => before.push(frame),
                end => panic!("the subscription ended before its marker: {end:?} after {before:?}"),
            }
        }
    }

    /// Asserts that the marker is the next data frame: nothing came before it.
    pub async fn quiet_until(&mut self, is_marker: impl Fn(&Value) -> bool) {
        let before = self.until(is_marker).await;
        assert!(before.is_empty(), "frames before the marker: {before:?}");
    }

    /// Everything the server sent on this socket, as one string.
    pub fn wire(&self) -> String {
        self.ws.transcript.join("\n")
    }
}
