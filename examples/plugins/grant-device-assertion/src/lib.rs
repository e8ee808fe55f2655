//! An extension grant (RFC 6749 §4.5) for devices: a device that cannot sign anyone in
//! signs a short-lived assertion with its own Ed25519 key, and its gateway (the OAuth
//! client) trades it for an access token whose subject is the device.
//!
//! The token request, from a client registered for the grant type:
//!
//! ```text
//! POST /token
//! grant_type=urn:portcullis:grant-type:device-assertion
//! &assertion=<JWS, alg EdDSA>
//! &scope=telemetry:write          (optional: every scope the device may have when absent)
//! ```
//!
//! The assertion's claims: `iss` is the device's id in the manifest's `[config.devices]`
//! (and `sub`, when present, the same); `aud` is the server's issuer or its token
//! endpoint; `exp` at most `max-lifetime` seconds ahead; `jti` unique: the host refuses
//! the same `jti` from the same client again until the assertion expires.
//!
//! The answer's subject is `device:<id>`; the scope policy then decides what the client
//! really gets, as for any grant.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};
use portcullis_sdk::grant::{Answer, GrantRequest, Guest, Refusal, Subject};
use serde::Deserialize;

/// The grant type this plugin answers.
pub const GRANT_TYPE: &str = "urn:portcullis:grant-type:device-assertion";

/// How far ahead of the server's clock a device's `iat` may be.
const CLOCK_SKEW: i64 = 60;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    #[serde(default = "default_max_lifetime")]
    max_lifetime: i64,
    #[serde(default)]
    devices: BTreeMap<String, Device>,
}

fn default_max_lifetime() -> i64 {
    300
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Device {
    public_key: String,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: Option<String>,
    aud: Audience,
    exp: i64,
    iat: Option<i64>,
    jti: String,
}

struct DeviceAssertion;

impl Guest for DeviceAssertion {
    fn grant_types() -> Vec<String> {
        vec![GRANT_TYPE.to_owned()]
    }

    fn exchange(request: GrantRequest) -> Result<Answer, Refusal> {
        let config: Config = match serde_json::from_str(&request.config) {
            Ok(c) => c,
            Err(e) => {
                // The operator's mistake, not the client's: fail the call (a server error).
                portcullis_sdk::log::error(&format!("the manifest's [config] is not usable: {e}"));
                panic!("misconfigured");
            }
        };
        let param = |name: &str| request.parameters.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let assertion = param("assertion").ok_or_else(|| Refusal::InvalidRequest("`assertion` is required".into()))?;
        let (claims, device) = verified(assertion, &config)?;
        let invalid = |why: &str| Err(Refusal::InvalidGrant(format!("the assertion {why}")));
        if claims.sub.as_deref().is_some_and(|s| s != claims.iss) {
            return invalid("has a `sub` other than its `iss`");
        }
        let audiences = match &claims.aud {
            Audience::One(a) => core::slice::from_ref(a),
            Audience::Many(a) => a.as_slice(),
        };
        if !audiences.iter().any(|a| *a == request.issuer || *a == request.token_endpoint) {
            return invalid("is not for this server (`aud`)");
        }
        if claims.exp <= request.now {
            return invalid("has expired");
        }
        if claims.exp > request.now + config.max_lifetime {
            return invalid("lives too long (`exp`)");
        }
        if claims.iat.is_some_and(|iat| iat > request.now + CLOCK_SKEW) {
            return invalid("was issued in the future (`iat`)");
        }
        if claims.jti.is_empty() {
            return invalid("has an empty `jti`");
        }
        let scopes = match param("scope") {
            None => device.scopes.clone(),
            Some(scope) => {
                let mut asked: Vec<String> = Vec::new();
                for s in scope.split(' ').filter(|s| !s.is_empty()) {
                    if !device.scopes.iter().any(|d| d == s) {
                        return Err(Refusal::InvalidScope(format!("the device may not ask for `{s}`")));
                    }
                    if !asked.iter().any(|a| a == s) {
                        asked.push(s.to_owned());
                    }
                }
                asked
            }
        };
        Ok(Answer {
            subject: Subject::Other(format!("device:{}", claims.iss)),
            scopes,
            single_use: Some((claims.jti, claims.exp)),
        })
    }
}

/// The claims of a compact JWS signed with EdDSA by a device of the configuration.
fn verified<'c>(assertion: &str, config: &'c Config) -> Result<(Claims, &'c Device), Refusal> {
    let bad = |why: &str| Refusal::InvalidGrant(format!("the assertion {why}"));
    let mut parts = assertion.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("is not a compact JWS"));
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| bad("is not base64url"));
    let header: Header = serde_json::from_slice(&decode(header)?).map_err(|_| bad("has no readable header"))?;
    if header.alg != "EdDSA" {
        return Err(bad("must be signed with EdDSA"));
    }
    let claims: Claims = serde_json::from_slice(&decode(payload)?).map_err(|_| bad("lacks `iss`, `aud`, `exp` or `jti`"))?;
    let device = config.devices.get(&claims.iss).ok_or_else(|| bad("names no known device"))?;
    let key: [u8; 32] = URL_SAFE_NO_PAD
        .decode(&device.public_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| bad("names a device whose key is misconfigured"))?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| bad("names a device whose key is misconfigured"))?;
    let signature: [u8; 64] =
        decode(signature)?.try_into().map_err(|_| bad("has a signature of the wrong length"))?;
    // The signing input: the header and payload as sent, with the dot between them.
    let (signed, _) = assertion.rsplit_once('.').ok_or_else(|| bad("is not a compact JWS"))?;
    key.verify_strict(signed.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| bad("does not verify with the device's key"))?;
    Ok((claims, device))
}

portcullis_sdk::export_grant_type!(DeviceAssertion);
