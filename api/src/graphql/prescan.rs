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

use std::collections::HashMap;

use async_graphql::{Pos, Request};
use async_graphql::{ServerError, Value};
use backchannel_domain::ErrorCode;

use crate::config::Limits;

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

/// The size and nesting of `definition` with each spread replaced by its
/// fragment, given the fragments' own expanded figures. A spread of an
/// unknown fragment adds nothing (validation refuses it).
fn expanded(definition: &Definition, sizes: &[u64], depths: &[usize]) -> (u64, usize) {
    let mut size = definition.own_size;
    let mut depth = definition.own_depth;
    for &(fragment, at) in &definition.spreads {
        if let (Some(s), Some(d)) = (sizes.get(fragment), depths.get(fragment)) {
            size = size.saturating_add(*s);
            // The fragment's selection set (its depth 1) merges into the
            // selection set holding the spread (depth `at`).
            depth = depth.max(at + d.saturating_sub(1));
        }
    }
    (size, depth)
}

/// The expanded size and nesting of every fragment, computed in topological
/// order of the spread graph (Kahn's algorithm: a fragment is sized once all
/// the fragments it spreads are). A fragment left over is on a cycle, or
/// spreads one that is.
fn expand_fragments(fragments: &[Definition]) -> Result<(Vec<u64>, Vec<usize>), ServerError> {
    let n = fragments.len();
    // Spreads of defined fragments not yet sized, per fragment.
    let mut pending: Vec<usize> = vec![0; n];
    // Who spreads fragment i (once per spread).
    let mut spread_by: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, fragment) in fragments.iter().enumerate() {
        for &(target, _) in &fragment.spreads {
            if let Some(by) = spread_by.get_mut(target) {
                by.push(i);
                pending[i] += 1;
            }
        }
    }
    let mut sizes: Vec<u64> = vec![0; n];
    let mut depths: Vec<usize> = vec![0; n];
    // Sized fragments hold their figures; the rest hold 0 until their turn
    // (never read before: a fragment is sized only when all its targets are).
    let mut ready: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        let (size, depth) = expanded(&fragments[i], &sizes, &depths);
        sizes[i] = size;
        depths[i] = depth;
        done += 1;
        for &by in &spread_by[i] {
            pending[by] -= 1;
            if pending[by] == 0 {
                ready.push(by);
            }
        }
    }
    if done < n {
        return Err(malformed(
            "fragments spread one another in a cycle".to_owned(),
            None,
        ));
    }
    Ok((sizes, depths))
}

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

/// The one pass over the query text.
fn scan(query: &str, limits: &Limits) -> Result<Scanned, ServerError> {
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
                    malformed(
                        "a block string is not terminated".to_owned(),
                        Some(position(query, start)),
                    )
                })?;
                Token::Other
            }
            b'"' => {
                i = string_end(bytes, i + 1).ok_or_else(|| {
                    malformed(
                        "a string is not terminated on its line".to_owned(),
                        Some(position(query, start)),
                    )
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
                        return Err(malformed(
                            format!("the fragment \"{name}\" is defined more than once"),
                            Some(position(query, start)),
                        ));
                    }
                    if fragments.len() >= limits.max_fragments {
                        return Err(too_complex(
                            format!(
                                "the query defines more than {} fragments",
                                limits.max_fragments
                            ),
                            Some(position(query, start)),
                        ));
                    }
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
        let definition = match current {
            InDefinition::Operation(k) => operations.get_mut(k),
            InDefinition::Fragment(k) => fragments.get_mut(k),
            InDefinition::None | InDefinition::FragmentName => None,
        };
        let Some(definition) = definition else {
            continue;
        };

        match token {
            Token::Spread => {
                after_spread = true;
                continue;
            }
            Token::Name(name) if after_spread && name != "on" => {
                after_spread = false;
                if spreads.len() >= limits.max_fragment_spreads {
                    return Err(too_complex(
                        format!(
                            "the query has more than {} fragment spreads",
                            limits.max_fragment_spreads
                        ),
                        Some(position(query, start)),
                    ));
                }
                spreads.push((current, name, stack.len()));
                continue;
            }
            Token::Open(b) => {
                if stack.len() >= limits.max_nesting {
                    return Err(too_complex(
                        format!(
                            "the query is nested deeper than {} levels",
                            limits.max_nesting
                        ),
                        Some(position(query, start)),
                    ));
                }
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
                    return Err(malformed(
                        format!("unbalanced brackets: '{}' closes nothing open", b as char),
                        Some(position(query, start)),
                    ));
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
        return Err(malformed(
            format!("unbalanced brackets: '{}' is never closed", open as char),
            Some(position(query, query.len())),
        ));
    }

    for (definition, name, depth) in spreads {
        let definition = match definition {
            InDefinition::Operation(k) => operations.get_mut(k),
            InDefinition::Fragment(k) => fragments.get_mut(k),
            InDefinition::None | InDefinition::FragmentName => None,
        };
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

/// The line and column (1-based, in characters) of byte `offset`.
fn position(query: &str, offset: usize) -> Pos {
    let before = query.get(..offset).unwrap_or(query);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    let column = before[line_start..].chars().count() + 1;
    Pos { line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    /// The code of `check_document`'s refusal, or `None` when admitted.
    fn check(query: &str) -> Option<&'static str> {
        check_with(query, &limits())
    }

    fn check_with(query: &str, limits: &Limits) -> Option<&'static str> {
        let error = check_document(query, limits).err()?;
        let code = error.extensions.as_ref()?.get("code")?.clone();
        match code {
            Value::String(s) if s == "QUERY_TOO_COMPLEX" => Some("QUERY_TOO_COMPLEX"),
            Value::String(s) if s == "VALIDATION" => Some("VALIDATION"),
            _ => Some("?"),
        }
    }

    fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
        format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn ordinary_queries_are_admitted() {
        assert_eq!(check("{ me { id } }"), None);
        assert_eq!(
            check(
                "query($f: ConversationFilter) { conversations(filter: $f, first: 5) { edges { node { id } } } }"
            ),
            None
        );
        assert_eq!(
            check(
                "mutation { startConversation(widgetKey: \"k\", groupId: \"g\", customerName: \"Ivy\") { token } }"
            ),
            None
        );
        assert_eq!(
            check("{ ...A } fragment A on Query { me { ...B } } fragment B on Staff { id }"),
            None
        );
    }

    #[test]
    fn the_graphql_js_introspection_query_is_admitted() {
        assert_eq!(check(INTROSPECTION), None);
    }

    #[test]
    fn nesting_beyond_the_bound_is_too_complex_for_every_bracket() {
        let max = limits().max_nesting;
        // Selections: the outer `{` and each field's.
        let selections = |depth| format!("{}{}", "{ a ".repeat(depth), "}".repeat(depth));
        assert_eq!(check(&selections(max)), None);
        assert_eq!(check(&selections(max + 1)), Some("QUERY_TOO_COMPLEX"));
        // Lists and input objects inside an argument: `{ a(x: …) }` is 2 deep.
        let list = |depth| format!("{{ a(x: {}) }}", nested("[", "1", "]", depth));
        assert_eq!(check(&list(max - 2)), None);
        assert_eq!(check(&list(max - 1)), Some("QUERY_TOO_COMPLEX"));
        let object = |depth| format!("{{ a(x: {}) }}", nested("{b: ", "1", "}", depth));
        assert_eq!(check(&object(max - 2)), None);
        assert_eq!(check(&object(max - 1)), Some("QUERY_TOO_COMPLEX"));
        // The issue's request: 2,000 deep.
        assert_eq!(check(&list(2000)), Some("QUERY_TOO_COMPLEX"));
        assert_eq!(check(&object(5000)), Some("QUERY_TOO_COMPLEX"));
    }

    #[test]
    fn the_parser_survives_the_deepest_admitted_nesting_on_a_small_stack() {
        // The server parses on a 2 MiB tokio worker; admitted documents must
        // parse with room to spare, here on half of that (a debug build
        // needs ~10 KB a level of selections).
        let max = limits().max_nesting;
        let documents = [
            format!("{{ a(x: {}) }}", nested("[", "1", "]", max - 2)),
            format!("{{ a(x: {}) }}", nested("{b: ", "1", "}", max - 2)),
            format!("{}{}", "{ a ".repeat(max), "}".repeat(max)),
            format!("{{ a(x: {}) }}", nested("[{b: ", "1", "}]", (max - 2) / 2)),
        ];
        for document in documents {
            assert_eq!(check(&document), None);
            let parsed = std::thread::Builder::new()
                .stack_size(1024 * 1024)
                .spawn(move || async_graphql::parser::parse_query(&document).is_ok())
                .unwrap()
                .join();
            assert_eq!(parsed.ok(), Some(true));
        }
    }

    #[test]
    fn brackets_in_strings_block_strings_and_comments_do_not_count() {
        let deep = "[".repeat(100);
        assert_eq!(check(&format!("{{ a(x: \"{deep}\") }}")), None);
        assert_eq!(
            check(&format!("{{ a(x: \"\"\"{deep}\n{deep}\"\"\") }}")),
            None
        );
        assert_eq!(check(&format!("{{ a # {deep}\n b }}")), None);
        // An escaped quote does not end a string, nor `\"""` a block string.
        assert_eq!(check(&format!("{{ a(x: \"\\\"{deep}\") }}")), None);
        assert_eq!(
            check(&format!("{{ a(x: \"\"\"\\\"\"\" {deep} \"\"\") }}")),
            None
        );
        // A comment ends at a carriage return too.
        assert_eq!(check("{ a # }\r b }"), None);
        // But a bracket after a string is counted.
        let list = format!("{{ a(x: \"]\", y: {}) }}", nested("[", "1", "]", 100));
        assert_eq!(check(&list), Some("QUERY_TOO_COMPLEX"));
    }

    #[test]
    fn unicode_anywhere_is_scanned_without_confusion() {
        assert_eq!(check("{ a(x: \"héllo → 😀 \\u00e9\") }"), None);
        assert_eq!(check("{ a(x: \"\"\"ü\n😀\"\"\") # ça\n }"), None);
        // Outside strings the parser will refuse it; the scan only bounds.
        assert_eq!(check("{ é 😀 }"), None);
        let deep = format!("{{ é(x: {}) }}", nested("[", "ü", "]", 100));
        assert_eq!(check(&deep), Some("QUERY_TOO_COMPLEX"));
        // A position in characters, not bytes.
        let error = check_document(
            &format!("{{ é(x: {}) }}", nested("[", "1", "]", 100)),
            &limits(),
        )
        .unwrap_err();
        assert_eq!(error.locations[0].line, 1);
        assert_eq!(error.locations[0].column, 8 + limits().max_nesting - 2);
    }

    #[test]
    fn malformed_text_is_a_validation_error() {
        assert_eq!(check("{ a(x: \"open) }"), Some("VALIDATION"));
        assert_eq!(check("{ a(x: \"line\nbreak\") }"), Some("VALIDATION"));
        assert_eq!(check("{ a(x: \"\"\"open) }"), Some("VALIDATION"));
        assert_eq!(check("{ a(x: \"\\"), Some("VALIDATION"));
        assert_eq!(check("{ a }}"), Some("VALIDATION"));
        assert_eq!(check("{ a(x: [1}) }"), Some("VALIDATION"));
        assert_eq!(check("{ a { b }"), Some("VALIDATION"));
        assert_eq!(
            check("{ a } fragment A on Query { a } fragment A on Query { b }"),
            Some("VALIDATION")
        );
        // Empty and junk text is for the parser to refuse.
        assert_eq!(check(""), None);
        assert_eq!(check("!!"), None);
    }

    /// `fragment F0 on Query { ...F1 ...F1 }` … down to `levels`.
    fn bomb(levels: usize) -> String {
        let mut query = "{ ...F0 }".to_owned();
        for i in 0..levels {
            query.push_str(&format!(
                " fragment F{i} on Query {{ ...F{next} ...F{next} }}",
                next = i + 1
            ));
        }
        query.push_str(&format!(" fragment F{levels} on Query {{ me {{ id }} }}"));
        query
    }

    #[test]
    fn fragment_expansion_is_bounded() {
        assert_eq!(check(&bomb(3)), None);
        for levels in [16, 24, 30, 60, 99] {
            assert_eq!(check(&bomb(levels)), Some("QUERY_TOO_COMPLEX"), "{levels}");
        }
        // Spreads before the definition they name count the same. Each
        // definition counts expanded: B 16 bytes, A 10 + 2 × 16, the
        // operation 2 + 42, 102 in all.
        let later = "fragment B on Query { me { id } } fragment A on Query { ...B ...B } { ...A }";
        let tight = Limits {
            max_fragment_expansion: 101,
            ..limits()
        };
        assert_eq!(check_with(later, &tight), Some("QUERY_TOO_COMPLEX"));
        assert_eq!(
            check_with(
                later,
                &Limits {
                    max_fragment_expansion: 102,
                    ..limits()
                }
            ),
            None
        );
    }

    #[test]
    fn unused_fragments_count_expanded_too() {
        let fields: String = (0..5000).map(|i| format!("b{i} ")).collect();
        let sets = "x{...F0} ".repeat(500);
        let query =
            format!("{{ a }} fragment F0 on Query {{ {fields} }} fragment U on Query {{ {sets} }}");
        assert_eq!(check(&query), Some("QUERY_TOO_COMPLEX"));
        let sets = "x{...F0} ".repeat(5);
        let query =
            format!("{{ a }} fragment F0 on Query {{ {fields} }} fragment U on Query {{ {sets} }}");
        assert_eq!(check(&query), None);
    }

    #[test]
    fn nesting_is_bounded_through_fragments() {
        // Each fragment nests two levels and spreads the next inside them.
        let chain = |n: usize| {
            let mut query = "{ ...F0 }".to_owned();
            for i in 0..n {
                query.push_str(&format!(
                    " fragment F{i} on Query {{ a {{ ...F{} }} }}",
                    i + 1
                ));
            }
            query.push_str(&format!(" fragment F{n} on Query {{ b }}"));
            query
        };
        let max = limits().max_nesting;
        // F0..F(n-1) add one level each on top of the operation's.
        assert_eq!(check(&chain(max - 1)), None);
        assert_eq!(check(&chain(max)), Some("QUERY_TOO_COMPLEX"));
    }

    #[test]
    fn fragment_cycles_are_refused() {
        assert_eq!(
            check("{ ...A } fragment A on Query { ...A }"),
            Some("VALIDATION")
        );
        assert_eq!(
            check(
                "{ ...A } fragment A on Query { a { ...B } } fragment B on Query { ...C } fragment C on Query { ...A }"
            ),
            Some("VALIDATION")
        );
        // Spreading one fragment from many places is no cycle.
        assert_eq!(
            check(
                "{ ...A ...B } fragment A on Query { ...C } fragment B on Query { ...C } fragment C on Query { a }"
            ),
            None
        );
        // Inline fragments are not spreads: `... on`, `... @dir`, `... {`.
        assert_eq!(
            check("{ ... on Query { a } ... @include(if: true) { b } ... { c } }"),
            None
        );
    }

    #[test]
    fn fragment_counts_are_bounded() {
        let few = Limits {
            max_fragments: 2,
            max_fragment_spreads: 3,
            ..limits()
        };
        let defs = |n: usize| {
            (0..n)
                .map(|i| format!(" fragment F{i} on Query {{ a }}"))
                .collect::<String>()
        };
        assert_eq!(
            check_with(&format!("{{ ...F0 ...F1 }}{}", defs(2)), &few),
            None
        );
        assert_eq!(
            check_with(&format!("{{ ...F0 }}{}", defs(3)), &few),
            Some("QUERY_TOO_COMPLEX")
        );
        assert_eq!(
            check_with(
                "{ ...F0 ...F0 ...F0 ...F0 } fragment F0 on Query { a }",
                &few
            ),
            Some("QUERY_TOO_COMPLEX")
        );
        // The scan is linear: a body full of spreads is refused at once.
        let many = format!("{{ {} }}", "...F ".repeat(100_000));
        assert_eq!(check(&many), Some("QUERY_TOO_COMPLEX"));
    }

    #[test]
    fn variables_are_bounded_in_depth() {
        let max = limits().max_nesting;
        let value = |depth: usize| {
            let mut value = serde_json::json!(1);
            for i in 0..depth {
                value = if i % 2 == 0 {
                    serde_json::json!([value])
                } else {
                    serde_json::json!({ "a": value })
                };
            }
            value
        };
        let request = |depth| {
            let body = serde_json::json!({ "query": "{ a }", "variables": { "v": value(depth) } });
            serde_json::from_value::<Request>(body).unwrap()
        };
        assert!(check_request(&request(max), &limits()).is_ok());
        let error = check_request(&request(max + 1), &limits()).unwrap_err();
        assert_eq!(
            error.extensions.unwrap().get("code"),
            Some(&Value::String("QUERY_TOO_COMPLEX".into()))
        );
    }

    /// graphql-js' `getIntrospectionQuery()`, with two more `ofType` levels
    /// than v16 asks for (newer clients ask deeper).
    const INTROSPECTION: &str = r#"
    query IntrospectionQuery {
      __schema {
        queryType { name }
        mutationType { name }
        subscriptionType { name }
        types { ...FullType }
        directives {
          name
          description
          locations
          args { ...InputValue }
        }
      }
    }
    fragment FullType on __Type {
      kind
      name
      description
      fields(includeDeprecated: true) {
        name
        description
        args { ...InputValue }
        type { ...TypeRef }
        isDeprecated
        deprecationReason
      }
      inputFields { ...InputValue }
      interfaces { ...TypeRef }
      enumValues(includeDeprecated: true) {
        name
        description
        isDeprecated
        deprecationReason
      }
      possibleTypes { ...TypeRef }
    }
    fragment InputValue on __InputValue {
      name
      description
      type { ...TypeRef }
      defaultValue
    }
    fragment TypeRef on __Type {
      kind name ofType { kind name ofType { kind name ofType { kind name ofType {
      kind name ofType { kind name ofType { kind name ofType { kind name ofType {
      kind name ofType { kind name } } } } } } } } }
    }
    "#;
}
