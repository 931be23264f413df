//! The dashboard: static HTML, CSS and JavaScript compiled into the binary and served at `/`
//! and `/dashboard/…`. The pages call the management API with the token the user signs in
//! with (kept in the browser's sessionStorage); the server keeps no session of its own.
//!
//! Every answer carries an ETag of its bytes and `Cache-Control: no-cache`: the browser keeps
//! a copy but asks each time, so a new binary's pages show at once and an unchanged one costs
//! a 304. The Content-Security-Policy allows only this origin's scripts and styles: the page
//! holds a management token, and no injected script may read it.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    etag: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// FNV-1a, evaluated at compile time: an ETag only has to change when the bytes do.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The ETag of some bytes as a quoted 16-digit hex string, built at compile time.
const fn etag_of(bytes: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = fnv1a(bytes);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! assets {
    ($(($path:literal, $type:expr)),* $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $type,
            bytes: include_bytes!(concat!("../../assets/dashboard/", $path)),
            etag: {
                const TAG: [u8; 18] = etag_of(include_bytes!(concat!("../../assets/dashboard/", $path)));
                // Hex digits and quotes only: always valid UTF-8.
                match std::str::from_utf8(&TAG) {
                    Ok(s) => s,
                    Err(_) => panic!("an ETag is ASCII"),
                }
            },
        }),*]
    };
}

static ASSETS: &[Asset] = assets![
    ("index.html", HTML),
    ("style.css", CSS),
    ("favicon.svg", SVG),
    ("app.js", JS),
    ("api.js", JS),
    ("dom.js", JS),
    ("charts.js", JS),
    ("stats.js", JS),
    ("signin.js", JS),
    ("webhooks.js", JS),
    ("wizard.js", JS),
    ("webhook.js", JS),
    ("delivery.js", JS),
    ("vehicles.js", JS),
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.bytes.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// `GET /`: the dashboard's page.
pub async fn index(headers: HeaderMap) -> Response {
    match find("index.html") {
        Some(asset) => serve(asset, &headers),
        None => ApiError::no_such_path("/").into_response(),
    }
}

/// `GET /dashboard/{*asset}`: a script, style sheet or icon of the dashboard.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match find(&path) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::no_such_path(&format!("/dashboard/{path}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_hex_and_differ_with_content() {
        let a = etag_of(b"one");
        let b = etag_of(b"two");
        assert_ne!(a, b);
        assert_eq!(a[0], b'"');
        assert_eq!(a[17], b'"');
        assert!(a[1..17].iter().all(u8::is_ascii_hexdigit));
    }

    #[test]
    fn every_asset_is_named_once_and_not_empty() {
        for asset in ASSETS {
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.path);
            assert_eq!(
                ASSETS.iter().filter(|a| a.path == asset.path).count(),
                1,
                "{}",
                asset.path
            );
        }
    }
}
