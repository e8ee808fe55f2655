//! RFC 6749 §4.4 Client Credentials Grant: the client asks for itself. No refresh token (§4.4.3).

use super::App;
use super::dpop::Jkt;
use super::params::{Params, parse_scope};
use super::scope_policy::{self, Ask};
use super::tokens::{self, Issue, TokenResponse};
use crate::error::OAuthError;
use crate::model::*;
use crate::storage::ClientContext;

pub async fn exchange(
    app: &App,
    context: &ClientContext,
    params: &Params,
    dpop: Option<&Jkt>,
) -> Result<TokenResponse, OAuthError> {
    let requested = parse_scope(params.get("scope"))?;
    let granted = scope_policy::resolve(
        app,
        context,
        Ask::new(GrantType::ClientCredentials.as_str(), None, &requested, params.get("scope").is_some()),
    )
    .await?;
    tokens::issue(app, Issue::without_user(context, None, &granted.scopes, &granted.claims), dpop).await
}
