//! The real server on port 0 (built through the api library, with companies
//! created by `backchannel init` first) and a small HTTP/1.1 client for it.

use std::net::SocketAddr;
use std::sync::Arc;

use backchannel_api::admin::{Initialized, init};
use backchannel_api::auth::Tokens;
use backchannel_api::desk::Desk;
use backchannel_api::{Application, Config, Shutdown};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::support::ws::Subscription;

/// The servers' token signing secret, so tests can forge and expire tokens.
pub const SECRET: &str = "e2e-secret-e2e-secret-e2e-secret-e2e-secret";

/// A running server and its data directory (removed when dropped).
pub struct TestServer {
    pub addr: SocketAddr,
    /// The server's own token keys (tests mint expired tokens with them).
    pub tokens: Tokens,
    desk: Arc<Desk>,
    shutdown: Shutdown,
    server: Option<JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// One HTTP answer: status, the raw body text, and the body as JSON.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub text: String,
    pub body: Value,
}

impl Reply {
    /// The first error's `extensions.code`.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// The data, or a panic naming what failed and the whole answer.
    pub fn ok(&self, what: &str) -> &Value {
        assert!(
            self.status == 200 && self.body["errors"].is_null(),
            "{what}: {} {}",
            self.status,
            self.text
        );
        &self.body["data"]
    }
}

impl TestServer {
    /// Creates one company per name (each with an owner called "<name> Owner")
    /// through `init`, then starts the server on that data directory.
    pub async fn start(companies: &[&str]) -> (TestServer, Vec<Initialized>) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path().to_owned(), SocketAddr::from(([127, 0, 0, 1], 0)));
        config.secret = Some(SECRET.to_owned());
        // Scripted tests mutate far faster than a desk; the rate limits have
        // their own tests (api/tests/server/rate_limits.rs).
        config.rate_limits = backchannel_api::ratelimit::RateLimits::UNLIMITED;
        let mut created = Vec::new();
        for name in companies {
            created.push(init(&config, name, &format!("{name} Owner")).await.unwrap());
        }
        let app = Application::build(config).await.unwrap();
        let server = TestServer {
            addr: app.addr(),
            tokens: app.tokens().clone(),
            desk: app.desk(),
            shutdown: app.shutdown_handle(),
            server: None,
            _dir: dir,
        };
        let handle = tokio::spawn(app.run_until_stopped());
        (
            TestServer {
                server: Some(handle),
                ..server
            },
            created,
        )
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
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

    pub async fn staff(&self, token: &str, query: &str, variables: Value) -> Reply {
        let body = json!({ "query": query, "variables": variables }).to_string();
        self.post("/graphql", Some(token), body.as_bytes()).await
    }

    pub async fn customer(&self, token: Option<&str>, query: &str, variables: Value) -> Reply {
        let body = json!({ "query": query, "variables": variables }).to_string();
        self.post("/customer/graphql", token, body.as_bytes()).await
    }

    /// A staff subscription over `graphql-transport-ws` on `/graphql`.
    pub async fn subscribe_staff(
        &self,
        token: &str,
        query: &str,
        variables: Value,
    ) -> Subscription {
        Subscription::open(self.addr, "/graphql", Some(token), query, variables).await
    }

    /// A customer subscription over `graphql-transport-ws` on `/customer/graphql`.
    pub async fn subscribe_customer(
        &self,
        token: &str,
        query: &str,
        variables: Value,
    ) -> Subscription {
        Subscription::open(
            self.addr,
            "/customer/graphql",
            Some(token),
            query,
            variables,
        )
        .await
    }

    /// POSTs raw bytes as a JSON body, with a bearer token if any.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &[u8]) -> Reply {
        let authorization = token.map(|t| format!("Bearer {t}"));
        self.post_as(path, authorization.as_deref(), body).await
    }

    /// POSTs raw bytes with this `Authorization` header value, if any.
    pub async fn post_as(&self, path: &str, authorization: Option<&str>, body: &[u8]) -> Reply {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.addr,
            body.len()
        );
        if let Some(value) = authorization {
            head.push_str(&format!("Authorization: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        // The server may answer (413) before reading everything: ignore
        // write errors and read what it said.
        let _ = stream.write_all(&request).await;
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        let (status, body) = parse_response(&raw);
        let text = String::from_utf8_lossy(&body).into_owned();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }
}

fn parse_response(raw: &[u8]) -> (u16, Vec<u8>) {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let body = &raw[split + 4..];
    if head.contains("transfer-encoding: chunked") {
        (status, dechunk(body))
    } else {
        (status, body.to_vec())
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .expect("a chunk size");
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
    out
}
