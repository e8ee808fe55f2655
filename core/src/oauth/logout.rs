//! OpenID Connect RP-Initiated Logout 1.0 §2–§3: a relying party sends the browser here to
//! end the person's session. With the ID token it holds as `id_token_hint` (§2), the request
//! shows it comes from an application the person signed in to: the hint's user's session
//! ends at once. Without a hint (§2: "the OP SHOULD ask the End-User whether to log out"),
//! and from the account pages' sign-out form, the person is asked first: a page with a form
//! whose token is derived from the session (`Page::Logout`), which ends the session when
//! confirmed and shows that it did, or goes back to the connections page when cancelled.
//! A `post_logout_redirect_uri` is followed only when the client named by the hint's audience
//! or by `client_id` registered it (§3), and gets `state` back. The clients the session
//! signed in to hear of its end by back-channel logout ([`super::back_channel_logout`]).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::interaction::{self, error_page};
use super::params::{Params, words};
use super::profiles::{Endpoint, Profile};
use super::session::{self, SESSION_COOKIE};
use super::tokens::Audience;
use super::{App, pages};
use crate::error::OAuthError;
use crate::model::Session;
use crate::plugin::consent::{Page, PageContext};
use crate::storage::ClientContext;

/// What the confirmation form's token is derived for (`session::form_token`).
const PURPOSE: &str = "logout";

pub async fn get(State(app): State<App>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    end_session(app, headers, query.unwrap_or_default().into_bytes()).await
}

/// §2 allows POST, its parameters in the body. The account pages' sign-out form names the
/// page's locale in its action's query instead: `ui_locales` is read from there when the body
/// has none.
pub async fn post(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut raw = match body {
        Ok(body) => body.to_vec(),
        Err(e) => return OAuthError::from(e).into_response(),
    };
    let in_body = Params::parse(&raw).map(|p| p.get("ui_locales").is_some()).unwrap_or(true);
    let in_query = query.as_deref().and_then(|q| Params::parse(q.as_bytes()).ok());
    if let Some(locales) = in_query.as_ref().and_then(|q| q.get("ui_locales")).filter(|_| !in_body) {
        let pair = url::form_urlencoded::Serializer::new(String::new()).append_pair("ui_locales", locales).finish();
        if !raw.is_empty() {
            raw.push(b'&');
        }
        raw.extend_from_slice(pair.as_bytes());
    }
    end_session(app, headers, raw).await
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
    let Some(hint) = params.get("id_token_hint") else {
        return confirm(app, headers, params).await;
    };
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
    let back = return_uri(params, Some(&client))?;
    // The browser's session ends if it is the hint's user's; another person's is left alone.
    let mut ended = false;
    if let Some(session) = session::current(app, headers).await?
        && session.user_id == hint.sub
    {
        end(app, &session).await?;
        ended = true;
        tracing::info!(client = %client_id, "session ended by the relying party");
    }
    signed_out(app, headers, params, Some(&client), back, ended)
}

/// §3: the `post_logout_redirect_uri` asked for, when `client` registered it, compared
/// exactly; one that cannot be checked (no client known) is refused, never followed.
fn return_uri<'a>(params: &'a Params, client: Option<&ClientContext>) -> Result<Option<&'a str>, OAuthError> {
    match (params.get("post_logout_redirect_uri"), client) {
        (None, _) => Ok(None),
        (Some(uri), Some(c)) if c.client.doc.post_logout_redirect_uris.iter().any(|r| r == uri) => Ok(Some(uri)),
        (Some(_), Some(_)) => {
            Err(OAuthError::InvalidRequest("`post_logout_redirect_uri` is not registered for this client".into()))
        }
        (Some(_), None) => Err(OAuthError::InvalidRequest(
            "`post_logout_redirect_uri` needs the `id_token_hint` or the `client_id` it was registered for".into(),
        )),
    }
}

/// Ends a browser session: its record, then what ends with it, the clients it signed in to
/// told by back-channel logout.
async fn end(app: &App, session: &Session) -> Result<(), OAuthError> {
    app.storage.delete_session(&session.hash).await?;
    super::back_channel_logout::session_ended(app, session).await
}

/// Without a hint: the page asking the signed-in person to confirm, and its form's answer.
/// `decision=logout` with the page's token ends the session; `decision=cancel` goes back to
/// the connections page; anything else (the relying party's request, the account pages'
/// sign-out form, a stale page) is the question.
async fn confirm(app: &App, headers: &HeaderMap, params: &Params) -> Result<Response, OAuthError> {
    let client = match params.get("client_id") {
        Some(id) => Some(
            app.storage
                .client_context(id)
                .await?
                .filter(|c| !c.client.is_expired(app.clock.now()))
                .ok_or_else(|| OAuthError::InvalidRequest("`client_id` is not a registered client".into()))?,
        ),
        None => None,
    };
    let back = return_uri(params, client.as_deref())?;
    let locales = words(params.get("ui_locales"));
    let Some((secret, session)) = session::current_with_secret(app, headers).await? else {
        // Nobody is signed in here: there is nothing to end.
        return signed_out(app, headers, params, client.as_deref(), back, false);
    };
    let token = session::form_token(&secret, PURPOSE);
    let confirmed = params.get("csrf").is_some_and(|c| session::same(c, &token));
    match params.get("decision") {
        Some("cancel") => {
            let path = match locales.is_empty() {
                true => pages::CONNECTIONS_PATH.to_owned(),
                false => {
                    let mut query = url::form_urlencoded::Serializer::new(String::new());
                    format!(
                        "{}?{}",
                        pages::CONNECTIONS_PATH,
                        query.append_pair("ui_locales", &locales.join(" ")).finish()
                    )
                }
            };
            Ok(see_other(app, &path))
        }
        Some("logout") if confirmed => {
            end(app, &session).await?;
            tracing::info!("session ended by its user");
            signed_out(app, headers, params, client.as_deref(), back, true)
        }
        _ => {
            let mut context = context(app, headers, &locales, client.as_deref());
            context.hidden.push(("csrf".into(), token));
            // The request's own parameters, for the answer once confirmed.
            for name in ["client_id", "post_logout_redirect_uri", "state", "ui_locales"] {
                if let Some(value) = params.get(name) {
                    context.hidden.push((name.into(), value.to_owned()));
                }
            }
            let user_name = app.storage.get_user(&session.user_id).await?.as_ref().map(interaction::user_name);
            render(app, client.as_deref(), &Page::Logout { context, user_name, done: false })
        }
    }
}

/// The logout pages' context: the client's consent UI and name when a client is known, the
/// page's locale, the confirmation form posting back here.
fn context(app: &App, headers: &HeaderMap, locales: &[String], client: Option<&ClientContext>) -> PageContext {
    let plugin = client.map_or(app.host.defaults.consent.as_str(), |c| interaction::consent_plugin(app, c));
    PageContext {
        locale: pages::pick_locale(app, plugin, locales, headers),
        issuer: app.config.issuer().to_owned(),
        client_name: client.map(|c| interaction::client_name(&c.client)).unwrap_or_default(),
        action: format!("{}{}", app.config.issuer(), Profile::Native.path(Endpoint::EndSession)),
        hidden: Vec::new(),
        application: client.and_then(|c| c.application.as_ref()).map(interaction::application_view),
    }
}

fn render(app: &App, client: Option<&ClientContext>, page: &Page) -> Result<Response, OAuthError> {
    let plugin = client.map_or(app.host.defaults.consent.as_str(), |c| interaction::consent_plugin(app, c));
    let html = app.host.render(plugin, page)?.map_err(|e| OAuthError::internal("page", e))?;
    Ok(pages::html(app, html, StatusCode::OK, Some(app.config.issuer())))
}

fn see_other(app: &App, path: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{}{path}", app.config.issuer())) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The answer once signed out (or with nobody to sign out): back to the registered URI with
/// `state` (§3), or the page saying so; the session cookie cleared when a session `ended`.
fn signed_out(
    app: &App,
    headers: &HeaderMap,
    params: &Params,
    client: Option<&ClientContext>,
    back: Option<&str>,
    ended: bool,
) -> Result<Response, OAuthError> {
    let mut response = match back {
        Some(uri) => {
            let mut url = url::Url::parse(uri).map_err(|_| OAuthError::InvalidRequest("bad URI".into()))?;
            if let Some(state) = params.get("state") {
                url.query_pairs_mut().append_pair("state", state);
            }
            Redirect::to(url.as_str()).into_response()
        }
        None => {
            let context = context(app, headers, &words(params.get("ui_locales")), client);
            render(app, client, &Page::Logout { context, user_name: None, done: true })?
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if ended {
        headers.append(header::SET_COOKIE, session::set_cookie(app, SESSION_COOKIE, "", 0));
    }
    Ok(response)
}
