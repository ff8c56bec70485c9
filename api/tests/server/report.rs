//! `GET /reports/enquiries`: the same bytes as `write_report` (which
//! `replay-tool report` runs) over the same log, and SPEC section 4's
//! permissions.

use backchannel_projections::report::{ReportFormat, ReportRequest, write_report};
use backchannel_projections::time::parse_rfc3339;
use serde_json::Value;

use backchannel_testkit::demo::{BOB, COMPANY, OWNER, SUPPORT};
use backchannel_testkit::*;

const RANGE: &str = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";

fn expected(app: &TestServer, viewer: &str, format: ReportFormat, group: Option<&str>) -> Vec<u8> {
    let request = ReportRequest {
        from: parse_rfc3339("2000-01-01T00:00:00Z").unwrap(),
        to: parse_rfc3339("2100-01-01T00:00:00Z").unwrap(),
        group: group.map(|g| g.parse().unwrap()),
        company: Some(COMPANY.parse().unwrap()),
        viewer: Some(viewer.parse().unwrap()),
        format,
    };
    let mut out = Vec::new();
    write_report(app.desk.log(), &request, &mut out).unwrap();
    out
}

#[tokio::test]
async fn the_report_is_the_same_bytes_as_the_replay_tools() {
    let app = TestServer::spawn().await;
    let owner = app.token("owner");
    let (status, csv) = app
        .get_as(
            &format!("/reports/enquiries?{RANGE}&format=csv"),
            Some(&owner),
        )
        .await
        .parts();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&csv));
    // The report's opens are recorded (appended) in the background: the
    // log's head moves once, before the expected report is computed.
    app.desk.read_audit().flush().await;
    assert_eq!(csv, expected(&app, OWNER, ReportFormat::Csv, None));
    let text = String::from_utf8(csv).unwrap();
    // The closed demo enquiry, with its private message marked.
    assert!(
        text.contains("Courier shows it delivered to a neighbour."),
        "{text}"
    );
    assert!(text.contains("PRIVATE"), "{text}");

    let (status, json) = app
        .get_as(
            &format!("/reports/enquiries?{RANGE}&format=json&group={SUPPORT}"),
            Some(&owner),
        )
        .await
        .parts();
    assert_eq!(status, 200);
    app.desk.read_audit().flush().await;
    assert_eq!(
        json,
        expected(&app, OWNER, ReportFormat::Json, Some(SUPPORT))
    );
    let _: Value = serde_json::from_slice(&json).expect("the JSON report parses");
}

#[tokio::test]
async fn enquiry_history_holders_read_their_groups_and_agents_without_it_are_refused() {
    let app = TestServer::spawn().await;
    let bob = app.token("agent 2"); // ENQUIRY_HISTORY, member of Support
    let (status, body) = app
        .get_as(&format!("/reports/enquiries?{RANGE}"), Some(&bob))
        .await
        .parts();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    app.desk.read_audit().flush().await;
    assert_eq!(body, expected(&app, BOB, ReportFormat::Csv, None));

    let alice = app.token("agent 1"); // no ENQUIRY_HISTORY
    let (status, body) = app
        .get_as(&format!("/reports/enquiries?{RANGE}"), Some(&alice))
        .await
        .parts();
    assert_eq!(status, 403);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
}

#[tokio::test]
async fn bad_report_requests_get_their_code() {
    let app = TestServer::spawn().await;
    let owner = app.token("owner");
    let cases: [(&str, Option<&str>, u16, &str); 6] = [
        (
            "/reports/enquiries?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
            None,
            401,
            "UNAUTHENTICATED",
        ),
        (
            "/reports/enquiries?to=2100-01-01T00:00:00Z",
            Some(&owner),
            400,
            "VALIDATION",
        ),
        (
            "/reports/enquiries?from=yesterday&to=2100-01-01T00:00:00Z",
            Some(&owner),
            400,
            "VALIDATION",
        ),
        (
            "/reports/enquiries?from=2100-01-01T00:00:00Z&to=2000-01-01T00:00:00Z",
            Some(&owner),
            400,
            "VALIDATION",
        ),
        (
            "/reports/enquiries?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&format=xml",
            Some(&owner),
            400,
            "VALIDATION",
        ),
        (
            "/reports/enquiries?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&group=01900000-0000-7000-8000-00000000ffff",
            Some(&owner),
            404,
            "NOT_FOUND",
        ),
    ];
    for (path, token, status, code) in cases {
        let (got, body) = app.get_as(path, token).await.parts();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(
            (got, body["errors"][0]["extensions"]["code"].as_str()),
            (status, Some(code)),
            "{path}"
        );
    }
    // A customer token is not a staff token.
    let customer = app.demo().customer.clone();
    let (got, _) = app
        .get_as(&format!("/reports/enquiries?{RANGE}"), Some(&customer))
        .await
        .parts();
    assert_eq!(got, 401);
}
