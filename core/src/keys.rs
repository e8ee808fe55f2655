//! Signing keys (RFC 7517 JWK Sets, RFC 7518 algorithms, OIDC Core §10.1.1 rotation): a key
//! ring holding a key for every algorithm served, generated with aws-lc-rs and stored through
//! the storage plugin with the private half sealed.
//!
//! What each key is (next, signing, retiring, retired) follows from the records and the clock
//! alone, so replicas agree without talking:
//! - a rotation writes a key that signs from `keys.publish_ahead` on (or at once), and is
//!   published from the moment it is written, so a cached JWK Set knows it before it signs;
//! - per algorithm, the key that signs is the newest whose `signs_from` has passed;
//! - the key it replaced is retiring, published until the longest-lived token it signed has
//!   expired (the record keeps that lifetime, raised before a longer-lived token is handed
//!   out) and a margin more, then retired;
//! - a retired key (compromised) leaves the JWK Set at once and its tokens stop verifying;
//!   when it was the key that signed, a new one signs at once.
//!
//! A token naming a key this replica does not know makes it read the keys again before it
//! refuses (at most once a second); other replicas' writes arrive through storage's
//! announcements, and a periodic reload, both driven by the composition root.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    #[error("no key signs with {0} now")]
    NoSigningKey(&'static str),
    #[error("no signing key `{0}`")]
    Unknown(String),
    #[error("signing key {0} was retired")]
    Retired(String),
    #[error("signing key {0} kept changing while it was being written")]
    Contended(String),
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

/// What a key is at a moment (see the module's comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    Signing,
    /// Replaced, and published while tokens it signed may live.
    Retiring,
    /// Out of the JWK Set; its tokens do not verify.
    Retired,
}

/// A key as an operator sees it (`keys list`, `GET /admin/v1/keys`).
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub kid: String,
    pub algorithm: String,
    pub state: KeyState,
    pub created_at: i64,
    pub signs_from: i64,
    /// Until when it is published: none while it signs or waits to.
    pub published_until: Option<i64>,
    /// The longest lifetime of a token it signed, in seconds.
    pub longest_token_lifetime: u64,
}

/// How long a replaced key stays published beyond its longest-lived token: for clocks that
/// disagree, and a replica that signs with it in the moment before it hears of its successor.
const RETIRE_MARGIN: i64 = 60;

/// The soonest a token naming an unknown key makes the keys be read again after the last time.
const LOOK_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// How often a write to a key's record is tried again when the record changed meanwhile.
const ATTEMPTS: usize = 5;

/// Each record's state and how long it is published at `now`, and the next moment one of
/// them changes by the clock alone.
struct Timeline {
    states: Vec<(KeyState, Option<i64>)>,
    changes_at: Option<i64>,
}

fn timeline(records: &[&SigningKeyRecord], now: i64) -> Timeline {
    let mut states = vec![(KeyState::Retired, None); records.len()];
    let mut changes_at: Option<i64> = None;
    let mut changes = |t: i64| {
        if t > now {
            changes_at = Some(changes_at.map_or(t, |c| c.min(t)));
        }
    };
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by(|&a, &b| place(records[a]).cmp(&place(records[b])));
    for group in order.chunk_by(|&a, &b| records[a].algorithm == records[b].algorithm) {
        // The keys that have signed, oldest first: started, and not retired before they did.
        let started: Vec<usize> = group
            .iter()
            .copied()
            .filter(|&i| {
                let r = records[i];
                r.signs_from() <= now && r.retire_at.is_none_or(|t| t > r.signs_from())
            })
            .collect();
        for &i in group {
            let r = records[i];
            if let Some(t) = r.retire_at {
                changes(t);
            }
            let retired = r.retire_at.is_some_and(|t| t <= now);
            states[i] = match started.iter().position(|&s| s == i) {
                None if r.signs_from() > now && !retired => {
                    changes(r.signs_from());
                    (KeyState::Next, r.retire_at)
                }
                None => (KeyState::Retired, r.retire_at),
                Some(at) => match started.get(at + 1) {
                    None if retired => (KeyState::Retired, r.retire_at),
                    None => (KeyState::Signing, r.retire_at),
                    Some(&successor) => {
                        let replaced_at = records[successor].signs_from();
                        let lifetime = i64::try_from(r.longest_token_lifetime).unwrap_or(i64::MAX);
                        let until = replaced_at.saturating_add(lifetime).saturating_add(RETIRE_MARGIN);
                        let until = r.retire_at.map_or(until, |t| t.min(until));
                        changes(until);
                        (if until <= now { KeyState::Retired } else { KeyState::Retiring }, Some(until))
                    }
                },
            };
        }
    }
    Timeline { states, changes_at }
}

/// Where a key stands among all: by algorithm, then oldest first (the later `signs_from`,
/// and of the same, the one made later, is the newer).
fn place(r: &SigningKeyRecord) -> (&str, i64, u64, i64, &str) {
    (&r.algorithm, r.signs_from(), r.serial, r.created_at, &r.kid)
}

/// The serial of a key made after `records`.
fn next_serial<'a>(records: impl Iterator<Item = &'a SigningKeyRecord>) -> u64 {
    records.map(|r| r.serial).max().unwrap_or(0) + 1
}

fn views(records: &[&SigningKeyRecord], now: i64) -> Vec<KeyView> {
    let timeline = timeline(records, now);
    let mut rows: Vec<_> = records.iter().zip(timeline.states).collect();
    rows.sort_by(|(a, _), (b, _)| place(a).cmp(&place(b)));
    rows.into_iter()
        .map(|(r, (state, published_until))| KeyView {
            kid: r.kid.clone(),
            algorithm: r.algorithm.clone(),
            state,
            created_at: r.created_at,
            signs_from: r.signs_from(),
            published_until,
            longest_token_lifetime: r.longest_token_lifetime,
        })
        .collect()
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

/// A stored key's halves, parsed once per process (a key's material never changes).
struct Material {
    algorithm: SigningAlgorithm,
    private: PrivateKey,
    decoding: DecodingKey,
    jwk: serde_json::Value,
}

/// A key of the ring: its record as last read, its material unless it was retired then, and
/// the longest token lifetime this replica knows its record to cover.
struct RingKey {
    record: SigningKeyRecord,
    material: Option<Arc<Material>>,
    covered: AtomicU64,
}

impl RingKey {
    fn material(&self) -> Result<&Material, KeyError> {
        self.material.as_deref().ok_or_else(|| KeyError::Retired(self.record.kid.clone()))
    }
}

/// The keys as read, and what each is at the moment the ring was made, until `changes_at`.
struct KeyRing {
    /// Distinguishes what this ring publishes from what every other ring did, for `Verified`.
    generation: u64,
    keys: Vec<Arc<RingKey>>,
    /// The key that signs, per algorithm (in `SigningAlgorithm::ALL`'s order).
    signing: [Option<Arc<RingKey>>; 3],
    verifying: HashMap<String, Arc<RingKey>>,
    jwks: serde_json::Value,
    changes_at: Option<i64>,
}

impl KeyRing {
    fn empty() -> Self {
        Self {
            generation: next_generation(),
            keys: Vec::new(),
            signing: Default::default(),
            verifying: HashMap::new(),
            jwks: json!({"keys": []}),
            changes_at: None,
        }
    }

    /// The ring of `keys` at `now`; the JWK Set lists the server's algorithm's keys first.
    fn at(keys: Vec<Arc<RingKey>>, now: i64, server: SigningAlgorithm, previous: &KeyRing) -> Self {
        let records: Vec<&SigningKeyRecord> = keys.iter().map(|k| &k.record).collect();
        let timeline = timeline(&records, now);
        let mut signing: [Option<Arc<RingKey>>; 3] = Default::default();
        let mut verifying = HashMap::new();
        let mut published = Vec::new();
        for (key, (state, _)) in keys.iter().zip(&timeline.states) {
            let Some(material) = &key.material else { continue };
            match state {
                KeyState::Retired => continue,
                KeyState::Signing => signing[slot(material.algorithm)] = Some(key.clone()),
                KeyState::Next | KeyState::Retiring => {}
            }
            verifying.insert(key.record.kid.clone(), key.clone());
            published.push((material.algorithm != server, slot(material.algorithm), key.record.signs_from(), key));
        }
        published.sort_by_key(|(other, slot, from, key)| (*other, *slot, *from, key.record.serial));
        let jwks = json!({ "keys": published.iter().filter_map(|(.., k)| k.material.as_ref().map(|m| &m.jwk)).collect::<Vec<_>>() });
        // Tokens verified before stay verified while the same keys are published.
        let generation = if previous.jwks == jwks { previous.generation } else { next_generation() };
        Self { generation, keys, signing, verifying, jwks, changes_at: timeline.changes_at }
    }

    fn material(&self, kid: &str) -> Option<Arc<Material>> {
        self.keys.iter().find(|k| k.record.kid == kid).and_then(|k| k.material.clone())
    }
}

/// Where an algorithm's signing key is kept in [`KeyRing::signing`].
fn slot(algorithm: SigningAlgorithm) -> usize {
    SigningAlgorithm::ALL.iter().position(|a| *a == algorithm).unwrap_or(0)
}

pub struct Keys {
    storage: Storage,
    sealer: Sealer,
    /// The server's algorithm: access tokens, and the ID tokens of clients that chose none.
    algorithm: SigningAlgorithm,
    /// How long a rotated key is published before it signs, in seconds.
    publish_ahead: i64,
    issuer: String,
    ring: RwLock<Arc<KeyRing>>,
    verified: Mutex<Verified>,
    clock: Arc<dyn Clock>,
    /// One reload at a time, so that an older read never replaces a newer one.
    reloading: tokio::sync::Mutex<()>,
    /// When the last reload for a token naming an unknown key began.
    looked_again: tokio::sync::Mutex<Option<Instant>>,
    /// One write of a key's longest token lifetime at a time.
    covering: tokio::sync::Mutex<()>,
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

/// What the keys are configured with.
pub(crate) struct KeySettings {
    /// The server's algorithm (`keys.algorithm`).
    pub algorithm: SigningAlgorithm,
    /// `keys.publish_ahead`, in seconds.
    pub publish_ahead: u64,
}

impl Keys {
    /// The records the keys are kept in (the audit events of rotations go there too).
    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Loads the stored keys. An algorithm served with no key that signs (the first start,
    /// or the first start of a version serving it) gets one that signs at once: no cached
    /// JWK Set can be missing a key of tokens no one has yet.
    pub(crate) async fn load(
        storage: Storage,
        sealer: Sealer,
        settings: KeySettings,
        issuer: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KeyError> {
        let keys = Self {
            storage,
            sealer,
            algorithm: settings.algorithm,
            publish_ahead: i64::try_from(settings.publish_ahead).unwrap_or(i64::MAX),
            clock,
            issuer: issuer.to_owned(),
            verified: Mutex::default(),
            ring: RwLock::new(Arc::new(KeyRing::empty())),
            reloading: tokio::sync::Mutex::new(()),
            looked_again: tokio::sync::Mutex::new(None),
            covering: tokio::sync::Mutex::new(()),
        };
        keys.reload().await?;
        let ring = keys.ring();
        let missing: Vec<SigningAlgorithm> =
            SigningAlgorithm::ALL.into_iter().filter(|a| ring.signing[slot(*a)].is_none()).collect();
        if !missing.is_empty() {
            let now = keys.clock.now();
            let serial = next_serial(ring.keys.iter().map(|k| &k.record));
            let records =
                missing.into_iter().map(|a| keys.new_key(a, now, now, serial)).collect::<Result<Vec<_>, _>>()?;
            keys.storage.create_keys(&records).await?;
            keys.reload().await?;
        }
        Ok(keys)
    }

    /// Re-reads the keys from storage (another replica or the CLI may have changed them).
    pub async fn reload(&self) -> Result<(), KeyError> {
        let _one = self.reloading.lock().await;
        let records = self.storage.list_keys().await?;
        let now = self.clock.now();
        let states = timeline(&records.iter().collect::<Vec<_>>(), now).states;
        let previous = self.ring.read().clone();
        let mut keys = Vec::with_capacity(records.len());
        for (record, (state, _)) in records.into_iter().zip(states) {
            // A retired key never signs or verifies again: its private half stays sealed.
            let material = match (state, previous.material(&record.kid)) {
                (KeyState::Retired, _) => None,
                (_, Some(material)) => Some(material),
                (_, None) => Some(Arc::new(self.open(&record)?)),
            };
            let covered = AtomicU64::new(record.longest_token_lifetime);
            keys.push(Arc::new(RingKey { record, material, covered }));
        }
        let ring = KeyRing::at(keys, now, self.algorithm, &previous);
        *self.ring.write() = Arc::new(ring);
        Ok(())
    }

    /// The ring as it is now: made again from the keys last read when the clock has moved
    /// a key into its next state.
    fn ring(&self) -> Arc<KeyRing> {
        let now = self.clock.now();
        let ring = self.ring.read().clone();
        if ring.changes_at.is_none_or(|t| now < t) {
            return ring;
        }
        let mut current = self.ring.write();
        if current.changes_at.is_some_and(|t| now >= t) {
            *current = Arc::new(KeyRing::at(current.keys.clone(), now, self.algorithm, &current));
        }
        current.clone()
    }

    fn open(&self, r: &SigningKeyRecord) -> Result<Material, KeyError> {
        let algorithm = SigningAlgorithm::parse(&r.algorithm).ok_or_else(|| stored(r, "unknown algorithm"))?;
        let jwk: serde_json::Value = serde_json::from_str(&r.public_jwk).map_err(|e| stored(r, &e.to_string()))?;
        let decoding = decoding_key(&jwk).ok_or_else(|| stored(r, "bad public key"))?;
        let der = self.sealer.open(&r.sealed_private_key, r.kid.as_bytes()).map_err(|e| stored(r, &e.to_string()))?;
        let private = PrivateKey::parse(algorithm, &der).map_err(|e| stored(r, &e))?;
        Ok(Material { algorithm, private, decoding, jwk })
    }

    /// A new key of `algorithm`, made at `created_at`, that signs from `signs_from`; not stored yet.
    fn new_key(
        &self,
        algorithm: SigningAlgorithm,
        created_at: i64,
        signs_from: i64,
        serial: u64,
    ) -> Result<SigningKeyRecord, KeyError> {
        let kid = crate::crypto::random_token(12);
        let (der, jwk) = generate(algorithm, &kid)?;
        Ok(SigningKeyRecord {
            sealed_private_key: self.sealer.seal(&der, kid.as_bytes()),
            kid,
            algorithm: algorithm.name().to_owned(),
            public_jwk: jwk.to_string(),
            created_at,
            signs_from: Some(signs_from),
            serial,
            longest_token_lifetime: 0,
            retire_at: None,
            sealed_with: Some(self.sealer.fingerprint().to_owned()),
        })
    }

    /// A new key for every algorithm served, each signing from `keys.publish_ahead` on, or
    /// at once (`now`: an emergency, when a cached JWK Set may meet a key it does not know
    /// yet). The keys they replace retire once their last tokens expire.
    pub async fn rotate(&self, now: bool) -> Result<Vec<KeyView>, KeyError> {
        let at = self.clock.now();
        let signs_from = if now { at } else { at.saturating_add(self.publish_ahead) };
        let serial = next_serial(self.storage.list_keys().await?.iter());
        let records = self.served().map(|a| self.new_key(a, at, signs_from, serial)).collect::<Result<Vec<_>, _>>()?;
        self.storage.create_keys(&records).await?;
        for r in &records {
            tracing::info!(kid = %r.kid, algorithm = %r.algorithm, signs_from, "signing key created");
        }
        self.reload().await?;
        Ok(self.views_of(records.iter().map(|r| r.kid.as_str())))
    }

    /// Retires a key (compromised) at once: it leaves the JWK Set and its tokens stop
    /// verifying. When it is the key that signs, a new key of its algorithm signs at once.
    /// Returns the keys it changed.
    pub async fn retire(&self, kid: &str) -> Result<Vec<KeyView>, KeyError> {
        let mut successor = None;
        for attempt in 1..=ATTEMPTS {
            let loaded = self.storage.get_key(kid).await?.ok_or_else(|| KeyError::Unknown(kid.to_owned()))?;
            let records = self.storage.list_keys().await?;
            let now = self.clock.now();
            let state = views(&records.iter().collect::<Vec<_>>(), now)
                .into_iter()
                .find(|v| v.kid == kid)
                .map_or(KeyState::Retired, |v| v.state);
            if state == KeyState::Retired {
                break;
            }
            let mut record = loaded.value;
            record.retire_at = Some(now);
            let algorithm =
                SigningAlgorithm::parse(&record.algorithm).ok_or_else(|| stored(&record, "unknown algorithm"))?;
            let next = match state {
                KeyState::Signing => Some(self.new_key(algorithm, now, now, next_serial(records.iter()))?),
                _ => None,
            };
            match self.storage.retire_key(&record, loaded.revision, next.as_ref()).await {
                Ok(()) => {
                    tracing::warn!(kid, "signing key retired");
                    successor = next;
                    break;
                }
                Err(StorageError::Conflict(_)) if attempt < ATTEMPTS => continue,
                Err(StorageError::Conflict(_)) => return Err(KeyError::Contended(kid.to_owned())),
                Err(e) => return Err(e.into()),
            }
        }
        self.reload().await?;
        Ok(self.views_of(std::iter::once(kid).chain(successor.as_ref().map(|s| s.kid.as_str()))))
    }

    /// Every stored key and what it is now, read from storage.
    pub async fn list(&self) -> Result<Vec<KeyView>, KeyError> {
        let records = self.storage.list_keys().await?;
        Ok(views(&records.iter().collect::<Vec<_>>(), self.clock.now()))
    }

    /// The keys `kids` names as the ring holds them now.
    fn views_of<'a>(&self, kids: impl Iterator<Item = &'a str>) -> Vec<KeyView> {
        let ring = self.ring();
        let all = views(&ring.keys.iter().map(|k| &k.record).collect::<Vec<_>>(), self.clock.now());
        let kids: Vec<&str> = kids.collect();
        all.into_iter().filter(|v| kids.contains(&v.kid.as_str())).collect()
    }

    pub fn jwks(&self) -> serde_json::Value {
        self.ring().jwks.clone()
    }

    /// The server's algorithm: access tokens, and the ID tokens of clients that chose none.
    pub(crate) fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// Every algorithm the server signs with, its own first.
    pub(crate) fn served(&self) -> impl Iterator<Item = SigningAlgorithm> + use<> {
        let server = self.algorithm;
        std::iter::once(server).chain(SigningAlgorithm::ALL.into_iter().filter(move |a| *a != server))
    }

    /// The key that signs with `algorithm` now, held still: what is computed from its
    /// algorithm (`at_hash`) and what it signs agree even if the keys change in between.
    pub(crate) fn signer(&self, algorithm: SigningAlgorithm) -> Result<Signer<'_>, KeyError> {
        let key = self.ring().signing[slot(algorithm)].clone().ok_or(KeyError::NoSigningKey(algorithm.name()))?;
        Ok(Signer { keys: self, key })
    }

    /// Signs `claims` as a JWT with the key of `algorithm` (see [`Signer::sign`]).
    pub(crate) async fn sign<T: Serialize>(
        &self,
        algorithm: SigningAlgorithm,
        typ: &str,
        claims: &T,
        lifetime: u64,
    ) -> Result<String, KeyError> {
        self.signer(algorithm)?.sign(typ, claims, lifetime).await
    }

    /// Makes sure `key`'s record says it signed a token living `lifetime` seconds, so that
    /// every replica keeps it published that long once it is replaced. Written only when the
    /// token outlives what the record says: a few times in a key's life, never per token.
    async fn cover(&self, key: &RingKey, lifetime: u64) -> Result<(), KeyError> {
        if lifetime <= key.covered.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self.covering.lock().await;
        let kid = &key.record.kid;
        for _ in 0..ATTEMPTS {
            if lifetime <= key.covered.load(Ordering::Acquire) {
                return Ok(());
            }
            let loaded = self.storage.get_key(kid).await?.ok_or_else(|| KeyError::Retired(kid.clone()))?;
            let mut record = loaded.value;
            if record.retire_at.is_some_and(|t| t <= self.clock.now()) {
                return Err(KeyError::Retired(kid.clone()));
            }
            if record.longest_token_lifetime >= lifetime {
                key.covered.fetch_max(record.longest_token_lifetime, Ordering::AcqRel);
                continue;
            }
            record.longest_token_lifetime = lifetime;
            match self.storage.update_key(&record, loaded.revision).await {
                Ok(()) => {
                    key.covered.fetch_max(lifetime, Ordering::AcqRel);
                    return Ok(());
                }
                // Another replica raised it, or retired the key: read it again.
                Err(StorageError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(KeyError::Contended(kid.clone()))
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

    /// A user's authenticator app secret, sealed for storage and bound to the user.
    pub fn seal_factor_secret(&self, user_id: &str, secret: &[u8]) -> Vec<u8> {
        self.sealer.seal(secret, &factor_secret_context(user_id))
    }

    /// The secret [`Self::seal_factor_secret`] sealed, or none if it does not open.
    pub fn open_factor_secret(&self, user_id: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        self.sealer.open(sealed, &factor_secret_context(user_id)).ok()
    }

    /// Verifies a JWT signed by one of our published keys: signature, `typ`, `iss`, and `exp`
    /// by the server's clock. A key this replica does not know is looked for again first.
    pub async fn verify<T: DeserializeOwned + Expiring>(&self, token: &str, typ: &str) -> Result<T, TokenRejected> {
        match self.verify_known::<T>(token, typ) {
            Err(TokenRejected::UnknownKey) => {
                self.look_again(Instant::now()).await;
                self.verify_known::<T>(token, typ)
            }
            result => result,
        }
    }

    fn verify_known<T: DeserializeOwned + Expiring>(&self, token: &str, typ: &str) -> Result<T, TokenRejected> {
        let ring = self.ring();
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
    pub async fn verify_expired_or_not<T: DeserializeOwned>(&self, token: &str, typ: &str) -> Result<T, TokenRejected> {
        match self.verify_signed::<T>(&self.ring(), token, typ) {
            Err(TokenRejected::UnknownKey) => {
                self.look_again(Instant::now()).await;
                self.verify_signed::<T>(&self.ring(), token, typ)
            }
            result => result,
        }
    }

    /// Reads the keys again for a token found at `found` to name a key this replica does not
    /// know (another replica may have just made it), unless a reload began since.
    /// One at a time and at most one a second, so a flood of made-up key ids costs at most
    /// one read a second; a token that arrives meanwhile waits for the next.
    async fn look_again(&self, found: Instant) {
        let mut last = self.looked_again.lock().await;
        if last.is_some_and(|t| t >= found) {
            return;
        }
        if let Some(t) = *last {
            tokio::time::sleep_until((t + LOOK_AGAIN_AFTER).into()).await;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "reading the signing keys again failed");
        }
    }

    /// Signature, `typ`, `alg` and `iss`; not `exp`, which the caller checks.
    fn verify_signed<T: DeserializeOwned>(&self, ring: &KeyRing, token: &str, typ: &str) -> Result<T, TokenRejected> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejected::Malformed)?;
        if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(typ)) {
            return Err(TokenRejected::Invalid);
        }
        let kid = header.kid.ok_or(TokenRejected::Invalid)?;
        let key = ring.verifying.get(&kid).ok_or(TokenRejected::UnknownKey)?;
        let material = key.material.as_deref().ok_or(TokenRejected::UnknownKey)?;
        if jose(material.algorithm) != header.alg {
            return Err(TokenRejected::Invalid);
        }
        let mut validation = Validation::new(jose(material.algorithm));
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_exp = false;
        jsonwebtoken::decode::<T>(token, &material.decoding, &validation)
            .map(|d| d.claims)
            .map_err(|_| TokenRejected::Invalid)
    }
}

/// One signing key, taken from the key ring at one moment.
pub(crate) struct Signer<'a> {
    keys: &'a Keys,
    key: Arc<RingKey>,
}

impl Signer<'_> {
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.key.material.as_ref().map_or(self.keys.algorithm, |m| m.algorithm)
    }

    /// Signs `claims` as a JWT with this key and the given `typ` header: the JWS Compact
    /// Serialization of RFC 7515 §7.1, `BASE64URL(header) '.' BASE64URL(claims) '.'
    /// BASE64URL(signature)`, the signature computed over the first two parts (§5.1). The
    /// token lives `lifetime` seconds: the key's record says so before the token is handed out.
    pub async fn sign<T: Serialize>(&self, typ: &str, claims: &T, lifetime: u64) -> Result<String, KeyError> {
        #[derive(Serialize)]
        struct JoseHeader<'a> {
            typ: &'a str,
            alg: &'a str,
            kid: &'a str,
        }
        let material = self.key.material()?;
        self.keys.cover(&self.key, lifetime).await?;
        let failed = |e: serde_json::Error| KeyError::Sign(e.to_string());
        let header = JoseHeader { typ, alg: material.algorithm.name(), kid: &self.key.record.kid };
        let header = serde_json::to_vec(&header).map_err(failed)?;
        let claims = serde_json::to_vec(claims).map_err(failed)?;
        let mut jws = URL_SAFE_NO_PAD.encode(header);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut jws);
        let signature = material.private.sign(jws.as_bytes())?;
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

fn factor_secret_context(user_id: &str) -> Vec<u8> {
    format!("totp-secret:{user_id}").into_bytes()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, algorithm: &str, signs_from: i64, lifetime: u64, retire_at: Option<i64>) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.into(),
            algorithm: algorithm.into(),
            sealed_private_key: Vec::new(),
            public_jwk: String::new(),
            created_at: signs_from.min(1000),
            signs_from: Some(signs_from),
            serial: 0,
            longest_token_lifetime: lifetime,
            retire_at,
            sealed_with: None,
        }
    }

    fn states(records: &[SigningKeyRecord], now: i64) -> (Vec<(KeyState, Option<i64>)>, Option<i64>) {
        let t = timeline(&records.iter().collect::<Vec<_>>(), now);
        (t.states, t.changes_at)
    }

    #[test]
    fn a_rotated_key_is_next_then_signs_and_its_predecessor_retires_after_its_longest_token() {
        use KeyState::*;
        let records = [key("a", "ES256", 1000, 3600, None), key("b", "ES256", 5000, 0, None)];
        assert_eq!(states(&records, 2000), (vec![(Signing, None), (Next, None)], Some(5000)));
        let until = 5000 + 3600 + RETIRE_MARGIN;
        assert_eq!(states(&records, 5000), (vec![(Retiring, Some(until)), (Signing, None)], Some(until)));
        assert_eq!(states(&records, until), (vec![(Retired, Some(until)), (Signing, None)], None));
    }

    #[test]
    fn of_two_keys_signing_from_one_second_the_one_made_later_signs() {
        use KeyState::*;
        let mut older = key("z", "ES256", 1000, 600, None);
        older.serial = 1;
        let mut newer = key("a", "ES256", 1000, 600, None);
        newer.serial = 2;
        let until = 1000 + 600 + RETIRE_MARGIN;
        assert_eq!(states(&[older, newer], 1000).0, vec![(Retiring, Some(until)), (Signing, None)]);
    }

    #[test]
    fn each_algorithm_has_its_own_signing_key() {
        use KeyState::*;
        let records = [key("e", "ES256", 1000, 600, None), key("r", "RS256", 2000, 600, None)];
        assert_eq!(states(&records, 3000).0, vec![(Signing, None), (Signing, None)]);
    }

    #[test]
    fn a_retired_key_is_out_at_once_and_one_retired_before_it_signed_never_replaced_anything() {
        use KeyState::*;
        // `b` signed and was retired at 6000, `c` signing since; `d` was retired before its time.
        let records = [
            key("a", "ES256", 1000, 3600, None),
            key("b", "ES256", 5000, 600, Some(6000)),
            key("c", "ES256", 6000, 0, None),
            key("d", "ES256", 9000, 0, Some(7000)),
        ];
        let (s, _) = states(&records, 6000);
        assert_eq!(s[0], (Retiring, Some(5000 + 3600 + RETIRE_MARGIN)), "replaced by b when b began");
        assert_eq!(s[1], (Retired, Some(6000)));
        assert_eq!(s[2], (Signing, None));
        assert_eq!(s[3], (Next, Some(7000)));
        let (s, _) = states(&records, 9500);
        assert_eq!((s[2], s[3]), ((Signing, None), (Retired, Some(7000))), "d never signs");
    }

    #[test]
    fn records_written_before_keys_were_published_ahead_read_as_they_did() {
        use KeyState::*;
        // An old key replaced with a `retire_at` of its time, its successor without `signs_from`.
        let old = key("old", "ES256", 1000, crate::limits::LONGEST_SIGNED_TOKEN_TTL, Some(2660));
        let mut new = key("new", "ES256", 2000, 0, None);
        new.signs_from = None;
        new.created_at = 2000;
        assert_eq!(states(&[old.clone(), new.clone()], 2500).0, vec![(Retiring, Some(2660)), (Signing, None)]);
        assert_eq!(states(&[old, new], 2660).0, vec![(Retired, Some(2660)), (Signing, None)]);
    }
}
