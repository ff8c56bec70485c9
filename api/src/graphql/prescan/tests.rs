//! The admission check against requests built to hurt: deep nesting,
//! fragment bombs and cycles, malformed text, deep variables.

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
