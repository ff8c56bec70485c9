//! The real server in this process: `Application::build` on port 0, run by
//! `run_until_stopped` on the caller's tokio runtime, stopped gracefully by
//! [`TestServer::stop`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use backchannel_api::admin::{Initialized, init};
use backchannel_api::auth::Tokens;
use backchannel_api::demo::DemoTokens;
use backchannel_api::desk::Desk;
use backchannel_api::{Application, Config, Shutdown};
use tokio::task::JoinHandle;

use crate::http::Client;

/// The token signing secret of servers started with companies and of every
/// [`crate::Node`], so tests can mint, forge and expire tokens.
pub const SECRET: &str = "e2e-secret-e2e-secret-e2e-secret-e2e-secret";

/// A server's configuration for tests: port 0 on loopback, the data
/// directory `dir`, no rate limits (tests script mutations far faster than a
/// desk; the limits have their own tests, which set the rates they check).
pub fn config(dir: &Path) -> Config {
    let mut config = Config::new(dir.to_owned(), SocketAddr::from(([127, 0, 0, 1], 0)));
    config.rate_limits = backchannel_api::ratelimit::RateLimits::UNLIMITED;
    config
}

/// [`config`] with the demo company loaded (`serve --demo`).
pub fn demo_config(dir: &Path) -> Config {
    let mut config = config(dir);
    config.demo = true;
    config
}

/// A running server. Dereferences to its [`Client`].
pub struct TestServer {
    client: Client,
    pub addr: SocketAddr,
    /// The server's own token keys (to mint operator, expired or forged tokens).
    pub tokens: Tokens,
    pub desk: Arc<Desk>,
    demo: Option<DemoTokens>,
    shutdown: Shutdown,
    server: Option<JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for TestServer {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl TestServer {
    /// The log's head once every read before this call is in the read audit
    /// (a read's audit append lands after its answer): to compare with the
    /// head after a request that must append nothing.
    pub async fn settled_head(&self) -> u64 {
        self.desk.read_audit().flush().await;
        self.desk.log().head()
    }

    /// The demo company in a temporary data directory.
    pub async fn spawn() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut server = TestServer::spawn_with(demo_config(dir.path())).await;
        server._dir = Some(dir);
        server
    }

    /// A server with this configuration; the caller keeps its data directory.
    pub async fn spawn_with(config: Config) -> TestServer {
        let app = Application::build(config).await.unwrap();
        TestServer::run(app, None)
    }

    /// Creates one company per name (each with an owner called "<name> Owner")
    /// through `init`, then starts a server with [`SECRET`] on that data
    /// directory.
    pub async fn with_companies(companies: &[&str]) -> (TestServer, Vec<Initialized>) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.secret = Some(SECRET.to_owned());
        let mut created = Vec::new();
        for name in companies {
            created.push(init(&config, name, &format!("{name} Owner")).await.unwrap());
        }
        let app = Application::build(config).await.unwrap();
        (TestServer::run(app, Some(dir)), created)
    }

    fn run(app: Application, dir: Option<tempfile::TempDir>) -> TestServer {
        let addr = app.addr();
        let tokens = app.tokens().clone();
        let desk = app.desk();
        let demo = app.demo().cloned();
        let shutdown = app.shutdown_handle();
        let server = tokio::spawn(app.run_until_stopped());
        TestServer {
            client: Client::new(addr),
            addr,
            tokens,
            desk,
            demo,
            shutdown,
            server: Some(server),
            _dir: dir,
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    /// The demo's tokens; panics on a server started without the demo.
    pub fn demo(&self) -> &DemoTokens {
        self.demo.as_ref().expect("a server started with the demo")
    }

    /// The demo token of the staff member labelled `role` ("owner",
    /// "agent 1", ...).
    pub fn token(&self, role: &str) -> String {
        self.demo()
            .staff
            .iter()
            .find(|(label, ..)| label == role)
            .map(|(.., token)| token.clone())
            .unwrap_or_else(|| panic!("no demo staff labelled {role}"))
    }

    /// How many events the log holds (its head position).
    pub fn log_head(&self) -> u64 {
        self.desk.log().head()
    }

    /// The desk's router of live subscriptions (what is registered, and how
    /// many times events were handed to subscriptions).
    pub fn live(&self) -> &backchannel_api::live::Router {
        self.desk.live()
    }
}
