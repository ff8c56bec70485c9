//! GraphQL pieces both schemas share: scalars, enums mirrored from `domain`,
//! opaque cursors, paging by ordinal (`PageInfo` and the windows behind the
//! customer's `messages` and the staff `timeline`), id parsing, the cache of
//! parsed query texts, the extension that gives every error a code, the
//! steps around every mutation's command, and the feed every subscription
//! reads.

pub(crate) mod codes;
pub(crate) mod cursor;
pub(crate) mod enums;
pub(crate) mod ids;
pub(crate) mod mutation;
pub(crate) mod operations;
pub(crate) mod paging;
pub(crate) mod parsed;
pub(crate) mod prescan;
pub(crate) mod serial;
pub(crate) mod subscription;
pub(crate) mod time;

use async_graphql::extensions::apollo_persisted_queries::ApolloPersistedQueries;
use async_graphql::{ObjectType, Schema, SubscriptionType};

use crate::context::Shared;
use crate::graphql::codes::ErrorCodes;

/// Builds either schema with the shared data and limits. `with_codes` adds the
/// `ErrorCodes` extension, for websockets only: it wraps every field's
/// resolution, so HTTP requests get their codes after execution instead
/// (`http::execute`).
pub(crate) fn build_schema<Q, M, S>(
    query: Q,
    mutation: M,
    subscription: S,
    shared: Shared,
    persisted: crate::graphql::parsed::PersistedQueries,
    introspection: bool,
    with_codes: bool,
) -> Schema<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let limits = shared.limits;
    let persisted = ApolloPersistedQueries::new(persisted.0);
    let mut builder = Schema::build(query, mutation, subscription)
        .extension(persisted)
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
