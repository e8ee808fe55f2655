//! Dynamic Client Registration (RFC 7591) and its management protocol (RFC 7592), served only
//! where `registration.enabled`. A registration's metadata (§2) becomes a `registry::NewClient`
//! and is validated by the registry's one path (`registry::new_client`), as the admin API's and
//! the CLI's are. A registered client names no plugin (it gets the server's scope policy and
//! consent UI), never skips consent and introspects nothing but its own tokens: what a client
//! may do beyond that is the operator's to give. Metadata this server does not read is ignored
//! (RFC 7591 §2).
//!
//! Where `registration.require_initial_access_token`, a registration must carry an initial
//! access token an administrator issued (`Authorization: Bearer`, RFC 7591 §3), each kept as
//! its SHA-256, with an expiry and an optional number of uses, one spent per registration in
//! the group that creates the client.
//!
//! Its configuration endpoint (RFC 7592 §2) is `/register/{client_id}`, read (`GET`), replaced
//! (`PUT`) and deleted (`DELETE`) with the registration access token (stored as its SHA-256).
//! Every answer carrying the client's information issues a new registration access token, and
//! the one used is void from then on (RFC 7592 §3); a `PUT` of a client that authenticates with
//! a secret issues a new secret too (§2.2).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::App;
use super::profiles::{Endpoint, Profile};
use crate::crypto::{hash_secret, random_token, verify_secret};
use crate::error::OAuthError;
use crate::model::{Client, ClientRegistration, InitialAccessToken, TokenEndpointAuthMethod, now};
use crate::plugin::store::Write;
use crate::registry::{NewClient, RegistryError, new_client};
use crate::storage::{StorageError, write};

/// RFC 7591 §2: the client metadata read here.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Metadata {
    /// Present in an update (RFC 7592 §2.2), where it must name the client.
    client_id: Option<String>,
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Vec<String>,
    response_types: Vec<String>,
    client_name: Option<String>,
    scope: Option<String>,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
    post_logout_redirect_uris: Vec<String>,
    request_uris: Vec<String>,
    backchannel_logout_uri: Option<String>,
    id_token_signed_response_alg: Option<String>,
    authorization_signed_response_alg: Option<String>,
    request_object_signing_alg: Option<String>,
    dpop_bound_access_tokens: bool,
}

impl Metadata {
    fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        serde_json::from_slice(body)
            .map_err(|e| OAuthError::InvalidClientMetadata(format!("the body is no client metadata object: {e}")))
    }

    /// The registration the metadata asks for. RFC 7591 §2: `client_secret_basic` unless
    /// another method is named; `none` makes a public client.
    fn into_new_client(self) -> NewClient {
        let public = self.token_endpoint_auth_method.as_deref() == Some("none");
        let scopes =
            self.scope.as_deref().unwrap_or_default().split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        NewClient {
            name: self.client_name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| "Registered client".into()),
            redirect_uris: self.redirect_uris,
            grant_types: self.grant_types,
            response_types: self.response_types,
            scopes,
            public,
            token_endpoint_auth_method: self.token_endpoint_auth_method,
            jwks: self.jwks,
            jwks_uri: self.jwks_uri,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            request_uris: self.request_uris,
            backchannel_logout_session_required: self.backchannel_logout_uri.is_some(),
            backchannel_logout_uri: self.backchannel_logout_uri,
            id_token_signed_response_alg: self.id_token_signed_response_alg,
            authorization_signed_response_alg: self.authorization_signed_response_alg,
            request_object_signing_alg: self.request_object_signing_alg,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            ..NewClient::default()
        }
    }
}

/// RFC 7591 §3.2.2: a redirect URI's fault is `invalid_redirect_uri`, any other field's
/// `invalid_client_metadata`.
fn refused(e: RegistryError) -> OAuthError {
    match e {
        RegistryError::Field { field: field @ ("redirect_uris" | "post_logout_redirect_uris"), reason } => {
            OAuthError::InvalidRedirectUri(format!("`{field}`: {reason}"))
        }
        RegistryError::Storage(e) => e.into(),
        e => OAuthError::InvalidClientMetadata(e.to_string()),
    }
}

/// A validated client, with its secret (sealed where `client_secret_jwt` needs it), under `id`
/// when it replaces a registered client.
fn client_of(app: &App, metadata: Metadata, id: Option<&str>) -> Result<(Client, Option<String>), OAuthError> {
    let new = metadata.into_new_client();
    let algorithms = [
        ("id_token_signed_response_alg", &new.id_token_signed_response_alg),
        ("authorization_signed_response_alg", &new.authorization_signed_response_alg),
    ];
    for (field, alg) in algorithms {
        if let Some(alg) = alg.as_deref()
            && !app.keys.served().any(|served| served.name() == alg)
        {
            return Err(OAuthError::InvalidClientMetadata(format!(
                "`{field}`: `{alg}` is not an algorithm this server signs with"
            )));
        }
    }
    let (mut client, secret) = new_client(new).map_err(refused)?;
    if let Some(id) = id {
        client.id = id.to_owned();
    }
    if client.doc.token_endpoint_auth_method == Some(TokenEndpointAuthMethod::ClientSecretJwt)
        && let Some(secret) = &secret
    {
        client.doc.sealed_secret = Some(app.keys.seal_client_secret(&client.id, secret));
    }
    Ok((client, secret))
}

/// RFC 7591 §3.2.1, RFC 7592 §3: the client's information, with a registration access token.
fn information(app: &App, client: &Client, secret: Option<&str>, token: &str) -> Value {
    let d = &client.doc;
    let method = match d.token_endpoint_auth_method {
        Some(m) => m.as_str(),
        None if client.is_public() => "none",
        None => "client_secret_basic",
    };
    let response_types = if d.response_types.is_empty() { vec!["code".to_owned()] } else { d.response_types.clone() };
    let mut info = json!({
        "client_id": client.id,
        "client_id_issued_at": client.created_at,
        "client_name": d.name,
        "redirect_uris": d.redirect_uris,
        "grant_types": d.grant_types,
        "response_types": response_types,
        "token_endpoint_auth_method": method,
        "scope": d.scopes.join(" "),
        "registration_access_token": token,
        // RFC 7592 §2: the client configuration endpoint, beneath the registration endpoint.
        "registration_client_uri":
            format!("{}{}/{}", app.config.issuer(), Profile::Native.path(Endpoint::Registration), client.id),
    });
    if let (Some(map), Some(secret)) = (info.as_object_mut(), secret) {
        map.insert("client_secret".into(), secret.into());
        // The secret does not expire.
        map.insert("client_secret_expires_at".into(), 0.into());
    }
    info
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, [(axum::http::header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// RFC 7591 §3: the initial access token the request carries, usable now, and the write that
/// spends one of its uses (its revision the precondition); `invalid_token` for one that is not
/// usable, or for none where `registration.require_initial_access_token`.
async fn initial_access_token(app: &App, headers: &HeaderMap) -> Result<Option<Write>, OAuthError> {
    let Some(token) = bearer(headers) else {
        if app.config.registration.require_initial_access_token {
            return Err(OAuthError::InvalidToken("registration needs an initial access token".into()));
        }
        return Ok(None);
    };
    let denied = || OAuthError::InvalidToken("the initial access token is invalid, expired or used up".into());
    let loaded = app.storage.get_loaded::<InitialAccessToken>(&hash_secret(token)).await?.ok_or_else(denied)?;
    let mut record = loaded.value;
    if record.expires_at <= app.clock.now() || record.uses_left == Some(0) {
        return Err(denied());
    }
    record.uses_left = record.uses_left.map(|n| n - 1);
    Ok(Some(write::update(&record, loaded.revision)?))
}

/// RFC 7591 §3.1: registers a client; 201 with its information (§3.2.1).
pub async fn register(
    State(app): State<App>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    // An open endpoint writes a record per request: registrations are counted per address.
    if app.sign_in_limit.admit_registration(super::peer(&extensions)).is_err() {
        return Err(OAuthError::TooManyAttempts("too many registrations from this address; try again later".into()));
    }
    let spend = initial_access_token(&app, &headers).await?;
    let metadata = Metadata::parse(&body)?;
    if metadata.client_id.is_some() {
        return Err(OAuthError::InvalidClientMetadata("a client id is issued, not chosen".into()));
    }
    let (client, secret) = client_of(&app, metadata, None)?;
    let token = random_token(32);
    let registration =
        ClientRegistration { client_id: client.id.clone(), token_hash: hash_secret(&token), created_at: now() };
    let spent = spend.is_some();
    let writes = spend.into_iter().chain([write::create(&client)?, write::create(&registration)?]).collect();
    match app.storage.apply(writes).await {
        Ok(()) => {}
        Err(StorageError::Conflict(0)) if spent => {
            return Err(OAuthError::InvalidToken("the initial access token was used meanwhile; try again".into()));
        }
        Err(e) => return Err(e.into()),
    }
    let detail = serde_json::json!({ "name": client.doc.name, "registration": true, "initial_access_token": spent });
    registered(&app, crate::audit::types::CLIENT_CREATED, &client.id, detail).await;
    Ok(answer(StatusCode::CREATED, information(&app, &client, secret.as_deref(), &token)))
}

/// RFC 7592 §2: the registered client the request's registration access token is for. Any
/// failure, a client that does not exist included, is `invalid_token` (§2.1).
async fn authorized(app: &App, headers: &HeaderMap, client_id: &str) -> Result<(Client, u64), OAuthError> {
    let denied = || OAuthError::InvalidToken("the registration access token is invalid".into());
    let token = bearer(headers).ok_or_else(denied)?;
    if client_id.len() > crate::limits::MAX_CLIENT_ID_BYTES {
        return Err(denied());
    }
    let Some(registration) = app.storage.get_loaded::<ClientRegistration>(client_id).await? else {
        return Err(denied());
    };
    if !verify_secret(token, &registration.value.token_hash) {
        return Err(denied());
    }
    let client = app.storage.get::<Client>(client_id).await?.ok_or_else(denied)?;
    Ok((client, registration.revision))
}

/// A new registration access token for a client read at `revision`, written with `client`
/// when it changed; `invalid_token` when another request used the old token meanwhile.
async fn reissue(app: &App, client: Option<&Client>, id: &str, revision: u64) -> Result<String, OAuthError> {
    let token = random_token(32);
    let registration =
        ClientRegistration { client_id: id.to_owned(), token_hash: hash_secret(&token), created_at: now() };
    let mut writes = vec![write::update(&registration, revision)?];
    if let Some(client) = client {
        writes.push(write::put(client)?);
    }
    match app.storage.apply(writes).await {
        Ok(()) => Ok(token),
        Err(StorageError::Conflict(_)) => {
            Err(OAuthError::InvalidToken("the registration access token was used meanwhile".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// RFC 7592 §2.1: the client's information.
pub async fn read(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, OAuthError> {
    let (client, revision) = authorized(&app, &headers, &id).await?;
    let token = reissue(&app, None, &id, revision).await?;
    Ok(answer(StatusCode::OK, information(&app, &client, None, &token)))
}

/// RFC 7592 §2.2: the client's metadata replaced by the request's.
pub async fn update(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let (old, revision) = authorized(&app, &headers, &id).await?;
    let metadata = Metadata::parse(&body)?;
    if metadata.client_id.as_deref() != Some(id.as_str()) {
        return Err(OAuthError::InvalidRequest("`client_id` must be the client's own (RFC 7592 §2.2)".into()));
    }
    let (mut client, secret) = client_of(&app, metadata, Some(&id))?;
    client.created_at = old.created_at;
    let token = reissue(&app, Some(&client), &id, revision).await?;
    let detail = serde_json::json!({ "name": client.doc.name, "registration": true });
    registered(&app, crate::audit::types::CLIENT_UPDATED, &id, detail).await;
    Ok(answer(StatusCode::OK, information(&app, &client, secret.as_deref(), &token)))
}

/// A registered client's own change is an audit event with the client as its actor.
async fn registered(app: &App, kind: &'static str, id: &str, detail: serde_json::Value) {
    crate::audit::record(&app.storage, kind, &crate::audit::client(id), ("client", id), detail).await;
}

/// RFC 7592 §2.3: the client deleted, and everything issued to it.
pub async fn delete(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    authorized(&app, &headers, &id).await?;
    app.storage.delete_client(&id).await?;
    registered(&app, crate::audit::types::CLIENT_DELETED, &id, serde_json::json!({ "registration": true })).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
