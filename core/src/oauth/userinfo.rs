//! OpenID Connect Core §5.3 UserInfo Endpoint, GET and POST, with the bearer token in the
//! `Authorization` header or (POST) the form body (RFC 6750 §2.1, §2.2), or a DPoP-bound
//! token with the `DPoP` scheme and a proof (RFC 9449 §7).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::App;
use super::cors::CrossOrigin;
use super::dpop;
use super::params::Params;
use super::tokens::AccessClaims;
use crate::error::{Challenge, OAuthError};
use crate::model::{Grant, User};

pub async fn get(State(app): State<App>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let request = Request { method: &method, path: uri.path(), headers: &headers };
    respond(&app, credential(&headers, None), request).await
}

pub async fn post(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return OAuthError::from(e).into_response(),
    };
    let params = Params::parse(&body).ok();
    let request = Request { method: &method, path: uri.path(), headers: &headers };
    respond(&app, credential(&headers, params.as_ref()), request).await
}

/// The access token and the scheme it is presented with: `Authorization: Bearer` or (RFC
/// 9449 §7.1) `Authorization: DPoP`, or `access_token` in the form body (bearer).
enum Credential {
    Bearer(String),
    Dpop(String),
}

/// What a DPoP proof at this endpoint is checked against.
struct Request<'a> {
    method: &'a Method,
    path: &'a str,
    headers: &'a HeaderMap,
}

fn credential(headers: &HeaderMap, form: Option<&Params>) -> Option<Credential> {
    let from_header =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.split_once(' ')).and_then(
            |(scheme, t)| {
                let token = t.trim().to_owned();
                if scheme.eq_ignore_ascii_case("bearer") {
                    Some(Credential::Bearer(token))
                } else if scheme.eq_ignore_ascii_case("dpop") {
                    Some(Credential::Dpop(token))
                } else {
                    None
                }
            },
        );
    from_header.or_else(|| form.and_then(|f| f.get("access_token")).map(|t| Credential::Bearer(t.to_owned())))
}

/// Claims about a person: never stored by a cache (RFC 9111 §5.2.2.5).
async fn respond(app: &App, credential: Option<Credential>, request: Request<'_>) -> Response {
    let mut cross_origin = CrossOrigin::of(request.headers);
    let mut response = match handle(app, credential, request, &mut cross_origin).await {
        Ok(v) => Json(v).into_response(),
        Err((e, challenge)) => e.at_resource(challenge),
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    cross_origin.answer(response)
}

/// The user's claims, or the error and the scheme of the challenge it is answered with: DPoP
/// for a request made with it or a token bound to a key.
async fn handle(
    app: &App,
    credential: Option<Credential>,
    request: Request<'_>,
    cross_origin: &mut CrossOrigin,
) -> Result<Value, (OAuthError, Challenge)> {
    let (token, challenge) = match credential {
        Some(Credential::Bearer(token)) => (token, Challenge::Bearer),
        Some(Credential::Dpop(token)) => (token, Challenge::Dpop),
        None => {
            return Err((OAuthError::InvalidToken("a bearer access token is required".into()), Challenge::Bearer));
        }
    };
    let claims =
        super::access_token::validate(app, &token, None).await.map_err(|e| (e, challenge))?.ok_or_else(|| {
            (OAuthError::InvalidToken("the access token is invalid, expired or revoked".into()), challenge)
        })?;
    // The client a browser application reads userinfo as is the access token's.
    cross_origin.client_named(app, &claims.client_id).await;
    // RFC 9449 §7.1, §7.2: a token bound to a key is used with the DPoP scheme and a proof of
    // that key for this request, never as a bearer token; an unbound one only as a bearer token.
    let dpop = |e: OAuthError| (e, Challenge::Dpop);
    match (&claims.cnf, challenge) {
        (Some(cnf), Challenge::Dpop) => {
            let target =
                dpop::Target { method: request.method.as_str(), path: request.path, access_token: Some(&token) };
            let jkt =
                dpop::check(app, request.headers, target).await.map_err(|e| dpop(e.into()))?.ok_or_else(|| {
                    dpop(dpop::ProofError::Required("the access token is DPoP-bound (RFC 9449 §7.1)").into())
                })?;
            if jkt.as_str() != cnf.jkt {
                return Err(dpop(dpop::ProofError::TokenKey.into()));
            }
        }
        (Some(_), Challenge::Bearer) => {
            return Err(dpop(OAuthError::InvalidToken(
                "the access token is DPoP-bound: present it with the DPoP scheme and a proof (RFC 9449 §7.1)".into(),
            )));
        }
        (None, Challenge::Dpop) => {
            return Err(dpop(OAuthError::InvalidToken(
                "the access token is not DPoP-bound: present it as a bearer token".into(),
            )));
        }
        (None, Challenge::Bearer) => {}
    }
    user_claims(app, &claims).await.map_err(|e| (e, challenge))
}

async fn user_claims(app: &App, claims: &AccessClaims) -> Result<Value, OAuthError> {
    // RFC 9068 §4: a token for another audience (token exchange's) is not for this endpoint.
    if !claims.aud.contains(app.config.issuer()) {
        return Err(OAuthError::InvalidToken("the access token is for another audience".into()));
    }
    if !claims.scopes().any(|s| s == "openid") {
        return Err(OAuthError::InsufficientScope {
            needed: "openid",
            reason: "the token was not granted the `openid` scope".into(),
        });
    }
    let gid =
        claims.gid.as_deref().ok_or_else(|| OAuthError::InvalidToken("the token does not belong to a user".into()))?;
    let (user, grant) = app.storage.get_pair::<User, Grant>(&claims.sub, gid).await?;
    let user = user.ok_or_else(|| OAuthError::InvalidToken("the token does not belong to a user".into()))?;
    let mut out = super::tokens::user_claims(&user, claims.scopes(), app.config.tokens.roles_scope.as_deref());
    // Claims the scope policy released for userinfo (OIDC Core §5.3.2).
    for c in grant.iter().flat_map(|g| &g.doc.claims).filter(|c| c.userinfo) {
        out.entry(c.name.clone()).or_insert_with(|| c.value.clone());
    }
    out.insert("sub".into(), user.id.clone().into());
    Ok(Value::Object(out))
}
