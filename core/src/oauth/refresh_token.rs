//! RFC 6749 §6 Refreshing an Access Token, with rotation on every use and reuse detection
//! (OAuth 2.0 Security BCP, RFC 9700 §4.14.2): presenting a rotated refresh token revokes
//! the whole family (its grant) for both the attacker and the legitimate client.

use super::params::{Params, parse_scope};
use super::tokens::{self, Issue, TokenResponse};
use crate::crypto::hash_secret;
use crate::error::OAuthError;
use crate::model::*;
use crate::server::App;
use crate::storage::Rotation;

pub async fn exchange(app: &App, client: &Client, params: &Params) -> Result<TokenResponse, OAuthError> {
    let presented = hash_secret(params.required("refresh_token")?);
    let invalid = || OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked".into());
    let grant_id = match app.storage.get_refresh_token(&presented).await? {
        Some(t) if t.doc.client_id != client.id => {
            return Err(OAuthError::InvalidGrant("the refresh token was issued to another client".into()));
        }
        Some(t) if t.state == RefreshState::Rotated => {
            revoke_family(app, client, &t.grant_id).await?;
            return Err(invalid());
        }
        Some(t) if t.state == RefreshState::Active => t.grant_id,
        Some(_) | None => return Err(invalid()),
    };
    let grant =
        app.storage.get_grant(&grant_id).await?.filter(|g| !g.revoked && g.expires_at > now()).ok_or_else(invalid)?;

    // §6: the new scope must not exceed what was originally granted.
    let requested = parse_scope(params.get("scope"))?;
    if let Some(extra) = requested.iter().find(|s| !grant.doc.scopes.contains(s)) {
        return Err(OAuthError::InvalidScope(format!("`{extra}` was not part of the original grant")));
    }
    let scopes = if requested.is_empty() { grant.doc.scopes.clone() } else { requested };

    let (token, successor_hash, successor) = tokens::new_refresh_token(client, &grant);
    match app.storage.rotate_refresh_token(&presented, &successor_hash, &successor).await? {
        Some(Rotation::Rotated(_)) => {}
        // A concurrent request rotated it between our read and our rotation: the token was
        // live when presented, so this is a race with one winner, not a replay.
        Some(Rotation::Reused(_)) => return Err(invalid()),
        None => return Err(invalid()),
    }
    let user = match &grant.user_id {
        Some(id) => Some(app.storage.get_user(id).await?.ok_or_else(invalid)?),
        None => None,
    };
    tokens::issue(
        app,
        Issue {
            client,
            user: user.as_ref(),
            scopes: &scopes,
            claims: &grant.doc.claims,
            grant: Some(&grant),
            nonce: None,
            auth_time: grant.doc.auth_time,
            refresh_token: Some(token),
        },
    )
}

async fn revoke_family(app: &App, client: &Client, grant_id: &str) -> Result<(), OAuthError> {
    app.storage.revoke_grant(grant_id).await?;
    tracing::warn!(client = %client.id, grant = %grant_id, "refresh token reused; the token family is revoked");
    Ok(())
}
