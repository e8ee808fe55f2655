//! OIDC Core §6.1 Passing a Request Object by Value: an authorization request's parameters
//! as a JWT the client signed, in `request`. It is signed with a key of the client's JWK Set
//! (a `private_key_jwt` client) or with HMAC and the client's secret (a `client_secret_jwt`
//! client, whose secret the server can open). An unsigned one (`alg: none`) is taken only
//! from a client registered with `request_object_signing_alg: none` (OIDC Registration §2),
//! which then sends no other kind; a client registered with an algorithm uses that one.
//! §6.2 Passing a Request Object by Reference: `request_uri` names where to fetch it, one
//! of the `request_uris` the client registered (Registration §2; compared without the
//! fragment), fetched through [`crate::outbound`] (https or loopback http, a deadline, a
//! size cap, no redirects). A `request_uri` of the pushed authorization request endpoint
//! (RFC 9126) never reaches here: `authorize` reads those back from storage.
//! §6.3: its parameters win over the query's; `client_id` and `response_type`, where both
//! give them, must agree.

use serde_json::{Map, Value};

use super::Protocol;
use super::client_auth::verification_keys;
use super::params::{Params, words};
use crate::error::OAuthError;
use crate::jws::{Jws, JwsError};
use crate::limits::{MAX_REQUEST_OBJECT_BYTES, MAX_REQUEST_URI_BYTES};

/// Claims of the JWT itself, not parameters of the request.
const JWT_CLAIMS: &[&str] = &["iss", "aud", "exp", "iat", "nbf", "jti"];

/// `params` with its request object's parameters (`request`, or fetched from `request_uri`)
/// laid over them; unchanged without one. An error comes with the `ui_locales` to show it
/// in (no redirect URI is trusted yet).
pub async fn expand(app: &Protocol, mut params: Params) -> Result<Params, (OAuthError, Vec<String>)> {
    let locales = words(params.get("ui_locales"));
    let jwt = match (params.get("request").is_some(), params.take("request_uri")) {
        (true, Some(_)) => {
            let e = OAuthError::InvalidRequest("send `request` or `request_uri`, not both".into());
            return Err((e, locales));
        }
        (false, Some(uri)) => match fetch(app, &params, &uri).await {
            Ok(jwt) => jwt,
            Err(e) => return Err((e, locales)),
        },
        (_, None) => match params.take("request") {
            Some(jwt) => jwt,
            None => return Ok(params),
        },
    };
    open(app, &params, &jwt)
        .await
        .map(|claims| {
            for (name, value) in claims {
                let value = match value {
                    Value::String(s) => s,
                    Value::Null => continue,
                    // `claims` (OIDC Core §5.5) and any other structured value, as JSON text.
                    other => other.to_string(),
                };
                params.insert(&name, value);
            }
            params
        })
        .map_err(|e| (e, locales))
}

/// §6.2: the request object at `uri`, a URI the client registered.
async fn fetch(app: &Protocol, params: &Params, uri: &str) -> Result<String, OAuthError> {
    let bad = |why: String| OAuthError::InvalidRequestUri(format!("request_uri: {why}"));
    if uri.len() > MAX_REQUEST_URI_BYTES {
        return Err(bad(format!("longer than {MAX_REQUEST_URI_BYTES} bytes")));
    }
    let client_id = params.client_id()?;
    let context = app.storage.client_context(client_id).await?.ok_or_else(|| bad("unknown client".into()))?;
    let without_fragment = |u: &str| u.split('#').next().unwrap_or_default().to_owned();
    if !context.client.doc.request_uris.iter().any(|r| without_fragment(r) == without_fragment(uri)) {
        return Err(bad("not one of the `request_uris` this client registered".into()));
    }
    let url = url::Url::parse(uri).map_err(|e| bad(format!("not a URL: {e}")))?;
    let body = app
        .outbound
        .get(&url, "application/oauth-authz-req+jwt, application/jwt", MAX_REQUEST_OBJECT_BYTES)
        .await
        .map_err(|e| bad(format!("fetching it: {e}")))?;
    let text = String::from_utf8(body).map_err(|_| bad("its content is not text".into()))?;
    Ok(text.trim().to_owned())
}

async fn open(app: &Protocol, params: &Params, jwt: &str) -> Result<Map<String, Value>, OAuthError> {
    let bad = |why: &str| OAuthError::InvalidRequestObject(format!("request object: {why}"));
    if jwt.len() > MAX_REQUEST_OBJECT_BYTES {
        return Err(bad("too long"));
    }
    // OAuth 2.0 still needs `client_id` outside (§6.1): it says whose keys to verify with.
    let client_id = params.client_id()?;
    let context = app.storage.client_context(client_id).await?.ok_or_else(|| bad("unknown client"))?;
    let registered = context.client.doc.request_object_signing_alg.as_deref();
    let claims = if registered == Some("none") {
        unsigned(jwt).ok_or_else(|| bad("this client's request objects are unsigned (`alg: none`, no signature)"))?
    } else {
        let jws = Jws::parse(jwt).map_err(|_| bad("not a signed JWT (this client signs them)"))?;
        // `EdDSA` and RFC 9864's `Ed25519` name one algorithm, whichever the client registered.
        if registered.is_some_and(|alg| crate::jws::algorithm(alg) != Some(jws.algorithm())) {
            return Err(bad("signed with another algorithm than the client registered"));
        }
        let keys = verification_keys(app, &context.client, jws.algorithm(), jws.text("kid")).await.map_err(bad)?;
        jws.verify(&keys).map_err(|e| match e {
            JwsError::Signature => bad("the signature does not verify"),
            _ => bad("its claims are not a JSON object"),
        })?
    };
    let issuer = app.config.issuer();
    let now = app.clock.now();
    if claims.get("iss").is_some_and(|iss| iss != client_id) {
        return Err(bad("`iss` must be the client's id"));
    }
    if let Some(aud) = claims.get("aud") {
        let named = match aud {
            Value::String(a) => a == issuer,
            Value::Array(a) => a.iter().any(|a| a == issuer),
            _ => false,
        };
        if !named {
            return Err(bad("`aud` must be this server's issuer"));
        }
    }
    if claims.get("exp").and_then(Value::as_i64).is_some_and(|exp| exp <= now) {
        return Err(bad("it has expired"));
    }
    if claims.get("nbf").and_then(Value::as_i64).is_some_and(|nbf| nbf > now + 5) {
        return Err(bad("it is not valid yet"));
    }
    if claims.get("client_id").is_some_and(|c| c != client_id) {
        return Err(bad("its `client_id` differs from the request's"));
    }
    if let (Some(inside), Some(outside)) = (claims.get("response_type"), params.get("response_type"))
        && inside != outside
    {
        return Err(bad("its `response_type` differs from the request's"));
    }
    if claims.contains_key("request") || claims.contains_key("request_uri") {
        return Err(bad("a request object cannot hold another"));
    }
    Ok(claims.into_iter().filter(|(k, _)| !JWT_CLAIMS.contains(&k.as_str())).collect())
}

/// An unsigned JWT (RFC 7519 §6): a header saying `alg: none`, the claims, no signature.
fn unsigned(jwt: &str) -> Option<Map<String, Value>> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = jwt.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !signature.is_empty() {
        return None;
    }
    let header: Map<String, Value> = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header.get("alg").and_then(Value::as_str) != Some("none") {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}
