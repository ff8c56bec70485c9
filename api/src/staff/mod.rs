//! The staff schema (`/graphql`): queries, mutations and subscriptions for
//! the desk app and integrations. Every resolver identifies the caller with
//! `context::me`, which reads role and active state from the current state.

pub mod conversation;
pub mod directory;
pub mod mutation;
pub mod notification;
pub mod query;
pub mod subscription;
pub mod timeline;

use async_graphql::Schema;

use crate::context::Shared;
use crate::graphql::codes::ErrorCodes;

pub type StaffSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// The schema behind HTTP requests. Errors async-graphql raises itself get
/// their `extensions.code` in `http::execute`, after execution: an extension
/// would wrap every field's resolution, which costs a quarter of an inbox
/// page's time (BENCHMARKS.md, server).
pub fn schema(shared: Shared, introspection: bool) -> StaffSchema {
    build(shared, introspection, false)
}

/// The schema behind websockets: the same, with the `ErrorCodes` extension,
/// which gives subscription responses their codes as they stream.
pub fn websocket_schema(shared: Shared, introspection: bool) -> StaffSchema {
    build(shared, introspection, true)
}

fn build(shared: Shared, introspection: bool, with_codes: bool) -> StaffSchema {
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
