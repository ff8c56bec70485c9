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

pub fn schema(shared: Shared, introspection: bool) -> StaffSchema {
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
