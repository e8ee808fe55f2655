//! The server's records as the protocol sees them. Indexed fields live in the storage
//! plugin's columns; the rest is the record's `document`, JSON the storage plugin keeps as is.

use serde::{Deserialize, Serialize};

pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
pub const GRANT_PASSWORD: &str = "password";
pub const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A registered client (RFC 6749 §2).
#[derive(Debug, Clone)]
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
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
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
    pub template: Option<ClientTemplate>,
    pub scope_policy: Option<String>,
    pub consent_ui: Option<String>,
    /// A resource server that may introspect tokens issued to any client (RFC 7662 §4);
    /// without it a client learns only about its own tokens.
    pub introspect_any: bool,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientTemplate {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }
    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.doc.grant_types.iter().any(|g| g == grant_type)
    }
    pub fn is_expired(&self, now: i64) -> bool {
        self.doc.expires_at.is_some_and(|t| t <= now)
    }
}

#[derive(Debug, Clone)]
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
    pub company: Option<String>,
    pub roles: Vec<String>,
    pub organization_id: Option<String>,
    pub locale: Option<String>,
}

/// What a resource owner (or a client, for itself) was granted; tokens hang off it.
#[derive(Debug, Clone)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
    pub doc: GrantDocument,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GrantDocument {
    pub scopes: Vec<String>,
    pub auth_time: Option<i64>,
    /// Extra claims from the scope policy: name → JSON value, and whether the ID token gets it.
    pub claims: Vec<ExtraClaim>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraClaim {
    pub name: String,
    pub value: serde_json::Value,
    pub id_token: bool,
}

/// An authorization code (RFC 6749 §4.1.2) as stored: only its hash is kept.
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
    pub issued_refresh_token: bool,
}

#[derive(Debug, Clone)]
pub struct Code {
    pub grant_id: String,
    pub expires_at: i64,
    pub doc: CodeDocument,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RefreshDocument {
    pub client_id: String,
    /// Set on the one access token issued with this refresh token, to revoke it with the family.
    pub access_jti: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshState {
    Active,
    /// Exchanged for a successor: presenting it again is reuse.
    Rotated,
    Revoked,
}

#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub grant_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub state: RefreshState,
    pub doc: RefreshDocument,
}

#[derive(Debug, Clone)]
pub struct Consent {
    pub user_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub granted_at: i64,
}

#[derive(Debug, Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: String,
    pub sealed_private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub retire_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// An authorization request parked while the person logs in or consents.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Interaction {
    pub csrf: String,
    pub request: crate::oauth::authorize::AuthorizationRequest,
    /// The user who logged in during this interaction, once they have.
    pub user_id: Option<String>,
    pub auth_time: Option<i64>,
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
