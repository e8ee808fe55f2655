//! The login session cookie and the interaction cookie that binds a login/consent form to
//! the browser that started it (CSRF protection together with the form's `csrf` field).

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Protocol;
use crate::crypto::{hash_secret, random_token};
use crate::limits::MAX_SESSION_USER_ID_BYTES;
use crate::model::{Consent, Session, User};

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

/// A new session's secret, the value of its cookie: the user's id (base64url), a dot, and 32
/// random bytes. The session is stored under the hash of the whole value, so a cookie whose
/// name of the user was changed finds no session. Naming the user lets an authorization
/// request read the session, the user and their consent in one storage call ([`current_for`]).
pub fn new_secret(user_id: &str) -> String {
    [URL_SAFE_NO_PAD.encode(user_id), random_token(32)].join(".")
}

/// The user a session's secret names, where it names one (secrets made before they named
/// their user do not; nor does anything else a browser sends).
fn named_user(secret: &str) -> Option<String> {
    let (user, _) = secret.split_once('.')?;
    if user.len() > MAX_SESSION_USER_ID_BYTES.div_ceil(3) * 4 {
        return None;
    }
    String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()
}

/// What an authorization request continued by a session reads with it: the session's user
/// and that user's consent to the request's client.
pub(crate) type UserAndConsent = (Option<User>, Option<Consent>);

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
    Ok(live(app, session).map(|s| (secret, s)))
}

/// The live session continuing an authorization request of `client_id`; where its cookie
/// names its user, that user and their consent to the client too, read with the session in
/// one storage call (a session whose cookie names no user, made before cookies did, is read
/// alone, and its user later).
pub(crate) async fn current_for(
    app: &Protocol,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<Option<(Session, Option<UserAndConsent>)>, crate::storage::StorageError> {
    let Some(secret) = cookie(app, headers, SESSION_COOKIE) else { return Ok(None) };
    let hash = hash_secret(&secret);
    let Some(user_id) = named_user(&secret) else {
        return Ok(live(app, app.storage.get_session(&hash).await?).map(|s| (s, None)));
    };
    let (session, user, consent) = app.storage.session_user_and_consent(&hash, &user_id, client_id).await?;
    // The hash covers the name, so the session found is that user's; what was read with it
    // is used only if it is.
    Ok(live(app, session).map(|s| {
        let read = (s.user_id == user_id).then_some((user, consent));
        (s, read)
    }))
}

/// A session's user: the one [`current_for`] read with it, or else read now.
pub(crate) async fn user(
    app: &Protocol,
    session: &Session,
    read: Option<UserAndConsent>,
) -> Result<Option<User>, crate::storage::StorageError> {
    match read {
        Some((user, _)) => Ok(user),
        None => app.storage.get_user(&session.user_id).await,
    }
}

fn live(app: &Protocol, session: Option<Session>) -> Option<Session> {
    session.filter(|s| s.expires_at > app.clock.now())
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
