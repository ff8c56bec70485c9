//! The log's conformance tests: bodies that take a [`StoreSpec`] naming a
//! fresh, empty log and check what every engine must guarantee (SPEC
//! sections 6, 7 and 11): gapless positions in commit order, the hash chain,
//! optimistic concurrency, idempotency by command id, tails without gap or
//! duplicate, bad input refused and changing nothing. Each engine's test
//! target (`sled.rs`) calls every body with a log of its own.
//!
//! The bodies open, reopen and close the log only through [`Log`], on a
//! blocking thread (openings and `verify` may block on a network engine).
#![allow(dead_code, unreachable_pub)]

use backchannel_eventlog::{Log, StoreSpec, VerifyReport};

pub mod concurrency;
pub mod multi_stream;
pub mod sealing;

/// Opens the log `spec` names (panics on failure: a test helper).
pub async fn open(spec: &StoreSpec) -> Log {
    let spec = spec.clone();
    tokio::task::spawn_blocking(move || Log::open(&spec))
        .await
        .unwrap()
        .unwrap()
}

/// Closes `log`, every queued append durable first.
pub async fn close(log: Log) {
    tokio::task::spawn_blocking(move || log.close())
        .await
        .unwrap()
        .unwrap();
}

/// Re-reads the whole log and checks every invariant.
pub async fn verify(log: &Log) -> VerifyReport {
    let log = log.clone();
    tokio::task::spawn_blocking(move || log.verify())
        .await
        .unwrap()
        .unwrap()
}
