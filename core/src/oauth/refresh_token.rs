//! RFC 6749 §6 Refreshing an Access Token, with rotation on every use and reuse detection
//! (OAuth 2.0 Security BCP, RFC 9700 §4.14.2): presenting a rotated refresh token revokes
//! the whole family (its grant) for both the attacker and the legitimate client.
//!
//! The scope policy is asked again, with the original grant's scopes as the ceiling, so a
//! role taken away narrows the next refresh. Rotation is one atomic group: the presented
//! token is consumed and its successor created, together or not at all.

use super::App;
use super::dpop::{self, Jkt};
use super::params::{Params, parse_scope};
use super::scope_policy::{self, Ask};
use super::tokens::{self, Issue, TokenResponse};
use crate::crypto::hash_secret;
use crate::error::OAuthError;
use crate::model::*;
use crate::storage::{ClientContext, Loaded, StorageError, write};

pub async fn exchange(
    app: &App,
    context: &ClientContext,
    params: &Params,
    dpop: Option<&Jkt>,
) -> Result<TokenResponse, OAuthError> {
    let client = &context.client;
    let presented = hash_secret(params.required("refresh_token")?);
    let invalid = || OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked".into());
    let token = match app.storage.get_loaded::<RefreshToken>(&presented).await? {
        Some(Loaded { value: t, .. }) if t.client_id != client.id => {
            return Err(OAuthError::InvalidGrant("the refresh token was issued to another client".into()));
        }
        Some(Loaded { value: t, consumed: true, .. }) => {
            app.storage.revoke_grant(&t.grant_id).await?;
            tracing::warn!(client = %client.id, grant = %t.grant_id, "refresh token reused; the token family is revoked");
            let detail = serde_json::json!({ "user_id": t.user_id });
            let actor = crate::audit::client(&client.id);
            let kind = crate::audit::types::REFRESH_TOKEN_REUSED;
            crate::audit::record(&app.storage, kind, &actor, ("grant", &t.grant_id), detail).await;
            return Err(invalid());
        }
        Some(Loaded { value: t, .. }) if t.expires_at > app.clock.now() => t,
        _ => return Err(invalid()),
    };
    // RFC 9449 §5: a refresh token bound to a key is used with a proof of that key. The
    // access token is bound to the proof's key whatever the refresh token's binding.
    dpop::check_binding(dpop::Bound::RefreshToken, token.dpop_jkt.as_deref(), dpop)?;

    // §6: the new scope must not exceed what was originally granted.
    let requested = parse_scope(params.get("scope"))?;
    if let Some(extra) = requested.iter().find(|s| !token.scopes.contains(s)) {
        return Err(OAuthError::InvalidScope(format!("`{extra}` was not part of the original grant")));
    }
    let user = match &token.user_id {
        Some(id) => Some(app.storage.get_user(id).await?.filter(|u| !u.doc.disabled).ok_or_else(invalid)?),
        None => None,
    };
    // The tenant the original request selected stays selected (and is checked again).
    let acr_values: Vec<String> = token
        .claims
        .iter()
        .filter(|c| c.name == "tenant")
        .filter_map(|c| c.value.as_str())
        .map(|t| format!("tenant:{t}"))
        .collect();
    let granted = scope_policy::resolve(
        app,
        context,
        Ask::new(GrantType::RefreshToken.as_str(), user.as_ref(), &requested, !requested.is_empty())
            .within(&token.scopes)
            .acr_values(&acr_values),
    )
    .await?;

    let (refresh_token, successor) = tokens::new_refresh_token(&token, app.clock.now());
    match app.storage.apply(vec![write::consume::<RefreshToken>(&token.hash), write::create(&successor)?]).await {
        Ok(()) => {}
        // A concurrent request rotated it between our read and our write: the token was
        // live when presented, so this is a race with one winner, not a replay.
        Err(StorageError::Conflict(0)) => return Err(invalid()),
        Err(e) => return Err(e.into()),
    }
    let settings = context.token_settings();
    let id_token_claims = user
        .as_ref()
        .map(|u| tokens::id_token_user_claims(u, &granted.scopes, settings, app.config.tokens.roles_scope.as_deref()));
    tokens::issue(
        app,
        Issue {
            context,
            user_id: token.user_id.as_deref(),
            subject: None,
            scopes: &granted.scopes,
            claims: &granted.claims,
            grant_id: Some(&token.grant_id),
            nonce: None,
            auth_time: token.auth_time,
            sid: token.sid.as_deref(),
            assurance: token.assurance.as_ref(),
            audience: None,
            id_token_claims: id_token_claims.as_ref(),
            refresh_token: Some(refresh_token),
        },
        dpop,
    )
    .await
}
