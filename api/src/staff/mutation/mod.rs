//! The staff schema's mutations, one file per concept as in the domain's
//! decisions: conversations, the directory (company settings, groups, staff
//! and their permissions), notifications and staff tokens. Each mutation
//! parses its input at the edge (`VALIDATION`), runs one domain command
//! through the desk, and answers from the stored events and the read models
//! after they applied them.

mod conversation;
mod directory;
mod notification;
mod token;

use async_graphql::{Context, MergedObject};
use backchannel_domain::Command;
use backchannel_domain::model::Actor;
use backchannel_domain::values::Name;

use crate::context::{Me, me, shared};
use crate::desk::Executed;
use crate::error::{ApiError, ApiResult};
use crate::graphql::mutation::execute;

// The staff schema's mutation root. The parts merge in this order, which is
// the order of the fields in the published schema. (No doc comment: it would
// become the type's description in the SDL.)
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation", serial)]
pub(crate) struct Mutation(
    conversation::ConversationMutation,
    directory::DirectoryMutation,
    notification::NotificationMutation,
    token::TokenMutation,
);

fn name(input: &str) -> ApiResult<Name> {
    Name::parse(input).map_err(|e| ApiError::validation(e.to_string()))
}

/// Runs one staff command through the desk: the caller's rate limit, then
/// the command built from the caller, then the desk's idempotent execution
/// (`graphql::mutation`).
async fn run(
    ctx: &Context<'_>,
    operation: &str,
    command: impl FnOnce(Me) -> ApiResult<Command>,
    idempotency_key: Option<String>,
) -> ApiResult<(Me, Executed)> {
    let me = me(ctx)?;
    let limited = shared(ctx)?.limiters.staff_mutation(me.id);
    let actor = Actor::Staff(me.id);
    let command = || command(me);
    let executed = execute(ctx, actor, limited, operation, command, idempotency_key).await?;
    Ok((me, executed))
}
