//! Signing keys (RFC 7517 JWKS, RFC 7518 algorithms): generated at first start, stored
//! through the storage plugin with the private half sealed, rotated by `portcullis keys rotate`.
//! A rotated-out key stays published until every token it signed has expired.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::crypto::{Sealer, SigningAlgorithm};
use crate::limits::MAX_VERIFIED_TOKENS;
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
    Sign(String),
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
    /// Parsed once when the ring is loaded, not for every token.
    private: PrivateKey,
}

/// A private key as aws-lc-rs holds it, ready to sign.
enum PrivateKey {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

impl PrivateKey {
    /// Parses a PKCS#8 DER private key of `algorithm`.
    fn parse(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<Self, String> {
        match algorithm {
            SigningAlgorithm::ES256 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map(Self::Ecdsa)
            }
            SigningAlgorithm::EdDSA => Ed25519KeyPair::from_pkcs8(pkcs8).map(Self::Ed25519),
            SigningAlgorithm::RS256 => aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).map(Self::Rsa),
        }
        .map_err(|e| e.to_string())
    }

    /// The JWS signature of `input` (RFC 7518 §3.4 for ECDSA: R and S, 32 bytes each).
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let failed = |e: aws_lc_rs::error::Unspecified| KeyError::Sign(e.to_string());
        match self {
            Self::Ecdsa(pair) => pair.sign(&rng, input).map(|s| s.as_ref().to_vec()).map_err(failed),
            Self::Ed25519(pair) => Ok(pair.sign(input).as_ref().to_vec()),
            Self::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, input, &mut signature).map_err(failed)?;
                Ok(signature)
            }
        }
    }
}

struct KeyRing {
    /// Distinguishes this load of the ring from every other, for `Verified`.
    generation: u64,
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
    verified: Mutex<Verified>,
    clock: Arc<dyn Clock>,
}

fn next_generation() -> u64 {
    static GENERATION: AtomicU64 = AtomicU64::new(0);
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// Tokens whose signature, `typ` and `iss` were verified, each under which key ring and
/// until when it lives. A resource server introspects one access token on every request
/// for the token's lifetime; the signature is checked on the first, and again only when
/// the keys change (a retired key's tokens stop verifying at once). Expiry and revocation
/// are checked on every request all the same.
#[derive(Default)]
struct Verified {
    /// SHA-256 of the expected `typ` and the token → (ring generation, `exp`).
    tokens: HashMap<[u8; 32], (u64, i64)>,
}

impl Verified {
    fn key(typ: &str, token: &str) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(typ.as_bytes());
        digest.update([0]);
        digest.update(token.as_bytes());
        digest.finalize().into()
    }

    fn holds(&self, key: &[u8; 32], generation: u64) -> bool {
        self.tokens.get(key).is_some_and(|&(g, _)| g == generation)
    }

    fn insert(&mut self, key: [u8; 32], generation: u64, exp: i64, now: i64) {
        // Beyond the bound the expired go first, then all of them (the next request of each
        // verifies again).
        crate::limits::make_room(&mut self.tokens, MAX_VERIFIED_TOKENS, |_, &mut (g, e)| g == generation && e > now);
        self.tokens.insert(key, (generation, exp));
    }
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
            verified: Mutex::default(),
            ring: RwLock::new(Arc::new(KeyRing {
                generation: next_generation(),
                active: None,
                verifying: HashMap::new(),
                jwks: json!({"keys": []}),
            })),
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
                    private: PrivateKey::parse(algorithm, &der).map_err(|e| stored(r, &e))?,
                })
            }
            None => None,
        };
        let jwks = json!({ "keys": published });
        let mut ring = self.ring.write();
        // Tokens verified before stay verified while the same keys are published.
        let generation = if ring.jwks == jwks { ring.generation } else { next_generation() };
        *ring = Arc::new(KeyRing { generation, active, verifying, jwks });
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

    /// A `client_secret_jwt` client's secret, sealed for storage and bound to the client.
    pub fn seal_client_secret(&self, client_id: &str, secret: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.sealer.seal(secret.as_bytes(), &client_secret_context(client_id)))
    }

    /// The secret [`Self::seal_client_secret`] sealed, or none if it does not open.
    pub fn open_client_secret(&self, client_id: &str, sealed: &str) -> Option<Vec<u8>> {
        let sealed = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        self.sealer.open(&sealed, &client_secret_context(client_id)).ok()
    }

    /// A DPoP nonce (RFC 9449 §8): the time it was issued, sealed, so that any replica
    /// sharing the encryption key can tell its age without storing it.
    pub fn seal_dpop_nonce(&self, issued_at: i64) -> String {
        URL_SAFE_NO_PAD.encode(self.sealer.seal(&issued_at.to_be_bytes(), DPOP_NONCE_CONTEXT))
    }

    /// When a nonce [`Self::seal_dpop_nonce`] sealed was issued, or none if it does not open.
    pub fn open_dpop_nonce(&self, nonce: &str) -> Option<i64> {
        let sealed = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        let plain = self.sealer.open(&sealed, DPOP_NONCE_CONTEXT).ok()?;
        Some(i64::from_be_bytes(plain.try_into().ok()?))
    }

    /// Signs `claims` as a JWT with the active key and the given `typ` header.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        self.signer()?.sign(typ, claims)
    }

    /// Verifies a JWT signed by one of our published keys: signature, `typ`, `iss`, and `exp`
    /// by the server's clock.
    pub fn verify<T: DeserializeOwned + Expiring>(&self, token: &str, typ: &str) -> Result<T, TokenRejected> {
        let ring = self.ring.read().clone();
        let now = self.clock.now();
        let key = Verified::key(typ, token);
        let claims = if self.verified.lock().holds(&key, ring.generation) {
            verified_claims::<T>(token)?
        } else {
            let claims = self.verify_signed::<T>(&ring, token, typ)?;
            self.verified.lock().insert(key, ring.generation, claims.exp(), now);
            claims
        };
        if claims.exp() <= now {
            return Err(TokenRejected::Invalid);
        }
        Ok(claims)
    }

    /// A JWT signed by one of our published keys (signature, `typ`, `iss`), expired or not:
    /// an ID token presented as a hint (OIDC RP-Initiated Logout §2) may be past its `exp`.
    pub fn verify_expired_or_not<T: DeserializeOwned>(&self, token: &str, typ: &str) -> Result<T, TokenRejected> {
        let ring = self.ring.read().clone();
        self.verify_signed::<T>(&ring, token, typ)
    }

    /// Signature, `typ`, `alg` and `iss`; not `exp`, which the caller checks.
    fn verify_signed<T: DeserializeOwned>(&self, ring: &KeyRing, token: &str, typ: &str) -> Result<T, TokenRejected> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejected::Malformed)?;
        if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(typ)) {
            return Err(TokenRejected::Invalid);
        }
        let kid = header.kid.ok_or(TokenRejected::UnknownKey)?;
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
        jsonwebtoken::decode::<T>(token, key, &validation).map(|d| d.claims).map_err(|_| TokenRejected::Invalid)
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

    /// Signs `claims` as a JWT with this key and the given `typ` header: the JWS Compact
    /// Serialization of RFC 7515 §7.1, `BASE64URL(header) '.' BASE64URL(claims) '.'
    /// BASE64URL(signature)`, the signature computed over the first two parts (§5.1).
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        #[derive(Serialize)]
        struct JoseHeader<'a> {
            typ: &'a str,
            alg: &'a str,
            kid: &'a str,
        }
        let key = self.key()?;
        let failed = |e: serde_json::Error| KeyError::Sign(e.to_string());
        let header =
            serde_json::to_vec(&JoseHeader { typ, alg: key.algorithm.name(), kid: &key.kid }).map_err(failed)?;
        let claims = serde_json::to_vec(claims).map_err(failed)?;
        let mut jws = URL_SAFE_NO_PAD.encode(header);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut jws);
        let signature = key.private.sign(jws.as_bytes())?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }
}

/// The claims of a token verified before: its payload, decoded (RFC 7515 §7.1).
fn verified_claims<T: DeserializeOwned>(token: &str) -> Result<T, TokenRejected> {
    let payload = token.split('.').nth(1).ok_or(TokenRejected::Malformed)?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenRejected::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenRejected::Malformed)
}

fn stored(r: &SigningKeyRecord, reason: &str) -> KeyError {
    KeyError::Stored { kid: r.kid.clone(), reason: reason.to_owned() }
}

fn client_secret_context(client_id: &str) -> Vec<u8> {
    format!("client-secret:{client_id}").into_bytes()
}

/// What a DPoP nonce is sealed for: nothing else sealed with the key opens as one.
const DPOP_NONCE_CONTEXT: &[u8] = b"dpop-nonce";

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

fn decoding_key(jwk: &serde_json::Value) -> Option<DecodingKey> {
    let s = |k: &str| jwk.get(k).and_then(|v| v.as_str());
    match s("kty")? {
        "EC" => DecodingKey::from_ec_components(s("x")?, s("y")?).ok(),
        "OKP" => DecodingKey::from_ed_components(s("x")?).ok(),
        "RSA" => DecodingKey::from_rsa_components(s("n")?, s("e")?).ok(),
        _ => None,
    }
}
