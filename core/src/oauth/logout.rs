//! OpenID Connect RP-Initiated Logout 1.0 §2–§3: a relying party sends the browser here to
//! end the person's session, with the ID token it holds as `id_token_hint` (required here:
//! it shows that the request comes from an application the person signed in to, so another
//! site cannot sign them out), and optionally a `post_logout_redirect_uri` the client
//! registered, which gets `state` back. The clients the session signed in to hear of its
//! end by back-channel logout ([`super::back_channel_logout`]).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::interaction::error_page;
use super::params::{Params, words};
use super::session::{self, SESSION_COOKIE};
use super::tokens::Audience;
use super::{App, pages};
use crate::error::OAuthError;

pub async fn get(State(app): State<App>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    end_session(app, headers, query.unwrap_or_default().into_bytes()).await
}

pub async fn post(State(app): State<App>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    match body {
        Ok(body) => end_session(app, headers, body.to_vec()).await,
        Err(e) => OAuthError::from(e).into_response(),
    }
}

/// What an ID token says of whom it was issued to.
#[derive(Debug, Deserialize)]
struct Hint {
    sub: String,
    aud: Audience,
}

async fn end_session(app: App, headers: HeaderMap, raw: Vec<u8>) -> Response {
    let params = match Params::parse(&raw) {
        Ok(p) => p,
        Err(e) => return error_page(&app, &headers, None, &[], e),
    };
    let locales = words(params.get("ui_locales"));
    match logout(&app, &headers, &params).await {
        Ok(response) => response,
        Err(e) => error_page(&app, &headers, None, &locales, e),
    }
}

async fn logout(app: &App, headers: &HeaderMap, params: &Params) -> Result<Response, OAuthError> {
    let hint = params.get("id_token_hint").ok_or_else(|| {
        OAuthError::InvalidRequest("`id_token_hint` is required: the ID token the application holds".into())
    })?;
    // §2: the hint is one of our ID tokens; it may have expired.
    let hint: Hint = app
        .keys
        .verify_expired_or_not(hint, "JWT")
        .await
        .map_err(|_| OAuthError::InvalidRequest("`id_token_hint` is not an ID token this server issued".into()))?;
    let client_id = match (&hint.aud, params.get("client_id")) {
        (Audience::One(aud), None) => aud.clone(),
        (Audience::One(aud), Some(id)) if aud == id => aud.clone(),
        (many @ Audience::Many(_), Some(id)) if many.contains(id) => id.to_owned(),
        (Audience::Many(_), None) => return Err(OAuthError::InvalidRequest("name the `client_id`".into())),
        _ => return Err(OAuthError::InvalidRequest("`client_id` is not the ID token's audience".into())),
    };
    let client = app
        .storage
        .client_context(&client_id)
        .await?
        .ok_or_else(|| OAuthError::InvalidRequest("the ID token's client is no longer registered".into()))?;
    // §3: only a URI the client registered, compared exactly, before anything else happens.
    let back = match params.get("post_logout_redirect_uri") {
        Some(uri) if client.client.doc.post_logout_redirect_uris.iter().any(|r| r == uri) => Some(uri),
        Some(_) => {
            return Err(OAuthError::InvalidRequest(
                "`post_logout_redirect_uri` is not registered for this client".into(),
            ));
        }
        None => None,
    };
    // The browser's session ends if it is the hint's user's; another person's is left alone.
    let mut ended = false;
    if let Some(session) = session::current(app, headers).await?
        && session.user_id == hint.sub
    {
        app.storage.delete_session(&session.hash).await?;
        ended = true;
        tracing::info!(client = %client_id, "session ended by the relying party");
        super::back_channel_logout::session_ended(app, &session).await?;
    }
    let mut response = match back {
        Some(uri) => {
            let mut url = url::Url::parse(uri).map_err(|_| OAuthError::InvalidRequest("bad URI".into()))?;
            if let Some(state) = params.get("state") {
                url.query_pairs_mut().append_pair("state", state);
            }
            Redirect::to(url.as_str()).into_response()
        }
        None => pages::text(app, "You are signed out.".into(), StatusCode::OK),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if ended {
        headers.append(header::SET_COOKIE, session::set_cookie(app, SESSION_COOKIE, "", 0));
    }
    Ok(response)
}
