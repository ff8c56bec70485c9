//! Backchannel end to end: the real server on port 0, real HTTP, real
//! websockets (`graphql-transport-ws`), companies set up through GraphQL as
//! their owners and admins would. One test binary, one module per area of
//! SPEC.md. The server and its clients are the one harness's
//! (`backchannel-testkit`); `support` adds the company builder and the
//! shared queries.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub, dead_code)]

mod support;

mod authorization;
mod bad_input;
mod concurrency;
mod live_routing;
mod nodes;
mod private_conversations;
mod private_messages;
mod races;
mod round_robin;
mod tenancy;
