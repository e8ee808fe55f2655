//! The server's records. Each is stored whole as the body of a record of its kind (see
//! `storage.rs`); the storage plugin keeps the body as it is and never reads it.
//!
//! This module knows no protocol: it names no endpoint, no parameter and no error code.

use serde::{Deserialize, Serialize};

/// The grant types a client may be registered for, defined once: the token endpoint
/// dispatches on them, registration validates against them, discovery lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    RefreshToken,
    /// The resource owner password credentials grant: off unless a client is registered for it.
    Password,
    /// The device authorization grant (RFC 8628): off unless a client is registered for it.
    DeviceCode,
    /// Token exchange (RFC 8693): off unless a confidential client is registered for it.
    TokenExchange,
}

impl GrantType {
    pub const ALL: [GrantType; 6] = [
        Self::AuthorizationCode,
        Self::ClientCredentials,
        Self::RefreshToken,
        Self::Password,
        Self::DeviceCode,
        Self::TokenExchange,
    ];

    /// The `grant_type` value (RFC 6749 §4.1.3, §4.4.2, §6, §4.3.2).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
            Self::Password => "password",
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == value)
    }

    /// Whether `name` can name an extension grant (RFC 6749 §4.5): an absolute URI (of at
    /// most [`crate::limits::MAX_EXTENSION_GRANT_TYPE_BYTES`]) that is none of the server's
    /// own grant types.
    pub fn is_extension(name: &str) -> bool {
        Self::parse(name).is_none()
            && name.len() <= crate::limits::MAX_EXTENSION_GRANT_TYPE_BYTES
            && url::Url::parse(name).is_ok_and(|u| !u.cannot_be_a_base() || u.scheme() == "urn")
    }
}

/// A registered client (RFC 6749 §2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    pub id: String,
    /// SHA-256 of the secret; `None` for a public client.
    pub secret_hash: Option<String>,
    pub organization_id: Option<String>,
    pub created_at: i64,
    pub doc: ClientDocument,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientDocument {
    pub name: String,
    pub description: String,
    pub redirect_uris: Vec<String>,
    /// The origins (`scheme://host[:port]`) of the browser applications that call its
    /// endpoints from another origin; unset: the origins of its http(s) redirect URIs.
    pub allowed_origins: Option<Vec<String>>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Where its request objects may be fetched from (OIDC Core §6.2), compared without the fragment.
    pub request_uris: Vec<String>,
    /// Where its JWK Set is published (OIDC Registration §2), instead of `jwks`.
    pub jwks_uri: Option<String>,
    /// Where logout tokens are posted (OIDC Back-Channel Logout 1.0 §2.2).
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    /// The audiences (resource servers) token exchange may issue its tokens for (RFC 8693
    /// §2.1 `audience`, `resource`), besides this server.
    pub audiences: Vec<String>,
    pub grant_types: Vec<String>,
    /// The `response_type`s it may use at the authorization endpoint (canonical spelling);
    /// empty: `code` alone, where it may use the authorization code grant.
    pub response_types: Vec<String>,
    pub scopes: Vec<String>,
    /// Lets this client use PKCE `plain` (RFC 7636 §4.2); S256 is always accepted.
    pub allow_plain_pkce: bool,
    /// Issue refresh tokens on authorization code without `offline_access`.
    pub always_issue_refresh_token: bool,
    /// Skip the consent page (first-party clients).
    pub skip_consent: bool,
    /// After this Unix time the client gets nothing.
    pub expires_at: Option<i64>,
    pub code_ttl: Option<u64>,
    pub access_token_ttl: Option<u64>,
    pub refresh_token_ttl: Option<u64>,
    /// The template the client was created from: a record of its own ([`ClientTemplate`]).
    pub template_id: Option<String>,
    /// The application whose credentials these are ([`Application`]).
    pub application_id: Option<String>,
    /// The user who registered the client, when a user did.
    pub owner: Option<String>,
    pub scope_policy: Option<String>,
    pub consent_ui: Option<String>,
    /// A resource server that may introspect tokens issued to any client (RFC 7662 §4);
    /// without it a client learns only about its own tokens.
    pub introspect_any: bool,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// How it authenticates at the token endpoint (OIDC Registration §2): unset is
    /// `client_secret_basic` or `client_secret_post` (`none` for a public client).
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    /// Its public keys, a JWK Set (RFC 7517 §5), for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    /// For `client_secret_jwt`, whose HMAC needs the secret itself: the secret sealed with
    /// the server's encryption key (base64), never in the clear.
    pub sealed_secret: Option<String>,
    /// Its authorization requests must be pushed first (RFC 9126 §6).
    pub require_pushed_authorization_requests: bool,
    /// The algorithm its request objects are signed with (OIDC Registration §2); `none`:
    /// unsigned, which only such a client may send.
    pub request_object_signing_alg: Option<String>,
    /// The algorithm its ID tokens are signed with (OIDC Registration §2), one the server
    /// serves; unset: the server's (`keys.algorithm`). What is signed like an ID token for
    /// it (logout tokens, JARM responses) is signed so too.
    pub id_token_signed_response_alg: Option<String>,
    /// The algorithm it expects its JWT-secured authorization responses signed with (JARM
    /// §3), one the server serves; unset: its ID tokens' algorithm.
    pub authorization_signed_response_alg: Option<String>,
    /// Its access tokens are always bound to a key it proves possession of (RFC 9449 §5.2):
    /// a token request without a proof is refused.
    pub dpop_bound_access_tokens: bool,
    /// The secret it had before its secret was last rotated, accepted until its grace ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<PreviousSecret>,
}

/// A client's replaced secret, still accepted until `expires_at` (a rotation's grace).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PreviousSecret {
    /// SHA-256 of the replaced secret.
    pub hash: String,
    /// For `client_secret_jwt`: the replaced secret, sealed like [`ClientDocument::sealed_secret`].
    pub sealed: Option<String>,
    /// Until this Unix time (exclusive) it is accepted.
    pub expires_at: i64,
}

/// A client authentication method (RFC 6749 §2.3.1, OIDC Core §9, RFC 7523 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    ClientSecretJwt,
    PrivateKeyJwt,
    None,
}

impl TokenEndpointAuthMethod {
    pub const ALL: [Self; 5] =
        [Self::ClientSecretBasic, Self::ClientSecretPost, Self::ClientSecretJwt, Self::PrivateKeyJwt, Self::None];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == value)
    }
}

impl Client {
    /// A new client's id: 32 hex digits (a random UUID's), so that an id never starts with
    /// `-` and reads as a flag on a command line.
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Whether `id` has the shape of the ids [`Client::new_id`] gives.
    pub fn has_issued_shape(id: &str) -> bool {
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// A client that cannot keep a credential: no secret, and no keys of its own.
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
            && self.doc.token_endpoint_auth_method != Some(TokenEndpointAuthMethod::PrivateKeyJwt)
    }
    pub fn allows_grant(&self, grant_type: GrantType) -> bool {
        self.doc.grant_types.iter().any(|g| g == grant_type.as_str())
    }
    /// Whether it is registered for `response_type` (`code` alone by default, with the
    /// authorization code grant).
    pub fn allows_response_type(&self, response_type: ResponseType) -> bool {
        if self.doc.response_types.is_empty() {
            return response_type == ResponseType::CODE && self.allows_grant(GrantType::AuthorizationCode);
        }
        self.doc.response_types.iter().any(|r| r == response_type.as_str())
    }
    pub fn is_expired(&self, now: i64) -> bool {
        self.doc.expires_at.is_some_and(|t| t <= now)
    }
    /// The origins its browser applications run at: those registered, else those of its
    /// http(s) redirect URIs, each serialized as a browser sends it in `Origin`.
    pub fn origins(&self) -> Vec<String> {
        if let Some(registered) = &self.doc.allowed_origins {
            return registered.clone();
        }
        let mut origins: Vec<String> = Vec::new();
        for uri in &self.doc.redirect_uris {
            if let Some(origin) = web_origin(uri)
                && !origins.contains(&origin)
            {
                origins.push(origin);
            }
        }
        origins
    }
    /// Whether a browser application at `origin` may read its answers.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins().iter().any(|o| o == origin)
    }
}

/// The origin of an `http` or `https` URL, serialized as a browser's `Origin` header is
/// (lower-case host, no default port); none for any other scheme.
pub fn web_origin(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.origin().ascii_serialization())
}

/// What an integrator registers and a person is asked to let in: ELMA365's external
/// application of a module, a VMware Cloud Partner Navigator OAuth app, a Deployteq app.
/// Its credentials are [`Client`]s (`application_id`); a module's application hands them out
/// through [`ClientTemplate`]s, an organization's through [`AppInstance`]s.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Application {
    pub id: String,
    pub name: String,
    pub description: String,
    /// An image URL shown beside the name on the consent page.
    pub icon: Option<String>,
    /// The module it is the external application of (ELMA365): at most one per module.
    pub module: Option<String>,
    /// The organization it was created in (VMware): only there can it be added.
    pub organization_id: Option<String>,
    /// The user who created it; with `owner_only`, the only one who may authorize it.
    pub created_by: Option<String>,
    /// A disabled application's clients get nothing, and its tokens are inactive.
    pub enabled: bool,
    /// What its clients may be granted (templates narrow it for a module's clients).
    pub scopes: Vec<String>,
    /// Its clients get tokens only once it is added to an organization ([`AppInstance`]).
    pub requires_instance: bool,
    /// Only `created_by` may authorize it (Deployteq: the user who registered the app).
    pub owner_only: bool,
    pub tokens: TokenSettings,
    /// The consent UI plugin its clients' pages are rendered by, where a client names none
    /// (unset: its organization's, else the server's default).
    pub consent_ui: Option<String>,
    pub created_at: i64,
}

/// How tokens are issued to an application's clients. Unset fields fall through: a client's
/// own setting, then its template's, then its application's, then the server's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    pub code_ttl: Option<u64>,
    pub access_token_ttl: Option<u64>,
    pub refresh_token_ttl: Option<u64>,
    /// When the authorization code grant issues a refresh token.
    pub refresh_tokens: Option<RefreshTokens>,
    /// `token_type` as the token response spells it (RFC 6749 §7.1: case-insensitive).
    pub token_type: Option<TokenTypeSpelling>,
    /// The user's claims an ID token carries whenever `openid` is granted, beyond those
    /// of the granted scopes (ELMA365: `email` and `company`).
    pub id_token_claims: Option<Vec<String>>,
}

impl TokenSettings {
    /// `self`, with each unset field taken from `fallback`.
    pub fn or(&self, fallback: &TokenSettings) -> TokenSettings {
        TokenSettings {
            code_ttl: self.code_ttl.or(fallback.code_ttl),
            access_token_ttl: self.access_token_ttl.or(fallback.access_token_ttl),
            refresh_token_ttl: self.refresh_token_ttl.or(fallback.refresh_token_ttl),
            refresh_tokens: self.refresh_tokens.or(fallback.refresh_tokens),
            token_type: self.token_type.or(fallback.token_type),
            id_token_claims: self.id_token_claims.clone().or_else(|| fallback.id_token_claims.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshTokens {
    /// Only when `offline_access` was granted (OIDC Core §11).
    OfflineAccess,
    /// On every authorization code redemption (ELMA365).
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenTypeSpelling {
    Bearer,
    #[serde(rename = "bearer")]
    LowerBearer,
}

impl TokenTypeSpelling {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::LowerBearer => "bearer",
        }
    }
}

/// A named set of scopes clients are created from (ELMA365's client template), offered by
/// an application. Changing it changes what every client created from it may get.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientTemplate {
    pub id: String,
    pub application_id: Option<String>,
    pub name: String,
    pub scopes: Vec<String>,
    pub tokens: TokenSettings,
    pub created_at: i64,
}

/// An organization (a provider or one of its customers), with the service roles available
/// in it. A role named `service:role` (`vcd:admin`) is a service role; one without a colon
/// (`provider-administrator`) an organization role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Organization {
    pub id: String,
    pub name: String,
    /// The provider organization a customer organization belongs to.
    pub parent_id: Option<String>,
    pub available_roles: Vec<String>,
    /// The consent UI plugin its clients' pages are rendered by, where neither a client nor
    /// its application names one (unset: the server's default).
    pub consent_ui: Option<String>,
    pub created_at: i64,
}

/// Whether `role` is a service role (`service:role`) rather than an organization role.
pub fn is_service_role(role: &str) -> bool {
    role.contains(':')
}

/// The organization roles the manuals name.
pub mod roles {
    /// Administers the whole server (ELMA365's system administrator).
    pub const SYSTEM_ADMINISTRATOR: &str = "system-administrator";
    /// Registers applications of their own (Deployteq's application manager).
    pub const APPLICATION_MANAGER: &str = "application-manager";
    pub const PROVIDER_ADMINISTRATOR: &str = "provider-administrator";
    /// Not a role of its own: held beside another, whose reach it may not exceed.
    pub const PROVIDER_DEVELOPER: &str = "provider-developer";
}

/// The roles a user holds in an organization.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Membership {
    pub user_id: String,
    pub organization_id: String,
    pub roles: Vec<String>,
    pub created_at: i64,
}

/// An application added to an organization, with what it may have fixed then: later edits
/// of the application do not reach it; removing it and adding it again does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AppInstance {
    pub id: String,
    pub application_id: String,
    pub client_id: String,
    pub organization_id: String,
    pub added_by: String,
    pub added_by_roles: Vec<String>,
    /// The application's scopes when it was added.
    pub scopes: Vec<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub created_at: i64,
    pub doc: UserDocument,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserDocument {
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    /// OIDC Core §5.1 `given_name` and `family_name`, released with `profile`.
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub company: Option<String>,
    pub roles: Vec<String>,
    pub organization_id: Option<String>,
    pub locale: Option<String>,
    /// A disabled user signs in nowhere and gets no token.
    pub disabled: bool,
}

/// What a resource owner (or a client, for itself) was granted; tokens hang off it.
/// Revoking it removes it, and with it every code and refresh token issued under it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub doc: GrantDocument,
}

impl Grant {
    /// A new grant's id: a UUIDv7 (RFC 9562 §5.7) in 32 hex digits. It begins with the time
    /// it was made, so the grants made together are stored together: in the database's
    /// indexes of records and of keys, a random id would put each new grant on a page of
    /// its own. It is no secret (access tokens carry it as `gid`, beside their `iat`); its
    /// 74 random bits keep it unique.
    pub fn new_id() -> String {
        uuid::Uuid::now_v7().simple().to_string()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GrantDocument {
    pub scopes: Vec<String>,
    pub auth_time: Option<i64>,
    /// The browser session it was given in (the ID token's `sid`, OIDC Back-Channel Logout
    /// 1.0 §2.1), when it was given in one.
    pub sid: Option<String>,
    /// Extra claims from the scope policy.
    pub claims: Vec<ExtraClaim>,
    /// How the person signed in when they gave it; unset: a password (or no person).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assurance: Option<Assurance>,
}

/// A claim a scope policy added, and where it goes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtraClaim {
    pub name: String,
    pub value: serde_json::Value,
    pub access_token: bool,
    pub id_token: bool,
    pub userinfo: bool,
}

/// An authorization code (RFC 6749 §4.1.2), stored under the SHA-256 of the code. It
/// carries the grant that its redemption creates, so that redeeming is one atomic write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Code {
    /// SHA-256 of the code, hex.
    pub hash: String,
    pub expires_at: i64,
    /// The grant its redemption creates (and that a replay revokes).
    pub grant: Grant,
    pub doc: CodeDocument,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CodeDocument {
    pub client_id: String,
    pub redirect_uri: String,
    /// Whether the authorization request carried `redirect_uri` (RFC 6749 §4.1.3).
    pub redirect_uri_given: bool,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    /// The user's claims the ID token releases, decided when the code was issued.
    pub id_token_claims: serde_json::Map<String, serde_json::Value>,
    /// The thumbprint of the key the code is bound to: redeeming it proves possession of that key.
    pub dpop_jkt: Option<String>,
}

/// A refresh token (RFC 6749 §1.5), stored under the SHA-256 of the token. It carries
/// what refreshing needs from its grant, so refreshing reads one record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshToken {
    /// SHA-256 of the token, hex.
    pub hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    /// The scopes of the grant: no refresh gets more.
    pub scopes: Vec<String>,
    pub claims: Vec<ExtraClaim>,
    pub auth_time: Option<i64>,
    /// The grant's `sid`, for the ID tokens a refresh issues.
    #[serde(default)]
    pub sid: Option<String>,
    /// The grant's sign-in assurance, for the tokens a refresh issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assurance: Option<Assurance>,
    pub created_at: i64,
    pub expires_at: i64,
    /// The thumbprint of the key the token is bound to: using it proves possession of that
    /// key. Kept by every successor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

/// What a user agreed a client may have, remembered so the consent page is not shown again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub granted_at: i64,
}

/// An access token revoked before its expiry (RFC 7009), by `jti`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokedAccessToken {
    pub jti: String,
    pub expires_at: i64,
}

/// A signing key. What it is at a moment (next, signing, retiring, retired) follows from
/// these times and those of the other keys of its algorithm (`keys.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: String,
    /// The private key, sealed (AES-256-GCM) with the key id as associated data.
    #[serde(with = "base64url")]
    pub sealed_private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    /// From when it signs; it is published from when it is written. Unset in records written
    /// before keys were published ahead: from `created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signs_from: Option<i64>,
    /// The order keys were made in, one more than the greatest before it: of two keys that
    /// sign from the same second, the one made later is the newer. Records written before
    /// it was kept: 0.
    #[serde(default)]
    pub serial: u64,
    /// The longest lifetime of a token signed with it, in seconds: how long it stays
    /// published once replaced. Records written before it was kept read as the longest any
    /// token may live.
    #[serde(default = "unknown_token_lifetime")]
    pub longest_token_lifetime: u64,
    /// Published until then at the latest: when it was retired (at once), or, in records
    /// written before lifetimes were kept, when the tokens of its time had expired.
    pub retire_at: Option<i64>,
    /// The fingerprint of the encryption key its private half is sealed with
    /// (`crypto::Sealer::fingerprint`). Unset in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_with: Option<String>,
}

impl SigningKeyRecord {
    pub fn signs_from(&self) -> i64 {
        self.signs_from.unwrap_or(self.created_at)
    }
}

fn unknown_token_lifetime() -> u64 {
    crate::limits::LONGEST_SIGNED_TOKEN_TTL
}

/// A client registered through the registration endpoint (RFC 7591): the hash of the
/// registration access token its configuration endpoint (RFC 7592) takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientRegistration {
    pub client_id: String,
    /// SHA-256 of the registration access token, hex.
    pub token_hash: String,
    pub created_at: i64,
}

/// An initial access token (RFC 7591 §3) an administrator issued: stored under the SHA-256
/// of the token (hex), which is also what names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitialAccessToken {
    pub id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// How many more registrations it allows; unset: any number until it expires.
    pub uses_left: Option<u32>,
}

/// A signed-in browser, stored under the SHA-256 of its cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// SHA-256 of the session id, hex.
    pub hash: String,
    pub user_id: String,
    pub auth_time: i64,
    pub expires_at: i64,
    /// How the person signed in; unset in sessions started before it was kept: a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assurance: Option<Assurance>,
}

/// How a person proved who they are: the level reached and the methods used, as the
/// factors module names them (`factors::Assurance`'s values). Unset where a record was
/// written before it was kept: a password alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Assurance {
    pub acr: String,
    pub amr: Vec<String>,
}

/// A user's second factors, one record per user: an authenticator app's secret (sealed),
/// recovery codes (hashed, each used once), and passkeys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserFactors {
    pub user_id: String,
    /// The authenticator app, once its first code confirmed it.
    pub totp: Option<TotpFactor>,
    /// An authenticator app being added: its secret, sealed, until a first code confirms it.
    pub pending_totp: Option<TotpFactor>,
    pub recovery_codes: Vec<RecoveryCode>,
    pub passkeys: Vec<PasskeyFactor>,
    /// The opaque handle passkeys know the user by (a UUID), made with the first passkey.
    pub passkey_handle: Option<String>,
    /// A passkey enrolment begun on the security page: its state, until it finishes.
    pub passkey_registration: Option<PendingCeremony>,
}

impl UserFactors {
    /// Whether the user has a second factor to be asked for.
    pub fn any(&self) -> bool {
        self.totp.is_some() || !self.passkeys.is_empty()
    }
}

/// A time-based one-time password secret (sealed with the server's encryption key, bound to
/// the user), and the last time step a code was accepted for: none before it again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TotpFactor {
    #[serde(with = "base64url")]
    pub sealed_secret: Vec<u8>,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub last_step: Option<u64>,
}

/// A recovery code, kept as a hash; spent once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RecoveryCode {
    pub hash: String,
    pub used_at: Option<i64>,
}

/// A passkey: the credential as the WebAuthn library keeps it (opaque here), its id, the
/// name its owner gave it, and when it was added and last used.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PasskeyFactor {
    /// The credential id, base64url.
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// Whether the authenticator is a separate device (a security key) rather than the
    /// platform's own.
    pub hardware: bool,
    pub credential: serde_json::Value,
}

/// A ceremony's state kept between its two requests (opaque here), and until when.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingCeremony {
    pub state: serde_json::Value,
    /// The options the page runs the ceremony with (JSON text).
    pub options: String,
    pub expires_at: i64,
}

/// An authorization request parked while the person logs in or consents.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Interaction {
    pub id: String,
    pub expires_at: i64,
    pub csrf: String,
    pub request: AuthorizationRequest,
    /// The user who logged in during this interaction, once they have.
    pub user_id: Option<String>,
    pub auth_time: Option<i64>,
    /// The session's `sid` (see `oauth::session::sid`).
    pub sid: Option<String>,
    /// What the scope policy decided, parked with a consent page so that allowing it
    /// issues exactly what the person was shown.
    pub decision: Option<Decision>,
    /// How the person signed in, parked with a consent page.
    pub assurance: Option<Assurance>,
    /// A sign-in waiting for its second factor: the first factor's result.
    pub second_factor: Option<PendingFactor>,
    /// A passkey sign-in (instead of the password) offered on the login page: its state.
    pub passkey_login: Option<PendingCeremony>,
}

/// The first factor's result, parked with the interaction while the second is asked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingFactor {
    pub user_id: String,
    /// How the person signed in so far.
    pub assurance: Assurance,
    /// When the password was checked (a new sign-in), or, for a session asked for more
    /// (step-up), the session's sign-in time.
    pub auth_time: i64,
    /// The session being asked for more (step-up), by its key; none for a new sign-in.
    pub session: Option<String>,
    /// A passkey ceremony offered as the second factor: its state.
    pub passkey: Option<PendingCeremony>,
}

/// A scope policy's answer for one authorization request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Decision {
    pub scopes: Vec<String>,
    pub claims: Vec<ExtraClaim>,
}

/// What the authorization endpoint answers with (OIDC Core §3; OAuth 2.0 Multiple Response
/// Type Encoding Practices §5): a code, an ID token, an access token, or a combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseType {
    pub code: bool,
    pub id_token: bool,
    pub token: bool,
}

impl Default for ResponseType {
    fn default() -> Self {
        Self::CODE
    }
}

impl ResponseType {
    pub const CODE: Self = Self { code: true, id_token: false, token: false };

    /// Every combination this server answers, as discovery lists them.
    pub const SUPPORTED: [&str; 7] =
        ["code", "id_token", "token", "id_token token", "code id_token", "code token", "code id_token token"];

    /// A space-separated set of `code`, `id_token` and `token`, in any order, each at most once.
    pub fn parse(value: &str) -> Option<Self> {
        let mut r = Self { code: false, id_token: false, token: false };
        for word in value.split(' ') {
            let seen = match word {
                "code" => std::mem::replace(&mut r.code, true),
                "id_token" => std::mem::replace(&mut r.id_token, true),
                "token" => std::mem::replace(&mut r.token, true),
                _ => return None,
            };
            if seen {
                return None;
            }
        }
        (r.code || r.id_token || r.token).then_some(r)
    }

    /// The canonical spelling (`code id_token token` order).
    pub fn as_str(self) -> &'static str {
        match (self.code, self.id_token, self.token) {
            (true, false, false) => "code",
            (false, true, false) => "id_token",
            (false, false, true) => "token",
            (false, true, true) => "id_token token",
            (true, true, false) => "code id_token",
            (true, false, true) => "code token",
            _ => "code id_token token",
        }
    }

    /// Whether a token comes back from the authorization endpoint itself (implicit, hybrid).
    pub fn returns_tokens(self) -> bool {
        self.id_token || self.token
    }
}

impl Serialize for ResponseType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResponseType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown response_type `{text}`")))
    }
}

/// How the authorization response reaches the client (OAuth 2.0 Multiple Response Type
/// Encoding Practices §2.1, OAuth 2.0 Form Post Response Mode), and each of those ways with
/// the parameters in one signed JWT instead (JARM §2.3.1–§2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    #[default]
    Query,
    Fragment,
    FormPost,
    #[serde(rename = "query.jwt")]
    QueryJwt,
    #[serde(rename = "fragment.jwt")]
    FragmentJwt,
    #[serde(rename = "form_post.jwt")]
    FormPostJwt,
}

impl ResponseMode {
    pub const SUPPORTED: [&str; 7] =
        ["query", "fragment", "form_post", "jwt", "query.jwt", "fragment.jwt", "form_post.jwt"];

    /// The mode `value` names for `response_type`: `jwt` (JARM §2.3.4) is the response
    /// type's default mode, JWT-secured.
    pub fn parse(value: &str, response_type: ResponseType) -> Option<Self> {
        Some(match value {
            "query" => Self::Query,
            "fragment" => Self::Fragment,
            "form_post" => Self::FormPost,
            "query.jwt" => Self::QueryJwt,
            "fragment.jwt" => Self::FragmentJwt,
            "form_post.jwt" => Self::FormPostJwt,
            "jwt" => Self::default_for(response_type).secured(),
            _ => return None,
        })
    }

    /// The default for a response type: the query for a code alone, else the fragment.
    pub fn default_for(response_type: ResponseType) -> Self {
        if response_type.returns_tokens() { Self::Fragment } else { Self::Query }
    }

    /// The same way, with the parameters in one signed JWT.
    pub fn secured(self) -> Self {
        match self {
            Self::Query | Self::QueryJwt => Self::QueryJwt,
            Self::Fragment | Self::FragmentJwt => Self::FragmentJwt,
            Self::FormPost | Self::FormPostJwt => Self::FormPostJwt,
        }
    }

    /// Whether the parameters travel in one signed JWT (JARM).
    pub fn is_jwt(self) -> bool {
        matches!(self, Self::QueryJwt | Self::FragmentJwt | Self::FormPostJwt)
    }

    /// Whether the response goes in the redirect URI's query, where no token may travel.
    pub fn in_query(self) -> bool {
        matches!(self, Self::Query | Self::QueryJwt)
    }
}

/// A device's authorization request (RFC 8628 §3.1) while it waits for a person to enter
/// its user code, and what they decided. The id is SHA-256 of the device code.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceAuthorization {
    pub id: String,
    /// The user code without separators, upper case.
    pub user_code: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub scope_given: bool,
    pub acr_values: Vec<String>,
    pub expires_at: i64,
    /// Seconds the device waits between polls (§3.2); grows by 5 at each `slow_down`.
    pub interval: i64,
    pub last_poll: i64,
    pub state: DeviceState,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum DeviceState {
    #[default]
    Pending,
    Approved {
        user_id: String,
        auth_time: i64,
        decision: Decision,
        /// How the person who allowed it signed in.
        #[serde(default)]
        assurance: Option<Assurance>,
    },
    Denied,
}

/// A pushed authorization request (RFC 9126 §2): its parameters, as the client sent them,
/// until its `request_uri` is used once or expires. The id is SHA-256 of the `request_uri`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PushedRequest {
    pub id: String,
    pub client_id: String,
    /// The authorization request's parameters, form-urlencoded.
    pub parameters: String,
    pub expires_at: i64,
}

impl PushedRequest {
    /// RFC 9126 §2.2: a `request_uri` is a URN of this form.
    pub const URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
}

/// A client assertion's `jti` seen (RFC 7523 §3, item 7): until the assertion expires, the
/// same one is refused. The id is SHA-256 of the client id and the `jti`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UsedAssertion {
    pub id: String,
    pub expires_at: i64,
}

/// A credential an extension grant's plugin named single-use (RFC 6749 §4.5), seen: until
/// the time the plugin gave, the same one is refused. The id is SHA-256 of the grant type,
/// the client id and the plugin's identifier of the credential.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UsedGrantCredential {
    pub id: String,
    pub expires_at: i64,
}

/// A proof-of-possession JWT's `jti` seen: until its `iat` is out of the window in which it
/// is accepted, the same one is refused. The id is SHA-256 of the key's thumbprint and the `jti`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UsedProof {
    pub id: String,
    pub expires_at: i64,
}

/// An authorization request as it was validated, parked with its interaction.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub response_type: ResponseType,
    pub response_mode: ResponseMode,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scopes: Vec<String>,
    pub scope_given: bool,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Vec<String>,
    pub acr_values: Vec<String>,
    /// The `claims` parameter (OIDC Core §5.5), JSON text.
    pub claims: Option<String>,
    /// The thumbprint of the key the code is to be bound to.
    pub dpop_jkt: Option<String>,
}

impl AuthorizationRequest {
    pub fn prompts(&self, p: &str) -> bool {
        self.prompt.iter().any(|x| x == p)
    }
}

/// Something done, as the audit log keeps it (`audit.rs`): its type, who did it (the
/// operator, `user:<id>`, `client:<id>` or `system`), what it is about (`<kind>:<id>`), when,
/// on which replica, for which request and from which address, and a small detail map.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// The time, then a counter of the writing process: ids sort as events happened.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub actor: String,
    pub subject: String,
    /// Unix seconds.
    pub at: i64,
    #[serde(default)]
    pub request_id: Option<String>,
    pub replica: String,
    #[serde(default)]
    pub client_address: Option<String>,
    #[serde(default)]
    pub detail: serde_json::Map<String, serde_json::Value>,
    /// When retention ends; none: kept.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// The time the server goes by, in Unix seconds. Requests read it from their state, so a
/// test can move it instead of waiting for time to pass.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        now()
    }
}

/// A clock that stands still until it is moved: it starts at the system's time.
#[derive(Debug)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl Default for ManualClock {
    fn default() -> Self {
        Self(std::sync::atomic::AtomicI64::new(now()))
    }
}

impl ManualClock {
    /// Moves the clock `seconds` ahead.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The system's time; requests use their state's [`Clock`] instead.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

mod base64url {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        URL_SAFE_NO_PAD.decode(text).map_err(serde::de::Error::custom)
    }
}
