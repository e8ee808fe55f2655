//! The pages of the authorization flow and their forms' plumbing: the login and consent
//! pages (rendered by the client's consent UI plugin), the interaction each page belongs to
//! (parked in storage, bound to the browser by an HttpOnly cookie, its forms carrying a CSRF
//! token), the password check, and the error page. The flow itself, which decides what
//! comes next, is `authorize.rs`; nothing here calls back into it.

use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::session::{self, INTERACTION_COOKIE, SESSION_COOKIE};
use crate::crypto::{hash_secret, random_token};
use crate::error::OAuthError;
use crate::model::*;
use crate::plugin::consent::{Page, PageContext};
use crate::server::{App, Portcullis};
use crate::storage::{ClientContext, write};

pub const LOGIN_PATH: &str = "/interaction/login";
pub const CONSENT_PATH: &str = "/interaction/consent";

fn consent_plugin<'a>(app: &'a Portcullis, client: &'a Client) -> &'a str {
    client.doc.consent_ui.as_deref().unwrap_or(&app.host.defaults.consent)
}

/// The first of the requested `ui_locales` the plugin renders, else its own first choice.
fn pick_locale(app: &Portcullis, plugin: &str, wanted: &[String]) -> String {
    let offered = app.host.consent_locales(plugin);
    for w in wanted {
        let w = w.to_ascii_lowercase();
        if let Some(l) = offered
            .iter()
            .find(|o| o.to_ascii_lowercase() == w || w.starts_with(&format!("{}-", o.to_ascii_lowercase())))
        {
            return l.clone();
        }
    }
    offered.first().cloned().unwrap_or_else(|| "en".into())
}

fn context(app: &Portcullis, client: &Client, parked: &Interaction, action: &str) -> PageContext {
    let plugin = consent_plugin(app, client);
    PageContext {
        locale: pick_locale(app, plugin, &parked.request.ui_locales),
        issuer: app.config.issuer().to_owned(),
        client_name: if client.doc.name.is_empty() { client.id.clone() } else { client.doc.name.clone() },
        action: format!("{}{action}", app.config.issuer()),
        hidden: vec![("interaction".into(), parked.id.clone()), ("csrf".into(), parked.csrf.clone())],
    }
}

fn render(app: &Portcullis, client: &Client, page: &Page, status: StatusCode) -> Result<Response, OAuthError> {
    let html = app.host.render(consent_plugin(app, client), page)?.map_err(|e| OAuthError::internal("page", e))?;
    let mut response = (status, Html(html)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    Ok(response)
}

/// Parks an interaction and renders its page, with the cookie that binds it to this browser.
async fn park_and_render(
    app: &App,
    client: &Client,
    parked: Interaction,
    page: impl FnOnce(PageContext) -> Page,
) -> Result<Response, OAuthError> {
    app.storage.put_interaction(&parked).await?;
    let action = if parked.user_id.is_some() { CONSENT_PATH } else { LOGIN_PATH };
    let mut response = render(app, client, &page(context(app, client, &parked, action)), StatusCode::OK)?;
    let cookie = session::set_cookie(app, INTERACTION_COOKIE, &parked.id, app.config.tokens.interaction_ttl);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

fn new_interaction(app: &Portcullis, request: AuthorizationRequest) -> Interaction {
    Interaction {
        id: random_token(32),
        expires_at: now() + app.config.tokens.interaction_ttl as i64,
        csrf: random_token(24),
        request,
        ..Default::default()
    }
}

/// The login page for a request that has no signed-in user.
pub async fn login_page(app: &App, client: &Client, request: AuthorizationRequest) -> Result<Response, OAuthError> {
    let parked = new_interaction(app, request);
    let login_hint = parked.request.login_hint.clone();
    park_and_render(app, client, parked, |context| Page::Login { context, login_hint, error: None }).await
}

/// The consent page, with the policy's decision parked beside it.
pub async fn consent_page(
    app: &App,
    client: &Client,
    user: &User,
    request: AuthorizationRequest,
    auth_time: i64,
    decision: Decision,
) -> Result<Response, OAuthError> {
    let scopes = decision.scopes.clone();
    let parked = Interaction {
        user_id: Some(user.id.clone()),
        auth_time: Some(auth_time),
        decision: Some(decision),
        ..new_interaction(app, request)
    };
    let user_name = if user.doc.name.is_empty() { user.username.clone() } else { user.doc.name.clone() };
    park_and_render(app, client, parked, |context| Page::Consent { context, user_name, scopes }).await
}

#[derive(Deserialize)]
pub struct LoginForm {
    interaction: String,
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct ConsentForm {
    interaction: String,
    csrf: String,
    #[serde(default)]
    pub decision: String,
}

/// A form posted back from one of our pages: which interaction it continues, and its CSRF token.
pub trait InteractionForm {
    fn interaction(&self) -> &str;
    fn csrf(&self) -> &str;
}

impl InteractionForm for LoginForm {
    fn interaction(&self) -> &str {
        &self.interaction
    }
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl InteractionForm for ConsentForm {
    fn interaction(&self) -> &str {
        &self.interaction
    }
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// Loads the interaction a form belongs to, checking the cookie binding and the CSRF token.
/// Anything wrong here is shown on a page: the redirect URI is not known to be trusted yet.
pub async fn resume<F: InteractionForm>(
    app: &App,
    headers: &HeaderMap,
    form: Result<Form<F>, FormRejection>,
) -> Result<(F, Interaction, Arc<ClientContext>), Response> {
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => return Err(error_page(app, e.into())),
    };
    let bound = session::cookie(headers, INTERACTION_COOKIE).is_some_and(|c| c == form.interaction());
    let stale = || {
        OAuthError::InvalidRequest(
            "this sign-in page has expired or was opened elsewhere; start again from the application".into(),
        )
    };
    let loaded = app.storage.get_interaction(form.interaction()).await.map_err(|e| error_page(app, e.into()))?;
    let Some(parked) = loaded else { return Err(error_page(app, stale())) };
    let csrf_ok = bool::from(subtle::ConstantTimeEq::ct_eq(form.csrf().as_bytes(), parked.csrf.as_bytes()));
    if !bound || parked.expires_at <= now() || !csrf_ok {
        return Err(error_page(app, stale()));
    }
    let context = match app.storage.client_context(&parked.request.client_id).await {
        Ok(Some(c)) if !c.client.is_expired(now()) => c,
        Ok(_) => {
            return Err(error_page(app, OAuthError::invalid_client("the client is no longer registered", false)));
        }
        Err(e) => return Err(error_page(app, e.into())),
    };
    Ok((form, parked, context))
}

/// Checks the login form's username and password: the user, or the login page again
/// saying why not.
pub async fn check_password(
    app: &App,
    client: &Client,
    parked: &Interaction,
    form: &LoginForm,
) -> Result<Result<User, Response>, OAuthError> {
    let again = |error: &str, status| {
        let page = Page::Login {
            context: context(app, client, parked, LOGIN_PATH),
            login_hint: parked.request.login_hint.clone(),
            error: Some(error.to_owned()),
        };
        render(app, client, &page, status)
    };
    if !app.sign_in_limit.attempt(form.username.trim()) {
        // User text is logged with `?` (escaped): a newline in it cannot start a forged line.
        tracing::warn!(username = ?form.username, "sign-in attempts throttled");
        let error = "Too many sign-in attempts for this user. Wait a minute and try again.";
        return Ok(Err(again(error, StatusCode::TOO_MANY_REQUESTS)?));
    }
    let user = app.storage.find_user(form.username.trim()).await?;
    let password = form.password.clone();
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| crate::crypto::dummy_password_hash().to_owned());
    let ok = tokio::task::spawn_blocking(move || crate::crypto::verify_password(&password, &hash))
        .await
        .map_err(|e| OAuthError::internal("password check", e))?;
    match (user, ok) {
        (Some(u), true) => Ok(Ok(u)),
        _ => {
            tracing::info!(username = ?form.username, "failed sign-in");
            Ok(Err(again("The username or password is incorrect.", StatusCode::UNAUTHORIZED)?))
        }
    }
}

/// Signs the user in: a new session replaces the finished login interaction, in one write.
/// Returns the session cookie and the authentication time.
pub async fn start_session(app: &App, user: &User, parked: &Interaction) -> Result<(HeaderValue, i64), OAuthError> {
    let now = now();
    let session_id = random_token(32);
    let ttl = app.config.tokens.session_ttl;
    let session = Session {
        hash: hash_secret(&session_id),
        user_id: user.id.clone(),
        auth_time: now,
        expires_at: now + ttl as i64,
    };
    app.storage.apply(vec![write::create(&session)?, write::delete::<Interaction>(&parked.id)]).await?;
    Ok((session::set_cookie(app, SESSION_COOKIE, &session_id, ttl), now))
}

/// Errors that must not be redirected, rendered by the consent UI plugin.
pub fn error_page(app: &App, e: OAuthError) -> Response {
    // A request too large to read is answered alike at every endpoint, in JSON.
    if matches!(e, OAuthError::BodyTooLarge(_) | OAuthError::UriTooLong(_)) {
        return e.into_response();
    }
    let status = match e.status() {
        StatusCode::UNAUTHORIZED => StatusCode::BAD_REQUEST,
        s => s,
    };
    let page = Page::Error { locale: "en".into(), error: e.code().into(), description: e.description() };
    match app.host.render(&app.host.defaults.consent, &page) {
        Ok(Ok(html)) => (status, Html(html)).into_response(),
        _ => (status, format!("{}: {}", e.code(), e.description())).into_response(),
    }
}
