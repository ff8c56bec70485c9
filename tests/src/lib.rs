//! # backchannel-tests
//!
//! End-to-end tests that start the real server on port 0 and speak real HTTP
//! and websockets to it, as the desk app and the chat widget do.
//!
//! Status: the server arrives with the issue "Per-audience projections and the
//! GraphQL API server"; its end-to-end tests will live here. The foundation's
//! own tests live beside their crates (`domain/tests`, `eventlog/tests`).
