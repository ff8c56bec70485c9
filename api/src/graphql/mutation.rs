//! What a mutation of either schema does around its one command: the
//! caller's rate limit, then the command (built only once the limit allows
//! it), the desk's idempotent execution, and the position of what it
//! appended, for the answer's read-your-writes (`crate::position`).

use async_graphql::Context;
use backchannel_domain::Command;
use backchannel_domain::model::Actor;

use crate::context::shared;
use crate::desk::Executed;
use crate::error::{ApiError, ApiResult};
use crate::ratelimit::RetryAfter;

/// Runs the command `command` builds as `actor` under `operation`'s
/// idempotency key, unless `limited` (the caller's rate-limit check)
/// refused it.
pub(crate) async fn execute(
    ctx: &Context<'_>,
    actor: Actor,
    limited: Result<(), RetryAfter>,
    operation: &str,
    command: impl FnOnce() -> ApiResult<Command>,
    idempotency_key: Option<String>,
) -> ApiResult<Executed> {
    limited.map_err(ApiError::RateLimited)?;
    let command = command()?;
    let desk = &shared(ctx)?.desk;
    let executed = desk
        .execute(actor, operation, command, idempotency_key.as_deref())
        .await?;
    crate::position::note(ctx, &executed);
    Ok(executed)
}
