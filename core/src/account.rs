//! The signed-in user's own account: the applications they connected (ELMA365: profile →
//! external applications), and revoking a connection. The browser's login session
//! authenticates these calls; a connection is every grant the user gave one client.
//!
//! `GET /account/connections` answers a browser (`Accept: text/html`) with a page rendered
//! by the default consent UI plugin, each connection with a revoke form and a link to the
//! password page ([`password`]), and anyone else with JSON. A browser without a session gets
//! the plugin's login page, posting to `/account/login`. Every form carries a CSRF token: the
//! login page's is bound to the browser by a cookie of its own, the revoke and password
//! forms' are derived from the session's secret.

mod password;
mod security;

use std::collections::BTreeMap;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};

use crate::crypto::{is_random_token, random_token};
use crate::error::OAuthError;
use crate::model::Session;
use crate::oauth::interaction::{self, SignInRefusal};
use crate::oauth::profiles::{Endpoint, Profile};
pub(crate) use crate::oauth::session::{form_token, same};
use crate::oauth::sign_in_limit::Attempt;
use crate::oauth::{App, pages, session};
use crate::plugin::consent::{ConnectionView, LoginProblem, Page, PageContext};

pub(crate) use self::password::PASSWORD_PATH;
pub(crate) use self::security::SECURITY_PATH;

pub use crate::oauth::pages::CONNECTIONS_PATH;
pub const REVOKE_PATH: &str = "/account/connections/revoke";
pub const LOGIN_PATH: &str = "/account/login";
/// Binds the account login page's CSRF token to the browser it was shown to.
const LOGIN_COOKIE: &str = "portcullis_account_login";
/// The random bytes of the account login page's CSRF token.
const LOGIN_CSRF_BYTES: usize = 24;

pub fn router(app: App) -> Router {
    let routes = Router::new()
        .route(CONNECTIONS_PATH, get(list))
        .route(REVOKE_PATH, post(revoke_form))
        .route(LOGIN_PATH, post(login))
        .route(&format!("{CONNECTIONS_PATH}/{{client_id}}"), delete(revoke));
    security::routes(password::routes(routes)).with_state(app)
}

/// One application the user let in.
#[derive(Debug, Serialize)]
pub struct Connection {
    pub client_id: String,
    pub client_name: String,
    pub application: Option<ConnectedApplication>,
    /// Every scope the user granted the client, in the order first granted.
    pub scopes: Vec<String>,
    /// When the user first connected it (Unix seconds).
    pub since: i64,
}

#[derive(Debug, Serialize)]
pub struct ConnectedApplication {
    pub id: String,
    pub name: String,
    pub description: String,
    pub icon: Option<String>,
}

async fn signed_in(app: &App, headers: &HeaderMap) -> Result<Session, OAuthError> {
    session::current(app, headers)
        .await?
        .ok_or_else(|| OAuthError::LoginRequired("sign in to see your connections".into()))
}

/// The user's connections, one per client, oldest first.
pub async fn connections(app: &App, user_id: &str) -> Result<Vec<Connection>, OAuthError> {
    let mut by_client: BTreeMap<String, (i64, Vec<String>)> = BTreeMap::new();
    let mut add = |client_id: String, at: i64, granted: Vec<String>| {
        let (since, scopes) = by_client.entry(client_id).or_insert((at, Vec::new()));
        *since = (*since).min(at);
        for s in granted {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
    };
    // A consent counts from the moment it is given, before the application redeems its code.
    for consent in app.storage.list_user_consents(user_id).await? {
        add(consent.client_id, consent.granted_at, consent.scopes);
    }
    for grant in app.storage.list_user_grants(user_id, app.clock.now()).await? {
        add(grant.client_id, grant.created_at, grant.doc.scopes);
    }
    let mut out = Vec::with_capacity(by_client.len());
    for (client_id, (since, scopes)) in by_client {
        let Some(context) = app.storage.client_context(&client_id).await? else { continue };
        out.push(Connection {
            client_name: context.client.doc.name.clone(),
            application: context.application.as_ref().map(|a| ConnectedApplication {
                id: a.id.clone(),
                name: a.name.clone(),
                description: a.description.clone(),
                icon: a.icon.clone(),
            }),
            client_id,
            scopes,
            since,
        });
    }
    out.sort_by(|a, b| (a.since, &a.client_id).cmp(&(b.since, &b.client_id)));
    Ok(out)
}

fn private(mut r: Response) -> Response {
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The page's query: `ui_locales` as at the authorization endpoint, and the client whose
/// connection was just revoked (set by the redirect after a revoke form).
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    ui_locales: Option<String>,
    revoked: Option<String>,
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|range| range.trim().starts_with("text/html")))
}

async fn list(State(app): State<App>, headers: HeaderMap, query: Result<Query<PageQuery>, QueryRejection>) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    if wants_html(&headers) {
        let locales = ui_locales(&query);
        return match connections_page(&app, &headers, &query, &locales).await {
            Ok(page) => page,
            Err(e) => interaction::error_page(&app, &headers, None, &locales, e),
        };
    }
    let result = async {
        let session = signed_in(&app, &headers).await?;
        connections(&app, &session.user_id).await
    }
    .await;
    private(match result {
        Ok(list) => Json(list).into_response(),
        Err(e) => e.into_response(),
    })
}

/// Revokes a connection: its refresh tokens at once, its access tokens at introspection,
/// and the consent, so the next authorization asks again.
async fn revoke(State(app): State<App>, headers: HeaderMap, Path(client_id): Path<String>) -> Response {
    let result = async {
        let session = signed_in(&app, &headers).await?;
        if !app.storage.revoke_connection(&session.user_id, &client_id).await? {
            return Err(OAuthError::NotFound("no connection to that client".into()));
        }
        tracing::info!(client = %client_id, user = %session.user_id, "connection revoked by its user");
        connection_revoked(&app, &session.user_id, &client_id).await;
        Ok(())
    }
    .await;
    private(match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    })
}

/// `path`, keeping the page's `ui_locales` for the next page.
pub(crate) fn with_locales(path: &str, locales: &[String]) -> String {
    if locales.is_empty() {
        return path.to_owned();
    }
    let query =
        url::form_urlencoded::Serializer::new(String::new()).append_pair("ui_locales", &locales.join(" ")).finish();
    format!("{path}?{query}")
}

fn ui_locales(query: &PageQuery) -> Vec<String> {
    query.ui_locales.as_deref().unwrap_or_default().split_whitespace().map(str::to_owned).collect()
}

fn revoke_csrf(session_secret: &str) -> String {
    form_token(session_secret, "account-connections")
}

pub(crate) fn page_context(
    app: &App,
    headers: &HeaderMap,
    locales: &[String],
    action: &str,
    csrf: String,
) -> PageContext {
    PageContext {
        locale: pages::pick_locale(app, &app.host.defaults.consent, locales, headers),
        issuer: app.config.issuer().to_owned(),
        client_name: String::new(),
        action: format!("{}{action}", app.config.issuer()),
        hidden: vec![("csrf".into(), csrf)],
        application: None,
    }
}

pub(crate) fn render(app: &App, page: &Page, status: StatusCode) -> Result<Response, OAuthError> {
    let html = app.host.render(&app.host.defaults.consent, page)?.map_err(|e| OAuthError::internal("page", e))?;
    Ok(private(pages::html(app, html, status, Some(app.config.issuer()))))
}

/// What the account login page shown again after an attempt keeps: its CSRF token (while
/// the page still has attempts), why the attempt failed, and the username typed.
#[derive(Debug, Default)]
pub(crate) struct LoginAgain {
    pub csrf: Option<String>,
    pub error: Option<LoginProblem>,
    pub login_hint: Option<String>,
}

/// The login page of the signed-in pages, with a fresh CSRF token bound to this browser;
/// signing in leads to `next` (the device page, the password page), or to the connections
/// page.
pub(crate) fn login_page(
    app: &App,
    headers: &HeaderMap,
    locales: &[String],
    again: LoginAgain,
    status: StatusCode,
    next: Option<&str>,
) -> Result<Response, OAuthError> {
    let LoginAgain { csrf, error, login_hint } = again;
    let csrf = csrf.unwrap_or_else(|| random_token(LOGIN_CSRF_BYTES));
    let mut context = page_context(app, headers, locales, &with_locales(LOGIN_PATH, locales), csrf.clone());
    if let Some(next) = next.filter(|n| safe_next(n)) {
        context.hidden.push(("next".into(), next.to_owned()));
    }
    let mut response = render(app, &Page::Login { context, login_hint, error, passkey: None }, status)?;
    let cookie = session::set_cookie(app, LOGIN_COOKIE, &csrf, app.config.tokens.interaction_ttl);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

async fn connections_page(
    app: &App,
    headers: &HeaderMap,
    query: &PageQuery,
    locales: &[String],
) -> Result<Response, OAuthError> {
    let Some((secret, session)) = session::current_with_secret(app, headers).await? else {
        return login_page(app, headers, locales, LoginAgain::default(), StatusCode::OK, None);
    };
    let user = app.storage.get_user(&session.user_id).await?;
    let user_name = user.as_ref().map(interaction::user_name).unwrap_or_default();
    let connections: Vec<ConnectionView> = connections(app, &session.user_id)
        .await?
        .into_iter()
        .map(|c| ConnectionView {
            client_name: if c.client_name.is_empty() { c.client_id.clone() } else { c.client_name },
            client_id: c.client_id,
            application: c.application.map(|a| crate::plugin::consent::ApplicationView {
                name: a.name,
                description: a.description,
                icon: a.icon,
            }),
            scopes: c.scopes,
            since: c.since,
        })
        .collect();
    let revoked = match &query.revoked {
        Some(id) => Some(match app.storage.client_context(id).await? {
            Some(c) => c.application.as_ref().map_or_else(|| interaction::client_name(&c.client), |a| a.name.clone()),
            None => id.clone(),
        }),
        None => None,
    };
    let context = page_context(app, headers, locales, &with_locales(REVOKE_PATH, locales), revoke_csrf(&secret));
    let issuer = app.config.issuer();
    let password_page = Some(format!("{issuer}{}", with_locales(PASSWORD_PATH, locales)));
    let security_page = Some(format!("{issuer}{}", with_locales(SECURITY_PATH, locales)));
    // The sign-out form leads to the logout page, which asks first, in this page's locale.
    let sign_out = Some(format!("{issuer}{}", with_locales(Profile::Native.path(Endpoint::EndSession), locales)));
    let page = Page::Connections { context, user_name, connections, revoked, password_page, security_page, sign_out };
    render(app, &page, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    /// Where to go once signed in: the device page or the password page, with its query.
    #[serde(default)]
    next: String,
}

/// Only a page of this server's that asked to sign in first: the device page, the password
/// page.
fn safe_next(next: &str) -> bool {
    let path = next.split('?').next().unwrap_or_default();
    path == crate::oauth::device_authorization::VERIFICATION_PATH || path == PASSWORD_PATH || path == SECURITY_PATH
}

/// The account login form: a session, then back to the page that asked.
async fn login(
    State(app): State<App>,
    extensions: Extensions,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let locales = query.map(|q| ui_locales(&q.0)).unwrap_or_default();
    let peer = crate::oauth::peer(&extensions);
    let result = async {
        let Form(form) = form?;
        // The cookie and the field are both the caller's to choose: only a token the server
        // could have issued goes on to count attempts against it.
        let bound = is_random_token(&form.csrf, LOGIN_CSRF_BYTES)
            && session::cookie(&app, &headers, LOGIN_COOKIE).is_some_and(|c| same(&c, &form.csrf));
        if !bound {
            // A stale or forged form: a fresh login page, not an error the person cannot act on.
            let again = LoginAgain { login_hint: interaction::typed_username(&form.username), ..LoginAgain::default() };
            return login_page(&app, &headers, &locales, again, StatusCode::BAD_REQUEST, Some(&form.next));
        }
        let page = format!("account:{}", form.csrf);
        match interaction::sign_in(&app, peer, Attempt::Page(&page), &form.username, &form.password).await? {
            Ok(user) => {
                // A person with a second factor is asked for it before the session starts.
                if let Some(page) = security::factor_first(&app, &headers, &locales, &user, &form.next).await? {
                    return Ok(page);
                }
                let (cookie, _, _) = interaction::start_session(&app, &user, None).await?;
                let next =
                    if safe_next(&form.next) { form.next.clone() } else { with_locales(CONNECTIONS_PATH, &locales) };
                let mut response = see_other(&app, &next);
                response.headers_mut().append(header::SET_COOKIE, cookie);
                response.headers_mut().append(header::SET_COOKIE, session::set_cookie(&app, LOGIN_COOKIE, "", 0));
                Ok(response)
            }
            Err(refusal @ (SignInRefusal::Wrong | SignInRefusal::Refused(_))) => {
                let (error, status) = refusal.for_page();
                let again = LoginAgain {
                    csrf: Some(form.csrf.clone()),
                    error: Some(error),
                    login_hint: interaction::typed_username(&form.username),
                };
                login_page(&app, &headers, &locales, again, status, Some(&form.next))
            }
            Err(SignInRefusal::PageSpent(e)) => {
                let (error, status) = SignInRefusal::PageSpent(e).for_page();
                let again = LoginAgain {
                    error: Some(error),
                    login_hint: interaction::typed_username(&form.username),
                    ..LoginAgain::default()
                };
                login_page(&app, &headers, &locales, again, status, Some(&form.next))
            }
        }
    }
    .await;
    result.unwrap_or_else(|e| interaction::error_page(&app, &headers, None, &locales, e))
}

pub(crate) fn see_other(app: &App, path: &str) -> Response {
    let location = format!("{}{path}", app.config.issuer());
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    private(response)
}

#[derive(Debug, Deserialize)]
struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    revoke: String,
}

/// A revoke button on the connections page: the same revocation as `DELETE`, then the page
/// again, saying what was revoked.
async fn revoke_form(
    State(app): State<App>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Response {
    let locales = query.map(|q| ui_locales(&q.0)).unwrap_or_default();
    let result = async {
        let Form(form) = form?;
        let Some((secret, session)) = session::current_with_secret(&app, &headers).await? else {
            return Ok(see_other(&app, &with_locales(CONNECTIONS_PATH, &locales)));
        };
        if form.csrf.is_empty() || !same(&form.csrf, &revoke_csrf(&secret)) {
            return Err(OAuthError::AccessDenied("the form did not come from your connections page".into()));
        }
        if !app.storage.revoke_connection(&session.user_id, &form.revoke).await? {
            return Err(OAuthError::NotFound("no connection to that client".into()));
        }
        tracing::info!(client = %form.revoke, user = %session.user_id, "connection revoked by its user");
        connection_revoked(&app, &session.user_id, &form.revoke).await;
        // The page again, in the locale the revoke form was posted from.
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("revoked", &form.revoke);
        if !locales.is_empty() {
            query.append_pair("ui_locales", &locales.join(" "));
        }
        Ok(see_other(&app, &format!("{CONNECTIONS_PATH}?{}", query.finish())))
    }
    .await;
    result.unwrap_or_else(|e| interaction::error_page(&app, &headers, None, &locales, e))
}

/// The audit events of a user revoking a connection: the connection, and the consent that
/// went with it.
async fn connection_revoked(app: &App, user_id: &str, client_id: &str) {
    use crate::audit::{self, types};
    let actor = audit::user(user_id);
    for kind in [types::CONNECTION_REVOKED, types::CONSENT_REVOKED] {
        audit::record(&app.storage, kind, &actor, ("client", client_id), serde_json::Value::Null).await;
    }
}
