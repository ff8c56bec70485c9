#![allow(clippy::unwrap_used)]

//! `replay-tool audit --access-log`: the read audit (SPEC section 12) of a
//! conversation, a staff member or a company, from the log's `ContentOpened`
//! entries; the ordinary audit of a conversation does not list them.

mod support;

use backchannel_domain::events::{ContentOpened, ContentPath, Event};
use backchannel_domain::model::Actor;
use backchannel_domain::visibility::Rule;
use backchannel_eventlog::SledEventLog;
use backchannel_projections::time::parse_rfc3339;
use support::*;

fn store_with_reads() -> (tempfile::TempDir, String) {
    let mut rec = scenario_recorder();
    let opened = |staff, conversation, rule, path| {
        Event::ContentOpened(ContentOpened {
            company: ACME,
            conversation,
            staff,
            rule,
            path,
            at: 1_740_830_000_000_000,
        })
    };
    let at = parse_rfc3339("2025-03-01T13:00:00Z").unwrap();
    rec.record(
        at,
        Actor::Staff(ANN_AGENT),
        &[opened(ANN_AGENT, C1, Rule::R3, ContentPath::Timeline)],
    )
    .unwrap();
    rec.record(
        at,
        Actor::Staff(SUE_SUPERVISOR),
        &[
            opened(SUE_SUPERVISOR, C1, Rule::R2, ContentPath::Report),
            opened(SUE_SUPERVISOR, C3, Rule::R2, ContentPath::Timeline),
        ],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let records = rec
        .take_records()
        .into_iter()
        .map(Ok::<_, std::convert::Infallible>);
    let log = SledEventLog::import(&store, records).unwrap();
    log.verify().unwrap();
    log.close().unwrap();
    let store = s(&store).to_owned();
    (dir, store)
}

#[test]
fn audit_access_log_lists_who_opened_what() {
    let (_dir, store) = store_with_reads();
    let c1 = C1.to_string();
    let out = tool(&[
        "audit",
        "--data-dir",
        &store,
        "--conversation",
        &c1,
        "--access-log",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("Ann Agent") && lines[0].contains("rule R3"),
        "{text}"
    );
    assert!(lines[0].contains("timeline"), "{text}");
    assert!(
        lines[1].contains("Sue Supervisor") && lines[1].contains("report"),
        "{text}"
    );

    // A staff member: what they opened, as JSON Lines.
    let sue = SUE_SUPERVISOR.to_string();
    let out = tool(&[
        "audit",
        "--data-dir",
        &store,
        "--staff",
        &sue,
        "--access-log",
        "--format",
        "jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains(&C3.to_string()), "{text}");
    assert!(text.contains("ContentOpened"), "{text}");

    // The conversation's ordinary audit is its own history, without reads.
    let out = tool(&["audit", "--data-dir", &store, "--conversation", &c1]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("opened the content"),
        "{}",
        stdout(&out)
    );
}
