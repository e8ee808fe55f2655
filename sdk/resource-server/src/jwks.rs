//! The issuer's published keys (RFC 7517 JWK Set), fetched once and cached; re-fetched when
//! a token names a key the cache does not know (rotation), at most once per refetch interval,
//! and when the cached set is older than its maximum age.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

use crate::Error;
use crate::http::read_limited;

/// The largest JWK Set read from the issuer.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// After a failed first fetch, the next request may try again this much later at the soonest.
const FIRST_FETCH_RETRY: Duration = Duration::from_secs(1);

/// One published verification key, with the one algorithm it may verify.
pub(crate) struct VerifyingKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
    fetched_at: Instant,
}

#[derive(Default)]
struct RefreshState {
    /// The last re-fetch an unknown `kid` caused.
    last_unknown_kid_fetch: Option<Instant>,
    /// The last fetch that failed.
    last_failure: Option<Instant>,
}

/// Where the keys come from and how eagerly they are re-read.
pub(crate) struct Source<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) url: &'a str,
    pub(crate) timeout: Duration,
    /// At most one re-fetch per this interval for tokens naming an unknown key.
    pub(crate) refetch_interval: Duration,
    /// A cached set older than this is re-read before it is used again.
    pub(crate) max_age: Duration,
}

/// The cached key set of one validator (shared by its clones).
#[derive(Default)]
pub(crate) struct Cache {
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching, so concurrent requests wait for one fetch instead of each making one.
    refresh: tokio::sync::Mutex<RefreshState>,
}

fn unknown_key() -> Error {
    Error::InvalidToken("the token is signed with a key the issuer does not publish".into())
}

impl Cache {
    fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn store(&self, set: Arc<KeySet>) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(set);
    }

    /// The key `kid` names, fetching the key set when it is not cached yet, when `kid` is
    /// unknown (rate limited), or when the cache is older than its maximum age.
    pub(crate) async fn key(&self, kid: &str, source: &Source<'_>) -> Result<Arc<VerifyingKey>, Error> {
        if let Some(set) = self.current()
            && let Some(key) = set.keys.get(kid)
        {
            if set.fetched_at.elapsed() < source.max_age {
                return Ok(key.clone());
            }
            return self.refresh_stale(kid, key.clone(), source).await;
        }

        let mut state = self.refresh.lock().await;
        // Another request may have fetched the set while this one waited.
        let current = self.current();
        if let Some(key) = current.as_ref().and_then(|set| set.keys.get(kid)) {
            return Ok(key.clone());
        }
        if current.is_none() {
            if state.last_failure.is_some_and(|t| t.elapsed() < FIRST_FETCH_RETRY) {
                return Err(Error::Unavailable("the issuer's keys could not be fetched".into()));
            }
        } else {
            // A flood of made-up key ids must not become a flood of requests to the issuer.
            if state.last_unknown_kid_fetch.is_some_and(|t| t.elapsed() < source.refetch_interval) {
                return Err(unknown_key());
            }
            state.last_unknown_kid_fetch = Some(Instant::now());
        }
        let set = self.fetch_and_store(source, &mut state).await?;
        set.keys.get(kid).cloned().ok_or_else(unknown_key)
    }

    /// The cached set is past its maximum age: one request re-reads it while the others go on
    /// with the cached keys; if the issuer cannot be reached, the cached keys keep serving.
    async fn refresh_stale(
        &self,
        kid: &str,
        cached: Arc<VerifyingKey>,
        source: &Source<'_>,
    ) -> Result<Arc<VerifyingKey>, Error> {
        let Ok(mut state) = self.refresh.try_lock() else {
            return Ok(cached);
        };
        if state.last_failure.is_some_and(|t| t.elapsed() < source.refetch_interval) {
            return Ok(cached);
        }
        if let Some(set) = self.current()
            && set.fetched_at.elapsed() < source.max_age
        {
            return set.keys.get(kid).cloned().ok_or_else(unknown_key);
        }
        match self.fetch_and_store(source, &mut state).await {
            // A key the issuer no longer publishes verifies nothing more.
            Ok(set) => set.keys.get(kid).cloned().ok_or_else(unknown_key),
            Err(e) => {
                tracing::warn!(error = %e, url = source.url, "re-reading the JWKS failed; the cached keys keep serving");
                Ok(cached)
            }
        }
    }

    async fn fetch_and_store(&self, source: &Source<'_>, state: &mut RefreshState) -> Result<Arc<KeySet>, Error> {
        match fetch(source).await {
            Ok(keys) => {
                let set = Arc::new(KeySet { keys, fetched_at: Instant::now() });
                self.store(set.clone());
                state.last_failure = None;
                Ok(set)
            }
            Err(reason) => {
                state.last_failure = Some(Instant::now());
                tracing::warn!(url = source.url, %reason, "fetching the JWKS failed");
                Err(Error::Unavailable(format!("JWKS {}: {reason}", source.url)))
            }
        }
    }
}

async fn fetch(source: &Source<'_>) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    let response = source
        .http
        .get(source.url)
        .header(reqwest::header::ACCEPT, "application/json, application/jwk-set+json")
        .timeout(source.timeout)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = read_limited(response, MAX_JWKS_BYTES).await?;
    parse_key_set(&body)
}

/// The usable keys of a JWK Set: those with a `kid` and a signature `alg` that fits the key.
/// Anything else is skipped (and a `kid` that appears twice is dropped: it names no one key).
pub(crate) fn parse_key_set(body: &[u8]) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|e| format!("not a JWK Set: {e}"))?;
    let mut keys = HashMap::new();
    let mut ambiguous = HashSet::new();
    for value in set.keys {
        match usable(value) {
            Ok((kid, key)) => {
                if ambiguous.contains(&kid) || keys.insert(kid.clone(), Arc::new(key)).is_some() {
                    keys.remove(&kid);
                    ambiguous.insert(kid);
                }
            }
            Err(reason) => tracing::debug!(%reason, "JWKS entry skipped"),
        }
    }
    Ok(keys)
}

fn usable(value: Value) -> Result<(String, VerifyingKey), String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("not a JWK: {e}"))?;
    let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty()).ok_or("no kid")?;
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return Err(format!("{kid}: not a signature key"));
    }
    if jwk.common.key_operations.as_ref().is_some_and(|ops| !ops.contains(&KeyOperations::Verify)) {
        return Err(format!("{kid}: key_ops does not allow verify"));
    }
    // The algorithm comes from the key, never from a token: a key without `alg` is not guessed at.
    let algorithm = match jwk.common.key_algorithm {
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::ES384) => Algorithm::ES384,
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::RS384) => Algorithm::RS384,
        Some(KeyAlgorithm::RS512) => Algorithm::RS512,
        Some(KeyAlgorithm::PS256) => Algorithm::PS256,
        Some(KeyAlgorithm::PS384) => Algorithm::PS384,
        Some(KeyAlgorithm::PS512) => Algorithm::PS512,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(other) => return Err(format!("{kid}: alg {other} is not an asymmetric signature algorithm")),
        None => return Err(format!("{kid}: no alg")),
    };
    let fits = match (&jwk.algorithm, algorithm) {
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::RSA(_), a) => matches!(
            a,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => p.curve == EllipticCurve::Ed25519,
        _ => false,
    };
    if !fits {
        return Err(format!("{kid}: the key does not fit its alg {algorithm:?}"));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("{kid}: {e}"))?;
    Ok((kid, VerifyingKey { algorithm, key }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn ec(kid: &str, alg: &str, crv: &str) -> Value {
        json!({"kty": "EC", "crv": crv, "x": X, "y": Y, "use": "sig", "alg": alg, "kid": kid})
    }

    #[test]
    fn keeps_only_keys_whose_alg_fits() {
        let body = json!({"keys": [
            ec("good", "ES256", "P-256"),
            ec("wrong-curve", "ES384", "P-256"),
            ec("rsa-alg-on-ec", "RS256", "P-256"),
            {"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": "no-alg"},
            {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256", "kid": "hmac"},
            {"kty": "EC", "crv": "P-256", "x": X, "y": Y, "alg": "ES256", "use": "enc", "kid": "enc"},
            {"kty": "EC", "crv": "P-256", "x": X, "y": Y, "alg": "ES256", "key_ops": ["sign"], "kid": "ops"},
            ec("twice", "ES256", "P-256"),
            ec("twice", "ES256", "P-256"),
            {"kty": "unknown", "kid": "odd", "alg": "ES256"},
            ec("", "ES256", "P-256"),
        ]});
        let keys = parse_key_set(body.to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["good"]);
        assert_eq!(keys["good"].algorithm, Algorithm::ES256);
        assert!(parse_key_set(b"{\"nokeys\": []}").is_err());
    }
}
