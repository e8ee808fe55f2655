//! RFC 8693 OAuth 2.0 Token Exchange, §2.1–§2.2: a confidential client registered for it
//! trades a user's access token this server issued (to any client) for one of its own, for
//! the same user and at most the same scopes, as the scope policy decides (it is asked with
//! the grant type `urn:ietf:params:oauth:grant-type:token-exchange` and the subject token's
//! scopes as the ceiling). The new token hangs off the subject token's grant: revoking that
//! grant revokes it too. No refresh token.
//!
//! - Delegation (§1.1, §4.1): with an `actor_token` (a live access token of this server),
//!   the new token says who acts for the user in its `act` claim (`sub` and `client_id` of
//!   the actor), the subject token's own `act` nested inside it, so a chain of delegation
//!   stays visible. Where the subject token names who may act for it (`may_act`, §4.4), any
//!   other actor is refused; the scope policy names it, as a claim of the tokens it grants
//!   (`act` only this module sets). Without an actor token it is impersonation: no `act`.
//! - Audience (§2.1 `audience`, `resource`): this server, or one of the audiences the client
//!   registered (`audiences`); the new token's `aud` is what was asked. Anything else is
//!   `invalid_target`.

use serde_json::{Value, json};

use super::App;
use super::dpop::Jkt;
use super::params::{Params, parse_scope};
use super::scope_policy::{self, Ask};
use super::tokens::{self, AccessClaims, Issue, TokenResponse};
use crate::error::OAuthError;
use crate::model::{ExtraClaim, GrantType};
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
    let audience = targets(app, context, params)?;
    let invalid = || OAuthError::InvalidRequest("`subject_token` is not a live access token of this server".into());
    let subject = super::access_token::validate(app, subject_token, None).await?.ok_or_else(invalid)?;
    // A user's token: its grant names the user. A client's own token has none to exchange.
    let grant_id = subject.gid.clone().ok_or_else(invalid)?;
    let user = app.storage.get_user(&subject.sub).await?.filter(|u| !u.doc.disabled).ok_or_else(invalid)?;
    let act = actor(app, params, &subject).await?;
    let ceiling: Vec<String> = subject.scopes().map(str::to_owned).collect();
    let requested = parse_scope(params.get("scope"))?;
    if let Some(extra) = requested.iter().find(|s| !ceiling.contains(s)) {
        return Err(OAuthError::InvalidScope(format!("`{extra}` is not in the subject token")));
    }
    let decision = scope_policy::resolve(
        app,
        context,
        Ask::new(GrantType::TokenExchange.as_str(), Some(&user), &requested, params.get("scope").is_some())
            .within(&ceiling),
    )
    .await?;
    let mut claims = decision.claims;
    if let Some(act) = act {
        claims.retain(|c| c.name != "act");
        claims.push(ExtraClaim { name: "act".into(), value: act, access_token: true, ..Default::default() });
    }
    // The exchanged token says how the person signed in, as the subject token did.
    let subject_assurance =
        subject.acr.clone().map(|acr| crate::model::Assurance { acr, amr: subject.amr.clone().unwrap_or_default() });
    let mut response = tokens::issue(
        app,
        Issue {
            context,
            user_id: Some(&user.id),
            subject: None,
            scopes: &decision.scopes,
            claims: &claims,
            grant_id: Some(&grant_id),
            nonce: None,
            auth_time: subject.auth_time,
            sid: None,
            assurance: subject_assurance.as_ref(),
            audience: audience.as_deref(),
            id_token_claims: None,
            refresh_token: None,
        },
        dpop,
    )
    .await?;
    response.issued_token_type = Some(ACCESS_TOKEN_TYPE);
    Ok(response)
}

/// §2.1 `audience` and `resource` (each at most once here): the new token's audiences, or
/// none for this server alone.
fn targets(app: &App, context: &ClientContext, params: &Params) -> Result<Option<Vec<String>>, OAuthError> {
    let issuer = app.config.issuer();
    let asked: Vec<&str> = [params.get("audience"), params.get("resource")].into_iter().flatten().collect();
    if let Some(other) = asked.iter().find(|t| **t != issuer && !context.client.doc.audiences.iter().any(|a| a == *t)) {
        return Err(OAuthError::InvalidTarget(format!(
            "tokens are issued for this server and the client's registered audiences, not `{other}`"
        )));
    }
    let mut audience: Vec<String> = Vec::new();
    for t in asked {
        if !audience.iter().any(|a| a == t) {
            audience.push(t.to_owned());
        }
    }
    Ok((!audience.is_empty()).then_some(audience))
}

/// §4.1: the `act` claim for an `actor_token`, or none without one.
async fn actor(app: &App, params: &Params, subject: &AccessClaims) -> Result<Option<Value>, OAuthError> {
    let (token, token_type) = match (params.get("actor_token"), params.get("actor_token_type")) {
        (None, None) => return Ok(None),
        (Some(token), Some(token_type)) => (token, token_type),
        // §2.1: the type is required with the token, and only with it.
        _ => return Err(OAuthError::InvalidRequest("`actor_token` and `actor_token_type` go together".into())),
    };
    if token_type != ACCESS_TOKEN_TYPE {
        return Err(OAuthError::InvalidRequest(format!("`actor_token_type` must be {ACCESS_TOKEN_TYPE}")));
    }
    let actor = super::access_token::validate(app, token, None)
        .await?
        .ok_or_else(|| OAuthError::InvalidRequest("`actor_token` is not a live access token of this server".into()))?;
    // §4.4: the subject token may say who may act for it.
    if let Some(may_act) = subject.extra.get("may_act")
        && may_act.get("sub").and_then(Value::as_str) != Some(actor.sub.as_str())
    {
        return Err(OAuthError::InvalidRequest("the actor is not one the subject token's `may_act` names".into()));
    }
    let mut act = json!({ "sub": actor.sub, "client_id": actor.client_id });
    // §4.1: the prior actors, nested.
    if let (Some(map), Some(prior)) = (act.as_object_mut(), subject.extra.get("act")) {
        map.insert("act".into(), prior.clone());
    }
    Ok(Some(act))
}
