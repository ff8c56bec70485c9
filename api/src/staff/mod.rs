//! The staff schema (`/graphql`): queries, mutations and subscriptions for
//! the desk app and integrations. Every resolver identifies the caller with
//! `context::me`, which reads role and active state from the current state.

pub(crate) mod access_log;
pub(crate) mod conversation;
pub(crate) mod directory;
pub(crate) mod mutation;
pub(crate) mod node;
pub(crate) mod notification;
pub(crate) mod query;
pub(crate) mod subscription;
pub(crate) mod timeline;
pub mod timeline_connection;

use async_graphql::Schema;

use crate::context::Shared;
use crate::graphql::build_schema;

pub(crate) type StaffSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// The schema behind HTTP requests (error codes added after execution).
pub(crate) fn schema(shared: Shared, introspection: bool) -> StaffSchema {
    build(shared, introspection, false)
}

/// The schema behind websockets: the same, with the `ErrorCodes` extension,
/// which gives subscription responses their codes as they stream.
pub(crate) fn websocket_schema(shared: Shared, introspection: bool) -> StaffSchema {
    build(shared, introspection, true)
}

/// The schema in SDL, as published in `schema/staff.graphql` (the types
/// alone decide it: limits, extensions and data do not show in SDL).
pub fn sdl() -> String {
    Schema::build(
        query::Query,
        mutation::Mutation::default(),
        subscription::Subscription,
    )
    .finish()
    .sdl()
}

fn build(shared: Shared, introspection: bool, with_codes: bool) -> StaffSchema {
    build_schema(
        query::Query,
        mutation::Mutation::default(),
        subscription::Subscription,
        shared.clone(),
        shared.persisted.staff.clone(),
        introspection,
        with_codes,
    )
}
