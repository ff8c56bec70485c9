//! # backchannel-api
//!
//! The server: axum + async-graphql, the staff schema at `/graphql`, the
//! customer schema at `/customer/graphql` (both with `graphql-transport-ws`
//! websockets), health and readiness, and the `backchannel` binary. The only
//! crate that knows HTTP and GraphQL. It holds no business rule: commands are
//! decided by `backchannel_domain::decide`, reads are answered by
//! `backchannel_projections` (which asks the one visibility policy).
//!
//! Layout:
//! - [`startup`]: `Application::build(config)` (or `start` then
//!   `catch_up`, serving health and readiness meanwhile: `catchup`) and
//!   `run_until_stopped()`; [`config`], `cli` (flags and env), [`entry`]
//!   (the binary's `main`),
//!   `logging` (text or JSON lines), `secret` (the signing secret).
//! - `position`: read-your-writes across nodes (`extensions.position`,
//!   `X-Log-Position`, `X-Min-Position`, `minPosition`).
//! - [`desk`]: the command path (idempotency, optimistic concurrency,
//!   read-your-writes) and the projector task feeding the read models and
//!   live subscriptions, which [`live`] routes by key to the subscriptions
//!   each event concerns; [`read_audit`]: who opened which conversation's
//!   content, recorded in the background (SPEC section 12).
//! - [`auth`]: staff and customer tokens; `context`: who is asking,
//!   re-checked against the current state on every request.
//! - `http`: routes, body limit, batch refusal, the admission check
//!   (`graphql::prescan`) and deadline, and `http::Refusal`, the one error
//!   type of every answer outside GraphQL execution; `graphiql`: GraphiQL
//!   and its embedded assets;
//!   [`transport`]: the accept loop, its timeouts, connection cap and
//!   graceful stop; `websocket`: the `graphql-transport-ws` protocol;
//!   [`ratelimit`]: the keyed rate limiters; `metrics`: `GET /metrics`;
//!   `cors`: which browser origins each endpoint answers, and the
//!   JSON-only rule for POSTs.
//! - [`staff`]: the staff schema; [`customer`]: the customer schema, built
//!   only from the customer projection (no private data can reach it).
//! - `graphql`: shared scalars, enums, cursors, and the error-code extension;
//!   `error`: the boundary's error type and its `extensions.code`.
//! - `report`: `GET /reports/enquiries`; `log_export`: `GET /log`
//!   (the paged log for `replay-tool --server`).
//! - [`demo`]: the demo company; [`admin`]: the `init` and `token` commands.

// Only what the binary, the integration tests and the other crates use is
// `pub`; everything else is `pub(crate)` at most.
#![warn(unreachable_pub)]

pub mod admin;
pub mod auth;
mod catchup;
mod cli;
pub mod config;
mod context;
mod cors;
pub mod customer;
pub mod demo;
pub mod desk;
pub mod entry;
mod error;
mod graphiql;
mod graphql;
mod http;
pub mod live;
mod log_export;
mod logging;
mod metrics;
mod position;
pub mod ratelimit;
pub mod read_audit;
mod report;
pub mod secret;
pub mod staff;
pub mod startup;
pub mod transport;
mod websocket;

pub use config::{Config, Limits};
pub use startup::{Application, Shutdown, StartError, Starting};
