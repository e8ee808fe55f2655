//! RFC 8693 OAuth 2.0 Token Exchange, §2.1–§2.2: a client registered for it trades a user's
//! access token this server issued (to any client) for one of its own, for the same user and
//! at most the same scopes, as the scope policy decides (it is asked with the grant type
//! `urn:ietf:params:oauth:grant-type:token-exchange` and the subject token's scopes as the
//! ceiling). The new token hangs off the subject token's grant: revoking that grant revokes
//! it too. No actor token, no other audience, no refresh token.

use super::App;
use super::dpop::Jkt;
use super::params::{Params, parse_scope};
use super::scope_policy::{self, Ask};
use super::tokens::{self, Issue, TokenResponse};
use crate::error::OAuthError;
use crate::model::GrantType;
use crate::storage::ClientContext;

/// §3: the one token type taken and issued.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

pub async fn exchange(
    app: &App,
    context: &ClientContext,
    params: &Params,
    dpop: Option<&Jkt>,
) -> Result<TokenResponse, OAuthError> {
    if context.client.is_public() {
        return Err(OAuthError::UnauthorizedClient("a public client may not exchange tokens".into()));
    }
    let subject_token = params.required("subject_token")?;
    if params.required("subject_token_type")? != ACCESS_TOKEN_TYPE {
        return Err(OAuthError::InvalidRequest(format!("`subject_token_type` must be {ACCESS_TOKEN_TYPE}")));
    }
    if params.get("requested_token_type").is_some_and(|t| t != ACCESS_TOKEN_TYPE) {
        return Err(OAuthError::InvalidRequest(format!("only {ACCESS_TOKEN_TYPE} is issued")));
    }
    if params.get("actor_token").is_some() || params.get("actor_token_type").is_some() {
        return Err(OAuthError::InvalidRequest("delegation with an actor token is not supported".into()));
    }
    if let Some(target) = params.get("audience").or(params.get("resource"))
        && target != app.config.issuer()
    {
        return Err(OAuthError::InvalidTarget(format!("tokens are issued for this server only, not `{target}`")));
    }
    let invalid = || OAuthError::InvalidRequest("`subject_token` is not a live access token of this server".into());
    let subject = super::access_token::validate(app, subject_token, None).await?.ok_or_else(invalid)?;
    // A user's token: its grant names the user. A client's own token has none to exchange.
    let grant_id = subject.gid.clone().ok_or_else(invalid)?;
    let user = app.storage.get_user(&subject.sub).await?.ok_or_else(invalid)?;
    let ceiling: Vec<String> = subject.scopes().map(str::to_owned).collect();
    let requested = parse_scope(params.get("scope"))?;
    if let Some(extra) = requested.iter().find(|s| !ceiling.contains(s)) {
        return Err(OAuthError::InvalidScope(format!("`{extra}` is not in the subject token")));
    }
    let decision = scope_policy::resolve(
        app,
        context,
        Ask {
            user: Some(&user),
            requested: &requested,
            scope_parameter_present: params.get("scope").is_some(),
            grant_type: GrantType::TokenExchange.as_str(),
            original_scopes: Some(&ceiling),
            acr_values: &[],
            claims_parameter: None,
        },
    )
    .await?;
    let mut response = tokens::issue(
        app,
        Issue {
            context,
            user_id: Some(&user.id),
            scopes: &decision.scopes,
            claims: &decision.claims,
            grant_id: Some(&grant_id),
            nonce: None,
            auth_time: subject.auth_time,
            id_token_claims: None,
            refresh_token: None,
        },
        dpop,
    )?;
    response.issued_token_type = Some(ACCESS_TOKEN_TYPE);
    Ok(response)
}
