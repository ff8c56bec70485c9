#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Server benchmark: reported, not asserted.
//!
//! `cargo bench -p backchannel-api --bench server`
//!
//! Builds a store of 100,000 conversations (1,000,000 events) through the real
//! event log (one append per event, conversations interleaved), starts the
//! real `backchannel serve` on it (a separate process, default limits: the
//! accept loop of `transport`, the admission pre-scan, the deadline and the
//! rate limiters are all on the measured path), and drives it over loopback
//! with 64 keep-alive connections: the agent inbox
//! (`conversations(first: 50)`) and a conversation timeline, beside a trivial
//! axum JSON handler as the ceiling, in the same run. Also the server's resident
//! memory per conversation (loaded minus empty, divided by the conversations).
//!
//! `SERVER_BENCH_CONVERSATIONS` and `SERVER_BENCH_SECONDS` shrink it for a
//! quick look; `SERVER_BENCH_KEEP=1` keeps the store for profiling;
//! `SERVER_BENCH_READ_AUDIT=off` serves without the read audit.
//! `SERVER_BENCH_ENCRYPTION=off` loads the conversations with their customer
//! data in clear (as before encryption existed) instead of sealed under
//! per-conversation keys (on PostgreSQL the records are imported from a sled
//! store, and its data keys restored into the database's key store).
//!
//! `SERVER_BENCH_STORE=postgres` runs the same bench on a PostgreSQL log: a
//! throwaway cluster (`backchannel-pgtest`), the same generated records built
//! in a sled store and imported with `Log::import`, and the server started
//! with `--store <url>` (the empty-store baseline on an empty database of the
//! same cluster). The PostgreSQL server's own memory is not counted: only
//! the `backchannel` process's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backchannel_api::auth::{StaffIdentity, Tokens};
use backchannel_domain::events::*;
use backchannel_domain::ids::*;
use backchannel_domain::model::{Actor, Channel, Permission, Role, RoutingType};
use backchannel_domain::values::{Content, MessageBody, Name};
use backchannel_eventlog::{AppendMeta, ExpectedVersion, Log, StoreSpec};
use backchannel_pgtest::PgCluster;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 64;
const AGENTS_PER_GROUP: usize = 50;
/// How long a server is left idle before its resident memory is read: the
/// allocator returns the catch-up's transient memory meanwhile.
const SETTLE: Duration = Duration::from_secs(5);
const SECRET: &str = "benchmark-secret-benchmark-secret-0123456789";

fn main() {
    let conversations: usize = env_or("SERVER_BENCH_CONVERSATIONS", 100_000);
    let seconds: f64 = env_or("SERVER_BENCH_SECONDS", 5.0);
    let base = bench_dir();
    let cluster = match std::env::var("SERVER_BENCH_STORE").as_deref() {
        Ok("postgres") => Some(PgCluster::start()),
        Ok("sled") | Err(_) => None,
        Ok(other) => panic!("SERVER_BENCH_STORE is sled or postgres, not {other:?}"),
    };
    println!("# Server benchmark\n");
    println!(
        "{conversations} conversations, {CONNECTIONS} connections, {seconds} s per measurement, log on {}, dir {}",
        if cluster.is_some() {
            "PostgreSQL 15 (throwaway cluster on loopback)"
        } else {
            "sled"
        },
        base.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Resident memory of a server with an empty store: the baseline.
    let empty_dir = base.join("empty");
    let empty_store = cluster.as_ref().map(|c| c.create_database("empty"));
    let (mut empty, empty_addr) = start_server(&empty_dir, empty_store.as_deref());
    runtime.block_on(wait_ready(empty_addr, Duration::from_secs(60)));
    std::thread::sleep(SETTLE);
    let empty_rss = rss_kib(empty.id());
    stop(&mut empty);

    let data_dir = base.join("loaded");
    let start = Instant::now();
    // On PostgreSQL the records are built in a sled store beside the data
    // dir, then imported: the same bytes either way.
    let sled_store = if cluster.is_some() {
        base.join("source")
    } else {
        data_dir.join("store")
    };
    let sealed = !std::env::var("SERVER_BENCH_ENCRYPTION").is_ok_and(|v| v == "off");
    println!(
        "customer data {}",
        if sealed {
            "sealed under per-conversation keys"
        } else {
            "in clear"
        }
    );
    let world = runtime.block_on(load(&sled_store, conversations, sealed));
    let load_secs = start.elapsed().as_secs_f64();
    println!(
        "loaded {} events in {load_secs:.1} s ({:.0} events/s through the durable sled log)",
        world.events,
        world.events as f64 / load_secs
    );
    let store = cluster.as_ref().map(|c| {
        let url = c.create_database("loaded");
        let start = Instant::now();
        let source = Log::open(&StoreSpec::sled(&sled_store)).unwrap();
        let imported = Log::import(
            &StoreSpec::Postgres(url.clone()),
            source
                .raw_records(1, u64::MAX)
                .map(|r| r.map(|(_, record)| record)),
        )
        .unwrap();
        let head = imported.head();
        imported.close().unwrap();
        source.close().unwrap();
        println!(
            "imported {head} events into PostgreSQL in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        if sealed {
            // The data keys go with the records, as an import with a key
            // bundle carries them.
            let wrap = backchannel_eventlog::KeyWrap::from_secret(SECRET.as_bytes());
            let keys = backchannel_eventlog::DirKeyStore::open_read_only(&sled_store, wrap.clone())
                .all()
                .unwrap();
            let target = Log::open(&StoreSpec::Postgres(url.clone()))
                .unwrap()
                .with_key_wrap(&wrap)
                .unwrap();
            let store = target.keys().unwrap().clone();
            let count = keys.len();
            let start = Instant::now();
            runtime.block_on(async {
                for (conversation, state) in keys {
                    store.restore(conversation, state).await.unwrap();
                }
            });
            target.close().unwrap();
            println!(
                "restored {count} data keys into PostgreSQL in {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
        let _ = std::fs::remove_dir_all(&sled_store);
        url
    });

    let start = Instant::now();
    let (mut server, addr) = start_server(&data_dir, store.as_deref());
    runtime.block_on(wait_ready(addr, Duration::from_secs(600)));
    let ready_secs = start.elapsed().as_secs_f64();
    let catch_up_rss = rss_kib(server.id());
    std::thread::sleep(SETTLE);
    let loaded_rss = rss_kib(server.id());
    println!(
        "server ready (read models caught up) in {ready_secs:.1} s; RSS {catch_up_rss} KiB right then, {loaded_rss} KiB {} s later (empty store: {empty_rss} KiB)",
        SETTLE.as_secs()
    );

    let tokens = Tokens::new(SECRET.as_bytes(), Duration::from_secs(3600));
    let agent_tokens: Vec<String> = world
        .agents
        .iter()
        .map(|&staff| {
            tokens
                .mint_staff(StaffIdentity {
                    staff,
                    company: world.company,
                })
                .unwrap()
                .token
        })
        .collect();
    let agent_tokens = Arc::new(agent_tokens);
    let mine = Arc::new(world.assigned);

    let ceiling_addr = runtime.block_on(start_ceiling());
    let ceiling = runtime.block_on(drive("ceiling", ceiling_addr, None, seconds, |_, _| {
        Request::get("/json".to_owned())
    }));
    let inbox_query = r#"{"query":"{ conversations(first: 50) { edges { node { id status channel customerName assignee { id } updatedAt } } pageInfo { hasNextPage endCursor } } }"}"#;
    let inbox = {
        let tokens = agent_tokens.clone();
        runtime.block_on(drive(
            "inbox",
            addr,
            Some(server.id()),
            seconds,
            move |conn, _| {
                Request::graphql(inbox_query.to_owned(), tokens[conn % tokens.len()].clone())
            },
        ))
    };
    let after_inbox_rss = rss_kib(server.id());
    let timeline = {
        let tokens = agent_tokens.clone();
        let mine = mine.clone();
        runtime.block_on(drive("timeline", addr, Some(server.id()), seconds, move |conn, n| {
            let agent = conn % tokens.len();
            let own = &mine[agent];
            let id = own[n % own.len()];
            let query = format!(
                r#"{{"query":"{{ conversation(id: \"{id}\") {{ id status timeline(first: 10) {{ edges {{ node {{ __typename ... on PublicMessage {{ at body fromCustomer }} ... on PrivateMessage {{ at body }} ... on SystemEvent {{ at kind }} }} }} }} }} }}"}}"#
            );
            Request::graphql(query, tokens[agent].clone())
        }))
    };
    let after_rss = rss_kib(server.id());
    // A graceful stop checkpoints the read models; the next start resumes
    // from the checkpoint instead of replaying the log.
    let start = Instant::now();
    stop(&mut server);
    let stop_secs = start.elapsed().as_secs_f64();
    // sled keeps the checkpoint in its store, a PostgreSQL node in its data dir.
    let checkpoint = if store.is_some() {
        data_dir.join("checkpoint/read-models")
    } else {
        data_dir.join("store/checkpoints/read-models")
    };
    let checkpoint_bytes = std::fs::metadata(checkpoint).map_or(0, |m| m.len());
    let start = Instant::now();
    let (mut server, addr) = start_server(&data_dir, store.as_deref());
    runtime.block_on(wait_ready(addr, Duration::from_secs(600)));
    let resumed_secs = start.elapsed().as_secs_f64();
    std::thread::sleep(SETTLE);
    let resumed_rss = rss_kib(server.id());
    stop(&mut server);

    let per = |kib: u64| (kib.saturating_sub(empty_rss)) as f64 * 1024.0 / conversations as f64;
    let per_conversation = per(loaded_rss);
    println!();
    println!(
        "| measurement | requests/s | p50 | p99 | errors | vs ceiling | server CPU per request | load generator CPU per request |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, r) in [
        ("trivial axum JSON handler (ceiling)", &ceiling),
        ("agent inbox, `conversations(first: 50)`", &inbox),
        ("conversation timeline (10 events)", &timeline),
    ] {
        let server_cpu = r
            .server_cpu_us
            .map_or_else(|| "(in process)".to_owned(), |us| format!("{us:.0} µs"));
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.0}% | {server_cpu} | {:.0} µs |",
            r.rate,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            100.0 * r.rate / ceiling.rate,
            r.client_cpu_us,
        );
    }
    println!();
    println!(
        "resident memory: {loaded_rss} KiB loaded, {empty_rss} KiB empty → {per_conversation:.0} bytes per conversation; after the inbox load {after_inbox_rss} KiB ({:.0} bytes), after the timeline load {after_rss} KiB ({:.0} bytes)",
        per(after_inbox_rss),
        per(after_rss)
    );
    println!(
        "after the cold catch-up (no checkpoint: every event replayed): {:.0} bytes per conversation right then, {:.0} bytes {} s later",
        per(catch_up_rss),
        per(loaded_rss),
        SETTLE.as_secs()
    );
    println!(
        "restart: the graceful stop (checkpoint of {:.1} MiB written) took {stop_secs:.1} s; the next start resumed from it and was ready in {resumed_secs:.1} s (rebuilt from the log: {ready_secs:.1} s); RSS {resumed_rss} KiB ({:.0} bytes per conversation) {} s later",
        checkpoint_bytes as f64 / (1024.0 * 1024.0),
        per(resumed_rss),
        SETTLE.as_secs()
    );
    println!();
    println!("Targets:");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "- inbox ≥ 5,000 requests/s at p99 < 20 ms: {:.0}/s, p99 {:.2} ms → {}",
        inbox.rate,
        inbox.p99_ms,
        verdict(inbox.rate >= 5000.0 && inbox.p99_ms < 20.0)
    );
    println!(
        "- ≤ 2 KB resident per conversation: {:.0} bytes right after the cold catch-up, {per_conversation:.0} {} s later, {:.0} after the load → {}",
        per(catch_up_rss),
        SETTLE.as_secs(),
        per(after_rss),
        verdict(
            per(catch_up_rss) <= 2048.0 && per_conversation <= 2048.0 && per(after_rss) <= 2048.0
        )
    );
    if std::env::var_os("SERVER_BENCH_KEEP").is_some() {
        println!("kept {}", base.display());
    } else {
        let _ = std::fs::remove_dir_all(&base);
    }
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
    let dir = root.join(format!("server-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- the synthetic desk ----

struct World {
    company: CompanyId,
    agents: Vec<StaffId>,
    /// Per agent (same order as `agents`), conversations assigned to them.
    assigned: Vec<Vec<ConversationId>>,
    events: u64,
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn body(s: &str) -> MessageBody {
    MessageBody::parse(s).unwrap()
}

fn meta() -> AppendMeta {
    AppendMeta {
        command_id: CommandId::new(),
        correlation_id: CorrelationId::new(),
        actor: Actor::System,
    }
}

/// A company with privacy on, a BROADCAST group Support and a ROUND_ROBIN
/// group Sales of 50 agents each; `n` conversations of 10 events each:
/// opened, assigned (10% of Support's stay queued and get customer messages
/// instead), 6 public messages, a private one, and closed or one more reply.
async fn load(store: &Path, n: usize, sealed: bool) -> World {
    let mut log = Log::open(&StoreSpec::sled(store)).unwrap();
    if sealed {
        let wrap = backchannel_eventlog::KeyWrap::from_secret(SECRET.as_bytes());
        let keys = log.key_store(wrap).await.unwrap();
        log = log.with_keys(keys);
    }
    let content = |text: String| -> Content<MessageBody> {
        match sealed {
            true => Content::Plain(body(&text)),
            false => Content::Legacy(body(&text)),
        }
    };
    let customer = |text: String| -> Content<Name> {
        match sealed {
            true => Content::Plain(name(&text)),
            false => Content::Legacy(name(&text)),
        }
    };
    let company = CompanyId::new();
    let owner = StaffId::new();
    let support = GroupId::new();
    let sales = GroupId::new();
    let mut setup = vec![
        Event::CompanyCreated(CompanyCreated {
            company,
            name: name("Bench Inc"),
            widget_key: WidgetKey::new(),
        }),
        Event::StaffAdded(StaffAdded {
            company,
            staff: owner,
            name: name("Owner"),
            role: Role::Owner,
        }),
        Event::PrivacySettingsChanged(PrivacySettingsChanged {
            company,
            private_conversations_enabled: true,
            new_conversations_private: true,
        }),
        Event::GroupCreated(GroupCreated {
            company,
            group: support,
            name: name("Support"),
            routing: RoutingType::Broadcast,
        }),
        Event::GroupCreated(GroupCreated {
            company,
            group: sales,
            name: name("Sales"),
            routing: RoutingType::RoundRobin,
        }),
    ];
    let mut agents = Vec::new();
    for (g, group) in [support, sales].into_iter().enumerate() {
        for i in 0..AGENTS_PER_GROUP {
            let staff = StaffId::new();
            setup.push(Event::StaffAdded(StaffAdded {
                company,
                staff,
                name: name(&format!("Agent {g}-{i}")),
                role: Role::Agent,
            }));
            setup.push(Event::GroupMemberAdded(GroupStaff {
                company,
                group,
                staff,
            }));
            if i == 0 {
                setup.push(Event::PermissionGranted(PermissionGranted {
                    company,
                    staff,
                    permission: Permission::EnquiryHistory,
                }));
            }
            agents.push(staff);
        }
    }
    let mut events = setup.len() as u64;
    log.append(
        StreamId::Company(company),
        ExpectedVersion::NoStream,
        setup,
        meta(),
    )
    .await
    .unwrap();

    let mut assigned = vec![Vec::new(); agents.len()];
    let mut plans = Vec::with_capacity(n);
    for i in 0..n {
        let conversation = ConversationId::new();
        let in_support = i % 2 == 0;
        let (group, agent_index) = if in_support {
            (support, (i / 2) % AGENTS_PER_GROUP)
        } else {
            (sales, AGENTS_PER_GROUP + (i / 2) % AGENTS_PER_GROUP)
        };
        // 10% of Support stays queued, spread over every agent's share.
        let queued = in_support && (i / 100) % 10 == 7;
        let agent = agents[agent_index];
        let channel = [
            Channel::Chat,
            Channel::Social,
            Channel::Chat,
            Channel::Social,
        ][i % 4];
        let mut conv = vec![Event::ConversationOpened(ConversationOpened {
            company,
            conversation,
            group,
            channel,
            customer: customer(format!("Customer {i}")),
            private: true,
        })];
        let message = |k: u64, from_customer: bool| {
            Event::MessagePosted(MessagePosted {
                conversation,
                message: MessageId::new(),
                author: if from_customer {
                    MessageAuthor::Customer
                } else {
                    MessageAuthor::Staff(agent)
                },
                body: content(format!(
                    "Message {k} of conversation {i}: where is my order?"
                )),
            })
        };
        if queued {
            conv.extend((0..9).map(|k| message(k, true)));
        } else {
            assigned[agent_index].push(conversation);
            conv.push(Event::ConversationAssigned(ConversationAssigned {
                conversation,
                assignee: agent,
                previous_assignee: None,
                round_robin: !in_support,
            }));
            conv.extend((0..6).map(|k| message(k, k % 2 == 0)));
            conv.push(Event::PrivateMessagePosted(PrivateMessagePosted {
                conversation,
                message: MessageId::new(),
                author: agent,
                body: content("Note to self: check the courier.".to_owned()),
            }));
            conv.push(if i % 3 == 0 {
                Event::ConversationClosed(ConversationClosed { conversation })
            } else {
                message(7, false)
            });
        }
        events += conv.len() as u64;
        plans.push((conversation, conv));
    }

    // As on a real desk, every event is an append (a command) of its own, and
    // conversations interleave: stage k appends the k-th event of every
    // conversation, through 64 concurrent appenders, so a conversation's
    // events lie ~n positions apart in the log.
    let plans = Arc::new(plans);
    let stages = plans.iter().map(|(_, conv)| conv.len()).max().unwrap_or(0);
    for stage in 0..stages {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let log = log.clone();
            let plans = plans.clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((conversation, conv)) = plans.get(i) else {
                        break;
                    };
                    let Some(event) = conv.get(stage) else {
                        continue;
                    };
                    log.append(
                        StreamId::Conversation(*conversation),
                        ExpectedVersion::Exact(stage as u64),
                        vec![event.clone()],
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
    }
    log.close().unwrap();
    World {
        company,
        agents,
        assigned,
        events,
    }
}

// ---- the server process ----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `backchannel serve` with its default limits: settings the caller's
/// environment may hold (`BACKCHANNEL_RATE_*`, `BACKCHANNEL_MAX_*`, ...) are
/// not passed on. `store`: a PostgreSQL URL for `--store`, else the sled
/// store under `data_dir`.
fn start_server(data_dir: &Path, store: Option<&str>) -> (Child, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_backchannel"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BACKCHANNEL_") {
            command.env_remove(key);
        }
    }
    // `SERVER_BENCH_READ_AUDIT=off`: the same run without the read audit
    // (issue 13 compares inbox and timeline requests/s on and off).
    command.args(["serve", "--no-graphiql"]);
    if std::env::var("SERVER_BENCH_READ_AUDIT").is_ok_and(|v| v == "off") {
        command.arg("--no-read-audit");
    }
    if let Some(url) = store {
        command.arg("--store").arg(url);
    }
    let child = command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--addr")
        .arg(addr.to_string())
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

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn wait_ready(addr: SocketAddr, patience: Duration) {
    let start = Instant::now();
    loop {
        if let Ok(mut conn) = Conn::connect(addr).await
            && let Ok((200, _)) = conn.send(&Request::get("/readyz".to_owned())).await
        {
            return;
        }
        assert!(start.elapsed() < patience, "the server did not get ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_ceiling() -> SocketAddr {
    use axum::{Json, Router, routing::get};
    let app = Router::new().route(
        "/json",
        get(|| async { Json(serde_json::json!({ "data": { "ok": true } })) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

// ---- the load generator: a minimal keep-alive HTTP/1.1 client ----

struct Request {
    method: &'static str,
    path: String,
    token: Option<String>,
    body: String,
}

impl Request {
    fn get(path: String) -> Self {
        Request {
            method: "GET",
            path,
            token: None,
            body: String::new(),
        }
    }

    fn graphql(body: String, token: String) -> Self {
        Request {
            method: "POST",
            path: "/graphql".to_owned(),
            token: Some(token),
            body,
        }
    }
}

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

    async fn send(&mut self, request: &Request) -> std::io::Result<(u16, Vec<u8>)> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            request.method,
            request.path,
            request.body.len()
        );
        if let Some(token) = &request.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(&request.body);
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

struct Outcome {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
    /// CPU time (user + system) the server process spent per request during
    /// the measurement; `None` for the ceiling, which runs in this process.
    server_cpu_us: Option<f64>,
    /// CPU time this process (the load generator) spent per request.
    client_cpu_us: f64,
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
            // The command name (field 2) may hold spaces: count after its ')'.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) * 1e6 / ticks_per_second)
        })
        .unwrap_or(0.0)
}

/// `CONNECTIONS` connections, each sending `make(connection, n)` back to back
/// for `seconds`; a response counts as an error unless it is 200 without
/// `"errors"` in its body.
async fn drive<F>(
    what: &str,
    addr: SocketAddr,
    server: Option<u32>,
    seconds: f64,
    make: F,
) -> Outcome
where
    F: Fn(usize, usize) -> Request + Send + Sync + 'static,
{
    let make = Arc::new(make);
    // A short warm-up, then the measurement.
    for (warm, duration) in [(true, 0.5_f64), (false, seconds)] {
        if !warm {
            // On stderr, so a profiler can be attached to the right phase.
            eprintln!("measuring {what} for {seconds} s");
        }
        let cpu_before = (server.map(cpu_us), cpu_us(std::process::id()));
        let start = Instant::now();
        let deadline = Duration::from_secs_f64(duration);
        let mut tasks = Vec::new();
        for c in 0..CONNECTIONS {
            let make = make.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::connect(addr).await.unwrap();
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut n = 0;
                while start.elapsed() < deadline {
                    let request = make(c, n);
                    n += 1;
                    let t = Instant::now();
                    match conn.send(&request).await {
                        Ok((200, body)) if !contains(&body, b"\"errors\"") => {}
                        Ok((status, body)) => {
                            if errors == 0 && c == 0 {
                                eprintln!(
                                    "first error ({status}): {}",
                                    String::from_utf8_lossy(&body[..body.len().min(300)])
                                );
                            }
                            errors += 1;
                        }
                        Err(_) => {
                            errors += 1;
                            conn = Conn::connect(addr).await.unwrap();
                        }
                    }
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                (latencies, errors)
            }));
        }
        let mut latencies = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (l, e) = task.await.unwrap();
            latencies.extend(l);
            errors += e;
        }
        if warm {
            continue;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let requests = latencies.len().max(1) as f64;
        let server_cpu_us = server
            .zip(cpu_before.0)
            .map(|(pid, before)| (cpu_us(pid) - before) / requests);
        let client_cpu_us = (cpu_us(std::process::id()) - cpu_before.1) / requests;
        latencies.sort_by(f64::total_cmp);
        let pct =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        return Outcome {
            rate: latencies.len() as f64 / elapsed,
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
            errors,
            server_cpu_us,
            client_cpu_us,
        };
    }
    unreachable!("the measurement returns")
}

/// Whether `needle` occurs in `haystack` (memchr's substring search: the
/// load generator shares the server's two cores, so it should spend little).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}
