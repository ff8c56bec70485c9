#![allow(clippy::unwrap_used)]

//! `--server URL --token T` against the real server (the api library on port
//! 0 with the demo company): the same answers as the stopped server's store
//! (`--data-dir`) and its export (`--file`), and the endpoint's refusals.

mod support;

use std::path::Path;

use backchannel_domain::Command;
use backchannel_domain::ids::{CompanyId, StaffId, WidgetKey};
use backchannel_domain::model::Actor;
use backchannel_domain::values::Name;
use backchannel_testkit::demo::{BOB as DEMO_BOB, CASEY as DEMO_CASEY, COMPANY as DEMO_COMPANY};
use backchannel_testkit::{TestServer, demo_config};
use support::*;

/// The real server (the harness' in-process [`TestServer`] with the demo)
/// on a runtime of its own, for these synchronous tests.
struct Running {
    runtime: tokio::runtime::Runtime,
    server: TestServer,
    url: String,
    operator: String,
}

fn start(data_dir: &Path) -> Running {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(TestServer::spawn_with(demo_config(data_dir)));
    let url = format!("http://{}", server.addr);
    let operator = server.tokens.mint_operator().unwrap().token;
    Running {
        runtime,
        server,
        url,
        operator,
    }
}

impl Running {
    fn token(&self, role: &str) -> String {
        self.server.token(role)
    }

    /// The tool over `--server`, in pages of 7 records.
    fn tool(&self, args: &[&str], token: &str) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend([
            "--server",
            &self.url,
            "--token",
            token,
            "--server-page",
            "7",
        ]);
        tool(&all)
    }

    fn stop(self) {
        let Running {
            runtime,
            mut server,
            ..
        } = self;
        runtime.block_on(server.stop());
    }
}

/// Opens the store of a server this process has just stopped. The store's
/// `LOCK` is an flock, which lives as long as any copy of its descriptor: a
/// sibling test forking a child (to run the tool) in that instant hands the
/// child a copy until its `exec` closes it, and under load that can take a
/// moment. So "in use" is retried for a while; anything else fails at once.
fn open_stopped_store(store: &Path) -> backchannel_replay_tool::source::Source {
    use backchannel_replay_tool::failure::Kind;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match backchannel_replay_tool::source::Source::open_store(store, None) {
            Ok(source) => return source,
            Err(failure)
                if failure.kind == Kind::Unavailable
                    && failure.message.contains("in use")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(failure) => panic!("opening the stopped server's store: {failure:?}"),
        }
    }
}

const REPORT: [&str; 5] = [
    "report",
    "--from",
    "2000-01-01T00:00:00Z",
    "--to",
    "2100-01-01T00:00:00Z",
];

/// The commands compared across sources (verify's summary without its timing).
fn answers(run: impl Fn(&[&str]) -> std::process::Output) -> Vec<String> {
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let verify = ok(&["verify"]);
    let verify = verify.split(" (").next().unwrap().to_owned();
    let mut json = REPORT.to_vec();
    json.extend(["--format", "json", "--as", DEMO_BOB]);
    vec![
        verify,
        ok(&REPORT),
        ok(&json),
        ok(&["audit", "--company", DEMO_COMPANY, "--format", "jsonl"]),
        ok(&["audit", "--conversation", DEMO_CASEY]),
        ok(&["access", "--conversation", DEMO_CASEY]),
    ]
}

#[test]
fn the_servers_log_reads_like_its_store_and_its_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data);
    let operator = server.operator.clone();
    let owner = server.token("owner");
    let by_operator = answers(|args| server.tool(args, &operator));
    // A single-company server: its owner reads the same log.
    let by_owner = answers(|args| server.tool(args, &owner));
    let exported = dir.path().join("server.bclog");
    let out = server.tool(&["export", "--out", s(&exported)], &operator);
    assert!(out.status.success(), "{}", stderr(&out));
    // The server vouches for its head with its key: the download carries
    // the MAC, which the server's secret verifies.
    let secret = data.join("secret");
    let out = server.tool(&["verify", "--key", s(&secret)], &operator);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("MAC verifies"), "{}", stdout(&out));
    server.stop();
    let out = tool(&["verify", "--file", s(&exported), "--key", s(&secret)]);
    assert!(out.status.success(), "{}", stderr(&out));

    // `--data-dir` takes the server's own data directory (its store is
    // `data/store`), and the export finds the server's secret beside it.
    let store = data.join("store");
    let file = dir.path().join("store.bclog");
    let out = tool(&["export", "--data-dir", s(&data), "--out", s(&file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&exported).unwrap(),
        std::fs::read(&file).unwrap(),
        "export --server and export --data-dir give the same bytes"
    );
    let by_store = answers(|args| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", s(&store)]);
        tool(&all)
    });
    let by_file = answers(|args| {
        let mut all = args.to_vec();
        all.extend(["--file", s(&file)]);
        tool(&all)
    });
    assert!(by_store[0].starts_with("OK: "), "{}", by_store[0]);
    assert_eq!(by_operator, by_store);
    assert_eq!(by_owner, by_store);
    assert_eq!(by_file, by_store);
}

#[test]
fn the_log_endpoint_refuses_who_may_not_read_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("data"));
    let refused = |token: &str, code: &str| {
        let out = server.tool(&["verify"], token);
        assert_eq!(support::code(&out), 4, "{}", stderr(&out));
        assert!(stderr(&out).contains(code), "{}", stderr(&out));
    };
    refused(&server.token("supervisor"), "FORBIDDEN");
    refused(&server.token("agent 2"), "FORBIDDEN");
    refused("not-a-token", "UNAUTHENTICATED");
    refused(&server.server.demo().customer.clone(), "UNAUTHENTICATED");

    // A second company on the server: the owner's log would hold its events.
    server
        .runtime
        .block_on(server.server.desk.execute(
            Actor::System,
            "init",
            Command::CreateCompany {
                company: CompanyId::new(),
                name: Name::parse("Other Co").unwrap(),
                widget_key: WidgetKey::new(),
                owner: StaffId::new(),
                owner_name: Name::parse("Other Owner").unwrap(),
            },
            None,
        ))
        .unwrap();
    refused(&server.token("owner"), "operator");
    let out = server.tool(&["verify"], &server.operator);
    assert!(out.status.success(), "{}", stderr(&out));
    // Unreachable server: exit 3; not http(s): a usage error.
    let out = tool(&["verify", "--server", "http://127.0.0.1:1", "--token", "x"]);
    assert_eq!(support::code(&out), 3, "{}", stderr(&out));
    let out = tool(&["verify", "--server", "ftp://example.org", "--token", "x"]);
    assert_eq!(support::code(&out), 2, "{}", stderr(&out));
    // https is spoken: a TLS handshake with this plain-http server fails
    // (before, https was refused as a usage error without connecting).
    assert!(!stderr(&out).contains("not supported"), "{}", stderr(&out));
    let https = server.url.replace("http://", "https://");
    let out = tool(&["verify", "--server", &https, "--token", "x"]);
    assert_eq!(support::code(&out), 3, "{}", stderr(&out));
    server.stop();
}

/// A TLS terminator on 127.0.0.1 in front of the plain server, with a
/// self-signed certificate for 127.0.0.1; returns its https URL.
fn tls_front(server: &Running, cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> String {
    use tokio_rustls::rustls;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let backend = server.url.trim_start_matches("http://").to_owned();
    let listener = server
        .runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    server.runtime.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    format!("https://127.0.0.1:{port}")
}

#[test]
fn https_servers_are_trusted_through_server_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let url = tls_front(&server, &cert);
    let pem = dir.path().join("server.pem");
    std::fs::write(&pem, cert.cert.pem()).unwrap();
    let pem = pem.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["verify", "--server", &url, "--token", &server.operator];
        args.extend(extra);
        tool(&args)
    };
    // Unknown issuer without the CA: unavailable, and nothing read.
    let out = run(&[]);
    assert_eq!(support::code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("certificate"), "{}", stderr(&out));
    // With it: the log is read and verified over https.
    let out = run(&["--server-ca", pem]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A file that is not a certificate is a usage error.
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let out = run(&["--server-ca", not_pem.to_str().unwrap()]);
    assert_eq!(support::code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--server-ca"), "{}", stderr(&out));
    server.stop();
}

#[test]
fn rebuild_gives_the_read_models_of_the_live_server() {
    use backchannel_domain::ids::{ConversationId, MessageId};
    use backchannel_domain::model::MessageVisibility;
    use backchannel_domain::values::MessageBody;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data);
    let staff = |id: &str| Actor::Staff(id.parse().unwrap());
    let conversation = |id: &str| id.parse::<ConversationId>().unwrap();
    const ALICE: &str = "01900000-0000-7000-8000-000000005004";
    const CAROL: &str = "01900000-0000-7000-8000-000000005006";
    const SUPERVISOR: &str = "01900000-0000-7000-8000-000000005003";
    const DANA: &str = "01900000-0000-7000-8000-00000000d002";
    const EVAN: &str = "01900000-0000-7000-8000-00000000d003";
    const FRANKIE: &str = "01900000-0000-7000-8000-00000000d004";
    let steps = [
        (
            staff(ALICE),
            Command::SendMessage {
                conversation: conversation(DEMO_CASEY),
                message: MessageId::new(),
                visibility: MessageVisibility::Private,
                body: MessageBody::parse("A note for the room").unwrap(),
            },
        ),
        (
            staff(SUPERVISOR),
            Command::AssignConversation {
                conversation: conversation(DANA),
                assignee: DEMO_BOB.parse().unwrap(),
            },
        ),
        (
            staff(CAROL),
            Command::CloseConversation {
                conversation: conversation(EVAN),
            },
        ),
        (
            staff(DEMO_BOB),
            Command::ReopenConversation {
                conversation: conversation(FRANKIE),
            },
        ),
        (
            staff(DEMO_BOB),
            Command::MarkNotificationsRead {
                company: DEMO_COMPANY.parse().unwrap(),
                up_to: 10,
            },
        ),
    ];
    for (actor, command) in steps {
        server
            .runtime
            .block_on(server.server.desk.execute(actor, "test", command, None))
            .unwrap();
    }
    let live = server.server.desk.models().clone();
    assert!(live.position() > 50, "the mutations were applied");
    server.stop();

    // The server sealed its customer data: the store's own keys, with the
    // server's secret, open it as the live models hold it.
    let secret =
        backchannel_replay_tool::key::parse_server_key(data.join("secret").to_str().unwrap())
            .unwrap();
    let source = open_stopped_store(&data.join("store"))
        .with_store_keys(&secret.wrap)
        .unwrap();
    let rebuilt = backchannel_replay_tool::commands::rebuild::rebuild(
        &source,
        &backchannel_replay_tool::progress::Progress::new("rebuilding", true),
    )
    .unwrap();
    assert!(
        rebuilt == live,
        "rebuilt read models differ from the live ones"
    );
}
