//! RFC 6749 §4.1.1 Authorization Request and §4.1.2 Authorization Response, with the
//! OpenID Connect Core §3.1.2.1 parameters (`nonce`, `prompt`, `max_age`, `login_hint`,
//! `ui_locales`), PKCE (RFC 7636) and `iss` in every response (RFC 9207).
//!
//! Errors about `client_id` or `redirect_uri` are shown on a page and never redirected
//! (§4.1.2.1); every other error goes back to the client's redirect URI.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::params::{Params, parse_scope};
use super::{interaction, pages, pkce, session};
use crate::error::OAuthError;
use crate::model::*;
use crate::server::App;

/// A validated authorization request, parked in storage while the person logs in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scopes: Vec<String>,
    pub scope_given: bool,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Vec<String>,
}

impl AuthorizationRequest {
    pub fn prompts(&self, p: &str) -> bool {
        self.prompt.iter().any(|x| x == p)
    }
}

/// An error that must not be redirected: shown to the person instead, on the client's
/// consent UI when the client is known.
pub struct PageError(pub OAuthError, pub Option<Client>);

pub async fn get(State(app): State<App>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    authorize(app, headers, query.unwrap_or_default().into_bytes()).await
}

pub async fn post(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    authorize(app, headers, body.to_vec()).await
}

async fn authorize(app: App, headers: HeaderMap, raw: Vec<u8>) -> Response {
    let params = match Params::parse(&raw) {
        Ok(p) => p,
        Err(e) => return error_page(&app, &headers, None, &[], e),
    };
    let (client, base) = match validate_client(&app, &params).await {
        Ok(v) => v,
        Err(PageError(e, client)) => {
            return error_page(&app, &headers, client.as_ref(), &ui_locales(&params), e);
        }
    };
    let request = match validate_request(&client, base.clone(), &params) {
        Ok(r) => r,
        Err(e) => return redirect_error(&app, &e, &base),
    };
    match proceed(&app, &headers, &client, request.clone(), None).await {
        Ok(response) => response,
        Err(e) => redirect_error(&app, &e, &request),
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
async fn validate_client(app: &App, params: &Params) -> Result<(Client, AuthorizationRequest), PageError> {
    let client_id = params
        .get("client_id")
        .ok_or_else(|| PageError(OAuthError::InvalidRequest("`client_id` is required".into()), None))?;
    let client = app
        .storage
        .get_client(client_id)
        .await
        .map_err(|e| PageError(e.into(), None))?
        .ok_or_else(|| PageError(OAuthError::invalid_client("unknown client", false), None))?;
    if client.is_expired(now()) {
        return Err(PageError(OAuthError::invalid_client("this client has expired", false), None));
    }
    let redirect_uri = match params.get("redirect_uri") {
        Some(uri) if client.doc.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
        Some(_) => {
            let e = OAuthError::InvalidRequest("`redirect_uri` is not registered for this client".into());
            return Err(PageError(e, Some(client)));
        }
        None if client.doc.redirect_uris.len() == 1 => client.doc.redirect_uris[0].clone(),
        None => {
            let e = OAuthError::InvalidRequest(
                "`redirect_uri` is required: the client has more or fewer than one registered".into(),
            );
            return Err(PageError(e, Some(client)));
        }
    };
    let request = AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri,
        redirect_uri_given: params.get("redirect_uri").is_some(),
        state: params.get("state").map(str::to_owned),
        ..Default::default()
    };
    Ok((client, request))
}

fn validate_request(
    client: &Client,
    mut r: AuthorizationRequest,
    params: &Params,
) -> Result<AuthorizationRequest, OAuthError> {
    match params.get("response_type") {
        Some("code") => {}
        Some(other) => {
            return Err(OAuthError::UnsupportedResponseType(format!("response_type `{other}` is not supported")));
        }
        None => return Err(OAuthError::InvalidRequest("`response_type` is required".into())),
    }
    if let Some(mode) = params.get("response_mode")
        && mode != "query"
    {
        return Err(OAuthError::InvalidRequest(format!("response_mode `{mode}` is not supported")));
    }
    if params.get("request").is_some() {
        return Err(OAuthError::InvalidRequest("request objects are not supported".into()));
    }
    if params.get("request_uri").is_some() {
        return Err(OAuthError::InvalidRequest("request_uri is not supported".into()));
    }
    if !client.allows_grant(GRANT_AUTHORIZATION_CODE) {
        return Err(OAuthError::UnauthorizedClient("this client may not use the authorization code grant".into()));
    }
    r.scopes = parse_scope(params.get("scope"))?;
    r.scope_given = params.get("scope").is_some();
    r.nonce = params.get("nonce").map(str::to_owned);
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
        (None, None) if client.is_public() => {
            return Err(OAuthError::InvalidRequest("public clients must use PKCE (RFC 7636)".into()));
        }
        (None, None) => {}
    }
    r.prompt = params
        .get("prompt")
        .map(|p| p.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
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
    r.ui_locales = ui_locales(params);
    Ok(r)
}

/// Continues an authorization request: login if needed, then scope policy, consent, code.
/// `logged_in` is the user who just logged in during this request's interaction.
pub async fn proceed(
    app: &App,
    headers: &HeaderMap,
    client: &Client,
    request: AuthorizationRequest,
    logged_in: Option<(String, i64)>,
) -> Result<Response, OAuthError> {
    let now = now();
    let (user_id, auth_time) = match logged_in {
        Some(v) => v,
        None => {
            let session = session::current(app, headers).await?;
            // OIDC Core §3.1.2.1: `prompt=select_account` shows the login page even with a
            // session, so the person can sign in with another account; the signed-in one is
            // suggested unless the client gave a `login_hint`.
            if request.prompts("select_account") {
                let mut request = request;
                if request.login_hint.is_none()
                    && let Some(s) = &session
                {
                    request.login_hint = app.storage.get_user(&s.user_id).await?.map(|u| u.username);
                }
                return interaction::start_login(app, headers, client, request, None).await;
            }
            let fresh_enough =
                |s: &Session| request.max_age.is_none_or(|m| now - s.auth_time <= m) && !request.prompts("login");
            match session.filter(fresh_enough) {
                Some(s) => (s.user_id, s.auth_time),
                None if request.prompts("none") => {
                    return Err(OAuthError::LoginRequired("the user is not signed in".into()));
                }
                None => return interaction::start_login(app, headers, client, request, None).await,
            }
        }
    };
    let (user, granted) = user_and_scopes(app, client, &user_id, &request).await?;

    let remembered = app.storage.get_consent(&user.id, &client.id).await?;
    let covered = remembered.is_some_and(|c| granted.scopes.iter().all(|s| c.scopes.contains(s)));
    if !client.doc.skip_consent && (!covered || request.prompts("consent")) {
        if request.prompts("none") {
            return Err(OAuthError::ConsentRequired("the user has not consented to these scopes".into()));
        }
        return interaction::start_consent(app, headers, client, &user, request, auth_time, &granted.scopes).await;
    }
    issue_code(app, client, &user, &request, auth_time, granted).await
}

/// The signed-in user, and the scopes the client's policy grants them for this request.
pub async fn user_and_scopes(
    app: &App,
    client: &Client,
    user_id: &str,
    request: &AuthorizationRequest,
) -> Result<(User, super::scope_policy::Granted), OAuthError> {
    let user = app
        .storage
        .get_user(user_id)
        .await?
        .ok_or_else(|| OAuthError::LoginRequired("the user no longer exists".into()))?;
    let granted = super::scope_policy::resolve(
        app,
        client,
        Some(&user),
        &request.scopes,
        request.scope_given,
        GRANT_AUTHORIZATION_CODE,
    )?;
    Ok((user, granted))
}

/// §4.1.2: a code bound to the client, redirect URI, PKCE challenge and nonce.
pub async fn issue_code(
    app: &App,
    client: &Client,
    user: &User,
    request: &AuthorizationRequest,
    auth_time: i64,
    granted: super::scope_policy::Granted,
) -> Result<Response, OAuthError> {
    let now = now();
    let refresh_ttl = client.doc.refresh_token_ttl.unwrap_or(app.config.tokens.refresh_token_ttl) as i64;
    let grant = Grant {
        id: crate::crypto::random_token(16),
        client_id: client.id.clone(),
        user_id: Some(user.id.clone()),
        created_at: now,
        expires_at: now + refresh_ttl,
        revoked: false,
        doc: GrantDocument { scopes: granted.scopes, auth_time: Some(auth_time), claims: granted.claims },
    };
    app.storage.create_grant(&grant).await?;
    let code = crate::crypto::random_token(32);
    let record = Code {
        grant_id: grant.id.clone(),
        expires_at: now + client.doc.code_ttl.unwrap_or(app.config.tokens.code_ttl) as i64,
        doc: CodeDocument {
            client_id: client.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            redirect_uri_given: request.redirect_uri_given,
            code_challenge: request.code_challenge.clone(),
            code_challenge_method: request.code_challenge_method.clone(),
            nonce: request.nonce.clone(),
            issued_refresh_token: false,
        },
    };
    app.storage.create_code(&crate::crypto::hash_secret(&code), &record).await?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = &request.state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", app.config.issuer()));
    Ok(redirect_to(&request.redirect_uri, &pairs))
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
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}

/// §4.1.2.1 error response, sent to the (already validated) redirect URI.
pub fn redirect_error(app: &App, e: &OAuthError, request: &AuthorizationRequest) -> Response {
    if request.redirect_uri.is_empty() {
        return error_page(
            app,
            &HeaderMap::new(),
            None,
            &request.ui_locales,
            OAuthError::InvalidRequest(e.description()),
        );
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
    redirect_to(&request.redirect_uri, &pairs)
}

/// Errors that must not be redirected, shown on a page rendered by the client's consent UI
/// plugin when the client is known (else the default one), in the locale `ui_locales` or the
/// browser's `Accept-Language` asks for among the plugin's.
pub fn error_page(
    app: &App,
    headers: &HeaderMap,
    client: Option<&Client>,
    ui_locales: &[String],
    e: OAuthError,
) -> Response {
    let status = match e.status() {
        StatusCode::UNAUTHORIZED => StatusCode::BAD_REQUEST,
        s => s,
    };
    let default = app.host.defaults.consent.as_str();
    let preferred = client.map_or(default, |c| interaction::consent_plugin(app, c));
    let render = |plugin: &str| {
        let page = crate::plugin::bindings::consent_world::exports::portcullis::plugin::consent::ErrorPage {
            locale: pages::pick_locale(app, plugin, ui_locales, headers),
            error: e.code().into(),
            description: e.description(),
        };
        match app.host.consent(plugin, |g, s| g.call_render_error(s, &page)) {
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
