//! RFC 6749 §4.3 Resource Owner Password Credentials Grant: §4.3.2 Access Token Request and
//! §4.3.3 Access Token Response. Off unless a client is registered for it, and never for a
//! public client (the token endpoint answers others `unauthorized_client`). §4.3.2: "the
//! authorization server MUST protect the endpoint against brute force attacks": the password
//! is checked by the same throttled sign-in as the login page (per address, per username),
//! with a budget per client per minute instead of one per page.

use std::net::IpAddr;

use super::App;
use super::interaction::{self, SignInRefusal};
use super::params::{Params, parse_scope, words};
use super::scope_policy::{self, Ask};
use super::sign_in_limit::Attempt;
use super::tokens::{self, Issue, TokenResponse};
use crate::crypto::{hash_secret, random_token};
use crate::error::OAuthError;
use crate::limits::PASSWORD_GRANT_PARAMETERS;
use crate::model::*;
use crate::storage::{ClientContext, write};

pub async fn exchange(
    app: &App,
    context: &ClientContext,
    params: &Params,
    peer: IpAddr,
) -> Result<TokenResponse, OAuthError> {
    let client = &context.client;
    if client.is_public() {
        return Err(OAuthError::UnauthorizedClient("a public client may not use the password grant".into()));
    }
    params.check_lengths(PASSWORD_GRANT_PARAMETERS)?;
    let username = params.required("username")?;
    let password = params.required("password")?;
    let requested = parse_scope(params.get("scope"))?;
    let acr_values = words(params.get("acr_values"));
    let user = match interaction::sign_in(app, peer, Attempt::Client(&client.id), username, password).await? {
        Ok(user) => user,
        Err(SignInRefusal::Wrong) => {
            return Err(OAuthError::InvalidGrant("the username or password is incorrect".into()));
        }
        Err(SignInRefusal::Refused(e) | SignInRefusal::PageSpent(e)) => return Err(e),
    };
    if let Some(application) = context.application.as_ref().filter(|a| a.owner_only)
        && application.created_by.as_deref() != Some(user.id.as_str())
    {
        return Err(OAuthError::InvalidGrant("only the user who registered this application may use it".into()));
    }
    let decision = scope_policy::resolve(
        app,
        context,
        Ask {
            user: Some(&user),
            requested: &requested,
            scope_parameter_present: params.get("scope").is_some(),
            grant_type: GrantType::Password.as_str(),
            original_scopes: None,
            acr_values: &acr_values,
            claims_parameter: None,
        },
    )
    .await?;

    // The grant the tokens hang off, as a redeemed code creates it; the password was just
    // checked, so this is when the user authenticated.
    let settings = context.token_settings();
    let now = app.clock.now();
    let refresh_ttl = settings.refresh_token_ttl.unwrap_or(app.config.tokens.refresh_token_ttl) as i64;
    let grant = Grant {
        id: random_token(16),
        client_id: client.id.clone(),
        user_id: Some(user.id.clone()),
        created_at: now,
        expires_at: now + refresh_ttl,
        doc: GrantDocument { scopes: decision.scopes, auth_time: Some(now), claims: decision.claims },
    };
    let always = settings.refresh_tokens == Some(RefreshTokens::Always);
    let wants_refresh = client.allows_grant(GrantType::RefreshToken)
        && (always || grant.doc.scopes.iter().any(|s| s == "offline_access"));
    let mut writes = vec![write::create(&grant)?];
    let refresh_token = if wants_refresh {
        let token = random_token(32);
        writes.push(write::create(&RefreshToken {
            hash: hash_secret(&token),
            grant_id: grant.id.clone(),
            client_id: client.id.clone(),
            user_id: grant.user_id.clone(),
            scopes: grant.doc.scopes.clone(),
            claims: grant.doc.claims.clone(),
            auth_time: grant.doc.auth_time,
            created_at: now,
            expires_at: grant.expires_at,
        })?);
        Some(token)
    } else {
        None
    };
    app.storage.apply(writes).await?;
    let id_token_claims = tokens::id_token_user_claims(&user, &grant.doc.scopes, settings);
    tokens::issue(
        app,
        Issue {
            context,
            user_id: Some(&user.id),
            scopes: &grant.doc.scopes,
            claims: &grant.doc.claims,
            grant_id: Some(&grant.id),
            nonce: None,
            auth_time: grant.doc.auth_time,
            id_token_claims: Some(&id_token_claims),
            refresh_token,
        },
    )
}
