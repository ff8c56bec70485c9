//! The customer schema (`/customer/graphql`), for the chat widget.
//!
//! Privacy by construction: every type here is built from
//! `backchannel_projections::customer::CustomerEvent` and `CustomerView`,
//! which have no variant or field that can carry a private message or any
//! staff-only data. Nothing in this module touches `Event`, the staff
//! summaries or the staff schema's types; keep it that way.

pub mod mutation;
pub mod query;
pub mod subscription;
pub mod types;

use async_graphql::Schema;

use crate::context::Shared;
use crate::graphql::codes::ErrorCodes;

pub type CustomerSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// The schema behind HTTP requests. Errors async-graphql raises itself get
/// their `extensions.code` in `http::execute`, after execution: an extension
/// would wrap every field's resolution, which costs a quarter of an inbox
/// page's time (BENCHMARKS.md, server).
pub fn schema(shared: Shared, introspection: bool) -> CustomerSchema {
    build(shared, introspection, false)
}

/// The schema behind websockets: the same, with the `ErrorCodes` extension,
/// which gives subscription responses their codes as they stream.
pub fn websocket_schema(shared: Shared, introspection: bool) -> CustomerSchema {
    build(shared, introspection, true)
}

fn build(shared: Shared, introspection: bool, with_codes: bool) -> CustomerSchema {
    let limits = shared.limits;
    let mut builder = Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .data(shared)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if with_codes {
        builder = builder.extension(ErrorCodes);
    }
    if introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}
