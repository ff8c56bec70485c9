#![allow(clippy::unwrap_used)]
//! The log's conformance tests (`conformance/`) on sled: every body with a
//! fresh store of its own; plus what only sled's writer reports.

mod conformance;
mod support;

use backchannel_domain::events::StreamId;
use backchannel_eventlog::{ExpectedVersion, StoreSpec};
use conformance::open;
use support::{conversation, message, meta};

/// A fresh sled store; the directory lives as long as the returned guard.
fn fresh() -> (tempfile::TempDir, StoreSpec) {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::sled(dir.path());
    (dir, spec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_data_is_sealed_when_stored_and_opened_on_every_read() {
    let (_dir, spec) = fresh();
    conformance::sealing::customer_data_is_sealed_when_stored_and_opened_on_every_read(spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_destroys_the_key_so_every_read_shows_it_erased() {
    let (_dir, spec) = fresh();
    conformance::sealing::an_erasure_destroys_the_key_so_every_read_shows_it_erased(spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_without_its_key_store_refuses_plain_text() {
    let (_dir, spec) = fresh();
    conformance::sealing::a_log_without_its_key_store_refuses_plain_text(spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_gapless_contiguous_and_chained() {
    let (_dir, spec) = fresh();
    conformance::concurrency::concurrent_appends_are_gapless_contiguous_and_chained(spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_racing_appends_with_the_same_expected_version_exactly_one_wins() {
    let (_dir, spec) = fresh();
    conformance::concurrency::of_two_racing_appends_with_the_same_expected_version_exactly_one_wins(spec).await;
}

#[tokio::test]
async fn a_stale_expected_version_appends_nothing() {
    let (_dir, spec) = fresh();
    conformance::concurrency::a_stale_expected_version_appends_nothing(spec).await;
}

#[tokio::test]
async fn a_retried_command_returns_the_original_positions_and_appends_nothing() {
    let (_dir, spec) = fresh();
    conformance::concurrency::a_retried_command_returns_the_original_positions_and_appends_nothing(
        spec,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_racing_its_original_appends_once() {
    let (_dir, spec) = fresh();
    conformance::concurrency::a_retry_racing_its_original_appends_once(spec).await;
}

#[tokio::test]
async fn malformed_appends_are_refused_with_clear_errors() {
    let (_dir, spec) = fresh();
    conformance::concurrency::malformed_appends_are_refused_with_clear_errors(spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_yields_history_then_follows_commits_without_gaps_or_duplicates() {
    let (_dir, spec) = fresh();
    conformance::concurrency::a_tail_yields_history_then_follows_commits_without_gaps_or_duplicates(spec).await;
}

#[tokio::test]
async fn reads_see_an_append_as_soon_as_it_returns() {
    let (_dir, spec) = fresh();
    conformance::concurrency::reads_see_an_append_as_soon_as_it_returns(spec).await;
}

#[tokio::test]
async fn a_committed_command_outcome_can_be_looked_up() {
    let (_dir, spec) = fresh();
    conformance::concurrency::a_committed_command_outcome_can_be_looked_up(spec).await;
}

#[tokio::test]
async fn a_closed_log_refuses_appends() {
    let (_dir, spec) = fresh();
    conformance::concurrency::a_closed_log_refuses_appends(spec).await;
}

#[tokio::test]
async fn an_append_to_two_streams_lands_whole_with_each_streams_versions() {
    let (_dir, spec) = fresh();
    conformance::multi_stream::an_append_to_two_streams_lands_whole_with_each_streams_versions(
        spec,
    )
    .await;
}

#[tokio::test]
async fn a_stale_expectation_on_either_stream_rejects_the_whole_append() {
    let (_dir, spec) = fresh();
    conformance::multi_stream::a_stale_expectation_on_either_stream_rejects_the_whole_append(spec)
        .await;
}

#[tokio::test]
async fn malformed_multi_stream_appends_are_refused_before_the_writer() {
    let (_dir, spec) = fresh();
    conformance::multi_stream::malformed_multi_stream_appends_are_refused_before_the_writer(spec)
        .await;
}

#[tokio::test]
async fn a_retried_multi_stream_append_is_deduplicated_by_its_command_id() {
    let (_dir, spec) = fresh();
    conformance::multi_stream::a_retried_multi_stream_append_is_deduplicated_by_its_command_id(
        spec,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_sharing_one_stream_conflict_though_their_own_streams_differ() {
    let (_dir, spec) = fresh();
    conformance::multi_stream::appends_sharing_one_stream_conflict_though_their_own_streams_differ(
        spec,
    )
    .await;
}

#[tokio::test]
async fn commit_stats_count_groups_events_and_syncs() {
    let (_dir, spec) = fresh();
    let log = open(&spec).await;
    let id = conversation(8);
    // One caller, one append at a time: every append is its own group and sync.
    for n in 0..5 {
        log.append(
            StreamId::Conversation(id),
            ExpectedVersion::Exact(2 * n),
            vec![message(id, n), message(id, n + 100)],
            meta(),
        )
        .await
        .unwrap();
    }
    let stats = log.commit_stats();
    assert_eq!(stats.events, 10);
    assert_eq!(stats.groups, 5);
    assert_eq!(stats.syncs, 5);
}
