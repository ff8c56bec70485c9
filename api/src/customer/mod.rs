//! The customer schema (`/customer/graphql`), for the chat widget.
//!
//! Privacy by construction: every type here is built from
//! `backchannel_projections::customer::CustomerEvent` and `CustomerView`,
//! which have no variant or field that can carry a private message or any
//! staff-only data. Nothing in this module touches `Event`, the staff
//! summaries or the staff schema's types; keep it that way.

pub(crate) mod messages;
pub(crate) mod mutation;
pub(crate) mod query;
pub(crate) mod subscription;
pub(crate) mod types;

use async_graphql::Schema;

use crate::context::Shared;
use crate::graphql::build_schema;

pub(crate) type CustomerSchema =
    Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// The schema behind HTTP requests (error codes added after execution).
pub(crate) fn schema(shared: Shared, introspection: bool) -> CustomerSchema {
    build(shared, introspection, false)
}

/// The schema behind websockets: the same, with the `ErrorCodes` extension,
/// which gives subscription responses their codes as they stream.
pub(crate) fn websocket_schema(shared: Shared, introspection: bool) -> CustomerSchema {
    build(shared, introspection, true)
}

/// The schema in SDL, as published in `schema/customer.graphql` (the types
/// alone decide it: limits, extensions and data do not show in SDL).
pub fn sdl() -> String {
    Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .finish()
        .sdl()
}

fn build(shared: Shared, introspection: bool, with_codes: bool) -> CustomerSchema {
    build_schema(
        query::Query,
        mutation::Mutation,
        subscription::Subscription,
        shared.clone(),
        shared.persisted.customer.clone(),
        introspection,
        with_codes,
    )
}
