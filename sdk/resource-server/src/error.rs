//! Why a request was refused, and the RFC 6750 §3 answer for each reason.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The realm named in `WWW-Authenticate` unless [`Validator::with_realm`](crate::Validator::with_realm)
/// sets another.
pub const DEFAULT_REALM: &str = "api";

/// Why a token (or the request carrying it) was not accepted.
///
/// Each variant maps to one answer ([`Error::to_response`]): its status, the RFC 6750 §3.1
/// error code in `WWW-Authenticate`, and a JSON body `{"error": …, "error_description": …}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No bearer token was sent (no `Authorization` header, or another scheme): 401 with
    /// `WWW-Authenticate: Bearer realm="…"` and no error code (RFC 6750 §3.1).
    #[error("no bearer token was sent")]
    MissingToken,
    /// The request is malformed beyond its token, e.g. two `Authorization` headers: 400
    /// `invalid_request`.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The token is malformed, badly signed, of the wrong type, from another issuer or
    /// audience, revoked or otherwise not active: 401 `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The token has expired (beyond the leeway): 401 `invalid_token`.
    #[error("the token has expired")]
    Expired,
    /// The token is valid but lacks a required scope: 403 `insufficient_scope`, naming the
    /// scopes the resource needs (space separated).
    #[error("the token lacks the scope `{required}`")]
    InsufficientScope {
        /// Every scope the resource needs, space separated.
        required: String,
    },
    /// The token could not be checked: the JWKS or the introspection endpoint did not answer
    /// usefully. 503, since the token may well be good; the details stay in the log.
    #[error("the token could not be checked: {0}")]
    Unavailable(String),
    /// A handler asked for the validated claims, but no [`require_scope`](crate::require_scope)
    /// layer validated the request: a mistake in the router, answered 500.
    #[error("no validated claims on this request; mount `require_scope` in front of the handler")]
    NotValidated,
}

impl Error {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::MissingToken | Error::InvalidToken(_) | Error::Expired => StatusCode::UNAUTHORIZED,
            Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Error::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::NotValidated => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 6750 §3.1 error code, when the answer carries one (not when no token was sent).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Error::InvalidRequest(_) => Some("invalid_request"),
            Error::InvalidToken(_) | Error::Expired => Some("invalid_token"),
            Error::InsufficientScope { .. } => Some("insufficient_scope"),
            Error::MissingToken | Error::Unavailable(_) | Error::NotValidated => None,
        }
    }

    /// What the caller is told: the reason for a refused token, nothing about this server's
    /// own troubles.
    pub fn description(&self) -> String {
        match self {
            Error::MissingToken => "a bearer token is required".into(),
            Error::InvalidRequest(m) | Error::InvalidToken(m) => m.clone(),
            Error::Expired => "the token has expired".into(),
            Error::InsufficientScope { required } => format!("the token lacks the scope `{required}`"),
            Error::Unavailable(_) => "the token could not be checked; try again later".into(),
            Error::NotValidated => "the request was not authenticated".into(),
        }
    }

    /// The RFC 6750 §3 answer: status, `WWW-Authenticate` (for 400, 401 and 403) and a JSON
    /// body `{"error": …, "error_description": …}`.
    pub fn to_response(&self, realm: &str) -> Response {
        let status = self.status();
        let description = self.description();
        let body_code = match self {
            Error::MissingToken => "unauthorized",
            Error::Unavailable(_) => "temporarily_unavailable",
            Error::NotValidated => "server_error",
            e => e.code().unwrap_or("invalid_request"),
        };
        let mut body = json!({"error": body_code, "error_description": description});
        if let (Error::InsufficientScope { required }, Some(map)) = (self, body.as_object_mut()) {
            map.insert("scope".into(), required.as_str().into());
        }
        let mut response = (status, Json(body)).into_response();
        let challenge = match self {
            Error::Unavailable(_) | Error::NotValidated => None,
            _ => Some(self.challenge(realm, &description)),
        };
        if let Some(challenge) = challenge {
            let value = HeaderValue::from_str(&challenge).unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        if let Error::Unavailable(_) = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    /// `Bearer realm="…", error="…", error_description="…", scope="…"` (RFC 6750 §3).
    fn challenge(&self, realm: &str, description: &str) -> String {
        let mut challenge = format!("Bearer realm=\"{}\"", quoted(realm));
        if let Some(code) = self.code() {
            challenge.push_str(&format!(", error=\"{code}\", error_description=\"{}\"", quoted(description)));
        }
        if let Error::InsufficientScope { required } = self {
            challenge.push_str(&format!(", scope=\"{}\"", quoted(required)));
        }
        challenge
    }
}

impl IntoResponse for Error {
    /// The answer under [`DEFAULT_REALM`]; [`Error::to_response`] names another realm.
    fn into_response(self) -> Response {
        self.to_response(DEFAULT_REALM)
    }
}

/// The characters RFC 6750 §3 allows inside these quoted strings (%x20-21 / %x23-5B /
/// %x5D-7E): `"` and `\` become `'` and `/`, anything else outside the range is dropped.
fn quoted(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '"' => Some('\''),
            '\\' => Some('/'),
            ' '..='~' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn www_authenticate(e: &Error) -> String {
        let r = e.to_response("webhook");
        r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned()
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        assert_eq!(www_authenticate(&Error::MissingToken), r#"Bearer realm="webhook""#);
        assert_eq!(
            www_authenticate(&Error::Expired),
            r#"Bearer realm="webhook", error="invalid_token", error_description="the token has expired""#
        );
        assert_eq!(
            www_authenticate(&Error::InsufficientScope { required: "a b".into() }),
            r#"Bearer realm="webhook", error="insufficient_scope", error_description="the token lacks the scope `a b`", scope="a b""#
        );
        assert_eq!(Error::InvalidRequest("x".into()).to_response("r").status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn quoted_strings_stay_within_the_allowed_characters() {
        let e = Error::InvalidToken("bad \"quote\" \\ and\nnewline é".into());
        assert_eq!(
            www_authenticate(&e),
            r#"Bearer realm="webhook", error="invalid_token", error_description="bad 'quote' / andnewline ""#
        );
    }

    #[test]
    fn upstream_trouble_is_not_described_to_the_caller() {
        let e = Error::Unavailable("connect to 10.0.0.7:443: refused".into());
        let r = e.to_response("r");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert!(!e.description().contains("10.0.0.7"));
    }
}
