//! RFC 7662 OAuth 2.0 Token Introspection. The caller authenticates as a client (§2.1);
//! anything not a live token of this server is `{"active": false}` (§2.2).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::client_auth;
use super::params::Params;
use crate::crypto::hash_secret;
use crate::error::OAuthError;
use crate::model::{RefreshState, now};
use crate::server::App;

pub async fn introspect(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    match handle(&app, &headers, &body).await {
        // What a token grants is not for caches (RFC 9111 §5.2.2.5).
        Ok(v) => ([(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn handle(app: &App, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    super::token::require_form(headers)?;
    let mut params = Params::parse(body)?;
    let caller = client_auth::authenticate(app, headers, &mut params).await?.client;
    let token = params.required("token")?.to_owned();
    let hint = params.get("token_type_hint");
    let inactive = json!({"active": false});

    if hint != Some("refresh_token")
        && let Some(c) = super::access_token::validate(app, &token, Some(&caller)).await?
    {
        let mut v = json!({
            "active": true,
            "token_type": "Bearer",
            "scope": c.scope,
            "client_id": c.client_id,
            "sub": c.sub,
            "aud": c.aud,
            "iss": c.iss,
            "exp": c.exp,
            "iat": c.iat,
            "jti": c.jti,
        });
        if let (Some(map), Some(t)) = (v.as_object_mut(), c.auth_time) {
            map.insert("auth_time".into(), t.into());
        }
        return Ok(v);
    }
    let Some(refresh) = app.storage.get_refresh_token(&hash_secret(&token)).await? else { return Ok(inactive) };
    let Some(grant) = app.storage.get_grant(&refresh.grant_id).await? else { return Ok(inactive) };
    if grant.revoked || refresh.state != RefreshState::Active || refresh.expires_at <= now() {
        return Ok(inactive);
    }
    Ok(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": grant.doc.scopes.join(" "),
        "client_id": grant.client_id,
        "sub": grant.user_id.unwrap_or_else(|| grant.client_id.clone()),
        "iss": app.config.issuer(),
        "exp": refresh.expires_at,
        "iat": refresh.created_at,
    }))
}
