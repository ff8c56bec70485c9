#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Subscription fan-out benchmark: reported, not asserted.
//!
//! `cargo bench -p backchannel-api --bench fanout`
//!
//! Builds a store of one company and 2,001 conversations through the real
//! event log, starts the real `backchannel` binary on it (a separate process),
//! and posts messages to conversation 0 one after the other over a keep-alive
//! connection: first with no subscription open, then with 2,000 open
//! `conversationEvents` subscriptions on the other conversations (websockets,
//! `graphql-transport-ws`, several subscriptions per socket), in the same run.
//! It reports the server process's CPU time (user + system, from
//! `/proc/<pid>/stat`) per posted message in both cases, and their ratio. The
//! target (SPEC section 8): an event costs work only for the subscriptions it
//! concerns, so the ratio stays at most 2.
//!
//! `FANOUT_BENCH_SUBSCRIPTIONS` (2000), `FANOUT_BENCH_PER_SOCKET` (50) and
//! `FANOUT_BENCH_MESSAGES` (1000) change the sizes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backchannel_api::auth::{StaffIdentity, Tokens};
use backchannel_domain::events::*;
use backchannel_domain::ids::*;
use backchannel_domain::model::{Actor, Channel, Role, RoutingType};
use backchannel_domain::values::Name;
use backchannel_eventlog::{AppendMeta, ExpectedVersion, Log, StoreSpec};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SECRET: &str = "benchmark-secret-benchmark-secret-0123456789";
const SEND: &str = "mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, body: $b, visibility: PRIVATE) { message { __typename } } }";
const EVENTS_LIVE: &str =
    "subscription($c: ID!) { conversationEvents(conversationId: $c) { __typename } }";

fn main() {
    let subscriptions: usize = env_or("FANOUT_BENCH_SUBSCRIPTIONS", 2000);
    let per_socket: usize = env_or("FANOUT_BENCH_PER_SOCKET", 50).max(1);
    let messages: usize = env_or("FANOUT_BENCH_MESSAGES", 1000).max(1);
    let base = bench_dir();
    println!("# Subscription fan-out benchmark\n");
    println!(
        "{subscriptions} unrelated subscriptions ({per_socket} per websocket), {messages} messages per measurement, dir {}",
        base.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let data_dir = base.join("data");
    let world = runtime.block_on(load(&data_dir.join("store"), subscriptions + 1));
    let (mut server, addr) = start_server(&data_dir, subscriptions);
    runtime.block_on(wait_ready(addr, Duration::from_secs(120)));
    let tokens = Tokens::new(SECRET.as_bytes(), Duration::from_secs(3600));
    let token = tokens
        .mint_staff(StaffIdentity {
            staff: world.owner,
            company: world.company,
        })
        .unwrap()
        .token;
    let target = world.conversations[0];
    let others = world.conversations[1..].to_vec();

    let (idle, busy, open) = runtime.block_on(async {
        let mut conn = Conn::connect(addr).await.unwrap();
        // Warm-up, then with no subscription open.
        post_messages(&mut conn, &token, target, messages / 10 + 1, None).await;
        let idle = post_messages(&mut conn, &token, target, messages, Some(server.id())).await;
        // Open the unrelated subscriptions, and check the server runs them all.
        let mut sockets = Vec::new();
        for chunk in others.chunks(per_socket) {
            sockets.push(Socket::open(addr, &token, chunk).await);
        }
        let open: usize = sockets.iter().map(|s| s.subscriptions).sum();
        post_messages(&mut conn, &token, target, messages / 10 + 1, None).await;
        let busy = post_messages(&mut conn, &token, target, messages, Some(server.id())).await;
        for socket in &mut sockets {
            socket.check_alive().await;
        }
        drop(sockets);
        (idle, busy, open)
    });
    stop(&mut server);

    println!();
    println!("| open unrelated subscriptions | server CPU per message | messages/s |");
    println!("|---|---|---|");
    println!(
        "| 0 | {:.0} µs | {:.0} |",
        idle.cpu_us_per_message, idle.rate
    );
    println!(
        "| {open} | {:.0} µs | {:.0} |",
        busy.cpu_us_per_message, busy.rate
    );
    let ratio = busy.cpu_us_per_message / idle.cpu_us_per_message.max(1.0);
    println!();
    println!(
        "- ratio {ratio:.2}× (target ≤ 2×) → {}",
        if ratio <= 2.0 { "met" } else { "MISSED" }
    );
    let _ = std::fs::remove_dir_all(&base);
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_dir() -> PathBuf {
    let root = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = root.join(format!("fanout-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- the store ----

struct World {
    company: CompanyId,
    owner: StaffId,
    conversations: Vec<ConversationId>,
}

fn meta() -> AppendMeta {
    AppendMeta {
        command_id: CommandId::new(),
        correlation_id: CorrelationId::new(),
        actor: Actor::System,
    }
}

/// A company, its owner and a BROADCAST group with `n` queued conversations.
async fn load(store: &Path, n: usize) -> World {
    let log = Log::open(&StoreSpec::sled(store)).unwrap();
    let company = CompanyId::new();
    let owner = StaffId::new();
    let group = GroupId::new();
    let setup = vec![
        Event::CompanyCreated(CompanyCreated {
            company,
            name: Name::parse("Bench Inc").unwrap(),
            widget_key: WidgetKey::new(),
        }),
        Event::StaffAdded(StaffAdded {
            company,
            staff: owner,
            name: Name::parse("Owner").unwrap(),
            role: Role::Owner,
        }),
        Event::GroupCreated(GroupCreated {
            company,
            group,
            name: Name::parse("Support").unwrap(),
            routing: RoutingType::Broadcast,
        }),
    ];
    log.append(
        StreamId::Company(company),
        ExpectedVersion::NoStream,
        setup,
        meta(),
    )
    .await
    .unwrap();
    let conversations: Arc<Vec<ConversationId>> =
        Arc::new((0..n).map(|_| ConversationId::new()).collect());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (log, conversations, next) = (log.clone(), conversations.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&conversation) = conversations.get(i) else {
                    break;
                };
                let opened = Event::ConversationOpened(ConversationOpened {
                    company,
                    conversation,
                    group,
                    channel: Channel::Chat,
                    // In clear: this bench measures fan-out, not sealing.
                    customer: backchannel_domain::values::Content::Legacy(
                        Name::parse(&format!("Customer {i}")).unwrap(),
                    ),
                    private: false,
                });
                log.append(
                    StreamId::Conversation(conversation),
                    ExpectedVersion::NoStream,
                    vec![opened],
                    meta(),
                )
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    log.close().unwrap();
    World {
        company,
        owner,
        conversations: conversations.to_vec(),
    }
}

// ---- the server process ----

/// `backchannel serve`, with the limits that would refuse the bench's own load
/// lifted: one staff member posts every message back to back (over the
/// default 20 mutations/s), and all the subscriptions come from one address,
/// possibly on one socket (over the default 100 per socket and 50 sockets per
/// address). Rate limits and caps are not what this bench measures.
fn start_server(data_dir: &Path, subscriptions: usize) -> (Child, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_backchannel"))
        .args(["serve", "--no-graphiql"])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--addr")
        .arg(addr.to_string())
        .args(["--rate-staff-mutations", "off"])
        .arg(format!("--ws-max-subscriptions={subscriptions}"))
        .arg(format!("--ws-max-per-address={subscriptions}"))
        .env("BACKCHANNEL_SECRET", SECRET)
        .env("BACKCHANNEL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    (child, addr)
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

async fn wait_ready(addr: SocketAddr, patience: Duration) {
    let start = Instant::now();
    loop {
        if let Ok(mut conn) = Conn::connect(addr).await
            && let Ok((200, _)) = conn.request("GET", "/readyz", None, "").await
        {
            return;
        }
        assert!(start.elapsed() < patience, "the server did not get ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// User plus system CPU time of a process so far, in microseconds, from
/// `/proc/<pid>/stat` (fields 14 and 15, in clock ticks).
fn cpu_us(pid: u32) -> f64 {
    let ticks_per_second: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) * 1e6 / ticks_per_second)
        })
        .unwrap_or(0.0)
}

struct Measured {
    cpu_us_per_message: f64,
    rate: f64,
}

/// Posts `n` private messages to `conversation`, one after the other; with a
/// server pid, measures its CPU time over them.
async fn post_messages(
    conn: &mut Conn,
    token: &str,
    conversation: ConversationId,
    n: usize,
    server: Option<u32>,
) -> Measured {
    let before = server.map(cpu_us);
    let start = Instant::now();
    for i in 0..n {
        let body = json!({
            "query": SEND,
            "variables": { "c": conversation.to_string(), "b": format!("Note {i}") },
        })
        .to_string();
        let (status, answer) = conn
            .request("POST", "/graphql", Some(token), &body)
            .await
            .unwrap();
        assert!(
            status == 200 && !String::from_utf8_lossy(&answer).contains("\"errors\""),
            "sendMessage: {status} {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = server
        .zip(before)
        .map_or(0.0, |(pid, before)| cpu_us(pid) - before);
    Measured {
        cpu_us_per_message: cpu / n as f64,
        rate: n as f64 / elapsed,
    }
}

// ---- clients ----

/// A websocket with several `conversationEvents` subscriptions; a task keeps
/// reading it (answering pings) so the server never waits on it.
struct Socket {
    subscriptions: usize,
    reader: tokio::task::JoinHandle<Option<String>>,
    _writer: tokio::sync::mpsc::Sender<Message>,
}

impl Socket {
    async fn open(addr: SocketAddr, token: &str, conversations: &[ConversationId]) -> Socket {
        let mut request = format!("ws://{addr}/graphql")
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let text = |v: Value| Message::text(v.to_string());
        socket
            .send(text(json!({
                "type": "connection_init",
                "payload": { "Authorization": format!("Bearer {token}") },
            })))
            .await
            .unwrap();
        expect_type(&mut socket, "connection_ack").await;
        for (i, c) in conversations.iter().enumerate() {
            socket
                .send(text(json!({
                    "id": i.to_string(),
                    "type": "subscribe",
                    "payload": { "query": EVENTS_LIVE, "variables": { "c": c.to_string() } },
                })))
                .await
                .unwrap();
        }
        // The server reads incoming messages before it polls the streams: two
        // ping/pong rounds after the subscribes mean every stream has started.
        for _ in 0..2 {
            socket.send(text(json!({ "type": "ping" }))).await.unwrap();
            expect_type(&mut socket, "pong").await;
        }
        let (mut sink, mut stream) = socket.split();
        let (writer, mut outgoing) = tokio::sync::mpsc::channel::<Message>(16);
        let reader = tokio::spawn(async move {
            loop {
                tokio::select! {
                    out = outgoing.recv() => match out {
                        Some(message) => sink.send(message).await.ok()?,
                        None => return None,
                    },
                    frame = stream.next() => match frame {
                        Some(Ok(Message::Text(t))) => {
                            let v: Value = serde_json::from_str(&t).ok()?;
                            match v["type"].as_str() {
                                Some("ping") => sink.send(text(json!({ "type": "pong" }))).await.ok()?,
                                Some("pong") => {}
                                // Unrelated subscriptions must stay quiet.
                                _ => return Some(t.to_string()),
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => return Some("closed".to_owned()),
                    },
                }
            }
        });
        Socket {
            subscriptions: conversations.len(),
            reader,
            _writer: writer,
        }
    }

    /// Panics if the socket closed or a subscription said anything.
    async fn check_alive(&mut self) {
        assert!(
            !self.reader.is_finished(),
            "a subscription socket ended: {:?}",
            (&mut self.reader).await
        );
    }
}

async fn expect_type<S>(socket: &mut S, kind: &str)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == kind {
                    return;
                }
                panic!("expected {kind}, got {v}");
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("expected {kind}, got {other:?}"),
        }
    }
}

/// A minimal keep-alive HTTP/1.1 client.
struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
        })
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(body);
        self.stream.get_mut().write_all(head.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim(), 16)
                    .map_err(|_| std::io::Error::other("bad chunk size"))?;
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            self.stream.read_exact(&mut body).await?;
        }
        Ok((status, body))
    }
}
