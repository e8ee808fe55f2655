//! `/account/password`: the signed-in user changes their own password.
//!
//! `GET` renders the page through the default consent UI (`Page::Password`; a consent UI
//! built before contract 0.4.0 has no such page, and `consent-default` renders it), or,
//! without a session, the account login page, which leads back here. The form posts the
//! current password, the new one and its repetition, with a CSRF token derived from the
//! session's secret like the revoke forms'.
//!
//! The current password is checked by the same throttled `interaction::sign_in` as every
//! sign-in (per client address, per username, and per session as if it were a login page),
//! so the form cannot be used to guess it. The new one passes the rules an administrator's
//! `set-password` does (`registry::password_rule`), and `registry::change_own_password`
//! stores it, ends the user's other sessions (this one stays signed in), keeps their grants
//! and records `user.password_changed`.
//!
//! A refusal shows the page again with the reason as a code (`PasswordProblem`), which the
//! consent UI words in the page's locale; its status is `error::password_page_status`'s.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Form, Router};
use serde::Deserialize;

use super::{LoginAgain, PageQuery, form_token, login_page, page_context, render, same, ui_locales, with_locales};
use crate::error::{OAuthError, password_page_status};
use crate::limits;
use crate::model::{Session, User};
use crate::oauth::interaction::{self, SignInRefusal};
use crate::oauth::sign_in_limit::Attempt;
use crate::oauth::{App, session};
use crate::plugin::consent::{Page, PasswordProblem};
use crate::registry::{self, Caller, PasswordRule, RegistryError};

pub(crate) const PASSWORD_PATH: &str = "/account/password";

pub(super) fn routes(router: Router<App>) -> Router<App> {
    router.route(PASSWORD_PATH, axum::routing::get(show).post(change))
}

/// The password form's CSRF token: derived from the session's secret.
fn password_csrf(session_secret: &str) -> String {
    form_token(session_secret, "account-password")
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default, rename = "current-password")]
    current: String,
    #[serde(default, rename = "new-password")]
    new: String,
    #[serde(default, rename = "repeat-password")]
    repeat: String,
}

/// The signed-in user of a session, unless they are disabled (whose sessions a disable ends
/// anyway) or gone.
async fn session_user(app: &App, session: &Session) -> Result<User, OAuthError> {
    match app.storage.get_user(&session.user_id).await? {
        Some(user) if !user.doc.disabled => Ok(user),
        _ => Err(OAuthError::AccessDenied("this account cannot change its password".into())),
    }
}

/// The page, with the form again (`error`) or saying the password was changed.
fn page(
    app: &App,
    headers: &HeaderMap,
    locales: &[String],
    secret: &str,
    user: &User,
    error: Option<PasswordProblem>,
    changed: bool,
) -> Result<Response, OAuthError> {
    let context = page_context(app, headers, locales, &with_locales(PASSWORD_PATH, locales), password_csrf(secret));
    let status = error.map_or(StatusCode::OK, password_page_status);
    let page = Page::Password { context, user_name: interaction::user_name(user), error, changed };
    let mut response = render(app, &page, status)?;
    crate::error::retry_after(&mut response);
    Ok(response)
}

/// Without a session, the account login page, which leads back here.
fn sign_in_first(app: &App, headers: &HeaderMap, locales: &[String]) -> Result<Response, OAuthError> {
    let next = with_locales(PASSWORD_PATH, locales);
    login_page(app, headers, locales, LoginAgain::default(), StatusCode::OK, Some(&next))
}

async fn show(State(app): State<App>, headers: HeaderMap, query: Result<Query<PageQuery>, QueryRejection>) -> Response {
    let locales = query.map(|q| ui_locales(&q.0)).unwrap_or_default();
    let result = async {
        let Some((secret, session)) = session::current_with_secret(&app, &headers).await? else {
            return sign_in_first(&app, &headers, &locales);
        };
        let user = session_user(&app, &session).await?;
        page(&app, &headers, &locales, &secret, &user, None, false)
    }
    .await;
    result.unwrap_or_else(|e| interaction::error_page(&app, &headers, None, &locales, e))
}

/// The reason a new password is refused by the rules, as the page names it.
fn rule_problem(rule: PasswordRule) -> PasswordProblem {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    match rule {
        PasswordRule::TooShort => PasswordProblem::TooShort(count(limits::MIN_PASSWORD_CHARS)),
        PasswordRule::TooLong => PasswordProblem::TooLong(count(limits::MAX_PASSWORD_BYTES)),
    }
}

async fn change(
    State(app): State<App>,
    extensions: Extensions,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    let locales = query.map(|q| ui_locales(&q.0)).unwrap_or_default();
    let peer = crate::oauth::peer(&extensions);
    let result = async {
        let Form(form) = form?;
        let Some((secret, session)) = session::current_with_secret(&app, &headers).await? else {
            return sign_in_first(&app, &headers, &locales);
        };
        if form.csrf.is_empty() || !same(&form.csrf, &password_csrf(&secret)) {
            return Err(OAuthError::AccessDenied("the form did not come from your password page".into()));
        }
        let user = session_user(&app, &session).await?;
        let again = |error| page(&app, &headers, &locales, &secret, &user, Some(error), false);
        if form.new != form.repeat {
            return again(PasswordProblem::Mismatch);
        }
        if let Err(rule) = registry::password_rule(&form.new) {
            return again(rule_problem(rule));
        }
        // Counted as a sign-in attempt: per address, per username, and per session as a page.
        let attempt = format!("password:{}", session.hash);
        match interaction::sign_in(&app, peer, Attempt::Page(&attempt), &user.username, &form.current).await? {
            Ok(signed) if signed.id == user.id => {}
            Ok(_) | Err(SignInRefusal::Wrong) => return again(PasswordProblem::WrongCurrentPassword),
            Err(SignInRefusal::Refused(OAuthError::TemporarilyUnavailable(_))) => return again(PasswordProblem::Busy),
            Err(SignInRefusal::Refused(_) | SignInRefusal::PageSpent(_)) => return again(PasswordProblem::Throttled),
        }
        let caller = Caller::User(Box::new(user.clone()));
        match registry::change_own_password(&app.storage, &app.passwords, &caller, &session.hash, &form.new).await {
            Ok(_) => {
                tracing::info!(user = %user.id, "password changed by its user");
                page(&app, &headers, &locales, &secret, &user, None, true)
            }
            Err(RegistryError::Busy) => again(PasswordProblem::Busy),
            Err(RegistryError::Storage(e)) => Err(e.into()),
            Err(RegistryError::Forbidden(m)) => Err(OAuthError::AccessDenied(m)),
            Err(RegistryError::Conflict(m)) => Err(OAuthError::TemporarilyUnavailable(m)),
            Err(e) => Err(OAuthError::internal("password change", e)),
        }
    }
    .await;
    result.unwrap_or_else(|e| interaction::error_page(&app, &headers, None, &locales, e))
}
