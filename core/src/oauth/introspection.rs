//! RFC 7662 OAuth 2.0 Token Introspection. The caller authenticates as a confidential
//! client (§2.1); anything not a live token of this server is `{"active": false}` (§2.2), and
//! so is a token of another client unless the caller may introspect any (§4).

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::App;
use super::client_auth;
use super::params::Params;
use super::tokens::{Audience, Confirmation};
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
        Ok(body) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response(),
        Err(e) => e.into_response(),
    };
    if let Some(caller) = caller {
        crate::access_log::AuthenticatedClient::name(&mut response, &caller);
    }
    response
}

/// An introspection response (RFC 7662 §2.2): `active`, and for a live token what it grants.
/// Members without a value are left out; an inactive token's response is `active` alone.
#[derive(Serialize)]
struct Introspected<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a Audience>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    /// How the person signed in (OIDC Core §2, RFC 8176), as the token says.
    #[serde(skip_serializing_if = "Option::is_none")]
    acr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amr: Option<&'a [String]>,
    /// RFC 9449 §6.2: a DPoP-bound token names its key.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<&'a Confirmation>,
    /// RFC 8693 §4.1: who acts for the subject, in a token exchange's token.
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a Value>,
}

impl Introspected<'_> {
    const INACTIVE: Self = Introspected {
        active: false,
        token_type: None,
        scope: None,
        client_id: None,
        sub: None,
        aud: None,
        iss: None,
        exp: None,
        iat: None,
        jti: None,
        auth_time: None,
        acr: None,
        amr: None,
        cnf: None,
        act: None,
    };
}

/// The response's body. `caller_id`: the authenticated client's, for the access log.
async fn handle(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    caller_id: &mut Option<String>,
) -> Result<Vec<u8>, OAuthError> {
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
    let token = params.take_required("token")?;
    let hint = params.get("token_type_hint");

    if hint != Some("refresh_token")
        && let Some(c) = super::access_token::validate(app, &token, Some(&caller)).await?
    {
        if !may_see(&c.client_id) {
            return body_of(&Introspected::INACTIVE);
        }
        return body_of(&Introspected {
            active: true,
            token_type: Some(if c.cnf.is_some() { super::tokens::DPOP_TOKEN_TYPE } else { "Bearer" }),
            scope: Some(Cow::Borrowed(&c.scope)),
            client_id: Some(&c.client_id),
            sub: Some(&c.sub),
            aud: Some(&c.aud),
            iss: Some(&c.iss),
            exp: Some(c.exp),
            iat: Some(c.iat),
            jti: Some(&c.jti),
            auth_time: c.auth_time,
            acr: c.acr.as_deref(),
            amr: c.amr.as_deref(),
            cnf: c.cnf.as_ref(),
            act: c.extra.get("act"),
        });
    }
    // A refresh token lives while it is stored unconsumed: revoking its grant removes it.
    let Some(refresh) = app.storage.get_loaded::<RefreshToken>(&hash_secret(&token)).await? else {
        return body_of(&Introspected::INACTIVE);
    };
    let (refresh, consumed) = (refresh.value, refresh.consumed);
    if !may_see(&refresh.client_id) || consumed || refresh.expires_at <= app.clock.now() {
        return body_of(&Introspected::INACTIVE);
    }
    body_of(&Introspected {
        active: true,
        token_type: Some("refresh_token"),
        scope: Some(Cow::Owned(refresh.scopes.join(" "))),
        client_id: Some(&refresh.client_id),
        sub: Some(refresh.user_id.as_deref().unwrap_or(&refresh.client_id)),
        iss: Some(app.config.issuer()),
        exp: Some(refresh.expires_at),
        iat: Some(refresh.created_at),
        ..Introspected::INACTIVE
    })
}

fn body_of(introspected: &Introspected<'_>) -> Result<Vec<u8>, OAuthError> {
    serde_json::to_vec(introspected).map_err(|e| OAuthError::internal("writing the introspection response", e))
}
