#![allow(clippy::unwrap_used)]

//! Erasure in the replay tool (SPEC section 12): a store written sealed,
//! with one conversation erased, read through every kind of source with and
//! without keys. Customer data shows only with keys and only for the live
//! conversations; the erased one shows `[erased]` everywhere, even to a
//! reader holding a key it had before the erasure; a live one read without
//! its key shows `[sealed]`. `export --keys-out` writes the auditor's key
//! bundle, and the export holds no plaintext.

mod support;

use std::path::{Path, PathBuf};

use backchannel_domain::events::{ConversationErased, Event, StreamId};
use backchannel_domain::ids::{CommandId, ConversationId, CorrelationId};
use backchannel_domain::values::{Content, ErasureReason};
use backchannel_eventlog::{
    AppendMeta, DirKeyStore, ExpectedVersion, KeyState, KeyWrap, Log, StoreSpec, codec,
};
use backchannel_pgtest::PgCluster;
use support::*;

/// The scenario's customer data: C1's, which is erased...
const C1_TEXTS: [&str; 5] = [
    "Carla Customer",
    "My parcel never arrived.",
    "let me check",
    "Offer a refund, she is a regular.",
    "Will do,",
];
/// ... and the conversations that stay (C2, closed; C3, queued).
const LIVE_TEXTS: [&str; 3] = ["Eve Emailer", "Your invoice is attached.", "Sam Social"];
const REASON: &str = "GDPR Article 17 request of 2025-03-02";
const SECRET_HEX: &str = "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2";

struct Sealed {
    dir: tempfile::TempDir,
    /// The server's data directory: `store/` and `secret`.
    data: PathBuf,
    secret: PathBuf,
    /// The data key C1 had before it was erased (what a stale bundle holds).
    c1_key_before: [u8; 32],
}

fn wrap() -> KeyWrap {
    KeyWrap::from_secret(&hex::decode(SECRET_HEX).unwrap())
}

/// The scenario appended through a keyed log, as the server appends (its
/// customer data given in plain text and sealed by the log), then C1 erased
/// by its owner; the store closed, as a stopped server leaves it.
fn sealed_store() -> Sealed {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let secret = data.join("secret");
    std::fs::write(&secret, SECRET_HEX).unwrap();
    let store = data.join("store");
    let mut c1_key_before = None;
    write_sealed(
        &StoreSpec::sled(&store),
        || match DirKeyStore::open_read_only(&store, wrap()).get(C1).unwrap() {
            KeyState::Live(key) => c1_key_before = Some(*key.expose_bytes()),
            other => panic!("C1 has no live key: {other:?}"),
        },
    );
    Sealed {
        dir,
        data,
        secret,
        c1_key_before: c1_key_before.unwrap(),
    }
}

/// Writes the sealed scenario into `spec`, calls `before_erasure`, erases C1
/// and closes the log.
fn write_sealed(spec: &StoreSpec, before_erasure: impl FnOnce()) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _context = runtime.enter();
    let log = Log::open_replaying(spec, 1, Some(&wrap()), |_| {
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap();

    // One append per command, as recorded.
    let mut appends: Vec<(AppendMeta, Vec<Event>)> = Vec::new();
    for record in scenario_records() {
        let recorded = codec::decode_record(&record).unwrap();
        let mut event = recorded.event;
        in_plain(&mut event);
        let envelope = recorded.envelope;
        match appends.last_mut() {
            Some((meta, events)) if meta.command_id == envelope.command_id => events.push(event),
            _ => appends.push((
                AppendMeta {
                    command_id: envelope.command_id,
                    correlation_id: envelope.correlation_id,
                    actor: envelope.actor,
                },
                vec![event],
            )),
        }
    }
    runtime.block_on(async {
        for (meta, events) in appends {
            let mut streams: Vec<(StreamId, ExpectedVersion)> = Vec::new();
            for event in &events {
                if !streams.iter().any(|(s, _)| *s == event.stream()) {
                    streams.push((event.stream(), ExpectedVersion::Any));
                }
            }
            log.append_to_streams(streams, events, meta).await.unwrap();
        }
    });
    before_erasure();
    runtime.block_on(async {
        log.append(
            StreamId::Conversation(C1),
            ExpectedVersion::Any,
            vec![Event::ConversationErased(ConversationErased {
                conversation: C1,
                erased_by: OLIVIA_OWNER,
                reason: ErasureReason::parse(REASON).unwrap(),
            })],
            AppendMeta {
                command_id: CommandId::new(),
                correlation_id: CorrelationId::new(),
                actor: backchannel_domain::model::Actor::Staff(OLIVIA_OWNER),
            },
        )
        .await
        .unwrap();
    });
    let closing = std::thread::spawn(move || log.close());
    closing.join().unwrap().unwrap();
}

/// The scenario's customer data as the server appends it: plain text.
fn in_plain(event: &mut Event) {
    fn plain<T: Clone>(content: &mut Content<T>) {
        if let Content::Legacy(value) = content {
            *content = Content::Plain(value.clone());
        }
    }
    match event {
        Event::ConversationOpened(e) => plain(&mut e.customer),
        Event::MessagePosted(e) => plain(&mut e.body),
        Event::PrivateMessagePosted(e) => plain(&mut e.body),
        _ => {}
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn uuid(id: ConversationId) -> String {
    id.as_uuid().to_string()
}

/// Runs the tool and returns its stdout, failing on any error.
fn run(args: &[&str]) -> String {
    let out = tool(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn export_with_bundle(sealed: &Sealed) -> (PathBuf, PathBuf, String) {
    let file = sealed.dir.path().join("sealed.bclog");
    let bundle = sealed.dir.path().join("keys.json");
    let out = tool(&[
        "export",
        "--data-dir",
        s(&sealed.data),
        "--key",
        s(&sealed.secret),
        "--out",
        s(&file),
        "--keys-out",
        s(&bundle),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    (file, bundle, stderr(&out))
}

/// What the tool shows of the scenario's customer data for `args` (a source
/// and keys): audits of C1 and C2 (text and JSON lines), the company's audit,
/// the report (CSV and JSON).
fn every_view(args: &[&str]) -> Vec<(String, String)> {
    let c1 = uuid(C1);
    let c2 = uuid(C2);
    let acme = ACME.as_uuid().to_string();
    let views: Vec<(&str, Vec<&str>)> = vec![
        ("audit C1", vec!["audit", "--conversation", &c1]),
        (
            "audit C1 jsonl",
            vec!["audit", "--conversation", &c1, "--format", "jsonl"],
        ),
        ("audit C2", vec!["audit", "--conversation", &c2]),
        (
            "audit C2 jsonl",
            vec!["audit", "--conversation", &c2, "--format", "jsonl"],
        ),
        ("audit company", vec!["audit", "--company", &acme]),
        (
            "report csv",
            vec![
                "report",
                "--from",
                "2000-01-01T00:00:00Z",
                "--to",
                "2100-01-01T00:00:00Z",
            ],
        ),
        (
            "report json",
            vec![
                "report",
                "--from",
                "2000-01-01T00:00:00Z",
                "--to",
                "2100-01-01T00:00:00Z",
                "--format",
                "json",
            ],
        ),
    ];
    views
        .into_iter()
        .map(|(name, mut command)| {
            command.push("--quiet");
            command.extend_from_slice(args);
            (name.to_owned(), run(&command))
        })
        .collect()
}

/// Asserts what every view shows: C1 erased, and the live conversations in
/// plain text (`readable`) or sealed.
fn assert_views(label: &str, views: &[(String, String)], readable: bool) {
    for (name, shown) in views {
        for text in C1_TEXTS {
            assert!(
                !shown.contains(text),
                "{label}, {name}: erased {text:?} shown:\n{shown}"
            );
        }
        for text in LIVE_TEXTS {
            if shown.contains(text) && !readable {
                panic!("{label}, {name}: {text:?} shown without its key:\n{shown}");
            }
        }
        let c1 = name.contains("C1") || name.contains("company") || name.contains("report");
        let c2 = !name.contains("C1");
        if c1 {
            assert!(
                shown.contains("[erased]"),
                "{label}, {name}: C1 not shown erased:\n{shown}"
            );
        }
        if c2 && readable {
            for text in ["Eve Emailer", "Your invoice is attached."] {
                assert!(
                    shown.contains(text),
                    "{label}, {name}: {text:?} not shown with its key:\n{shown}"
                );
            }
        }
        if c2 && !readable {
            assert!(
                shown.contains("[sealed]"),
                "{label}, {name}: C2 not shown sealed without keys:\n{shown}"
            );
        }
        if readable {
            assert!(
                !shown.contains("[sealed]"),
                "{label}, {name}: sealed content with every key given:\n{shown}"
            );
        }
    }
    // The erasure itself: who, why.
    let audit_c1 = &views[0].1;
    assert!(
        audit_c1.contains(&format!("erased conversation {}", uuid(C1)))
            && audit_c1.contains(REASON),
        "{label}: the erasure is not in C1's audit:\n{audit_c1}"
    );
    assert!(
        audit_c1.contains(&OLIVIA_OWNER.as_uuid().to_string()) || audit_c1.contains("Olivia Owner"),
        "{label}: who erased C1 is not in its audit:\n{audit_c1}"
    );
}

#[test]
fn export_keys_out_writes_the_bundle_and_the_export_holds_no_plaintext() {
    let sealed = sealed_store();
    // No byte of customer data in the store itself.
    for entry in walk(&sealed.data.join("store")) {
        let bytes = std::fs::read(&entry).unwrap();
        for text in C1_TEXTS.iter().chain(&LIVE_TEXTS) {
            assert!(
                !contains(&bytes, text),
                "{text:?} in clear in {}",
                entry.display()
            );
        }
    }
    let keys_before = key_files(&sealed.data);
    let (file, bundle, said) = export_with_bundle(&sealed);
    assert_eq!(
        key_files(&sealed.data),
        keys_before,
        "the key store was written to"
    );
    assert!(
        said.contains("2 keys, 1 erased conversations") && said.contains("keep it apart"),
        "{said}"
    );
    let exported = std::fs::read(&file).unwrap();
    for text in C1_TEXTS.iter().chain(&LIVE_TEXTS) {
        assert!(
            !contains(&exported, text),
            "{text:?} in clear in the export"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&bundle).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the bundle's mode");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    assert_eq!(json["format"], "backchannel-keys");
    assert_eq!(json["version"], 1);
    assert!(json["warning"].as_str().unwrap().contains("in clear"));
    let keys = json["keys"].as_object().unwrap();
    let mut listed: Vec<&String> = keys.keys().collect();
    listed.sort();
    let mut live = [uuid(C2), uuid(C3)];
    live.sort();
    assert_eq!(listed, live.iter().collect::<Vec<_>>());
    for key in keys.values() {
        assert_eq!(hex::decode(key.as_str().unwrap()).unwrap().len(), 32);
    }
    assert_eq!(json["erased"], serde_json::json!([uuid(C1)]));
    assert_eq!(json["head"]["position"], scenario_records().len() + 1);
    // No trace of C1's old key.
    assert!(
        !std::fs::read_to_string(&bundle)
            .unwrap()
            .contains(&hex::encode(sealed.c1_key_before))
    );

    // Never overwritten.
    let again = tool(&[
        "export",
        "--data-dir",
        s(&sealed.data),
        "--key",
        s(&sealed.secret),
        "--out",
        s(&sealed.dir.path().join("again.bclog")),
        "--keys-out",
        s(&bundle),
    ]);
    assert_eq!(code(&again), 3, "{}", stderr(&again));
    assert!(stderr(&again).contains("never overwritten"));
    assert!(!sealed.dir.path().join("again.bclog").exists());
}

#[test]
fn keys_out_is_refused_without_the_servers_secret_or_a_store() {
    let sealed = sealed_store();
    let bundle = sealed.dir.path().join("keys.json");
    let out = tool(&[
        "export",
        "--data-dir",
        s(&sealed.data),
        "--out",
        s(&sealed.dir.path().join("x.bclog")),
        "--keys-out",
        s(&bundle),
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--keys-out needs --key"),
        "{}",
        stderr(&out)
    );
    assert!(!bundle.exists());
    assert!(!sealed.dir.path().join("x.bclog").exists());

    // Another server's secret does not unwrap the store's keys.
    let out = tool(&[
        "export",
        "--data-dir",
        s(&sealed.data),
        "--key",
        "another server's secret, long enough to be one",
        "--out",
        s(&sealed.dir.path().join("y.bclog")),
        "--keys-out",
        s(&bundle),
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("this server's secret"),
        "{}",
        stderr(&out)
    );
    assert!(!bundle.exists());

    // Nor on a reading command: refused before any replay.
    let out = tool(&[
        "audit",
        "--conversation",
        &uuid(C2),
        "--data-dir",
        s(&sealed.data),
        "--key",
        "another server's secret, long enough to be one",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("this server's secret"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());

    // An export holds no keys to write.
    let (file, _, _) = export_with_bundle(&sealed);
    let out = tool(&[
        "export",
        "--file",
        s(&file),
        "--key",
        s(&sealed.secret),
        "--out",
        s(&sealed.dir.path().join("z.bclog")),
        "--keys-out",
        s(&sealed.dir.path().join("z.json")),
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("holds no keys"), "{}", stderr(&out));
}

#[test]
fn every_view_shows_erased_content_erased_and_live_content_only_with_keys() {
    let sealed = sealed_store();
    let (file, bundle, _) = export_with_bundle(&sealed);

    // The export without keys: structure only.
    let views = every_view(&["--file", s(&file)]);
    assert_views("file without keys", &views, false);
    // The stopped server's store without its secret: the same.
    let views = every_view(&["--data-dir", s(&sealed.data)]);
    assert_views("store without keys", &views, false);

    // With the bundle: the live conversations read, C1 still erased.
    let views = every_view(&["--file", s(&file), "--keys", s(&bundle)]);
    assert_views("file with the bundle", &views, true);
    let views = every_view(&["--data-dir", s(&sealed.data), "--keys", s(&bundle)]);
    assert_views("store with the bundle", &views, true);
    // With the store's own keys (the server's secret), which are only read:
    // even a key file left by an interrupted creation, which a server would
    // shred on open, stays.
    let left_over = sealed
        .data
        .join("store/keys/0000000000007000800000000000ffff.tmp");
    std::fs::write(&left_over, [7u8; 73]).unwrap();
    let keys_before = key_files(&sealed.data);
    let views = every_view(&["--data-dir", s(&sealed.data), "--key", s(&sealed.secret)]);
    assert_views("store with its keys", &views, true);
    assert_eq!(
        key_files(&sealed.data),
        keys_before,
        "the key store was written to"
    );

    // rebuild and access read through the same sources and keys.
    for args in [
        vec!["rebuild", "--file", s(&file), "--keys", s(&bundle)],
        vec!["access", "--conversation", &uuid(C1), "--file", s(&file)],
        vec![
            "access",
            "--staff",
            &OLIVIA_OWNER.as_uuid().to_string(),
            "--data-dir",
            s(&sealed.data),
            "--key",
            s(&sealed.secret),
        ],
    ] {
        let shown = run(&args);
        for text in C1_TEXTS {
            assert!(!shown.contains(text), "{args:?}: {shown}");
        }
    }
}

#[test]
fn a_key_held_from_before_the_erasure_still_shows_erased() {
    let sealed = sealed_store();
    let (file, bundle, _) = export_with_bundle(&sealed);
    // A bundle written before C1 was erased: C1's key live in it.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    json["keys"][uuid(C1)] = serde_json::Value::String(hex::encode(sealed.c1_key_before));
    json["erased"] = serde_json::json!([]);
    let stale = sealed.dir.path().join("stale.json");
    std::fs::write(&stale, serde_json::to_string(&json).unwrap()).unwrap();
    let views = every_view(&["--file", s(&file), "--keys", s(&stale)]);
    assert_views("file with a stale bundle", &views, true);
}

#[test]
fn a_bundle_that_is_not_one_is_refused() {
    let sealed = sealed_store();
    let (file, bundle, _) = export_with_bundle(&sealed);
    let text = std::fs::read_to_string(&bundle).unwrap();
    let cases = [
        ("not json", "this is not a bundle".to_owned()),
        (
            "format",
            text.replace("\"backchannel-keys\"", "\"something-else\""),
        ),
        ("version", text.replace("\"version\": 1", "\"version\": 2")),
        (
            "key",
            text.replacen("\"keys\": {\n    \"", "\"keys\": {\n    \"zz", 1),
        ),
    ];
    for (name, body) in cases {
        let bad = sealed
            .dir
            .path()
            .join(format!("bad-{}.json", name.replace(' ', "-")));
        std::fs::write(&bad, body).unwrap();
        let out = tool(&[
            "audit",
            "--conversation",
            &uuid(C2),
            "--file",
            s(&file),
            "--keys",
            s(&bad),
        ]);
        assert_eq!(code(&out), 6, "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains("--keys"), "{name}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{name}");
    }
    // --key opens a store's keys; an export has none.
    let out = tool(&[
        "audit",
        "--conversation",
        &uuid(C2),
        "--file",
        s(&file),
        "--key",
        s(&sealed.secret),
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--keys"), "{}", stderr(&out));
}

#[test]
fn a_postgres_log_is_read_with_its_data_keys_table_never_written() {
    let cluster = PgCluster::start();
    // The default database: the one `psql` asks.
    let url = cluster.url();
    write_sealed(&StoreSpec::parse(&url).unwrap(), || {});
    let keys_table = "SELECT count(*), count(wrapped) FROM backchannel.data_keys";
    let before = cluster.psql(keys_table);
    assert_eq!(before.trim(), "3|2", "three keys, C1's destroyed");
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET_HEX).unwrap();

    let views = every_view(&["--store", &url]);
    assert_views("postgres without keys", &views, false);
    let views = every_view(&["--store", &url, "--key", s(&secret)]);
    assert_views("postgres with its keys", &views, true);

    let file = dir.path().join("pg.bclog");
    let bundle = dir.path().join("pg-keys.json");
    let out = tool(&[
        "export",
        "--store",
        &url,
        "--key",
        s(&secret),
        "--out",
        s(&file),
        "--keys-out",
        s(&bundle),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 keys, 1 erased conversations"),
        "{}",
        stderr(&out)
    );
    let exported = std::fs::read(&file).unwrap();
    for text in C1_TEXTS.iter().chain(&LIVE_TEXTS) {
        assert!(
            !contains(&exported, text),
            "{text:?} in clear in the export"
        );
    }
    let views = every_view(&["--file", s(&file), "--keys", s(&bundle)]);
    assert_views("postgres export with its bundle", &views, true);
    assert_eq!(
        cluster.psql(keys_table),
        before,
        "the key table was written to"
    );
}

/// The store's key files: names, bytes and modification times.
fn key_files(data: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut files: Vec<_> = walk(&data.join("store").join("keys"))
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
            (path, bytes, modified)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 3, "C1's tombstone, C2's and C3's keys");
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
