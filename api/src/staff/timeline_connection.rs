//! Paging a conversation's timeline (`Conversation.timeline`).
//!
//! The timeline is the conversation's stream in the log: `Desk::timeline_positions`
//! lists its events' global positions, in order, once the visibility policy
//! has let the viewer in (under the same read guard). A page is a
//! [`crate::graphql::paging`] page over that list, reading only its windows'
//! events from the log.
//!
//! A cursor is of kind `timeline`, and its ordinal is the item's index in
//! that list, which is its stream version minus one: what an item carries as
//! `cursor` wherever it appears (`sendMessage`, `conversationEvents`,
//! `lastMessage`), checked against the index on every page. It says no more
//! than how many events came before the item in this conversation, which the
//! viewer sees anyway; never the global position.

use backchannel_domain::events::ContentPath;
use std::ops::Range;

use async_graphql::SimpleObject;
use backchannel_domain::ids::{ConversationId, StaffId};

use crate::desk::Desk;
use crate::error::{ApiError, ApiResult};
use crate::graphql::paging::{PageInfo, PageRequest, Paging};
use crate::graphql::serial::Serial;
use crate::staff::conversation::denied;
use crate::staff::timeline::{self, TimelineItem};

const TIMELINE: Paging = Paging::new(
    "timeline",
    "this cursor is not an item of the conversation's timeline",
);

/// A page of a conversation's timeline, oldest first.
#[derive(SimpleObject)]
#[graphql(serial)]
pub struct TimelineConnection {
    pub(crate) edges: Serial<TimelineEdge>,
    pub(crate) page_info: PageInfo,
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct TimelineEdge {
    pub cursor: String,
    pub node: TimelineItem,
}

/// The cursor of the item at `ordinal` in the conversation's timeline.
pub(crate) fn cursor(ordinal: usize) -> String {
    TIMELINE.cursor(ordinal)
}

/// What a `timeline` field asked for, checked (sizes, direction, cursors).
pub fn request(
    first: Option<i32>,
    after: Option<&str>,
    last: Option<i32>,
    before: Option<&str>,
    max: usize,
) -> ApiResult<PageRequest> {
    TIMELINE.request(first, after, last, before, max)
}

/// One page of the timeline of `conversation`, if `viewer` may read it now
/// (else the policy's refusal, whatever the cursor).
pub async fn page(
    desk: &Desk,
    viewer: StaffId,
    conversation: ConversationId,
    request: PageRequest,
) -> ApiResult<TimelineConnection> {
    // Opening the timeline opens the content: the read audit records it
    // once the page is read (a refused page opened nothing).
    let (positions, open) = desk
        .open_timeline(&desk.models(), viewer, conversation, ContentPath::Timeline)
        .map_err(denied)?;
    let positions = positions.as_slice();
    let page = TIMELINE
        .page(positions.len(), request, move |ordinals| {
            read_window(desk, positions, ordinals)
        })
        .await?;
    if let Some(open) = open {
        desk.record_open(open);
    }
    let (edges, page_info) = page.into_edges(|cursor, node| TimelineEdge { cursor, node });
    Ok(TimelineConnection {
        edges: edges.into(),
        page_info,
    })
}

/// The items at the ordinals `ordinals` of the timeline whose positions are
/// `positions`, oldest first, each with its ordinal.
async fn read_window(
    desk: &Desk,
    positions: &[u64],
    ordinals: Range<usize>,
) -> ApiResult<Vec<(usize, TimelineItem)>> {
    let wanted = positions
        .get(ordinals.clone())
        .ok_or_else(|| ApiError::broken("paging a timeline", "a window past the list"))?;
    // Exactly the events at `wanted`, or an error (`Desk::read_positions`).
    let events = desk.read_positions(wanted).await?;
    let mut items = Vec::with_capacity(events.len());
    for (ordinal, recorded) in ordinals.zip(&events) {
        // Items carry the cursor of their stream version elsewhere; it must
        // be the one they are paged by.
        if timeline::ordinal(recorded) != Some(ordinal) {
            return Err(ApiError::broken(
                "paging a timeline",
                "an event's stream version is not its place in the stream",
            ));
        }
        if let Some(item) = TimelineItem::from_recorded(recorded) {
            items.push((ordinal, item));
        }
    }
    Ok(items)
}
