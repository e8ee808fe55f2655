//! RFC 9126 OAuth 2.0 Pushed Authorization Requests. The client posts its authorization
//! request's parameters (§2.1), authenticated as at the token endpoint; they are checked as
//! the authorization endpoint checks them and kept, for [`LIFETIME`] seconds, under a
//! `request_uri` (§2.2). The authorization request then names only `client_id` and that
//! `request_uri` (§4), which works once (read back by `authorize`). A client may be
//! registered to push every request. A DPoP proof sent with the push (RFC 9449 §10.1) binds
//! the code to its key, as the `dpop_jkt` parameter does.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::cors::CrossOrigin;
use super::params::Params;
use super::token::require_form;
use super::{App, authorize, client_auth, dpop};
use crate::crypto::{hash_secret, random_token};
use crate::error::OAuthError;
use crate::model::PushedRequest;
use crate::storage::write;

/// How long a pushed request waits for its authorization request, in seconds (§2.2: short).
pub const LIFETIME: i64 = 90;

/// `POST` at the pushed authorization request endpoint.
pub async fn push(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return OAuthError::from(e).into_response(),
    };
    let mut cross_origin = CrossOrigin::of(&headers);
    let response = match handle(&app, &headers, uri.path(), &body, &mut cross_origin).await {
        // §2.2: 201 with the request URI and its lifetime.
        Ok((request_uri, expires_in)) => {
            let mut r =
                (StatusCode::CREATED, axum::Json(json!({"request_uri": request_uri, "expires_in": expires_in})))
                    .into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => e.into_response(),
    };
    cross_origin.answer(response)
}

async fn handle(
    app: &App,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
    cross_origin: &mut CrossOrigin,
) -> Result<(String, i64), OAuthError> {
    require_form(headers)?;
    let mut params = Params::parse(body)?;
    let client = client_auth::authenticate(app, headers, &mut params).await?.client;
    cross_origin.client(&client);
    // §2.1: a pushed request cannot itself point elsewhere.
    if params.get("request_uri").is_some() {
        return Err(OAuthError::InvalidRequest("a pushed request cannot carry `request_uri`".into()));
    }
    params.insert("client_id", client.id.clone());
    // §3: a request object may be pushed too; it is opened here, and what is kept is plain.
    let mut params = super::request_object::expand(app, params).await.map_err(|(e, _)| e)?;
    // RFC 9449 §10.1: the proof's key is the code's, and `dpop_jkt`, if given too, names it.
    let target = dpop::Target { method: "POST", path, access_token: None };
    if let Some(jkt) = dpop::check(app, headers, target).await? {
        if params.get("dpop_jkt").is_some_and(|given| given != jkt.as_str()) {
            return Err(dpop::ProofError::JktParameter.into());
        }
        params.insert("dpop_jkt", jkt.as_str().to_owned());
    }
    // §2.1: checked as the authorization endpoint would, errors answered here.
    authorize::check(app, &params).await?;
    let request_uri = format!("{}{}", PushedRequest::URI_PREFIX, random_token(32));
    let pushed = PushedRequest {
        id: hash_secret(&request_uri),
        client_id: client.id,
        parameters: params.encode(),
        expires_at: app.clock.now() + LIFETIME,
    };
    app.storage.apply(vec![write::create(&pushed)?]).await?;
    Ok((request_uri, LIFETIME))
}
