//! # backchannel-testkit
//!
//! The one way Backchannel's tests start the real server and speak to it
//! (a dev-dependency only; panics are its error reporting, since a failure
//! here is a broken test).
//!
//! Starting the server:
//!
//! - [`TestServer`] (`server.rs`): the api library's `Application` in this
//!   process, on port 0, with a temporary data directory. With the demo
//!   company ([`TestServer::spawn`], [`TestServer::spawn_with`] and
//!   [`demo_config`]), or with companies created by `backchannel init`
//!   first ([`TestServer::with_companies`]). It runs on the caller's tokio
//!   runtime; a synchronous test enters one with `Runtime::block_on`.
//! - [`Node`] (`node.rs`): a `backchannel serve` child process, for the
//!   multi-node tests on one PostgreSQL log ([`SharedLog`]). The caller names
//!   the binary (a package's own `CARGO_BIN_EXE_*`); every node shares
//!   [`SECRET`], so [`Node::staff_token`] is good on each.
//!
//! The one client:
//!
//! - [`Client`] (`http.rs`): GraphQL and plain requests over HTTP/1.1, with a
//!   bearer token and extra header lines (`X-Min-Position`), answering a
//!   [`Reply`] (status, head, body as bytes, text and JSON; `position()` reads
//!   `extensions.position`). [`TestServer`] and [`Node`] dereference to their
//!   client, so `server.staff(token, query, variables)` is a request.
//! - [`Ws`] and [`Subscription`] (`ws.rs`): `graphql-transport-ws`. [`Ws`] is
//!   the raw socket (close codes, the init, pings); a [`Subscription`] is one
//!   operation on its own socket, which records every frame's text (to prove
//!   something never crossed the wire) and waits for frames by event:
//!   [`Subscription::until`] reads up to a marker event the test appended
//!   after what it checks, so "nothing arrived" never rests on a fixed sleep.
//!
//! [`demo`] holds the demo company's fixed ids (`fixtures/demo/demo.json`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod demo;
mod http;
mod node;
mod server;
mod ws;

pub use http::{Client, Reply};
pub use node::{Node, SharedLog, Starting};
pub use server::{SECRET, TestServer, config, demo_config};
pub use ws::{Frame, PATIENCE, Received, Subscription, Ws};
