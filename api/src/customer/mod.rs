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

pub fn schema(shared: Shared, introspection: bool) -> CustomerSchema {
    let limits = shared.limits;
    let builder = Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .data(shared)
        .extension(ErrorCodes)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}
