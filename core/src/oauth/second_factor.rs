//! The second factor of the authorization flow (OIDC Core §2 `acr`/`amr`, RFC 8176), between
//! the sign-in and the scope policy's decision in [`super::authorize`]:
//!
//! - after the password, a person with a second factor is asked for it on the second-factor
//!   page (`Page::SecondFactor`), the interaction parked with the password's result; its form
//!   posts a code of their authenticator app or a recovery code (then spent), or a passkey's
//!   answer, to `/interaction/factor`, throttled as passwords are;
//! - a request demanding two factors (`acr_values` with "2", or `acr` asked for as essential
//!   with "2" in the `claims` parameter, OIDC Core §5.5.1.1) of a session signed in with one
//!   asks only the factor, and the session is raised to two; a person with no second factor
//!   gets `unmet_authentication_requirements` (OpenID Connect Unmet Authentication
//!   Requirements 1.0) for an essential demand, and a one-factor sign-in for a voluntary one;
//! - a scope policy's step-up (`PolicyDenial::StepUp`) asks the person for the factor the same
//!   way, and the policy is asked again;
//! - a passkey can sign in instead of the password (a discoverable credential, user
//!   verification required): offered on the login page, answered to the login form.
//!
//! The WebAuthn ceremonies run in the browser with the host's one script, which
//! [`super::pages`] serves (`GET /assets/passkey.js`) and hands the pages.

use std::net::IpAddr;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::authorize::SignedIn;
use super::interaction::{self, InteractionForm};
use super::pages::{ceremony, offer_passkey};
use super::sign_in_limit::{Attempt, Refusal};
use super::{App, session};
use crate::error::{OAuthError, factor_page_status};
use crate::factors::{self, CodeUsed, Demand};
use crate::model::{Assurance, AuthorizationRequest, Interaction, PendingFactor, Session, User};
use crate::plugin::consent::{FactorProblem, LoginProblem, Page};
use crate::storage::{ClientContext, write};

pub const FACTOR_PATH: &str = "/interaction/factor";
/// Whether the request can do without more than one factor: with nothing demanded, or
/// with a sign-in that already has two.
fn satisfied(request: &AuthorizationRequest, assurance: Option<&Assurance>) -> bool {
    factors::demand(&request.acr_values, request.claims.as_deref()) == Demand::None || factors::is_two_factor(assurance)
}

/// The second-factor page for a parked interaction: a new passkey ceremony when the person
/// has passkeys, the code field when they have an authenticator app (or recovery codes).
async fn ask(
    app: &App,
    headers: &HeaderMap,
    context: &ClientContext,
    mut parked: Interaction,
    user: &User,
    pending: PendingFactor,
    error: Option<FactorProblem>,
) -> Result<Response, OAuthError> {
    let now = app.clock.now();
    let stored = factors::load(&app.storage, &user.id).await?;
    let mut pending = pending;
    pending.passkey = factors::passkey_challenge(app.config.issuer(), &stored.factors, now)?;
    let passkey = pending.passkey.as_ref().map(|p| ceremony(app, p));
    parked.second_factor = Some(pending);
    app.storage.put_interaction(&parked).await?;
    let page = Page::SecondFactor {
        context: interaction::context(app, headers, context, &parked, FACTOR_PATH),
        user_name: interaction::user_name(user),
        totp: stored.factors.totp.is_some() || factors::recovery_left(&stored.factors) > 0,
        passkey,
        error,
    };
    let status = error.map_or(StatusCode::OK, factor_page_status);
    let mut response = interaction::render(app, context, &parked, &page, status)?;
    let cookie = session::set_cookie(app, session::INTERACTION_COOKIE, &parked.id, app.config.tokens.interaction_ttl);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// After the password (step 2 of [`super::authorize`]): a person with a second factor is
/// asked for it; anyone else is signed in with the password, unless the request demands two
/// factors as essential.
pub(super) async fn after_password(
    app: &App,
    headers: &HeaderMap,
    context: &ClientContext,
    parked: Interaction,
    user: &User,
) -> Result<Response, OAuthError> {
    let now = app.clock.now();
    if factors::has_any(&app.storage, &user.id).await? {
        let pending = PendingFactor {
            user_id: user.id.clone(),
            assurance: factors::password(),
            auth_time: now,
            ..Default::default()
        };
        return ask(app, headers, context, parked, user, pending, None).await;
    }
    let request = &parked.request;
    if factors::demand(&request.acr_values, request.claims.as_deref()) == Demand::Essential {
        app.storage.delete_interaction(&parked.id).await?;
        return Err(unmet());
    }
    let (cookie, auth_time, sid) = interaction::start_session(app, user, Some(&parked)).await?;
    let mut response =
        super::authorize::decide(app, headers, context, request, signed(&user.id, auth_time, &sid, None)).await?;
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

fn signed<'a>(user_id: &'a str, auth_time: i64, sid: &'a str, assurance: Option<&'a Assurance>) -> SignedIn<'a> {
    SignedIn { user_id, auth_time, sid, assurance, read: None }
}

fn unmet() -> OAuthError {
    OAuthError::UnmetAuthenticationRequirements(
        "the request demands a second factor, and the user has none (OIDC Core §5.5.1.1)".into(),
    )
}

/// A live session continuing a request (step 2): when the request demands two factors and
/// the session has one, the person is asked only for the second; otherwise the flow goes on.
pub(super) async fn continue_session(
    app: &App,
    headers: &HeaderMap,
    context: &ClientContext,
    request: &AuthorizationRequest,
    s: &Session,
    read: Option<session::UserAndConsent>,
) -> Result<Response, OAuthError> {
    let sid = session::sid(&s.hash);
    if satisfied(request, s.assurance.as_ref()) {
        let signed_in = SignedIn { read, ..signed(&s.user_id, s.auth_time, &sid, s.assurance.as_ref()) };
        return super::authorize::decide(app, headers, context, request, signed_in).await;
    }
    let user = session::user(app, s, read).await?.filter(|u| !u.doc.disabled);
    let user = user.ok_or_else(|| OAuthError::LoginRequired("the user no longer exists".into()))?;
    if factors::has_any(&app.storage, &user.id).await? {
        if request.prompts("none") {
            return Err(OAuthError::LoginRequired(
                "the request demands a second factor: the user must be asked".into(),
            ));
        }
        return step_up(app, headers, context, request.clone(), &user, s).await;
    }
    if factors::demand(&request.acr_values, request.claims.as_deref()) == Demand::Essential {
        return Err(unmet());
    }
    super::authorize::decide(
        app,
        headers,
        context,
        request,
        signed(&s.user_id, s.auth_time, &sid, s.assurance.as_ref()),
    )
    .await
}

/// Asks the signed-in person of session `s` for their second factor; the session is raised
/// when they give it.
async fn step_up(
    app: &App,
    headers: &HeaderMap,
    context: &ClientContext,
    request: AuthorizationRequest,
    user: &User,
    s: &Session,
) -> Result<Response, OAuthError> {
    let parked = Interaction {
        id: crate::crypto::random_token(32),
        expires_at: app.clock.now() + app.config.tokens.interaction_ttl as i64,
        csrf: crate::crypto::random_token(24),
        request,
        ..Default::default()
    };
    let pending = PendingFactor {
        user_id: user.id.clone(),
        assurance: factors::effective(s.assurance.as_ref()),
        auth_time: s.auth_time,
        session: Some(s.hash.clone()),
        passkey: None,
    };
    ask(app, headers, context, parked, user, pending, None).await
}

/// A scope policy asked for a stronger sign-in (`PolicyDenial::StepUp`, step 3): the person
/// of this browser's session is asked for their second factor and the policy asked again;
/// where that cannot be (they have two factors already, or none to give), the denial stands.
pub(super) async fn policy_step_up(
    app: &App,
    headers: &HeaderMap,
    context: &ClientContext,
    request: &AuthorizationRequest,
    user: &User,
    assurance: Option<&Assurance>,
    why: String,
) -> Result<Response, OAuthError> {
    if factors::is_two_factor(assurance) || request.prompts("none") {
        return Err(OAuthError::AccessDenied(why));
    }
    let session = session::current(app, headers).await?.filter(|s| s.user_id == user.id);
    match session {
        Some(s) if factors::has_any(&app.storage, &user.id).await? => {
            step_up(app, headers, context, request.clone(), user, &s).await
        }
        _ => Err(OAuthError::AccessDenied(why)),
    }
}

#[derive(Deserialize)]
pub struct FactorForm {
    interaction: String,
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    decision: String,
    #[serde(default, rename = "passkey-response")]
    passkey_response: String,
}

impl InteractionForm for FactorForm {
    fn interaction(&self) -> &str {
        &self.interaction
    }
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /interaction/factor`: the second-factor form.
pub async fn submit(
    State(app): State<App>,
    extensions: Extensions,
    headers: HeaderMap,
    form: Result<Form<FactorForm>, FormRejection>,
) -> Response {
    let (form, parked, context) = match interaction::resume(&app, &headers, form).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let peer = super::peer(&extensions);
    let request = parked.request.clone();
    match factor_step(&app, &headers, peer, &context, parked, &form).await {
        Ok(response) => response,
        Err(e) => super::authorize::redirect_error(&app, &headers, &context.client, &e, &request).await,
    }
}

async fn factor_step(
    app: &App,
    headers: &HeaderMap,
    peer: IpAddr,
    context: &ClientContext,
    parked: Interaction,
    form: &FactorForm,
) -> Result<Response, OAuthError> {
    let Some(pending) = parked.second_factor.clone() else {
        return Err(OAuthError::InvalidRequest("no second factor was asked on this page".into()));
    };
    if form.decision == "cancel" {
        app.storage.delete_interaction(&parked.id).await?;
        return Err(OAuthError::AccessDenied("the user cancelled the sign-in".into()));
    }
    let user = app.storage.get_user(&pending.user_id).await?.filter(|u| !u.doc.disabled);
    let Some(user) = user else {
        app.storage.delete_interaction(&parked.id).await?;
        return Err(OAuthError::LoginRequired("the user no longer exists".into()));
    };
    // Throttled as passwords are: per address, per person (delayed), per page.
    let page = format!("factor:{}", parked.id);
    let refused = match app.sign_in_limit.check(peer, Attempt::Page(&page), &user.username).await {
        Ok(delay) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            None
        }
        Err(refusal) => Some(refusal),
    };
    if let Some(refusal) = refused {
        let reason = match refusal {
            Refusal::Address | Refusal::Client => "address",
            Refusal::PageSpent => "page",
            Refusal::Full => "full",
        };
        let peer_text = peer.to_string();
        let subject = if refusal == Refusal::PageSpent {
            ("interaction", parked.id.as_str())
        } else {
            ("address", peer_text.as_str())
        };
        crate::audit::record_throttled(&app.storage, crate::audit::SYSTEM, subject, reason).await;
        tracing::warn!(%peer, user = %user.id, reason, "second-factor attempts throttled");
        if refusal == Refusal::PageSpent {
            // As a spent login page: shown, not redirected; the person starts again.
            app.storage.delete_interaction(&parked.id).await?;
            let e = OAuthError::TooManyAttempts("too many second-factor attempts on this page; start again".into());
            return Ok(interaction::error_page(app, headers, Some(context), &parked.request.ui_locales, e));
        }
        let problem = if refusal == Refusal::Full { FactorProblem::Busy } else { FactorProblem::Throttled };
        return ask(app, headers, context, parked, &user, pending, Some(problem)).await;
    }
    let now = app.clock.now();
    let issuer = app.config.issuer();
    let first = &pending.assurance;
    let signed_in_with_password = first.amr.iter().any(|m| m == factors::amr::PASSWORD);
    let assurance = if !form.passkey_response.is_empty() {
        let hardware = match &pending.passkey {
            Some(ceremony) => {
                factors::use_passkey(&app.storage, issuer, &user.id, ceremony, &form.passkey_response, now).await?
            }
            None => None,
        };
        match hardware {
            Some(hw) if signed_in_with_password => factors::password_and_passkey(hw),
            Some(hw) => factors::passkey_alone(hw),
            None => {
                return ask(app, headers, context, parked, &user, pending, Some(FactorProblem::PasskeyFailed)).await;
            }
        }
    } else {
        match factors::use_code(&app.storage, &app.keys, &user.id, &form.code, now).await? {
            CodeUsed::Totp | CodeUsed::Recovery => factors::password_and_otp(),
            CodeUsed::Wrong => {
                tracing::info!(user = %user.id, "wrong second-factor code");
                return ask(app, headers, context, parked, &user, pending, Some(FactorProblem::WrongCode)).await;
            }
        }
    };
    crate::metrics::sign_in(crate::metrics::SignIn::Success);
    signed_in(app, headers, context, parked, &user, &pending, assurance).await
}

/// The person gave their second factor: a session raised to two factors (step-up), or a new
/// one, and then the scope policy's decision.
async fn signed_in(
    app: &App,
    headers: &HeaderMap,
    context: &ClientContext,
    parked: Interaction,
    user: &User,
    pending: &PendingFactor,
    assurance: Assurance,
) -> Result<Response, OAuthError> {
    let request = parked.request.clone();
    match &pending.session {
        Some(hash) => {
            let now = app.clock.now();
            let Some(mut s) = app.storage.get_session(hash).await?.filter(|s| s.expires_at > now) else {
                app.storage.delete_interaction(&parked.id).await?;
                return Err(OAuthError::LoginRequired("the session ended meanwhile".into()));
            };
            s.auth_time = now;
            s.assurance = Some(assurance.clone());
            app.storage.apply(vec![write::put(&s)?, write::delete::<Interaction>(&parked.id)]).await?;
            let sid = session::sid(&s.hash);
            super::authorize::decide(app, headers, context, &request, signed(&user.id, now, &sid, Some(&assurance)))
                .await
        }
        None => {
            let (cookie, auth_time, sid) =
                interaction::start_session_as(app, user, Some(&parked), Some(assurance.clone())).await?;
            let mut response = super::authorize::decide(
                app,
                headers,
                context,
                &request,
                signed(&user.id, auth_time, &sid, Some(&assurance)),
            )
            .await?;
            response.headers_mut().append(header::SET_COOKIE, cookie);
            Ok(response)
        }
    }
}

/// The login form answered with a passkey (a discoverable credential, its user verified)
/// instead of a password: the person it names is signed in with two factors (`hwk`|`swk`,
/// `mfa`), throttled per address and per page as passwords are; a passkey that does not
/// verify shows the login page again.
pub(super) async fn passkey_sign_in(
    app: &App,
    headers: &HeaderMap,
    peer: IpAddr,
    context: &ClientContext,
    mut parked: Interaction,
    response: &str,
) -> Result<Response, OAuthError> {
    let now = app.clock.now();
    // No username is typed: the delay per username is counted per page instead.
    let who = format!("passkey:{}", parked.id);
    let refused = app.sign_in_limit.check(peer, Attempt::Page(&parked.id), &who).await.err();
    let verified = match (&refused, &parked.passkey_login) {
        (None, Some(ceremony)) => {
            factors::use_discoverable(&app.storage, app.config.issuer(), ceremony, response, now).await?
        }
        _ => None,
    };
    let user = match verified {
        Some((user_id, hardware)) => {
            app.storage.get_user(&user_id).await?.filter(|u| !u.doc.disabled).map(|u| (u, hardware))
        }
        None => None,
    };
    let Some((user, hardware)) = user else {
        if refused == Some(Refusal::PageSpent) {
            app.storage.delete_interaction(&parked.id).await?;
            let e = OAuthError::TooManyAttempts("too many sign-in attempts on this page; start again".into());
            return Ok(interaction::error_page(app, headers, Some(context), &parked.request.ui_locales, e));
        }
        let (problem, status) = match refused {
            Some(Refusal::Full) => (LoginProblem::Busy, StatusCode::SERVICE_UNAVAILABLE),
            Some(_) => (LoginProblem::Throttled, StatusCode::TOO_MANY_REQUESTS),
            None => (LoginProblem::PasskeyFailed, StatusCode::UNAUTHORIZED),
        };
        tracing::info!(%peer, "passkey sign-in refused");
        let passkey = offer_passkey(app, &mut parked);
        app.storage.put_interaction(&parked).await?;
        let page = Page::Login {
            context: interaction::context(app, headers, context, &parked, interaction::LOGIN_PATH),
            login_hint: parked.request.login_hint.clone(),
            error: Some(problem),
            passkey,
        };
        return interaction::render(app, context, &parked, &page, status);
    };
    crate::metrics::sign_in(crate::metrics::SignIn::Success);
    let assurance = factors::passkey_alone(hardware);
    let (cookie, auth_time, sid) =
        interaction::start_session_as(app, &user, Some(&parked), Some(assurance.clone())).await?;
    let mut response = super::authorize::decide(
        app,
        headers,
        context,
        &parked.request,
        signed(&user.id, auth_time, &sid, Some(&assurance)),
    )
    .await?;
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}
