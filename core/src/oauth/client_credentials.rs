//! RFC 6749 §4.4 Client Credentials Grant: the client asks for itself. No refresh token (§4.4.3).

use super::params::{Params, parse_scope};
use super::tokens::{self, Issue, TokenResponse};
use crate::error::OAuthError;
use crate::model::*;
use crate::server::App;

pub fn exchange(app: &App, client: &Client, params: &Params) -> Result<TokenResponse, OAuthError> {
    let requested = parse_scope(params.get("scope"))?;
    let granted = super::scope_policy::resolve(
        app,
        client,
        None,
        &requested,
        params.get("scope").is_some(),
        GRANT_CLIENT_CREDENTIALS,
    )?;
    tokens::issue(
        app,
        Issue {
            client,
            user: None,
            scopes: &granted.scopes,
            claims: &granted.claims,
            grant: None,
            nonce: None,
            auth_time: None,
            refresh_token: None,
        },
    )
}
