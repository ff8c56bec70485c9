//! `accessLog(conversationId | staffId, first, after)`: the read audit (SPEC
//! section 12), who opened which conversation's content, when and by which
//! rule; newest first, a Relay connection paged by the entry's log position.
//!
//! Authorization (the matrix of SPEC section 4, like `auditTrail`): the
//! conversation or staff member must be of the caller's company, else
//! `NOT_FOUND` (another company's ids are indistinguishable from none); then
//! only the owner and admins may read it (`domain::permissions::
//! may_read_access_log`), else `FORBIDDEN`. Exactly one of the
//! two ids, else `VALIDATION`. The entries carry no conversation content.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use backchannel_domain::DomainError;
use backchannel_domain::error::Missing;
use backchannel_domain::events::ContentPath;
use backchannel_domain::ids::{ConversationId, StaffId};
use backchannel_domain::permissions::may_read_access_log;
use backchannel_eventlog::RecordedAt;
use backchannel_projections::access_log::{AccessEntry, AccessSubject};

use crate::config::DEFAULT_PAGE_SIZE;
use crate::context::{me, shared};
use crate::error::{ApiError, ApiResult};
use crate::graphql::cursor;
use crate::graphql::enums::AccessRule;
use crate::graphql::ids::{id, page_size, parse};
use crate::graphql::paging::PageInfo;
use crate::graphql::serial::Serial;
use crate::graphql::time::DateTime;
use crate::staff::directory::{Staff, staff_one};

const CURSOR_KIND: &str = "access";

/// How the content was opened.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum AccessPath {
    /// The conversation's `timeline`.
    Timeline,
    /// Its live events (`conversationEvents`).
    Subscription,
    /// An enquiry report that included it.
    Report,
}

impl From<ContentPath> for AccessPath {
    fn from(path: ContentPath) -> Self {
        match path {
            ContentPath::Timeline => AccessPath::Timeline,
            ContentPath::Subscription => AccessPath::Subscription,
            ContentPath::Report => AccessPath::Report,
        }
    }
}

/// One entry of the read audit: the first opening of a window (see the
/// server's read audit docs: 15 minutes per staff member and conversation).
pub(crate) struct AccessLogEntry(AccessEntry);

#[Object(serial)]
impl AccessLogEntry {
    /// The entry's position in the log.
    async fn position(&self) -> ID {
        ID(self.0.position.to_string())
    }

    /// When the content was opened.
    async fn at(&self) -> DateTime {
        DateTime(RecordedAt::from_micros(self.0.at))
    }

    async fn conversation_id(&self) -> ID {
        id(self.0.conversation)
    }

    async fn staff_id(&self) -> ID {
        id(self.0.staff)
    }

    /// Who opened it.
    async fn staff(&self, ctx: &Context<'_>) -> ApiResult<Option<Staff>> {
        staff_one(ctx, Some(self.0.staff))
    }

    /// The rule of SPEC section 3 that granted it.
    async fn rule(&self) -> AccessRule {
        self.0.rule.into()
    }

    async fn path(&self) -> AccessPath {
        self.0.path.into()
    }
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct AccessLogEdge {
    pub cursor: String,
    pub node: AccessLogEntry,
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct AccessLogConnection {
    pub edges: Serial<AccessLogEdge>,
    pub page_info: PageInfo,
}

/// The resolver behind `Query.accessLog` (see the module docs).
pub(crate) fn access_log(
    ctx: &Context<'_>,
    conversation_id: Option<ID>,
    staff_id: Option<ID>,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<AccessLogConnection> {
    let me = me(ctx)?;
    let shared = shared(ctx)?;
    let first = page_size(first, DEFAULT_PAGE_SIZE, shared.limits.max_page_size)?;
    let subject = match (&conversation_id, &staff_id) {
        (Some(c), None) => AccessSubject::Conversation(parse::<ConversationId>(c)?),
        (None, Some(s)) => AccessSubject::Staff(parse::<StaffId>(s)?),
        _ => {
            return Err(ApiError::validation(
                "give exactly one of conversationId and staffId",
            ));
        }
    };
    let after = after
        .map(|c| {
            cursor::decode(CURSOR_KIND, &c)?
                .parse::<u64>()
                .map_err(|_| ApiError::validation("not a valid access log cursor"))
        })
        .transpose()?;
    let models = shared.desk.models();
    let state = models.state();
    let exists = match subject {
        AccessSubject::Conversation(c) => state
            .conversations
            .get(&c)
            .is_some_and(|c| c.company == me.company),
        AccessSubject::Staff(s) => state.staff.get(&s).is_some_and(|s| s.company == me.company),
    };
    if !exists {
        return Err(DomainError::NotFound(match subject {
            AccessSubject::Conversation(_) => Missing::Conversation,
            AccessSubject::Staff(_) => Missing::Staff,
        })
        .into());
    }
    if !state.staff.get(&me.id).is_some_and(may_read_access_log) {
        return Err(
            DomainError::Forbidden("only the owner and admins can read the access log").into(),
        );
    }
    let page = models.access_log().page(subject, first, after);
    let edges: Vec<AccessLogEdge> = page
        .items
        .into_iter()
        // Staff and conversations never change company; belt and braces.
        .filter(|e| e.company == me.company)
        .map(|e| AccessLogEdge {
            cursor: cursor::encode(CURSOR_KIND, &e.position.to_string()),
            node: AccessLogEntry(e),
        })
        .collect();
    Ok(AccessLogConnection {
        page_info: PageInfo::of(&edges, |e| &e.cursor, after.is_some(), page.has_next),
        edges: edges.into(),
    })
}
