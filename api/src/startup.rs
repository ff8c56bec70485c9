//! Building and running the server. [`Application::start`] binds the
//! listener (port 0 in tests) and serves at once, through the
//! [`crate::catchup::Gate`], which answers health, readiness ("catching up")
//! and `NOT_CAUGHT_UP` while [`Starting::catch_up`] opens the store, builds
//! the read models and starts the projector; then the gate hands every request
//! to the application. [`Application::build`] does both (tests use it).
//! `run_until_stopped` serves until SIGTERM, ctrl-c or a [`Shutdown`] handle,
//! then stops gracefully (see [`crate::transport`]): in-flight requests get a
//! grace period, websockets close with 1001, what is left is dropped, and the
//! log is always closed (flush + fsync, checkpoint).

use std::net::SocketAddr;
use std::sync::Arc;

use std::sync::atomic::Ordering;

use backchannel_eventlog::Log;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Tokens;
use crate::catchup::Gate;
use crate::config::Config;
use crate::context::Shared;
use crate::demo::{DemoError, DemoTokens};
use crate::desk::Desk;
use crate::http::{AppState, router};
use crate::metrics::Metrics;
use crate::ratelimit::Limiters;
use crate::secret::{SecretError, load_or_create};
use crate::transport::TransportLimits;
use crate::websocket::Sockets;
use crate::{customer, staff};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("cannot open the event store: {0}")]
    Open(#[from] backchannel_eventlog::OpenError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the projections could not catch up with the log")]
    CatchUp,
    #[error("cannot load the demo company: {0}")]
    Demo(#[from] DemoError),
    #[error("cannot set up the metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Asks a running application to stop gracefully.
#[derive(Clone, Debug)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Shutdown {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

pub struct Application {
    addr: SocketAddr,
    desk: Arc<Desk>,
    tokens: Tokens,
    /// The transport's accept loop, serving since [`Application::start`].
    served: JoinHandle<()>,
    transport: TransportLimits,
    sockets: Arc<Sockets>,
    shutdown: Shutdown,
    demo: Option<DemoTokens>,
}

/// A server that listens and answers health checks while it catches up
/// with its log (see [`Starting::catch_up`]).
pub struct Starting {
    config: Config,
    addr: SocketAddr,
    tokens: Tokens,
    secret: Vec<u8>,
    gate: Arc<Gate>,
    served: JoinHandle<()>,
    sockets: Arc<Sockets>,
    shutdown: Shutdown,
}

/// Opens the store under the data dir and waits for the projections to
/// catch up (used by `init` and `token`).
pub(crate) async fn open_desk(config: &Config) -> Result<(Arc<Desk>, Tokens), StartError> {
    let secret = load_or_create(&config.data_dir, config.secret.as_deref())?;
    let tokens = Tokens::new(&secret, config.token_lifetime);
    // Opening is blocking (a network engine runs it on a runtime of its own).
    let (store, checkpoints) = (config.store(), config.checkpoint_dir());
    let keys = crate::secret::log_keys(&secret);
    let desk = tokio::task::spawn_blocking(move || Desk::open(&store, &checkpoints, &keys))
        .await
        .map_err(|_| StartError::CatchUp)??;
    desk.caught_up().await.map_err(|_| StartError::CatchUp)?;
    desk.start_read_audit(&config.read_audit);
    Ok((desk, tokens))
}

/// What the handlers share, around a desk that has caught up.
pub(crate) fn app_state(
    config: &Config,
    desk: Arc<Desk>,
    tokens: Tokens,
    sockets: Arc<Sockets>,
) -> Result<AppState, StartError> {
    let metrics = Metrics::new(desk.commit_latency())?;
    if let Some(dropped) = desk.read_audit().dropped_metric() {
        metrics.register(Box::new(dropped));
    }
    let shared = Shared {
        desk,
        tokens,
        limits: config.limits,
        limiters: Arc::new(Limiters::new(&config.rate_limits)),
        persisted: crate::graphql::parsed::PersistedStores::new(),
    };
    Ok(AppState {
        staff: staff::schema(shared.clone(), config.introspection),
        customer: customer::schema(shared.clone(), config.introspection),
        staff_ws: staff::websocket_schema(shared.clone(), config.introspection),
        customer_ws: customer::websocket_schema(shared.clone(), config.introspection),
        shared,
        parsed: Default::default(),
        sockets,
        metrics: Arc::new(metrics),
        serve_metrics: config.metrics,
        staff_origins: crate::cors::StaffOrigins::new(config.staff_origins.clone()),
        ready_max_lag: config.ready_max_lag,
        trusted_proxies: crate::ratelimit::TrustedProxies::new(config.trusted_proxies.clone()),
    })
}

impl Application {
    /// Starts the server and returns once it is ready: [`Application::start`]
    /// then [`Starting::catch_up`].
    pub async fn build(config: Config) -> Result<Application, StartError> {
        Application::start(config).await?.catch_up().await
    }

    /// Reads the secret and binds the listener, and serves from now on: until
    /// [`Starting::catch_up`] completes, only health and readiness answer
    /// (see [`crate::catchup`]). Dropping the result stops serving.
    pub async fn start(config: Config) -> Result<Starting, StartError> {
        let secret = load_or_create(&config.data_dir, config.secret.as_deref())?;
        let tokens = Tokens::new(&secret, config.token_lifetime);
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
        let (tx, stop) = watch::channel(false);
        let tx = Arc::new(tx);
        // From here on SIGTERM and ctrl-c stop the server gracefully, also
        // during the catch-up (which is not interrupted: the stop follows it).
        // The task holds no sender, so dropping the handles still stops serving.
        let signalled = signals();
        let weak = Arc::downgrade(&tx);
        let mut stopped = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => {}
                () = signalled => {
                    tracing::info!("signal received, shutting down");
                    if let Some(tx) = weak.upgrade() {
                        tx.send_replace(true);
                    }
                }
            }
        });
        let sockets = Sockets::new(config.transport, stop.clone());
        let gate = Arc::new(Gate::default());
        // What the catch-up replays to, for `/readyz` meanwhile: a file read
        // for sled; a network engine asks its database (blocking), which the
        // listener does not wait for.
        let store = config.store();
        if store.sled_path().is_some() {
            if let Some(head) = Log::committed_head(&store) {
                gate.progress.head.store(head, Ordering::Relaxed);
            }
        } else {
            let progress = gate.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(head) = Log::committed_head(&store) {
                    progress.progress.head.fetch_max(head, Ordering::Relaxed);
                }
            });
        }
        let served = tokio::spawn(crate::transport::serve(
            listener,
            gate.router(),
            config.transport,
            stop,
        ));
        tracing::info!(%addr, "listening");
        Ok(Starting {
            config,
            addr,
            tokens,
            secret,
            gate,
            served,
            sockets,
            shutdown: Shutdown(tx),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn desk(&self) -> Arc<Desk> {
        self.desk.clone()
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The demo's tokens, when built with `demo`.
    pub fn demo(&self) -> Option<&DemoTokens> {
        self.demo.as_ref()
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until a signal or the shutdown handle; then stops accepting,
    /// lets in-flight requests finish within the grace period, closes the
    /// websockets, drops what is left, and closes the log.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let requested = {
            // A signal (since `start`) or the handle; the connections and
            // websockets watch the same flag.
            let mut stop = self.shutdown.0.subscribe();
            async move {
                let _ = stop.wait_for(|stop| *stop).await;
                tracing::info!("shutting down");
                tokio::time::Instant::now()
            }
        };
        let grace = self.transport.grace;
        let (served, stopped_at) = tokio::join!(self.served, requested);
        if let Err(err) = served {
            tracing::error!(%err, "the accept loop failed");
        }
        // Websockets closed with 1001 meanwhile; those that could not say so
        // within the same grace period are left behind.
        let deadline = stopped_at.checked_add(grace).unwrap_or(stopped_at);
        if tokio::time::timeout_at(deadline, self.sockets.closed())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.sockets.open_count(),
                "websockets still open after the grace period"
            );
        }
        self.desk.close().await;
        Ok(())
    }
}

impl Starting {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens the store and builds the read models (from the checkpoint, or
    /// the whole log) on a blocking thread while the gate answers, waits for
    /// the projections, loads the demo if asked, then opens the gate to the
    /// application.
    pub async fn catch_up(self) -> Result<Application, StartError> {
        let config = self.config;
        let store = config.store();
        let checkpoints = config.checkpoint_dir();
        let keys = crate::secret::log_keys(&self.secret);
        let gate = self.gate.clone();
        let opening = gate.clone();
        let desk = tokio::task::spawn_blocking(move || {
            Desk::open_counting(&store, &checkpoints, &keys, &opening.progress.applied)
        })
        .await
        .map_err(|_| StartError::CatchUp)??;
        desk.caught_up().await.map_err(|_| StartError::CatchUp)?;
        desk.start_read_audit(&config.read_audit);
        let tokens = self.tokens;
        let demo = if config.demo {
            Some(crate::demo::load(&desk, &tokens).await?)
        } else {
            None
        };
        let state = app_state(&config, desk.clone(), tokens.clone(), self.sockets.clone())?;
        gate.open(router(state, config.graphiql));
        tracing::info!("ready");
        Ok(Application {
            addr: self.addr,
            desk,
            tokens,
            served: self.served,
            transport: config.transport,
            sockets: self.sockets,
            shutdown: self.shutdown,
            demo,
        })
    }
}

/// SIGTERM or SIGINT (ctrl-c). The handlers are registered when this is
/// called, not when the future is first polled: from then on a signal asks
/// for a graceful stop instead of killing the process.
fn signals() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            let wait = |registered: std::io::Result<tokio::signal::unix::Signal>| async move {
                match registered {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {},
                () = wait(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
