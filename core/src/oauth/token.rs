//! RFC 6749 §3.2 Token Endpoint: authenticates the client (§2.3) and dispatches on
//! `grant_type` to one module per grant (§4.1.3, §4.4, §6, §4.3), or to the plugin that
//! answers an extension grant (§4.5). A DPoP proof (RFC 9449 §5) is checked here, once, and
//! its key handed to the grant, which binds what it issues to it.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{Extensions, HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use super::App;
use super::client_auth;
use super::cors::CrossOrigin;
use super::dpop;
use super::params::Params;
use super::{
    authorization_code, client_credentials, device_code, extension_grant, password, refresh_token, token_exchange,
};
use crate::error::OAuthError;
use crate::model::*;

pub async fn token(
    State(app): State<App>,
    extensions: Extensions,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return OAuthError::from(e).into_response(),
    };
    // The client address, for the password grant's throttling (`crate::client_address`).
    let peer = crate::oauth::peer(&extensions);
    let mut cross_origin = CrossOrigin::of(&headers);
    let response = match handle(&app, &headers, uri.path(), &body, peer, &mut cross_origin).await {
        Ok(response) => {
            let mut r = axum::Json(response).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            // RFC 9449 §8.2: where nonces are required, each answer to a proof brings the next
            // one, so the client need not be refused for it first.
            if app.config.dpop.require_nonce
                && headers.contains_key(dpop::HEADER)
                && let Ok(nonce) = HeaderValue::from_str(&dpop::nonce(&app))
            {
                r.headers_mut().insert(crate::error::DPOP_NONCE_HEADER, nonce);
            }
            r
        }
        Err(e) => e.into_response(),
    };
    cross_origin.answer(response)
}

/// §3.2: the body must be `application/x-www-form-urlencoded`.
pub fn require_form(headers: &HeaderMap) -> Result<(), OAuthError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")) {
        Ok(())
    } else {
        Err(OAuthError::InvalidRequest("the body must be application/x-www-form-urlencoded".into()))
    }
}

async fn handle(
    app: &App,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
    peer: IpAddr,
    cross_origin: &mut CrossOrigin,
) -> Result<super::tokens::TokenResponse, OAuthError> {
    require_form(headers)?;
    let mut params = Params::parse(body)?;
    let name = params.required("grant_type")?.to_owned();
    let unsupported = || OAuthError::UnsupportedGrantType(format!("grant_type `{name}` is not supported"));
    let grant_type = match GrantType::parse(&name) {
        Some(g) => Ok(g),
        None => Err(app.host.grant_plugin_for(&name).ok_or_else(unsupported)?),
    };
    let context = client_auth::authenticate(app, headers, &mut params).await?.context;
    cross_origin.client(&context.client);
    if let Some(why) = context.unusable() {
        return Err(OAuthError::UnauthorizedClient(why.into()));
    }
    let registered = match &grant_type {
        Ok(g) => context.client.allows_grant(*g),
        Err(_) => context.client.doc.grant_types.contains(&name),
    };
    if !registered {
        return Err(OAuthError::UnauthorizedClient(format!("this client may not use the `{name}` grant")));
    }
    // RFC 9449 §4.3, §5: the key of the request's DPoP proof, if any; what is issued is bound to it.
    let dpop = dpop::token_request(app, headers, path, &context.client).await?;
    let dpop = dpop.as_ref();
    // Exhaustive: a grant type is dispatched to its own module, or to the plugin answering
    // it, or not accepted at all. Each grant's future is boxed: inline, every token request's
    // future would be as large as the largest grant's (token exchange, 6 KB).
    let issued: Pin<Box<dyn Future<Output = Result<_, OAuthError>> + Send + '_>> = match &grant_type {
        Ok(GrantType::AuthorizationCode) => Box::pin(authorization_code::exchange(app, &context, &params, dpop)),
        Ok(GrantType::ClientCredentials) => Box::pin(client_credentials::exchange(app, &context, &params, dpop)),
        Ok(GrantType::RefreshToken) => Box::pin(refresh_token::exchange(app, &context, &params, dpop)),
        Ok(GrantType::Password) => Box::pin(password::exchange(app, &context, &params, peer, dpop)),
        Ok(GrantType::DeviceCode) => Box::pin(device_code::exchange(app, &context, &params, dpop)),
        Ok(GrantType::TokenExchange) => Box::pin(token_exchange::exchange(app, &context, &params, dpop)),
        Err(plugin) => Box::pin(extension_grant::exchange(app, &context, &params, (&name, plugin), dpop)),
    };
    let issued = issued.await;
    // Counted by `grant_type`: one of ours, or an extension grant's URI a loaded plugin answers.
    if issued.is_ok() {
        crate::metrics::token_issued(&name);
    }
    issued
}
