//! Browsers on other origins (SPEC section 8): the staff desk's origins are
//! server configuration (`--staff-origins`), the customer widget's are each
//! company's `widgetOrigins`. tower-http's `CorsLayer` writes the headers;
//! this module decides which origins it allows and refuses what a foreign
//! page could otherwise make the server do without asking first:
//!
//! - a GraphQL POST must be `Content-Type: application/json` (415 otherwise),
//!   so a "simple" cross-origin request (`text/plain`, a form, a typeless
//!   blob), which a browser sends without a preflight, never executes;
//! - a customer request from a foreign origin runs only when the company
//!   concerned lists it: the token's company, checked here, or, for the
//!   anonymous `startConversation`, the widget key's company, checked by the
//!   resolver through [`RequestOrigin`];
//! - a websocket upgrade from a foreign origin that is not allowed is
//!   refused (403), against cross-site websocket hijacking.
//!
//! "Foreign" means an `Origin` header whose host and port differ from the
//! request's `Host`: GraphiQL served by this server, and clients that send no
//! `Origin` (curl, servers, native apps), are not browsers on other origins.
//!
//! Decision record: `docs/decisions/cors.md`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backchannel_domain::ErrorCode;
use backchannel_domain::ids::CompanyId;
use backchannel_domain::values::WebOrigin;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{Tokens, bearer};
use crate::desk::Desk;
use crate::http::Refusal;

/// How long a browser may cache a preflight answer.
pub(crate) const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The staff desk's allowed origins, from the server configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct StaffOrigins(Arc<[WebOrigin]>);

impl StaffOrigins {
    pub(crate) fn new(origins: Vec<WebOrigin>) -> Self {
        StaffOrigins(origins.into())
    }

    pub(crate) fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o.as_str() == origin)
    }
}

/// The request's `Origin` when it is a browser's on another origin; carried
/// into the customer schema so `startConversation` can check it against the
/// widget key's company.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestOrigin(pub Option<String>);

impl RequestOrigin {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        RequestOrigin(foreign_origin(headers).map(str::to_owned))
    }
}

/// The `Origin` header, if present and not the server's own (see the module
/// doc). An unreadable `Origin` counts as foreign, with a value no list holds.
pub(crate) fn foreign_origin(headers: &HeaderMap) -> Option<&str> {
    let origin = headers.get(header::ORIGIN)?;
    let Ok(origin) = origin.to_str() else {
        return Some("");
    };
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => None,
        _ => Some(origin),
    }
}

fn layer(allow: AllowOrigin) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-min-position"),
        ])
        // A browser's script may read a mutation's position and a retry delay.
        .expose_headers([
            HeaderName::from_static(crate::position::LOG_POSITION_HEADER),
            header::RETRY_AFTER,
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// `/graphql`: the configured staff origins, preflight and actual requests.
pub(crate) fn staff_layer(origins: StaffOrigins) -> CorsLayer {
    layer(AllowOrigin::predicate(
        move |origin: &HeaderValue, _: &Parts| origin.to_str().is_ok_and(|o| origins.allows(o)),
    ))
}

/// `/customer/graphql`. A preflight carries neither widget key nor token, so
/// it is answered for any origin some company lists. An actual request with
/// a customer token is answered for its company's origins only; one without
/// (`startConversation`) for any listed origin, its resolver refusing an
/// origin the widget key's company does not list.
pub(crate) fn customer_layer(desk: Arc<Desk>, tokens: Tokens) -> CorsLayer {
    layer(AllowOrigin::predicate(
        move |origin: &HeaderValue, parts: &Parts| {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            let token = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let company = match bearer(token).and_then(|t| tokens.verify_customer(t)) {
                Ok(identity) if parts.method != Method::OPTIONS => Some(identity.company),
                _ => None,
            };
            match company {
                Some(company) => company_allows(&desk, company, origin),
                None => desk.models().state().some_company_allows_origin(origin),
            }
        },
    ))
}

/// Whether `company`'s widget may call from `origin`.
pub(crate) fn company_allows(desk: &Desk, company: CompanyId, origin: &str) -> bool {
    desk.models()
        .state()
        .companies
        .get(&company)
        .is_some_and(|c| c.widget_origins.allows(origin))
}

/// 415 unless the body is declared JSON (`application/json`, any
/// parameters such as `charset`).
#[allow(clippy::result_large_err)]
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), Response> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match declared {
        Some(media) if media.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Validation.as_str(),
            "send the GraphQL request as JSON with Content-Type: application/json",
        )
        .into_response()),
    }
}

/// 403 for a request from a browser origin the server does not allow.
pub(crate) fn origin_refused(what: &str) -> Response {
    Refusal::forbidden(format!("{what} is not allowed from this origin")).into_response()
}
