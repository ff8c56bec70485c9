//! GraphiQL, served from the binary with no request to any other host (SPEC
//! section 8): the page at `/` (staff) and `/customer` (customer), its
//! files under `/graphiql/assets/`. The third-party files are vendored
//! verbatim from npm packages (`api/assets/graphiql/README.md` names each,
//! `scripts/fetch-graphiql.sh` re-fetches them) and embedded here.
//!
//! The page carries a Content-Security-Policy that allows scripts, styles
//! and connections (fetch, websockets) from its own origin only, so even a
//! URL inside a bundle cannot make the browser load from elsewhere.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Where the page's files are served.
pub(crate) const ASSET_PATH: &str = "/graphiql/assets/";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// Its name carries its package's version, so it never changes under
    /// that name and browsers may keep it.
    versioned: bool,
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// A file vendored verbatim into `assets/graphiql/vendor/`, under a name
/// that carries its package's version.
macro_rules! vendored {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../assets/graphiql/vendor/", $name)),
            versioned: true,
        }
    };
}

static ASSETS: &[Asset] = &[
    vendored!("graphiql-4.1.2.min.js", JS),
    vendored!("graphiql-4.1.2.min.css", CSS),
    vendored!("react-18.3.1.production.min.js", JS),
    vendored!("react-dom-18.3.1.production.min.js", JS),
    Asset {
        name: "start.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/start.js"),
        versioned: false,
    },
];

const PAGE: &str = include_str!("../assets/graphiql/page.html");

/// Everything the page may load or connect to: its own origin ('self'
/// covers same-origin `ws:`/`wss:` too), inline styles (React sets `style`
/// attributes) and the `data:` fonts and images of GraphiQL's stylesheet.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The assets' ETags (blake3 of their bytes), computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{}\"", &blake3::hash(a.bytes).to_hex()[..32]))
        .collect()
});

/// The GraphiQL routes: the staff page, the customer page, the assets.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { page("staff", "/graphql") }))
        .route(
            "/customer",
            get(|| async { page("customer", "/customer/graphql") }),
        )
        .route(&format!("{ASSET_PATH}{{name}}"), get(asset))
}

/// The page for one endpoint: `title` and `endpoint` are constants, never
/// request input.
fn page(title: &'static str, endpoint: &'static str) -> Response {
    let html = PAGE
        .replace("{{TITLE}}", title)
        .replace("{{ENDPOINT}}", endpoint);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

/// One embedded file: versioned ones cached for a year, `start.js`
/// revalidated by ETag.
async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such GraphiQL asset\n").into_response();
    };
    let asset = &ASSETS[index];
    let etag = ETAGS.get(index).map(String::as_str).unwrap_or_default();
    let cache = if asset.versioned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            asset.bytes,
        )
            .into_response()
    };
    let response_headers = response.headers_mut();
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(etag) {
        response_headers.insert(header::ETAG, value);
    }
    response
}
