//! The web console: `web/dist` (built by `make web`) embedded in the binary and
//! served on the admin port.
//!
//! - `/assets/*` are Vite's content-hashed files: cached for a year, immutable.
//! - Any other path that is not a file is a client-side route: `index.html`
//!   (history-mode fallback), never cached so a new release is picked up at once.
//! - Without a build (`web/dist` missing when the crate was compiled, as on a
//!   fresh clone running `cargo test`), a small page says how to build it.
//!
//! API paths never reach this module: the admin router answers unknown `/api/...`
//! paths with its JSON 404 before falling back here.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;

#[derive(rust_embed::RustEmbed)]
// Relative to this crate's Cargo.toml. Debug builds read the files at run time,
// release builds embed them.
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Dist;

const INDEX: &str = "index.html";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";
/// The console loads only its own scripts and styles and talks only to its origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const NOT_BUILT: &str = "<!doctype html><html><head><meta charset=\"utf-8\">\
<title>Portcullis</title></head><body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\">\
<h1>Portcullis console not built</h1>\
<p>This binary was compiled without the web console. Run <code>make web</code> \
(or <code>make run</code>), then rebuild the binary.</p>\
<p>The admin API is available under <code>/api/v1</code>; its description is at \
<a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>.</p></body></html>";

/// Whether the binary carries a built console.
pub fn is_built() -> bool {
    Dist::get(INDEX).is_some()
}

/// The content type of an embedded file, from its extension.
fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

fn respond(
    status: StatusCode,
    body: Cow<'static, [u8]>,
    content_type: &'static str,
    cache: &'static str,
    head: bool,
) -> Response {
    let body = if head {
        Body::empty()
    } else {
        Body::from(body)
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if content_type.starts_with("text/html") {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    response
}

fn index(head: bool) -> Response {
    match Dist::get(INDEX) {
        Some(file) => respond(
            StatusCode::OK,
            file.data,
            content_type(INDEX),
            NO_CACHE,
            head,
        ),
        None => respond(
            StatusCode::OK,
            Cow::Borrowed(NOT_BUILT.as_bytes()),
            content_type(INDEX),
            NO_CACHE,
            head,
        ),
    }
}

/// Answers a GET or HEAD for a console path (anything but the API).
pub fn serve(method: &Method, uri: &Uri) -> Response {
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let path = uri.path().trim_start_matches('/');
    if path
        .split('/')
        .any(|segment| segment == ".." || segment.contains('\\'))
    {
        return not_found();
    }
    if path.is_empty() || path == INDEX {
        return index(head);
    }
    if let Some(file) = Dist::get(path) {
        let cache = if path.starts_with("assets/") {
            IMMUTABLE
        } else {
            NO_CACHE
        };
        return respond(StatusCode::OK, file.data, content_type(path), cache, head);
    }
    // A missing asset is a 404, not the app: a stale hashed name must not be
    // answered with HTML (the browser would run it as a script or style).
    let last = path.rsplit('/').next().unwrap_or(path);
    if path.starts_with("assets/") || last.contains('.') {
        return not_found();
    }
    index(head)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, NO_CACHE)],
        "not found",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "test code: a failed step should stop the test"
    )]
    use super::*;
    use http_body_util::BodyExt;

    async fn get(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = serve(&Method::GET, &path.parse::<Uri>().unwrap());
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn client_routes_fall_back_to_the_uncached_index() {
        let (root_status, root_headers, root_body) = get("/").await;
        assert_eq!(root_status, StatusCode::OK);
        assert_eq!(root_headers[header::CACHE_CONTROL], NO_CACHE);
        assert!(root_headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(root_headers.contains_key(header::CONTENT_SECURITY_POLICY));
        for path in ["/alerts", "/proxies/abc/edit", "/index.html"] {
            let (status, headers, body) = get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CACHE_CONTROL], NO_CACHE, "{path}");
            assert_eq!(body, root_body, "{path}");
        }
        if !is_built() {
            assert!(root_body.contains("make web"));
        }
    }

    #[tokio::test]
    async fn missing_files_are_404_not_the_app() {
        for path in [
            "/assets/index-deadbeef.js",
            "/favicon-missing.png",
            "/assets/../../../Cargo.toml",
            "/..%2f..%2fCargo.toml",
        ] {
            let (status, _, body) = get(path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(!body.contains("<html"), "{path}");
        }
    }

    #[tokio::test]
    async fn hashed_assets_are_immutable_with_their_type() {
        let Some(asset) = Dist::iter().find(|p| p.starts_with("assets/") && p.ends_with(".js"))
        else {
            // No build embedded: nothing to check beyond the fallback tests.
            assert!(!is_built() || Dist::iter().all(|p| !p.starts_with("assets/")));
            return;
        };
        let (status, headers, _) = get(&format!("/{asset}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CACHE_CONTROL], IMMUTABLE);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(!headers.contains_key(header::CONTENT_SECURITY_POLICY));
    }

    #[test]
    fn only_get_and_head_are_served() {
        let uri: Uri = "/".parse().unwrap();
        assert_eq!(
            serve(&Method::POST, &uri).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(serve(&Method::HEAD, &uri).status(), StatusCode::OK);
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("assets/a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("logo.svg"), "image/svg+xml");
        assert_eq!(content_type("x.unknown"), "application/octet-stream");
    }
}
