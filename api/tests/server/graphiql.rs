//! SPEC section 8: GraphiQL is served from the binary with no request to
//! any other host.
//!
//! What a browser loads from the page is decided by (1) the page's
//! `<script src>`, `<link href>` and other `src`/`href` attributes, (2) the
//! stylesheet's `url(…)` and `@import`, and (3) what the scripts load at run
//! time: `import(…)`, `importScripts`, workers, `fetch`, websockets,
//! `EventSource`, `sendBeacon`, and script or image elements given a `src`.
//! The check below is precise about those: every attribute target is a path
//! on this server or a `data:` URL, every `url(…)` too, no `@import`, and no
//! run-time loader in any script is handed a literal absolute URL. It does
//! not forbid URLs elsewhere in the bundles (React's error decoder link,
//! license comments, markdown link detection), which nothing loads. The
//! page and our own `start.js` name no `http://` or `https://` at all, and
//! the page's Content-Security-Policy allows only its own origin.

use serde_json::json;

use backchannel_testkit::*;

/// A GET with extra header lines, through the harness' client.
async fn get(app: &TestServer, path: &str, extra: &str) -> Reply {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra}\r\n",
        app.addr
    );
    app.send(request.as_bytes()).await
}

/// A header's value, empty when the answer has none.
fn header<'r>(got: &'r Reply, name: &str) -> &'r str {
    got.header(name).unwrap_or("")
}

/// The values of every `name="…"` attribute in `html`.
fn attributes(html: &str, name: &str) -> Vec<String> {
    let needle = format!(" {name}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// A target a browser resolves on this server (a path, not `//host`) or
/// carries inline (`data:`).
fn is_local(target: &str) -> bool {
    (target.starts_with('/') && !target.starts_with("//")) || target.starts_with("data:")
}

/// Every place in `script` where a run-time loader is given a string
/// literal that is an absolute or protocol-relative URL.
fn external_loads(script: &str) -> Vec<String> {
    const LOADERS: [&str; 10] = [
        "import(",
        "importScripts(",
        "new Worker(",
        "new SharedWorker(",
        "fetch(",
        "new WebSocket(",
        "new EventSource(",
        "sendBeacon(",
        ".src=",
        ".href=",
    ];
    let mut found = Vec::new();
    for loader in LOADERS {
        for (at, _) in script.match_indices(loader) {
            let argument = script[at + loader.len()..].trim_start();
            let literal = argument.trim_start_matches(['"', '\'', '`']);
            if literal.len() < argument.len()
                && ["http:", "https:", "//", "ws:", "wss:"]
                    .iter()
                    .any(|p| literal.starts_with(p))
            {
                found.push(script[at..(at + 80).min(script.len())].to_owned());
            }
        }
    }
    // ES module imports (`import … from "https://…"`) would load too.
    for (at, _) in script
        .match_indices("from\"http")
        .chain(script.match_indices("from \"http"))
    {
        found.push(script[at..(at + 80).min(script.len())].to_owned());
    }
    found
}

/// The `url(…)` targets and `@import`s of a stylesheet.
fn stylesheet_loads(css: &str) -> Vec<String> {
    let mut targets: Vec<String> = css
        .match_indices("url(")
        .map(|(at, _)| {
            let rest = &css[at + 4..];
            rest[..rest.find(')').unwrap()]
                .trim_matches(['"', '\'', ' '])
                .to_owned()
        })
        .collect();
    targets.extend(css.match_indices("@import").map(|_| "@import".to_owned()));
    targets
}

#[tokio::test]
async fn graphiql_pages_and_assets_load_only_from_this_server() {
    let app = TestServer::spawn().await;
    for (path, endpoint) in [("/", "/graphql"), ("/customer", "/customer/graphql")] {
        let page = get(&app, path, "").await;
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
        let csp = header(&page, "content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("connect-src 'self';"), "{csp}");
        assert!(!csp.contains("http") && !csp.contains('*'), "{csp}");
        let html = String::from_utf8(page.bytes.clone()).unwrap();
        assert!(html.contains(&format!("data-endpoint=\"{endpoint}\"")));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );

        let scripts = attributes(&html, "src");
        let links = attributes(&html, "href");
        assert!(scripts.len() >= 4 && !links.is_empty(), "{html}");
        for target in scripts.iter().chain(&links) {
            assert!(is_local(target), "{path} loads {target}");
            if target.starts_with("data:") {
                continue;
            }
            let asset = get(&app, target, "").await;
            assert_eq!(asset.status, 200, "{target}");
            assert_eq!(header(&asset, "x-content-type-options"), "nosniff");
            assert!(!header(&asset, "etag").is_empty(), "{target}");
            let text = String::from_utf8(asset.bytes.clone()).unwrap();
            if target.ends_with(".js") {
                assert_eq!(
                    header(&asset, "content-type"),
                    "text/javascript; charset=utf-8"
                );
                let loads = external_loads(&text);
                assert!(loads.is_empty(), "{target} loads {loads:?}");
            } else {
                assert!(target.ends_with(".css"), "{target}");
                assert_eq!(header(&asset, "content-type"), "text/css; charset=utf-8");
                for load in stylesheet_loads(&text) {
                    assert!(
                        load.starts_with("data:") || is_local(&load),
                        "{target} loads {load}"
                    );
                }
            }
            if target.ends_with("/start.js") {
                assert_eq!(header(&asset, "cache-control"), "no-cache");
                assert!(!text.contains("http://") && !text.contains("https://"));
            } else {
                // Versioned names: kept by browsers.
                assert_eq!(
                    header(&asset, "cache-control"),
                    "public, max-age=31536000, immutable",
                    "{target}"
                );
            }
        }
    }
}

#[tokio::test]
async fn graphiql_assets_revalidate_and_unknown_ones_are_404() {
    let app = TestServer::spawn().await;
    let start = get(&app, "/graphiql/assets/start.js", "").await;
    let etag = header(&start, "etag").to_owned();
    let again = get(
        &app,
        "/graphiql/assets/start.js",
        &format!("If-None-Match: {etag}\r\n"),
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.bytes.is_empty());
    let other = get(
        &app,
        "/graphiql/assets/start.js",
        "If-None-Match: \"something else\"\r\n",
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.bytes, start.bytes);
    for path in [
        "/graphiql/assets/nothing.js",
        "/graphiql/assets/..%2Fpage.html",
        "/graphiql/assets/",
    ] {
        assert_eq!(get(&app, path, "").await.status, 404, "{path}");
    }
}

/// The loader check itself: it finds a literal external target and lets a
/// local one or a computed one pass.
#[test]
fn the_loader_check_finds_external_targets() {
    assert_eq!(
        external_loads(r#"x=fetch("https://cdn.example/a.js")"#).len(),
        1
    );
    assert_eq!(external_loads("import('//cdn.example/m.js')").len(), 1);
    assert_eq!(
        external_loads(r#"s.src="http://cdn.example/x.js""#).len(),
        1
    );
    assert_eq!(
        external_loads(r#"import{a}from"https://esm.sh/a""#).len(),
        1
    );
    assert!(external_loads(r#"fetch("/graphql");fetch(u,{method:"HEAD"})"#).is_empty());
    assert_eq!(
        stylesheet_loads("a{b:url(https://x/y.woff)}@import 'z';").len(),
        2
    );
}

#[tokio::test]
async fn graphiql_switched_off_serves_neither_page_nor_assets() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = backchannel_testkit::demo_config(dir.path());
    config.graphiql = false;
    let mut app = TestServer::spawn_with(config).await;
    for path in ["/", "/customer", "/graphiql/assets/start.js"] {
        assert_eq!(get(&app, path, "").await.status, 404, "{path}");
    }
    // The API itself still answers.
    let reply = app
        .staff(&app.token("owner"), "{ me { id } }", json!({}))
        .await;
    assert_eq!(reply.code(), None, "{:?}", reply.body);
    app.stop().await;
}
