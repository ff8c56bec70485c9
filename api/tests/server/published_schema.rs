//! SPEC section 10: the published schemas (`schema/staff.graphql`,
//! `schema/customer.graphql`) are the server's own, so a schema change is a
//! visible diff. `BLESS_SCHEMA=1 cargo test -p backchannel-api --test server
//! published_schema` rewrites them from the server.

use std::path::PathBuf;

fn schema_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schema")
        .join(format!("{name}.graphql"))
}

/// Whether `BLESS_SCHEMA` asks to rewrite the committed files: only `1` does, unset
/// or empty leaves them, and any other value is refused (so `0` cannot bless).
fn blessing() -> bool {
    match std::env::var_os("BLESS_SCHEMA") {
        None => false,
        Some(v) if v.is_empty() => false,
        Some(v) if v == "1" => true,
        Some(v) => panic!(
            "BLESS_SCHEMA must be 1 or unset, got `{}`",
            v.to_string_lossy()
        ),
    }
}

/// Compares the served SDL with the published file, or rewrites the file
/// when `BLESS_SCHEMA=1`.
fn check(name: &str, served: &str) {
    let path = schema_file(name);
    if blessing() {
        std::fs::write(&path, served).unwrap();
        return;
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    if published != served {
        let first = published
            .lines()
            .zip(served.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(published.lines().count().min(served.lines().count()));
        panic!(
            "the served {name} schema differs from {} (first at line {}: published {:?}, served {:?}).\n\
             If the change is intended, rewrite the file with\n  \
             BLESS_SCHEMA=1 cargo test -p backchannel-api --test server published_schema\n\
             and commit the diff.",
            path.display(),
            first + 1,
            published.lines().nth(first).unwrap_or("<end of file>"),
            served.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn the_published_staff_schema_is_the_served_one() {
    check("staff", &backchannel_api::staff::sdl());
}

#[test]
fn the_published_customer_schema_is_the_served_one() {
    check("customer", &backchannel_api::customer::sdl());
}

/// SPEC section 8: the customer schema has no type or field that can carry
/// a private message or any staff-only data: it names none of the staff
/// schema's types but the harmless shared ones, and never says "private".
#[test]
fn the_published_customer_schema_names_no_private_or_staff_only_type() {
    let sdl = backchannel_api::customer::sdl();
    let staff = backchannel_api::staff::sdl();
    let names = |sdl: &str| -> Vec<String> {
        sdl.lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                match words.next()? {
                    "type" | "interface" | "union" | "enum" | "input" | "scalar" => {
                        words.next().map(|n| n.trim_end_matches('{').to_owned())
                    }
                    _ => None,
                }
            })
            .collect()
    };
    let customer_types = names(&sdl);
    assert!(customer_types.iter().any(|n| n == "Query"));
    for forbidden in [
        "PrivateMessage",
        "MessageVisibility",
        "TimelineItem",
        "SystemEvent",
        "AuditEntry",
        "Notification",
        "Staff",
        "Group",
        "AccessRule",
        "PrivacySettings",
        "IssuedToken",
    ] {
        assert!(
            !customer_types.iter().any(|n| n == forbidden),
            "the customer schema names {forbidden}"
        );
    }
    // Every customer type that the staff schema also has is one of the
    // shared, harmless ones.
    let staff_types = names(&staff);
    let shared: Vec<&String> = customer_types
        .iter()
        .filter(|n| staff_types.contains(n))
        .collect();
    for name in &shared {
        assert!(
            [
                "Query",
                "Mutation",
                "Subscription",
                "DateTime",
                "PageInfo",
                "Channel",
                "ConversationStatus",
                // Relay's interface: only `id`, and here only the
                // customer's own conversation implements it.
                "Node",
            ]
            .contains(&name.as_str()),
            "the customer schema shares {name} with the staff schema"
        );
    }
    assert!(!sdl.to_lowercase().contains("private"), "{sdl}");
}
