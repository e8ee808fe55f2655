//! OpenID Connect Core §5.3 UserInfo Endpoint, GET and POST, with the bearer token in the
//! `Authorization` header or (POST) the form body (RFC 6750 §2.1, §2.2).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::App;
use super::params::Params;
use crate::error::OAuthError;
use crate::model::{Grant, User};

pub async fn get(State(app): State<App>, headers: HeaderMap) -> Response {
    respond(&app, bearer(&headers, None)).await
}

pub async fn post(State(app): State<App>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return OAuthError::from(e).into_response(),
    };
    let params = Params::parse(&body).ok();
    respond(&app, bearer(&headers, params.as_ref())).await
}

fn bearer(headers: &HeaderMap, form: Option<&Params>) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    from_header.or_else(|| form.and_then(|f| f.get("access_token")).map(str::to_owned))
}

/// Claims about a person: never stored by a cache (RFC 9111 §5.2.2.5).
async fn respond(app: &App, token: Option<String>) -> Response {
    let mut response = match handle(app, token).await {
        Ok(v) => Json(v).into_response(),
        Err(OAuthError::AccessDenied(d)) => {
            let mut r = (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({"error": "insufficient_scope", "error_description": d})),
            )
                .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"insufficient_scope\", scope=\"openid\""),
            );
            r
        }
        Err(e) => e.into_response(),
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn handle(app: &App, token: Option<String>) -> Result<Value, OAuthError> {
    let token = token.ok_or_else(|| OAuthError::InvalidToken("a bearer access token is required".into()))?;
    let claims = super::access_token::validate(app, &token, None)
        .await?
        .ok_or_else(|| OAuthError::InvalidToken("the access token is invalid, expired or revoked".into()))?;
    // RFC 9068 §4: a token for another audience (token exchange's) is not for this endpoint.
    let for_us = match &claims.aud {
        Value::String(aud) => aud == app.config.issuer(),
        Value::Array(auds) => auds.iter().any(|a| a == app.config.issuer()),
        _ => false,
    };
    if !for_us {
        return Err(OAuthError::InvalidToken("the access token is for another audience".into()));
    }
    if !claims.scopes().any(|s| s == "openid") {
        return Err(OAuthError::AccessDenied("the token was not granted the `openid` scope".into()));
    }
    let gid =
        claims.gid.as_deref().ok_or_else(|| OAuthError::InvalidToken("the token does not belong to a user".into()))?;
    let (user, grant) = app.storage.get_pair::<User, Grant>(&claims.sub, gid).await?;
    let user = user.ok_or_else(|| OAuthError::InvalidToken("the token does not belong to a user".into()))?;
    let mut out = super::tokens::user_claims(&user, claims.scopes());
    // Claims the scope policy released for userinfo (OIDC Core §5.3.2).
    for c in grant.iter().flat_map(|g| &g.doc.claims).filter(|c| c.userinfo) {
        out.entry(c.name.clone()).or_insert_with(|| c.value.clone());
    }
    out.insert("sub".into(), user.id.clone().into());
    Ok(Value::Object(out))
}
