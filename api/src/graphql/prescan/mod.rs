//! The admission check of a GraphQL request, before anything recursive sees it.
//!
//! async-graphql's parser and validator recurse: a list literal nested 2,000
//! deep overflows the stack while parsing, and fragments that spread the next
//! one twice make validation walk 2^n selections. So a request is scanned
//! first, as flat text, in one pass with explicit counters and a stack of at
//! most [`Limits::max_nesting`] brackets:
//!
//! - nesting of `{`, `[` and `(` (selections, list values, input objects,
//!   arguments) beyond `max_nesting` is `QUERY_TOO_COMPLEX`;
//! - more than `max_fragments` fragment definitions or `max_fragment_spreads`
//!   spreads is `QUERY_TOO_COMPLEX`;
//! - the document as the validator walks it, every spread replaced by its
//!   fragment, is measured from the spread graph (fragment → the spreads in
//!   it, with the nesting at which each occurs) in topological order with
//!   memoised sizes: more than `max_fragment_expansion` bytes of tokens, or
//!   more than `max_nesting` once expanded, is `QUERY_TOO_COMPLEX`; a cycle
//!   is `VALIDATION`. The size sums every definition's expansion, fragments
//!   included, used or not: validation visits each fragment's selection sets
//!   too, and walks the spreads at each one's level again (an unused fragment
//!   with 500 spreads of a 5,000-field fragment took seconds to validate);
//! - the variables (and request extensions), already JSON-decoded, are walked
//!   with an explicit stack and bounded to `max_nesting` as well;
//! - unbalanced brackets or an unterminated string are `VALIDATION`.
//!
//! The scanner knows GraphQL's lexical rules only as far as bounding needs:
//! strings (with escapes), block strings (`"""`, with `\"""`), comments (`#`
//! to the end of the line), names, the spread `...`, and brackets. Any other
//! byte (punctuation, digits' signs, UTF-8 outside strings) is a token of its
//! own for the size count and otherwise left to the parser to judge.
//!
//! Work is O(N) in the size of the request: each byte is looked at a bounded
//! number of times, the spread graph has at most one edge per spread, and each
//! fragment is sized once.
//!
//! Decision record: `docs/decisions/admission-before-parsing.md`.

mod expand;
mod scan;
#[cfg(test)]
mod tests;

use async_graphql::{Pos, Request};
use async_graphql::{ServerError, Value};
use backchannel_domain::ErrorCode;

use crate::config::Limits;
use expand::{expand_fragments, expanded};
use scan::scan;

/// Refuses a request whose text or variables are nested too deep, whose
/// fragments are too many or expand too far, or that is malformed in a way
/// the bound depends on. Call before the query is parsed (HTTP and
/// websocket `subscribe` payloads alike).
pub(crate) fn check_request(request: &Request, limits: &Limits) -> Result<(), ServerError> {
    check_document(&request.query, limits)?;
    let variables = request.variables.values();
    let extensions = request.extensions.0.values();
    for value in variables.chain(extensions) {
        check_value_nesting(value, limits.max_nesting)?;
    }
    Ok(())
}

fn too_complex(message: String, pos: Option<Pos>) -> ServerError {
    coded(ErrorCode::QueryTooComplex, message, pos)
}

fn malformed(message: String, pos: Option<Pos>) -> ServerError {
    coded(ErrorCode::Validation, message, pos)
}

fn coded(code: ErrorCode, message: String, pos: Option<Pos>) -> ServerError {
    let mut error = ServerError::new(message, pos);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
    error
}

/// A JSON-decoded value nested at most `max` deep (a scalar is depth 0, a
/// list or object of scalars depth 1).
fn check_value_nesting(value: &Value, max: usize) -> Result<(), ServerError> {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::List(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        let depth = depth + 1;
        if depth > max {
            return Err(too_complex(
                format!("the variables are nested deeper than {max} levels"),
                None,
            ));
        }
        stack.extend(children.map(|child| (child, depth)));
    }
    Ok(())
}

/// A definition of the document: an operation or a fragment.
#[derive(Default)]
struct Definition {
    /// Bytes of its tokens, spreads left out.
    own_size: u64,
    /// Deepest bracket nesting in its own text (its selection set's `{` is 1).
    own_depth: usize,
    /// The spreads in it: (fragment name, nesting at the spread).
    spreads: Vec<(usize, usize)>,
}

/// What the scanner found: the definitions and the fragments' names.
struct Scanned {
    operations: Vec<Definition>,
    fragments: Vec<Definition>,
}

/// Checks the query text (see the module documentation).
pub(crate) fn check_document(query: &str, limits: &Limits) -> Result<(), ServerError> {
    let scanned = scan(query, limits)?;
    let (sizes, depths) = expand_fragments(&scanned.fragments)?;
    let mut total: u64 = sizes.iter().fold(0, |sum, size| sum.saturating_add(*size));
    for operation in &scanned.operations {
        let (size, depth) = expanded(operation, &sizes, &depths);
        total = total.saturating_add(size);
        if depth > limits.max_nesting {
            return Err(too_complex(
                format!(
                    "the query is nested deeper than {} levels once its fragments are spread",
                    limits.max_nesting
                ),
                None,
            ));
        }
    }
    if total > limits.max_fragment_expansion as u64 {
        return Err(too_complex(
            format!(
                "the query is larger than {} bytes once its fragments are spread",
                limits.max_fragment_expansion
            ),
            None,
        ));
    }
    Ok(())
}
