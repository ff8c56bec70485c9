//! Unit tests of the parsed values: message bodies and names (trimming,
//! bounds) and widget origins (normalisation, refusals, bounded lists).

use super::*;

fn check_body(input: &str, expect: Result<&str, ValueError>) {
    let got = MessageBody::parse(input);
    assert_eq!(
        got.as_ref().map(MessageBody::as_str),
        expect.as_ref().copied()
    );
}

#[test]
fn message_bodies_are_trimmed_and_bounded() {
    check_body("  hello  ", Ok("hello"));
    check_body(
        "",
        Err(ValueError::Empty {
            what: "message body",
        }),
    );
    check_body(
        " \n\t ",
        Err(ValueError::Empty {
            what: "message body",
        }),
    );
    let max = "é".repeat(MAX_MESSAGE_CHARS);
    check_body(&max, Ok(&max));
    check_body(
        &"x".repeat(MAX_MESSAGE_CHARS + 1),
        Err(ValueError::TooLong {
            what: "message body",
            max: MAX_MESSAGE_CHARS,
            actual: MAX_MESSAGE_CHARS + 1,
        }),
    );
}

fn check_origin(input: &str, expect: Option<&str>) {
    let got = WebOrigin::parse(input);
    assert_eq!(
        got.as_ref().ok().map(WebOrigin::as_str),
        expect,
        "{input:?} gave {got:?}"
    );
}

#[test]
fn widget_origins_are_normalised_as_browsers_send_them() {
    check_origin("https://shop.example", Some("https://shop.example"));
    check_origin(" HTTPS://Shop.Example/ ", Some("https://shop.example"));
    check_origin("https://shop.example:443", Some("https://shop.example"));
    check_origin("http://shop.example:80", Some("http://shop.example"));
    check_origin("http://localhost:3000", Some("http://localhost:3000"));
    check_origin(
        "https://shop.example:8443",
        Some("https://shop.example:8443"),
    );
    check_origin("http://127.0.0.1:8080", Some("http://127.0.0.1:8080"));
    check_origin("http://[::1]:8080", Some("http://[::1]:8080"));
    check_origin("http://[::1]", Some("http://[::1]"));
}

#[test]
fn widget_origins_refuse_anything_but_scheme_host_and_port() {
    for bad in [
        "",
        "shop.example",
        "ftp://shop.example",
        "javascript://x",
        "https://",
        "https://shop.example/widget",
        "https://shop.example?x=1",
        "https://shop.example#x",
        "https://user@shop.example",
        "https://shop..example",
        "https://shop_example.com",
        "https://shop.example:",
        "https://shop.example:0",
        "https://shop.example:65536",
        "https://shop.example:08",
        "https://bücher.example",
        "https://[::1",
        "https://[]",
        "https://[::1]x",
        "https://*.shop.example",
        "null",
    ] {
        check_origin(bad, None);
    }
    let long = format!("https://{}.example", "a".repeat(MAX_ORIGIN_CHARS));
    assert!(matches!(
        WebOrigin::parse(&long),
        Err(ValueError::TooLong { what: "origin", .. })
    ));
}

#[test]
fn widget_origin_lists_are_bounded_sorted_and_deduplicated() {
    let list = WidgetOrigins::parse(&[
        "https://b.example",
        "https://a.example",
        "HTTPS://B.example/",
    ])
    .unwrap();
    let got: Vec<&str> = list.as_slice().iter().map(WebOrigin::as_str).collect();
    assert_eq!(got, ["https://a.example", "https://b.example"]);
    assert!(list.allows("https://a.example"));
    assert!(!list.allows("https://A.example"));
    assert!(!list.allows("https://c.example"));
    let many: Vec<String> = (0..=MAX_WIDGET_ORIGINS)
        .map(|i| format!("https://s{i}.example"))
        .collect();
    assert_eq!(
        WidgetOrigins::parse(&many),
        Err(ValueError::TooMany {
            max: MAX_WIDGET_ORIGINS,
            actual: MAX_WIDGET_ORIGINS + 1
        })
    );
    assert!(WidgetOrigins::parse(&many[..MAX_WIDGET_ORIGINS]).is_ok());
    assert!(
        WidgetOrigins::parse::<&str>(&[])
            .unwrap()
            .as_slice()
            .is_empty()
    );
}

#[test]
fn names_are_trimmed_and_bounded() {
    assert_eq!(Name::parse(" Support ").unwrap().as_str(), "Support");
    assert!(Name::parse("   ").is_err());
    assert!(Name::parse(&"n".repeat(MAX_NAME_CHARS)).is_ok());
    assert_eq!(
        Name::parse(&"n".repeat(MAX_NAME_CHARS + 1)),
        Err(ValueError::TooLong {
            what: "name",
            max: MAX_NAME_CHARS,
            actual: MAX_NAME_CHARS + 1
        })
    );
}
