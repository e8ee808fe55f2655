//! RFC 6749 §4.1.3 Access Token Request and §4.1.4 Access Token Response for the
//! authorization code grant, with PKCE verification (RFC 7636 §4.6). A code works once:
//! a replayed code also revokes everything issued from it (§4.1.2, §10.5).

use super::params::Params;
use super::tokens::{self, Issue, TokenResponse};
use crate::crypto::hash_secret;
use crate::error::OAuthError;
use crate::model::*;
use crate::server::App;
use crate::storage::Redemption;

pub async fn exchange(app: &App, client: &Client, params: &Params) -> Result<TokenResponse, OAuthError> {
    let code = params.required("code")?;
    let code = match app.storage.redeem_code(&hash_secret(code)).await? {
        None => return Err(OAuthError::InvalidGrant("the authorization code is invalid".into())),
        Some(Redemption::Replayed(code)) => {
            app.storage.revoke_grant(&code.grant_id).await?;
            tracing::warn!(client = %client.id, grant = %code.grant_id, "authorization code replayed; its grant is revoked");
            return Err(OAuthError::InvalidGrant("the authorization code was already used".into()));
        }
        Some(Redemption::Fresh(code)) => code,
    };
    if code.doc.client_id != client.id {
        return Err(OAuthError::InvalidGrant("the authorization code was issued to another client".into()));
    }
    if code.expires_at <= now() {
        return Err(OAuthError::InvalidGrant("the authorization code has expired".into()));
    }
    match params.get("redirect_uri") {
        Some(uri) if uri != code.doc.redirect_uri => {
            return Err(OAuthError::InvalidGrant("redirect_uri differs from the authorization request".into()));
        }
        None if code.doc.redirect_uri_given => {
            return Err(OAuthError::InvalidGrant("redirect_uri is required: the authorization request had one".into()));
        }
        _ => {}
    }
    match (&code.doc.code_challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            super::pkce::verify(verifier, challenge, code.doc.code_challenge_method.as_deref().unwrap_or("plain"))?
        }
        (Some(_), None) => return Err(OAuthError::InvalidGrant("code_verifier is required".into())),
        (None, Some(_)) => {
            return Err(OAuthError::InvalidGrant("code_verifier given, but the request had no code_challenge".into()));
        }
        (None, None) => {}
    }
    let grant = app
        .storage
        .get_grant(&code.grant_id)
        .await?
        .filter(|g| !g.revoked)
        .ok_or_else(|| OAuthError::InvalidGrant("the grant behind this code was revoked".into()))?;
    let user_id = grant.user_id.as_deref().ok_or_else(|| OAuthError::internal("code grant", "grant without a user"))?;
    let user = app
        .storage
        .get_user(user_id)
        .await?
        .ok_or_else(|| OAuthError::InvalidGrant("the user no longer exists".into()))?;

    let wants_refresh = client.allows_grant(GRANT_REFRESH_TOKEN)
        && (client.doc.always_issue_refresh_token || grant.doc.scopes.iter().any(|s| s == "offline_access"));
    let refresh_token = if wants_refresh {
        let (token, hash, record) = tokens::new_refresh_token(client, &grant);
        app.storage.create_refresh_token(&hash, &record).await?;
        Some(token)
    } else {
        None
    };
    tokens::issue(
        app,
        Issue {
            client,
            user: Some(&user),
            scopes: &grant.doc.scopes,
            claims: &grant.doc.claims,
            grant: Some(&grant),
            nonce: code.doc.nonce.as_deref(),
            auth_time: grant.doc.auth_time,
            refresh_token,
        },
    )
}
