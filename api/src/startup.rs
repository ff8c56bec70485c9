//! Building and running the server: `Application::build(config)` opens the
//! store, starts the projector, binds the listener (port 0 in tests), and
//! `run_until_stopped` serves until SIGTERM, ctrl-c or a [`Shutdown`] handle,
//! then stops gracefully (see [`crate::transport`]): in-flight requests get a
//! grace period, websockets close with 1001, what is left is dropped, and the
//! log is always closed (flush + fsync, checkpoint).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Tokens;
use crate::config::Config;
use crate::context::Shared;
use crate::demo::{DemoError, DemoTokens};
use crate::desk::Desk;
use crate::http::{AppState, router};
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
    listener: TcpListener,
    addr: SocketAddr,
    desk: Arc<Desk>,
    tokens: Tokens,
    app: axum::Router,
    transport: TransportLimits,
    sockets: Arc<Sockets>,
    shutdown: Shutdown,
    demo: Option<DemoTokens>,
}

/// Opens the store under the data dir and waits for the projections to
/// catch up (used by `serve`, `init` and `token`).
pub async fn open_desk(config: &Config) -> Result<(Arc<Desk>, Tokens), StartError> {
    let secret = load_or_create(&config.data_dir, config.secret.as_deref())?;
    let tokens = Tokens::new(&secret, config.token_lifetime);
    let desk = Desk::open(&config.store_dir(), &crate::secret::head_key(&secret))?;
    desk.caught_up().await.map_err(|_| StartError::CatchUp)?;
    Ok((desk, tokens))
}

impl Application {
    pub async fn build(config: Config) -> Result<Application, StartError> {
        let (desk, tokens) = open_desk(&config).await?;
        let demo = if config.demo {
            Some(crate::demo::load(&desk, &tokens).await?)
        } else {
            None
        };
        let shared = Shared {
            desk: desk.clone(),
            tokens: tokens.clone(),
            limits: config.limits,
            limiters: Arc::new(Limiters::new(&config.rate_limits)),
        };
        let (tx, stop) = watch::channel(false);
        let sockets = Sockets::new(config.transport, stop);
        let state = AppState {
            staff: staff::schema(shared.clone(), config.introspection),
            customer: customer::schema(shared.clone(), config.introspection),
            staff_ws: staff::websocket_schema(shared.clone(), config.introspection),
            customer_ws: customer::websocket_schema(shared.clone(), config.introspection),
            shared,
            parsed: Default::default(),
            sockets: sockets.clone(),
            staff_origins: crate::cors::StaffOrigins::new(config.staff_origins.clone()),
        };
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
        Ok(Application {
            listener,
            addr,
            desk,
            tokens,
            app: router(state, config.graphiql),
            transport: config.transport,
            sockets,
            shutdown: Shutdown(Arc::new(tx)),
            demo,
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
        let stop = self.shutdown.0.subscribe();
        let requested = {
            let mut stop = self.shutdown.0.subscribe();
            let shutdown = self.shutdown.clone();
            async move {
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => tracing::info!("shutdown requested"),
                    _ = signal() => tracing::info!("signal received, shutting down"),
                }
                // Tell the connections and websockets.
                shutdown.trigger();
                tokio::time::Instant::now()
            }
        };
        tracing::info!(addr = %self.addr, "listening");
        let grace = self.transport.grace;
        let served = crate::transport::serve(self.listener, self.app, self.transport, stop);
        let ((), stopped_at) = tokio::join!(served, requested);
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

async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
