#![allow(clippy::unwrap_used)]

//! What a new user meets first: `--data-dir` takes the server's data
//! directory, progress moves during the store copy, the verify and each
//! labelled report pass, and figures are human-formatted.

mod support;

use backchannel_projections::report::{REPORT_PASSES, ReportFormat, ReportRequest, write_report};
use backchannel_projections::time::parse_rfc3339;
use backchannel_replay_tool::commands::{rate, verify};
use backchannel_replay_tool::progress::Progress;
use backchannel_replay_tool::source::{Source, Tracked};
use support::*;

#[test]
fn data_dir_takes_the_servers_data_directory_or_its_store() {
    let scenario = scenario();
    // The scenario's store is `<dir>/store`, as a server lays out its data dir.
    let data = scenario.store.parent().unwrap();
    let by_data_dir = tool(&["verify", "--data-dir", s(data)]);
    assert!(by_data_dir.status.success(), "{}", stderr(&by_data_dir));
    let by_store = tool(&["verify", "--data-dir", s(&scenario.store)]);
    assert!(by_store.status.success(), "{}", stderr(&by_store));
    let summary = |out: &std::process::Output| stdout(out).split(" (").next().unwrap().to_owned();
    assert_eq!(summary(&by_data_dir), summary(&by_store));

    // Neither a store nor a data directory holding one: a clear refusal.
    let empty = tempfile::tempdir().unwrap();
    let out = tool(&["verify", "--data-dir", s(empty.path())]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nor a server's data directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_store_shows_its_copy_and_its_verify_moving() {
    let scenario = scenario();
    let progress = Progress::recording("verifying", &[]);
    let source = Source::open_store_showing(&scenario.store, None, &progress).unwrap();
    let copy = progress.updates();
    assert!(
        copy.iter()
            .any(|(message, bytes)| message.starts_with("copying") && *bytes > 0),
        "no bytes shown during the copy: {copy:?}"
    );
    assert!(
        copy.iter()
            .any(|(message, _)| message.starts_with("opening"))
    );

    let progress = Progress::recording("verifying", &[]);
    let report = verify::check(&source, &progress).unwrap();
    let positions: Vec<u64> = progress.updates().iter().map(|(_, p)| *p).collect();
    // Every position went by before the end, not 0 then the head at once.
    assert!(report.events > 2);
    for position in 1..report.events {
        assert!(
            positions.contains(&position),
            "{position} not shown: {positions:?}"
        );
    }
}

#[test]
fn report_passes_say_what_they_read() {
    let scenario = scenario();
    let source = Source::open_file(&scenario.file).unwrap();
    let progress = Progress::recording("report", &REPORT_PASSES);
    let tracked = Tracked {
        source: &source,
        progress: &progress,
    };
    let request = ReportRequest {
        from: parse_rfc3339("2000-01-01T00:00:00Z").unwrap(),
        to: parse_rfc3339("2100-01-01T00:00:00Z").unwrap(),
        group: None,
        company: None,
        viewer: None,
        format: ReportFormat::Csv,
    };
    write_report(&tracked, &request, std::io::sink()).unwrap();
    let mut messages: Vec<String> = progress.updates().into_iter().map(|(m, _)| m).collect();
    messages.dedup();
    assert_eq!(
        messages,
        [
            "report (pass 1/3: the directory and the enquiries closed in range)",
            "report (pass 2/3: those conversations' headers)",
            "report (pass 3/3: the messages)",
        ]
    );
}

#[test]
fn rates_and_counts_are_human_formatted() {
    assert_eq!(rate(297_610_608, 1000.0), "297,611 events/s");
    let scenario = scenario();
    let out = tool(&["rebuild", "--file", s(&scenario.file)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(" events/s)"), "{}", stdout(&out));
}
