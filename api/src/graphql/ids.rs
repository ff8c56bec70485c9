//! Parsing ids and page sizes at the edge: malformed input is `VALIDATION`.

use std::str::FromStr;

use async_graphql::ID;
use backchannel_projections::Page;

use crate::error::{ApiError, ApiResult};
use crate::graphql::cursor;

/// Parses a GraphQL `ID` into a domain id.
pub(crate) fn parse<T>(id: &ID) -> Result<T, ApiError>
where
    T: FromStr<Err = backchannel_domain::ids::IdParseError>,
{
    id.as_str()
        .parse()
        .map_err(|err: backchannel_domain::ids::IdParseError| ApiError::validation(err.to_string()))
}

/// Renders a domain id as a GraphQL `ID`.
pub(crate) fn id(value: impl std::fmt::Display) -> ID {
    ID(value.to_string())
}

/// A page size given as `first`: 1..=`max` (SPEC section 8: at most 100).
pub(crate) fn page_size(first: Option<i32>, default: usize, max: usize) -> Result<usize, ApiError> {
    page_size_of("first", first, default, max)
}

/// A page size given as the argument `name` (`first`, `last`): 1..=`max`,
/// `default` (at most `max`) when absent.
pub(crate) fn page_size_of(
    name: &str,
    size: Option<i32>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let Some(size) = size else {
        return Ok(default.min(max));
    };
    match usize::try_from(size) {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::validation(format!(
            "`{name}` must be between 1 and {max}"
        ))),
    }
}

/// Whether a connection's arguments page backward (`last`, `before`) rather
/// than forward (`first`, `after`); mixing the two is `VALIDATION`.
pub(crate) fn pages_backward(
    first: Option<i32>,
    after: bool,
    last: Option<i32>,
    before: bool,
) -> Result<bool, ApiError> {
    let forward = first.is_some() || after;
    let backward = last.is_some() || before;
    if forward && backward {
        return Err(ApiError::validation(
            "page forward with `first`/`after` or backward with `last`/`before`, not both",
        ));
    }
    Ok(backward)
}

/// One direction of a Relay list that pages by its own cursor values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `first` entries after the cursor `after`.
    Forward { first: usize, after: Option<String> },
    /// `last` entries before the cursor `before`.
    Backward { last: usize, before: Option<String> },
}

/// Checks a connection's arguments: one direction per request (`first` or
/// `after` with `last` or `before` is `VALIDATION`), sizes 1..=`max`.
pub(crate) fn direction(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
    default: usize,
    max: usize,
) -> Result<Direction, ApiError> {
    if pages_backward(first, after.is_some(), last, before.is_some())? {
        Ok(Direction::Backward {
            last: page_size_of("last", last, default, max)?,
            before,
        })
    } else {
        Ok(Direction::Forward {
            first: page_size_of("first", first, default, max)?,
            after,
        })
    }
}

impl Direction {
    /// Reads the page asked for, its cursor a `kind` cursor (`VALIDATION`
    /// unless it holds a `K`): `read_forward(first, after)` lists from the
    /// start or after `after`, `read_backward(last, before)` up to the end or
    /// before `before`. With the page come `has_previous_page` and
    /// `has_next_page`: the cursor's side holds more exactly when a cursor was
    /// given, the other side when the page says more follow.
    pub(crate) fn read<K: FromStr, T>(
        self,
        kind: &str,
        read_forward: impl FnOnce(usize, Option<K>) -> Page<T>,
        read_backward: impl FnOnce(usize, Option<K>) -> Page<T>,
    ) -> ApiResult<(Page<T>, bool, bool)> {
        let (backward, size, at) = match self {
            Direction::Forward { first, after } => (false, first, after),
            Direction::Backward { last, before } => (true, last, before),
        };
        let at: Option<K> = at
            .map(|c| {
                cursor::decode(kind, &c)?
                    .parse()
                    .map_err(|_| ApiError::validation(format!("not a valid {kind} cursor")))
            })
            .transpose()?;
        let given = at.is_some();
        let page = if backward {
            read_backward(size, at)
        } else {
            read_forward(size, at)
        };
        let more = page.has_next;
        Ok(if backward {
            (page, more, given)
        } else {
            (page, given, more)
        })
    }
}
