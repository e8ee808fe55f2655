//! `/account/security`: the signed-in user's second factors (`crate::factors`).
//!
//! `GET` renders the security page through the default consent UI (`Page::Security`): the
//! authenticator app (off, being added with its QR code, secret and `otpauth` URI, or on),
//! the passkeys, how many recovery codes are left; without a session, the account login page,
//! which leads back here. Its forms post here with a CSRF token derived from the session's
//! secret, and a button named `op`:
//!
//! - `totp-start` begins adding an authenticator app; `totp-confirm` with `code`, its first
//!   code, turns it on and shows ten recovery codes, once; `totp-remove` with `code`, a
//!   current code (or a recovery code), turns it off;
//! - `recovery-regenerate` replaces the recovery codes, shown once;
//! - `passkey-start` begins adding a passkey (the page comes back with the ceremony, which
//!   the host's script completes with `op=passkey-finish`, `passkey-name` and
//!   `passkey-response`); `passkey-remove` with `passkey-id` removes one.
//!
//! A caller that does not ask for HTML gets JSON: the state, or what an operation made.
//!
//! Signing in to the account pages asks a person with a second factor for it too
//! ([`factor_first`], `/account/login/factor`), so that a password alone never reaches this
//! page of an account that has one.

use std::net::IpAddr;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json, Router};
use serde::{Deserialize, Serialize};

use super::{
    LoginAgain, PageQuery, form_token, login_page, page_context, render, same, see_other, ui_locales, wants_html,
    with_locales,
};
use crate::error::{OAuthError, factor_page_status};
use crate::factors::{self, CodeUsed, FactorError};
use crate::model::{Interaction, PendingFactor, User, UserFactors};
use crate::oauth::interaction;
use crate::oauth::pages::ceremony;
use crate::oauth::sign_in_limit::{Attempt, Refusal};
use crate::oauth::{App, session};
use crate::plugin::consent::{FactorProblem, Page, PasskeyView, SecurityNotice, TotpEnrolment, TotpState};

pub(crate) const SECURITY_PATH: &str = "/account/security";
/// Where the account login's second-factor form posts.
pub(crate) const LOGIN_FACTOR_PATH: &str = "/account/login/factor";

pub(super) fn routes(router: Router<App>) -> Router<App> {
    router
        .route(SECURITY_PATH, axum::routing::get(show).post(change))
        .route(LOGIN_FACTOR_PATH, axum::routing::post(login_factor))
}

fn security_csrf(session_secret: &str) -> String {
    form_token(session_secret, "account-security")
}

/// The signed-in user of a session, unless they are disabled or gone.
async fn session_user(app: &App, user_id: &str) -> Result<User, OAuthError> {
    match app.storage.get_user(user_id).await? {
        Some(user) if !user.doc.disabled => Ok(user),
        _ => Err(OAuthError::AccessDenied("this account cannot change its sign-in".into())),
    }
}

/// What the page shows besides the factors: codes made just now, a ceremony, a problem or
/// what was done.
#[derive(Default)]
struct Shown {
    recovery_codes: Option<Vec<String>>,
    passkey_enrolment: Option<String>,
    error: Option<FactorProblem>,
    notice: Option<SecurityNotice>,
}

/// The factors as a non-browser caller reads them.
#[derive(Serialize)]
struct SecurityState {
    /// `off`, `enrolling` or `on`.
    totp: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    totp_enrolment: Option<TotpEnrolmentJson>,
    passkeys: Vec<PasskeyJson>,
    recovery_left: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes: Option<Vec<String>>,
    /// The WebAuthn creation options of a passkey being added.
    #[serde(skip_serializing_if = "Option::is_none")]
    passkey_options: Option<serde_json::Value>,
    /// The token this page's operations are posted with (readable by this origin only).
    csrf: String,
}

#[derive(Serialize)]
struct TotpEnrolmentJson {
    secret: String,
    uri: String,
}

#[derive(Serialize)]
struct PasskeyJson {
    id: String,
    name: String,
    since: i64,
}

fn totp_state(app: &App, user: &User, f: &UserFactors) -> Result<TotpState, FactorError> {
    if f.totp.is_some() {
        return Ok(TotpState::On);
    }
    Ok(match factors::totp_setup(&app.keys, f, app.config.issuer(), &user.username)? {
        Some(setup) => {
            TotpState::Enrolling(TotpEnrolment { secret: setup.secret, uri: setup.uri, qr_svg: setup.qr_svg })
        }
        None => TotpState::Off,
    })
}

/// The page (or, for a caller not asking for HTML, the JSON) of the user's factors now.
async fn page(
    app: &App,
    headers: &HeaderMap,
    locales: &[String],
    secret: &str,
    user: &User,
    shown: Shown,
) -> Result<Response, OAuthError> {
    let stored = factors::load(&app.storage, &user.id).await?;
    let f = &stored.factors;
    let totp = totp_state(app, user, f)?;
    let recovery_left = factors::recovery_left(f);
    let status = shown.error.map_or(StatusCode::OK, factor_page_status);
    if !wants_html(headers) {
        let state = SecurityState {
            totp: match &totp {
                TotpState::Off => "off",
                TotpState::Enrolling(_) => "enrolling",
                TotpState::On => "on",
            },
            totp_enrolment: match &totp {
                TotpState::Enrolling(e) => Some(TotpEnrolmentJson { secret: e.secret.clone(), uri: e.uri.clone() }),
                _ => None,
            },
            passkeys: f
                .passkeys
                .iter()
                .map(|p| PasskeyJson { id: p.id.clone(), name: p.name.clone(), since: p.created_at })
                .collect(),
            recovery_left,
            recovery_codes: shown.recovery_codes,
            passkey_options: shown.passkey_enrolment.as_deref().and_then(|o| serde_json::from_str(o).ok()),
            csrf: security_csrf(secret),
        };
        let mut response = (status, Json(state)).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
        crate::error::retry_after(&mut response);
        return Ok(response);
    }
    let context = page_context(app, headers, locales, &with_locales(SECURITY_PATH, locales), security_csrf(secret));
    let passkey_enrolment = shown
        .passkey_enrolment
        .map(|options| ceremony(app, &crate::model::PendingCeremony { options, ..Default::default() }));
    let page = Page::Security {
        context,
        user_name: interaction::user_name(user),
        totp,
        passkeys: f
            .passkeys
            .iter()
            .map(|p| PasskeyView { id: p.id.clone(), name: p.name.clone(), since: p.created_at })
            .collect(),
        recovery_codes: shown.recovery_codes,
        recovery_left,
        passkey_enrolment,
        error: shown.error,
        notice: shown.notice,
    };
    let mut response = render(app, &page, status)?;
    crate::error::retry_after(&mut response);
    Ok(response)
}

/// Without a session, the account login page, which leads back here.
fn sign_in_first(app: &App, headers: &HeaderMap, locales: &[String]) -> Result<Response, OAuthError> {
    login_page(
        app,
        headers,
        locales,
        LoginAgain::default(),
        StatusCode::OK,
        Some(&with_locales(SECURITY_PATH, locales)),
    )
}

async fn show(State(app): State<App>, headers: HeaderMap, query: Result<Query<PageQuery>, QueryRejection>) -> Response {
    let locales = query.map(|q| ui_locales(&q.0)).unwrap_or_default();
    let result = async {
        let Some((secret, session)) = session::current_with_secret(&app, &headers).await? else {
            if !wants_html(&headers) {
                return Err(OAuthError::LoginRequired("sign in to see your second factors".into()));
            }
            return sign_in_first(&app, &headers, &locales);
        };
        let user = session_user(&app, &session.user_id).await?;
        page(&app, &headers, &locales, &secret, &user, Shown::default()).await
    }
    .await;
    result.unwrap_or_else(|e| failed(&app, &headers, &locales, e))
}

fn failed(app: &App, headers: &HeaderMap, locales: &[String], e: OAuthError) -> Response {
    if wants_html(headers) { interaction::error_page(app, headers, None, locales, e) } else { e.into_response() }
}

#[derive(Debug, Deserialize)]
struct SecurityForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    op: String,
    #[serde(default)]
    code: String,
    #[serde(default, rename = "passkey-name")]
    passkey_name: String,
    #[serde(default, rename = "passkey-response")]
    passkey_response: String,
    #[serde(default, rename = "passkey-id")]
    passkey_id: String,
}

async fn change(
    State(app): State<App>,
    extensions: Extensions,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
    form: Result<Form<SecurityForm>, FormRejection>,
) -> Response {
    let locales = query.map(|q| ui_locales(&q.0)).unwrap_or_default();
    let peer = crate::oauth::peer(&extensions);
    let result = async {
        let Form(form) = form?;
        let Some((secret, session)) = session::current_with_secret(&app, &headers).await? else {
            if !wants_html(&headers) {
                return Err(OAuthError::LoginRequired("sign in to change your second factors".into()));
            }
            return sign_in_first(&app, &headers, &locales);
        };
        if form.csrf.is_empty() || !same(&form.csrf, &security_csrf(&secret)) {
            return Err(OAuthError::AccessDenied("the form did not come from your security page".into()));
        }
        let user = session_user(&app, &session.user_id).await?;
        let shown = operate(&app, peer, &session.hash, &user, &form).await?;
        page(&app, &headers, &locales, &secret, &user, shown).await
    }
    .await;
    result.unwrap_or_else(|e| failed(&app, &headers, &locales, e))
}

/// A code typed on the security page is checked as a sign-in's second factor is: throttled
/// per address, per person and per session.
async fn throttle(app: &App, peer: IpAddr, session_hash: &str, user: &User) -> Option<FactorProblem> {
    let page = format!("security:{session_hash}");
    match app.sign_in_limit.check(peer, Attempt::Page(&page), &user.username).await {
        Ok(delay) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            None
        }
        Err(Refusal::Full) => Some(FactorProblem::Busy),
        Err(_) => Some(FactorProblem::Throttled),
    }
}

async fn operate(
    app: &App,
    peer: IpAddr,
    session_hash: &str,
    user: &User,
    form: &SecurityForm,
) -> Result<Shown, OAuthError> {
    let now = app.clock.now();
    let (storage, keys, issuer) = (&app.storage, &app.keys, app.config.issuer());
    let problem = |error| Ok(Shown { error: Some(error), ..Default::default() });
    let notice = |notice| Shown { notice: Some(notice), ..Default::default() };
    match form.op.as_str() {
        "totp-start" => {
            factors::begin_totp(storage, keys, &user.id, now).await?;
            Ok(Shown::default())
        }
        "totp-confirm" => {
            if let Some(p) = throttle(app, peer, session_hash, user).await {
                return problem(p);
            }
            match factors::confirm_totp(storage, keys, &user.id, &form.code, now).await? {
                Some(codes) => Ok(Shown { recovery_codes: Some(codes), ..notice(SecurityNotice::TotpEnabled) }),
                None => problem(FactorProblem::WrongCode),
            }
        }
        "totp-remove" => {
            if let Some(p) = throttle(app, peer, session_hash, user).await {
                return problem(p);
            }
            if factors::remove_totp(storage, keys, &user.id, &form.code, now).await? {
                Ok(notice(SecurityNotice::TotpRemoved))
            } else {
                problem(FactorProblem::WrongCode)
            }
        }
        "recovery-regenerate" => {
            let codes = factors::regenerate_recovery(storage, &user.id).await?;
            Ok(Shown { recovery_codes: Some(codes), ..notice(SecurityNotice::RecoveryRegenerated) })
        }
        "passkey-start" => {
            let name = interaction::user_name(user);
            let options = factors::begin_passkey(storage, issuer, &user.id, &user.username, &name, now).await?;
            Ok(Shown { passkey_enrolment: Some(options), ..Default::default() })
        }
        "passkey-finish" => {
            if form.passkey_response.len() > crate::limits::MAX_PASSKEY_RESPONSE_BYTES {
                return problem(FactorProblem::PasskeyFailed);
            }
            match factors::finish_passkey(storage, issuer, &user.id, &form.passkey_name, &form.passkey_response, now)
                .await
            {
                Ok(()) => Ok(notice(SecurityNotice::PasskeyAdded)),
                Err(FactorError::Passkey(why)) => {
                    tracing::info!(user = %user.id, why, "a passkey could not be added");
                    problem(FactorProblem::PasskeyFailed)
                }
                Err(e) => Err(e.into()),
            }
        }
        "passkey-remove" => {
            if factors::remove_passkey(storage, &user.id, &form.passkey_id).await? {
                Ok(notice(SecurityNotice::PasskeyRemoved))
            } else {
                Err(OAuthError::NotFound("no such passkey".into()))
            }
        }
        other => Err(OAuthError::InvalidRequest(format!("`op` `{other}` is not an operation of this page"))),
    }
}

// The account login's second factor

/// After the account login's password: a person with a second factor is asked for it
/// (`Page::SecondFactor`, posting to [`LOGIN_FACTOR_PATH`]), the password's result parked as
/// an interaction bound to this browser; `None`: they have none, and are signed in.
pub(super) async fn factor_first(
    app: &App,
    headers: &HeaderMap,
    locales: &[String],
    user: &User,
    next: &str,
) -> Result<Option<Response>, OAuthError> {
    if !factors::has_any(&app.storage, &user.id).await? {
        return Ok(None);
    }
    let now = app.clock.now();
    let parked = Interaction {
        id: crate::crypto::random_token(32),
        expires_at: now + app.config.tokens.interaction_ttl as i64,
        csrf: crate::crypto::random_token(24),
        second_factor: Some(PendingFactor {
            user_id: user.id.clone(),
            assurance: factors::password(),
            auth_time: now,
            ..Default::default()
        }),
        ..Default::default()
    };
    ask_factor(app, headers, locales, parked, user, next, None).await.map(Some)
}

async fn ask_factor(
    app: &App,
    headers: &HeaderMap,
    locales: &[String],
    mut parked: Interaction,
    user: &User,
    next: &str,
    error: Option<FactorProblem>,
) -> Result<Response, OAuthError> {
    let stored = factors::load(&app.storage, &user.id).await?;
    let mut pending = parked.second_factor.clone().unwrap_or_default();
    pending.passkey = factors::passkey_challenge(app.config.issuer(), &stored.factors, app.clock.now())?;
    let passkey = pending.passkey.as_ref().map(|p| ceremony(app, p));
    parked.second_factor = Some(pending);
    app.storage.put_interaction(&parked).await?;
    let mut context =
        page_context(app, headers, locales, &with_locales(LOGIN_FACTOR_PATH, locales), parked.csrf.clone());
    context.hidden.insert(0, ("interaction".into(), parked.id.clone()));
    if !next.is_empty() {
        context.hidden.push(("next".into(), next.to_owned()));
    }
    let page = Page::SecondFactor {
        context,
        user_name: interaction::user_name(user),
        totp: stored.factors.totp.is_some() || factors::recovery_left(&stored.factors) > 0,
        passkey,
        error,
    };
    let mut response = render(app, &page, error.map_or(StatusCode::OK, factor_page_status))?;
    crate::error::retry_after(&mut response);
    let cookie = session::set_cookie(app, session::INTERACTION_COOKIE, &parked.id, app.config.tokens.interaction_ttl);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct LoginFactorForm {
    #[serde(default)]
    interaction: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    decision: String,
    #[serde(default, rename = "passkey-response")]
    passkey_response: String,
}

/// `POST /account/login/factor`: the account login's second factor; then a session, and
/// back to the page that asked.
async fn login_factor(
    State(app): State<App>,
    extensions: Extensions,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
    form: Result<Form<LoginFactorForm>, FormRejection>,
) -> Response {
    let locales = query.map(|q| ui_locales(&q.0)).unwrap_or_default();
    let peer = crate::oauth::peer(&extensions);
    let result = async {
        let Form(form) = form?;
        let bound =
            session::cookie(&app, &headers, session::INTERACTION_COOKIE).is_some_and(|c| same(&c, &form.interaction));
        let parked = if bound { app.storage.get_interaction(&form.interaction).await? } else { None };
        let now = app.clock.now();
        let parked = parked.filter(|p| p.expires_at > now && same(&p.csrf, &form.csrf) && p.second_factor.is_some());
        let next = if super::safe_next(&form.next) { form.next.clone() } else { String::new() };
        let Some(parked) = parked else {
            return login_page(&app, &headers, &locales, LoginAgain::default(), StatusCode::BAD_REQUEST, Some(&next));
        };
        let pending = parked.second_factor.clone().unwrap_or_default();
        if form.decision == "cancel" {
            app.storage.delete_interaction(&parked.id).await?;
            return login_page(&app, &headers, &locales, LoginAgain::default(), StatusCode::OK, Some(&next));
        }
        let user = session_user(&app, &pending.user_id).await?;
        let page = format!("account-factor:{}", parked.id);
        match app.sign_in_limit.check(peer, Attempt::Page(&page), &user.username).await {
            Ok(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
            Ok(_) => {}
            Err(Refusal::PageSpent) => {
                app.storage.delete_interaction(&parked.id).await?;
                return login_page(
                    &app,
                    &headers,
                    &locales,
                    LoginAgain::default(),
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(&next),
                );
            }
            Err(refusal) => {
                let problem = if refusal == Refusal::Full { FactorProblem::Busy } else { FactorProblem::Throttled };
                return ask_factor(&app, &headers, &locales, parked, &user, &next, Some(problem)).await;
            }
        }
        let issuer = app.config.issuer();
        let assurance = if !form.passkey_response.is_empty() {
            let verified = match &pending.passkey {
                Some(c) => factors::use_passkey(&app.storage, issuer, &user.id, c, &form.passkey_response, now).await?,
                None => None,
            };
            match verified {
                Some(hardware) => factors::password_and_passkey(hardware),
                None => {
                    let problem = Some(FactorProblem::PasskeyFailed);
                    return ask_factor(&app, &headers, &locales, parked, &user, &next, problem).await;
                }
            }
        } else {
            match factors::use_code(&app.storage, &app.keys, &user.id, &form.code, now).await? {
                CodeUsed::Totp | CodeUsed::Recovery => factors::password_and_otp(),
                CodeUsed::Wrong => {
                    let problem = Some(FactorProblem::WrongCode);
                    return ask_factor(&app, &headers, &locales, parked, &user, &next, problem).await;
                }
            }
        };
        let (cookie, _, _) = interaction::start_session_as(&app, &user, Some(&parked), Some(assurance)).await?;
        let next = if next.is_empty() { with_locales(super::CONNECTIONS_PATH, &locales) } else { next };
        let mut response = see_other(&app, &next);
        response.headers_mut().append(header::SET_COOKIE, cookie);
        Ok(response)
    }
    .await;
    result.unwrap_or_else(|e| interaction::error_page(&app, &headers, None, &locales, e))
}
