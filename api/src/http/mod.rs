//! The HTTP surface: the two GraphQL endpoints (POST for queries and
//! mutations, GET upgrades to `graphql-transport-ws` websockets), GraphiQL,
//! health and readiness. Request bodies are read here with the size limit,
//! batched (JSON array) requests are refused before GraphQL sees them, and a
//! request is admitted by `graphql::prescan` before anything parses it, then
//! executed under its deadline. Bad tokens count against the client's
//! address (`ratelimit`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::{ObjectType, Schema, SubscriptionType};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, FromRequest, FromRequestParts, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use backchannel_domain::ErrorCode;
use http_body_util::LengthLimitError;
use tower_http::trace::TraceLayer;

use crate::auth::{TokenError, Tokens, bearer};
use crate::context::{CustomerAuth, Shared, StaffAuth};
use crate::cors::{self, RequestOrigin, StaffOrigins};
use crate::customer::CustomerSchema;
use crate::graphql::parsed::ParsedQueries;
use crate::graphql::prescan::check_request;
use crate::metrics::Metrics;
use crate::ratelimit::{ClientAddr, RetryAfter, TrustedProxies};
use crate::staff::StaffSchema;
use crate::websocket::Sockets;

mod probes;
mod refusal;
mod upgrade;

#[cfg(test)]
mod tests;

pub(crate) use refusal::Refusal;

/// Everything the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    /// Behind HTTP requests (codes added after execution).
    pub staff: StaffSchema,
    pub customer: CustomerSchema,
    /// Behind websockets (codes added by an extension as responses stream).
    pub staff_ws: StaffSchema,
    pub customer_ws: CustomerSchema,
    pub shared: Shared,
    /// Parsed documents of the query texts clients repeat.
    pub parsed: Arc<ParsedQueries>,
    /// The open websockets, their caps and the stop signal.
    pub sockets: Arc<Sockets>,
    /// Counted by the handlers, rendered by `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// Whether `GET /metrics` answers (else 404).
    pub serve_metrics: bool,
    /// Browser origins the staff desk may be served from (`cors`).
    pub staff_origins: StaffOrigins,
    /// `/readyz` is 503 beyond this lag (`Config::ready_max_lag`).
    pub ready_max_lag: u64,
    /// Whose `X-Forwarded-For` names the client (`ratelimit::ClientAddr`).
    pub trusted_proxies: TrustedProxies,
}

pub(crate) fn router(state: AppState, graphiql: bool) -> Router {
    let mut router = Router::new()
        .route(
            "/graphql",
            get(upgrade::staff_ws)
                .post(staff_graphql)
                .layer(cors::staff_layer(state.staff_origins.clone())),
        )
        .route(
            "/customer/graphql",
            get(upgrade::customer_ws)
                .post(customer_graphql)
                .layer(cors::customer_layer(
                    state.shared.desk.clone(),
                    state.shared.tokens.clone(),
                )),
        )
        .route("/reports/enquiries", get(crate::report::enquiries))
        .route("/log", get(crate::log_export::page))
        .route("/log/head", get(crate::log_export::head))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics));
    if graphiql {
        router = router.merge(crate::graphiql::routes());
    }
    let trusted = Extension(state.trusted_proxies.clone());
    router
        .layer(trusted)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Reads one GraphQL request from the body, or answers the refusal.
async fn read_request(body: Body, limit: usize) -> Result<async_graphql::Request, Response> {
    // axum's `to_bytes` bounds the read (http-body-util's `Limited`); its
    // error wraps the cause, told apart here for the answer.
    let bytes: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(err) if crate::transport::is_body_timeout(&err) => {
            return Err(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::Validation.as_str(),
                "the request body did not arrive in time",
            )
            .into_response());
        }
        Err(err) if std::error::Error::source(&err).is_some_and(|e| e.is::<LengthLimitError>()) => {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge.as_str(),
                format!("the request body is larger than {limit} bytes"),
            )
            .into_response());
        }
        Err(_) => {
            return Err(Refusal::validation("the request body could not be read").into_response());
        }
    };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Refusal::validation(
            "batched requests are not supported: send one operation per request",
        )
        .into_response());
    }
    serde_json::from_slice(&bytes).map_err(|_| {
        Refusal::validation(
            "the body must be a JSON GraphQL request: {\"query\": ..., \"variables\": ...}",
        )
        .into_response()
    })
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

async fn execute<Q, M, S>(
    schema: &Schema<Q, M, S>,
    request: async_graphql::Request,
    endpoint: &'static str,
    app: &AppState,
) -> Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let deadline = app.shared.limits.deadline;
    let metrics = &app.metrics;
    let started = Instant::now();
    let mut request = request;
    let operation = operation_name(&mut request);
    let mutation = is_mutation(app, endpoint, &mut request).await;
    let appended = crate::position::Appended::default();
    let request = request.data(appended.clone());
    // Validation runs synchronously in the first poll (the admission check
    // bounds it); the deadline bounds the resolvers. On expiry the request's
    // future is dropped: an append already handed to the log completes, so a
    // mutation may have taken effect (a retry with its idempotencyKey tells).
    let mut response = match tokio::time::timeout(deadline, schema.execute(request)).await {
        Ok(response) => response,
        Err(_) => async_graphql::Response::from_errors(vec![crate::error::timed_out(deadline)]),
    };
    response
        .errors
        .iter_mut()
        .for_each(crate::graphql::codes::add_code);
    // Codes as plain strings (`VALIDATION`, not `"VALIDATION"`), joined.
    let codes: Vec<String> = response
        .errors
        .iter()
        .filter_map(|e| e.extensions.as_ref().and_then(|x| x.get("code")))
        .map(|c| match c {
            async_graphql::Value::String(code) => code.clone(),
            other => other.to_string(),
        })
        .collect();
    let elapsed = started.elapsed();
    metrics.request(
        endpoint,
        operation.as_deref(),
        codes.first().map(String::as_str),
        elapsed,
    );
    tracing::info!(
        endpoint,
        operation = operation.as_deref().unwrap_or("-"),
        errors = %codes.join(","),
        elapsed_ms = elapsed.as_millis() as u64,
        "graphql"
    );
    // A mutation's answer names the log position that holds its effect
    // (`crate::position`), for reads on other nodes; an anonymous caller's
    // answer names none (the log's position is activity across companies).
    let anonymous = codes
        .iter()
        .any(|code| code == ErrorCode::Unauthenticated.as_str());
    let position = (mutation && !anonymous)
        .then(|| crate::position::answer_position(&appended, &app.shared.desk));
    if let Some(position) = position {
        crate::position::stamp(&mut response, position);
    }
    let mut answer = json_response(&response);
    if let Some(position) = position {
        answer.headers_mut().insert(
            crate::position::LOG_POSITION_HEADER,
            header::HeaderValue::from(position),
        );
    }
    if let Some(retry) = longest_retry(&response)
        && let Ok(value) = header::HeaderValue::from_str(&retry.seconds().to_string())
    {
        answer.headers_mut().insert(header::RETRY_AFTER, value);
    }
    answer
}

/// The request's `operationName`, else the name of its document's only
/// operation (`query Inbox { … }` sent without `operationName`). The document
/// is the one `admit` prepared; one that does not parse has no name here.
fn operation_name(request: &mut async_graphql::Request) -> Option<String> {
    if let Some(name) = &request.operation_name {
        return Some(name.clone());
    }
    match &request.parsed_query().ok()?.operations {
        async_graphql::parser::types::DocumentOperations::Multiple(operations)
            if operations.len() == 1 =>
        {
            operations.keys().next().map(|name| name.to_string())
        }
        _ => None,
    }
}

/// Whether the request runs a mutation: by its prepared document, or for a
/// persisted query's hash alone, by the stored document.
async fn is_mutation(
    app: &AppState,
    endpoint: &'static str,
    request: &mut async_graphql::Request,
) -> bool {
    use async_graphql::extensions::apollo_persisted_queries::CacheStorage;
    let name = request.operation_name.clone();
    let kind = if request.query.is_empty() {
        match crate::websocket::persisted_hash(request) {
            Some(hash) => {
                let persisted = &app.shared.persisted;
                let store = if endpoint == "customer" {
                    &persisted.customer
                } else {
                    &persisted.staff
                };
                store
                    .0
                    .get(hash)
                    .await
                    .and_then(|d| crate::position::operation_type(&d, name.as_deref()))
            }
            None => None,
        }
    } else {
        request
            .parsed_query()
            .ok()
            .and_then(|d| crate::position::operation_type(d, name.as_deref()))
    };
    kind == Some(async_graphql::parser::types::OperationType::Mutation)
}

/// Refuses a request on a node whose projections stopped, or answers `400`
/// for a bad `X-Min-Position`, or waits (bounded) until this node has
/// applied it (`crate::position`).
async fn reach_min_position(app: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    if let Some(refused) = crate::position::halted(&app.shared.desk) {
        return Err(refused);
    }
    match crate::position::min_position(headers)? {
        None => Ok(()),
        Some(position) => {
            crate::position::wait(
                &app.shared.desk,
                position,
                app.shared.limits.min_position_wait,
            )
            .await
        }
    }
}

/// The longest retry delay of the response's `RATE_LIMITED` errors.
fn longest_retry(response: &async_graphql::Response) -> Option<RetryAfter> {
    response
        .errors
        .iter()
        .filter_map(|e| e.extensions.as_ref()?.get("retryAfterMs").cloned())
        .filter_map(|ms| match ms {
            async_graphql::Value::Number(n) => n.as_u64(),
            _ => None,
        })
        .max()
        .map(|ms| RetryAfter(Duration::from_millis(ms)))
}

/// `response` as a JSON body. Like `axum::Json`, but into a buffer sized for
/// a page of results: `axum::Json` starts at 128 bytes and grows by copying
/// (a 50-conversation inbox answer is ~12 KB).
fn json_response(response: &async_graphql::Response) -> Response {
    let mut body = Vec::with_capacity(16 * 1024);
    match serde_json::to_writer(&mut body, response) {
        Ok(()) => (
            [(header::CONTENT_TYPE, "application/json")],
            Bytes::from(body),
        )
            .into_response(),
        Err(_) => Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::error::INTERNAL,
            "the response could not be written",
        )
        .into_response(),
    }
}

/// A POST to either GraphQL endpoint: the client's address, the headers
/// (content type, token, origin, `X-Min-Position`) and the body, read only
/// by [`GraphqlPost::admit`].
struct GraphqlPost {
    client: ClientAddr,
    headers: HeaderMap,
    body: Body,
}

impl<S: Send + Sync> FromRequest<S> for GraphqlPost {
    type Rejection = Infallible;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Infallible> {
        let (mut parts, body) = request.into_parts();
        let client = ClientAddr::from_request_parts(&mut parts, state).await?;
        Ok(GraphqlPost {
            client,
            headers: parts.headers,
            body,
        })
    }
}

impl GraphqlPost {
    /// Reads the request and admits it (`graphql::prescan`) before anything
    /// parses it; then hands it the cached parse of its text and the
    /// client's address, and waits for the read models to reach the
    /// caller's `X-Min-Position`.
    async fn admit(self, app: &AppState) -> Result<async_graphql::Request, Response> {
        let limits = &app.shared.limits;
        let mut request = read_request(self.body, limits.max_body_bytes).await?;
        if let Err(refused) = check_request(&request, limits) {
            tracing::info!(reason = %refused.message, "request refused before parsing");
            return Err(json_response(&async_graphql::Response::from_errors(vec![
                refused,
            ])));
        }
        crate::graphql::parsed::bound_persisted(&mut request);
        app.parsed.prepare(&mut request);
        reach_min_position(app, &self.headers).await?;
        Ok(request.data(self.client))
    }
}

async fn staff_graphql(State(app): State<AppState>, post: GraphqlPost) -> Response {
    let auth = match bearer_of(&app, &post, Tokens::verify_staff) {
        Ok(verified) => StaffAuth(verified),
        Err(refused) => return refused,
    };
    let request = match post.admit(&app).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    execute(&app.staff, request.data(auth), "staff", &app).await
}

async fn customer_graphql(State(app): State<AppState>, post: GraphqlPost) -> Response {
    let auth = match bearer_of(&app, &post, Tokens::verify_customer) {
        Ok(verified) => CustomerAuth(verified),
        Err(refused) => return refused,
    };
    // A preflight is answered for any listed origin, so the company concerned
    // is checked here (the token's) or in `startConversation` (the key's).
    let origin = RequestOrigin::of(&post.headers);
    if let (Some(origin), Ok(identity)) = (origin.0.as_deref(), &auth.0)
        && !cors::company_allows(&app.shared.desk, identity.company, origin)
    {
        return cors::origin_refused("this company's widget");
    }
    let request = match post.admit(&app).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let request = request.data(auth).data(origin);
    execute(&app.customer, request, "customer", &app).await
}

/// Counts a bad or expired bearer token against the client's address, and
/// answers `429 RATE_LIMITED` once it has failed too often. A request without
/// a token, or with a good one, is not counted.
fn token_failure<T>(
    app: &AppState,
    client: ClientAddr,
    verified: &Result<T, TokenError>,
) -> Option<Response> {
    if !matches!(verified, Err(TokenError::Invalid)) {
        return None;
    }
    let retry = app.shared.limiters.token_failure(client).err()?;
    tracing::info!(client = %client.0, "token failures rate-limited");
    Some(
        Refusal::rate_limited(
            retry,
            "too many requests with a bad or expired token from this address",
        )
        .into_response(),
    )
}

/// What both POST endpoints check before reading the body: a JSON request
/// (`cors::require_json`), then its bearer token as `verify` reads it. The
/// answer is the token's identity or why there is none, for the resolvers to
/// judge; or the refusal of a request that is not JSON or whose address has
/// sent too many bad tokens (`token_failure`).
#[allow(clippy::result_large_err)] // the refusal is the response itself
fn bearer_of<T>(
    app: &AppState,
    post: &GraphqlPost,
    verify: impl FnOnce(&Tokens, &str) -> Result<T, TokenError>,
) -> Result<Result<T, TokenError>, Response> {
    cors::require_json(&post.headers)?;
    let verified = bearer(authorization(&post.headers)).and_then(|t| verify(&app.shared.tokens, t));
    match token_failure(app, post.client, &verified) {
        Some(refused) => Err(refused),
        None => Ok(verified),
    }
}
