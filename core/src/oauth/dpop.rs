//! RFC 9449 OAuth 2.0 Demonstrating Proof of Possession (DPoP).
//!
//! A client proves it holds a private key by sending, with a request, a JWT it signed with
//! that key (a *DPoP proof*, §4.2) whose header carries the public key. This module checks
//! proofs (§4.3) for the token endpoint (§5) and for protected resources (§7: the proof
//! names the access token by its hash, `ath`), issues and checks nonces (§8) and computes
//! the key's thumbprint (RFC 7638), which binds what is issued to the key: an access token
//! carries it as `cnf.jkt` (§6.1), a public client's refresh token (§5) and an authorization
//! code asked for with `dpop_jkt` or pushed with a proof (§10, §10.1) keep it in their records.
//!
//! The choices the RFC leaves to the server (§11.1, §11.2): a proof is accepted while its
//! `iat` is within [`DPOP_IAT_WINDOW`] seconds of the server's clock, either side; its `jti` is
//! remembered (a `used-dpop-proof` record, keyed by the key's thumbprint and the `jti`)
//! until then, so a proof is accepted once. Nonces are off unless `dpop.require_nonce` is
//! set; they are stateless: the time a nonce was issued, sealed with the server's encryption
//! key, valid for [`NONCE_LIFETIME`] seconds on every replica sharing that key.

use axum::http::HeaderMap;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Protocol;
use crate::crypto::{hash_secret, s256};
use crate::error::OAuthError;
use crate::jws::{Jws, JwsError};
use crate::limits::{DPOP_IAT_WINDOW, MAX_DPOP_JTI_BYTES, MAX_DPOP_PROOF_BYTES};
use crate::model::{Client, UsedProof};
use crate::storage::{StorageError, write};

/// §4.1: the request header carrying a proof (`DPoP`; header names are case-insensitive).
pub const HEADER: &str = "dpop";

/// §4.2: the proof's `typ`.
const PROOF_TYPE: &str = "dpop+jwt";

/// §4.2, §5.1: the asymmetric algorithms a proof may be signed with (`none` and MACs never
/// are). Discovery's `dpop_signing_alg_values_supported`.
pub use crate::crypto::PROOF_ALGORITHMS as ALGORITHMS;

/// §8: how long a nonce is accepted after it was issued, in seconds.
pub const NONCE_LIFETIME: i64 = 300;

/// The JWK members that are a private or secret key's (RFC 7518 §6.2.2, §6.3.2, §6.4.1;
/// RFC 8037 §2): a proof's `jwk` carries none of them.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The RFC 7638 SHA-256 thumbprint of a proof's key, base64url: what an access token's
/// `cnf.jkt` (§6.1) and the `dpop_jkt` parameter (§10) hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jkt(String);

impl Jkt {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a proof, or a request's lack of one, is refused; `error.rs` gives each its error code.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("send one DPoP header, not {0}")]
    Several(usize),
    #[error("the DPoP proof is longer than {MAX_DPOP_PROOF_BYTES} bytes")]
    TooLong,
    #[error("the DPoP proof is not a JWT")]
    Malformed,
    #[error("the DPoP proof's `typ` must be `dpop+jwt`")]
    Type,
    #[error("the DPoP proof's `alg` must be one of {}", ALGORITHMS.join(", "))]
    Algorithm,
    #[error("the DPoP proof's header must carry its public key as `jwk`")]
    NoKey,
    #[error("the DPoP proof's `jwk` must be a public key; it carries private key material")]
    PrivateKey,
    #[error("the DPoP proof's `jwk` is not a usable {0} public key")]
    Key(&'static str),
    #[error("the DPoP proof's signature does not verify with its `jwk`")]
    Signature,
    #[error("the DPoP proof's claims must include `jti`, `htm`, `htu` and `iat`")]
    Claims,
    #[error("the DPoP proof's `htm` must be `{0}`")]
    Method(String),
    #[error("the DPoP proof's `htu` must be `{0}`")]
    Uri(String),
    #[error("the DPoP proof's `iat` is more than {DPOP_IAT_WINDOW} seconds from the server's time")]
    Stale,
    #[error("the DPoP proof's `jti` is missing or too long")]
    Jti,
    #[error("the DPoP proof was already used (its `jti` was seen)")]
    Replayed,
    #[error("the DPoP proof's `ath` must be the hash of the access token")]
    AccessTokenHash,
    /// §8: no nonce, or not one of ours that is still fresh; `fresh` is one to retry with.
    #[error("{reason}")]
    Nonce { reason: &'static str, fresh: String },
    /// §5.2, §5, §10, §7.1: a proof is needed here and none was sent.
    #[error("a DPoP proof is required: {0}")]
    Required(&'static str),
    /// §7.1: the proof's key is not the one the access token is bound to.
    #[error("the DPoP proof's key is not the key the access token is bound to")]
    TokenKey,
    /// §10.1: a pushed request's `dpop_jkt` is not its proof's key.
    #[error("`dpop_jkt` is not the thumbprint of the DPoP proof's key")]
    JktParameter,
    /// §5, §10: the refresh token or code is bound to another key than the proof's.
    #[error("the {} is bound to another key than the DPoP proof's", .0.name())]
    GrantKey(Bound),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What the proof must be for: the request it came with (§4.3 items 8, 9) and, at a
/// protected resource, the access token it presents (§7 `ath`).
pub struct Target<'a> {
    pub method: &'a str,
    /// The path the request came in at; the proof's `htu` is the issuer's URL with it.
    pub path: &'a str,
    pub access_token: Option<&'a str>,
}

/// §4.3: the request's proof, checked, and its key's thumbprint; none when the request has
/// no `DPoP` header.
pub async fn check(app: &Protocol, headers: &HeaderMap, target: Target<'_>) -> Result<Option<Jkt>, ProofError> {
    // Item 1: exactly one header.
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else { return Ok(None) };
    let more = values.count();
    if more > 0 {
        return Err(ProofError::Several(more + 1));
    }
    if value.len() > MAX_DPOP_PROOF_BYTES {
        return Err(ProofError::TooLong);
    }
    let proof = value.to_str().map_err(|_| ProofError::Malformed)?;
    let (jkt, claims) = verify(app, proof, &target)?;
    // §11.1: a proof is used once, checked last so that only a proof good in every other
    // respect is remembered.
    let seen = UsedProof {
        id: hash_secret(&format!("{}\n{}", jkt.as_str(), claims.jti)),
        expires_at: claims.iat + DPOP_IAT_WINDOW,
    };
    match app.storage.apply(vec![write::create(&seen)?]).await {
        Ok(()) => Ok(Some(jkt)),
        Err(StorageError::Conflict(_) | StorageError::Duplicate) => Err(ProofError::Replayed),
        Err(e) => Err(e.into()),
    }
}

/// §5: the proof of a token request, checked once before the grant, whose key the tokens
/// issued are bound to. §5.2: a client registered with `dpop_bound_access_tokens` sends one.
pub async fn token_request(
    app: &Protocol,
    headers: &HeaderMap,
    path: &str,
    client: &Client,
) -> Result<Option<Jkt>, ProofError> {
    let jkt = check(app, headers, Target { method: "POST", path, access_token: None }).await?;
    if jkt.is_none() && client.doc.dpop_bound_access_tokens {
        return Err(ProofError::Required("this client's access tokens are DPoP-bound (RFC 9449 §5.2)"));
    }
    Ok(jkt)
}

/// What a grant presents that may be bound to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// §5: a public client's refresh token, issued with a proof.
    RefreshToken,
    /// §10: a code asked for with `dpop_jkt`.
    Code,
}

impl Bound {
    fn name(self) -> &'static str {
        match self {
            Self::RefreshToken => "refresh token",
            Self::Code => "authorization code",
        }
    }
}

/// §5 (refresh tokens), §10 (codes): what is bound to a key (`bound`, its thumbprint) is used
/// only with a proof of that key.
pub fn check_binding(what: Bound, bound: Option<&str>, proof: Option<&Jkt>) -> Result<(), ProofError> {
    match (bound, proof) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(ProofError::Required(match what {
            Bound::RefreshToken => "the refresh token is bound to a key (RFC 9449 §5)",
            Bound::Code => "the authorization code is bound to a key (RFC 9449 §10)",
        })),
        (Some(bound), Some(proof)) if bound == proof.as_str() => Ok(()),
        (Some(_), Some(_)) => Err(ProofError::GrantKey(what)),
    }
}

/// A fresh nonce (§8.1) for the `DPoP-Nonce` header.
pub fn nonce(app: &Protocol) -> String {
    app.keys.seal_dpop_nonce(app.clock.now())
}

/// §4.2: the claims a proof carries.
#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// §4.3 items 2–12 but the `jti`'s: the proof's key's thumbprint and its claims.
fn verify(app: &Protocol, proof: &str, target: &Target<'_>) -> Result<(Jkt, Claims), ProofError> {
    // Item 2: a well-formed JWT. Its header is read as JSON, so that private members of
    // `jwk`, which jsonwebtoken's reading would drop, are seen.
    let jws = Jws::parse(proof).map_err(|e| match e {
        JwsError::Algorithm => ProofError::Algorithm,
        _ => ProofError::Malformed,
    })?;
    // Item 4: `typ`.
    if !jws.text("typ").is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYPE)) {
        return Err(ProofError::Type);
    }
    // Item 5: an asymmetric algorithm this server supports.
    if !ALGORITHMS.contains(&jws.alg()) {
        return Err(ProofError::Algorithm);
    }
    let alg = jws.algorithm();
    // Item 7: a public key.
    let jwk = jws.parameter("jwk").and_then(Value::as_object).ok_or(ProofError::NoKey)?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofError::PrivateKey);
    }
    let jkt = thumbprint(jwk, alg)?;
    let parsed: Jwk = serde_json::from_value(Value::Object(jwk.clone())).map_err(|_| ProofError::Key(kty(alg)))?;
    let key = DecodingKey::from_jwk(&parsed).map_err(|_| ProofError::Key(kty(alg)))?;
    // Item 6: the signature, with the key of the header.
    let claims: Claims = jws.verify(std::slice::from_ref(&key)).map_err(|e| match e {
        JwsError::Claims => ProofError::Claims,
        _ => ProofError::Signature,
    })?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_DPOP_JTI_BYTES {
        return Err(ProofError::Jti);
    }
    // Item 8: the method of the request.
    if claims.htm != target.method {
        return Err(ProofError::Method(target.method.to_owned()));
    }
    // Item 9: its URI, without query and fragment, compared after syntax-based
    // normalization (RFC 3986 §6.2.2, §6.2.3: case of scheme and host, default port).
    let expected = format!("{}{}", app.config.issuer(), target.path);
    if !same_uri(&claims.htu, &expected) {
        return Err(ProofError::Uri(expected));
    }
    // Item 10: a nonce, when this server asks for them (§8).
    if app.config.dpop.require_nonce {
        let now = app.clock.now();
        let fresh = |reason| ProofError::Nonce { reason, fresh: nonce(app) };
        let nonce = claims.nonce.as_deref().ok_or_else(|| fresh("a DPoP nonce is required (RFC 9449 §8)"))?;
        let issued = app.keys.open_dpop_nonce(nonce).ok_or_else(|| fresh("the DPoP nonce is not this server's"))?;
        if issued > now.saturating_add(DPOP_IAT_WINDOW) || now.saturating_sub(issued) > NONCE_LIFETIME {
            return Err(fresh("the DPoP nonce is stale"));
        }
    }
    // Item 11: issued within the window.
    if claims.iat.abs_diff(app.clock.now()) > DPOP_IAT_WINDOW.unsigned_abs() {
        return Err(ProofError::Stale);
    }
    // Item 12, §7: at a protected resource, the hash of the access token presented.
    if let Some(token) = target.access_token
        && claims.ath.as_deref() != Some(s256(token).as_str())
    {
        return Err(ProofError::AccessTokenHash);
    }
    Ok((jkt, claims))
}

/// The key type an algorithm signs with (RFC 7518 §6.1).
fn kty(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => "EC",
        Algorithm::EdDSA => "OKP",
        _ => "RSA",
    }
}

/// RFC 7638 §3: the SHA-256 of the key's required members, in lexicographic order, as JSON
/// without whitespace. The key must be of the type and, for EC and OKP, the curve `alg`
/// signs with.
fn thumbprint(jwk: &Map<String, Value>, alg: Algorithm) -> Result<Jkt, ProofError> {
    let kty = kty(alg);
    let bad = || ProofError::Key(kty);
    if jwk.get("kty").and_then(Value::as_str) != Some(kty) {
        return Err(bad());
    }
    let curve = match alg {
        Algorithm::ES256 => Some("P-256"),
        Algorithm::ES384 => Some("P-384"),
        Algorithm::EdDSA => Some("Ed25519"),
        _ => None,
    };
    if let Some(curve) = curve
        && jwk.get("crv").and_then(Value::as_str) != Some(curve)
    {
        return Err(bad());
    }
    let required: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        _ => &["e", "kty", "n"],
    };
    let mut members = Vec::with_capacity(required.len());
    for name in required {
        let value = jwk.get(*name).and_then(Value::as_str).ok_or_else(bad)?;
        // Serializing a string escapes it as JSON requires: the members are exactly as sent.
        let value = serde_json::to_string(value).map_err(|_| bad())?;
        members.push(format!("\"{name}\":{value}"));
    }
    let canonical = format!("{{{}}}", members.join(","));
    Ok(Jkt(s256(&canonical)))
}

/// Whether `htu` is `expected`, ignoring query and fragment, after syntax-based normalization.
fn same_uri(htu: &str, expected: &str) -> bool {
    let (Ok(htu), Ok(expected)) = (url::Url::parse(htu), url::Url::parse(expected)) else { return false };
    htu[..url::Position::AfterPath] == expected[..url::Position::AfterPath]
}

/// RFC 9449: a refused proof is `invalid_dpop_proof`, one without a fresh nonce
/// `use_dpop_nonce` (§8), a refresh token or code bound to another key `invalid_grant`
/// (§5, §10: the grant is not this key's).
impl From<ProofError> for OAuthError {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::Nonce { reason, fresh } => Self::UseDpopNonce { reason: reason.into(), nonce: fresh },
            ProofError::GrantKey(_) => Self::InvalidGrant(e.to_string()),
            ProofError::Storage(e) => e.into(),
            e => Self::InvalidDpopProof(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1's example key and thumbprint.
    #[test]
    fn thumbprint_is_rfc_7638s() {
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let jkt = thumbprint(jwk.as_object().unwrap(), Algorithm::RS256).unwrap();
        assert_eq!(jkt.as_str(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn htu_ignores_query_fragment_and_case_of_host() {
        assert!(same_uri("https://AS.example.com:443/token?x=1#f", "https://as.example.com/token"));
        assert!(!same_uri("https://as.example.com/token/", "https://as.example.com/token"));
        assert!(!same_uri("not a url", "https://as.example.com/token"));
    }
}
