//! Relay connections over a conversation's list of events, paged by ordinal.
//!
//! The customer's `messages` and the staff `Conversation.timeline` page the
//! same way. Each lists a conversation's events in a list that only grows
//! (the customer view's positions; the conversation's stream in the log), and
//! a cursor names an entry by its *ordinal*, its index in that list, as a
//! [`crate::graphql::cursor`] `<kind>:<ordinal>`. Never by its global log
//! position: positions count every company's events, so they would tell the
//! caller how busy the server is; an ordinal says no more than how many
//! events came before it in the caller's own list. The list only grows, so an
//! ordinal names the same entry for the conversation's life.
//!
//! Not every ordinal need name an entry (the customer's list also holds
//! openings and assignments), so a page reads the list in windows from its
//! cursor, keeps the entries, and stops once it holds the page plus one (to
//! tell whether there is more) or the list ends: O(page + the other events
//! among its entries) events read, never the whole list. What an ordinal
//! holds is the caller's to say (a `read` function, below); the sizes, the
//! directions, the cursors and the windows are this module's.

use std::future::Future;
use std::ops::Range;

use async_graphql::SimpleObject;

use crate::error::{ApiError, ApiResult};
use crate::graphql::cursor;
use crate::graphql::ids::{page_size_of, pages_backward};

/// The fewest ordinals a window reads, so a run of events that are not
/// entries costs a few reads, not one per event; at most this many are read
/// past the page.
const MIN_WINDOW: usize = 16;

/// Where a page sits in its list.
#[derive(SimpleObject)]
#[graphql(serial)]
pub(crate) struct PageInfo {
    /// More entries follow the page. Paging backward (`last`/`before`):
    /// true exactly when a `before` cursor was given (its entry follows).
    pub has_next_page: bool,
    /// More entries precede the page. Paging forward (`first`/`after`):
    /// true exactly when an `after` cursor was given (its entry precedes).
    pub has_previous_page: bool,
    /// The first edge's cursor: pass it as `before` for the entries before it.
    pub start_cursor: Option<String>,
    /// The last edge's cursor: pass it as `after` for the entries after it.
    pub end_cursor: Option<String>,
}

impl PageInfo {
    /// Where the page `edges` sits; `cursor` is an edge's cursor.
    pub(crate) fn of<E>(
        edges: &[E],
        cursor: impl Fn(&E) -> &String,
        has_previous_page: bool,
        has_next_page: bool,
    ) -> PageInfo {
        PageInfo {
            has_next_page,
            has_previous_page,
            start_cursor: edges.first().map(|e| cursor(e).clone()),
            end_cursor: edges.last().map(|e| cursor(e).clone()),
        }
    }
}

/// How one connection field pages: the kind of its cursors, and what a
/// cursor that names none of its entries is told.
pub(crate) struct Paging {
    kind: &'static str,
    not_an_entry: &'static str,
}

/// What a connection field asked for, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRequest {
    /// `first` entries after the one at ordinal `after` (from the oldest).
    Forward { first: usize, after: Option<usize> },
    /// `last` entries before the one at ordinal `before` (up to the newest).
    Backward { last: usize, before: Option<usize> },
}

/// One page of entries, oldest first, each with its ordinal.
pub(crate) struct Page<T> {
    kind: &'static str,
    entries: Vec<(usize, T)>,
    has_previous_page: bool,
    has_next_page: bool,
}

impl Paging {
    pub(crate) const fn new(kind: &'static str, not_an_entry: &'static str) -> Self {
        Paging { kind, not_an_entry }
    }

    /// The cursor of the entry at `ordinal`.
    pub(crate) fn cursor(&self, ordinal: usize) -> String {
        ordinal_cursor(self.kind, ordinal)
    }

    /// The ordinal a cursor names; `VALIDATION` unless it is one
    /// [`Paging::cursor`] made for this kind.
    pub(crate) fn ordinal(&self, cursor: &str) -> ApiResult<usize> {
        let value = cursor::decode(self.kind, cursor)?;
        value
            .parse::<usize>()
            .ok()
            .filter(|n| n.to_string() == value)
            .ok_or_else(|| ApiError::validation(format!("not a valid {} cursor", self.kind)))
    }

    /// Sizes are 1..=`max` (default `max`), as the other lists'; one
    /// direction per request; cursors of this kind.
    pub(crate) fn request(
        &self,
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
        max: usize,
    ) -> ApiResult<PageRequest> {
        if pages_backward(first, after.is_some(), last, before.is_some())? {
            Ok(PageRequest::Backward {
                last: page_size_of("last", last, max, max)?,
                before: before.map(|c| self.ordinal(c)).transpose()?,
            })
        } else {
            Ok(PageRequest::Forward {
                first: page_size_of("first", first, max, max)?,
                after: after.map(|c| self.ordinal(c)).transpose()?,
            })
        }
    }

    /// One page of a list of `len` ordinals. `read(ordinals)` returns the
    /// entries among `ordinals` (never past `len`), oldest first, each with
    /// its ordinal. A cursor must name an entry (else `VALIDATION`): the
    /// entry of an `after` cursor precedes the page, that of a `before`
    /// cursor follows it.
    pub(crate) async fn page<T, F, Fut>(
        &self,
        len: usize,
        request: PageRequest,
        mut read: F,
    ) -> ApiResult<Page<T>>
    where
        F: FnMut(Range<usize>) -> Fut,
        Fut: Future<Output = ApiResult<Vec<(usize, T)>>>,
    {
        let (entries, has_previous_page, has_next_page) = match request {
            PageRequest::Forward { first, after } => {
                let start = match after {
                    Some(n) => self.names_an_entry(&mut read, len, n).await? + 1,
                    None => 0,
                };
                let (entries, more) = scan(&mut read, start..len, first, true).await?;
                (entries, after.is_some(), more)
            }
            PageRequest::Backward { last, before } => {
                let end = match before {
                    Some(n) => self.names_an_entry(&mut read, len, n).await?,
                    None => len,
                };
                let (entries, more) = scan(&mut read, 0..end, last, false).await?;
                (entries, more, before.is_some())
            }
        };
        Ok(Page {
            kind: self.kind,
            entries,
            has_previous_page,
            has_next_page,
        })
    }

    /// `ordinal`, if an entry is there (one event read); else `VALIDATION`.
    async fn names_an_entry<T, F, Fut>(
        &self,
        read: &mut F,
        len: usize,
        ordinal: usize,
    ) -> ApiResult<usize>
    where
        F: FnMut(Range<usize>) -> Fut,
        Fut: Future<Output = ApiResult<Vec<(usize, T)>>>,
    {
        // `ordinal < len`, so `ordinal + 1` cannot overflow.
        if ordinal >= len || read(ordinal..ordinal + 1).await?.is_empty() {
            return Err(ApiError::validation(self.not_an_entry));
        }
        Ok(ordinal)
    }
}

impl<T> Page<T> {
    /// The page's edges, made by `edge(cursor, node)`, and where it sits.
    pub(crate) fn into_edges<E>(self, mut edge: impl FnMut(String, T) -> E) -> (Vec<E>, PageInfo) {
        let cursor = |ordinal: usize| ordinal_cursor(self.kind, ordinal);
        let info = PageInfo {
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
            start_cursor: self.entries.first().map(|(n, _)| cursor(*n)),
            end_cursor: self.entries.last().map(|(n, _)| cursor(*n)),
        };
        let edges = self
            .entries
            .into_iter()
            .map(|(n, node)| edge(cursor(n), node))
            .collect();
        (edges, info)
    }
}

/// The cursor of the entry at `ordinal` of a list of `kind`.
fn ordinal_cursor(kind: &str, ordinal: usize) -> String {
    cursor::encode(kind, &ordinal.to_string())
}

/// Up to `size` entries among the ordinals `range`, taken from its start
/// (`oldest_first`) or from its end, returned oldest first; and whether the
/// range holds more entries beyond them in that direction.
async fn scan<T, F, Fut>(
    read: &mut F,
    mut range: Range<usize>,
    size: usize,
    oldest_first: bool,
) -> ApiResult<(Vec<(usize, T)>, bool)>
where
    F: FnMut(Range<usize>) -> Fut,
    Fut: Future<Output = ApiResult<Vec<(usize, T)>>>,
{
    // Nearest first: oldest first forward, newest first backward.
    let mut found: Vec<(usize, T)> = Vec::with_capacity(size.saturating_add(1));
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
        let mut entries = read(ordinals).await?;
        if !oldest_first {
            entries.reverse();
        }
        found.extend(entries);
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

    const MESSAGES: Paging = Paging::new("message", "not one of the messages");

    fn parse(
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
    ) -> Result<PageRequest, String> {
        MESSAGES
            .request(first, after, last, before, 100)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn cursors_name_ordinals_and_nothing_else() {
        assert_eq!(MESSAGES.ordinal(&MESSAGES.cursor(0)).ok(), Some(0));
        assert_eq!(MESSAGES.ordinal(&MESSAGES.cursor(249)).ok(), Some(249));
        let timeline = Paging::new("timeline", "not one of the items");
        for bad in [
            "",
            "%%%",
            "NDI",                                                 // "42": no kind
            &cursor::encode("conversation", "3"),                  // another kind
            &timeline.cursor(3),                                   // idem
            &cursor::encode("message", "-1"),                      // not an ordinal
            &cursor::encode("message", "+3"),                      // not as this module writes it
            &cursor::encode("message", "03"),                      // idem
            &cursor::encode("message", "1.5"),                     // not an integer
            &cursor::encode("message", "99999999999999999999999"), // too big
        ] {
            assert!(MESSAGES.ordinal(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_request_pages_one_way_with_checked_sizes() {
        let c = MESSAGES.cursor(7);
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

    /// Pages a list of `len` ordinals whose entries are those `is_entry`
    /// keeps, counting the ordinals read.
    fn check(
        len: usize,
        is_entry: impl Fn(usize) -> bool,
        request: PageRequest,
    ) -> (Vec<usize>, bool, bool, usize) {
        let mut read_count = 0;
        let page = MESSAGES.page(len, request, |ordinals: Range<usize>| {
            assert!(ordinals.end <= len, "{ordinals:?} past {len}");
            read_count += ordinals.len();
            let entries: Vec<(usize, ())> =
                ordinals.filter(|n| is_entry(*n)).map(|n| (n, ())).collect();
            std::future::ready(Ok(entries))
        });
        let page = futures_util::FutureExt::now_or_never(page)
            .expect("ready futures")
            .expect("a page");
        let ordinals = page.entries.iter().map(|(n, _)| *n).collect();
        (
            ordinals,
            page.has_previous_page,
            page.has_next_page,
            read_count,
        )
    }

    #[test]
    fn a_page_holds_the_nearest_entries_and_reads_a_window_beyond() {
        let every_third = |n: usize| n.is_multiple_of(3);
        // Forward from the start: 0, 3, …, 27, and more after.
        let (got, previous, next, read) = check(
            1000,
            every_third,
            PageRequest::Forward {
                first: 10,
                after: None,
            },
        );
        assert_eq!(got, (0..10).map(|n| n * 3).collect::<Vec<_>>());
        assert_eq!((previous, next), (false, true));
        assert!(read <= 33 + MIN_WINDOW, "{read} ordinals read");
        // Backward before the entry at 30: 3, …, 27 (oldest first), 0 before.
        let (got, previous, next, _) = check(
            1000,
            every_third,
            PageRequest::Backward {
                last: 9,
                before: Some(30),
            },
        );
        assert_eq!(got, (1..10).map(|n| n * 3).collect::<Vec<_>>());
        assert_eq!((previous, next), (true, true));
        // The newest: the list's end, nothing after.
        let (got, previous, next, _) = check(
            10,
            every_third,
            PageRequest::Backward {
                last: 100,
                before: None,
            },
        );
        assert_eq!(got, [0, 3, 6, 9]);
        assert_eq!((previous, next), (false, false));
    }

    #[test]
    fn a_cursor_must_name_an_entry_of_the_list() {
        let page = |len: usize, request: PageRequest| {
            let page = MESSAGES.page(len, request, |ordinals: Range<usize>| {
                let entries: Vec<(usize, ())> = ordinals
                    .filter(|n| n.is_multiple_of(2))
                    .map(|n| (n, ()))
                    .collect();
                std::future::ready(Ok(entries))
            });
            futures_util::FutureExt::now_or_never(page)
                .expect("ready futures")
                .map(|p| p.entries.len())
                .map_err(|e| e.to_string())
        };
        let not_one = Err("not one of the messages".to_owned());
        for after in [1, 10, 11, usize::MAX] {
            let forward = PageRequest::Forward {
                first: 5,
                after: Some(after),
            };
            assert_eq!(page(10, forward), not_one, "after {after}");
            let backward = PageRequest::Backward {
                last: 5,
                before: Some(after),
            };
            assert_eq!(page(10, backward), not_one, "before {after}");
        }
        let last_entry = PageRequest::Forward {
            first: 5,
            after: Some(8),
        };
        assert_eq!(page(10, last_entry), Ok(0));
    }
}
