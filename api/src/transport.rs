//! The HTTP transport (SPEC sections 8 and 10): the accept loop under the
//! router, with the limits that keep a slow or half-sent request from holding
//! a connection or delaying a graceful stop.
//!
//! - A request head must arrive within `header_timeout`. hyper starts that
//!   timer whenever a connection waits for a head, on a new connection and
//!   between keep-alive requests alike, so it is also the keep-alive idle
//!   timeout.
//! - A request body must arrive whole within `body_timeout` of its head
//!   ([`DeadlineBody`]: one deadline for the whole body, not per frame, so a
//!   client trickling a byte at a time cannot stretch it).
//! - At most `max_connections` connections are served at once, websockets
//!   included: a connection upgraded to a websocket keeps its place
//!   ([`ConnectionPlace`]) until the socket closes. At the cap the
//!   loop stops accepting until one closes: new connections wait in the
//!   kernel's backlog rather than being refused, and the header timeout bounds
//!   how long a silent connection can hold a place.
//! - On stop, the listener closes, every connection finishes its in-flight
//!   request and closes, and whatever is still open after `grace` is dropped.
//!
//! Websockets have their own limits here too (`ws_*`), applied by
//! [`crate::websocket`].

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use clap::Args;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Transport limits (SPEC section 8: "header and body reads time out ...
/// connections, websocket connections per client, and subscriptions per
/// connection are capped").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportLimits {
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Time to send a request head; also how long an idle keep-alive
    /// connection stays open.
    pub header_timeout: Duration,
    /// Time to send a request body, from the end of its head.
    pub body_timeout: Duration,
    /// How long a graceful stop lets in-flight requests finish.
    pub grace: Duration,
    /// Time between a websocket's upgrade and its `connection_init` (4408).
    pub ws_init_timeout: Duration,
    /// Live subscriptions on one websocket.
    pub ws_max_subscriptions: usize,
    /// Open websockets from one client address; more are refused with 429.
    pub ws_max_per_address: usize,
    /// Execution deadline of a query or mutation sent over a websocket.
    pub ws_operation_timeout: Duration,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(10),
            ws_init_timeout: Duration::from_secs(10),
            ws_max_subscriptions: 100,
            ws_max_per_address: 50,
            ws_operation_timeout: Duration::from_secs(30),
        }
    }
}

/// The longest timeout the flags take (a day): timers far past it would only
/// overflow the clock's arithmetic.
const MAX_SECS: u64 = 24 * 3600;

/// The `serve` flags and environment variables of [`TransportLimits`].
#[derive(Debug, Args)]
pub(crate) struct TransportArgs {
    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "BACKCHANNEL_MAX_CONNECTIONS", default_value_t = TransportLimits::default().max_connections,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_SECS))]
    pub max_connections: usize,
    /// Seconds to send a request's headers (also the keep-alive idle timeout).
    #[arg(long, env = "BACKCHANNEL_HEADER_TIMEOUT_SECS", default_value_t = TransportLimits::default().header_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub header_timeout_secs: u64,
    /// Seconds to send a request's body.
    #[arg(long, env = "BACKCHANNEL_BODY_TIMEOUT_SECS", default_value_t = TransportLimits::default().body_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub body_timeout_secs: u64,
    /// Seconds a graceful stop lets in-flight requests finish.
    #[arg(long, env = "BACKCHANNEL_SHUTDOWN_GRACE_SECS", default_value_t = TransportLimits::default().grace.as_secs(),
          value_parser = clap::value_parser!(u64).range(0..=MAX_SECS))]
    pub shutdown_grace_secs: u64,
    /// Seconds a websocket has to send `connection_init`.
    #[arg(long, env = "BACKCHANNEL_WS_INIT_TIMEOUT_SECS", default_value_t = TransportLimits::default().ws_init_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub ws_init_timeout_secs: u64,
    /// Live subscriptions on one websocket.
    #[arg(long, env = "BACKCHANNEL_WS_MAX_SUBSCRIPTIONS", default_value_t = TransportLimits::default().ws_max_subscriptions)]
    pub ws_max_subscriptions: usize,
    /// Open websockets from one client address.
    #[arg(long, env = "BACKCHANNEL_WS_MAX_PER_ADDRESS", default_value_t = TransportLimits::default().ws_max_per_address)]
    pub ws_max_per_address: usize,
    /// Seconds a query or mutation over a websocket may run.
    #[arg(long, env = "BACKCHANNEL_WS_OPERATION_TIMEOUT_SECS", default_value_t = TransportLimits::default().ws_operation_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub ws_operation_timeout_secs: u64,
}

impl TransportArgs {
    pub(crate) fn limits(&self) -> TransportLimits {
        TransportLimits {
            max_connections: self.max_connections,
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            grace: Duration::from_secs(self.shutdown_grace_secs),
            ws_init_timeout: Duration::from_secs(self.ws_init_timeout_secs),
            ws_max_subscriptions: self.ws_max_subscriptions,
            ws_max_per_address: self.ws_max_per_address,
            ws_operation_timeout: Duration::from_secs(self.ws_operation_timeout_secs),
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true, then stops
/// gracefully: no new connections, in-flight requests get `limits.grace` to
/// finish, and the connections left after it are dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: TransportLimits,
    mut stop: watch::Receiver<bool>,
) {
    let places = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        // Forget the connections that have ended.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = accept(&listener, &places) => accepted,
        };
        let Some((stream, remote, place)) = accepted else {
            continue;
        };
        connections.spawn(connection(
            stream,
            remote,
            router.clone(),
            limits,
            stop.clone(),
            place,
        ));
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            grace_secs = limits.grace.as_secs_f64(),
            "closing the connections still open after the grace period"
        );
        connections.shutdown().await;
    }
}

/// The next connection, once there is a place for it.
async fn accept(
    listener: &TcpListener,
    places: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let place = places.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, remote)) => {
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(%err, "cannot set TCP_NODELAY");
            }
            Some((stream, remote, place))
        }
        Err(err) => {
            // Out of file descriptors and the like: wait a little rather
            // than spin on the error.
            tracing::warn!(%err, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// A connection's place under `max_connections`, in every request's
/// extensions: the place is given back when the connection and every copy
/// are gone, so a websocket handler that keeps one after the upgrade keeps
/// the socket counted (hyper's connection task ends at the upgrade).
#[derive(Clone)]
pub(crate) struct ConnectionPlace {
    _permit: Arc<OwnedSemaphorePermit>,
}

impl std::fmt::Debug for ConnectionPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionPlace")
    }
}

/// Serves one connection; on stop, lets its in-flight request finish.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: TransportLimits,
    mut stop: watch::Receiver<bool>,
    place: OwnedSemaphorePermit,
) {
    let place = ConnectionPlace {
        _permit: Arc::new(place),
    };
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(|body| DeadlineBody::new(body, limits.body_timeout));
        request.extensions_mut().insert(ConnectInfo(remote));
        request.extensions_mut().insert(place.clone());
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let stopping = tokio::select! {
        served = conn.as_mut() => Err(served),
        _ = stop.wait_for(|stop| *stop) => Ok(()),
    };
    let served = match stopping {
        Err(served) => served,
        Ok(()) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = served {
        tracing::debug!(%remote, %err, "connection ended with an error");
    }
}

/// A request body that must arrive whole before a deadline set when the head
/// was read; after it, reading fails with [`BodyTimedOut`].
pub(crate) struct DeadlineBody<B> {
    inner: B,
    deadline: Instant,
    /// Made on the first read, so a request without a body arms no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    pub(crate) fn new(inner: B, timeout: Duration) -> Self {
        DeadlineBody {
            inner,
            deadline: deadline_after(timeout),
            timer: None,
        }
    }
}

/// `timeout` from now, or a year from now if that overflows the clock.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

/// The body did not arrive in time.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub(crate) struct BodyTimedOut;

/// Whether `err`, or an error it wraps, is [`BodyTimedOut`].
pub(crate) fn is_body_timeout(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if err.is::<BodyTimedOut>() {
            return true;
        }
        next = err.source();
    }
    false
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
