//! RFC 6749 §2.3 Client Authentication: `client_secret_basic` (§2.3.1, HTTP Basic with
//! form-urlencoded id and secret), `client_secret_post` (secret in the body), `none` (a
//! public client names itself with `client_id`), and a JWT the client signs (RFC 7523 §2.2,
//! §3; OIDC Core §9): `client_secret_jwt` (HMAC with its secret) and `private_key_jwt` (its
//! registered keys), each `jti` accepted once. A client registered for a method uses it.

use std::sync::Arc;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::Protocol;
use super::params::Params;
use super::profiles::{Endpoint, Profile};
use super::tokens::Audience;
use crate::crypto::hash_secret;
use crate::error::OAuthError;
use crate::jws::{Jws, JwsError};
use crate::limits::{MAX_CLIENT_ASSERTION_BYTES, MAX_CLIENT_ASSERTION_LIFETIME, MAX_CLIENT_ID_BYTES};
use crate::model::{Client, TokenEndpointAuthMethod, UsedAssertion};
use crate::storage::{ClientContext, StorageError, write};

pub struct Authenticated {
    pub client: Client,
    /// The client with its template, organization and instance, for its scope policy.
    pub context: Arc<ClientContext>,
}

/// Authenticates the client of a token, introspection or revocation request.
pub async fn authenticate(
    app: &Protocol,
    headers: &HeaderMap,
    params: &mut Params,
) -> Result<Authenticated, OAuthError> {
    let basic = basic_credentials(headers)?;
    if params.get("client_assertion_type").is_some() || params.get("client_assertion").is_some() {
        if basic.is_some() || params.get("client_secret").is_some() {
            return Err(OAuthError::InvalidRequest("use one client authentication method, not two".into()));
        }
        // Boxed: an assertion's future (its keys perhaps fetched from the client's
        // `jwks_uri`) is several times larger than the secret's, and every request's future
        // would be as large.
        return Box::pin(assertion(app, params)).await;
    }
    let body_secret = params.take("client_secret");
    let body_id = params.take("client_id");
    let used_basic = basic.is_some();
    let (client_id, secret) = match (basic, body_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::InvalidRequest("use one client authentication method, not two".into()));
        }
        (Some((id, secret)), None) => {
            if body_id.as_deref().is_some_and(|b| b != id) {
                return Err(OAuthError::InvalidRequest("`client_id` differs from the authenticated client".into()));
            }
            (id, Some(secret))
        }
        (None, secret) => match body_id {
            Some(id) => (id, secret),
            None => return Err(OAuthError::invalid_client("client authentication is required", false)),
        },
    };
    let fail = || OAuthError::invalid_client("client authentication failed", used_basic);
    if client_id.len() > MAX_CLIENT_ID_BYTES {
        return Err(OAuthError::invalid_client(too_long_id(), used_basic));
    }
    let context = app.storage.client_context(&client_id).await?.ok_or_else(fail)?;
    let client = context.client.clone();
    if client.is_expired(app.clock.now()) {
        return Err(fail());
    }
    let method = client.doc.token_endpoint_auth_method;
    let allowed = match method {
        None => true,
        Some(TokenEndpointAuthMethod::ClientSecretBasic) => used_basic || secret.is_none(),
        Some(TokenEndpointAuthMethod::ClientSecretPost) => !used_basic,
        Some(TokenEndpointAuthMethod::None) => secret.is_none(),
        // Registered to sign its assertions: nothing else authenticates it.
        Some(TokenEndpointAuthMethod::ClientSecretJwt | TokenEndpointAuthMethod::PrivateKeyJwt) => false,
    };
    if !allowed {
        return Err(fail());
    }
    match (&client.secret_hash, secret) {
        (Some(hash), Some(secret)) if crate::crypto::verify_secret(&secret, hash) => {}
        // A rotated secret, still in its grace.
        (Some(_), Some(secret)) if previous_secret_accepted(&client, &secret, app.clock.now()) => {}
        (None, None) if client.is_public() => {}
        _ => return Err(fail()),
    }
    Ok(Authenticated { client, context })
}

fn too_long_id() -> String {
    format!("a client id is at most {MAX_CLIENT_ID_BYTES} bytes long")
}

/// RFC 7523 §2.2: the only `client_assertion_type` this server takes.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The claims RFC 7523 §3 requires of a client assertion.
#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    jti: String,
}

/// RFC 7523 §3: a JWT the client signed, whose `iss` and `sub` are its id, whose `aud` names
/// this server, which has not expired and whose `jti` was not seen before.
async fn assertion(app: &Protocol, params: &mut Params) -> Result<Authenticated, OAuthError> {
    let fail = |why: &str| OAuthError::invalid_client(format!("client assertion: {why}"), false);
    if params.get("client_assertion_type") != Some(JWT_BEARER) {
        return Err(OAuthError::InvalidRequest(format!("`client_assertion_type` must be {JWT_BEARER}")));
    }
    let token = params.take("client_assertion").ok_or_else(|| fail("`client_assertion` is missing"))?;
    if token.len() > MAX_CLIENT_ASSERTION_BYTES {
        return Err(fail("too long"));
    }
    // Who it claims to be, read before the signature is checked, only to find the key.
    let jws = Jws::parse(&token).map_err(|e| match e {
        JwsError::Algorithm => fail("its `alg` is not one this server verifies"),
        _ => fail("not a JWT"),
    })?;
    let unverified: AssertionClaims =
        jws.claims().map_err(|_| fail("its claims are not RFC 7523's (iss, sub, aud, exp, jti)"))?;
    let client_id = unverified.sub.clone();
    if client_id.len() > MAX_CLIENT_ID_BYTES {
        return Err(fail(&too_long_id()));
    }
    if params.take("client_id").is_some_and(|id| id != client_id) {
        return Err(OAuthError::InvalidRequest("`client_id` differs from the assertion's `sub`".into()));
    }
    let context = app.storage.client_context(&client_id).await?.ok_or_else(|| fail("unknown client"))?;
    let client = context.client.clone();
    if client.is_expired(app.clock.now()) {
        return Err(fail("the client has expired"));
    }
    let keys = verification_keys(app, &client, jws.algorithm(), jws.text("kid")).await.map_err(fail)?;
    let claims: AssertionClaims = jws.verify(&keys).map_err(|_| fail("the signature does not verify"))?;
    if claims.iss != client.id || claims.sub != client.id {
        return Err(fail("`iss` and `sub` must be the client's id"));
    }
    if !claims.aud.as_slice().iter().any(|a| names_this_server(app, a)) {
        return Err(fail("`aud` must name this server (its issuer or the endpoint's URL)"));
    }
    let now = app.clock.now();
    if claims.exp <= now {
        return Err(fail("it has expired"));
    }
    if claims.exp > now + MAX_CLIENT_ASSERTION_LIFETIME {
        return Err(fail("`exp` is too far ahead"));
    }
    // Item 7: a `jti` once per client, remembered until the assertion expires.
    let seen = UsedAssertion { id: hash_secret(&format!("{}\n{}", client.id, claims.jti)), expires_at: claims.exp };
    match app.storage.apply(vec![write::create(&seen)?]).await {
        Ok(()) => {}
        Err(StorageError::Conflict(_) | StorageError::Duplicate) => return Err(fail("its `jti` was already used")),
        Err(e) => return Err(e.into()),
    }
    Ok(Authenticated { client, context })
}

/// Whether `secret` is the client's previous secret and its grace (after a rotation) has
/// not ended at `now`.
fn previous_secret_accepted(client: &Client, secret: &str, now: i64) -> bool {
    client
        .doc
        .previous_secret
        .as_ref()
        .is_some_and(|p| now < p.expires_at && crate::crypto::verify_secret(secret, &p.hash))
}

/// The keys a JWT the client signed with `alg` verifies against: its secret, for a
/// `client_secret_jwt` client and an HMAC; a key of its registered JWK Set (the one named
/// `kid`, if named), for a `private_key_jwt` client and anything else. Or why there are none.
pub(super) async fn verification_keys(
    app: &Protocol,
    client: &Client,
    alg: Algorithm,
    kid: Option<&str>,
) -> Result<Vec<DecodingKey>, &'static str> {
    let hmac = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
    match client.doc.token_endpoint_auth_method {
        Some(TokenEndpointAuthMethod::ClientSecretJwt) if hmac => {
            let sealed = client.doc.sealed_secret.as_deref().ok_or("the client has no secret")?;
            let secret = app.keys.open_client_secret(&client.id, sealed).ok_or("the client has no secret")?;
            let mut keys = vec![DecodingKey::from_secret(&secret)];
            // A rotated secret, still in its grace.
            if let Some(previous) = client.doc.previous_secret.as_ref().filter(|p| app.clock.now() < p.expires_at)
                && let Some(secret) =
                    previous.sealed.as_deref().and_then(|s| app.keys.open_client_secret(&client.id, s))
            {
                keys.push(DecodingKey::from_secret(&secret));
            }
            Ok(keys)
        }
        Some(TokenEndpointAuthMethod::ClientSecretJwt) => {
            Err("a client_secret_jwt client signs with HS256, HS384 or HS512")
        }
        Some(TokenEndpointAuthMethod::PrivateKeyJwt) if !hmac => {
            let set = super::client_jwks::key_set(app, client, kid).await?;
            Ok(set
                .keys
                .iter()
                .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
                .filter_map(|k| DecodingKey::from_jwk(k).ok())
                .collect())
        }
        Some(TokenEndpointAuthMethod::PrivateKeyJwt) => Err("a private_key_jwt client signs with its private key"),
        _ => Err("the client has no secret or keys registered to sign with"),
    }
}

/// An `aud` naming this server: its issuer, or one of its endpoints' URLs in any layout.
fn names_this_server(app: &Protocol, aud: &str) -> bool {
    let issuer = app.config.issuer();
    if aud == issuer {
        return true;
    }
    let Some(path) = aud.strip_prefix(issuer) else { return false };
    [Profile::Native, Profile::Elma365, Profile::Datev, Profile::Deployteq]
        .iter()
        .any(|p| Endpoint::ALL.iter().any(|e| p.path(*e) == path))
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))`, or none.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else { return Ok(None) };
    let bad = || OAuthError::invalid_client("malformed HTTP Basic credentials", true);
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = value.split_once(' ') else { return Err(bad()) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| bad())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}
