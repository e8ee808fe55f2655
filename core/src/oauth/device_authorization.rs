//! RFC 8628 §3.1–§3.2 Device Authorization Request and Response: a device that cannot show
//! a browser asks for a device code and a user code; a person enters the user code at the
//! verification URI (the pages are the browser side, `device.rs`), and the device polls the
//! token endpoint meanwhile (`device_code.rs`). Only clients registered for the grant ask.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::cors::CrossOrigin;
use super::params::{Params, parse_scope};
use super::token::require_form;
use super::{App, Protocol, client_auth};
use crate::crypto::{hash_secret, random_chars, random_token};
use crate::error::OAuthError;
use crate::limits::USER_CODE_CHARS;
use crate::model::{DeviceAuthorization, DeviceState, GrantType};
use crate::storage::{Loaded, StorageError, write};

/// Where a person enters a user code (§3.2 `verification_uri`).
pub const VERIFICATION_PATH: &str = "/device";
/// How long a device code lives, in seconds.
pub const LIFETIME: i64 = 600;
/// §3.2: the seconds a device waits between polls, to begin with.
pub const INTERVAL: i64 = 5;
/// §6.1: user codes from an alphabet without vowels (no words spelled by chance) or
/// look-alikes, eight characters: 20^8 ≈ 2^34.6, against guessing that the pages throttle.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// A user code as typed, or as stored: upper case, without separators.
pub fn normalize_user_code(typed: &str) -> String {
    typed.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect()
}

/// A user code as shown to a person: `BCDF-GHJK`.
pub fn display_user_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len() / 2);
    format!("{a}-{b}")
}

pub async fn authorize(State(app): State<App>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return OAuthError::from(e).into_response(),
    };
    let mut cross_origin = CrossOrigin::of(&headers);
    let response = match handle(&app, &headers, &body, &mut cross_origin).await {
        Ok(answer) => {
            let mut r = axum::Json(answer).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => e.into_response(),
    };
    cross_origin.answer(response)
}

async fn handle(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    cross_origin: &mut CrossOrigin,
) -> Result<serde_json::Value, OAuthError> {
    require_form(headers)?;
    let mut params = Params::parse(body)?;
    // §3.1: the client authenticates as at the token endpoint (a public one names itself).
    let context = client_auth::authenticate(app, headers, &mut params).await?.context;
    cross_origin.client(&context.client);
    if let Some(why) = context.unusable() {
        return Err(OAuthError::UnauthorizedClient(why.into()));
    }
    if !context.client.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::UnauthorizedClient("this client may not use the device authorization grant".into()));
    }
    // Kept with the device's request until a person decides: bounded like what an
    // authorization request parks.
    let scopes = parse_scope(params.get("scope"))?;
    let acr_values = params.acr_values()?;
    let device_code = random_token(32);
    let user_code = random_chars(USER_CODE_ALPHABET, USER_CODE_CHARS);
    let now = app.clock.now();
    let record = DeviceAuthorization {
        id: hash_secret(&device_code),
        user_code: user_code.clone(),
        client_id: context.client.id.clone(),
        scopes,
        scope_given: params.get("scope").is_some(),
        acr_values,
        expires_at: now + LIFETIME,
        interval: INTERVAL,
        last_poll: 0,
        state: DeviceState::Pending,
    };
    app.storage.apply(vec![write::create(&record)?]).await?;
    let shown = display_user_code(&user_code);
    let verification_uri = format!("{}{VERIFICATION_PATH}", app.config.issuer());
    let complete = format!("{verification_uri}?user_code={shown}");
    Ok(json!({
        "device_code": device_code,
        "user_code": shown,
        "verification_uri": verification_uri,
        "verification_uri_complete": complete,
        "expires_in": LIFETIME,
        "interval": INTERVAL,
    }))
}

/// The device request waiting for the user code a person typed, if any.
pub async fn pending(app: &Protocol, typed: &str) -> Result<Option<Loaded<DeviceAuthorization>>, StorageError> {
    let code = normalize_user_code(typed);
    if code.len() != USER_CODE_CHARS {
        return Ok(None);
    }
    let Some(found) = app.storage.find::<DeviceAuthorization>("user-code", &code).await?.into_iter().next() else {
        return Ok(None);
    };
    let loaded = app.storage.get_loaded::<DeviceAuthorization>(&found.id).await?;
    Ok(loaded.filter(|l| {
        !l.consumed && l.value.expires_at > app.clock.now() && matches!(l.value.state, DeviceState::Pending)
    }))
}
