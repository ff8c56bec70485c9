//! What every resolver finds in the GraphQL context: the desk, the token
//! keys, the limits, and who is asking.

use std::sync::Arc;

use async_graphql::Context;
use backchannel_domain::ids::{CompanyId, ConversationId, StaffId};
use backchannel_domain::permissions::signed_in_staff;

use crate::auth::{CustomerIdentity, StaffIdentity, TokenError, Tokens};
use crate::config::Limits;
use crate::desk::Desk;
use crate::error::{ApiError, ApiResult};
use crate::ratelimit::Limiters;

/// Shared by both schemas (schema data).
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub desk: Arc<Desk>,
    pub tokens: Tokens,
    pub limits: Limits,
    /// The rate limiters (SPEC section 8); shared so every request and
    /// connection counts against the same keys.
    pub limiters: Arc<Limiters>,
    /// Automatic persisted queries (`graphql::parsed`): one store per
    /// audience, shared by its HTTP and websocket transports.
    pub persisted: crate::graphql::parsed::PersistedStores,
}

/// The staff token of the request or websocket connection, as checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StaffAuth(pub Result<StaffIdentity, TokenError>);

/// The customer token of the request or websocket connection, as checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CustomerAuth(pub Result<CustomerIdentity, TokenError>);

/// The signed-in staff member, checked against the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Me {
    pub id: StaffId,
    pub company: CompanyId,
}

pub(crate) fn shared<'a>(ctx: &Context<'a>) -> ApiResult<&'a Shared> {
    ctx.data::<Shared>()
        .map_err(|_| ApiError::broken("schema data", "Shared is missing"))
}

/// The identity the request's token carries: `UNAUTHENTICATED` for an
/// invalid or expired token, and with the message `required` for none.
fn token_identity<T: Copy>(
    auth: Option<&Result<T, TokenError>>,
    required: &'static str,
) -> ApiResult<T> {
    match auth {
        Some(Ok(identity)) => Ok(*identity),
        Some(Err(TokenError::Invalid)) => Err(ApiError::Unauthenticated(
            "the token is invalid or has expired",
        )),
        _ => Err(ApiError::Unauthenticated(required)),
    }
}

/// The signed-in staff member: a valid token whose staff member exists in
/// that company and is active *now*. Called by every staff resolver, so a
/// deactivation takes effect on the next request.
pub(crate) fn me(ctx: &Context<'_>) -> ApiResult<Me> {
    let auth = ctx.data_opt::<StaffAuth>().map(|auth| &auth.0);
    let identity = token_identity(auth, "a staff token is required")?;
    let desk = &shared(ctx)?.desk;
    check_staff(desk, identity)
}

/// Is the identity active staff of its company in the current state
/// (`domain::permissions::signed_in_staff`)?
pub(crate) fn check_staff(desk: &Desk, identity: StaffIdentity) -> ApiResult<Me> {
    let models = desk.models();
    match signed_in_staff(models.state(), identity.staff, identity.company) {
        Some(staff) => Ok(Me {
            id: staff.id,
            company: staff.company,
        }),
        _ => Err(ApiError::Unauthenticated(
            "the account is unknown or no longer active",
        )),
    }
}

/// The customer's conversation: a valid customer token for a conversation
/// that exists.
pub(crate) fn customer(ctx: &Context<'_>) -> ApiResult<CustomerIdentity> {
    let auth = ctx.data_opt::<CustomerAuth>().map(|auth| &auth.0);
    let identity = token_identity(auth, "a customer token is required")?;
    let desk = &shared(ctx)?.desk;
    let exists = desk
        .models()
        .state()
        .conversations
        .get(&identity.conversation)
        .is_some_and(|c| c.company == identity.company);
    if !exists {
        return Err(ApiError::Unauthenticated(
            "the token's conversation does not exist",
        ));
    }
    Ok(identity)
}

/// The conversation id a customer token is scoped to.
pub(crate) fn customer_conversation(ctx: &Context<'_>) -> ApiResult<ConversationId> {
    customer(ctx).map(|c| c.conversation)
}
