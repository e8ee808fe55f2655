//! The person's part of the authorization code flow: the login form and the consent form,
//! rendered by the consent UI plugin and handled here. Each form is bound to its
//! interaction by an HttpOnly cookie and carries a CSRF token stored with the interaction.

use std::net::{IpAddr, SocketAddr};

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::Extensions;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::authorize::{self, AuthorizationRequest};
use super::pages;
use super::session::{self, INTERACTION_COOKIE, SESSION_COOKIE};
use super::sign_in_limit::Refusal;
use crate::crypto::{hash_secret, random_token};
use crate::error::OAuthError;
use crate::model::*;
use crate::plugin::bindings::consent_world::exports::portcullis::plugin::consent as ui;
use crate::server::{App, Portcullis};

pub const LOGIN_PATH: &str = "/interaction/login";
pub const CONSENT_PATH: &str = "/interaction/consent";

pub fn consent_plugin<'a>(app: &'a Portcullis, client: &'a Client) -> &'a str {
    client.doc.consent_ui.as_deref().unwrap_or(&app.host.defaults.consent)
}

fn context(
    app: &Portcullis,
    headers: &HeaderMap,
    client: &Client,
    request: &AuthorizationRequest,
    action: &str,
    id: &str,
    csrf: &str,
) -> ui::PageContext {
    let plugin = consent_plugin(app, client);
    ui::PageContext {
        locale: pages::pick_locale(app, plugin, &request.ui_locales, headers),
        issuer: app.config.issuer().to_owned(),
        client_name: if client.doc.name.is_empty() { client.id.clone() } else { client.doc.name.clone() },
        action: format!("{}{action}", app.config.issuer()),
        hidden: vec![("interaction".into(), id.to_owned()), ("csrf".into(), csrf.to_owned())],
    }
}

/// A login or consent page; its form leads to the issuer and then back to `redirect_uri`.
fn page(
    app: &Portcullis,
    html: Result<Result<String, String>, crate::plugin::PluginError>,
    status: StatusCode,
    redirect_uri: &str,
) -> Result<Response, OAuthError> {
    let html = html?.map_err(|e| OAuthError::internal("consent page", e))?;
    Ok(pages::html(app, html, status, Some(redirect_uri)))
}

async fn park(app: &Portcullis, interaction: &Interaction) -> Result<String, OAuthError> {
    let id = random_token(32);
    let expires = now() + app.config.tokens.interaction_ttl as i64;
    app.storage.put_interaction(&id, expires, interaction).await?;
    Ok(id)
}

pub async fn start_login(
    app: &App,
    headers: &HeaderMap,
    client: &Client,
    request: AuthorizationRequest,
    error: Option<String>,
) -> Result<Response, OAuthError> {
    let interaction = Interaction { csrf: random_token(24), request, user_id: None, auth_time: None };
    let id = park(app, &interaction).await?;
    let mut response = render_login(app, headers, client, &interaction, &id, error, StatusCode::OK)?;
    let cookie = session::set_cookie(app, INTERACTION_COOKIE, &id, app.config.tokens.interaction_ttl);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

fn render_login(
    app: &Portcullis,
    headers: &HeaderMap,
    client: &Client,
    i: &Interaction,
    id: &str,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, OAuthError> {
    let login = ui::LoginPage {
        context: context(app, headers, client, &i.request, LOGIN_PATH, id, &i.csrf),
        login_hint: i.request.login_hint.clone(),
        error,
    };
    let html = app.host.consent(consent_plugin(app, client), |g, s| g.call_render_login(s, &login));
    page(app, html, status, &i.request.redirect_uri)
}

pub async fn start_consent(
    app: &App,
    headers: &HeaderMap,
    client: &Client,
    user: &User,
    request: AuthorizationRequest,
    auth_time: i64,
    scopes: &[String],
) -> Result<Response, OAuthError> {
    let interaction =
        Interaction { csrf: random_token(24), request, user_id: Some(user.id.clone()), auth_time: Some(auth_time) };
    let id = park(app, &interaction).await?;
    let consent = ui::ConsentPage {
        context: context(app, headers, client, &interaction.request, CONSENT_PATH, &id, &interaction.csrf),
        user_name: if user.doc.name.is_empty() { user.username.clone() } else { user.doc.name.clone() },
        scopes: scopes.to_vec(),
    };
    let html = app.host.consent(consent_plugin(app, client), |g, s| g.call_render_consent(s, &consent));
    let mut response = page(app, html, StatusCode::OK, &interaction.request.redirect_uri)?;
    let cookie = session::set_cookie(app, INTERACTION_COOKIE, &id, app.config.tokens.interaction_ttl);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
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
    decision: String,
}

/// A form posted back from one of our pages: which interaction it continues, and its CSRF token.
trait InteractionForm {
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
async fn resume<F: InteractionForm>(
    app: &App,
    headers: &HeaderMap,
    form: Result<Form<F>, axum::extract::rejection::FormRejection>,
) -> Result<(F, Interaction, Client), Response> {
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => return Err(authorize::error_page(app, headers, None, &[], e.into())),
    };
    let bound = session::cookie(app, headers, INTERACTION_COOKIE).is_some_and(|c| c == form.interaction());
    let stale = || {
        OAuthError::InvalidRequest(
            "this sign-in page has expired or was opened elsewhere; start again from the application".into(),
        )
    };
    let page = |e: OAuthError| authorize::error_page(app, headers, None, &[], e);
    let loaded = app.storage.get_interaction(form.interaction()).await.map_err(|e| page(e.into()))?;
    let Some((expires, interaction)) = loaded else { return Err(page(stale())) };
    let csrf_ok = bool::from(subtle::ConstantTimeEq::ct_eq(form.csrf().as_bytes(), interaction.csrf.as_bytes()));
    if !bound || expires <= now() || !csrf_ok {
        return Err(page(stale()));
    }
    let client = match app.storage.get_client(&interaction.request.client_id).await {
        Ok(Some(c)) if !c.is_expired(now()) => c,
        Ok(_) => {
            let e = OAuthError::invalid_client("the client is no longer registered", false);
            return Err(authorize::error_page(app, headers, None, &interaction.request.ui_locales, e));
        }
        Err(e) => return Err(page(e.into())),
    };
    Ok((form, interaction, client))
}

pub async fn login(
    State(app): State<App>,
    extensions: Extensions,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (form, interaction, client) = match resume(&app, &headers, form).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    // The TCP peer (`server::serve` serves with connect info). A router served without it
    // puts every sign-in in one shared budget rather than in none.
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let request = interaction.request.clone();
    match login_step(&app, &headers, peer, &client, interaction, &form).await {
        Ok(r) => r,
        Err(e) => authorize::redirect_error(&app, &e, &request),
    }
}

async fn login_step(
    app: &App,
    headers: &HeaderMap,
    peer: IpAddr,
    client: &Client,
    interaction: Interaction,
    form: &LoginForm,
) -> Result<Response, OAuthError> {
    let username = form.username.trim();
    let delay = match app.sign_in_limit.admit(peer, &form.interaction, username) {
        Ok(delay) => delay,
        Err(Refusal::Address) => {
            tracing::warn!(%peer, "sign-in attempts from this address throttled");
            let e = OAuthError::TooManyAttempts(
                "Too many sign-in attempts from your network. Wait a minute and try again.".into(),
            );
            return render_login(
                app,
                headers,
                client,
                &interaction,
                &form.interaction,
                Some(e.description()),
                e.status(),
            );
        }
        Err(Refusal::PageSpent) => {
            tracing::warn!(%peer, username = %form.username, "sign-in page used up");
            app.storage.delete_interaction(&form.interaction).await?;
            let e = OAuthError::TooManyAttempts(
                "Too many sign-in attempts on this page. Start again from the application.".into(),
            );
            return Ok(authorize::error_page(app, headers, Some(client), &interaction.request.ui_locales, e));
        }
    };
    if !delay.is_zero() {
        tracing::info!(username = %form.username, delay_ms = delay.as_millis() as u64, "sign-in attempt delayed");
        tokio::time::sleep(delay).await;
    }
    let user = app.storage.find_user(username).await?;
    let password = form.password.clone();
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| crate::crypto::dummy_password_hash().to_owned());
    let Ok(slot) = app.sign_in_limit.hash_slot().await else {
        tracing::warn!("password hash queue full");
        let e = OAuthError::TemporarilyUnavailable("The server is busy. Try again in a moment.".into());
        return render_login(app, headers, client, &interaction, &form.interaction, Some(e.description()), e.status());
    };
    // The slot moves into the blocking task: it bounds running hashes even if this request
    // is dropped meanwhile.
    let ok = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        crate::crypto::verify_password(&password, &hash)
    })
    .await
    .map_err(|e| OAuthError::internal("password check", e))?;
    let user = match (user, ok) {
        (Some(u), true) => u,
        _ => {
            tracing::info!(username = %form.username, "failed sign-in");
            return render_login(
                app,
                headers,
                client,
                &interaction,
                &form.interaction,
                Some("The username or password is incorrect.".into()),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    let now = now();
    let session_id = random_token(32);
    let ttl = app.config.tokens.session_ttl;
    app.storage
        .create_session(
            &hash_secret(&session_id),
            &Session { user_id: user.id.clone(), auth_time: now, expires_at: now + ttl as i64 },
        )
        .await?;
    app.storage.delete_interaction(&form.interaction).await?;
    let mut response =
        authorize::proceed(app, headers, client, interaction.request.clone(), Some((user.id.clone(), now))).await?;
    response.headers_mut().append(header::SET_COOKIE, session::set_cookie(app, SESSION_COOKIE, &session_id, ttl));
    Ok(response)
}

pub async fn consent(
    State(app): State<App>,
    headers: HeaderMap,
    form: Result<Form<ConsentForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (form, interaction, client) = match resume(&app, &headers, form).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let request = interaction.request.clone();
    match consent_step(&app, &client, interaction, &form).await {
        Ok(r) => r,
        Err(e) => authorize::redirect_error(&app, &e, &request),
    }
}

async fn consent_step(
    app: &App,
    client: &Client,
    interaction: Interaction,
    form: &ConsentForm,
) -> Result<Response, OAuthError> {
    app.storage.delete_interaction(&form.interaction).await?;
    let (Some(user_id), Some(auth_time)) = (interaction.user_id.clone(), interaction.auth_time) else {
        return Err(OAuthError::InvalidRequest("consent was given before sign-in".into()));
    };
    if form.decision != "allow" {
        return Err(OAuthError::AccessDenied("the user denied the request".into()));
    }
    let request = interaction.request;
    let (user, granted) = authorize::user_and_scopes(app, client, &user_id, &request).await?;
    app.storage
        .put_consent(&Consent {
            user_id: user.id.clone(),
            client_id: client.id.clone(),
            scopes: granted.scopes.clone(),
            granted_at: now(),
        })
        .await?;
    authorize::issue_code(app, client, &user, &request, auth_time, granted).await
}
