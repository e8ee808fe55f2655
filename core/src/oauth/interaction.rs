//! The pages of the authorization flow and their forms' plumbing: the login and consent
//! pages (rendered by the client's consent UI plugin), the interaction each page belongs to
//! (parked in storage, bound to the browser by an HttpOnly cookie, its forms carrying a CSRF
//! token), the password check and its throttling, and the error page. The flow itself,
//! which decides what comes next, is `authorize.rs`; nothing here calls back into it.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::pages;
use super::session::{self, INTERACTION_COOKIE, SESSION_COOKIE};
use super::sign_in_limit::{Attempt, Refusal};
use super::{App, Protocol};
use crate::crypto::{hash_secret, random_token};
use crate::error::OAuthError;
use crate::model::*;
use crate::passwords::PasswordError;
use crate::plugin::consent::{ApplicationView, LoginProblem, Page, PageContext};
use crate::storage::{ClientContext, write};

pub const LOGIN_PATH: &str = "/interaction/login";
pub const CONSENT_PATH: &str = "/interaction/consent";

/// The consent UI that renders a client's pages: the one the client names, else its
/// application's, else its organization's, else the server's default (`plugins.consent`).
pub fn consent_plugin<'a>(app: &'a Protocol, client: &'a ClientContext) -> &'a str {
    let application = client.application.as_ref().and_then(|a| a.consent_ui.as_deref());
    let organization = client.organization.as_ref().and_then(|o| o.consent_ui.as_deref());
    client.client.doc.consent_ui.as_deref().or(application).or(organization).unwrap_or(&app.host.defaults.consent)
}

/// The name a person knows a client by.
pub fn client_name(client: &Client) -> String {
    if client.doc.name.is_empty() { client.id.clone() } else { client.doc.name.clone() }
}

/// The name a page greets a user by: their name, else their username.
pub fn user_name(user: &User) -> String {
    if user.doc.name.is_empty() { user.username.clone() } else { user.doc.name.clone() }
}

/// The application as the consent UI shows it.
pub fn application_view(application: &Application) -> ApplicationView {
    ApplicationView {
        name: application.name.clone(),
        description: application.description.clone(),
        icon: application.icon.clone(),
    }
}

pub(crate) fn context(
    app: &Protocol,
    headers: &HeaderMap,
    client: &ClientContext,
    parked: &Interaction,
    action: &str,
) -> PageContext {
    let plugin = consent_plugin(app, client);
    PageContext {
        locale: pages::pick_locale(app, plugin, &parked.request.ui_locales, headers),
        issuer: app.config.issuer().to_owned(),
        client_name: client_name(&client.client),
        action: format!("{}{action}", app.config.issuer()),
        hidden: vec![("interaction".into(), parked.id.clone()), ("csrf".into(), parked.csrf.clone())],
        application: client.application.as_ref().map(application_view),
    }
}

/// A login or consent page; its form leads to the issuer and then back to the client.
pub(crate) fn render(
    app: &Protocol,
    client: &ClientContext,
    parked: &Interaction,
    page: &Page,
    status: StatusCode,
) -> Result<Response, OAuthError> {
    let html = app
        .host
        .render(consent_plugin(app, client), page)
        .map_err(|e| super::scope_policy::plugin_error(&client.client, e))?
        .map_err(|e| OAuthError::internal("page", e))?;
    Ok(pages::html(app, html, status, Some(&parked.request.redirect_uri)))
}

/// Parks an interaction and renders its page, with the cookie that binds it to this browser.
async fn park_and_render(
    app: &App,
    headers: &HeaderMap,
    client: &ClientContext,
    parked: Interaction,
    page: impl FnOnce(PageContext) -> Page,
) -> Result<Response, OAuthError> {
    app.storage.put_interaction(&parked).await?;
    let action = if parked.user_id.is_some() { CONSENT_PATH } else { LOGIN_PATH };
    let page = page(context(app, headers, client, &parked, action));
    let mut response = render(app, client, &parked, &page, StatusCode::OK)?;
    let cookie = session::set_cookie(app, INTERACTION_COOKIE, &parked.id, app.config.tokens.interaction_ttl);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

fn new_interaction(app: &Protocol, request: AuthorizationRequest) -> Interaction {
    Interaction {
        id: random_token(32),
        expires_at: app.clock.now() + app.config.tokens.interaction_ttl as i64,
        csrf: random_token(24),
        request,
        ..Default::default()
    }
}

/// The login page for a request that has no signed-in user (or asks to choose one).
pub async fn login_page(
    app: &App,
    headers: &HeaderMap,
    client: &ClientContext,
    request: AuthorizationRequest,
) -> Result<Response, OAuthError> {
    let mut parked = new_interaction(app, request);
    let login_hint = parked.request.login_hint.clone();
    let passkey = pages::offer_passkey(app, &mut parked);
    park_and_render(app, headers, client, parked, |context| Page::Login { context, login_hint, error: None, passkey })
        .await
}

/// The consent page, with the policy's decision parked beside it.
pub async fn consent_page(
    app: &App,
    headers: &HeaderMap,
    client: &ClientContext,
    user: &User,
    request: AuthorizationRequest,
    (auth_time, sid, assurance): (i64, &str, Option<&Assurance>),
    decision: Decision,
) -> Result<Response, OAuthError> {
    let scopes = decision.scopes.clone();
    let parked = Interaction {
        user_id: Some(user.id.clone()),
        auth_time: Some(auth_time),
        sid: Some(sid.to_owned()),
        assurance: assurance.cloned(),
        decision: Some(decision),
        ..new_interaction(app, request)
    };
    let user_name = user_name(user);
    park_and_render(app, headers, client, parked, |context| Page::Consent { context, user_name, scopes }).await
}

#[derive(Deserialize)]
pub struct LoginForm {
    interaction: String,
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// `cancel` when the person gave up signing in: the client is told `access_denied`.
    #[serde(default)]
    pub decision: String,
    /// A passkey's answer instead of the password (`second_factor::passkey_sign_in`).
    #[serde(default, rename = "passkey-response")]
    passkey_response: String,
}

impl LoginForm {
    /// The person gave up signing in (the form's `decision=cancel` button).
    pub fn cancelled(&self) -> bool {
        self.decision == "cancel"
    }

    pub(crate) fn passkey_response(&self) -> &str {
        &self.passkey_response
    }
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
    let page = |e: OAuthError| error_page(app, headers, None, &[], e);
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => return Err(page(e.into())),
    };
    let bound = session::cookie(app, headers, INTERACTION_COOKIE).is_some_and(|c| c == form.interaction());
    let stale = || {
        OAuthError::InvalidRequest(
            "this sign-in page has expired or was opened elsewhere; start again from the application".into(),
        )
    };
    let loaded = app.storage.get_interaction(form.interaction()).await.map_err(|e| page(e.into()))?;
    let Some(parked) = loaded else { return Err(page(stale())) };
    let csrf_ok = bool::from(subtle::ConstantTimeEq::ct_eq(form.csrf().as_bytes(), parked.csrf.as_bytes()));
    if !bound || parked.expires_at <= app.clock.now() || !csrf_ok {
        return Err(page(stale()));
    }
    let context = match app.storage.client_context(&parked.request.client_id).await {
        Ok(Some(c)) if !c.client.is_expired(app.clock.now()) => c,
        Ok(_) => {
            let e = OAuthError::invalid_client("the client is no longer registered", false);
            return Err(error_page(app, headers, None, &parked.request.ui_locales, e));
        }
        Err(e) => return Err(page(e.into())),
    };
    Ok((form, parked, context))
}

/// Why a sign-in was refused.
pub enum SignInRefusal {
    /// The username or password is wrong.
    Wrong,
    /// Refused before the password was looked at (throttled), or the server is busy.
    Refused(OAuthError),
    /// This login page has had its attempts: the person must start from a fresh page.
    PageSpent(OAuthError),
}

impl SignInRefusal {
    /// What a login page shown again says, and its status.
    pub fn for_page(&self) -> (LoginProblem, StatusCode) {
        match self {
            Self::Wrong => (LoginProblem::WrongCredentials, StatusCode::UNAUTHORIZED),
            Self::Refused(e @ OAuthError::TemporarilyUnavailable(_)) => (LoginProblem::Busy, e.status()),
            Self::Refused(e) | Self::PageSpent(e) => (LoginProblem::Throttled, e.status()),
        }
    }
}

/// Checks a username and password, typed on a login page or sent by a client (the password
/// grant): the user, or why not. Each attempt is counted by its outcome
/// (`portcullis_sign_in_attempts_total`).
pub async fn sign_in(
    app: &App,
    peer: IpAddr,
    at: Attempt<'_>,
    username: &str,
    password: &str,
) -> Result<Result<User, SignInRefusal>, OAuthError> {
    use crate::metrics::SignIn;
    let result = check_sign_in(app, peer, at, username, password).await;
    crate::metrics::sign_in(match &result {
        Ok(Ok(_)) => SignIn::Success,
        Ok(Err(SignInRefusal::Wrong)) => SignIn::Failure,
        Ok(Err(SignInRefusal::Refused(OAuthError::TemporarilyUnavailable(_)))) => SignIn::Busy,
        Ok(Err(SignInRefusal::Refused(_) | SignInRefusal::PageSpent(_))) => SignIn::Throttled,
        Err(_) => SignIn::Error,
    });
    result
}

/// [`sign_in`]'s check.
///
/// Guessing is throttled without locking the user out: per client address and per login
/// page attempts are refused past their limits; per username they are delayed, so the right
/// password still gets through; the hash is the bounded hasher's ([`crate::passwords`]).
async fn check_sign_in(
    app: &App,
    peer: IpAddr,
    at: Attempt<'_>,
    username: &str,
    password: &str,
) -> Result<Result<User, SignInRefusal>, OAuthError> {
    // User text is logged with `?` (escaped): a newline in it cannot start a forged line.
    let username = username.trim();
    let admitted = app.sign_in_limit.check(peer, at, username).await;
    throttled(app, peer, at, username, &admitted).await;
    let delay = match admitted {
        Ok(delay) => delay,
        Err(Refusal::Address) => {
            tracing::warn!(%peer, "sign-in attempts from this address throttled");
            return Ok(Err(SignInRefusal::Refused(OAuthError::TooManyAttempts(
                "Too many sign-in attempts from your network. Wait a minute and try again.".into(),
            ))));
        }
        Err(Refusal::Client) => {
            tracing::warn!(%peer, ?at, "password grant attempts of this client throttled");
            return Ok(Err(SignInRefusal::Refused(OAuthError::TooManyAttempts(
                "too many password grant attempts by this client; wait a minute".into(),
            ))));
        }
        Err(Refusal::Full) => {
            tracing::warn!(%peer, "a sign-in rate limiter is full");
            return Ok(Err(busy()));
        }
        Err(Refusal::PageSpent) => {
            tracing::warn!(%peer, username = ?username, "sign-in page used up");
            return Ok(Err(SignInRefusal::PageSpent(OAuthError::TooManyAttempts(
                "Too many sign-in attempts on this page. Start again.".into(),
            ))));
        }
    };
    if !delay.is_zero() {
        tracing::info!(username = ?username, delay_ms = delay.as_millis() as u64, "sign-in attempt delayed");
        tokio::time::sleep(delay).await;
    }
    let user = app.storage.find_user(username).await?;
    let ok = match app.passwords.verify(password, user.as_ref().map(|u| u.password_hash.clone())).await {
        Ok(ok) => ok,
        Err(PasswordError::Busy) => {
            tracing::warn!("password hash queue full");
            return Ok(Err(busy()));
        }
        Err(e) => return Err(OAuthError::internal("password check", e)),
    };
    match (user, ok) {
        // A disabled user is refused as a wrong password is: the answer tells nothing more.
        (Some(u), true) if u.doc.disabled => {
            tracing::info!(username = ?username, "sign-in of a disabled user refused");
            Ok(Err(SignInRefusal::Wrong))
        }
        (Some(u), true) => Ok(Ok(u)),
        _ => {
            tracing::info!(username = ?username, "failed sign-in");
            Ok(Err(SignInRefusal::Wrong))
        }
    }
}

fn busy() -> SignInRefusal {
    SignInRefusal::Refused(OAuthError::TemporarilyUnavailable("The server is busy. Try again in a moment.".into()))
}

/// Checks the login form's username and password: the user, or the page to show instead
/// (the login page again saying why not, or an error page once the page is used up).
pub async fn check_password(
    app: &App,
    headers: &HeaderMap,
    peer: IpAddr,
    client: &ClientContext,
    parked: &Interaction,
    form: &LoginForm,
) -> Result<Result<User, Response>, OAuthError> {
    match sign_in(app, peer, Attempt::Page(&parked.id), &form.username, &form.password).await? {
        Ok(user) => Ok(Ok(user)),
        Err(refusal @ (SignInRefusal::Wrong | SignInRefusal::Refused(_))) => {
            let (error, status) = refusal.for_page();
            let page = Page::Login {
                context: context(app, headers, client, parked, LOGIN_PATH),
                login_hint: typed_username(&form.username).or_else(|| parked.request.login_hint.clone()),
                error: Some(error),
                passkey: parked.passkey_login.as_ref().map(|p| pages::ceremony(app, p)),
            };
            Ok(Err(render(app, client, parked, &page, status)?))
        }
        Err(SignInRefusal::PageSpent(e)) => {
            app.storage.delete_interaction(&parked.id).await?;
            Ok(Err(error_page(app, headers, Some(client), &parked.request.ui_locales, e)))
        }
    }
}

/// The username a failed attempt typed, filled in again on the page that follows.
pub fn typed_username(typed: &str) -> Option<String> {
    Some(typed.trim()).filter(|u| !u.is_empty()).map(str::to_owned)
}

/// Signs the user in: a new session replaces the finished login interaction, if there is
/// one, in one write. Returns the session cookie and the authentication time.
pub async fn start_session(
    app: &App,
    user: &User,
    parked: Option<&Interaction>,
) -> Result<(HeaderValue, i64, String), OAuthError> {
    start_session_as(app, user, parked, None).await
}

/// [`start_session`], for a sign-in of this assurance (unset: a password).
pub async fn start_session_as(
    app: &App,
    user: &User,
    parked: Option<&Interaction>,
    assurance: Option<Assurance>,
) -> Result<(HeaderValue, i64, String), OAuthError> {
    let now = app.clock.now();
    let session_id = session::new_secret(&user.id);
    let ttl = app.config.tokens.session_ttl;
    let session = Session {
        hash: hash_secret(&session_id),
        user_id: user.id.clone(),
        auth_time: now,
        expires_at: now + ttl as i64,
        assurance,
    };
    let mut writes = vec![write::create(&session)?];
    writes.extend(parked.map(|p| write::delete::<Interaction>(&p.id)));
    app.storage.apply(writes).await?;
    let sid = session::sid(&session.hash);
    Ok((session::set_cookie(app, SESSION_COOKIE, &session_id, ttl), now, sid))
}

/// The audit event of a throttled sign-in attempt: a refused one, about the address, the
/// client or the login page that had its attempts; a delayed one, about its username.
async fn throttled(
    app: &App,
    peer: IpAddr,
    at: Attempt<'_>,
    username: &str,
    admitted: &Result<std::time::Duration, Refusal>,
) {
    use crate::audit;
    let peer = peer.to_string();
    let (subject, reason) = match (admitted, at) {
        (Ok(delay), _) if delay.is_zero() => return,
        (Ok(_), _) => (("username", username), "username"),
        (Err(Refusal::Address), _) => (("address", peer.as_str()), "address"),
        (Err(Refusal::Client), Attempt::Client(id)) => (("client", id), "client"),
        (Err(Refusal::PageSpent), Attempt::Page(id)) => (("interaction", id), "page"),
        (Err(Refusal::Full), _) => (("address", peer.as_str()), "full"),
        (Err(_), _) => (("username", username), "other"),
    };
    let actor = match at {
        Attempt::Client(id) => audit::client(id),
        Attempt::Page(_) => audit::SYSTEM.to_owned(),
    };
    audit::record_throttled(&app.storage, &actor, subject, reason).await;
}

/// Errors that must not be redirected, shown on a page rendered by the client's consent UI
/// plugin when the client is known (else the default one), in the locale `ui_locales` or the
/// browser's `Accept-Language` asks for among the plugin's.
pub fn error_page(
    app: &App,
    headers: &HeaderMap,
    client: Option<&ClientContext>,
    ui_locales: &[String],
    e: OAuthError,
) -> Response {
    // A request too large to read is answered alike at every endpoint, in JSON.
    if matches!(e, OAuthError::BodyTooLarge(_) | OAuthError::UriTooLong(_)) {
        return e.into_response();
    }
    let status = match e.status() {
        StatusCode::UNAUTHORIZED => StatusCode::BAD_REQUEST,
        s => s,
    };
    let default = app.host.defaults.consent.as_str();
    let preferred = client.map_or(default, |c| consent_plugin(app, c));
    let render = |plugin: &str| {
        let page = Page::Error {
            locale: pages::pick_locale(app, plugin, ui_locales, headers),
            error: e.code().into(),
            description: e.description(),
        };
        match app.host.render(plugin, &page) {
            Ok(Ok(html)) => Some(html),
            Ok(Err(reason)) => {
                tracing::warn!(plugin, reason, "consent UI could not render the error page");
                None
            }
            Err(err) => {
                tracing::warn!(plugin, error = %err, "consent UI failed on the error page");
                None
            }
        }
    };
    // A client's own consent UI failing must not hide the error: the default one tries next.
    let html = render(preferred).or_else(|| (preferred != default).then(|| render(default)).flatten());
    match html {
        Some(html) => pages::html(app, html, status, None),
        None => pages::text(app, format!("{}: {}", e.code(), e.description()), status),
    }
}
