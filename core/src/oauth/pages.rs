//! What every HTML page the server shows (login, consent, the authorization error page)
//! gets from the host: the response headers that keep it out of caches and frames and lock
//! down what it may load.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::server::Portcullis;

/// An HTML page with the headers every page gets:
/// - `Cache-Control: no-store`: pages carry CSRF tokens and personal data;
/// - `X-Frame-Options: DENY` and CSP `frame-ancestors 'none'`: no clickjacking;
/// - a Content-Security-Policy that loads nothing (`default-src 'none'`) but the page's own
///   inline `<style>` elements in its `<head>`, allowed by hash (CSP Level 3 §8.3), and lets
///   forms post only to the issuer and, where the page's form leads back to a client, to
///   that client's redirect URI (browsers check `form-action` on the redirect that follows
///   a form post as well).
pub fn html(app: &Portcullis, html: String, status: StatusCode, redirect_uri: Option<&str>) -> Response {
    let csp = content_security_policy(app, &html, redirect_uri);
    let response = (status, Html(html)).into_response();
    with_page_headers(response, &csp)
}

/// A plain-text page (when no consent UI could render one), with the same headers.
pub fn text(app: &Portcullis, text: String, status: StatusCode) -> Response {
    let csp = content_security_policy(app, "", None);
    with_page_headers((status, text).into_response(), &csp)
}

fn with_page_headers(mut response: Response, csp: &str) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

fn content_security_policy(app: &Portcullis, html: &str, redirect_uri: Option<&str>) -> String {
    let mut csp = String::from("default-src 'none'");
    let styles = inline_style_hashes(html);
    if !styles.is_empty() {
        csp.push_str("; style-src");
        for hash in styles {
            csp.push_str(" 'sha256-");
            csp.push_str(&hash);
            csp.push('\'');
        }
    }
    let targets: Vec<String> = match redirect_uri {
        Some(uri) => [app.config.issuer(), uri].into_iter().filter_map(source_of).collect(),
        None => Vec::new(),
    };
    if targets.is_empty() {
        csp.push_str("; form-action 'none'");
    } else {
        csp.push_str("; form-action ");
        csp.push_str(&targets.join(" "));
    }
    csp.push_str("; frame-ancestors 'none'; base-uri 'none'");
    csp
}

/// base64 SHA-256 of each `<style>` element's text in the page's `<head>`.
fn inline_style_hashes(html: &str) -> Vec<String> {
    let head = html.find("</head>").map_or(html, |end| &html[..end]);
    let mut hashes = Vec::new();
    let mut rest = head;
    while let Some(open) = rest.find("<style") {
        let after = &rest[open..];
        let Some(tag_end) = after.find('>') else { break };
        let body = &after[tag_end + 1..];
        let Some(close) = body.find("</style") else { break };
        hashes.push(STANDARD.encode(Sha256::digest(&body.as_bytes()[..close])));
        rest = &body[close..];
    }
    hashes
}

/// A CSP source expression (CSP Level 3 §2.3.1) for where `uri` points: its origin for
/// http(s), its scheme alone for private-use schemes (RFC 8252 §7.1).
fn source_of(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    let source = match url.scheme() {
        "http" | "https" => url.origin().ascii_serialization(),
        scheme => format!("{scheme}:"),
    };
    let safe = source.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.:/[]_".contains(&b));
    (safe && source != "null").then_some(source)
}
