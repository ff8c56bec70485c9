//! Paging the customer's chat (`CustomerConversation.messages`).
//!
//! The customer view lists the global positions of every customer-visible
//! event of the conversation, in order: messages, and also its opening,
//! assignments, closes and reopenings. A page walks that list from its cursor
//! in windows, reads only each window's events from the log, keeps the
//! messages (through `customer_event`, like every customer path), and stops
//! once it holds the page plus one message (to tell whether there is more) or
//! the list ends. So a page reads O(page + the other events among its
//! messages) events, never the whole conversation.
//!
//! A cursor is a [`crate::graphql::cursor`] of kind `message` whose value is
//! the message's *ordinal*: its index in the customer view's list. It is
//! never the global position: positions count every company's events, so
//! they would tell a customer how busy the server is. An ordinal says no more
//! than how many customer-visible events came before it in their own chat.
//! The list only grows, so an ordinal names the same message for the
//! conversation's life (as long as `customer_event` classifies events as it
//! does today: a rebuild under another classification would renumber them).

use std::ops::Range;

use async_graphql::SimpleObject;
use backchannel_domain::ids::ConversationId;

use crate::customer::types::{CustomerMessage, message_at, not_found};
use crate::desk::Desk;
use crate::error::{ApiError, ApiResult};
use crate::graphql::cursor;
use crate::graphql::ids::page_size_of;

const CURSOR_KIND: &str = "message";

/// The fewest events a window reads, so a run of non-message events costs a
/// few reads, not one per event; at most this many are read past the page.
const MIN_WINDOW: usize = 16;

/// A page of the chat, oldest first.
#[derive(SimpleObject)]
pub struct CustomerMessageConnection {
    pub edges: Vec<CustomerMessageEdge>,
    pub page_info: PageInfo,
}

#[derive(SimpleObject)]
pub struct CustomerMessageEdge {
    pub cursor: String,
    pub node: CustomerMessage,
}

/// Where a page sits in the chat.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// More messages follow the page. Paging backward (`last`/`before`):
    /// true exactly when a `before` cursor was given (its message follows).
    pub has_next_page: bool,
    /// More messages precede the page. Paging forward (`first`/`after`):
    /// true exactly when an `after` cursor was given (its message precedes).
    pub has_previous_page: bool,
    /// The first (oldest) edge's cursor: pass it as `before` for older messages.
    pub start_cursor: Option<String>,
    /// The last (newest) edge's cursor: pass it as `after` for newer messages.
    pub end_cursor: Option<String>,
}

/// The cursor of the message at `ordinal` in the customer view's list.
pub fn cursor(ordinal: usize) -> String {
    cursor::encode(CURSOR_KIND, &ordinal.to_string())
}

/// The ordinal a cursor names; `VALIDATION` unless it is one this module made.
fn ordinal(cursor: &str) -> ApiResult<usize> {
    let value = cursor::decode(CURSOR_KIND, cursor)?;
    value
        .parse::<usize>()
        .ok()
        .filter(|n| n.to_string() == value)
        .ok_or_else(|| ApiError::validation("not a valid message cursor"))
}

/// What a `messages` field asked for, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRequest {
    /// `first` messages after the one at ordinal `after` (from the oldest).
    Forward { first: usize, after: Option<usize> },
    /// `last` messages before the one at ordinal `before` (up to the newest).
    Backward { last: usize, before: Option<usize> },
}

impl PageRequest {
    /// Sizes are 1..=`max` (default `max`), as the staff `page_size`; one
    /// direction per request; cursors this module made.
    pub fn parse(
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
        max: usize,
    ) -> ApiResult<PageRequest> {
        let forward = first.is_some() || after.is_some();
        let backward = last.is_some() || before.is_some();
        if forward && backward {
            return Err(ApiError::validation(
                "page forward with `first`/`after` or backward with `last`/`before`, not both",
            ));
        }
        if backward {
            Ok(PageRequest::Backward {
                last: page_size_of("last", last, max, max)?,
                before: before.map(ordinal).transpose()?,
            })
        } else {
            Ok(PageRequest::Forward {
                first: page_size_of("first", first, max, max)?,
                after: after.map(ordinal).transpose()?,
            })
        }
    }
}

/// One page of the customer's messages.
pub async fn page(
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
    let (messages, has_previous_page, has_next_page) = match request {
        PageRequest::Forward { first, after } => {
            let start = match after {
                Some(n) => names_a_message(desk, conversation, len, n).await? + 1,
                None => 0,
            };
            let (messages, more) = scan(desk, conversation, start..len, first, true).await?;
            (messages, after.is_some(), more)
        }
        PageRequest::Backward { last, before } => {
            let end = match before {
                Some(n) => names_a_message(desk, conversation, len, n).await?,
                None => len,
            };
            let (messages, more) = scan(desk, conversation, 0..end, last, false).await?;
            (messages, more, before.is_some())
        }
    };
    let edges: Vec<CustomerMessageEdge> = messages
        .into_iter()
        .map(|node| CustomerMessageEdge {
            cursor: node.cursor.clone(),
            node,
        })
        .collect();
    Ok(CustomerMessageConnection {
        page_info: PageInfo {
            has_next_page,
            has_previous_page,
            start_cursor: edges.first().map(|e| e.cursor.clone()),
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        },
        edges,
    })
}

/// `ordinal`, if a message of this conversation is there (one event read);
/// else `VALIDATION`: cursors are only made for messages, and the list only
/// grows. So the message of an `after` cursor precedes the page, and that of
/// a `before` cursor follows it.
async fn names_a_message(
    desk: &Desk,
    conversation: ConversationId,
    len: usize,
    ordinal: usize,
) -> ApiResult<usize> {
    let bad = || ApiError::validation("this cursor is not one of your conversation's messages");
    if ordinal >= len {
        return Err(bad());
    }
    let (messages, _) = scan(desk, conversation, ordinal..ordinal + 1, 1, true).await?;
    if messages.is_empty() {
        return Err(bad());
    }
    Ok(ordinal)
}

/// Up to `size` messages among the ordinals `range`, taken from its start
/// (`oldest_first`) or from its end, returned oldest first; and whether the
/// range holds more messages beyond them in that direction.
async fn scan(
    desk: &Desk,
    conversation: ConversationId,
    mut range: Range<usize>,
    size: usize,
    oldest_first: bool,
) -> ApiResult<(Vec<CustomerMessage>, bool)> {
    // Nearest first: oldest first forward, newest first backward.
    let mut found: Vec<CustomerMessage> = Vec::with_capacity(size + 1);
    while found.len() <= size && !range.is_empty() {
        let window = (size + 1 - found.len()).max(MIN_WINDOW).min(range.len());
        let ordinals = if oldest_first {
            range.start..range.start + window
        } else {
            range.end - window..range.end
        };
        if oldest_first {
            range.start = ordinals.end;
        } else {
            range.end = ordinals.start;
        }
        let positions = desk
            .models()
            .customer_conversation(conversation)
            .ok_or_else(not_found)?
            .positions
            .get(ordinals.clone())
            .ok_or_else(|| ApiError::internal("paging customer messages", "the list shrank"))?
            .to_vec();
        let events = desk.read_positions(&positions).await?;
        // Each event must be the one its ordinal names: anything else could be
        // another conversation's.
        if !events
            .iter()
            .map(|r| r.envelope.position)
            .eq(positions.iter().copied())
        {
            return Err(ApiError::internal(
                "paging customer messages",
                "the log returned other positions than asked",
            ));
        }
        let mut window_messages: Vec<CustomerMessage> = {
            let models = desk.models();
            ordinals
                .zip(&events)
                .filter_map(|(ordinal, recorded)| {
                    message_at(&models, conversation, recorded, ordinal)
                })
                .collect()
        };
        if !oldest_first {
            window_messages.reverse();
        }
        found.extend(window_messages);
    }
    let more = found.len() > size;
    found.truncate(size);
    if !oldest_first {
        found.reverse();
    }
    Ok((found, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
    ) -> Result<PageRequest, String> {
        PageRequest::parse(first, after, last, before, 100).map_err(|e| e.to_string())
    }

    #[test]
    fn cursors_name_ordinals_and_nothing_else() {
        assert_eq!(ordinal(&cursor(0)).ok(), Some(0));
        assert_eq!(ordinal(&cursor(249)).ok(), Some(249));
        for bad in [
            "",
            "%%%",
            "NDI",                                                 // "42": no kind
            &cursor::encode("conversation", "3"),                  // another kind
            &cursor::encode("message", "-1"),                      // not an ordinal
            &cursor::encode("message", "+3"),                      // not as this module writes it
            &cursor::encode("message", "03"),                      // idem
            &cursor::encode("message", "1.5"),                     // not an integer
            &cursor::encode("message", "99999999999999999999999"), // too big
        ] {
            assert!(ordinal(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_request_pages_one_way_with_checked_sizes() {
        let c = cursor(7);
        assert_eq!(
            parse(None, None, None, None),
            Ok(PageRequest::Forward {
                first: 100,
                after: None
            })
        );
        assert_eq!(
            parse(Some(5), Some(&c), None, None),
            Ok(PageRequest::Forward {
                first: 5,
                after: Some(7)
            })
        );
        assert_eq!(
            parse(None, None, None, Some(&c)),
            Ok(PageRequest::Backward {
                last: 100,
                before: Some(7)
            })
        );
        assert_eq!(
            parse(None, None, Some(100), None),
            Ok(PageRequest::Backward {
                last: 100,
                before: None
            })
        );
        for (first, after, last, before) in [
            (Some(5), None, Some(5), None),
            (None, Some(c.as_str()), Some(5), None),
            (Some(5), None, None, Some(c.as_str())),
            (None, Some(c.as_str()), None, Some(c.as_str())),
            (Some(0), None, None, None),
            (Some(-1), None, None, None),
            (Some(101), None, None, None),
            (None, None, Some(0), None),
            (None, None, Some(101), None),
            (None, Some("garbage"), None, None),
        ] {
            assert!(
                parse(first, after, last, before).is_err(),
                "{first:?} {after:?} {last:?} {before:?} was accepted"
            );
        }
        assert_eq!(
            parse(None, None, Some(101), None).err().as_deref(),
            Some("`last` must be between 1 and 100")
        );
    }
}
