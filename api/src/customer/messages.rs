//! Paging the customer's chat (`CustomerConversation.messages`).
//!
//! The customer view lists the global positions of every customer-visible
//! event of the conversation, in order: messages, and also its opening,
//! assignments, closes and reopenings. A page is a [`crate::graphql::paging`]
//! page over that list: it reads only its windows' events from the log and
//! keeps the messages (through `customer_event`, like every customer path).
//!
//! A cursor is of kind `message`, and its ordinal is the message's index in
//! the customer view's list. It says no more than how many customer-visible
//! events came before it in their own chat. An ordinal names the same
//! message for the conversation's life as long as `customer_event` classifies
//! events as it does today (a rebuild under another classification would
//! renumber them).

use std::ops::Range;

use async_graphql::SimpleObject;
use backchannel_domain::ids::ConversationId;

use crate::customer::types::{CustomerMessage, message_at, not_found};
use crate::desk::Desk;
use crate::error::{ApiError, ApiResult};
use crate::graphql::paging::{PageInfo, PageRequest, Paging};
use crate::graphql::serial::Serial;

/// How `messages` pages: its cursors, and what a foreign one is told.
pub(crate) const MESSAGES: Paging = Paging::new(
    "message",
    "this cursor is not one of your conversation's messages",
);

/// A page of the chat, oldest first.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct CustomerMessageConnection {
    pub edges: Serial<CustomerMessageEdge>,
    pub page_info: PageInfo,
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct CustomerMessageEdge {
    pub cursor: String,
    pub node: CustomerMessage,
}

/// The cursor of the message at `ordinal` in the customer view's list.
pub(crate) fn cursor(ordinal: usize) -> String {
    MESSAGES.cursor(ordinal)
}

/// One page of the customer's messages.
pub(crate) async fn page(
    desk: &Desk,
    conversation: ConversationId,
    request: PageRequest,
) -> ApiResult<CustomerMessageConnection> {
    let len = desk
        .models()
        .customer_conversation(conversation)
        .ok_or_else(not_found)?
        .positions
        .len();
    let page = MESSAGES
        .page(len, request, |ordinals| {
            read_window(desk, conversation, ordinals)
        })
        .await?;
    let (edges, page_info) = page.into_edges(|cursor, node| CustomerMessageEdge { cursor, node });
    Ok(CustomerMessageConnection {
        edges: edges.into(),
        page_info,
    })
}

/// The messages among the ordinals `ordinals` of the customer view's list,
/// oldest first, each with its ordinal.
async fn read_window(
    desk: &Desk,
    conversation: ConversationId,
    ordinals: Range<usize>,
) -> ApiResult<Vec<(usize, CustomerMessage)>> {
    let positions = desk
        .models()
        .customer_conversation(conversation)
        .ok_or_else(not_found)?
        .positions
        .get(ordinals.clone())
        .ok_or_else(|| ApiError::broken("paging customer messages", "the list shrank"))?
        .to_vec();
    // Exactly the events at `positions`, or an error (`Desk::read_positions`).
    let events = desk.read_positions(&positions).await?;
    let models = desk.models();
    Ok(ordinals
        .zip(&events)
        .filter_map(|(ordinal, recorded)| {
            message_at(&models, conversation, recorded, ordinal).map(|m| (ordinal, m))
        })
        .collect())
}
