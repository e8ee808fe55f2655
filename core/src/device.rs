//! The browser side of RFC 8628 (§3.3 User Interaction): at the verification URI a signed-in
//! person enters the user code their device shows (or arrives with it, from
//! `verification_uri_complete`), sees what the device's application asks for, and allows or
//! denies it. The pages are the default consent UI plugin's (device and consent pages); the
//! sign-in is the account pages'. Every form carries a token derived from the session, and
//! codes typed are throttled like passwords: per address, per session, delayed per user.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use crate::account::{LoginAgain, form_token, login_page, page_context, render, same, with_locales};
use crate::error::OAuthError;
use crate::model::{DeviceState, GrantType};
use crate::oauth::App;
use crate::oauth::device_authorization::{VERIFICATION_PATH, display_user_code, pending};
use crate::oauth::interaction::{self, application_view, client_name, user_name};
use crate::oauth::params::words;
use crate::oauth::scope_policy::{self, Ask};
use crate::oauth::session;
use crate::oauth::sign_in_limit::{Attempt, Refusal};
use crate::plugin::consent::{DeviceOutcome, Page, PageContext};
use crate::storage::{StorageError, write};

pub fn router(app: App) -> Router {
    Router::new().route(VERIFICATION_PATH, get(page).post(decide)).with_state(app)
}

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    user_code: Option<String>,
    ui_locales: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct DeviceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_code: String,
    /// Absent on the code form; `allow` or `deny` on the consent form that follows.
    decision: Option<String>,
}

const PURPOSE: &str = "device";

/// `GET /device`: the code form (the code filled in when the URL carries it), after signing in.
async fn page(State(app): State<App>, headers: HeaderMap, query: Result<Query<PageQuery>, QueryRejection>) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    let locales = words(query.ui_locales.as_deref());
    let result = async {
        let Some((secret, _)) = session::current_with_secret(&app, &headers).await? else {
            // Signing in leads back here, with the code and the locale.
            let mut here = url::form_urlencoded::Serializer::new(String::new());
            if let Some(code) = &query.user_code {
                here.append_pair("user_code", code);
            }
            if !locales.is_empty() {
                here.append_pair("ui_locales", &locales.join(" "));
            }
            let here = format!("{VERIFICATION_PATH}?{}", here.finish());
            return login_page(&app, &headers, &locales, LoginAgain::default(), StatusCode::OK, Some(&here));
        };
        let context = device_context(&app, &headers, &locales, &secret);
        render(&app, &Page::Device { context, user_code: query.user_code, outcome: None }, StatusCode::OK)
    }
    .await;
    result.unwrap_or_else(|e| interaction::error_page(&app, &headers, None, &locales, e))
}

/// The device pages' context: their forms post back here in the page's locale (`ui_locales`
/// kept in the form's action), with the session's token.
fn device_context(app: &App, headers: &HeaderMap, locales: &[String], secret: &str) -> PageContext {
    page_context(app, headers, locales, &with_locales(VERIFICATION_PATH, locales), form_token(secret, PURPOSE))
}

/// `POST /device`: the code typed, then the person's decision about the device.
async fn decide(
    State(app): State<App>,
    extensions: Extensions,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
    form: Result<Form<DeviceForm>, FormRejection>,
) -> Response {
    let peer = crate::oauth::peer(&extensions);
    let locales = words(query.ok().and_then(|q| q.0.ui_locales).as_deref());
    let result = async {
        let Form(form) = form?;
        let Some((secret, session)) = session::current_with_secret(&app, &headers).await? else {
            let here = with_locales(VERIFICATION_PATH, &locales);
            return login_page(&app, &headers, &locales, LoginAgain::default(), StatusCode::OK, Some(&here));
        };
        if form.csrf.is_empty() || !same(&form.csrf, &form_token(&secret, PURPOSE)) {
            return Err(OAuthError::AccessDenied("the form did not come from your device page".into()));
        }
        let again = |outcome, status| {
            let context = device_context(&app, &headers, &locales, &secret);
            render(
                &app,
                &Page::Device { context, user_code: Some(form.user_code.clone()), outcome: Some(outcome) },
                status,
            )
        };
        // Codes typed count as sign-in attempts: a guesser is slowed and then stopped.
        let attempt = format!("device:{}", session.hash);
        match app.sign_in_limit.check(peer, Attempt::Page(&attempt), &session.user_id).await {
            Ok(delay) => tokio::time::sleep(delay).await,
            Err(Refusal::Address | Refusal::PageSpent | Refusal::Client | Refusal::Full) => {
                let actor = crate::audit::user(&session.user_id);
                let subject = ("user", session.user_id.as_str());
                crate::audit::record_throttled(&app.storage, &actor, subject, "device-code").await;
                return again(DeviceOutcome::Throttled, StatusCode::TOO_MANY_REQUESTS);
            }
        }
        let Some(loaded) = pending(&app, &form.user_code).await? else {
            return again(DeviceOutcome::UnknownCode, StatusCode::BAD_REQUEST);
        };
        let mut device = loaded.value;
        let context = app
            .storage
            .client_context(&device.client_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("the device's client is no longer registered", false))?;
        let user = app
            .storage
            .get_user(&session.user_id)
            .await?
            .ok_or_else(|| OAuthError::LoginRequired("the user no longer exists".into()))?;
        let decision = scope_policy::resolve(
            &app,
            &context,
            Ask::new(GrantType::DeviceCode.as_str(), Some(&user), &device.scopes, device.scope_given)
                .acr_values(&device.acr_values),
        )
        .await?;
        match form.decision.as_deref() {
            // The code is right: what the device's application asks for, to allow or deny.
            None => {
                let mut page = device_context(&app, &headers, &locales, &secret);
                page.client_name = client_name(&context.client);
                page.application = context.application.as_ref().map(application_view);
                page.hidden.push(("user_code".into(), display_user_code(&device.user_code)));
                let user_name = user_name(&user);
                render(&app, &Page::Consent { context: page, user_name, scopes: decision.scopes }, StatusCode::OK)
            }
            Some(choice) => {
                let allowed = choice == "allow";
                device.state = if allowed {
                    DeviceState::Approved {
                        user_id: user.id.clone(),
                        auth_time: session.auth_time,
                        decision,
                        assurance: session.assurance.clone(),
                    }
                } else {
                    DeviceState::Denied
                };
                match app.storage.apply(vec![write::update(&device, loaded.revision)?]).await {
                    Ok(()) => {}
                    // The device polled in between (its poll time changed): decide on the new revision.
                    Err(StorageError::Conflict(_)) => {
                        let Some(fresh) = pending(&app, &form.user_code).await? else {
                            return again(DeviceOutcome::UnknownCode, StatusCode::BAD_REQUEST);
                        };
                        let mut updated = fresh.value;
                        updated.state = device.state;
                        app.storage.apply(vec![write::update(&updated, fresh.revision)?]).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
                tracing::info!(client = %device.client_id, allowed, "device authorization decided");
                let outcome = if allowed { DeviceOutcome::Approved } else { DeviceOutcome::Denied };
                // The outcome names the device's application: the host knows it by now.
                let mut page = device_context(&app, &headers, &locales, &secret);
                page.client_name = client_name(&context.client);
                page.application = context.application.as_ref().map(application_view);
                let page = Page::Device { context: page, user_code: None, outcome: Some(outcome) };
                render(&app, &page, StatusCode::OK)
            }
        }
    }
    .await;
    result.unwrap_or_else(|e| interaction::error_page(&app, &headers, None, &locales, e))
}
