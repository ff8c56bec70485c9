//! The one HTTP client of the tests: HTTP/1.1 over a fresh connection per
//! request (`Connection: close`), so a test sees exactly what the server
//! wrote, head and body, chunked or not.

use std::net::{IpAddr, SocketAddr};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::ws::Subscription;

/// A server's address, and requests to it.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
    /// The local address requests come from (a loopback address such as
    /// 127.0.0.2 is a distinct client to the server's rate limits); any when
    /// `None`.
    pub from: Option<IpAddr>,
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The response head (status line and headers) as sent.
    pub head: String,
    /// The body as sent (de-chunked).
    pub bytes: Vec<u8>,
    /// The body as text (lossy).
    pub text: String,
    /// The body as JSON, or `Null` when it is none.
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

    /// The first error's `extensions.retryAfterMs` (`RATE_LIMITED`,
    /// `NOT_CAUGHT_UP`).
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.body["errors"][0]["extensions"]["retryAfterMs"].as_u64()
    }

    /// `extensions.position`, or a panic with the answer.
    pub fn position(&self) -> u64 {
        self.body["extensions"]["position"]
            .as_u64()
            .unwrap_or_else(|| panic!("no position: {} {}", self.status, self.text))
    }

    /// A header's value (the first, names compared in lower case), if the
    /// answer has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The status and the raw body.
    pub fn parts(self) -> (u16, Vec<u8>) {
        (self.status, self.bytes)
    }
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, from: None }
    }

    /// This client, its requests coming from the local address `from`.
    pub fn from_address(self, from: IpAddr) -> Client {
        Client {
            from: Some(from),
            ..self
        }
    }

    /// A staff GraphQL request on `/graphql`.
    pub async fn staff(&self, token: &str, query: &str, variables: Value) -> Reply {
        self.staff_with(token, "", query, variables).await
    }

    /// A staff GraphQL request with extra header lines (each ending in
    /// `\r\n`, say `X-Min-Position: 7\r\n`).
    pub async fn staff_with(
        &self,
        token: &str,
        extra: &str,
        query: &str,
        variables: Value,
    ) -> Reply {
        let body = json!({ "query": query, "variables": variables }).to_string();
        let authorization = format!("Bearer {token}");
        self.post_with("/graphql", Some(&authorization), extra, body.as_bytes())
            .await
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
        let path = "/customer/graphql";
        Subscription::open(self.addr, path, Some(token), query, variables).await
    }

    /// A customer GraphQL request on `/customer/graphql`.
    pub async fn customer(&self, token: Option<&str>, query: &str, variables: Value) -> Reply {
        let body = json!({ "query": query, "variables": variables }).to_string();
        self.post("/customer/graphql", token, body.as_bytes()).await
    }

    /// POSTs raw bytes as a JSON body, with a bearer token if any.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &[u8]) -> Reply {
        let authorization = token.map(|t| format!("Bearer {t}"));
        self.post_as(path, authorization.as_deref(), body).await
    }

    /// POSTs raw bytes with this `Authorization` header value, if any.
    pub async fn post_as(&self, path: &str, authorization: Option<&str>, body: &[u8]) -> Reply {
        self.post_with(path, authorization, "", body).await
    }

    /// POSTs raw bytes with this `Authorization` value and extra header lines.
    pub async fn post_with(
        &self,
        path: &str,
        authorization: Option<&str>,
        extra: &str,
        body: &[u8],
    ) -> Reply {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n",
            self.addr,
            body.len()
        );
        if let Some(value) = authorization {
            head.push_str(&format!("Authorization: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        self.send(&request).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.get_as(path, None).await
    }

    /// A GET with a bearer token if any.
    pub async fn get_as(&self, path: &str, token: Option<&str>) -> Reply {
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

    /// Sends one raw request and reads the answer to the end.
    pub async fn send(&self, request: &[u8]) -> Reply {
        let mut stream = match self.from {
            None => TcpStream::connect(self.addr).await.unwrap(),
            Some(from) => {
                let socket = match from {
                    IpAddr::V4(_) => TcpSocket::new_v4(),
                    IpAddr::V6(_) => TcpSocket::new_v6(),
                }
                .unwrap();
                socket.bind(SocketAddr::new(from, 0)).unwrap();
                socket.connect(self.addr).await.unwrap()
            }
        };
        // The server may answer (413) before reading everything: ignore
        // write errors and read what it said.
        let _ = stream.write_all(request).await;
        let raw = read_answer(&mut stream).await;
        let (status, head, bytes) = parse_response(&raw);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status,
            head,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            bytes,
        }
    }
}

/// Reads to the end, or only the head of a `101 Switching Protocols` (the
/// connection then stays open, for the websocket).
async fn read_answer(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut buffer).await else {
            return raw;
        };
        if n == 0 {
            return raw;
        }
        raw.extend_from_slice(&buffer[..n]);
        let head_done = raw.windows(4).any(|w| w == b"\r\n\r\n");
        if head_done && raw.starts_with(b"HTTP/1.1 101") {
            return raw;
        }
    }
}

fn parse_response(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let body = &raw[split + 4..];
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (status, head, body)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_is_joined_and_its_json_read() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Log-Position: 7\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        let (status, head, body) = parse_response(raw);
        assert_eq!(status, 200);
        assert_eq!(body, b"{\"a\":1}");
        let reply = Reply {
            status,
            head,
            text: String::from_utf8(body.clone()).unwrap(),
            body: serde_json::from_slice(&body).unwrap(),
            bytes: body,
        };
        assert_eq!(reply.header("x-log-position"), Some("7"));
        assert_eq!(reply.header("X-Log-Position"), Some("7"));
        assert_eq!(reply.header("retry-after"), None);
        assert_eq!(reply.body["a"], 1);
    }

    #[test]
    fn a_plain_body_is_kept_as_sent() {
        let raw = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 5\r\n\r\n0\r\n\r\n";
        let (status, _, body) = parse_response(raw);
        assert_eq!((status, body.as_slice()), (413, b"0\r\n\r\n".as_slice()));
    }
}
