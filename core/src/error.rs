//! Every OAuth error code the server sends is chosen here, and only here.
//!
//! Protocol modules return [`OAuthError`]; lower layers (storage, plugins, keys) have their
//! own error types that convert into it. RFC 6749 §5.2 (token endpoint), §4.1.2.1
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
            Self::TemporarilyUnavailable(_) | Self::TooManyAttempts(_) => "temporarily_unavailable",
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
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            // `login_required` is redirected by the authorization endpoint; as a status it
            // answers the account API's calls without a session.
            Self::InvalidClient { .. } | Self::InvalidToken(_) | Self::LoginRequired(_) => StatusCode::UNAUTHORIZED,
            Self::AccessDenied(_) | Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::ServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody { error: self.code(), error_description: self.description() };
        let mut response = (status, Json(body)).into_response();
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
            // RFC 9110 §10.2.3: when to try again; what is busy frees up within a second or so.
            Self::TemporarilyUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
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

impl From<crate::plugin::PluginError> for OAuthError {
    fn from(e: crate::plugin::PluginError) -> Self {
        Self::internal("policy plugin", e)
    }
}

impl From<crate::keys::KeyError> for OAuthError {
    fn from(e: crate::keys::KeyError) -> Self {
        Self::internal("signing", e)
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
