//! Parsing ids and page sizes at the edge: malformed input is `VALIDATION`.

use std::str::FromStr;

use async_graphql::ID;

use crate::error::ApiError;

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
    let forward = first.is_some() || after.is_some();
    let backward = last.is_some() || before.is_some();
    if forward && backward {
        return Err(ApiError::validation(
            "page forward with `first`/`after` or backward with `last`/`before`, not both",
        ));
    }
    if backward {
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
