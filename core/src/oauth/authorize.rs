//! RFC 6749 §4.1.1 Authorization Request and §4.1.2 Authorization Response, with the
//! OpenID Connect Core §3.1.2.1 parameters (`nonce`, `prompt`, `max_age`, `login_hint`,
//! `ui_locales`, `acr_values`, `claims`), PKCE (RFC 7636) and `iss` in every response
//! (RFC 9207). Besides `code`, the implicit and hybrid flows (OIDC Core §3.2, §3.3): the
//! `response_type`s with `id_token` and `token` a client is registered for, answered in the
//! `response_mode` asked for (`query` for a code alone, `fragment`, `form_post`: OAuth 2.0
//! Multiple Response Type Encoding Practices, OAuth 2.0 Form Post Response Mode), each also
//! JWT-secured (`query.jwt`, `fragment.jwt`, `form_post.jwt`, `jwt`: [`super::jarm`]).
//!
//! The whole flow is here, top to bottom: the request is validated ([`authorize`]); the
//! person is signed in, from their session or the login form ([`sign_in`], [`login`]); the
//! scope policy decides and the person consents unless they already did ([`decide`],
//! [`consent`]); the code and the tokens asked for are issued ([`respond`]). The pages and the forms' plumbing are
//! in [`super::interaction`], which never calls back here.
//!
//! Errors about `client_id` or `redirect_uri` are shown on a page and never redirected
//! (§4.1.2.1); every other error goes back to the client's redirect URI.

use axum::Form;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FormRejection};
use std::net::IpAddr;

use axum::extract::{RawQuery, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::App;
use super::interaction::{self, ConsentForm, LoginForm, error_page};
use super::params::{Params, parse_scope, words};
use super::scope_policy::{self, Ask};
use super::{pages, pkce, session};
use crate::crypto::{hash_secret, random_token};
use crate::error::OAuthError;
use crate::limits::{AUTHORIZATION_PARAMETERS, AUTHORIZE_QUERY_BYTES, MAX_STATE_BYTES};
pub use crate::model::AuthorizationRequest;
use crate::model::*;
use crate::storage::{ClientContext, Loaded, StorageError, write};

/// An error that must not be redirected: shown to the person instead, on the client's
/// consent UI when the client is known.
pub struct PageError(pub OAuthError, pub Option<std::sync::Arc<ClientContext>>);

pub async fn get(State(app): State<App>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    authorize_query(app, headers, query.unwrap_or_default()).await
}

async fn authorize_query(app: App, headers: HeaderMap, query: String) -> Response {
    if query.len() > AUTHORIZE_QUERY_BYTES {
        let e = OAuthError::UriTooLong(format!("the query is longer than the {AUTHORIZE_QUERY_BYTES} bytes read here"));
        return e.into_response();
    }
    authorize(app, headers, query.into_bytes()).await
}

/// `GET /api/o/oauth/v2/authorize/client_id=…&…` (the ELMA365 profile): the parameters
/// after the endpoint's path, as they were sent, then those of the query, if any.
pub async fn get_in_path(State(app): State<App>, headers: HeaderMap, uri: Uri) -> Response {
    let prefix = format!("{}/", super::profiles::Profile::Elma365.path(super::profiles::Endpoint::Authorization));
    let in_path = uri.path().strip_prefix(prefix.as_str()).unwrap_or_default();
    let query = match uri.query() {
        Some(q) if !in_path.is_empty() => format!("{in_path}&{q}"),
        Some(q) => q.to_owned(),
        None => in_path.to_owned(),
    };
    authorize_query(app, headers, query).await
}

pub async fn post(State(app): State<App>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    match body {
        Ok(body) => authorize(app, headers, body.to_vec()).await,
        Err(e) => OAuthError::from(e).into_response(),
    }
}

/// Step 1: the request. Then whoever is signed in continues it.
async fn authorize(app: App, headers: HeaderMap, raw: Vec<u8>) -> Response {
    let params = match Params::parse(&raw) {
        Ok(p) => p,
        Err(e) => return error_page(&app, &headers, None, &[], e),
    };
    // RFC 9126 §4: a pushed request's parameters, named by its `request_uri`. Until they are
    // read there is no checked redirect URI: a bad `request_uri` is shown on a page. Any
    // other `request_uri` is a request object by reference (OIDC Core §6.2), fetched below.
    let pushed = params.get("request_uri").is_some_and(|uri| uri.starts_with(PushedRequest::URI_PREFIX));
    let params = if pushed {
        match pushed_parameters(&app, &params).await {
            Ok(p) => p,
            Err(e) => return error_page(&app, &headers, None, &ui_locales(&params), e),
        }
    } else {
        params
    };
    // OIDC Core §6.1, §6.2: a request object's parameters, over those of the query.
    let params = match super::request_object::expand(&app, params).await {
        Ok(p) => p,
        Err((e, ui_locales)) => return error_page(&app, &headers, None, &ui_locales, e),
    };
    let (context, base) = match validate_client(&app, &params).await {
        Ok(v) => v,
        Err(PageError(e, client)) => {
            return error_page(&app, &headers, client.as_deref(), &ui_locales(&params), e);
        }
    };
    let request = match validate_request(&context, base.clone(), &params, pushed) {
        Ok(r) => r,
        Err(e) => return redirect_error(&app, &headers, &context.client, &e, &base).await,
    };
    match sign_in(&app, &headers, &context, &request).await {
        Ok(response) => response,
        Err(e) => redirect_error(&app, &headers, &context.client, &e, &request).await,
    }
}

/// OIDC Core §3.1.2.1 `ui_locales`: space-separated BCP 47 tags, most preferred first.
fn ui_locales(params: &Params) -> Vec<String> {
    params
        .get("ui_locales")
        .map(|l| l.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// §4.1.2.1: the client and redirect URI must check out before anything is redirected.
async fn validate_client(
    app: &App,
    params: &Params,
) -> Result<(std::sync::Arc<ClientContext>, AuthorizationRequest), PageError> {
    let client_id = params.client_id().map_err(|e| PageError(e, None))?;
    let context = app
        .storage
        .client_context(client_id)
        .await
        .map_err(|e| PageError(e.into(), None))?
        .ok_or_else(|| PageError(OAuthError::invalid_client("unknown client", false), None))?;
    let client = &context.client;
    if client.is_expired(app.clock.now()) {
        return Err(PageError(OAuthError::invalid_client("this client has expired", false), None));
    }
    let redirect_uri = match params.get("redirect_uri") {
        Some(uri) if client.doc.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
        Some(_) => {
            let e = OAuthError::InvalidRequest("`redirect_uri` is not registered for this client".into());
            return Err(PageError(e, Some(context.clone())));
        }
        None if client.doc.redirect_uris.len() == 1 => client.doc.redirect_uris[0].clone(),
        None => {
            let e = OAuthError::InvalidRequest(
                "`redirect_uri` is required: the client has more or fewer than one registered".into(),
            );
            return Err(PageError(e, Some(context.clone())));
        }
    };
    // Errors go back the way the response would have: read leniently here, strictly later.
    let response_type = params.get("response_type").and_then(ResponseType::parse).unwrap_or_default();
    // A refused `query` or `query.jwt` for tokens answers in the fragment, JWT-secured if asked.
    let response_mode = match params.get("response_mode").and_then(|m| ResponseMode::parse(m, response_type)) {
        Some(m) if response_type.returns_tokens() && m.in_query() => {
            let fragment = ResponseMode::default_for(response_type);
            if m.is_jwt() { fragment.secured() } else { fragment }
        }
        Some(m) => m,
        None => ResponseMode::default_for(response_type),
    };
    let request = AuthorizationRequest {
        client_id: client.id.clone(),
        response_type,
        response_mode,
        redirect_uri,
        redirect_uri_given: params.get("redirect_uri").is_some(),
        // An over-long `state` is refused by `validate_request`, and not echoed in that error.
        state: params.get("state").filter(|s| s.len() <= MAX_STATE_BYTES).map(str::to_owned),
        ..Default::default()
    };
    Ok((context, request))
}

/// RFC 9126 §4: the parameters pushed under the authorization request's `request_uri`, used up now.
/// Any other parameter of the authorization request but `client_id` is ignored.
async fn pushed_parameters(app: &App, params: &Params) -> Result<Params, OAuthError> {
    let uri = params.required("request_uri")?;
    let stale = || OAuthError::InvalidRequestUri("the request_uri is unknown, used or expired".into());
    let id = hash_secret(uri);
    let Some(Loaded { value: pushed, consumed, .. }) = app.storage.get_loaded::<PushedRequest>(&id).await? else {
        return Err(stale());
    };
    if consumed || pushed.expires_at <= app.clock.now() {
        return Err(stale());
    }
    if params.get("client_id") != Some(pushed.client_id.as_str()) {
        return Err(OAuthError::InvalidRequest("`client_id` is not the client that pushed the request".into()));
    }
    match app.storage.apply(vec![write::consume::<PushedRequest>(&id)]).await {
        Ok(()) => {}
        Err(StorageError::Conflict(_)) => return Err(stale()),
        Err(e) => return Err(e.into()),
    }
    let mut pushed_params = Params::parse(pushed.parameters.as_bytes())?;
    pushed_params.insert("client_id", pushed.client_id);
    Ok(pushed_params)
}

/// RFC 9126 §2.1: a pushed request is checked as the authorization endpoint checks one.
pub(super) async fn check(app: &App, params: &Params) -> Result<(), OAuthError> {
    let (context, base) = validate_client(app, params).await.map_err(|PageError(e, _)| e)?;
    validate_request(&context, base, params, true).map(|_| ())
}

fn validate_request(
    context: &ClientContext,
    mut r: AuthorizationRequest,
    params: &Params,
    pushed: bool,
) -> Result<AuthorizationRequest, OAuthError> {
    let client = &context.client;
    // Everything kept with the interaction or the code is bounded, before anything is stored.
    params.check_lengths(AUTHORIZATION_PARAMETERS)?;
    let response_type = match params.get("response_type") {
        Some(value) => ResponseType::parse(value)
            .ok_or_else(|| OAuthError::UnsupportedResponseType(format!("response_type `{value}` is not supported")))?,
        None => return Err(OAuthError::InvalidRequest("`response_type` is required".into())),
    };
    r.response_type = response_type;
    r.response_mode = match params.get("response_mode") {
        Some(mode) => match ResponseMode::parse(mode, response_type) {
            // Multiple Response Type Encoding Practices §2.1, JARM §2.3.1 (unencrypted):
            // tokens never travel in the query.
            Some(m) if m.in_query() && response_type.returns_tokens() => {
                return Err(OAuthError::InvalidRequest(format!(
                    "response_mode `{mode}` cannot carry the tokens of response_type `{}`",
                    response_type.as_str()
                )));
            }
            Some(m) => m,
            None => return Err(OAuthError::InvalidRequest(format!("response_mode `{mode}` is not supported"))),
        },
        None => ResponseMode::default_for(response_type),
    };
    if context.client.doc.require_pushed_authorization_requests && !pushed {
        return Err(OAuthError::InvalidRequest(
            "this client pushes its authorization requests first (RFC 9126): send `request_uri`".into(),
        ));
    }
    if response_type.code && !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::UnauthorizedClient("this client may not use the authorization code grant".into()));
    }
    if !client.allows_response_type(response_type) {
        return Err(OAuthError::UnauthorizedClient(format!(
            "this client is not registered for response_type `{}`",
            response_type.as_str()
        )));
    }
    if let Some(why) = context.unusable() {
        return Err(OAuthError::UnauthorizedClient(why.into()));
    }
    r.scopes = parse_scope(params.get("scope"))?;
    r.scope_given = params.get("scope").is_some();
    r.nonce = params.get("nonce").map(str::to_owned);
    r.dpop_jkt = params.get("dpop_jkt").map(str::to_owned);
    check_front_channel(&r)?;
    match (params.get("code_challenge"), params.get("code_challenge_method")) {
        (Some(challenge), method) => {
            let method = method.unwrap_or("plain");
            pkce::check_challenge(challenge, method, client.doc.allow_plain_pkce)?;
            r.code_challenge = Some(challenge.to_owned());
            r.code_challenge_method = Some(method.to_owned());
        }
        (None, Some(_)) => {
            return Err(OAuthError::InvalidRequest("code_challenge_method without code_challenge".into()));
        }
        (None, None) if client.is_public() && response_type.code => {
            return Err(OAuthError::InvalidRequest("public clients must use PKCE (RFC 7636)".into()));
        }
        (None, None) => {}
    }
    r.prompt = words(params.get("prompt"));
    for p in &r.prompt {
        if !matches!(p.as_str(), "none" | "login" | "consent" | "select_account") {
            return Err(OAuthError::InvalidRequest(format!("prompt `{p}` is not supported")));
        }
    }
    if r.prompts("none") && r.prompt.len() > 1 {
        return Err(OAuthError::InvalidRequest("prompt=none cannot be combined with other values".into()));
    }
    if let Some(max_age) = params.get("max_age") {
        r.max_age = Some(
            max_age
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| OAuthError::InvalidRequest("max_age must be a non-negative integer".into()))?,
        );
    }
    r.login_hint = params.get("login_hint").map(str::to_owned);
    r.ui_locales = words(params.get("ui_locales"));
    r.acr_values = params.acr_values()?;
    if let Some(claims) = params.get("claims") {
        // OIDC Core §5.5: a JSON object.
        if !serde_json::from_str::<serde_json::Value>(claims).is_ok_and(|v| v.is_object()) {
            return Err(OAuthError::InvalidRequest("`claims` must be a JSON object (OIDC Core §5.5)".into()));
        }
        r.claims = Some(claims.to_owned());
    }
    Ok(r)
}

/// The scopes OpenID Connect itself defines (OIDC Core §3.1.2.1, §5.4): identity scopes,
/// as DATEV's manual calls them; every other scope is a resource's.
const IDENTITY_SCOPES: &[&str] = &["openid", "profile", "email", "address", "phone"];

/// What the implicit and hybrid flows require (OIDC Core §3.2.2.1, §3.3.2.11), and DATEV's
/// rule that `id_token` alone asks only for identity scopes and `token` alone only for
/// resource scopes.
fn check_front_channel(r: &AuthorizationRequest) -> Result<(), OAuthError> {
    let rt = r.response_type;
    let openid = r.scopes.iter().any(|s| s == "openid");
    if rt.id_token && !openid {
        return Err(OAuthError::InvalidScope("an ID token is issued only for the `openid` scope".into()));
    }
    // Every flow that issues an ID token from here, and the hybrid flow, binds it to a nonce.
    if (rt.id_token || (rt.code && rt.token)) && r.nonce.is_none() {
        return Err(OAuthError::InvalidRequest(format!(
            "`nonce` is required for response_type `{}` (OIDC Core §3.2.2.1, §3.3.2.11)",
            rt.as_str()
        )));
    }
    let identity = |s: &String| IDENTITY_SCOPES.contains(&s.as_str());
    if rt.id_token && !rt.code && !rt.token && !r.scopes.iter().all(identity) {
        return Err(OAuthError::InvalidScope("response_type `id_token` allows identity scopes only".into()));
    }
    if rt.token && !rt.code && !rt.id_token && r.scopes.iter().any(identity) {
        return Err(OAuthError::InvalidScope("response_type `token` allows resource scopes only".into()));
    }
    Ok(())
}

/// Step 2: who is signed in. A live session continues (unless the request wants a fresh
/// login, `prompt=login` or `max_age`); otherwise the login page is shown.
async fn sign_in(
    app: &App,
    headers: &HeaderMap,
    context: &ClientContext,
    request: &AuthorizationRequest,
) -> Result<Response, OAuthError> {
    let now = app.clock.now();
    let session = session::current_for(app, headers, &context.client.id).await?;
    // OIDC Core §3.1.2.1: `prompt=select_account` shows the login page even with a session,
    // so the person can sign in with another account; the signed-in one is suggested unless
    // the client gave a `login_hint`.
    if request.prompts("select_account") {
        let mut request = request.clone();
        if request.login_hint.is_none()
            && let Some((s, read)) = session
        {
            request.login_hint = session::user(app, &s, read).await?.map(|u| u.username);
        }
        return interaction::login_page(app, headers, context, request).await;
    }
    let fresh_enough =
        |s: &Session| request.max_age.is_none_or(|m| now - s.auth_time <= m) && !request.prompts("login");
    match session.filter(|(s, _)| fresh_enough(s)) {
        Some((s, read)) => super::second_factor::continue_session(app, headers, context, request, &s, read).await,
        None if request.prompts("none") => Err(OAuthError::LoginRequired("the user is not signed in".into())),
        None => interaction::login_page(app, headers, context, request.clone()).await,
    }
}

/// `POST /interaction/login`: the login form of step 2.
pub async fn login(
    State(app): State<App>,
    extensions: Extensions,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let (form, parked, context) = match interaction::resume(&app, &headers, form).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    // The client address (`crate::client_address`). A router served without it
    // puts every sign-in in one shared budget rather than in none.
    let peer = crate::oauth::peer(&extensions);
    let request = parked.request.clone();
    if form.cancelled() {
        return cancel(&app, &headers, &context, &parked).await;
    }
    match login_step(&app, &headers, peer, &context, parked, &form).await {
        Ok(response) => response,
        Err(e) => redirect_error(&app, &headers, &context.client, &e, &request).await,
    }
}

/// The person gave up on a page of the flow (`decision=cancel`): the interaction ends and
/// the client gets `access_denied` (RFC 6749 §4.1.2.1), as any error of the request.
async fn cancel(app: &App, headers: &HeaderMap, context: &ClientContext, parked: &Interaction) -> Response {
    if let Err(e) = app.storage.delete_interaction(&parked.id).await {
        return redirect_error(app, headers, &context.client, &e.into(), &parked.request).await;
    }
    let e = OAuthError::AccessDenied("the user cancelled the sign-in".into());
    redirect_error(app, headers, &context.client, &e, &parked.request).await
}

async fn login_step(
    app: &App,
    headers: &HeaderMap,
    peer: IpAddr,
    context: &ClientContext,
    parked: Interaction,
    form: &LoginForm,
) -> Result<Response, OAuthError> {
    if !form.passkey_response().is_empty() {
        return super::second_factor::passkey_sign_in(app, headers, peer, context, parked, form.passkey_response())
            .await;
    }
    let user = match interaction::check_password(app, headers, peer, context, &parked, form).await? {
        Ok(user) => user,
        Err(page_instead) => return Ok(page_instead),
    };
    super::second_factor::after_password(app, headers, context, parked, &user).await
}

/// Step 3: the scope policy decides; the person consents unless they already agreed to
/// every scope decided (or the client skips consent).
pub(super) async fn decide(
    app: &App,
    headers: &HeaderMap,
    context: &ClientContext,
    request: &AuthorizationRequest,
    signed_in: SignedIn<'_>,
) -> Result<Response, OAuthError> {
    let SignedIn { user_id, auth_time, sid, assurance, read } = signed_in;
    let client = &context.client;
    let (user, remembered) = match read {
        Some(read) => read,
        None => app.storage.user_and_consent(user_id, &client.id).await?,
    };
    let user = user.ok_or_else(|| OAuthError::LoginRequired("the user no longer exists".into()))?;
    if user.doc.disabled {
        return Err(OAuthError::LoginRequired("the user is disabled".into()));
    }
    // How the person signed in, which the policy may ask more of (OIDC Core §2).
    let signed_in_as = crate::factors::effective(assurance);
    let authentication =
        crate::plugin::scope::Authentication { acr: signed_in_as.acr, amr: signed_in_as.amr, auth_time };
    let decision = scope_policy::resolve_signed_in(
        app,
        context,
        Ask::new(
            if request.response_type.code { GrantType::AuthorizationCode.as_str() } else { "implicit" },
            Some(&user),
            &request.scopes,
            request.scope_given,
        )
        .acr_values(&request.acr_values)
        .claims_parameter(request.claims.as_deref()),
        authentication,
    )
    .await;
    let decision = match decision {
        Err(OAuthError::StepUp(why)) => {
            return super::second_factor::policy_step_up(app, headers, context, request, &user, assurance, why).await;
        }
        other => other?,
    };
    let covered = remembered.is_some_and(|c| decision.scopes.iter().all(|s| c.scopes.contains(s)));
    if !client.doc.skip_consent && (!covered || request.prompts("consent")) {
        if request.prompts("none") {
            return Err(OAuthError::ConsentRequired("the user has not consented to these scopes".into()));
        }
        let signed_in = (auth_time, sid, assurance);
        return interaction::consent_page(app, headers, context, &user, request.clone(), signed_in, decision).await;
    }
    respond(app, headers, context, request, (&user, auth_time, Some(sid), assurance), decision, None).await
}

/// Who is signed in for step 3: the user, when and in which session, and how; and the user
/// and their consent to the client where they were read with the session.
pub(super) struct SignedIn<'a> {
    pub user_id: &'a str,
    pub auth_time: i64,
    pub sid: &'a str,
    pub assurance: Option<&'a Assurance>,
    pub read: Option<session::UserAndConsent>,
}

/// `POST /interaction/consent`: the consent form of step 3. Allowing issues exactly the
/// decision the page showed, parked with it; the policy is not asked again.
pub async fn consent(
    State(app): State<App>,
    headers: HeaderMap,
    form: Result<Form<ConsentForm>, FormRejection>,
) -> Response {
    let (form, parked, context) = match interaction::resume(&app, &headers, form).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let request = parked.request.clone();
    match consent_step(&app, &headers, &context, parked, &form).await {
        Ok(response) => response,
        Err(e) => redirect_error(&app, &headers, &context.client, &e, &request).await,
    }
}

async fn consent_step(
    app: &App,
    headers: &HeaderMap,
    context: &ClientContext,
    parked: Interaction,
    form: &ConsentForm,
) -> Result<Response, OAuthError> {
    app.storage.delete_interaction(&parked.id).await?;
    let (Some(user_id), Some(auth_time), Some(decision)) = (parked.user_id, parked.auth_time, parked.decision) else {
        return Err(OAuthError::InvalidRequest("consent was given before sign-in".into()));
    };
    if form.decision != "allow" {
        return Err(OAuthError::AccessDenied("the user denied the request".into()));
    }
    let user = app
        .storage
        .get_user(&user_id)
        .await?
        .ok_or_else(|| OAuthError::LoginRequired("the user no longer exists".into()))?;
    let remember = Consent {
        user_id: user.id.clone(),
        client_id: context.client.id.clone(),
        scopes: decision.scopes.clone(),
        granted_at: app.clock.now(),
    };
    let signed_in = (&user, auth_time, parked.sid.as_deref(), parked.assurance.as_ref());
    respond(app, headers, context, &parked.request, signed_in, decision, Some(remember)).await
}

/// Step 4: what the response type asks for. A code (§4.1.2) bound to the client, redirect
/// URI, PKCE challenge and nonce, carrying the grant its redemption creates; an access token
/// (§4.2.2), hanging off a grant of its own with no refresh token; an ID token (OIDC Core
/// §3.2.2.5, §3.3.2.11) with the hashes of what comes with it. They are written in one group
/// with the consent that was just given, if any.
async fn respond(
    app: &App,
    headers: &HeaderMap,
    context: &ClientContext,
    request: &AuthorizationRequest,
    (user, auth_time, sid, assurance): (&User, i64, Option<&str>, Option<&Assurance>),
    decision: Decision,
    remember: Option<Consent>,
) -> Result<Response, OAuthError> {
    let client = &context.client;
    let settings = context.token_settings();
    let now = app.clock.now();
    let refresh_ttl = settings.refresh_token_ttl.unwrap_or(app.config.tokens.refresh_token_ttl) as i64;
    let rt = request.response_type;
    let id_token_claims =
        super::tokens::id_token_user_claims(user, &decision.scopes, settings, app.config.tokens.roles_scope.as_deref());
    let grant = |decision: &Decision| Grant {
        id: Grant::new_id(),
        client_id: client.id.clone(),
        user_id: Some(user.id.clone()),
        created_at: now,
        expires_at: now + refresh_ttl,
        doc: GrantDocument {
            scopes: decision.scopes.clone(),
            auth_time: Some(auth_time),
            sid: sid.map(str::to_owned),
            claims: decision.claims.clone(),
            assurance: assurance.cloned(),
        },
    };
    let mut writes = Vec::new();
    let (code, issued) = if rt.code {
        let code = random_token(32);
        let issued = Code {
            hash: hash_secret(&code),
            expires_at: now + settings.code_ttl.unwrap_or(app.config.tokens.code_ttl) as i64,
            grant: grant(&decision),
            doc: CodeDocument {
                client_id: client.id.clone(),
                redirect_uri: request.redirect_uri.clone(),
                redirect_uri_given: request.redirect_uri_given,
                code_challenge: request.code_challenge.clone(),
                code_challenge_method: request.code_challenge_method.clone(),
                nonce: request.nonce.clone(),
                id_token_claims: id_token_claims.clone(),
                dpop_jkt: request.dpop_jkt.clone(),
            },
        };
        writes.push(write::create(&issued)?);
        (Some(code), Some(issued))
    } else {
        (None, None)
    };
    let front_grant = rt.token.then(|| grant(&decision));
    if let Some(g) = &front_grant {
        writes.push(write::create(g)?);
    }
    if let Some(consent) = &remember {
        writes.push(write::put(consent)?);
    }
    let front = if rt.returns_tokens() {
        Some(
            super::tokens::front_channel(
                app,
                super::tokens::Issue {
                    context,
                    user_id: Some(&user.id),
                    subject: None,
                    scopes: &decision.scopes,
                    claims: &decision.claims,
                    grant_id: front_grant.as_ref().map(|g| g.id.as_str()),
                    nonce: request.nonce.as_deref(),
                    auth_time: Some(auth_time),
                    sid,
                    assurance,
                    audience: None,
                    id_token_claims: rt.id_token.then_some(&id_token_claims),
                    refresh_token: None,
                },
                rt.token,
                code.as_deref(),
                request.state.as_deref(),
            )
            .await?,
        )
    } else {
        None
    };
    app.storage.apply(writes).await?;
    if let Some(issued) = issued {
        app.storage.remember_issued_code(issued, now);
    }
    if let Some(consent) = &remember {
        let detail = serde_json::json!({ "scopes": consent.scopes });
        let (kind, actor) = (crate::audit::types::CONSENT_GIVEN, crate::audit::user(&user.id));
        crate::audit::record(&app.storage, kind, &actor, ("client", &client.id), detail).await;
    }

    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(code) = code {
        pairs.push(("code", code));
    }
    if let Some(front) = front {
        if let Some((token, expires_in)) = front.access_token {
            pairs.push(("access_token", token));
            pairs.push(("token_type", front.token_type.to_owned()));
            pairs.push(("expires_in", expires_in.to_string()));
            pairs.push(("scope", decision.scopes.join(" ")));
        }
        if let Some(id_token) = front.id_token {
            pairs.push(("id_token", id_token));
        }
    }
    if let Some(state) = &request.state {
        pairs.push(("state", state.clone()));
    }
    pairs.push(("iss", app.config.issuer().to_owned()));
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Ok(deliver(app, headers, client, request, &pairs).await)
}

/// The authorization response (or error) in the request's response mode. A JWT-secured mode
/// (JARM §2.3) carries the parameters as one signed `response` instead, signed for `client`.
async fn deliver(
    app: &App,
    headers: &HeaderMap,
    client: &Client,
    request: &AuthorizationRequest,
    pairs: &[(&str, &str)],
) -> Response {
    let secured: String;
    let jarm: [(&str, &str); 1];
    let pairs = if request.response_mode.is_jwt() {
        secured = match super::jarm::response(app, client, pairs).await {
            Ok(jwt) => jwt,
            Err(e) => return error_page(app, headers, None, &request.ui_locales, e),
        };
        jarm = [(super::jarm::RESPONSE_PARAMETER, secured.as_str())];
        &jarm[..]
    } else {
        pairs
    };
    match request.response_mode {
        ResponseMode::Query | ResponseMode::QueryJwt => redirect_to(&request.redirect_uri, pairs),
        ResponseMode::Fragment | ResponseMode::FragmentJwt => redirect_with_fragment(&request.redirect_uri, pairs),
        ResponseMode::FormPost | ResponseMode::FormPostJwt => form_post(app, &request.redirect_uri, pairs),
    }
}

/// Multiple Response Type Encoding Practices §2.1 (`fragment`): the parameters in the
/// redirect URI's fragment, which the browser never sends to a server.
fn redirect_with_fragment(uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return (StatusCode::BAD_REQUEST, "invalid redirect URI").into_response(),
    };
    let fragment = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    url.set_fragment(Some(&fragment));
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// OAuth 2.0 Form Post Response Mode §2: a page whose form posts the parameters to the
/// redirect URI and submits itself. Its CSP allows that one script and that one form target.
fn form_post(app: &App, uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut inputs = String::new();
    for (name, value) in pairs {
        inputs.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            html_escape(name),
            html_escape(value)
        ));
    }
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Submitting…</title>\n</head>\n<body>\n<form method=\"post\" action=\"{}\">\n{inputs}<noscript><button type=\"submit\">Continue</button></noscript>\n</form>\n<script>{FORM_POST_SCRIPT}</script>\n</body>\n</html>\n",
        html_escape(uri)
    );
    pages::html(app, html, StatusCode::OK, Some(uri))
}

/// The form post page's only script.
const FORM_POST_SCRIPT: &str = "document.forms[0].submit();";

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn redirect_to(uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return (StatusCode::BAD_REQUEST, "invalid redirect URI").into_response(),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// §4.1.2.1 error response, sent to the (already validated) redirect URI of `client` in the
/// request's response mode, JWT-secured when that mode is (JARM §2.1, §2.2).
pub async fn redirect_error(
    app: &App,
    headers: &HeaderMap,
    client: &Client,
    e: &OAuthError,
    request: &AuthorizationRequest,
) -> Response {
    if request.redirect_uri.is_empty() {
        return error_page(app, headers, None, &request.ui_locales, OAuthError::InvalidRequest(e.description()));
    }
    if let OAuthError::ServerError(_) = e {
        tracing::warn!(error = %e, "authorization request failed");
    }
    let description = e.description();
    let mut pairs = vec![("error", e.code()), ("error_description", description.as_str())];
    if let Some(state) = &request.state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", app.config.issuer()));
    deliver(app, headers, client, request, &pairs).await
}
