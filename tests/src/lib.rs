//! # backchannel-tests
//!
//! Tests across crates, speaking to the real thing.
//!
//! - `tests/decide_append_replay.rs`: the foundation end to end (domain
//!   decisions appended to a real sled log, replayed after a restart).
//! - `tests/e2e/`: the real server on port 0, over real HTTP and websockets
//!   (`graphql-transport-ws`), as the desk app and the chat widget use it.
//!   The server, its clients and the child-process nodes come from the one
//!   test harness, `backchannel-testkit`; `support/` adds a company builder
//!   that sets companies up through GraphQL, the shared queries, and how to
//!   start this package's node binary. Each other module is one area of
//!   SPEC.md (private conversations, round robin, private messages,
//!   concurrency and races, the authorization matrix, bad input, tenancy,
//!   live routing). `nodes.rs` starts a throwaway PostgreSQL
//!   cluster (`backchannel-pgtest`) and two server processes on it, the
//!   `backchannel-e2e-node` binary of this package (`src/bin/`), which runs
//!   the same entry point as `backchannel`.
//!
//! The crate's own tests live beside their crates (`domain/tests`,
//! `eventlog/tests`, `api/tests`); this one is for what crosses them.
