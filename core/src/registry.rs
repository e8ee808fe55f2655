//! Registering clients and users, and rotating keys: the operations the CLI and the admin API
//! share, each checking who asks ([`Caller`]).

use serde::{Deserialize, Serialize};

use crate::audit::{self, types};
use crate::crypto::{hash_secret, random_token};
use crate::keys::{KeyError, KeyView, Keys};
use crate::limits;
use crate::model::*;
use crate::passwords::{PasswordError, Passwords};
use crate::storage::{Storage, StorageError};

/// Who asks for an operation.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The operator: the CLI, or the admin API's bootstrap token. May do anything; acts for
    /// a named user where an operation needs one.
    Operator,
    /// A signed-in user: through an access token granted the admin scope, or, for what a
    /// user does to their own account (changing their password), through their browser's
    /// session.
    User(Box<User>),
}

impl Caller {
    pub(crate) fn is_administrator(&self) -> bool {
        match self {
            Caller::Operator => true,
            Caller::User(u) => u.doc.roles.iter().any(|r| r == roles::SYSTEM_ADMINISTRATOR),
        }
    }

    /// Who the caller is in an audit event: the operator, or `user:<id>`.
    pub fn actor(&self) -> String {
        match self {
            Caller::Operator => audit::OPERATOR.to_owned(),
            Caller::User(u) => audit::user(&u.id),
        }
    }

    pub(crate) fn require_administrator(&self) -> Result<(), RegistryError> {
        if self.is_administrator() {
            Ok(())
        } else {
            Err(RegistryError::Forbidden(format!("only a `{}` may do this", roles::SYSTEM_ADMINISTRATOR)))
        }
    }

    /// The user an operation is done as: the caller, or for the operator the user named in
    /// `field` of the request.
    pub(crate) async fn acting_user(
        &self,
        storage: &Storage,
        named: Option<&str>,
        field: &'static str,
    ) -> Result<User, RegistryError> {
        match (self, named) {
            (Caller::User(u), None) => Ok((**u).clone()),
            (Caller::User(u), Some(id)) if id == u.id => Ok((**u).clone()),
            (Caller::User(_), Some(_)) => Err(RegistryError::field(field, "only the operator acts for another user")),
            (Caller::Operator, Some(id)) => {
                storage.get_user(id).await?.ok_or_else(|| RegistryError::field(field, format!("no user `{id}`")))
            }
            (Caller::Operator, None) => {
                Err(RegistryError::field(field, "name the user this is done as: the operator is no user"))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Invalid(String),
    /// One field of the request is wrong: which, and why.
    #[error("`{field}`: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("`{0}` already exists")]
    Exists(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The records are not in a state that allows it (a template that clients use).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Storage(StorageError),
    /// The server failed at something that is not the request's fault.
    #[error("{0}")]
    Internal(String),
    /// The server is at capacity for this now (every password hash slot is taken).
    #[error("the server is busy; try again in a moment")]
    Busy,
    /// A scope policy failed as it would on a real request (a trap, a plugin not loaded, a
    /// store that cannot be reached): the error that request would get.
    #[error("{}: {}", .0.code(), .0)]
    Policy(crate::error::OAuthError),
}

impl RegistryError {
    pub fn field(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Field { field, reason: reason.into() }
    }
}

impl From<KeyError> for RegistryError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Storage(e) => e.into(),
            KeyError::Unknown(kid) => RegistryError::NotFound(format!("no signing key `{kid}`")),
            KeyError::Contended(_) => RegistryError::Conflict("the key kept changing; try again".into()),
            e => RegistryError::Internal(format!("signing keys: {e}")),
        }
    }
}

impl From<StorageError> for RegistryError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Duplicate => RegistryError::Exists("record".into()),
            StorageError::Conflict(_) => RegistryError::Conflict("the record changed meanwhile; try again".into()),
            e => RegistryError::Storage(e),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewClient {
    pub name: String,
    pub description: String,
    pub redirect_uris: Vec<String>,
    /// The origins of the browser applications that call its token, userinfo, revocation,
    /// pushed authorization and device authorization endpoints from another origin
    /// (`https://app.example.com`; `http` on a loopback host); unset: the origins of its
    /// http(s) redirect URIs; empty: none.
    pub allowed_origins: Option<Vec<String>>,
    pub grant_types: Vec<String>,
    /// The `response_type`s it may use (OIDC Core §3): empty is `code` alone; those with
    /// `id_token` or `token` (implicit, hybrid) only when listed.
    pub response_types: Vec<String>,
    pub scopes: Vec<String>,
    pub public: bool,
    pub allow_plain_pkce: bool,
    pub always_issue_refresh_token: bool,
    pub skip_consent: bool,
    pub expires_at: Option<i64>,
    pub access_token_ttl: Option<u64>,
    pub refresh_token_ttl: Option<u64>,
    pub code_ttl: Option<u64>,
    /// The client template the client is created from (it must exist).
    pub template_id: Option<String>,
    /// The user registering the client, when a user does.
    pub owner: Option<String>,
    pub scope_policy: Option<String>,
    pub consent_ui: Option<String>,
    pub organization_id: Option<String>,
    /// May introspect every client's tokens (a resource server); confidential clients only.
    pub introspect_any: bool,
    /// `client_secret_basic` (also `client_secret_post`), `client_secret_post`,
    /// `client_secret_jwt`, `private_key_jwt` (needs `jwks`) or `none` (public clients).
    pub token_endpoint_auth_method: Option<String>,
    /// The client's public keys, a JWK Set, for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its JWK Set (OIDC Registration §2), for `private_key_jwt`
    /// instead of `jwks`: fetched when needed and kept for a few minutes.
    pub jwks_uri: Option<String>,
    /// Its authorization requests must come through the pushed authorization request
    /// endpoint (RFC 9126).
    pub require_pushed_authorization_requests: bool,
    /// Where a logout it starts may send the browser back (OIDC RP-Initiated Logout §3).
    pub post_logout_redirect_uris: Vec<String>,
    /// The algorithm its request objects are signed with; `none` lets it send unsigned ones.
    pub request_object_signing_alg: Option<String>,
    /// Where its request objects may be fetched from by reference (OIDC Core §6.2,
    /// Registration §2): the only `request_uri`s the server fetches for it.
    pub request_uris: Vec<String>,
    /// Where the server posts a logout token when a session it signed in to ends (OIDC
    /// Back-Channel Logout 1.0 §2.2).
    pub backchannel_logout_uri: Option<String>,
    /// Its logout tokens must carry `sid` (§2.2); they always do here.
    pub backchannel_logout_session_required: bool,
    /// The audiences (resource servers) token exchange may issue its tokens for (RFC 8693
    /// §2.1), besides this server: logical names or absolute URIs.
    pub audiences: Vec<String>,
    /// The algorithm its ID tokens are signed with (OIDC Registration §2), one the server
    /// serves; unset: the server's.
    pub id_token_signed_response_alg: Option<String>,
    /// The algorithm its JWT-secured authorization responses are signed with (JARM §3), one
    /// the server serves; unset: its ID tokens'.
    pub authorization_signed_response_alg: Option<String>,
    /// Its access tokens are always DPoP-bound (RFC 9449 §5.2): a token request without a
    /// DPoP proof is refused.
    pub dpop_bound_access_tokens: bool,
}

/// What registration returns: the secret appears here once and is never stored.
#[derive(Debug, Serialize)]
pub struct RegisteredClient {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// Registers a client. `keys` seals the secret of a `client_secret_jwt` client, whose HMAC
/// needs the secret itself; every other secret is kept only as its hash.
pub async fn register_client(
    storage: &Storage,
    keys: &crate::keys::Keys,
    caller: &Caller,
    new: NewClient,
) -> Result<RegisteredClient, RegistryError> {
    caller.require_administrator()?;
    let (mut client, secret) = checked_client(storage, keys, new)?;
    if client.doc.token_endpoint_auth_method == Some(TokenEndpointAuthMethod::ClientSecretJwt)
        && let Some(secret) = &secret
    {
        client.doc.sealed_secret = Some(keys.seal_client_secret(&client.id, secret));
    }
    storage.create_client(&client).await?;
    let detail = serde_json::json!({ "name": client.doc.name });
    audit::record(storage, types::CLIENT_CREATED, &caller.actor(), ("client", &client.id), detail).await;
    Ok(RegisteredClient { client_id: client.id, client_secret: secret })
}

/// A registration checked as every registration and update is: the record
/// ([`new_client`]), the algorithms it asks for (only one the server signs with can be
/// promised), and the plugins it names (loaded now, of their kind).
fn checked_client(
    storage: &Storage,
    keys: &crate::keys::Keys,
    new: NewClient,
) -> Result<(Client, Option<String>), RegistryError> {
    let algorithms = [
        ("id_token_signed_response_alg", &new.id_token_signed_response_alg),
        ("authorization_signed_response_alg", &new.authorization_signed_response_alg),
    ];
    for (field, alg) in algorithms {
        if let Some(alg) = alg.as_deref()
            && !keys.served().any(|served| served.name() == alg)
        {
            let served: Vec<&str> = keys.served().map(|a| a.name()).collect();
            return Err(RegistryError::field(
                field,
                format!("`{alg}` is not an algorithm this server signs with: one of {}", served.join(", ")),
            ));
        }
    }
    let (client, secret) = new_client(new)?;
    if let Some(missing) = storage.missing_plugins(&client).into_iter().next() {
        return Err(not_loaded(missing.field, &missing.kind, &missing.plugin));
    }
    Ok((client, secret))
}

/// The refusal of a plugin a record's `field` names that is not loaded now as a `kind`.
fn not_loaded(field: &'static str, kind: &str, plugin: &str) -> RegistryError {
    RegistryError::field(field, format!("no {kind} plugin named `{plugin}` is loaded"))
}

/// The consent UI an application or an organization names (`consent_ui`), checked as a
/// client's is: loaded now, and a consent UI; `None` (the next level's) as it is.
pub(crate) fn check_consent_ui(storage: &Storage, name: Option<String>) -> Result<Option<String>, RegistryError> {
    use crate::plugin::PluginKind;
    match name {
        Some(name) if !storage.plugin_loaded(PluginKind::ConsentUi, &name) => {
            Err(not_loaded("consent_ui", PluginKind::ConsentUi.as_str(), &name))
        }
        name => Ok(name),
    }
}

/// A validated client record and its secret (shown once, stored hashed), not yet stored.
pub(crate) fn new_client(new: NewClient) -> Result<(Client, Option<String>), RegistryError> {
    if new.name.trim().is_empty() {
        return Err(RegistryError::field("name", "a client needs a name"));
    }
    for uri in &new.redirect_uris {
        check_redirect_uri(uri)?;
    }
    let allowed_origins = new.allowed_origins.as_deref().map(check_origins).transpose()?;
    let lifetimes = [
        ("code_ttl", new.code_ttl, limits::CODE_TTL),
        ("access_token_ttl", new.access_token_ttl, limits::ACCESS_TOKEN_TTL),
        ("refresh_token_ttl", new.refresh_token_ttl, limits::REFRESH_TOKEN_TTL),
    ];
    for (field, seconds, bounds) in lifetimes {
        if let Some(seconds) = seconds {
            bounds.check(seconds).map_err(|reason| RegistryError::field(field, reason))?;
        }
    }
    let mut grant_types = Vec::with_capacity(new.grant_types.len());
    // RFC 6749 §4.5: an extension grant, named by an absolute URI, answered by a plugin.
    let mut extension_grants: Vec<String> = Vec::new();
    for name in &new.grant_types {
        match GrantType::parse(name) {
            Some(g) if !grant_types.contains(&g) => grant_types.push(g),
            Some(_) => {}
            None if GrantType::is_extension(name) => {
                if !extension_grants.contains(name) {
                    extension_grants.push(name.clone());
                }
            }
            None => {
                return Err(RegistryError::field(
                    "grant_types",
                    format!("unknown grant type `{name}` (an extension grant is an absolute URI)"),
                ));
            }
        }
    }
    if grant_types.is_empty() && extension_grants.is_empty() {
        grant_types = if new.redirect_uris.is_empty() {
            vec![GrantType::ClientCredentials]
        } else {
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        };
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && new.redirect_uris.is_empty() {
        return Err(RegistryError::field(
            "redirect_uris",
            "the authorization code grant needs at least one redirect URI",
        ));
    }
    if new.public && grant_types.contains(&GrantType::ClientCredentials) {
        return Err(RegistryError::field("grant_types", "a public client cannot use client credentials"));
    }
    if new.public && grant_types.contains(&GrantType::TokenExchange) {
        return Err(RegistryError::field("grant_types", "a public client cannot exchange tokens"));
    }
    if new.public && grant_types.contains(&GrantType::Password) {
        return Err(RegistryError::field(
            "grant_types",
            "a public client cannot use the password grant: it could not be told apart from anyone guessing passwords",
        ));
    }
    if new.public && new.introspect_any {
        return Err(RegistryError::field(
            "introspect_any",
            "a public client cannot introspect: introspection needs client authentication (RFC 7662 §2.1)",
        ));
    }
    let mut response_types: Vec<String> = Vec::with_capacity(new.response_types.len());
    for r in &new.response_types {
        let parsed = ResponseType::parse(r).ok_or_else(|| {
            RegistryError::field(
                "response_types",
                format!("unknown response_type `{r}`: one of {}", ResponseType::SUPPORTED.join(", ")),
            )
        })?;
        if parsed.code && !grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(RegistryError::field(
                "response_types",
                format!("`{r}` returns a code: the client needs the authorization_code grant"),
            ));
        }
        if new.redirect_uris.is_empty() {
            return Err(RegistryError::field("redirect_uris", "a response type needs at least one redirect URI"));
        }
        if !response_types.iter().any(|x| x == parsed.as_str()) {
            response_types.push(parsed.as_str().to_owned());
        }
    }
    let mut scopes = new.scopes.clone();
    if scopes.is_empty() && grant_types.contains(&GrantType::AuthorizationCode) {
        scopes = ["openid", "profile", "email", "offline_access"].map(String::from).to_vec();
    }
    check_scopes("scopes", &scopes)?;
    for uri in &new.post_logout_redirect_uris {
        check_redirect_uri(uri).map_err(|e| match e {
            RegistryError::Field { reason, .. } => RegistryError::field("post_logout_redirect_uris", reason),
            other => other,
        })?;
    }
    if new.request_uris.len() > limits::MAX_REQUEST_URIS {
        return Err(RegistryError::field("request_uris", format!("at most {}", limits::MAX_REQUEST_URIS)));
    }
    for uri in &new.request_uris {
        check_outbound_uri(uri).map_err(|reason| RegistryError::field("request_uris", reason))?;
    }
    if let Some(uri) = &new.backchannel_logout_uri {
        check_outbound_uri(uri).map_err(|reason| RegistryError::field("backchannel_logout_uri", reason))?;
        if uri.contains('#') {
            return Err(RegistryError::field("backchannel_logout_uri", "no fragment (Back-Channel Logout §2.2)"));
        }
    }
    if new.audiences.len() > limits::MAX_AUDIENCES {
        return Err(RegistryError::field("audiences", format!("at most {}", limits::MAX_AUDIENCES)));
    }
    let max = limits::MAX_AUDIENCE_BYTES;
    if let Some(a) = new.audiences.iter().find(|a| a.is_empty() || a.len() > max || a.contains(char::is_whitespace)) {
        return Err(RegistryError::field(
            "audiences",
            format!("`{a}` is not an audience: 1 to {max} bytes, no spaces"),
        ));
    }
    if !new.audiences.is_empty() && !grant_types.contains(&GrantType::TokenExchange) {
        return Err(RegistryError::field("audiences", "audiences are for clients that exchange tokens"));
    }
    if new.backchannel_logout_session_required && new.backchannel_logout_uri.is_none() {
        return Err(RegistryError::field("backchannel_logout_session_required", "needs a `backchannel_logout_uri`"));
    }
    if let Some(alg) = new.request_object_signing_alg.as_deref()
        && alg != "none"
        && !crate::crypto::CLIENT_JWT_ALGORITHMS.contains(&alg)
    {
        // `none`: unsigned request objects, from this client only.
        return Err(RegistryError::field(
            "request_object_signing_alg",
            format!("one of none, {}", crate::crypto::CLIENT_JWT_ALGORITHMS.join(", ")),
        ));
    }
    let method = match new.token_endpoint_auth_method.as_deref() {
        None => None,
        Some(m) => Some(TokenEndpointAuthMethod::parse(m).ok_or_else(|| {
            let all: Vec<&str> = TokenEndpointAuthMethod::ALL.iter().map(|m| m.as_str()).collect();
            RegistryError::field(
                "token_endpoint_auth_method",
                format!("unknown method `{m}`: one of {}", all.join(", ")),
            )
        })?),
    };
    let keyed = method == Some(TokenEndpointAuthMethod::PrivateKeyJwt);
    match method {
        Some(TokenEndpointAuthMethod::None) if !new.public => {
            return Err(RegistryError::field("token_endpoint_auth_method", "`none` is for public clients"));
        }
        Some(m) if new.public && m != TokenEndpointAuthMethod::None => {
            return Err(RegistryError::field(
                "token_endpoint_auth_method",
                "a public client authenticates with `none`",
            ));
        }
        _ => {}
    }
    let jwks = match (&new.jwks, &new.jwks_uri, keyed) {
        (Some(_), Some(_), _) => return Err(RegistryError::field("jwks_uri", "`jwks` or `jwks_uri`, not both")),
        (Some(jwks), None, true) => {
            check_jwks(jwks)?;
            Some(jwks.clone())
        }
        (None, Some(uri), true) => {
            check_outbound_uri(uri).map_err(|reason| RegistryError::field("jwks_uri", reason))?;
            None
        }
        (None, None, true) => {
            return Err(RegistryError::field(
                "jwks",
                "`private_key_jwt` needs the client's public keys (or `jwks_uri`)",
            ));
        }
        (Some(_), None, false) => return Err(RegistryError::field("jwks", "keys are for `private_key_jwt` clients")),
        (None, Some(_), false) => {
            return Err(RegistryError::field("jwks_uri", "keys are for `private_key_jwt` clients"));
        }
        (None, None, false) => None,
    };
    // A `private_key_jwt` client proves itself with its keys: it gets no secret.
    let secret = (!new.public && !keyed).then(|| random_token(32));
    let client = Client {
        id: Client::new_id(),
        secret_hash: secret.as_deref().map(hash_secret),
        organization_id: new.organization_id.clone(),
        created_at: now(),
        doc: ClientDocument {
            name: new.name.trim().to_owned(),
            description: new.description,
            redirect_uris: new.redirect_uris,
            allowed_origins,
            post_logout_redirect_uris: new.post_logout_redirect_uris,
            grant_types: grant_types.into_iter().map(|g| g.as_str().to_owned()).chain(extension_grants).collect(),
            response_types,
            scopes,
            allow_plain_pkce: new.allow_plain_pkce,
            always_issue_refresh_token: new.always_issue_refresh_token,
            skip_consent: new.skip_consent,
            expires_at: new.expires_at,
            code_ttl: new.code_ttl,
            access_token_ttl: new.access_token_ttl,
            refresh_token_ttl: new.refresh_token_ttl,
            template_id: new.template_id,
            application_id: None,
            owner: new.owner,
            scope_policy: new.scope_policy,
            consent_ui: new.consent_ui,
            introspect_any: new.introspect_any,
            metadata: Default::default(),
            token_endpoint_auth_method: method,
            jwks,
            sealed_secret: None,
            require_pushed_authorization_requests: new.require_pushed_authorization_requests,
            request_object_signing_alg: new.request_object_signing_alg.clone(),
            request_uris: new.request_uris,
            jwks_uri: new.jwks_uri,
            backchannel_logout_uri: new.backchannel_logout_uri,
            backchannel_logout_session_required: new.backchannel_logout_session_required,
            audiences: new.audiences,
            id_token_signed_response_alg: new.id_token_signed_response_alg,
            authorization_signed_response_alg: new.authorization_signed_response_alg,
            dpop_bound_access_tokens: new.dpop_bound_access_tokens,
            previous_secret: None,
        },
    };
    Ok((client, secret))
}

/// A URL the server itself will request: absolute, at most 2048 bytes, `https` (or `http`
/// to a loopback address), without credentials.
fn check_outbound_uri(uri: &str) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|e| format!("`{uri}` is not an absolute URL: {e}"))?;
    if uri.len() > limits::MAX_REDIRECT_URI_BYTES {
        return Err(format!("longer than {} bytes", limits::MAX_REDIRECT_URI_BYTES));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{uri}` carries credentials"));
    }
    crate::outbound::allowed(&url).map_err(|e| e.to_string())
}

/// A JWK Set (RFC 7517 §5) of public keys jsonwebtoken can verify with.
fn check_jwks(jwks: &serde_json::Value) -> Result<(), RegistryError> {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone())
        .map_err(|e| RegistryError::field("jwks", format!("not a JWK Set: {e}")))?;
    if set.keys.is_empty() || set.keys.len() > limits::MAX_JWKS_KEYS {
        return Err(RegistryError::field("jwks", format!("one to {} keys", limits::MAX_JWKS_KEYS)));
    }
    for key in &set.keys {
        if matches!(key.algorithm, jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)) {
            return Err(RegistryError::field("jwks", "public keys only: a symmetric key is a secret"));
        }
        jsonwebtoken::DecodingKey::from_jwk(key)
            .map_err(|e| RegistryError::field("jwks", format!("unusable key: {e}")))?;
    }
    Ok(())
}

/// Each of `scopes` is one valid scope token (RFC 6749 §3.3).
pub(crate) fn check_scopes(field: &'static str, scopes: &[String]) -> Result<(), RegistryError> {
    if scopes.len() > limits::MAX_SCOPES {
        return Err(RegistryError::field(field, format!("at most {} scopes", limits::MAX_SCOPES)));
    }
    for s in scopes {
        if s.contains(' ') {
            return Err(RegistryError::field(field, format!("scope `{s}` contains a space")));
        }
        crate::scopes::parse_scope(Some(s)).map_err(|e| RegistryError::field(field, e.to_string()))?;
    }
    Ok(())
}

/// Browser applications' origins (Fetch §3.2.2 `Origin`): each `scheme://host[:port]` and
/// nothing more, `https` or, as for redirect URIs, `http` on a loopback host; returned as a
/// browser serializes them, each once.
fn check_origins(origins: &[String]) -> Result<Vec<String>, RegistryError> {
    let invalid = |reason: String| RegistryError::field("allowed_origins", reason);
    if origins.len() > limits::MAX_ALLOWED_ORIGINS {
        return Err(invalid(format!("at most {}", limits::MAX_ALLOWED_ORIGINS)));
    }
    let mut checked: Vec<String> = Vec::with_capacity(origins.len());
    for origin in origins {
        if origin.len() > limits::MAX_ORIGIN_BYTES {
            return Err(invalid(format!("an origin is at most {} bytes long", limits::MAX_ORIGIN_BYTES)));
        }
        let url = url::Url::parse(origin).map_err(|e| invalid(format!("`{origin}` is not an origin: {e}")))?;
        let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
        if !bare || !url.username().is_empty() || url.password().is_some() || origin.ends_with('/') {
            return Err(invalid(format!(
                "`{origin}` is not an origin: scheme, host and port only, such as https://app.example.com"
            )));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            _ => {
                return Err(invalid(format!(
                    "`{origin}`: use https, or http on a loopback host (127.0.0.1, [::1], localhost)"
                )));
            }
        }
        let serialized = url.origin().ascii_serialization();
        if !checked.contains(&serialized) {
            checked.push(serialized);
        }
    }
    Ok(checked)
}

/// A URL whose host is this machine's loopback (RFC 8252 §7.3, §8.3).
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        Some(url::Host::Domain(host)) => host == "localhost",
        None => false,
    }
}

/// RFC 6749 §3.1.2: an absolute URI without a fragment. Where errors and codes may be sent
/// (RFC 8252 §7, OAuth 2.0 Security BCP §4.1): `https`; `http` only on a loopback host
/// (§7.3); or a private-use scheme, which is a reverse domain name and so has a dot (§7.1).
/// Anything else (`javascript:`, `data:`, `file:`, plain `http`) is refused.
pub(crate) fn check_redirect_uri(uri: &str) -> Result<(), RegistryError> {
    let invalid = |reason: &str| RegistryError::field("redirect_uris", format!("redirect URI `{uri}` {reason}"));
    if uri.len() > limits::MAX_REDIRECT_URI_BYTES {
        return Err(RegistryError::field(
            "redirect_uris",
            format!("a redirect URI is at most {} bytes long", limits::MAX_REDIRECT_URI_BYTES),
        ));
    }
    let parsed = url::Url::parse(uri).map_err(|e| invalid(&format!("is not an absolute URI: {e}")))?;
    if parsed.fragment().is_some() {
        return Err(invalid("must not have a fragment (RFC 6749 §3.1.2)"));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(invalid(
            "uses http on a host that is not loopback (127.0.0.1, [::1], localhost); use https (RFC 8252 §7.3)",
        )),
        scheme if scheme.contains('.') => Ok(()),
        scheme => Err(invalid(&format!(
            "has scheme `{scheme}`: use https, http on a loopback host, or a private-use scheme \
             named after a domain, such as com.example.app (RFC 8252 §7.1)"
        ))),
    }
}

/// A client as listed: never its secret or secret hash.
#[derive(Debug, Serialize)]
pub struct ClientSummary {
    pub client_id: String,
    pub name: String,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    /// The origins whose browser applications may read its endpoints' answers: those
    /// registered, else those of its redirect URIs.
    pub allowed_origins: Vec<String>,
    pub grant_types: Vec<String>,
    /// The response types it may use at the authorization endpoint (`code` alone unless
    /// others were registered).
    pub response_types: Vec<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub introspect_any: bool,
    pub dpop_bound_access_tokens: bool,
    /// Where the server may send requests for this client: its keys, its request objects,
    /// its logout tokens.
    pub jwks_uri: Option<String>,
    pub request_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    /// The audiences its exchanged tokens may be for.
    pub audiences: Vec<String>,
    /// What its ID tokens, and its JWT-secured authorization responses, are signed with
    /// (unset: the server's algorithm; the responses' unset: the ID tokens').
    pub id_token_signed_response_alg: Option<String>,
    pub authorization_signed_response_alg: Option<String>,
    /// The plugins it names (unset: the server's defaults).
    pub scope_policy: Option<String>,
    pub consent_ui: Option<String>,
}

impl From<&Client> for ClientSummary {
    fn from(c: &Client) -> Self {
        Self {
            client_id: c.id.clone(),
            name: c.doc.name.clone(),
            public: c.is_public(),
            redirect_uris: c.doc.redirect_uris.clone(),
            allowed_origins: c.origins(),
            grant_types: c.doc.grant_types.clone(),
            response_types: ResponseType::SUPPORTED
                .into_iter()
                .filter_map(ResponseType::parse)
                .filter(|r| c.allows_response_type(*r))
                .map(|r| r.as_str().to_owned())
                .collect(),
            scopes: c.doc.scopes.clone(),
            expires_at: c.doc.expires_at,
            created_at: c.created_at,
            introspect_any: c.doc.introspect_any,
            dpop_bound_access_tokens: c.doc.dpop_bound_access_tokens,
            jwks_uri: c.doc.jwks_uri.clone(),
            request_uris: c.doc.request_uris.clone(),
            backchannel_logout_uri: c.doc.backchannel_logout_uri.clone(),
            audiences: c.doc.audiences.clone(),
            id_token_signed_response_alg: c.doc.id_token_signed_response_alg.clone(),
            authorization_signed_response_alg: c.doc.authorization_signed_response_alg.clone(),
            scope_policy: c.doc.scope_policy.clone(),
            consent_ui: c.doc.consent_ui.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub email: String,
    pub name: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub company: Option<String>,
    pub roles: Vec<String>,
    pub organization_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct UserSummary {
    pub id: String,
    pub username: String,
    pub email: String,
    pub name: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub company: Option<String>,
    pub roles: Vec<String>,
    /// A disabled user signs in nowhere and gets no token.
    pub disabled: bool,
}

impl From<&User> for UserSummary {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            email: u.doc.email.clone(),
            name: u.doc.name.clone(),
            given_name: u.doc.given_name.clone(),
            family_name: u.doc.family_name.clone(),
            company: u.doc.company.clone(),
            roles: u.doc.roles.clone(),
            disabled: u.doc.disabled,
        }
    }
}

/// The signing keys and their states: for administrators.
pub async fn list_keys(keys: &Keys, caller: &Caller) -> Result<Vec<KeyView>, RegistryError> {
    caller.require_administrator()?;
    Ok(keys.list().await?)
}

/// Adds a new key for every algorithm served, signing after `keys.publish_ahead` or, `now`,
/// at once; the keys they replace stay published until their last token expires: for
/// administrators.
pub async fn rotate_keys(keys: &Keys, caller: &Caller, now: bool) -> Result<Vec<KeyView>, RegistryError> {
    caller.require_administrator()?;
    let before: Vec<String> = keys.list().await?.into_iter().map(|k| k.kid).collect();
    let after = keys.rotate(now).await?;
    for key in after.iter().filter(|k| !before.contains(&k.kid)) {
        let detail = serde_json::json!({ "algorithm": key.algorithm, "now": now, "signs_from": key.signs_from });
        audit::record(keys.storage(), types::KEY_ROTATED, &caller.actor(), ("signing-key", &key.kid), detail).await;
    }
    Ok(after)
}

/// Retires a (compromised) key at once: it leaves the JWK Set and its tokens read inactive;
/// if it signs now, its successor signs from now on: for administrators.
pub async fn retire_key(keys: &Keys, caller: &Caller, kid: &str) -> Result<Vec<KeyView>, RegistryError> {
    caller.require_administrator()?;
    let after = keys.retire(kid).await?;
    let detail = serde_json::Value::Null;
    audit::record(keys.storage(), types::KEY_RETIRED, &caller.actor(), ("signing-key", kid), detail).await;
    Ok(after)
}

/// Every registered client, as listed: for administrators.
pub async fn list_clients(storage: &Storage, caller: &Caller) -> Result<Vec<ClientSummary>, RegistryError> {
    caller.require_administrator()?;
    Ok(storage.list_clients().await?.iter().map(ClientSummary::from).collect())
}

/// One client, as listed: for administrators.
pub async fn get_client(storage: &Storage, caller: &Caller, id: &str) -> Result<ClientSummary, RegistryError> {
    caller.require_administrator()?;
    let client = storage.get::<Client>(id).await?.ok_or_else(|| RegistryError::NotFound("no such client".into()))?;
    Ok(ClientSummary::from(&client))
}

/// Deletes a client and everything issued to it: for administrators.
pub async fn delete_client(storage: &Storage, caller: &Caller, id: &str) -> Result<(), RegistryError> {
    caller.require_administrator()?;
    if !storage.delete_client(id).await? {
        return Err(RegistryError::NotFound("no such client".into()));
    }
    audit::record(storage, types::CLIENT_DELETED, &caller.actor(), ("client", id), serde_json::Value::Null).await;
    Ok(())
}

/// Every user, as listed: for administrators.
pub async fn list_users(storage: &Storage, caller: &Caller) -> Result<Vec<UserSummary>, RegistryError> {
    caller.require_administrator()?;
    Ok(storage.list_users().await?.iter().map(UserSummary::from).collect())
}

/// Adds a user, its password hashed by `passwords` (busy: [`RegistryError::Busy`]): for
/// administrators.
pub async fn add_user(
    storage: &Storage,
    passwords: &Passwords,
    caller: &Caller,
    new: NewUser,
) -> Result<UserSummary, RegistryError> {
    caller.require_administrator()?;
    let username = new.username.trim().to_owned();
    if username.is_empty() {
        return Err(RegistryError::field("username", "a user needs a username"));
    }
    if new.password.chars().count() < limits::MIN_PASSWORD_CHARS {
        return Err(RegistryError::field(
            "password",
            format!("the password must have at least {} characters", limits::MIN_PASSWORD_CHARS),
        ));
    }
    let password_hash = hash_password(passwords, &new.password).await?;
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.clone(),
        password_hash,
        created_at: now(),
        doc: UserDocument {
            email: new.email,
            email_verified: false,
            name: new.name,
            given_name: new.given_name,
            family_name: new.family_name,
            company: new.company,
            roles: new.roles,
            organization_id: new.organization_id,
            locale: None,
            disabled: false,
        },
    };
    storage.create_user(&user).await.map_err(|e| match e {
        StorageError::Duplicate => RegistryError::Exists(username),
        e => RegistryError::Storage(e),
    })?;
    let detail = serde_json::json!({ "username": user.username });
    audit::record(storage, types::USER_CREATED, &caller.actor(), ("user", &user.id), detail).await;
    Ok(UserSummary::from(&user))
}

// The lifecycle of clients and users: changing, rotating, disabling, deleting.

/// A field that may be set to `null` (cleared) as well as to a value: `None` when absent,
/// `Some(None)` for `null`. Every change record's clearable fields use it.
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A change to a client (`PATCH /admin/v1/clients/{id}`, `client update`): the fields given
/// replace the registered ones (`null` clears one that may be unset), the rest stay; the
/// result is checked exactly as a registration is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    #[serde(deserialize_with = "present")]
    pub allowed_origins: Option<Option<Vec<String>>>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub skip_consent: Option<bool>,
    #[serde(deserialize_with = "present")]
    pub expires_at: Option<Option<i64>>,
    #[serde(deserialize_with = "present")]
    pub access_token_ttl: Option<Option<u64>>,
    #[serde(deserialize_with = "present")]
    pub refresh_token_ttl: Option<Option<u64>>,
    #[serde(deserialize_with = "present")]
    pub code_ttl: Option<Option<u64>>,
    /// The scope policy plugin (`null`: the server's default); it must be loaded.
    #[serde(deserialize_with = "present")]
    pub scope_policy: Option<Option<String>>,
    /// The consent UI plugin (`null`: the server's default); it must be loaded.
    #[serde(deserialize_with = "present")]
    pub consent_ui: Option<Option<String>>,
    /// A `private_key_jwt` client's keys: a JWK Set, or where it is published.
    #[serde(deserialize_with = "present")]
    pub jwks: Option<Option<serde_json::Value>>,
    #[serde(deserialize_with = "present")]
    pub jwks_uri: Option<Option<String>>,
    pub audiences: Option<Vec<String>>,
    pub request_uris: Option<Vec<String>>,
    #[serde(deserialize_with = "present")]
    pub backchannel_logout_uri: Option<Option<String>>,
}

impl NewClient {
    /// The registration a stored client amounts to: what an update is laid over.
    fn registered(c: &Client) -> Self {
        let d = &c.doc;
        let keyed = d.token_endpoint_auth_method == Some(TokenEndpointAuthMethod::PrivateKeyJwt);
        Self {
            name: d.name.clone(),
            description: d.description.clone(),
            redirect_uris: d.redirect_uris.clone(),
            allowed_origins: d.allowed_origins.clone(),
            grant_types: d.grant_types.clone(),
            response_types: d.response_types.clone(),
            scopes: d.scopes.clone(),
            public: c.secret_hash.is_none() && !keyed,
            allow_plain_pkce: d.allow_plain_pkce,
            always_issue_refresh_token: d.always_issue_refresh_token,
            skip_consent: d.skip_consent,
            expires_at: d.expires_at,
            access_token_ttl: d.access_token_ttl,
            refresh_token_ttl: d.refresh_token_ttl,
            code_ttl: d.code_ttl,
            template_id: d.template_id.clone(),
            owner: d.owner.clone(),
            scope_policy: d.scope_policy.clone(),
            consent_ui: d.consent_ui.clone(),
            organization_id: c.organization_id.clone(),
            introspect_any: d.introspect_any,
            token_endpoint_auth_method: d.token_endpoint_auth_method.map(|m| m.as_str().to_owned()),
            jwks: d.jwks.clone(),
            jwks_uri: d.jwks_uri.clone(),
            require_pushed_authorization_requests: d.require_pushed_authorization_requests,
            post_logout_redirect_uris: d.post_logout_redirect_uris.clone(),
            request_object_signing_alg: d.request_object_signing_alg.clone(),
            request_uris: d.request_uris.clone(),
            backchannel_logout_uri: d.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: d.backchannel_logout_session_required,
            audiences: d.audiences.clone(),
            id_token_signed_response_alg: d.id_token_signed_response_alg.clone(),
            authorization_signed_response_alg: d.authorization_signed_response_alg.clone(),
            dpop_bound_access_tokens: d.dpop_bound_access_tokens,
        }
    }

    /// This registration with `change` laid over it.
    fn changed(mut self, change: ClientUpdate) -> Self {
        macro_rules! set {
            ($($field:ident),+) => {$(if let Some(v) = change.$field { self.$field = v; })+};
        }
        set!(
            name,
            description,
            redirect_uris,
            post_logout_redirect_uris,
            allowed_origins,
            grant_types,
            response_types,
            scopes,
            skip_consent,
            expires_at,
            access_token_ttl,
            refresh_token_ttl,
            code_ttl,
            scope_policy,
            consent_ui,
            jwks,
            jwks_uri,
            audiences,
            request_uris,
            backchannel_logout_uri
        );
        if self.backchannel_logout_uri.is_none() {
            self.backchannel_logout_session_required = false;
        }
        self
    }
}

/// Changes a client: the update laid over its registration and checked as a registration
/// is (its plugins loaded now). Its id, secret, owner and what it was created from stay.
/// Every replica sees the change within the client cache's second (at once on PostgreSQL,
/// and on this one): for administrators.
pub async fn update_client(
    storage: &Storage,
    keys: &Keys,
    caller: &Caller,
    id: &str,
    change: ClientUpdate,
) -> Result<ClientSummary, RegistryError> {
    caller.require_administrator()?;
    let not_found = || RegistryError::NotFound("no such client".into());
    if id.len() > limits::MAX_CLIENT_ID_BYTES {
        return Err(not_found());
    }
    let loaded = storage.get_loaded::<Client>(id).await?.ok_or_else(not_found)?;
    let old = loaded.value;
    let (checked, _) = checked_client(storage, keys, NewClient::registered(&old).changed(change))?;
    let client = Client {
        doc: ClientDocument {
            application_id: old.doc.application_id.clone(),
            metadata: old.doc.metadata.clone(),
            sealed_secret: old.doc.sealed_secret.clone(),
            previous_secret: old.doc.previous_secret.clone(),
            ..checked.doc
        },
        ..old
    };
    storage.update_client(&client, loaded.revision).await?;
    let detail = serde_json::json!({ "name": client.doc.name });
    audit::record(storage, types::CLIENT_UPDATED, &caller.actor(), ("client", &client.id), detail).await;
    Ok(ClientSummary::from(&client))
}

/// Gives a confidential client a new secret, returned this once. The old one is still
/// accepted for `grace_seconds` (at most [`limits::MAX_SECRET_GRACE_SECONDS`]; 0: refused
/// at once), counted from `now`: for administrators.
pub async fn rotate_client_secret(
    storage: &Storage,
    keys: &Keys,
    caller: &Caller,
    id: &str,
    grace_seconds: u64,
    now: i64,
) -> Result<RegisteredClient, RegistryError> {
    caller.require_administrator()?;
    if grace_seconds > limits::MAX_SECRET_GRACE_SECONDS {
        return Err(RegistryError::field(
            "grace_seconds",
            format!("at most {} seconds", limits::MAX_SECRET_GRACE_SECONDS),
        ));
    }
    let not_found = || RegistryError::NotFound("no such client".into());
    if id.len() > limits::MAX_CLIENT_ID_BYTES {
        return Err(not_found());
    }
    let loaded = storage.get_loaded::<Client>(id).await?.ok_or_else(not_found)?;
    let mut client = loaded.value;
    let Some(old_hash) = client.secret_hash.take() else {
        return Err(RegistryError::Invalid(
            "the client has no secret: a public client has none, a private_key_jwt client proves itself with its keys"
                .into(),
        ));
    };
    let secret = random_token(32);
    client.secret_hash = Some(hash_secret(&secret));
    let old_sealed = client.doc.sealed_secret.take();
    if old_sealed.is_some() {
        client.doc.sealed_secret = Some(keys.seal_client_secret(&client.id, &secret));
    }
    client.doc.previous_secret = (grace_seconds > 0).then(|| PreviousSecret {
        hash: old_hash,
        sealed: old_sealed,
        expires_at: now.saturating_add(i64::try_from(grace_seconds).unwrap_or(i64::MAX)),
    });
    storage.update_client(&client, loaded.revision).await?;
    let detail = serde_json::json!({ "grace_seconds": grace_seconds });
    audit::record(storage, types::CLIENT_SECRET_ROTATED, &caller.actor(), ("client", &client.id), detail).await;
    Ok(RegisteredClient { client_id: client.id, client_secret: Some(secret) })
}

/// A change to a user (`PATCH /admin/v1/users/{id}`, `user update|disable|enable`): the
/// fields given replace theirs (`null` clears one that may be unset), the rest stay.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(deserialize_with = "present")]
    pub given_name: Option<Option<String>>,
    #[serde(deserialize_with = "present")]
    pub family_name: Option<Option<String>>,
    #[serde(deserialize_with = "present")]
    pub company: Option<Option<String>>,
    pub roles: Option<Vec<String>>,
    /// A disabled user signs in nowhere: disabling ends their sessions and revokes every
    /// grant they gave (their refresh and access tokens die); enabling lets them sign in again.
    pub disabled: Option<bool>,
}

/// Reads a user with its revision, or `NotFound`.
async fn loaded_user(storage: &Storage, id: &str) -> Result<crate::storage::Loaded<User>, RegistryError> {
    storage.get_loaded::<User>(id).await?.ok_or_else(|| RegistryError::NotFound("no such user".into()))
}

/// Changes a user: names, email, company, roles, and whether they are disabled. The
/// claims of tokens issued from now on, and userinfo at once, say what it now holds: for
/// administrators.
pub async fn update_user(
    storage: &Storage,
    caller: &Caller,
    id: &str,
    change: UserUpdate,
) -> Result<UserSummary, RegistryError> {
    caller.require_administrator()?;
    let loaded = loaded_user(storage, id).await?;
    let mut user = loaded.value;
    let was_disabled = user.doc.disabled;
    let d = &mut user.doc;
    if let Some(email) = change.email {
        if email != d.email {
            d.email_verified = false;
        }
        d.email = email;
    }
    if let Some(name) = change.name {
        d.name = name;
    }
    if let Some(v) = change.given_name {
        d.given_name = v;
    }
    if let Some(v) = change.family_name {
        d.family_name = v;
    }
    if let Some(v) = change.company {
        d.company = v;
    }
    if let Some(roles) = change.roles {
        d.roles = roles;
    }
    if let Some(disabled) = change.disabled {
        d.disabled = disabled;
    }
    if user.doc.disabled && !was_disabled {
        storage.update_user_ending(&user, loaded.revision, true).await?;
    } else {
        storage.update_user(&user, loaded.revision).await?;
    }
    let kind = match (was_disabled, user.doc.disabled) {
        (false, true) => types::USER_DISABLED,
        (true, false) => types::USER_ENABLED,
        _ => types::USER_UPDATED,
    };
    let detail = serde_json::json!({ "username": user.username });
    audit::record(storage, kind, &caller.actor(), ("user", &user.id), detail).await;
    Ok(UserSummary::from(&user))
}

/// Deletes a user with everything they hold: sessions, grants (their refresh and access
/// tokens die), consents and memberships: for administrators.
pub async fn delete_user(storage: &Storage, caller: &Caller, id: &str) -> Result<(), RegistryError> {
    caller.require_administrator()?;
    if !storage.delete_user(id).await? {
        return Err(RegistryError::NotFound("no such user".into()));
    }
    audit::record(storage, types::USER_DELETED, &caller.actor(), ("user", id), serde_json::Value::Null).await;
    Ok(())
}

/// Removes every second factor of a user (authenticator app, recovery codes, passkeys) and
/// ends their sessions: they sign in with their password alone again, and may add new
/// factors on their security page. For administrators; recorded as `user.factors_reset`.
pub async fn reset_factors(storage: &Storage, caller: &Caller, id: &str) -> Result<UserSummary, RegistryError> {
    caller.require_administrator()?;
    let user = loaded_user(storage, id).await?.value;
    storage.reset_factors(&user.id).await?;
    audit::record(storage, types::FACTORS_RESET, &caller.actor(), ("user", &user.id), serde_json::Value::Null).await;
    Ok(UserSummary::from(&user))
}

/// Sets a user's password (hashed by `passwords`; busy: [`RegistryError::Busy`]) and ends
/// their sessions: they sign in again with it. Their grants stay: for administrators.
pub async fn set_user_password(
    storage: &Storage,
    passwords: &Passwords,
    caller: &Caller,
    id: &str,
    password: &str,
) -> Result<UserSummary, RegistryError> {
    caller.require_administrator()?;
    check_password(password)?;
    let loaded = loaded_user(storage, id).await?;
    let mut user = loaded.value;
    user.password_hash = hash_password(passwords, password).await?;
    storage.update_user_ending(&user, loaded.revision, false).await?;
    audit::record(storage, types::USER_PASSWORD_SET, &caller.actor(), ("user", &user.id), serde_json::Value::Null)
        .await;
    Ok(UserSummary::from(&user))
}

/// Changes the caller's own password (hashed by `passwords`; busy: [`RegistryError::Busy`])
/// and ends their other sessions, keeping the one whose key is `keep_session` (where they
/// changed it). Their grants stay. The caller is a user acting for themself, who proved they
/// know the current password (the account page checks it through the sign-in's throttle);
/// a disabled user may not.
pub(crate) async fn change_own_password(
    storage: &Storage,
    passwords: &Passwords,
    caller: &Caller,
    keep_session: &str,
    password: &str,
) -> Result<UserSummary, RegistryError> {
    let Caller::User(me) = caller else {
        return Err(RegistryError::Forbidden("the operator is no user: set a user's password instead".into()));
    };
    check_password(password)?;
    let loaded = loaded_user(storage, &me.id).await?;
    let mut user = loaded.value;
    if user.doc.disabled {
        return Err(RegistryError::Forbidden("a disabled user cannot change their password".into()));
    }
    user.password_hash = hash_password(passwords, password).await?;
    storage.update_user_keeping_session(&user, loaded.revision, keep_session).await?;
    audit::record(storage, types::USER_PASSWORD_CHANGED, &caller.actor(), ("user", &user.id), serde_json::Value::Null)
        .await;
    Ok(UserSummary::from(&user))
}

/// Why a password may not be given to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PasswordRule {
    /// Fewer characters than [`limits::MIN_PASSWORD_CHARS`].
    TooShort,
    /// More bytes than [`limits::MAX_PASSWORD_BYTES`].
    TooLong,
}

/// A password a user may be given: long enough to resist guessing, short enough for the
/// forms and the password grant to read.
pub(crate) fn password_rule(password: &str) -> Result<(), PasswordRule> {
    if password.chars().count() < limits::MIN_PASSWORD_CHARS {
        return Err(PasswordRule::TooShort);
    }
    if password.len() > limits::MAX_PASSWORD_BYTES {
        return Err(PasswordRule::TooLong);
    }
    Ok(())
}

/// [`password_rule`], as the error of the `password` field.
fn check_password(password: &str) -> Result<(), RegistryError> {
    password_rule(password).map_err(|rule| {
        RegistryError::field(
            "password",
            match rule {
                PasswordRule::TooShort => {
                    format!("the password must have at least {} characters", limits::MIN_PASSWORD_CHARS)
                }
                PasswordRule::TooLong => format!("the password must have at most {} bytes", limits::MAX_PASSWORD_BYTES),
            },
        )
    })
}

async fn hash_password(passwords: &Passwords, password: &str) -> Result<String, RegistryError> {
    passwords.hash(password).await.map_err(|e| match e {
        PasswordError::Busy => RegistryError::Busy,
        PasswordError::Failed(m) => RegistryError::Internal(m),
    })
}

/// Audit events, oldest first, a page at a time (`audit::list`): for administrators.
pub async fn list_events(
    storage: &Storage,
    caller: &Caller,
    filter: audit::EventFilter,
) -> Result<audit::EventPage, RegistryError> {
    caller.require_administrator()?;
    audit::list(storage, filter).await.map_err(|e| match e {
        audit::ListError::Filter(f) => RegistryError::Field { field: f.field, reason: f.reason },
        audit::ListError::Storage(e) => RegistryError::Storage(e),
    })
}
// Initial access tokens for Dynamic Client Registration (RFC 7591 §3)

/// An initial access token to issue: how long it lives, in seconds (a day when unset), and
/// how many registrations it allows (any number when unset).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewInitialAccessToken {
    pub ttl: Option<u64>,
    pub uses: Option<u32>,
}

/// An issued initial access token: the token appears here once and is stored only hashed.
#[derive(Debug, Serialize)]
pub struct IssuedInitialAccessToken {
    pub token: String,
    #[serde(flatten)]
    pub record: InitialAccessToken,
}

/// Issues an initial access token: for administrators.
pub async fn issue_initial_access_token(
    storage: &Storage,
    caller: &Caller,
    new: NewInitialAccessToken,
) -> Result<IssuedInitialAccessToken, RegistryError> {
    caller.require_administrator()?;
    let ttl = new.ttl.unwrap_or(limits::DEFAULT_INITIAL_ACCESS_TOKEN_TTL);
    limits::INITIAL_ACCESS_TOKEN_TTL.check(ttl).map_err(|reason| RegistryError::field("ttl", reason))?;
    if let Some(uses) = new.uses
        && !(1..=limits::MAX_INITIAL_ACCESS_TOKEN_USES).contains(&uses)
    {
        return Err(RegistryError::field(
            "uses",
            format!("{uses} is not between 1 and {}", limits::MAX_INITIAL_ACCESS_TOKEN_USES),
        ));
    }
    let token = random_token(32);
    let created_at = now();
    let record = InitialAccessToken {
        id: hash_secret(&token),
        created_at,
        expires_at: created_at.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        uses_left: new.uses,
    };
    storage.apply(vec![crate::storage::write::create(&record)?]).await?;
    let detail = serde_json::json!({ "expires_at": record.expires_at, "uses": record.uses_left });
    let subject = ("initial-access-token", record.id.as_str());
    audit::record(storage, types::INITIAL_ACCESS_TOKEN_ISSUED, &caller.actor(), subject, detail).await;
    Ok(IssuedInitialAccessToken { token, record })
}

/// The initial access tokens still usable at `at`: for administrators.
pub async fn list_initial_access_tokens(
    storage: &Storage,
    caller: &Caller,
    at: i64,
) -> Result<Vec<InitialAccessToken>, RegistryError> {
    caller.require_administrator()?;
    let tokens = storage.list::<InitialAccessToken>().await?;
    Ok(tokens.into_iter().filter(|t| t.expires_at > at && t.uses_left != Some(0)).collect())
}

/// Revokes an initial access token by its id: for administrators.
pub async fn revoke_initial_access_token(storage: &Storage, caller: &Caller, id: &str) -> Result<(), RegistryError> {
    caller.require_administrator()?;
    if storage.get::<InitialAccessToken>(id).await?.is_none() {
        return Err(RegistryError::NotFound("no such initial access token".into()));
    }
    storage.apply(vec![crate::storage::write::delete::<InitialAccessToken>(id)]).await?;
    let subject = ("initial-access-token", id);
    audit::record(storage, types::INITIAL_ACCESS_TOKEN_REVOKED, &caller.actor(), subject, serde_json::Value::Null)
        .await;
    Ok(())
}
