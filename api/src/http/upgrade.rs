//! The GET side of both GraphQL endpoints: websocket upgrades, with the
//! token taken from `connection_init` (or the upgrade request).

use std::net::SocketAddr;

use async_graphql::Data;
use axum::extract::{ConnectInfo, Extension, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;

use crate::auth::bearer;
use crate::context::{CustomerAuth, StaffAuth};
use crate::cors::{self, RequestOrigin};
use crate::ratelimit::ClientAddr;
use crate::transport::ConnectionPlace;
use crate::websocket::{self, Endpoint, Session};

use super::{AppState, authorization};

/// The token of a websocket's `connection_init` payload: `Authorization`
/// (`"Bearer <token>"`), `authorization`, or `token` (the bare token).
fn payload_token(payload: &serde_json::Value) -> Option<String> {
    let object = payload.as_object()?;
    for key in ["Authorization", "authorization"] {
        if let Some(value) = object.get(key).and_then(|v| v.as_str()) {
            return Some(value.to_owned());
        }
    }
    object
        .get("token")
        .and_then(|v| v.as_str())
        .map(|t| format!("Bearer {t}"))
}

pub(super) async fn staff_ws(
    State(app): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    connection_place: Option<Extension<ConnectionPlace>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if cors::foreign_origin(&headers).is_some_and(|o| !app.staff_origins.allows(o)) {
        return cors::origin_refused("the staff websocket");
    }
    let header = authorization(&headers).map(str::to_owned);
    let tokens = app.shared.tokens.clone();
    let desk = app.shared.desk.clone();
    let limiters = app.shared.limiters.clone();
    let client = ClientAddr(remote.ip());
    let endpoint = Endpoint {
        schema: app.staff_ws.clone(),
        desk: app.shared.desk.clone(),
        parsed: app.parsed.clone(),
        persisted: app.shared.persisted.staff.clone(),
        limits: app.shared.limits,
        authenticate: Box::new(move |payload| {
            let token = payload_token(payload).or(header);
            let verified = bearer(token.as_deref()).and_then(|t| tokens.verify_staff_until(t));
            let Ok((identity, expires_at)) = verified else {
                // Counted with the address's other token failures; the
                // socket closes with 4403 either way.
                let _ = limiters.token_failure(client);
                return None;
            };
            crate::context::check_staff(&desk, identity).ok()?;
            let mut data = Data::default();
            data.insert(StaffAuth(Ok(identity)));
            data.insert(client);
            Some(Session { data, expires_at })
        }),
    };
    let connection_place = connection_place.map(|Extension(place)| place);
    websocket::upgrade(&app.sockets, remote, connection_place, upgrade, endpoint)
}

pub(super) async fn customer_ws(
    State(app): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    connection_place: Option<Extension<ConnectionPlace>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = RequestOrigin::of(&headers);
    if let Some(o) = origin.0.as_deref()
        && !app
            .shared
            .desk
            .models()
            .state()
            .some_company_allows_origin(o)
    {
        return cors::origin_refused("the customer websocket");
    }
    let header = authorization(&headers).map(str::to_owned);
    let tokens = app.shared.tokens.clone();
    let desk = app.shared.desk.clone();
    let limiters = app.shared.limiters.clone();
    let client = ClientAddr(remote.ip());
    let endpoint = Endpoint {
        schema: app.customer_ws.clone(),
        desk: app.shared.desk.clone(),
        parsed: app.parsed.clone(),
        persisted: app.shared.persisted.customer.clone(),
        limits: app.shared.limits,
        authenticate: Box::new(move |payload| {
            let token = payload_token(payload).or(header);
            let verified = bearer(token.as_deref()).and_then(|t| tokens.verify_customer_until(t));
            let Ok((identity, expires_at)) = verified else {
                let _ = limiters.token_failure(client);
                return None;
            };
            // From a browser on another origin: only one the token's company lists.
            if let Some(o) = origin.0.as_deref()
                && !cors::company_allows(&desk, identity.company, o)
            {
                return None;
            }
            let mut data = Data::default();
            data.insert(CustomerAuth(Ok(identity)));
            data.insert(client);
            data.insert(origin.clone());
            Some(Session { data, expires_at })
        }),
    };
    let connection_place = connection_place.map(|Extension(place)| place);
    websocket::upgrade(&app.sockets, remote, connection_place, upgrade, endpoint)
}
