//! Every OAuth error code the server sends is chosen here, and only here, with its HTTP
//! status; so are the admin API's ([`AdminError`]).
//!
//! Protocol modules return [`OAuthError`]; lower layers (storage, plugins, keys) have their
//! own error types that convert into it. A store that cannot be reached for now is 503
//! `temporarily_unavailable` with `Retry-After`, never a 500. RFC 6749 §5.2 (token endpoint), §4.1.2.1
//! (authorization endpoint), RFC 6750 §3.1 (bearer), OIDC Core §3.1.2.6.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    /// A body larger than the endpoint reads (`crate::limits`): `invalid_request` with
    /// 413 Content Too Large (RFC 9110 §15.5.14).
    #[error("{0}")]
    BodyTooLarge(String),
    /// A request target longer than the endpoint reads: `invalid_request` with 414 URI Too
    /// Long (RFC 9110 §15.5.15).
    #[error("{0}")]
    UriTooLong(String),
    /// Client authentication failed. `basic` says whether the client tried HTTP Basic
    /// (RFC 6749 §5.2: then 401 with `WWW-Authenticate`).
    #[error("{reason}")]
    InvalidClient { reason: String, basic: bool },
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    UnsupportedResponseType(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    LoginRequired(String),
    #[error("{0}")]
    ConsentRequired(String),
    #[error("{0}")]
    InteractionRequired(String),
    #[error("{0}")]
    InvalidToken(String),
    /// RFC 6750 §3.1: a protected resource's token lacks the scope `needed` (403, and the
    /// scope named in the challenge).
    #[error("{reason}")]
    InsufficientScope { needed: &'static str, reason: String },
    #[error("{0}")]
    UnsupportedTokenType(String),
    #[error("{0}")]
    ServerError(String),
    #[error("{0}")]
    TemporarilyUnavailable(String),
    /// A request shed (`overload.rs`): the server runs late, or answers as many at once as
    /// it may.
    #[error("the server is answering as many requests as it can; try again shortly")]
    Overloaded,
    /// Sign-in attempts refused by throttling (per address, per login page).
    #[error("{0}")]
    TooManyAttempts(String),
    #[error("{0}")]
    NotFound(String),
    /// OIDC Core §6.2, RFC 9126 §4: a `request_uri` that is unknown, used or expired.
    #[error("{0}")]
    InvalidRequestUri(String),
    /// RFC 8693 §2.2.2: an `audience` or `resource` the server cannot issue for.
    #[error("{0}")]
    InvalidTarget(String),
    /// RFC 8628 §3.5: the person has not yet decided.
    #[error("{0}")]
    AuthorizationPending(String),
    /// RFC 8628 §3.5: the device polls faster than its interval; the interval grows by 5 s.
    #[error("{0}")]
    SlowDown(String),
    /// RFC 8628 §3.5: the person denied the device (`access_denied`, at the token endpoint).
    #[error("{0}")]
    DeviceDenied(String),
    /// RFC 8628 §3.5: the device code expired.
    #[error("{0}")]
    ExpiredToken(String),
    /// OIDC Core §3.1.2.6: a request object that does not verify or says something invalid.
    #[error("{0}")]
    InvalidRequestObject(String),
    /// RFC 9449 §5, §7.1: a DPoP proof that is missing where one is needed, or fails a check of §4.3.
    #[error("{0}")]
    InvalidDpopProof(String),
    /// RFC 9449 §8: the proof needs a nonce of this server; `nonce` is a fresh one, sent in the
    /// `DPoP-Nonce` header.
    #[error("{reason}")]
    UseDpopNonce { reason: String, nonce: String },
    /// A plugin the client names (its scope policy, its consent UI) is not loaded: the
    /// client is misconfigured until the plugin is back or the client is changed.
    /// `server_error` naming the plugin, 503 (the service is unavailable to this client), not
    /// a bare 500.
    #[error("{0}")]
    PluginNotLoaded(String),
    /// OpenID Connect Unmet Authentication Requirements 1.0 §2: the request demands (as
    /// essential) a sign-in the person cannot give, such as a second factor they have none of.
    #[error("{0}")]
    UnmetAuthenticationRequirements(String),
    /// A scope policy's step-up on a page: the grant needs a stronger sign-in. Where the
    /// person can be asked for a second factor they are; otherwise it reaches the client as
    /// the policy's denial, `access_denied`.
    #[error("{0}")]
    StepUp(String),
    /// RFC 7591 §3.2.2: a redirect URI of a registration is invalid.
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// RFC 7591 §3.2.2: other client metadata of a registration is invalid.
    #[error("{0}")]
    InvalidClientMetadata(String),
}

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::BodyTooLarge(_) | Self::UriTooLong(_) => "invalid_request",
            Self::InvalidClient { .. } => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType(_) => "unsupported_grant_type",
            Self::UnsupportedResponseType(_) => "unsupported_response_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::AccessDenied(_) => "access_denied",
            Self::LoginRequired(_) => "login_required",
            Self::ConsentRequired(_) => "consent_required",
            Self::InteractionRequired(_) => "interaction_required",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::UnsupportedTokenType(_) => "unsupported_token_type",
            Self::ServerError(_) => "server_error",
            // RFC 6749 §4.1.2.1 has no code of its own for throttling; this is the nearest.
            Self::TemporarilyUnavailable(_) | Self::TooManyAttempts(_) | Self::Overloaded => "temporarily_unavailable",
            Self::NotFound(_) => "not_found",
            Self::InvalidRequestUri(_) => "invalid_request_uri",
            Self::InvalidTarget(_) => "invalid_target",
            Self::AuthorizationPending(_) => "authorization_pending",
            Self::DeviceDenied(_) => "access_denied",
            Self::SlowDown(_) => "slow_down",
            Self::ExpiredToken(_) => "expired_token",
            Self::InvalidRequestObject(_) => "invalid_request_object",
            Self::InvalidDpopProof(_) => "invalid_dpop_proof",
            Self::UseDpopNonce { .. } => "use_dpop_nonce",
            Self::PluginNotLoaded(_) => "server_error",
            Self::UnmetAuthenticationRequirements(_) => "unmet_authentication_requirements",
            Self::StepUp(_) => "access_denied",
            Self::InvalidRedirectUri(_) => "invalid_redirect_uri",
            Self::InvalidClientMetadata(_) => "invalid_client_metadata",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            // `login_required` is redirected by the authorization endpoint; as a status it
            // answers the account API's calls without a session.
            Self::InvalidClient { .. } | Self::InvalidToken(_) | Self::LoginRequired(_) => StatusCode::UNAUTHORIZED,
            Self::AccessDenied(_) | Self::StepUp(_) | Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::ServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable(_) | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::PluginNotLoaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            // RFC 6585 §4.
            Self::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn description(&self) -> String {
        self.to_string()
    }

    pub fn invalid_client(reason: impl Into<String>, basic: bool) -> Self {
        Self::InvalidClient { reason: reason.into(), basic }
    }

    /// A failure of the server itself: logged in full, described briefly to the caller.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        // Escaped: an error's text may quote what a caller or a plugin sent.
        tracing::error!(error = ?err.to_string(), "{context}");
        Self::ServerError(format!("{context} failed"))
    }
}

#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
    pub error_description: String,
}

/// RFC 9110 §10.2.3: how many seconds a 503 asks the caller to wait before trying again: a
/// busy password hasher frees up within a second, a database that restarts within a few.
const RETRY_AFTER_SECONDS: &str = "2";

/// Every 503 the server answers (JSON or page) says when to try again.
pub fn retry_after(response: &mut Response) {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody { error: self.code(), error_description: self.description() };
        let mut response = (status, Json(body)).into_response();
        retry_after(&mut response);
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            Self::InvalidClient { basic: true, .. } => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"portcullis\""));
            }
            Self::InvalidToken(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            }
            Self::InsufficientScope { needed, .. } => {
                let value = format!("Bearer error=\"insufficient_scope\", scope=\"{needed}\"");
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            Self::UseDpopNonce { nonce, .. } => {
                if let Ok(value) = HeaderValue::from_str(nonce) {
                    headers.insert(DPOP_NONCE_HEADER, value);
                }
            }
            _ => {}
        }
        response
    }
}

/// RFC 9449 §8.1: the response header carrying a DPoP nonce (`DPoP-Nonce`).
pub const DPOP_NONCE_HEADER: &str = "dpop-nonce";

/// The authentication scheme of a protected resource's challenge (RFC 6750 §3, RFC 9449 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    Bearer,
    Dpop,
}

impl OAuthError {
    /// How a protected resource answers this error to a request whose token is used with
    /// `challenge`'s scheme. RFC 9449 §7.1: an invalid token, DPoP proof or nonce of a DPoP
    /// request is 401 with a `DPoP` challenge naming the error and the algorithms taken
    /// (and, §9, a fresh nonce in `DPoP-Nonce`); a bearer request is answered as RFC 6750 §3 says.
    pub fn at_resource(self, challenge: Challenge) -> Response {
        if challenge == Challenge::Bearer
            || !matches!(
                self,
                Self::InvalidToken(_)
                    | Self::InvalidDpopProof(_)
                    | Self::UseDpopNonce { .. }
                    | Self::InsufficientScope { .. }
            )
        {
            return self.into_response();
        }
        let nonce = match &self {
            Self::UseDpopNonce { nonce, .. } => HeaderValue::from_str(nonce).ok(),
            _ => None,
        };
        let scope = match &self {
            Self::InsufficientScope { needed, .. } => format!(", scope=\"{needed}\""),
            _ => String::new(),
        };
        let value =
            format!("DPoP error=\"{}\"{scope}, algs=\"{}\"", self.code(), crate::crypto::PROOF_ALGORITHMS.join(" "));
        let body = ErrorBody { error: self.code(), error_description: self.description() };
        // 401, or 403 for a token that is good but lacks the scope (RFC 6750 §3.1).
        let status =
            if matches!(self, Self::InsufficientScope { .. }) { self.status() } else { StatusCode::UNAUTHORIZED };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(nonce) = nonce {
            headers.insert(DPOP_NONCE_HEADER, nonce);
        }
        response
    }
}

/// The status of the account's password page shown again for `problem`: a wrong current
/// password as a wrong sign-in's login page (401), a new password the rules refuse 400,
/// throttled 429, a busy hasher 503.
pub(crate) fn password_page_status(problem: crate::plugin::consent::PasswordProblem) -> StatusCode {
    use crate::plugin::consent::PasswordProblem as P;
    match problem {
        P::WrongCurrentPassword => StatusCode::UNAUTHORIZED,
        P::Mismatch | P::TooShort(_) | P::TooLong(_) => StatusCode::BAD_REQUEST,
        P::Throttled => StatusCode::TOO_MANY_REQUESTS,
        P::Busy => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The status of the second-factor page shown again for `problem`: a wrong code or a passkey
/// that did not verify as a wrong password's login page (401), throttled 429, busy 503.
pub(crate) fn factor_page_status(problem: crate::plugin::consent::FactorProblem) -> StatusCode {
    use crate::plugin::consent::FactorProblem as P;
    match problem {
        P::WrongCode | P::PasskeyFailed => StatusCode::UNAUTHORIZED,
        P::Throttled => StatusCode::TOO_MANY_REQUESTS,
        P::Busy => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl From<crate::storage::StorageError> for OAuthError {
    fn from(e: crate::storage::StorageError) -> Self {
        match e {
            crate::storage::StorageError::Unavailable(msg) => {
                tracing::error!(error = %msg, "storage unavailable");
                Self::TemporarilyUnavailable("storage is unavailable".into())
            }
            other => Self::internal("storage", other),
        }
    }
}

impl From<crate::factors::FactorError> for OAuthError {
    fn from(e: crate::factors::FactorError) -> Self {
        use crate::factors::FactorError as F;
        match e {
            F::Storage(e) => e.into(),
            F::NotApplicable(why) => Self::InvalidRequest(why.into()),
            e => Self::internal("second factor", e),
        }
    }
}

impl From<crate::keys::KeyError> for OAuthError {
    fn from(e: crate::keys::KeyError) -> Self {
        match e {
            crate::keys::KeyError::Storage(e) => e.into(),
            e => Self::internal("signing", e),
        }
    }
}

impl From<crate::plugin::PluginError> for OAuthError {
    fn from(e: crate::plugin::PluginError) -> Self {
        Self::internal("policy plugin", e)
    }
}

/// A body that could not be read: too large is 413, anything else `invalid_request` 400;
/// never a 500.
impl From<axum::extract::rejection::BytesRejection> for OAuthError {
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        Self::unreadable_body(e.status(), e.body_text())
    }
}

/// A rejected form or JSON body (axum's extractor rejection) is `invalid_request`, never a 500.
impl From<axum::extract::rejection::FormRejection> for OAuthError {
    fn from(e: axum::extract::rejection::FormRejection) -> Self {
        Self::unreadable_body(e.status(), format!("malformed request body: {}", e.body_text()))
    }
}

impl From<axum::extract::rejection::QueryRejection> for OAuthError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Self::InvalidRequest(format!("malformed query: {}", e.body_text()))
    }
}

impl OAuthError {
    fn unreadable_body(status: StatusCode, text: String) -> Self {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Self::BodyTooLarge(format!(
                "the request body is larger than the {} bytes this endpoint reads",
                crate::limits::OAUTH_BODY_BYTES
            ))
        } else {
            Self::InvalidRequest(text)
        }
    }
}

/// An error of the admin API (`/admin/v1`): its code and status are chosen here as well. The
/// body is `{"error", "error_description"}`, with `field` when one field of the request is
/// wrong; the codes are those the OpenAPI document lists.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    InvalidRequest(String),
    /// A body larger than the admin API reads (413).
    #[error("{0}")]
    BodyTooLarge(String),
    #[error("`{field}`: {reason}")]
    InvalidField { field: &'static str, reason: String },
    /// No bearer token at all (RFC 6750 §3.1: a challenge without an error code).
    #[error("a bearer token is required")]
    MissingToken,
    #[error("{0}")]
    InvalidToken(String),
    /// RFC 6750 §3.1; `needed` is named in the challenge when another token would do.
    #[error("{reason}")]
    InsufficientScope { needed: Option<&'static str>, reason: String },
    /// The caller's roles do not allow it.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The store cannot be reached for now; the request may be tried again.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    ServerError(String),
    /// A scope policy a simulation asked failed as it would on a real request: that
    /// request's OAuth error, with its code and status (a trap is `server_error` 500, a
    /// policy that is not loaded 503).
    #[error("{0}")]
    Policy(OAuthError),
}

impl AdminError {
    /// A failure of the server itself: logged in full, described briefly to the caller.
    pub fn failed(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!(error = ?err.to_string(), "admin {what} failed");
        Self::ServerError(format!("{what} failed"))
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::BodyTooLarge(_) | Self::InvalidField { .. } => "invalid_request",
            Self::MissingToken | Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Unavailable(_) => "temporarily_unavailable",
            Self::ServerError(_) => "server_error",
            Self::Policy(e) => e.code(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Policy(e) => e.status(),
            Self::InvalidRequest(_) | Self::InvalidField { .. } => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MissingToken | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope { .. } | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::ServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({"error": self.code(), "error_description": self.to_string()});
        if let Self::InvalidField { field, .. } = &self {
            body["field"] = (*field).into();
        }
        let mut response = (self.status(), Json(body)).into_response();
        retry_after(&mut response);
        let challenge = match &self {
            Self::MissingToken => Some("Bearer".to_owned()),
            Self::InvalidToken(_) => Some("Bearer error=\"invalid_token\"".to_owned()),
            Self::InsufficientScope { needed: Some(scope), .. } => {
                Some(format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""))
            }
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

impl From<crate::storage::StorageError> for AdminError {
    fn from(e: crate::storage::StorageError) -> Self {
        match e {
            crate::storage::StorageError::Unavailable(msg) => {
                tracing::error!(error = %msg, "storage unavailable");
                Self::Unavailable("storage is unavailable".into())
            }
            other => Self::failed("storage", other),
        }
    }
}

impl From<crate::keys::KeyError> for AdminError {
    fn from(e: crate::keys::KeyError) -> Self {
        match e {
            crate::keys::KeyError::Storage(e) => e.into(),
            e => Self::failed("key rotation", e),
        }
    }
}

/// `/health/ready`'s answer (`health.rs`): 200 while no part fails, else 503 (with
/// `Retry-After`, as every 503), the report as its body either way. Never cached.
pub fn readiness(ready: bool, report: impl IntoResponse) -> Response {
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut response = (status, report).into_response();
    retry_after(&mut response);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
