//! RFC 6749 §4.1.3 Access Token Request and §4.1.4 Access Token Response for the
//! authorization code grant, with PKCE verification (RFC 7636 §4.6). A code works once:
//! a replayed code also revokes everything issued from it (§4.1.2, §10.5).
//!
//! Redeeming is one atomic group: the code is consumed, and the grant it carries and the
//! refresh token are created, together or not at all.

use super::App;
use super::dpop::{self, Jkt};
use super::params::Params;
use super::tokens::{self, Issue, TokenResponse};
use crate::crypto::hash_secret;
use crate::error::OAuthError;
use crate::model::*;
use crate::storage::{ClientContext, CodeToRedeem, Storage, StorageError, write};

pub async fn exchange(
    app: &App,
    context: &ClientContext,
    params: &Params,
    dpop: Option<&Jkt>,
) -> Result<TokenResponse, OAuthError> {
    let client = &context.client;
    let presented = params.required("code")?;
    let invalid = || OAuthError::InvalidGrant("the authorization code is invalid".into());
    let hash = hash_secret(presented);
    let Some(CodeToRedeem { code, consumed, remembered }) = app.storage.code_to_redeem(&hash).await? else {
        return Err(invalid());
    };
    if consumed {
        return Err(replayed(app, client, &code).await?);
    }
    if code.doc.client_id != client.id {
        return Err(OAuthError::InvalidGrant("the authorization code was issued to another client".into()));
    }
    if code.expires_at <= app.clock.now() {
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
    // RFC 9449 §10: a code asked for with `dpop_jkt` is redeemed with a proof of that key.
    dpop::check_binding(dpop::Bound::Code, code.doc.dpop_jkt.as_deref(), dpop)?;

    let grant = &code.grant;
    let mut writes = vec![write::consume::<Code>(&code.hash), write::create(grant)?];
    let refresh_token = match super::grant::refresh_token_for(context, grant, app.clock.now(), dpop) {
        Some((token, record)) => {
            writes.push(write::create(&record)?);
            Some(token)
        }
        None => None,
    };
    match app.storage.apply(writes).await {
        Ok(()) => {}
        // A code remembered from its issue and gone from storage was deleted before it was
        // redeemed (the connection revoked, the user deleted): invalid, not replayed.
        Err(StorageError::Conflict(0)) if remembered && app.storage.get::<Code>(&hash).await?.is_none() => {
            return Err(invalid());
        }
        // Consumed by a concurrent redemption between our read and our write.
        Err(StorageError::Conflict(0)) => return Err(replayed(app, client, &code).await?),
        Err(e) => return Err(e.into()),
    }
    tokens::issue(
        app,
        Issue {
            context,
            user_id: grant.user_id.as_deref(),
            subject: None,
            scopes: &grant.doc.scopes,
            claims: &grant.doc.claims,
            grant_id: Some(&grant.id),
            nonce: code.doc.nonce.as_deref(),
            auth_time: grant.doc.auth_time,
            sid: grant.doc.sid.as_deref(),
            assurance: grant.doc.assurance.as_ref(),
            audience: None,
            id_token_claims: Some(&code.doc.id_token_claims),
            refresh_token,
        },
        dpop,
    )
    .await
}

/// §10.5: a code presented again revokes the grant its first redemption created.
async fn replayed(app: &App, client: &Client, code: &Code) -> Result<OAuthError, OAuthError> {
    app.storage.apply(Storage::revoke_grant_writes(&code.grant.id)).await?;
    tracing::warn!(client = %client.id, grant = %code.grant.id, "authorization code replayed; its grant is revoked");
    Ok(OAuthError::InvalidGrant("the authorization code was already used".into()))
}
