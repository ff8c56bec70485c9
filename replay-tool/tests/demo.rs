#![allow(clippy::unwrap_used)]

//! The demo company as a deterministic log, `fixtures/demo/demo.bclog`: the
//! steps of `backchannel_api::demo::plan()` (what `serve --demo` runs through
//! the desk) recorded by `domain::decide` with fixed times (step *n* at
//! 2025-03-03T09:00:00Z + *n* minutes) and ids, exported as a portable file.
//!
//! Re-bless it and the demo goldens (`fixtures/golden/demo/`) after a change
//! to the demo or to an output, and review the diff:
//!
//! ```sh
//! BLESS_GOLDEN=1 cargo test -p backchannel-replay-tool --test demo
//! ```
//!
//! Tests: the committed log is what the plan records; replayed into
//! `domain::State` it equals the state `serve --demo` builds; goldens of
//! `audit`, `access` and `report`; time travel over it.

mod support;

use std::path::{Path, PathBuf};

use backchannel_domain::State;
use backchannel_domain::values::Content;
use backchannel_eventlog::RecordedAt;
use backchannel_eventlog::portable::{PortableReader, PortableWriter};
use backchannel_projections::time::parse_rfc3339;
use backchannel_replay_tool::recorder::Recorder;
use backchannel_testkit::demo::{ALICE, BOB, CASEY, COMPANY, GALE, HANA, OWNER, SUPERVISOR};
use backchannel_testkit::{TestServer, demo_config};
use serde_json::Value;
use support::*;

fn demo_log_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/demo/demo.bclog")
}

/// The demo's plan recorded with fixed times and ids, as a portable file.
fn demo_log_bytes() -> Vec<u8> {
    let base = parse_rfc3339("2025-03-03T09:00:00Z").unwrap().as_micros();
    let mut recorder = Recorder::new(0xDE70);
    for (n, step) in backchannel_api::demo::plan().unwrap().iter().enumerate() {
        let at = RecordedAt::from_micros(base + (n as i64 + 1) * 60_000_000);
        recorder.run(at, step.actor, &step.command).unwrap();
    }
    let records = recorder.take_records();
    let head_hash = backchannel_eventlog::codec::record_hash(records.last().unwrap());
    let mut writer = PortableWriter::new(Vec::new(), records.len() as u64, head_hash).unwrap();
    for record in &records {
        writer.push(record).unwrap();
    }
    writer.finish().unwrap().0
}

#[test]
fn the_committed_demo_log_is_what_the_demo_plan_records() {
    let bytes = demo_log_bytes();
    let path = demo_log_path();
    if blessing() {
        std::fs::write(&path, &bytes).unwrap();
        return;
    }
    let committed = std::fs::read(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with BLESS_GOLDEN=1", path.display()));
    assert!(
        committed == bytes,
        "fixtures/demo/demo.bclog is stale; re-bless with BLESS_GOLDEN=1 and review the goldens"
    );
    let out = tool(&["verify", "--file", s(&path)]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_demo_log_replays_to_the_state_serve_demo_builds() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut server = runtime.block_on(TestServer::spawn_with(demo_config(dir.path())));
    let live = server.desk.models().state().clone();
    runtime.block_on(server.stop());

    let file = std::fs::File::open(demo_log_path()).unwrap();
    let mut replayed = State::default();
    for recorded in PortableReader::new(std::io::BufReader::new(file)).unwrap() {
        replayed.apply(&recorded.unwrap().event);
    }
    // The server seals customer data (its state holds it as `Plain`); the
    // committed demo log is a plaintext-era log (`Legacy`, the recorder's
    // way). Apart from that, the same state.
    let mut live_in_clear = live.clone();
    for conversation in live_in_clear.conversations.values_mut() {
        assert!(
            matches!(conversation.customer, Content::Plain(_)),
            "{:?}",
            conversation.customer
        );
        if let Content::Plain(name) = &conversation.customer {
            conversation.customer = Content::Legacy(name.clone());
        }
    }
    assert_eq!(replayed, live_in_clear);
}

fn run_ok(args: &[&str]) -> String {
    let out = tool(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Runs a command over the demo log.
fn demo(args: &[&str]) -> String {
    let path = demo_log_path();
    let mut all = args.to_vec();
    all.extend(["--file", s(&path)]);
    run_ok(&all)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Positions of `event_type` in the audit trail of a subject.
fn positions(subject: &str, id: &str, event_type: &str) -> Vec<u64> {
    json_lines(&demo(&["audit", subject, id, "--format", "jsonl"]))
        .iter()
        .filter(|l| l["event_type"] == event_type)
        .map(|l| l["position"].as_u64().unwrap())
        .collect()
}

/// `access --conversation C --at-position P`: staff id → rule or "none".
fn rules_at(conversation: &str, position: u64) -> Vec<(String, String)> {
    let p = position.to_string();
    json_lines(&demo(&[
        "access",
        "--conversation",
        conversation,
        "--at-position",
        &p,
        "--format",
        "jsonl",
    ]))
    .into_iter()
    .map(|l| {
        (
            l["staff_id"].as_str().unwrap().to_owned(),
            l["rule"].as_str().unwrap_or("none").to_owned(),
        )
    })
    .collect()
}

fn rule(all: &[(String, String)], staff: &str) -> String {
    all.iter()
        .find(|(s, _)| s == staff)
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| panic!("{staff} not listed in {all:?}"))
}

#[test]
fn time_travel_over_the_demo_log_follows_the_rules() {
    let assigned = positions("--conversation", CASEY, "ConversationAssigned")[0];
    let privacy = positions("--conversation", CASEY, "ConversationPrivacyChanged");
    let switch = positions("--company", COMPANY, "PrivacySettingsChanged");
    let closed = positions("--conversation", HANA, "ConversationClosed")[0];
    assert_eq!(
        (privacy.len(), switch.len()),
        (2, 3),
        "{privacy:?} {switch:?}"
    );
    let check = |conversation: &str, position: u64, expect: &[(&str, &str)]| {
        let all = rules_at(conversation, position);
        assert_eq!(all.len(), 6, "every staff member is listed at {position}");
        for (staff, expected) in expect {
            assert_eq!(
                rule(&all, staff),
                *expected,
                "{staff} at position {position}"
            );
        }
    };
    // Queued and private in a broadcast group: its members see it (R6).
    check(
        CASEY,
        assigned - 1,
        &[
            (OWNER, "R1"),
            (SUPERVISOR, "R2"),
            (ALICE, "R6"),
            (BOB, "R6"),
        ],
    );
    // Assignment takes sight away from the other members.
    check(CASEY, assigned, &[(ALICE, "R3"), (BOB, "none")]);
    // Making it public gives it back; private again takes it away.
    check(CASEY, privacy[0], &[(BOB, "R5")]);
    check(CASEY, privacy[1], &[(BOB, "none")]);
    // The company switch: off, every conversation behaves as public; on again.
    check(CASEY, switch[1], &[(BOB, "R5"), (ALICE, "R3")]);
    check(CASEY, switch[2], &[(BOB, "none")]);
    // Closing: the ENQUIRY_HISTORY holder of the group sees it (R4).
    check(HANA, closed - 1, &[(BOB, "none")]);
    check(HANA, closed, &[(BOB, "R4"), (SUPERVISOR, "none")]);
    // Opened while the switch was off, it stays public after it is on again.
    let end = rules_at(GALE, u64::MAX);
    assert_eq!(rule(&end, "01900000-0000-7000-8000-000000005006"), "R5");
}

#[test]
fn demo_goldens() {
    golden(
        "demo/audit-company.txt",
        &demo(&["audit", "--company", COMPANY]),
    );
    golden(
        "demo/audit-conversation-casey.txt",
        &demo(&["audit", "--conversation", CASEY]),
    );
    golden(
        "demo/audit-staff-bob.jsonl",
        &demo(&["audit", "--staff", BOB, "--format", "jsonl"]),
    );
    // Casey: queued, assigned, made public, company switch off, switch on.
    let at = |at: &&str| demo(&["access", "--conversation", CASEY, "--at", at]);
    let times = [
        "2025-03-03T09:16:30Z",
        "2025-03-03T09:17:00Z",
        "2025-03-03T09:32:00Z",
        "2025-03-03T09:34:00Z",
        "2025-03-03T09:38:00Z",
    ];
    golden(
        "demo/access-conversation-casey.txt",
        &times.iter().map(at).collect::<String>(),
    );
    // Bob: before and after Frankie's close, the switch off, Hana's close.
    let bob = |at: &&str| demo(&["access", "--staff", BOB, "--at", at]);
    let times = [
        "2025-03-03T09:24:00Z",
        "2025-03-03T09:31:00Z",
        "2025-03-03T09:36:00Z",
        "2025-03-03T09:42:00Z",
        "2025-03-03T09:43:00Z",
    ];
    golden(
        "demo/access-staff-bob.txt",
        &times.iter().map(bob).collect::<String>(),
    );
    let report = |format: &str, viewer: &str| {
        demo(&[
            "report",
            "--from",
            "2025-03-03T00:00:00Z",
            "--to",
            "2025-03-04T00:00:00Z",
            "--format",
            format,
            "--as",
            viewer,
        ])
    };
    golden("demo/report-owner.csv", &report("csv", OWNER));
    golden("demo/report-owner.json", &report("json", OWNER));
    golden("demo/report-bob.csv", &report("csv", BOB));
    golden("demo/report-supervisor.csv", &report("csv", SUPERVISOR));
}
