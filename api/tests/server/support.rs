//! A running server on port 0 and a small HTTP/1.1 client speaking to it.

use std::net::SocketAddr;
use std::path::PathBuf;

use backchannel_api::demo::DemoTokens;
use backchannel_api::{Application, Config, Shutdown};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

pub const COMPANY: &str = "01900000-0000-7000-8000-00000000c001";
pub const SUPPORT: &str = "01900000-0000-7000-8000-00000000b001";
pub const SALES: &str = "01900000-0000-7000-8000-00000000b002";
/// Chat, Support, handled by Alice, private.
pub const CASEY: &str = "01900000-0000-7000-8000-00000000d001";
/// Social, Support, queued, private.
pub const DANA: &str = "01900000-0000-7000-8000-00000000d002";
/// Email, Sales (round robin).
pub const EVAN: &str = "01900000-0000-7000-8000-00000000d003";
/// Chat, Support, closed by Bob.
pub const FRANKIE: &str = "01900000-0000-7000-8000-00000000d004";
pub const OWNER: &str = "01900000-0000-7000-8000-000000005001";
pub const ALICE: &str = "01900000-0000-7000-8000-000000005004";
pub const BOB: &str = "01900000-0000-7000-8000-000000005005";
pub const CAROL: &str = "01900000-0000-7000-8000-000000005006";
pub const SUPERVISOR: &str = "01900000-0000-7000-8000-000000005003";

pub struct TestApp {
    pub addr: SocketAddr,
    pub demo: DemoTokens,
    pub app_tokens: backchannel_api::auth::Tokens,
    pub desk: std::sync::Arc<backchannel_api::desk::Desk>,
    shutdown: Shutdown,
    server: Option<JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The first error's code.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
}

pub fn config(dir: PathBuf) -> Config {
    let mut config = Config::new(dir, SocketAddr::from(([127, 0, 0, 1], 0)));
    config.demo = true;
    // The tests script mutations far faster than a desk; the limits have
    // their own tests (`rate_limits.rs`), which set the rates they check.
    config.rate_limits = backchannel_api::ratelimit::RateLimits::UNLIMITED;
    config
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut app = TestApp::spawn_with(config(dir.path().to_owned())).await;
        app._dir = Some(dir);
        app
    }

    pub async fn spawn_with(config: Config) -> TestApp {
        let app = Application::build(config).await.unwrap();
        let demo = app.demo().cloned().unwrap();
        let addr = app.addr();
        let shutdown = app.shutdown_handle();
        let app_tokens = app.tokens().clone();
        let desk = app.desk();
        let server = tokio::spawn(app.run_until_stopped());
        TestApp {
            addr,
            demo,
            app_tokens,
            desk,
            shutdown,
            server: Some(server),
            _dir: None,
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    pub fn token(&self, role: &str) -> String {
        self.demo
            .staff
            .iter()
            .find(|(label, ..)| label == role)
            .map(|(.., token)| token.clone())
            .unwrap()
    }

    pub async fn staff(&self, token: &str, query: &str, variables: Value) -> Reply {
        let body = json!({ "query": query, "variables": variables }).to_string();
        self.post("/graphql", Some(token), body.as_bytes()).await
    }

    pub async fn customer(&self, token: Option<&str>, query: &str, variables: Value) -> Reply {
        let body = json!({ "query": query, "variables": variables }).to_string();
        self.post("/customer/graphql", token, body.as_bytes()).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &[u8]) -> Reply {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.addr,
            body.len()
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let (status, body) = self.send(&request).await;
        Reply {
            status,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let (status, body) = self.send(request.as_bytes()).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A GET with an optional bearer token; the raw body.
    pub async fn get_as(&self, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        self.send(request.as_bytes()).await
    }

    async fn send(&self, request: &[u8]) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        // The server may answer (413) before reading everything: ignore
        // write errors and read what it said.
        let _ = stream.write_all(request).await;
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        parse_response(&raw)
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
        .unwrap();
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
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
    out
}
