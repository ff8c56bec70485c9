//! # backchannel-projections
//!
//! Read models per audience (owner/admin, supervisor, agent, customer, auditor),
//! fed from the event log. Each projection is a pure `apply(event)` plus the last
//! global position it applied, so it can catch up after a restart and be rebuilt
//! from position 0.
//!
//! This crate must never know sled, HTTP or GraphQL; it reads the log through
//! `backchannel_eventlog::EventLog` and answers "may S see C" only through
//! `backchannel_domain::visibility`.
//!
//! Status: the read models arrive with the issue "Per-audience projections and
//! the GraphQL API server". Nothing here is implemented yet.
