//! The one pass over the query text: GraphQL's lexical rules as far as
//! bounding needs them, the definitions and their spreads, and the nesting
//! of brackets.

use std::collections::HashMap;

use async_graphql::{Pos, ServerError};

use super::{Definition, Scanned, malformed, too_complex};
use crate::config::Limits;

/// Where the scanner is in the document's definitions.
#[derive(Clone, Copy)]
enum InDefinition {
    /// Between definitions.
    None,
    Operation(usize),
    Fragment(usize),
    /// After the keyword `fragment`, before its name.
    FragmentName,
}

impl InDefinition {
    /// The definition this names: an operation or a fragment, by index.
    fn of<'d>(
        self,
        operations: &'d mut [Definition],
        fragments: &'d mut [Definition],
    ) -> Option<&'d mut Definition> {
        match self {
            InDefinition::Operation(k) => operations.get_mut(k),
            InDefinition::Fragment(k) => fragments.get_mut(k),
            InDefinition::None | InDefinition::FragmentName => None,
        }
    }
}

/// The one pass over the query text.
pub(super) fn scan(query: &str, limits: &Limits) -> Result<Scanned, ServerError> {
    let bytes = query.as_bytes();
    let mut operations: Vec<Definition> = Vec::new();
    let mut fragments: Vec<Definition> = Vec::new();
    let mut fragment_names: HashMap<&str, usize> = HashMap::new();
    // Spreads by name, resolved to fragment indices at the end (a fragment
    // may be spread before it is defined).
    let mut spreads: Vec<(InDefinition, &str, usize)> = Vec::new();
    let mut stack: Vec<u8> = Vec::new();
    let mut current = InDefinition::None;
    // After `...`: the next name is a fragment's, unless it is `on`.
    let mut after_spread = false;
    let mut i = 0;

    while i < bytes.len() {
        let start = i;
        let b = bytes[i];
        // One token per iteration; `i` moves past it.
        let token: Token = match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i = block_string_end(bytes, i + 3).ok_or_else(|| {
                    malformed_at(query, start, "a block string is not terminated")
                })?;
                Token::Other
            }
            b'"' => {
                i = string_end(bytes, i + 1).ok_or_else(|| {
                    malformed_at(query, start, "a string is not terminated on its line")
                })?;
                Token::Other
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                i += 3;
                Token::Spread
            }
            b'{' | b'[' | b'(' => {
                i += 1;
                Token::Open(b)
            }
            b'}' | b']' | b')' => {
                i += 1;
                Token::Close(b)
            }
            b if is_name_byte(b) => {
                while i < bytes.len() && is_name_byte(bytes[i]) {
                    i += 1;
                }
                Token::Name(&query[start..i])
            }
            _ => {
                // Any other byte, or a whole UTF-8 sequence, on its own.
                i += 1;
                while i < bytes.len() && (bytes[i] & 0xC0) == 0x80 {
                    i += 1;
                }
                Token::Other
            }
        };

        // Which definition this token belongs to.
        if stack.is_empty() {
            match (current, token) {
                (InDefinition::None, Token::Name("fragment")) => {
                    current = InDefinition::FragmentName;
                    continue;
                }
                (InDefinition::FragmentName, Token::Name(name)) => {
                    if fragment_names.insert(name, fragments.len()).is_some() {
                        let message = format!("the fragment \"{name}\" is defined more than once");
                        return Err(malformed_at(query, start, &message));
                    }
                    check_limit(fragments.len(), limits.max_fragments, query, start, |max| {
                        format!("the query defines more than {max} fragments")
                    })?;
                    current = InDefinition::Fragment(fragments.len());
                    fragments.push(Definition::default());
                }
                (InDefinition::None | InDefinition::FragmentName, _) => {
                    // An operation (`query …`, `{ … }`), or text the parser
                    // will refuse: counted as an operation either way.
                    current = InDefinition::Operation(operations.len());
                    operations.push(Definition::default());
                }
                _ => {}
            }
        }
        let Some(definition) = current.of(&mut operations, &mut fragments) else {
            continue;
        };

        match token {
            Token::Spread => {
                after_spread = true;
                continue;
            }
            Token::Name(name) if after_spread && name != "on" => {
                after_spread = false;
                check_limit(
                    spreads.len(),
                    limits.max_fragment_spreads,
                    query,
                    start,
                    |max| format!("the query has more than {max} fragment spreads"),
                )?;
                spreads.push((current, name, stack.len()));
                continue;
            }
            Token::Open(b) => {
                check_limit(stack.len(), limits.max_nesting, query, start, |max| {
                    format!("the query is nested deeper than {max} levels")
                })?;
                stack.push(b);
                definition.own_depth = definition.own_depth.max(stack.len());
            }
            Token::Close(b) => {
                let opened = stack.pop();
                let matches = matches!(
                    (opened, b),
                    (Some(b'{'), b'}') | (Some(b'['), b']') | (Some(b'('), b')')
                );
                if !matches {
                    let message =
                        format!("unbalanced brackets: '{}' closes nothing open", b as char);
                    return Err(malformed_at(query, start, &message));
                }
                if stack.is_empty() && b == b'}' {
                    // The selection set closing a definition ends it.
                    current = InDefinition::None;
                }
            }
            Token::Name(_) | Token::Other => {}
        }
        after_spread = false;
        definition.own_size = definition.own_size.saturating_add((i - start) as u64);
    }

    if let Some(&open) = stack.last() {
        let message = format!("unbalanced brackets: '{}' is never closed", open as char);
        return Err(malformed_at(query, query.len(), &message));
    }

    for (definition, name, depth) in spreads {
        let definition = definition.of(&mut operations, &mut fragments);
        match (definition, fragment_names.get(name)) {
            (Some(definition), Some(&fragment)) => definition.spreads.push((fragment, depth)),
            // A spread of an unknown fragment: its own bytes, and the
            // validator's error.
            (Some(definition), None) => {
                definition.own_size = definition.own_size.saturating_add(3 + name.len() as u64)
            }
            (None, _) => {}
        }
    }
    Ok(Scanned {
        operations,
        fragments,
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Token<'a> {
    Name(&'a str),
    Spread,
    Open(u8),
    Close(u8),
    Other,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The index after the closing quote of a string whose text starts at `i`;
/// `None` when the string is not closed on its line.
fn string_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            b'\n' | b'\r' => return None,
            _ => i += 1,
        }
    }
    None
}

/// The index after the closing `"""` of a block string whose text starts at
/// `i`; `\"""` is an escaped delimiter.
fn block_string_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"\\\"\"\"") {
            i += 4;
        } else if rest.starts_with(b"\"\"\"") {
            return Some(i + 3);
        } else {
            i += 1;
        }
    }
    None
}

/// A malformed query, refused at byte `offset`.
fn malformed_at(query: &str, offset: usize, message: &str) -> ServerError {
    malformed(message.to_owned(), Some(position(query, offset)))
}

/// Refuses the query at byte `offset` when it already has `count` of what
/// `limit` bounds; `beyond(limit)` says what it exceeds.
fn check_limit(
    count: usize,
    limit: usize,
    query: &str,
    offset: usize,
    beyond: impl FnOnce(usize) -> String,
) -> Result<(), ServerError> {
    if count < limit {
        return Ok(());
    }
    Err(too_complex(beyond(limit), Some(position(query, offset))))
}

/// The line and column (1-based, in characters) of byte `offset`.
fn position(query: &str, offset: usize) -> Pos {
    let before = query.get(..offset).unwrap_or(query);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    let column = before[line_start..].chars().count() + 1;
    Pos { line, column }
}
