//! The GET side of both GraphQL endpoints: websocket upgrades, with the
//! token taken from `connection_init` (or the upgrade request).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use async_graphql::{Data, ObjectType, Schema, SubscriptionType};
use axum::extract::{ConnectInfo, FromRequestParts, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::auth::{TokenError, Tokens, bearer};
use crate::context::{CustomerAuth, StaffAuth};
use crate::cors::{self, RequestOrigin};
use crate::graphql::parsed::PersistedQueries;
use crate::ratelimit::{ClientAddr, Limiters};
use crate::transport::ConnectionPlace;
use crate::websocket::{self, Authenticate, Endpoint, Session};

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

/// What both endpoints take from an upgrade request: the TCP peer, the
/// listener's place for the connection (`transport`), the headers (origin,
/// token) and the upgrade itself.
pub(super) struct UpgradeRequest {
    remote: SocketAddr,
    connection_place: Option<ConnectionPlace>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for UpgradeRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let ConnectInfo(remote) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let connection_place = parts.extensions.get::<ConnectionPlace>().cloned();
        let headers = parts.headers.clone();
        let upgrade = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(UpgradeRequest {
            remote,
            connection_place,
            headers,
            upgrade,
        })
    }
}

impl UpgradeRequest {
    /// Upgrades the connection to a websocket served by `endpoint`.
    fn open<Q, M, S>(self, app: &AppState, endpoint: Endpoint<Q, M, S>) -> Response
    where
        Q: ObjectType + 'static,
        M: ObjectType + 'static,
        S: SubscriptionType + 'static,
    {
        let UpgradeRequest {
            remote,
            connection_place,
            upgrade,
            ..
        } = self;
        websocket::upgrade(&app.sockets, remote, connection_place, upgrade, endpoint)
    }
}

/// What both endpoints check a socket's token with: the upgrade request's
/// `Authorization` header (used when `connection_init` carries no token),
/// the server's tokens and rate limits, and the client's address.
struct TokenCheck {
    header: Option<String>,
    tokens: Tokens,
    limiters: Arc<Limiters>,
    client: ClientAddr,
}

impl TokenCheck {
    fn new(app: &AppState, request: &UpgradeRequest) -> Self {
        TokenCheck {
            header: authorization(&request.headers).map(str::to_owned),
            tokens: app.shared.tokens.clone(),
            limiters: app.shared.limiters.clone(),
            client: ClientAddr(request.remote.ip()),
        }
    }

    /// The identity `verify` finds in the socket's token, and when the token
    /// expires. A missing or bad token is counted with the address's other
    /// token failures; the socket closes with 4403 either way.
    fn verify<I>(
        &self,
        payload: &serde_json::Value,
        verify: impl FnOnce(&Tokens, &str) -> Result<(I, SystemTime), TokenError>,
    ) -> Option<(I, SystemTime)> {
        let token = payload_token(payload).or_else(|| self.header.clone());
        match bearer(token.as_deref()).and_then(|t| verify(&self.tokens, t)) {
            Ok(verified) => Some(verified),
            Err(_) => {
                let _ = self.limiters.token_failure(self.client);
                None
            }
        }
    }

    /// A session until `expires_at`, holding the client's address (the
    /// caller adds the identity).
    fn session(&self, expires_at: SystemTime) -> Session {
        let mut data = Data::default();
        data.insert(self.client);
        Session { data, expires_at }
    }
}

impl AppState {
    /// A websocket endpoint of `schema` (with its persisted queries) over
    /// this server's desk, parse cache and limits; each session opens
    /// through `authenticate`.
    fn endpoint<Q, M, S>(
        &self,
        schema: &Schema<Q, M, S>,
        persisted: &PersistedQueries,
        authenticate: Authenticate,
    ) -> Endpoint<Q, M, S> {
        Endpoint {
            schema: schema.clone(),
            desk: self.shared.desk.clone(),
            parsed: self.parsed.clone(),
            persisted: persisted.clone(),
            limits: self.shared.limits,
            authenticate,
        }
    }
}

pub(super) async fn staff_ws(State(app): State<AppState>, request: UpgradeRequest) -> Response {
    if cors::foreign_origin(&request.headers).is_some_and(|o| !app.staff_origins.allows(o)) {
        return cors::origin_refused("the staff websocket");
    }
    let check = TokenCheck::new(&app, &request);
    let desk = app.shared.desk.clone();
    let authenticate: Authenticate = Box::new(move |payload| {
        let (identity, expires_at) = check.verify(payload, Tokens::verify_staff_until)?;
        crate::context::check_staff(&desk, identity).ok()?;
        let mut session = check.session(expires_at);
        session.data.insert(StaffAuth(Ok(identity)));
        Some(session)
    });
    let endpoint = app.endpoint(&app.staff_ws, &app.shared.persisted.staff, authenticate);
    request.open(&app, endpoint)
}

pub(super) async fn customer_ws(State(app): State<AppState>, request: UpgradeRequest) -> Response {
    let origin = RequestOrigin::of(&request.headers);
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
    let check = TokenCheck::new(&app, &request);
    let desk = app.shared.desk.clone();
    let authenticate: Authenticate = Box::new(move |payload| {
        let (identity, expires_at) = check.verify(payload, Tokens::verify_customer_until)?;
        // From a browser on another origin: only one the token's company lists.
        if let Some(o) = origin.0.as_deref()
            && !cors::company_allows(&desk, identity.company, o)
        {
            return None;
        }
        let mut session = check.session(expires_at);
        session.data.insert(CustomerAuth(Ok(identity)));
        session.data.insert(origin.clone());
        Some(session)
    });
    let endpoint = app.endpoint(
        &app.customer_ws,
        &app.shared.persisted.customer,
        authenticate,
    );
    request.open(&app, endpoint)
}
