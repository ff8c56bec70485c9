#![allow(clippy::unwrap_used)]
//! The log's conformance tests (`conformance/`) on PostgreSQL, through the
//! seam ([`StoreSpec::Postgres`]): every body sled runs (`sled.rs`), each in
//! a fresh database of one throwaway cluster started by this test binary.
//!
//! One `#[test]` runs the bodies one after another, so the cluster is started
//! once and stopped (dropped) when they are done; each body's name is printed
//! before it runs, so a failure names its body.

mod conformance;
mod support;

use std::future::Future;
use std::pin::Pin;

use backchannel_eventlog::StoreSpec;
use backchannel_pgtest::PgCluster;
use conformance::{concurrency, multi_stream, sealing};

type Body = fn(StoreSpec) -> Pin<Box<dyn Future<Output = ()>>>;

macro_rules! bodies {
    ($($module:ident :: $name:ident),* $(,)?) => {
        &[$((stringify!($name), |spec| Box::pin($module::$name(spec)) as Pin<Box<dyn Future<Output = ()>>>)),*]
    };
}

const BODIES: &[(&str, Body)] = bodies![
    concurrency::concurrent_appends_are_gapless_contiguous_and_chained,
    concurrency::of_two_racing_appends_with_the_same_expected_version_exactly_one_wins,
    concurrency::a_stale_expected_version_appends_nothing,
    concurrency::a_retried_command_returns_the_original_positions_and_appends_nothing,
    concurrency::a_retry_racing_its_original_appends_once,
    concurrency::malformed_appends_are_refused_with_clear_errors,
    concurrency::a_tail_yields_history_then_follows_commits_without_gaps_or_duplicates,
    concurrency::reads_see_an_append_as_soon_as_it_returns,
    concurrency::a_committed_command_outcome_can_be_looked_up,
    concurrency::a_closed_log_refuses_appends,
    multi_stream::an_append_to_two_streams_lands_whole_with_each_streams_versions,
    multi_stream::a_stale_expectation_on_either_stream_rejects_the_whole_append,
    multi_stream::malformed_multi_stream_appends_are_refused_before_the_writer,
    multi_stream::a_retried_multi_stream_append_is_deduplicated_by_its_command_id,
    multi_stream::appends_sharing_one_stream_conflict_though_their_own_streams_differ,
    sealing::customer_data_is_sealed_when_stored_and_opened_on_every_read,
    sealing::an_erasure_destroys_the_key_so_every_read_shows_it_erased,
    sealing::a_log_without_its_key_store_refuses_plain_text,
];

#[test]
fn every_conformance_body_holds_on_postgres() {
    let cluster = PgCluster::start();
    for (n, (name, body)) in BODIES.iter().enumerate() {
        eprintln!("conformance on PostgreSQL: {name}");
        let url = cluster.create_database(&format!("conformance_{n}"));
        let spec = StoreSpec::parse(&url).unwrap();
        assert!(matches!(spec, StoreSpec::Postgres(_)));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(body(spec));
    }
}
