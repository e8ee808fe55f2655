//! A JWS someone else signed (RFC 7515 §7.1, the compact serialization): a client's
//! assertion, request object or DPoP proof. Its header is read as JSON, not as
//! jsonwebtoken's `Header`, whose `alg` has no name for RFC 9864's `Ed25519` (the fully
//! specified name that deprecates `EdDSA`, §2, §3); the signature is checked by jsonwebtoken.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Why a JWS is not taken; the caller says what it was meant to be.
#[derive(Debug, thiserror::Error)]
pub enum JwsError {
    #[error("not a JWS in compact serialization")]
    Malformed,
    #[error("its `alg` is not one this server verifies")]
    Algorithm,
    #[error("its claims are not a JSON object of the expected members")]
    Claims,
    #[error("the signature does not verify")]
    Signature,
}

/// The jsonwebtoken algorithm a JWS `alg` names: RFC 7518 §3.1's names, `EdDSA` (RFC 8037
/// §3.1), and RFC 9864 §2.2's `Ed25519`, which is EdDSA with the one curve jsonwebtoken's
/// EdDSA verifies.
pub fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "Ed25519" => Some(Algorithm::EdDSA),
        name => name.parse().ok(),
    }
}

/// A JWS taken apart, its signature not checked yet.
pub struct Jws<'a> {
    header: Map<String, Value>,
    algorithm: Algorithm,
    /// `BASE64URL(header) '.' BASE64URL(payload)`, what the signature covers (§5.2).
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> Jws<'a> {
    /// Three base64url parts, the first a JSON object naming an `alg` jsonwebtoken verifies.
    pub fn parse(token: &'a str) -> Result<Self, JwsError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(JwsError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(JwsError::Malformed)?;
        if payload.contains('.') {
            return Err(JwsError::Malformed);
        }
        let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| JwsError::Malformed)?;
        let header: Map<String, Value> = serde_json::from_slice(&header).map_err(|_| JwsError::Malformed)?;
        let algorithm = header.get("alg").and_then(Value::as_str).ok_or(JwsError::Malformed)?;
        let algorithm = self::algorithm(algorithm).ok_or(JwsError::Algorithm)?;
        Ok(Self { header, algorithm, signing_input, payload, signature })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The `alg` as the JWS names it (`Ed25519` and `EdDSA` are one [`Self::algorithm`]).
    pub fn alg(&self) -> &str {
        self.text("alg").unwrap_or_default()
    }

    /// A header parameter that is a string (`kid`, `typ`), if it is one.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// A header parameter, as sent (a DPoP proof's `jwk`, private members and all).
    pub fn parameter(&self, name: &str) -> Option<&Value> {
        self.header.get(name)
    }

    /// The claims, unverified: only to find out whose keys verify them.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, JwsError> {
        let payload = URL_SAFE_NO_PAD.decode(self.payload).map_err(|_| JwsError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| JwsError::Claims)
    }

    /// The claims, once one of `keys` verifies the signature with the JWS's algorithm (a key
    /// of another family than the algorithm's never does).
    pub fn verify<T: DeserializeOwned>(&self, keys: &[DecodingKey]) -> Result<T, JwsError> {
        let message = self.signing_input.as_bytes();
        let verifies = |key: &DecodingKey| {
            jsonwebtoken::crypto::verify(self.signature, message, key, self.algorithm).unwrap_or(false)
        };
        if !keys.iter().any(verifies) {
            return Err(JwsError::Signature);
        }
        self.claims()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_names_eddsa_and_unknown_names_nothing() {
        assert_eq!(algorithm("Ed25519"), Some(Algorithm::EdDSA));
        assert_eq!(algorithm("EdDSA"), Some(Algorithm::EdDSA));
        assert_eq!(algorithm("ES256"), Some(Algorithm::ES256));
        assert_eq!(algorithm("Ed448"), None);
        assert_eq!(algorithm("none"), None);
    }

    #[test]
    fn only_three_parts_with_a_json_header_naming_an_alg_parse() {
        let header = |h: &str| URL_SAFE_NO_PAD.encode(h);
        let ok = format!("{}.e30.c2ln", header(r#"{"alg":"Ed25519","kid":"k"}"#));
        let jws = Jws::parse(&ok).unwrap();
        assert_eq!((jws.algorithm(), jws.alg(), jws.text("kid")), (Algorithm::EdDSA, "Ed25519", Some("k")));
        for bad in [
            "a.b".to_owned(),
            format!("{}.e30.c2ln.x", header(r#"{"alg":"ES256"}"#)),
            format!("{}.e30.c2ln", header("[]")),
            format!("{}.e30.c2ln", header(r#"{"typ":"JWT"}"#)),
        ] {
            assert!(matches!(Jws::parse(&bad), Err(JwsError::Malformed)), "{bad}");
        }
        let unknown = format!("{}.e30.c2ln", header(r#"{"alg":"XS1"}"#));
        assert!(matches!(Jws::parse(&unknown), Err(JwsError::Algorithm)));
    }
}
