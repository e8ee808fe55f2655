//! RFC 6749 §2.3 Client Authentication: `client_secret_basic` (§2.3.1, HTTP Basic with
//! form-urlencoded id and secret), `client_secret_post` (secret in the body) and `none`
//! (a public client names itself with `client_id`).

use std::sync::Arc;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Protocol;
use super::params::Params;
use crate::error::OAuthError;
use crate::model::Client;
use crate::storage::ClientContext;

pub struct Authenticated {
    pub client: Client,
    /// The client with its template, organization and instance, for its scope policy.
    pub context: Arc<ClientContext>,
}

/// Authenticates the client of a token, introspection or revocation request.
pub async fn authenticate(
    app: &Protocol,
    headers: &HeaderMap,
    params: &mut Params,
) -> Result<Authenticated, OAuthError> {
    let basic = basic_credentials(headers)?;
    let body_secret = params.take("client_secret");
    let body_id = params.take("client_id");
    let used_basic = basic.is_some();
    let (client_id, secret) = match (basic, body_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::InvalidRequest("use one client authentication method, not two".into()));
        }
        (Some((id, secret)), None) => {
            if body_id.as_deref().is_some_and(|b| b != id) {
                return Err(OAuthError::InvalidRequest("`client_id` differs from the authenticated client".into()));
            }
            (id, Some(secret))
        }
        (None, secret) => match body_id {
            Some(id) => (id, secret),
            None => return Err(OAuthError::invalid_client("client authentication is required", false)),
        },
    };
    let fail = || OAuthError::invalid_client("client authentication failed", used_basic);
    let context = app.storage.client_context(&client_id).await?.ok_or_else(fail)?;
    let client = context.client.clone();
    if client.is_expired(app.clock.now()) {
        return Err(fail());
    }
    match (&client.secret_hash, secret) {
        (Some(hash), Some(secret)) if crate::crypto::verify_secret(&secret, hash) => {}
        (None, None) => {}
        _ => return Err(fail()),
    }
    Ok(Authenticated { client, context })
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))`, or none.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else { return Ok(None) };
    let bad = || OAuthError::invalid_client("malformed HTTP Basic credentials", true);
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = value.split_once(' ') else { return Err(bad()) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| bad())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}
