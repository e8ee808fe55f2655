//! RFC 6749 §4.3 Resource Owner Password Credentials Grant: §4.3.2 Access Token Request and
//! §4.3.3 Access Token Response. Off unless a client is registered for it, and never for a
//! public client (the token endpoint answers others `unauthorized_client`). §4.3.2: "the
//! authorization server MUST protect the endpoint against brute force attacks": the password
//! is checked by the same throttled sign-in as the login page (per address, per username),
//! with a budget per client per minute instead of one per page.

use std::net::IpAddr;

use super::App;
use super::dpop::Jkt;
use super::interaction::{self, SignInRefusal};
use super::params::{Params, parse_scope};
use super::scope_policy::{self, Ask};
use super::sign_in_limit::Attempt;
use super::tokens::TokenResponse;
use crate::error::OAuthError;
use crate::limits::PASSWORD_GRANT_PARAMETERS;
use crate::model::*;
use crate::storage::ClientContext;

pub async fn exchange(
    app: &App,
    context: &ClientContext,
    params: &Params,
    peer: IpAddr,
    dpop: Option<&Jkt>,
) -> Result<TokenResponse, OAuthError> {
    let client = &context.client;
    if client.is_public() {
        return Err(OAuthError::UnauthorizedClient("a public client may not use the password grant".into()));
    }
    params.check_lengths(PASSWORD_GRANT_PARAMETERS)?;
    let username = params.required("username")?;
    let password = params.required("password")?;
    let requested = parse_scope(params.get("scope"))?;
    let acr_values = params.acr_values()?;
    let user = match interaction::sign_in(app, peer, Attempt::Client(&client.id), username, password).await? {
        Ok(user) => user,
        Err(SignInRefusal::Wrong) => {
            return Err(OAuthError::InvalidGrant("the username or password is incorrect".into()));
        }
        Err(SignInRefusal::Refused(e) | SignInRefusal::PageSpent(e)) => return Err(e),
    };
    let decision = scope_policy::resolve(
        app,
        context,
        Ask::new(GrantType::Password.as_str(), Some(&user), &requested, params.get("scope").is_some())
            .acr_values(&acr_values),
    )
    .await?;

    // The password was just checked: this is when the user authenticated.
    let now = app.clock.now();
    super::grant::issue_to_user(app, context, &user, decision, now, None, dpop).await
}
