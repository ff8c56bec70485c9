//! Staff tokens: minting one records no event, so this mutation bypasses
//! the desk's command path but keeps its rate limit and its permission rule.

use async_graphql::{Context, ID, Object, SimpleObject};
use backchannel_domain::error::Missing;
use backchannel_domain::ids::StaffId;
use backchannel_domain::model::Actor;
use backchannel_domain::{DomainError, may_issue_staff_token};

use crate::auth::StaffIdentity;
use crate::context::{me, shared};
use crate::error::{ApiError, ApiResult};
use crate::graphql::ids::parse;
use crate::graphql::time::DateTime;
use crate::staff::directory::Staff;

#[derive(Default)]
pub(super) struct TokenMutation;

/// A token minted by `issueStaffToken`.
#[derive(SimpleObject)]
#[graphql(name = "IssueStaffTokenPayload", serial)]
pub(crate) struct IssuedToken {
    pub token: String,
    pub staff: Staff,
    pub expires_at: DateTime,
}

#[Object(serial)]
impl TokenMutation {
    /// Owner and admins mint a token for a staff member (only the owner for
    /// the owner or an admin). Minting records no event.
    #[graphql(complexity = "crate::config::MUTATION_COST")]
    async fn issue_staff_token(&self, ctx: &Context<'_>, staff_id: ID) -> ApiResult<IssuedToken> {
        let me = me(ctx)?;
        let target: StaffId = parse(&staff_id)?;
        let shared = shared(ctx)?;
        shared
            .limiters
            .staff_mutation(me.id)
            .map_err(ApiError::RateLimited)?;
        let staff = {
            let models = shared.desk.models();
            may_issue_staff_token(models.state(), Actor::Staff(me.id), target)?;
            models
                .state()
                .staff
                .get(&target)
                .cloned()
                .ok_or(DomainError::NotFound(Missing::Staff))?
        };
        let minted = shared
            .tokens
            .mint_staff(StaffIdentity {
                staff: staff.id,
                company: staff.company,
            })
            .map_err(|err| ApiError::internal("minting a token", err))?;
        tracing::info!(issuer = %me.id, staff = %staff.id, "staff token issued");
        Ok(IssuedToken {
            token: minted.token,
            expires_at: DateTime(system_time_to_recorded(minted.expires_at)),
            staff: Staff(staff),
        })
    }
}

pub(crate) fn system_time_to_recorded(
    at: std::time::SystemTime,
) -> backchannel_eventlog::RecordedAt {
    let micros = at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    backchannel_eventlog::RecordedAt::from_micros(micros)
}
