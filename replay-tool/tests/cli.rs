#![allow(clippy::unwrap_used)]

//! The real `replay-tool` binary against the scenario log (tests/support):
//! time travel, report permissions, round trip, tampering, bad input, goldens.

mod support;

use backchannel_eventlog::SledEventLog;
use serde_json::Value;
use support::*;

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `access --conversation C1 --at T` as staff id → rule (or "none").
fn who_can_view_c1(scenario: &Scenario, at: &str) -> Vec<(String, String)> {
    let c1 = C1.to_string();
    let out = tool(&[
        "access",
        "--file",
        s(&scenario.file),
        "--conversation",
        &c1,
        "--at",
        at,
        "--format",
        "jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    json_lines(&stdout(&out))
        .into_iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["rule"].as_str().unwrap_or("none").to_owned(),
            )
        })
        .collect()
}

fn rule_of(all: &[(String, String)], name: &str) -> String {
    all.iter()
        .find(|(n, _)| n == name)
        .map(|(_, r)| r.clone())
        .unwrap_or_else(|| panic!("{name} not listed in {all:?}"))
}

#[test]
fn time_travel_access_follows_the_rules() {
    let scenario = scenario();
    let check = |at: &str, expect: &[(&str, &str)]| {
        let all = who_can_view_c1(&scenario, at);
        assert_eq!(all.len(), 7, "every staff member is listed at {at}");
        for (name, rule) in expect {
            assert_eq!(rule_of(&all, name), *rule, "{name} at {at}");
        }
    };
    // Private and queued in a broadcast group: the members see it (R6).
    check(
        T_QUEUED,
        &[
            ("Olivia Owner", "R1"),
            ("Adam Admin", "R1"),
            ("Sue Supervisor", "R2"),
            ("Ann Agent", "R6"),
            ("Bob Agent", "R6"),
            ("Cat Historian", "R6"),
            ("Dan Agent", "none"),
        ],
    );
    // Assignment takes sight away from the other members.
    check(
        T_ASSIGNED,
        &[
            ("Ann Agent", "R3"),
            ("Bob Agent", "none"),
            ("Cat Historian", "none"),
        ],
    );
    // Making it public gives it back (R5); private again takes it away.
    check(
        T_MADE_PUBLIC,
        &[("Bob Agent", "R5"), ("Cat Historian", "R5")],
    );
    check(T_PRIVATE_AGAIN, &[("Bob Agent", "none")]);
    // The company switch off: every conversation behaves as public.
    check(T_SWITCH_OFF, &[("Bob Agent", "R5"), ("Dan Agent", "none")]);
    check(T_SWITCH_ON, &[("Bob Agent", "none")]);
    // Closed: the ENQUIRY_HISTORY holder of the group sees it (R4), others not.
    check(
        T_CLOSED,
        &[
            ("Cat Historian", "R4"),
            ("Bob Agent", "none"),
            ("Ann Agent", "R3"),
            ("Sue Supervisor", "R2"),
        ],
    );
}

#[test]
fn access_by_position_and_for_a_staff_member() {
    let scenario = scenario();
    let bob = BOB_AGENT.to_string();
    // Before anything: the staff member does not exist yet.
    let out = tool(&[
        "access",
        "--file",
        s(&scenario.file),
        "--staff",
        &bob,
        "--at-position",
        "0",
    ]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    // At the end: Bob sees the queued private C3 (R6) and not C1 or C2.
    let out = tool(&[
        "access",
        "--data-dir",
        s(&scenario.store),
        "--staff",
        &bob,
        "--format",
        "jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    let seen: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["conversation_id"].as_str().unwrap(),
                l["rule"].as_str().unwrap(),
            )
        })
        .collect();
    let c3 = C3.to_string();
    assert_eq!(seen, vec![(c3.as_str(), "R6")]);
}

fn report(scenario: &Scenario, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "report",
        "--file",
        s(&scenario.file),
        "--from",
        "2025-03-01T00:00:00Z",
        "--to",
        "2025-03-02T00:00:00Z",
    ];
    args.extend_from_slice(extra);
    tool(&args)
}

fn report_conversations(csv: &str) -> Vec<String> {
    let mut ids: Vec<String> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|id| id.len() == 36)
        .map(str::to_owned)
        .collect();
    ids.dedup();
    ids
}

#[test]
fn report_permissions_follow_section_4() {
    let scenario = scenario();
    let owner = OLIVIA_OWNER.to_string();
    let out = report(&scenario, &["--as", &owner]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        report_conversations(&stdout(&out)),
        vec![C1.to_string(), C2.to_string()]
    );
    // The supervisor of Support: only Support's conversations.
    let sue = SUE_SUPERVISOR.to_string();
    let out = report(&scenario, &["--as", &sue]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(report_conversations(&stdout(&out)), vec![C1.to_string()]);
    // ENQUIRY_HISTORY in Support: the same.
    let cat = CAT_HISTORY.to_string();
    let out = report(&scenario, &["--as", &cat, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["conversation_id"] == C1.to_string()));
    assert_eq!(
        rows.iter().filter(|r| r["visibility"] == "PRIVATE").count(),
        2,
        "private messages are included and marked"
    );
    // Agents without ENQUIRY_HISTORY are refused, with nothing on stdout.
    for agent in [BOB_AGENT, DAN_AGENT] {
        let out = report(&scenario, &["--as", &agent.to_string()]);
        assert_eq!(code(&out), 4, "{}", stderr(&out));
        assert!(stdout(&out).is_empty());
        assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    }
    // A group the supervisor does not supervise is refused too.
    let sales = SALES.to_string();
    let out = report(&scenario, &["--as", &sue, "--group", &sales]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    // Unknown viewer or group: not found.
    let out = report(&scenario, &["--as", "01900000-0000-7000-8000-000000000099"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let out = report(
        &scenario,
        &["--group", "01900000-0000-7000-8000-000000000099"],
    );
    assert_eq!(code(&out), 5, "{}", stderr(&out));
}

#[test]
fn export_import_export_is_byte_identical_and_verifies() {
    let scenario = scenario();
    let imported = scenario.dir.path().join("imported");
    let out = tool(&[
        "import",
        "--file",
        s(&scenario.file),
        "--into",
        s(&imported),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The imported store opens, verifies and keeps every envelope field.
    let log = SledEventLog::open(&imported).unwrap();
    assert_eq!(
        log.verify().unwrap().events,
        scenario_records().len() as u64
    );
    log.close().unwrap();
    let again = scenario.dir.path().join("again.bclog");
    let out = tool(&["export", "--data-dir", s(&imported), "--out", s(&again)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&scenario.file).unwrap(),
        std::fs::read(&again).unwrap()
    );
    // Exporting an export (file to file) is the identity too.
    let third = scenario.dir.path().join("third.bclog");
    let out = tool(&["export", "--file", s(&again), "--out", s(&third)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&scenario.file).unwrap(),
        std::fs::read(&third).unwrap()
    );
    // Importing into a store that holds events is refused.
    let out = tool(&[
        "import",
        "--file",
        s(&scenario.file),
        "--into",
        s(&imported),
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // The source store was not written to: it still verifies, no copy left in it.
    let out = tool(&["verify", "--data-dir", s(&scenario.store)]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Byte offset of the record at `position` in an export (after its length).
fn record_offset(bytes: &[u8], position: u64) -> (usize, usize) {
    // File format 1's header is 52 bytes; format 2 adds the 32-byte head MAC.
    let mut offset = if bytes[8..10] == [0, 1] { 52 } else { 84 };
    for p in 1.. {
        let len = u32::from_be_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        if p == position {
            return (offset + 4, len);
        }
        offset += 4 + len;
    }
    unreachable!()
}

#[test]
fn verify_catches_one_tampered_byte() {
    let scenario = scenario();
    let original = std::fs::read(&scenario.file).unwrap();
    let total = scenario_records().len() as u64;
    for (position, name) in [(25u64, "a middle record"), (total, "the last record")] {
        let (start, len) = record_offset(&original, position);
        // The last byte of the payload: the record still decodes, the chain breaks.
        let mut tampered = original.clone();
        tampered[start + len - 2] ^= 0x01;
        let path = scenario
            .dir
            .path()
            .join(format!("tampered-{position}.bclog"));
        std::fs::write(&path, &tampered).unwrap();
        let out = tool(&["verify", "--file", s(&path)]);
        assert_eq!(code(&out), 1, "{name}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(message.contains("FAILED"), "{message}");
        let expected = if position == total {
            position
        } else {
            position + 1
        };
        assert!(
            message.contains(&format!("position {expected}")),
            "{name}: {message}"
        );
        // Import refuses it and writes nothing.
        let into = scenario.dir.path().join(format!("into-{position}"));
        let out = tool(&["import", "--file", s(&path), "--into", s(&into)]);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(
            !into.exists(),
            "a refused import created {}",
            into.display()
        );
        // Reports over it fail instead of printing a doctored history.
        let out = tool(&[
            "report",
            "--file",
            s(&path),
            "--from",
            "2025-01-01T00:00:00Z",
            "--to",
            "2026-01-01T00:00:00Z",
        ]);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        // Every command fails, also one whose replay stops before the
        // tampered record (the first pass of a command checks the whole file).
        let c1 = C1.to_string();
        let company = ACME.to_string();
        for args in [
            vec!["rebuild"],
            vec!["audit", "--company", &company],
            vec!["access", "--conversation", &c1, "--at-position", "20"],
            vec!["export", "--out", "-"],
        ] {
            let mut all = args.clone();
            all.extend(["--file", s(&path)]);
            let out = tool(&all);
            assert_eq!(code(&out), 1, "{name}, {args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(&format!("position {expected}")),
                "{name}, {args:?}: {}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn bad_input_gives_a_clear_message_and_a_non_zero_exit() {
    let scenario = scenario();
    let dir = scenario.dir.path();
    let original = std::fs::read(&scenario.file).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let truncated = write("truncated.bclog", &original[..original.len() / 2]);
    let no_trailer = write("no-trailer.bclog", &original[..original.len() - 40]);
    let empty = write("empty.bclog", b"");
    let foreign = write("foreign.bclog", b"PK\x03\x04 this is a zip file, not a log");
    let mut future = original.clone();
    future[9] = 9;
    let future = write("future.bclog", &future);
    let new_store = dir.join("new");
    // Neither a store nor a data directory holding one (the scenario's
    // directory holds its store, so it is a data directory).
    let not_a_store = dir.join("not-a-store");
    std::fs::create_dir(&not_a_store).unwrap();
    let cases: Vec<(&str, Vec<&str>, i32, &str)> = vec![
        (
            "truncated",
            vec!["verify", "--file", s(&truncated)],
            1,
            "truncated",
        ),
        (
            "no trailer",
            vec!["verify", "--file", s(&no_trailer)],
            1,
            "truncated",
        ),
        ("empty", vec!["verify", "--file", s(&empty)], 6, "empty"),
        (
            "foreign",
            vec!["verify", "--file", s(&foreign)],
            6,
            "not a Backchannel log export",
        ),
        (
            "future version",
            vec!["verify", "--file", s(&future)],
            6,
            "version 9",
        ),
        (
            "missing file",
            vec!["verify", "--file", "/nonexistent/x.bclog"],
            3,
            "No such file",
        ),
        (
            "missing store",
            vec!["verify", "--data-dir", "/nonexistent/store"],
            3,
            "no such directory",
        ),
        (
            "not a store",
            vec!["verify", "--data-dir", s(&not_a_store)],
            3,
            "not a Backchannel store",
        ),
        ("no source", vec!["verify"], 2, "required"),
        (
            "two sources",
            vec!["verify", "--file", "a", "--data-dir", "b"],
            2,
            "cannot be used with",
        ),
        (
            "unknown flag",
            vec!["verify", "--frobnicate"],
            2,
            "unexpected argument",
        ),
        (
            "unknown command",
            vec!["frobnicate"],
            2,
            "unrecognized subcommand",
        ),
        (
            "server not reachable",
            vec!["verify", "--server", "http://127.0.0.1:1", "--token", "t"],
            3,
            "cannot connect",
        ),
        (
            "malformed id",
            vec!["audit", "--file", s(&scenario.file), "--conversation", "42"],
            2,
            "not a valid conversation id",
        ),
        (
            "unknown conversation",
            vec![
                "audit",
                "--file",
                s(&scenario.file),
                "--conversation",
                "01900000-0000-7000-8000-000000000099",
            ],
            5,
            "no conversation",
        ),
        (
            "unknown staff",
            vec![
                "access",
                "--file",
                s(&scenario.file),
                "--staff",
                "01900000-0000-7000-8000-000000000099",
            ],
            5,
            "does not exist",
        ),
        (
            "bad time",
            vec![
                "access",
                "--file",
                s(&scenario.file),
                "--staff",
                "01900000-0000-7000-8000-000000000099",
                "--at",
                "yesterday",
            ],
            2,
            "RFC 3339",
        ),
        (
            "empty range",
            vec![
                "report",
                "--file",
                s(&scenario.file),
                "--from",
                "2025-03-02T00:00:00Z",
                "--to",
                "2025-03-01T00:00:00Z",
            ],
            2,
            "before",
        ),
        (
            "truncated report",
            vec![
                "report",
                "--file",
                s(&truncated),
                "--from",
                "2025-03-01T00:00:00Z",
                "--to",
                "2025-03-02T00:00:00Z",
            ],
            1,
            "truncated",
        ),
        (
            "import a foreign file",
            vec!["import", "--file", s(&foreign), "--into", s(&new_store)],
            6,
            "not a Backchannel log export",
        ),
    ];
    for (name, args, expected, needle) in cases {
        let out = tool(&args);
        let message = stderr(&out);
        assert_eq!(code(&out), expected, "{name}: {message}");
        assert!(
            message.contains(needle),
            "{name}: {message:?} lacks {needle:?}"
        );
        assert!(!message.contains("panicked"), "{name}: {message}");
    }
    assert!(!dir.join("new").exists());
}

#[test]
fn a_running_servers_store_is_in_use() {
    let scenario = scenario();
    let log = SledEventLog::open(&scenario.store).unwrap();
    let out = tool_once(&["verify", "--data-dir", s(&scenario.store)]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("in use by a running server"),
        "{}",
        stderr(&out)
    );
    log.close().unwrap();
}

#[test]
fn every_command_has_help_with_the_exit_codes() {
    for command in [
        "export", "import", "verify", "rebuild", "audit", "access", "report", "generate", "bench",
    ] {
        let out = tool(&[command, "--help"]);
        assert!(out.status.success(), "{command}");
        assert!(stdout(&out).contains("Exit codes"), "{command}");
    }
    let out = tool(&["--help"]);
    assert!(stdout(&out).contains("Exit codes"));
}

#[test]
fn goldens() {
    let scenario = scenario();
    let file = s(&scenario.file);
    let run = |args: &[&str]| {
        let out = tool(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let (c1, ann, acme) = (C1.to_string(), ANN_AGENT.to_string(), ACME.to_string());
    let (cat, owner, sue) = (
        CAT_HISTORY.to_string(),
        OLIVIA_OWNER.to_string(),
        SUE_SUPERVISOR.to_string(),
    );
    golden(
        "audit-conversation-c1.txt",
        &run(&["audit", "--file", file, "--conversation", &c1]),
    );
    golden(
        "audit-staff-ann.jsonl",
        &run(&[
            "audit", "--file", file, "--staff", &ann, "--format", "jsonl",
        ]),
    );
    golden(
        "audit-company.txt",
        &run(&["audit", "--file", file, "--company", &acme]),
    );
    let mut access = String::new();
    for at in [
        T_QUEUED,
        T_ASSIGNED,
        T_MADE_PUBLIC,
        T_PRIVATE_AGAIN,
        T_SWITCH_OFF,
        T_SWITCH_ON,
        T_CLOSED,
    ] {
        access.push_str(&run(&[
            "access",
            "--file",
            file,
            "--conversation",
            &c1,
            "--at",
            at,
        ]));
    }
    golden("access-conversation-c1.txt", &access);
    golden(
        "access-staff-cat.txt",
        &run(&["access", "--file", file, "--staff", &cat]),
    );
    let report = |viewer: &str, format: &str| {
        run(&[
            "report",
            "--file",
            file,
            "--from",
            "2025-03-01T00:00:00Z",
            "--to",
            "2025-03-02T00:00:00Z",
            "--as",
            viewer,
            "--format",
            format,
        ])
    };
    golden("report-owner.csv", &report(&owner, "csv"));
    golden("report-owner.json", &report(&owner, "json"));
    golden("report-supervisor.csv", &report(&sue, "csv"));
    // The store and the file give the same bytes.
    let from_store = run(&[
        "report",
        "--data-dir",
        s(&scenario.store),
        "--from",
        "2025-03-01T00:00:00Z",
        "--to",
        "2025-03-02T00:00:00Z",
        "--as",
        &owner,
        "--format",
        "json",
    ]);
    assert_eq!(from_store, report(&owner, "json"));
}
