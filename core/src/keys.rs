//! Signing keys (RFC 7517 JWKS, RFC 7518 algorithms): generated at first start, stored
//! through the storage plugin with the private half sealed, rotated by `portcullis keys rotate`.
//! A rotated-out key stays published until every token it signed has expired.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::crypto::{Sealer, SigningAlgorithm};
use crate::model::{Clock, SigningKeyRecord};
use crate::storage::{Storage, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("stored key {kid}: {reason}")]
    Stored { kid: String, reason: String },
    #[error("no active signing key")]
    NoActiveKey,
    #[error("signing failed: {0}")]
    Sign(jsonwebtoken::errors::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a presented token is not accepted; never more detail than the caller needs.
#[derive(Debug, thiserror::Error)]
pub enum TokenRejected {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token was not signed by a key of this server")]
    UnknownKey,
    #[error("the token is invalid or expired")]
    Invalid,
}

struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    encoding: EncodingKey,
}

struct KeyRing {
    active: Option<SigningKey>,
    verifying: HashMap<String, (SigningAlgorithm, DecodingKey)>,
    jwks: serde_json::Value,
}

pub struct Keys {
    storage: Storage,
    sealer: Sealer,
    algorithm: SigningAlgorithm,
    issuer: String,
    ring: RwLock<Arc<KeyRing>>,
    clock: Arc<dyn Clock>,
}

/// A verified token's expiry, checked against the server's clock.
pub trait Expiring {
    fn exp(&self) -> i64;
}

impl Keys {
    /// Loads the stored keys, creating the first one when there is none. When the active key
    /// is of another algorithm than the configured one (`keys.algorithm` changed), rotates to
    /// a new key of the configured algorithm; the old key stays published for `retire_after`
    /// seconds, until the tokens it signed have expired.
    pub async fn load(
        storage: Storage,
        sealer: Sealer,
        algorithm: SigningAlgorithm,
        issuer: &str,
        retire_after: i64,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KeyError> {
        let keys = Self {
            storage,
            sealer,
            algorithm,
            clock,
            issuer: issuer.to_owned(),
            ring: RwLock::new(Arc::new(KeyRing { active: None, verifying: HashMap::new(), jwks: json!({"keys": []}) })),
        };
        keys.reload().await?;
        let active = keys.ring.read().active.as_ref().map(|k| k.algorithm);
        match active {
            None => {
                keys.add_key().await?;
                keys.reload().await?;
            }
            Some(current) if current != algorithm => {
                tracing::warn!(
                    from = current.name(),
                    to = algorithm.name(),
                    "keys.algorithm changed: rotating to a new signing key; the old one stays published until its tokens expire"
                );
                keys.rotate(retire_after).await?;
            }
            Some(_) => {}
        }
        Ok(keys)
    }

    /// Re-reads the keys from storage (another replica or the CLI may have rotated them).
    pub async fn reload(&self) -> Result<(), KeyError> {
        let now = self.clock.now();
        let mut records = self.storage.list_keys().await?;
        records.sort_by_key(|r| r.created_at);
        let mut verifying = HashMap::new();
        let mut published = Vec::new();
        let mut active = None;
        for r in &records {
            if r.retire_at.is_some_and(|t| t <= now) {
                continue;
            }
            let algorithm = SigningAlgorithm::parse(&r.algorithm).ok_or_else(|| stored(r, "unknown algorithm"))?;
            let jwk: serde_json::Value = serde_json::from_str(&r.public_jwk).map_err(|e| stored(r, &e.to_string()))?;
            verifying
                .insert(r.kid.clone(), (algorithm, decoding_key(&jwk).ok_or_else(|| stored(r, "bad public key"))?));
            published.push(jwk);
            if r.retire_at.is_none() {
                active = Some(r);
            }
        }
        let active = match active {
            Some(r) => {
                let der =
                    self.sealer.open(&r.sealed_private_key, r.kid.as_bytes()).map_err(|e| stored(r, &e.to_string()))?;
                let algorithm = SigningAlgorithm::parse(&r.algorithm).ok_or_else(|| stored(r, "unknown algorithm"))?;
                Some(SigningKey {
                    kid: r.kid.clone(),
                    algorithm,
                    encoding: encoding_key(algorithm, &der).map_err(|e| stored(r, &e))?,
                })
            }
            None => None,
        };
        *self.ring.write() = Arc::new(KeyRing { active, verifying, jwks: json!({ "keys": published }) });
        Ok(())
    }

    /// Adds a new active key; the keys active before it stay published for `retire_after` seconds.
    pub async fn rotate(&self, retire_after: i64) -> Result<String, KeyError> {
        let now = self.clock.now();
        for mut r in self.storage.list_keys().await? {
            if r.retire_at.is_none() {
                r.retire_at = Some(now + retire_after);
                self.storage.put_key(&r).await?;
            }
        }
        let kid = self.add_key().await?;
        self.reload().await?;
        Ok(kid)
    }

    async fn add_key(&self) -> Result<String, KeyError> {
        let kid = crate::crypto::random_token(12);
        let (der, jwk) = generate(self.algorithm, &kid)?;
        let record = SigningKeyRecord {
            kid: kid.clone(),
            algorithm: self.algorithm.name().to_owned(),
            sealed_private_key: self.sealer.seal(&der, kid.as_bytes()),
            public_jwk: jwk.to_string(),
            created_at: self.clock.now(),
            retire_at: None,
        };
        self.storage.put_key(&record).await?;
        tracing::info!(kid = %kid, algorithm = self.algorithm.name(), "signing key created");
        Ok(kid)
    }

    pub fn jwks(&self) -> serde_json::Value {
        self.ring.read().jwks.clone()
    }

    /// The algorithm tokens are signed with now: the active key's.
    pub fn signing_algorithm(&self) -> SigningAlgorithm {
        self.ring.read().active.as_ref().map_or(self.algorithm, |key| key.algorithm)
    }

    /// The active key, held still: what is computed from its algorithm (`at_hash`) and what
    /// it signs agree even if a rotation lands in between.
    pub fn signer(&self) -> Result<Signer, KeyError> {
        let ring = self.ring.read().clone();
        if ring.active.is_none() {
            return Err(KeyError::NoActiveKey);
        }
        Ok(Signer { ring })
    }

    /// Signs `claims` as a JWT with the active key and the given `typ` header.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        self.signer()?.sign(typ, claims)
    }

    /// Verifies a JWT signed by one of our published keys: signature, `typ`, `iss`, and `exp`
    /// by the server's clock.
    pub fn verify<T: DeserializeOwned + Expiring>(&self, token: &str, typ: &str) -> Result<T, TokenRejected> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejected::Malformed)?;
        if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(typ)) {
            return Err(TokenRejected::Invalid);
        }
        let kid = header.kid.ok_or(TokenRejected::UnknownKey)?;
        let ring = self.ring.read().clone();
        let (algorithm, key) = ring.verifying.get(&kid).ok_or(TokenRejected::UnknownKey)?;
        if jose(*algorithm) != header.alg {
            return Err(TokenRejected::Invalid);
        }
        let mut validation = Validation::new(jose(*algorithm));
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_exp = false;
        let claims =
            jsonwebtoken::decode::<T>(token, key, &validation).map(|d| d.claims).map_err(|_| TokenRejected::Invalid)?;
        if claims.exp() <= self.clock.now() {
            return Err(TokenRejected::Invalid);
        }
        Ok(claims)
    }
}

/// One signing key, taken from the key ring at one moment.
pub struct Signer {
    ring: Arc<KeyRing>,
}

impl Signer {
    fn key(&self) -> Result<&SigningKey, KeyError> {
        self.ring.active.as_ref().ok_or(KeyError::NoActiveKey)
    }

    pub fn algorithm(&self) -> Option<SigningAlgorithm> {
        self.ring.active.as_ref().map(|k| k.algorithm)
    }

    /// Signs `claims` as a JWT with this key and the given `typ` header.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        let key = self.key()?;
        let mut header = Header::new(jose(key.algorithm));
        header.kid = Some(key.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(KeyError::Sign)
    }
}

fn stored(r: &SigningKeyRecord, reason: &str) -> KeyError {
    KeyError::Stored { kid: r.kid.clone(), reason: reason.to_owned() }
}

/// jsonwebtoken's name for an algorithm.
fn jose(algorithm: SigningAlgorithm) -> Algorithm {
    match algorithm {
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::RS256 => Algorithm::RS256,
        SigningAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// A fresh key pair: the private key as PKCS#8 DER, the public key as a JWK.
fn generate(algorithm: SigningAlgorithm, kid: &str) -> Result<(Vec<u8>, serde_json::Value), KeyError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    match algorithm {
        SigningAlgorithm::ES256 => {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| KeyError::Generate)?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .map_err(|_| KeyError::Generate)?;
            let point = pair.public_key().as_ref();
            if point.len() != 65 {
                return Err(KeyError::Generate);
            }
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                             "use": "sig", "alg": "ES256", "kid": kid});
            Ok((pkcs8.as_ref().to_vec(), jwk))
        }
        SigningAlgorithm::EdDSA => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Generate)?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| KeyError::Generate)?;
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()),
                             "use": "sig", "alg": "EdDSA", "kid": kid});
            Ok((pkcs8.as_ref().to_vec(), jwk))
        }
        SigningAlgorithm::RS256 => {
            let pair =
                aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
            let der = pair.as_der().map_err(|_| KeyError::Generate)?;
            let parts = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            let jwk = json!({"kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e),
                             "use": "sig", "alg": "RS256", "kid": kid});
            Ok((der.as_ref().to_vec(), jwk))
        }
    }
}

fn encoding_key(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<EncodingKey, String> {
    match algorithm {
        SigningAlgorithm::ES256 => Ok(EncodingKey::from_ec_der(pkcs8)),
        SigningAlgorithm::EdDSA => Ok(EncodingKey::from_ed_der(pkcs8)),
        SigningAlgorithm::RS256 => {
            // The RSA signer wants PEM to accept PKCS#8.
            let body = STANDARD.encode(pkcs8);
            let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
            for line in body.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(line).map_err(|e| e.to_string())?);
                pem.push('\n');
            }
            pem.push_str("-----END PRIVATE KEY-----\n");
            EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())
        }
    }
}

fn decoding_key(jwk: &serde_json::Value) -> Option<DecodingKey> {
    let s = |k: &str| jwk.get(k).and_then(|v| v.as_str());
    match s("kty")? {
        "EC" => DecodingKey::from_ec_components(s("x")?, s("y")?).ok(),
        "OKP" => DecodingKey::from_ed_components(s("x")?).ok(),
        "RSA" => DecodingKey::from_rsa_components(s("n")?, s("e")?).ok(),
        _ => None,
    }
}
