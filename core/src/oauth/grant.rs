//! The grant a user gives a client at the token endpoint itself (the password grant, a
//! device's grant): the grant record the tokens hang off, as a redeemed code creates it, its
//! refresh token when the client gets one (OIDC Core §11), and the tokens.

use super::App;
use super::dpop::Jkt;
use super::tokens::{self, Issue, TokenResponse};
use crate::crypto::{hash_secret, random_token};
use crate::error::OAuthError;
use crate::model::*;
use crate::storage::{ClientContext, write};

/// OIDC Core §11: a refresh token for `grant`, with `offline_access` or always where the
/// client's settings say so, and only for a client that may refresh: the token and its record.
/// RFC 9449 §5: a public client's is bound to the key of the request's DPoP proof, if any (a
/// confidential client's is bound to its credentials already).
pub fn refresh_token_for(
    context: &ClientContext,
    grant: &Grant,
    now: i64,
    dpop: Option<&Jkt>,
) -> Option<(String, RefreshToken)> {
    let client = &context.client;
    let always = context.token_settings().refresh_tokens == Some(RefreshTokens::Always);
    let wants = client.allows_grant(GrantType::RefreshToken)
        && (always || grant.doc.scopes.iter().any(|s| s == "offline_access"));
    if !wants {
        return None;
    }
    let token = random_token(32);
    let record = RefreshToken {
        hash: hash_secret(&token),
        grant_id: grant.id.clone(),
        client_id: client.id.clone(),
        user_id: grant.user_id.clone(),
        scopes: grant.doc.scopes.clone(),
        claims: grant.doc.claims.clone(),
        auth_time: grant.doc.auth_time,
        sid: grant.doc.sid.clone(),
        assurance: grant.doc.assurance.clone(),
        created_at: now,
        expires_at: grant.expires_at,
        dpop_jkt: dpop.filter(|_| client.is_public()).map(|jkt| jkt.as_str().to_owned()),
    };
    Some((token, record))
}

pub async fn issue_to_user(
    app: &App,
    context: &ClientContext,
    user: &User,
    decision: Decision,
    auth_time: i64,
    assurance: Option<&Assurance>,
    dpop: Option<&Jkt>,
) -> Result<TokenResponse, OAuthError> {
    let client = &context.client;
    let settings = context.token_settings();
    let now = app.clock.now();
    let refresh_ttl = settings.refresh_token_ttl.unwrap_or(app.config.tokens.refresh_token_ttl) as i64;
    let grant = Grant {
        id: Grant::new_id(),
        client_id: client.id.clone(),
        user_id: Some(user.id.clone()),
        created_at: now,
        expires_at: now + refresh_ttl,
        doc: GrantDocument {
            scopes: decision.scopes,
            auth_time: Some(auth_time),
            sid: None,
            claims: decision.claims,
            assurance: assurance.cloned(),
        },
    };
    let mut writes = vec![write::create(&grant)?];
    let refresh_token = match refresh_token_for(context, &grant, now, dpop) {
        Some((token, record)) => {
            writes.push(write::create(&record)?);
            Some(token)
        }
        None => None,
    };
    app.storage.apply(writes).await?;
    let id_token_claims =
        tokens::id_token_user_claims(user, &grant.doc.scopes, settings, app.config.tokens.roles_scope.as_deref());
    tokens::issue(
        app,
        Issue {
            context,
            user_id: Some(&user.id),
            subject: None,
            scopes: &grant.doc.scopes,
            claims: &grant.doc.claims,
            grant_id: Some(&grant.id),
            nonce: None,
            auth_time: grant.doc.auth_time,
            sid: grant.doc.sid.as_deref(),
            assurance: grant.doc.assurance.as_ref(),
            audience: None,
            id_token_claims: Some(&id_token_claims),
            refresh_token,
        },
        dpop,
    )
    .await
}
