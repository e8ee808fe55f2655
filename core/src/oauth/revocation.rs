//! RFC 7009 OAuth 2.0 Token Revocation. Revoking a refresh token revokes its grant and so
//! every token issued under it (§2.1); revoking an access token revokes that token. An
//! unknown or already invalid token is answered 200 (§2.2).

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::App;
use super::client_auth;
use super::cors::CrossOrigin;
use super::params::Params;
use crate::crypto::hash_secret;
use crate::error::OAuthError;
use crate::model::RefreshToken;

pub async fn revoke(State(app): State<App>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return OAuthError::from(e).into_response(),
    };
    let mut cross_origin = CrossOrigin::of(&headers);
    let response = match handle(&app, &headers, &body, &mut cross_origin).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    };
    cross_origin.answer(response)
}

async fn handle(app: &App, headers: &HeaderMap, body: &[u8], cross_origin: &mut CrossOrigin) -> Result<(), OAuthError> {
    super::token::require_form(headers)?;
    let mut params = Params::parse(body)?;
    let client = client_auth::authenticate(app, headers, &mut params).await?.client;
    cross_origin.client(&client);
    let token = params.take_required("token")?;
    if let Some(hint) = params.get("token_type_hint")
        && !matches!(hint, "access_token" | "refresh_token")
    {
        return Err(OAuthError::UnsupportedTokenType(format!("token_type_hint `{hint}` is not supported")));
    }
    let not_yours = || OAuthError::UnauthorizedClient("the token was issued to another client".into());
    if let Some(refresh) = app.storage.get::<RefreshToken>(&hash_secret(&token)).await? {
        if refresh.client_id != client.id {
            return Err(not_yours());
        }
        app.storage.revoke_grant(&refresh.grant_id).await?;
        return Ok(());
    }
    if let Ok(claims) = app.keys.verify::<super::tokens::AccessClaims>(&token, "at+jwt").await {
        if claims.client_id != client.id {
            return Err(not_yours());
        }
        app.storage.revoke_token_id(&claims.jti, claims.exp).await?;
    }
    Ok(())
}
