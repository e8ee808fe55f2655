//! RFC 7662 OAuth 2.0 Token Introspection. The caller authenticates as a confidential
//! client (§2.1); anything not a live token of this server is `{"active": false}` (§2.2), and
//! so is a token of another client unless the caller may introspect any (§4).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::App;
use super::client_auth;
use super::params::Params;
use crate::crypto::hash_secret;
use crate::error::OAuthError;
use crate::model::RefreshToken;

pub async fn introspect(State(app): State<App>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return OAuthError::from(e).into_response(),
    };
    let mut caller = None;
    let mut response = match handle(&app, &headers, &body, &mut caller).await {
        // What a token grants is not for caches (RFC 9111 §5.2.2.5).
        Ok(v) => ([(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(v)).into_response(),
        Err(e) => e.into_response(),
    };
    if let Some(caller) = caller {
        crate::access_log::AuthenticatedClient::name(&mut response, &caller);
    }
    response
}

/// `caller_id`: the authenticated client's, for the access log.
async fn handle(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    caller_id: &mut Option<String>,
) -> Result<Value, OAuthError> {
    super::token::require_form(headers)?;
    let mut params = Params::parse(body)?;
    let caller = client_auth::authenticate(app, headers, &mut params).await?.client;
    *caller_id = Some(caller.id.clone());
    // §2.1: the endpoint is protected by client authentication; a public client's id
    // alone authenticates nothing.
    if caller.is_public() {
        return Err(OAuthError::invalid_client(
            "introspection needs a confidential client's credentials (RFC 7662 §2.1)",
            false,
        ));
    }
    // §2.1, §4: a client learns about its own tokens only; a resource server registered
    // with `introspect_any` about every client's. Anything else reads as inactive.
    let may_see = |client_id: &str| caller.doc.introspect_any || client_id == caller.id;
    let token = params.required("token")?.to_owned();
    let hint = params.get("token_type_hint");
    let inactive = json!({"active": false});

    if hint != Some("refresh_token")
        && let Some(c) = super::access_token::validate(app, &token, Some(&caller)).await?
    {
        if !may_see(&c.client_id) {
            return Ok(inactive);
        }
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
        if let Some(map) = v.as_object_mut() {
            if let Some(t) = c.auth_time {
                map.insert("auth_time".into(), t.into());
            }
            // How the person signed in (OIDC Core §2, RFC 8176), as the token says.
            if let Some(acr) = &c.acr {
                map.insert("acr".into(), acr.clone().into());
            }
            if let Some(amr) = &c.amr {
                map.insert("amr".into(), json!(amr));
            }
            // RFC 9449 §6.2: a DPoP-bound token says so, and names its key.
            if let Some(cnf) = &c.cnf {
                map.insert("token_type".into(), super::tokens::DPOP_TOKEN_TYPE.into());
                map.insert("cnf".into(), json!({"jkt": cnf.jkt}));
            }
            // RFC 8693 §4.1: who acts for the subject, in a token exchange's token.
            if let Some(act) = c.extra.get("act") {
                map.insert("act".into(), act.clone());
            }
        }
        return Ok(v);
    }
    // A refresh token lives while it is stored unconsumed: revoking its grant removes it.
    let Some(refresh) = app.storage.get_loaded::<RefreshToken>(&hash_secret(&token)).await? else {
        return Ok(inactive);
    };
    let (refresh, consumed) = (refresh.value, refresh.consumed);
    if !may_see(&refresh.client_id) {
        return Ok(inactive);
    }
    if consumed || refresh.expires_at <= app.clock.now() {
        return Ok(inactive);
    }
    Ok(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": refresh.scopes.join(" "),
        "client_id": refresh.client_id,
        "sub": refresh.user_id.unwrap_or_else(|| refresh.client_id.clone()),
        "iss": app.config.issuer(),
        "exp": refresh.expires_at,
        "iat": refresh.created_at,
    }))
}
