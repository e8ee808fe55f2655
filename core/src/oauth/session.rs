//! The login session cookie and the interaction cookie that binds a login/consent form to
//! the browser that started it (CSRF protection together with the form's `csrf` field).

use axum::http::{HeaderMap, HeaderValue, header};

use super::Protocol;
use crate::crypto::hash_secret;
use crate::model::Session;

pub const SESSION_COOKIE: &str = "portcullis_session";
pub const INTERACTION_COOKIE: &str = "portcullis_interaction";

/// A cookie's name as set: under an https issuer with the `__Host-` prefix (RFC 6265bis
/// §4.1.3.2), which browsers accept only with `Secure`, `Path=/` and no `Domain`, so the
/// cookie cannot be planted or shadowed from another host or path.
fn full_name(app: &Protocol, name: &str) -> String {
    if app.config.issuer_is_https() { format!("__Host-{name}") } else { name.to_owned() }
}

/// The value of the cookie `name`, read by the name it was set with.
pub fn cookie(app: &Protocol, headers: &HeaderMap, name: &str) -> Option<String> {
    let name = full_name(app, name);
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

pub fn set_cookie(app: &Protocol, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let name = full_name(app, name);
    let secure = if app.config.issuer_is_https() { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A session's identifier as relying parties see it (`sid`, OIDC Back-Channel Logout 1.0
/// §2.1, Front-Channel Logout §3): derived from the stored session's key, so it needs no
/// record of its own and says nothing of the cookie.
pub fn sid(session_hash: &str) -> String {
    hash_secret(&format!("sid\n{session_hash}"))[..32].to_owned()
}

/// The signed-in user's live session, if the browser has one.
pub async fn current(app: &Protocol, headers: &HeaderMap) -> Result<Option<Session>, crate::storage::StorageError> {
    Ok(current_with_secret(app, headers).await?.map(|(_, session)| session))
}

/// The live session with the secret its cookie holds, from which a signed-in page derives
/// its forms' tokens.
pub async fn current_with_secret(
    app: &Protocol,
    headers: &HeaderMap,
) -> Result<Option<(String, Session)>, crate::storage::StorageError> {
    let Some(secret) = cookie(app, headers, SESSION_COOKIE) else { return Ok(None) };
    let session = app.storage.get_session(&hash_secret(&secret)).await?;
    Ok(session.filter(|s| s.expires_at > app.clock.now()).map(|s| (secret, s)))
}

/// A signed-in page's CSRF token for the forms of `purpose`: derived from the session's
/// secret (which only this browser holds, in an HttpOnly cookie), so it needs no storage
/// and dies with the session.
pub(crate) fn form_token(session_secret: &str, purpose: &str) -> String {
    hash_secret(&format!("{purpose}:{session_secret}"))
}

/// Compares a token posted with the one expected, in constant time.
pub(crate) fn same(a: &str, b: &str) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}
