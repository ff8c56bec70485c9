//! The routes outside GraphQL execution, driven through the router with
//! `tower::ServiceExt::oneshot` (no socket): status codes and bodies for
//! good and bad requests.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;

use super::{Refusal, router};
use crate::config::Config;
use crate::demo::DemoTokens;
use crate::ratelimit::{RateLimits, RetryAfter};
use crate::startup::{app_state, open_desk};
use crate::websocket::Sockets;

struct Fixture {
    router: Router,
    demo: DemoTokens,
    operator: String,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn fixture(configure: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().to_owned(), SocketAddr::from(([127, 0, 0, 1], 0)));
    config.rate_limits = RateLimits::UNLIMITED;
    configure(&mut config);
    let (desk, tokens) = open_desk(&config).await.unwrap();
    let demo = crate::demo::load(&desk, &tokens).await.unwrap();
    let operator = tokens.mint_operator().unwrap().token;
    let (stop_tx, stop) = watch::channel(false);
    let sockets = Sockets::new(config.transport, stop);
    let state = app_state(&config, desk, tokens, sockets).unwrap();
    Fixture {
        router: router(state, config.graphiql),
        demo,
        operator,
        _stop: stop_tx,
        _dir: dir,
    }
}

impl Fixture {
    fn token(&self, label: &str) -> String {
        let (.., token) = self.demo.staff.iter().find(|(l, ..)| l == label).unwrap();
        token.clone()
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> Answer {
        let mut request = Request::get(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn send(&self, mut request: Request<Body>) -> Answer {
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 40000))));
        let response = self.router.clone().oneshot(request).await.unwrap();
        Answer::read(response).await
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    async fn read(response: axum::response::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }

    /// The code of a refusal's one error (and that it has exactly one).
    fn refusal_code(&self) -> String {
        let body = self.json();
        assert_eq!(body["errors"].as_array().map(Vec::len), Some(1), "{body}");
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code: {body}"))
            .to_owned()
    }

    fn header(&self, name: impl axum::http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[tokio::test]
async fn health_and_readiness_answer_in_plain_text() {
    let app = fixture(|_| {}).await;
    let health = app.get("/healthz", None).await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (StatusCode::OK, "alive\n")
    );
    let ready = app.get("/readyz", None).await;
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (StatusCode::OK, "ready\n")
    );
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_unless_turned_off() {
    let app = fixture(|_| {}).await;
    let metrics = app.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert_eq!(
        metrics.header(header::CONTENT_TYPE),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(metrics.text().contains("# TYPE "), "{}", metrics.text());

    let off = fixture(|config| config.metrics = false).await;
    assert_eq!(
        off.get("/metrics", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_log_head_is_for_the_operator_and_the_only_company_s_owner_and_admins() {
    let app = fixture(|_| {}).await;
    let anonymous = app.get("/log/head", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.refusal_code(), "UNAUTHENTICATED");
    let forged = app.get("/log/head", Some("not-a-token")).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.refusal_code(), "UNAUTHENTICATED");
    let agent = app.get("/log/head", Some(&app.token("agent 1"))).await;
    assert_eq!(agent.status, StatusCode::FORBIDDEN);
    assert_eq!(agent.refusal_code(), "FORBIDDEN");

    let owner = app.get("/log/head", Some(&app.token("owner"))).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.text());
    let head = owner.json();
    let operator = app.get("/log/head", Some(&app.operator)).await.json();
    assert_eq!(head["position"], operator["position"]);
    assert!(head["position"].as_u64().is_some_and(|p| p > 0), "{head}");
    assert_eq!(head["hash"].as_str().map(str::len), Some(64), "{head}");
    assert_eq!(head["hash"], operator["hash"]);
    assert!(head["mac"].is_string(), "{head}");
}

#[tokio::test]
async fn log_pages_refuse_bad_positions_and_serve_length_prefixed_records() {
    let app = fixture(|_| {}).await;
    let owner = app.token("owner");
    for (query, says) in [
        ("from=abc", "positions (whole numbers)"),
        ("from=0", "`from` starts at 1"),
        ("limit=0", "`limit` must be in 1..=10000"),
        ("limit=10001", "`limit` must be in 1..=10000"),
        ("to=999999999", "past the last position you may read"),
    ] {
        let refused = app.get(&format!("/log?{query}"), Some(&owner)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(refused.refusal_code(), "VALIDATION", "{query}");
        let message = refused.json()["errors"][0]["message"].to_string();
        assert!(message.contains(says), "{query}: {message}");
    }
    let anonymous = app.get("/log?from=1", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.refusal_code(), "UNAUTHENTICATED");

    let page = app.get("/log?from=2&limit=3", Some(&app.operator)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_eq!(
        page.header(header::CONTENT_TYPE),
        Some("application/vnd.backchannel.log-page")
    );
    assert!(page.header("x-backchannel-upto-hash").is_some());
    // Three records, each a big-endian u32 length and that many bytes.
    let mut rest = page.body.as_slice();
    let mut records = 0;
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        assert!(len > 0 && len <= tail.len(), "record {records}: {len}");
        rest = &tail[len..];
        records += 1;
    }
    assert!(rest.is_empty());
    assert_eq!(records, 3);
}

#[tokio::test]
async fn the_enquiry_report_checks_its_caller_and_its_parameters() {
    let app = fixture(|_| {}).await;
    let range = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    let anonymous = app.get(&format!("/reports/enquiries?{range}"), None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.refusal_code(), "UNAUTHENTICATED");

    let owner = app.token("owner");
    for query in [
        "to=2100-01-01T00:00:00Z".to_owned(),
        "from=yesterday&to=2100-01-01T00:00:00Z".to_owned(),
        format!("{range}&format=xml"),
        format!("{range}&group=not-an-id"),
    ] {
        let refused = app
            .get(&format!("/reports/enquiries?{query}"), Some(&owner))
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(refused.refusal_code(), "VALIDATION", "{query}");
    }

    let report = app
        .get(
            &format!("/reports/enquiries?{range}&format=json"),
            Some(&owner),
        )
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text());
    assert_eq!(
        report.header(header::CONTENT_TYPE),
        Some("application/json")
    );
    let csv = app
        .get(&format!("/reports/enquiries?{range}"), Some(&owner))
        .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text());
    assert_eq!(
        csv.header(header::CONTENT_TYPE),
        Some("text/csv; charset=utf-8")
    );
    assert!(!csv.body.is_empty());
}

#[tokio::test]
async fn graphiql_serves_its_pages_and_assets_only_when_enabled() {
    let app = fixture(|config| config.graphiql = true).await;
    let page = app.get("/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("/graphql"), "{}", page.text());
    let customer = app.get("/customer", None).await;
    assert_eq!(customer.status, StatusCode::OK);
    assert!(customer.text().contains("/customer/graphql"));
    let missing = app.get("/graphiql/assets/nothing.js", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.text(), "no such GraphiQL asset\n");

    let off = fixture(|config| config.graphiql = false).await;
    assert_eq!(off.get("/", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn graphql_requests_refused_before_execution_get_the_same_error_shape() {
    let app = fixture(|_| {}).await;
    let post = |content_type: &str, body: &str| {
        Request::post("/graphql")
            .header(header::CONTENT_TYPE, content_type)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", app.token("owner")),
            )
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let batch = app
        .send(post("application/json", r#"[{"query":"{ me { id } }"}]"#))
        .await;
    assert_eq!(batch.status, StatusCode::BAD_REQUEST);
    assert_eq!(batch.refusal_code(), "VALIDATION");
    let form = app
        .send(post("text/plain", r#"{"query":"{ me { id } }"}"#))
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(form.refusal_code(), "VALIDATION");
    let good = app
        .send(post("application/json", r#"{"query":"{ me { id } }"}"#))
        .await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.text());
    assert!(
        good.json()["data"]["me"]["id"].is_string(),
        "{}",
        good.text()
    );
}

#[tokio::test]
async fn a_refusal_with_a_retry_delay_carries_it_in_the_body_and_the_header() {
    let retry = RetryAfter(std::time::Duration::from_millis(1500));
    let answer = Answer::read(Refusal::rate_limited(retry, "slow down").into_response()).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.header(header::RETRY_AFTER), Some("2"));
    assert_eq!(
        answer.json(),
        json!({ "errors": [{
            "message": "slow down: try again in 1500 ms",
            "extensions": { "code": "RATE_LIMITED", "retryAfterMs": 1500 },
        }] })
    );
    let plain = Answer::read(Refusal::forbidden("no").into_response()).await;
    assert_eq!(plain.status, StatusCode::FORBIDDEN);
    assert_eq!(plain.header(header::RETRY_AFTER), None);
    assert_eq!(
        plain.json(),
        json!({ "errors": [{ "message": "no", "extensions": { "code": "FORBIDDEN" } }] })
    );
}
