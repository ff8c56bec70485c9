//! `GET /log`: the stored records verbatim, paged, for the replay tool; only
//! to an operator token (or an owner/admin of the only company).

use serde_json::Value;

use backchannel_testkit::*;

/// Splits a body of u32-BE-length-prefixed records.
fn records(body: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        out.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    assert!(rest.is_empty(), "trailing bytes after the last record");
    out
}

#[tokio::test]
async fn the_operator_pages_through_the_whole_log() {
    let app = TestServer::spawn().await;
    let operator = app.tokens.mint_operator().unwrap().token;
    let head = app.settled_head().await;
    let mut seen = Vec::new();
    let mut from = 1;
    while from <= head {
        let (status, body) = app
            .get_as(&format!("/log?from={from}&limit=7"), Some(&operator))
            .await
            .parts();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let page = records(&body);
        assert!(!page.is_empty() && page.len() <= 7);
        seen.extend(page.iter().map(|r| r.to_vec()));
        from += page.len() as u64;
    }
    assert_eq!(seen.len() as u64, head);
    // Every record is the stored one, in order, chained.
    let stored = app.desk.log().read_all(1, head as usize).await.unwrap();
    // ...the customer data sealed in the export, opened by the server's keys.
    let keys = app.desk.log().keys().unwrap();
    let mut sealed = 0;
    for (bytes, recorded) in seen.iter().zip(&stored) {
        let mut decoded = backchannel_eventlog::codec::decode_record(bytes).unwrap();
        if let backchannel_domain::events::Event::MessagePosted(m) = &decoded.event {
            assert!(
                matches!(m.body, backchannel_domain::values::Content::Sealed(_)),
                "{m:?}"
            );
            sealed += 1;
        }
        keys.open(&mut decoded.event).await.unwrap();
        assert_eq!(&decoded, recorded);
    }
    assert!(sealed > 0, "the demo posts public messages");
    for pair in seen.windows(2) {
        let next = backchannel_eventlog::codec::decode_record(&pair[1]).unwrap();
        assert_eq!(
            next.envelope.prev_hash,
            backchannel_eventlog::codec::record_hash(&pair[0])
        );
    }
}

#[tokio::test]
async fn the_log_is_refused_to_everyone_else() {
    let app = TestServer::spawn().await;
    let cases = [
        (None, 401, "UNAUTHENTICATED"),
        (Some("not-a-token".to_owned()), 401, "UNAUTHENTICATED"),
        (Some(app.token("supervisor")), 403, "FORBIDDEN"),
        (Some(app.token("agent 1")), 403, "FORBIDDEN"),
        (Some(app.demo().customer.clone()), 401, "UNAUTHENTICATED"),
    ];
    for (token, status, code) in cases {
        let (got, body) = app
            .get_as("/log?from=1&limit=10", token.as_deref())
            .await
            .parts();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(
            (got, body["errors"][0]["extensions"]["code"].as_str()),
            (status, Some(code)),
            "{token:?}"
        );
    }
    // The demo has one company: its owner may read the log too.
    let (status, _) = app
        .get_as("/log?from=1&limit=10", Some(&app.token("owner")))
        .await
        .parts();
    assert_eq!(status, 200);
    // Bad paging is a validation error.
    let operator = app.tokens.mint_operator().unwrap().token;
    for path in [
        "/log?from=1&limit=0",
        "/log?from=1&limit=10001",
        "/log?from=x&limit=10",
    ] {
        let (got, _) = app.get_as(path, Some(&operator)).await.parts();
        assert_eq!(got, 400, "{path}");
    }
}
