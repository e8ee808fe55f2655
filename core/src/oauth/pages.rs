//! What every HTML page the server shows (login, consent, the authorization error page)
//! gets from the host: the locale it is rendered in, and the response headers that keep it
//! out of caches and frames and lock down what it may load; the one script pages may load,
//! which runs their WebAuthn ceremonies, and the ceremony a page hands it.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::Protocol;
use crate::factors;
use crate::model::{Interaction, PendingCeremony};
use crate::plugin::consent::PasskeyCeremony;

/// The account pages' connections page (`account.rs`), where the protocol's pages that end
/// outside a client (a cancelled sign-out) lead back to.
pub const CONNECTIONS_PATH: &str = "/account/connections";

/// The locale a page is rendered in: the first of the request's `ui_locales` (OIDC Core
/// §3.1.2.1) the plugin renders, else the first of the browser's `Accept-Language`
/// (RFC 9110 §12.5.4) it renders, else the plugin's own first choice. Tags are matched by
/// RFC 4647 §3.4 lookup: `de-CH` is served by `de`.
pub fn pick_locale(app: &Protocol, plugin: &str, ui_locales: &[String], headers: &HeaderMap) -> String {
    let offered = app.host.consent_locales(plugin);
    let lookup = |wanted: &str| {
        let wanted = wanted.to_ascii_lowercase();
        offered.iter().find(|o| {
            let o = o.to_ascii_lowercase();
            wanted == o || wanted.strip_prefix(o.as_str()).is_some_and(|rest| rest.starts_with('-'))
        })
    };
    ui_locales
        .iter()
        .map(String::as_str)
        .chain(accept_language(headers).iter().map(String::as_str))
        .find_map(lookup)
        .or(offered.first())
        .cloned()
        .unwrap_or_else(|| "en".into())
}

/// RFC 9110 §12.5.4: the language ranges of `Accept-Language`, highest weight first;
/// `*` and ranges weighted 0 are left out.
fn accept_language(headers: &HeaderMap) -> Vec<String> {
    let mut ranges: Vec<(u16, usize, String)> = Vec::new();
    for value in headers.get_all(header::ACCEPT_LANGUAGE).iter().filter_map(|v| v.to_str().ok()) {
        for item in value.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let range = parts.next().unwrap_or_default();
            if range.is_empty() || range == "*" {
                continue;
            }
            let weight = parts
                .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .map_or(Some(1000), parse_weight);
            if let Some(w) = weight.filter(|w| *w > 0) {
                ranges.push((w, ranges.len(), range.to_owned()));
            }
        }
    }
    // Highest weight first; equal weights keep their order.
    ranges.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges.into_iter().map(|(_, _, r)| r).collect()
}

/// A qvalue (RFC 9110 §12.4.2) in thousandths; `None` when malformed.
fn parse_weight(q: &str) -> Option<u16> {
    let value: f32 = q.parse().ok()?;
    (0.0..=1.0).contains(&value).then(|| (value * 1000.0).round() as u16)
}

/// An HTML page with the headers every page gets:
/// - `Cache-Control: no-store`: pages carry CSRF tokens and personal data;
/// - `X-Frame-Options: DENY` and CSP `frame-ancestors 'none'`: no clickjacking;
/// - a Content-Security-Policy that loads nothing (`default-src 'none'`) but the page's own
///   inline `<style>` elements in its `<head>`, allowed by hash (CSP Level 3 §8.3), and lets
///   forms post only to the issuer and, where the page's form leads back to a client, to
///   that client's redirect URI (browsers check `form-action` on the redirect that follows
///   a form post as well).
pub fn html(app: &Protocol, html: String, status: StatusCode, redirect_uri: Option<&str>) -> Response {
    let csp = content_security_policy(app, &html, redirect_uri);
    let response = (status, Html(html)).into_response();
    with_page_headers(response, &csp)
}

/// A plain-text page (when no consent UI could render one), with the same headers.
pub fn text(app: &Protocol, text: String, status: StatusCode) -> Response {
    let csp = content_security_policy(app, "", None);
    with_page_headers((status, text).into_response(), &csp)
}

fn with_page_headers(mut response: Response, csp: &str) -> Response {
    crate::error::retry_after(&mut response);
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

fn content_security_policy(app: &Protocol, html: &str, redirect_uri: Option<&str>) -> String {
    let mut csp = String::from("default-src 'none'");
    push_hashes(&mut csp, "style-src", inline_style_hashes(html));
    // Inline scripts only by their hash: the form post page's one line, nothing else; and
    // the host's passkey ceremony script where a page loads it.
    let mut scripts: Vec<String> = inline_hashes(html, "script").into_iter().map(|h| format!("'sha256-{h}'")).collect();
    if html.contains(PASSKEY_SCRIPT_PATH) {
        scripts.push("'self'".into());
    }
    if !scripts.is_empty() {
        csp.push_str("; script-src ");
        csp.push_str(&scripts.join(" "));
    }
    // An application's icon: an https URL or a data URI, nothing that runs.
    if html.contains("<img") {
        csp.push_str("; img-src https: data:");
    }
    let mut targets: Vec<String> = match redirect_uri {
        Some(uri) => [app.config.issuer(), uri].into_iter().filter_map(source_of).collect(),
        None => Vec::new(),
    };
    targets.dedup();
    if targets.is_empty() {
        csp.push_str("; form-action 'none'");
    } else {
        csp.push_str("; form-action ");
        csp.push_str(&targets.join(" "));
    }
    csp.push_str("; frame-ancestors 'none'; base-uri 'none'");
    csp
}

/// `directive` allowing exactly the inline elements of these hashes, when there are any.
fn push_hashes(csp: &mut String, directive: &str, hashes: Vec<String>) {
    if hashes.is_empty() {
        return;
    }
    csp.push_str("; ");
    csp.push_str(directive);
    for hash in hashes {
        csp.push_str(" 'sha256-");
        csp.push_str(&hash);
        csp.push('\'');
    }
}

/// base64 SHA-256 of each `<style>` element's text in the page's `<head>`.
fn inline_style_hashes(html: &str) -> Vec<String> {
    let head = html.find("</head>").map_or(html, |end| &html[..end]);
    inline_hashes(head, "style")
}

/// base64 SHA-256 of the text of each `<tag>` element in `html`.
fn inline_hashes(html: &str, tag: &str) -> Vec<String> {
    let (open_tag, close_tag) = (format!("<{tag}"), format!("</{tag}"));
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find(&open_tag) {
        let after = &rest[open..];
        let Some(tag_end) = after.find('>') else { break };
        let body = &after[tag_end + 1..];
        let Some(close) = body.find(&close_tag) else { break };
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

/// The host's script that runs WebAuthn ceremonies for the pages.
pub const PASSKEY_SCRIPT_PATH: &str = "/assets/passkey.js";
const PASSKEY_SCRIPT: &str = include_str!("../../assets/passkey.js");

/// `GET /assets/passkey.js`: the ceremony script every page with a passkey form loads.
pub async fn passkey_script() -> Response {
    let mut response = PASSKEY_SCRIPT.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A ceremony as a page runs it: its options and the script's absolute URL.
pub(crate) fn ceremony(app: &Protocol, pending: &PendingCeremony) -> PasskeyCeremony {
    PasskeyCeremony {
        options: pending.options.clone(),
        script: format!("{}{PASSKEY_SCRIPT_PATH}", app.config.issuer()),
    }
}

/// A passkey sign-in (instead of the password) for a login page: a discoverable ceremony,
/// parked with the interaction. None where the issuer cannot be a WebAuthn relying party
/// (its host must be a domain).
pub(crate) fn offer_passkey(app: &Protocol, parked: &mut Interaction) -> Option<PasskeyCeremony> {
    match factors::discoverable_challenge(app.config.issuer(), app.clock.now()) {
        Ok(pending) => {
            let offered = ceremony(app, &pending);
            parked.passkey_login = Some(pending);
            Some(offered)
        }
        Err(e) => {
            tracing::debug!(error = %e, "no passkey sign-in offered");
            None
        }
    }
}
