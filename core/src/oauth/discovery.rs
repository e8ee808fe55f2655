//! OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 Authorization Server Metadata, and the
//! JWK Set (RFC 7517 §5) they point to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::profiles::{Endpoint, Profile};
use super::tokens;
use super::{App, Protocol};
use crate::crypto::{CLIENT_JWT_ALGORITHMS, SigningAlgorithm};
use crate::error::OAuthError;
use crate::model::{GrantType, ResponseMode, ResponseType};

use super::tokens::SERVER_SCOPES;

/// How long the scopes of the registered clients are reused before being read again.
const SCOPES_TTL: Duration = Duration::from_secs(30);

/// `scopes_supported`, read from the registered clients at most once per [`SCOPES_TTL`].
#[derive(Default)]
struct ScopesCache {
    cached: parking_lot::Mutex<Option<(Instant, Arc<Vec<String>>)>>,
    /// One reader of the clients at a time; the others wait for its answer.
    refreshing: tokio::sync::Mutex<()>,
}

impl ScopesCache {
    fn fresh(&self) -> Option<Arc<Vec<String>>> {
        self.cached.lock().as_ref().filter(|(at, _)| at.elapsed() < SCOPES_TTL).map(|(_, v)| v.clone())
    }

    /// The server's own scopes, then every scope a registered, unexpired client may be granted.
    async fn get(&self, app: &Protocol) -> Arc<Vec<String>> {
        if let Some(v) = self.fresh() {
            return v;
        }
        let _one = self.refreshing.lock().await;
        if let Some(v) = self.fresh() {
            return v;
        }
        let scopes = match app.storage.list_clients().await {
            Ok(clients) => {
                let now = app.clock.now();
                let own = SERVER_SCOPES.iter().copied().chain(app.config.tokens.roles_scope.as_deref());
                let mut scopes: Vec<String> = own.map(str::to_owned).collect();
                let mut registered: Vec<&String> =
                    clients.iter().filter(|c| !c.is_expired(now)).flat_map(|c| &c.doc.scopes).collect();
                registered.sort();
                registered.dedup();
                let more: Vec<String> = registered.into_iter().filter(|s| !scopes.contains(s)).cloned().collect();
                scopes.extend(more);
                Arc::new(scopes)
            }
            Err(e) => {
                // Keep answering: the last known list, else the server's own scopes.
                tracing::warn!(error = %e, "reading the clients for scopes_supported failed");
                let last = self.cached.lock().as_ref().map(|(_, v)| v.clone());
                last.unwrap_or_else(|| Arc::new(SERVER_SCOPES.iter().map(|s| (*s).to_owned()).collect()))
            }
        };
        *self.cached.lock() = Some((Instant::now(), scopes.clone()));
        scopes
    }
}

/// What discovery serves: the scopes of the registered clients, read at most once per
/// [`SCOPES_TTL`], and the metadata document as last written with what it was written from.
#[derive(Default)]
pub struct Cache {
    scopes: ScopesCache,
    document: parking_lot::Mutex<Option<(Varying, Bytes)>>,
}

/// What of the metadata can change while the server runs: the scopes registered clients may
/// be granted, the extension grants loaded plugins answer and the consent UI's locales.
/// The rest follows from the configuration, which does not.
#[derive(PartialEq)]
struct Varying {
    scopes: Arc<Vec<String>>,
    extension_grants: Vec<String>,
    locales: Vec<String>,
}

impl Cache {
    /// The metadata document, written again only when what it varies with has changed.
    async fn document(&self, app: &App) -> Result<Bytes, OAuthError> {
        let varying = Varying {
            scopes: self.scopes.get(app).await,
            extension_grants: app.host.extension_grant_types(),
            locales: app.host.consent_locales(&app.host.defaults.consent),
        };
        if let Some((from, document)) = self.document.lock().as_ref()
            && *from == varying
        {
            return Ok(document.clone());
        }
        let document = serde_json::to_vec(&metadata(app, &varying))
            .map_err(|e| OAuthError::internal("writing the discovery document", e))?;
        let document = Bytes::from(document);
        *self.document.lock() = Some((varying, document.clone()));
        Ok(document)
    }
}

fn metadata(app: &App, varying: &Varying) -> Value {
    let base = app.config.issuer();
    let Varying { scopes, extension_grants, locales } = varying;
    let served: Vec<&str> = app.keys.served().map(SigningAlgorithm::name).collect();
    let mut metadata = json!({
        "issuer": base,
        "jwks_uri": format!("{base}/jwks.json"),
        "scopes_supported": **scopes,
        "response_types_supported": ResponseType::SUPPORTED,
        "response_modes_supported": ResponseMode::SUPPORTED,
        // The server's own grants, then the extension grants its plugins answer now (RFC 6749 §4.5).
        "grant_types_supported": GrantType::ALL
            .map(GrantType::as_str)
            .into_iter()
            .map(str::to_owned)
            .chain(extension_grants.iter().cloned())
            .collect::<Vec<_>>(),
        "subject_types_supported": ["public"],
        // OIDC Discovery §3: RS256 among them. Every algorithm served, the server's first.
        "id_token_signing_alg_values_supported": served,
        "token_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": CLIENT_JWT_ALGORITHMS,
        // RFC 7662 §2.1: only an authenticated (confidential) client may introspect.
        "introspection_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"],
        "revocation_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "claims_supported": tokens::claims_supported(app.config.tokens.roles_scope.as_deref()),
        // OIDC Discovery §3: "1" a password, "2" two factors (`crate::factors`).
        "acr_values_supported": crate::factors::ACR_VALUES,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "ui_locales_supported": locales,
        "claims_parameter_supported": false,
        "request_parameter_supported": true,
        // Unsigned (`none`) only from a client registered for it.
        "request_object_signing_alg_values_supported":
            std::iter::once("none").chain(CLIENT_JWT_ALGORITHMS).collect::<Vec<_>>(),
        // `request_uri`: from the pushed authorization request endpoint (RFC 9126), or one of
        // the client's registered `request_uris` (OIDC Core §6.2), which is fetched.
        "request_uri_parameter_supported": true,
        "require_request_uri_registration": true,
        "require_pushed_authorization_requests": false,
        "authorization_response_iss_parameter_supported": true,
        // OIDC Back-Channel Logout 1.0 §2.1: logout tokens, with `sid` (ID tokens carry it).
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        // JARM §4: JWT-secured responses are signed with any algorithm served, never encrypted.
        "authorization_signing_alg_values_supported": served,
        // RFC 9449 §5.1.
        "dpop_signing_alg_values_supported": super::dpop::ALGORITHMS,
    });
    if let Some(map) = metadata.as_object_mut() {
        for endpoint in Endpoint::ALL {
            map.insert(endpoint.metadata_name().into(), format!("{base}{}", Profile::Native.path(endpoint)).into());
        }
        // RFC 8414 §2: advertised only where it is served.
        if app.config.registration.enabled {
            let endpoint = Endpoint::Registration;
            map.insert(endpoint.metadata_name().into(), format!("{base}{}", Profile::Native.path(endpoint)).into());
        }
    }
    metadata
}

/// OIDC Discovery §4.2, RFC 8414 §3.2: the metadata as a JSON object.
pub async fn openid_configuration(State(app): State<App>) -> Response {
    match app.discovery.document(&app).await {
        Ok(document) => ([(header::CONTENT_TYPE, "application/json")], document).into_response(),
        Err(e) => e.into_response(),
    }
}

/// How long a JWK Set may be cached (`Cache-Control: max-age`), at most: less than a
/// rotated key is published before it signs (`keys.publish_ahead`), so that a cache made
/// before a rotation has been refreshed by the time the new key signs.
const JWKS_MAX_AGE: u64 = 300;

pub async fn jwks(State(app): State<App>) -> impl IntoResponse {
    let max_age = JWKS_MAX_AGE.min(app.config.keys.publish_ahead / 2);
    let cache = format!("public, max-age={max_age}");
    (
        [(header::CONTENT_TYPE, "application/jwk-set+json".to_owned()), (header::CACHE_CONTROL, cache)],
        Json(app.keys.jwks()),
    )
}
