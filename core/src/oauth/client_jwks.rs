//! A client's public keys (RFC 7517 JWK Set), for what it signs: client assertions (RFC
//! 7523) and request objects (OIDC Core §6). Registered by value (`jwks`) or by reference
//! (`jwks_uri`, OIDC Registration §2). A set by reference is fetched through
//! [`crate::outbound`], kept [`FRESH`], and fetched again early when a JWT names a key id the
//! kept set lacks (the client rotated its keys), at most once per [`REFETCH_AFTER`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use parking_lot::Mutex;

use super::Protocol;
use crate::limits::{MAX_CACHED_JWK_SETS, MAX_JWKS_BYTES, make_room};
use crate::model::Client;

/// How long a fetched set is used before it is fetched again.
pub const FRESH: Duration = Duration::from_secs(300);
/// The soonest a set is fetched again for a key id it lacks: a caller naming key ids at
/// random makes the server fetch a client's set at most this often.
pub const REFETCH_AFTER: Duration = Duration::from_secs(1);

/// Fetched sets by URI, with when each was fetched.
#[derive(Default)]
pub struct Cache {
    kept: Mutex<HashMap<String, (Instant, Arc<JwkSet>)>>,
}

/// The client's JWK Set, the key `kid` among it when named: from its registration, or
/// fetched from its `jwks_uri`. Or why there is none.
pub async fn key_set(app: &Protocol, client: &Client, kid: Option<&str>) -> Result<Arc<JwkSet>, &'static str> {
    if let Some(jwks) = &client.doc.jwks {
        return serde_json::from_value(jwks.clone()).map(Arc::new).map_err(|_| "the client's keys are unusable");
    }
    let Some(uri) = &client.doc.jwks_uri else { return Err("the client has no keys") };
    let kept = app.client_jwks.kept.lock().get(uri).cloned();
    if let Some((at, set)) = kept {
        let has_key = kid.is_none_or(|kid| set.keys.iter().any(|k| k.common.key_id.as_deref() == Some(kid)));
        if at.elapsed() < FRESH && (has_key || at.elapsed() < REFETCH_AFTER) {
            return Ok(set);
        }
    }
    let url = url::Url::parse(uri).map_err(|_| "the client's jwks_uri is not a URL")?;
    let body =
        app.outbound.get(&url, "application/jwk-set+json, application/json", MAX_JWKS_BYTES).await.map_err(|e| {
            tracing::warn!(client = %client.id, error = %e, "the client's jwks_uri could not be read");
            "the client's jwks_uri could not be read"
        })?;
    let set: Arc<JwkSet> =
        Arc::new(serde_json::from_slice(&body).map_err(|_| "the client's jwks_uri holds no JWK Set")?);
    let mut kept = app.client_jwks.kept.lock();
    make_room(&mut kept, MAX_CACHED_JWK_SETS, |_, (at, _)| at.elapsed() < FRESH);
    kept.insert(uri.clone(), (Instant::now(), set.clone()));
    Ok(set)
}
