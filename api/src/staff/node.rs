//! Relay's `Node` interface and `node(id)` for the staff schema.
//!
//! Ids stay the domain's UUIDv7s: every id kind draws from the same random
//! space, so an id names one object across all kinds, and `node` finds its
//! kind by looking it up. `node` is one more path to conversation data: a
//! conversation goes through [`load`], the path of `conversation(id)`, so it
//! answers exactly as that query does (`RESTRICTED_ACCESS` inside the
//! company, `NOT_FOUND` outside it). Staff, groups and the company are the
//! caller's company directory, which every staff member sees; anything of
//! another company, or no object at all, is the same `NOT_FOUND`.

use async_graphql::{ID, Interface};
use backchannel_domain::DomainError;
use backchannel_domain::error::Missing;
use backchannel_domain::ids::{CompanyId, ConversationId, GroupId, StaffId};
use uuid::Uuid;

use crate::context::{Me, shared};
use crate::error::{ApiError, ApiResult};
use crate::staff::conversation::{Conversation, load};
use crate::staff::directory::{Company, Group, Staff};

/// An object with a globally unique id, refetchable with `node(id)`.
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "Globally unique: `node(id:)` finds it again."
))]
pub(crate) enum Node {
    Conversation(Conversation),
    Staff(Staff),
    Group(Group),
    Company(Company),
}

/// The one answer for an id that names nothing the caller's company has.
fn not_found() -> ApiError {
    DomainError::NotFound(Missing::Object).into()
}

/// The object `id` names, as `me` may see it.
pub(crate) fn node(ctx: &async_graphql::Context<'_>, me: Me, id: &ID) -> ApiResult<Node> {
    let uuid =
        Uuid::parse_str(id.as_str().trim()).map_err(|_| ApiError::validation("not a valid id"))?;
    let conversation = ConversationId::from_uuid(uuid);
    let desk = &shared(ctx)?.desk;
    {
        let models = desk.models();
        let state = models.state();
        if !state.conversations.contains_key(&conversation) {
            if let Some(s) = state
                .staff
                .get(&StaffId::from_uuid(uuid))
                .filter(|s| s.company == me.company)
            {
                return Ok(Node::Staff(Staff(s.clone())));
            }
            if let Some(g) = state
                .groups
                .get(&GroupId::from_uuid(uuid))
                .filter(|g| g.company == me.company)
            {
                return Ok(Node::Group(Group(g.clone())));
            }
            if CompanyId::from_uuid(uuid) == me.company
                && let Some(c) = state.companies.get(&me.company)
            {
                return Ok(Node::Company(Company(c.clone())));
            }
            return Err(not_found());
        }
    }
    // The visibility policy, through the path `conversation(id)` takes.
    match load(ctx, me, conversation) {
        Ok(c) => Ok(Node::Conversation(c)),
        Err(ApiError::Domain(DomainError::NotFound(_))) => Err(not_found()),
        Err(err) => Err(err),
    }
}
