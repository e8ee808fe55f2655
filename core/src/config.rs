//! Configuration: built-in defaults < `portcullis.toml` (or `--config FILE`) < `PORTCULLIS_*`
//! environment variables (`PORTCULLIS_<SECTION>__<KEY>`). Unknown keys are refused at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::limits::{self, MIN_ADMIN_TOKEN_CHARS};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub policies: PoliciesConfig,
    pub keys: KeysConfig,
    pub tokens: TokensConfig,
    pub applications: ApplicationsConfig,
    pub dpop: DpopConfig,
    pub outbound: OutboundConfig,
    pub events: EventsConfig,
    pub limits: LimitsConfig,
    pub registration: RegistrationConfig,
}

/// Dynamic Client Registration (RFC 7591) and its management (RFC 7592): `POST /register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    /// Serve the registration endpoint and advertise it in discovery (off by default: anyone
    /// who reaches the server may then register a client).
    pub enabled: bool,
    /// Every registration must carry an initial access token an administrator issued
    /// (`portcullis registration token issue`, `POST /admin/v1/registration/tokens`).
    pub require_initial_access_token: bool,
    /// Registrations per client address (IPv6: per /64) per minute on one replica; past it
    /// the registration endpoint answers 429. 0 turns the limit off.
    pub registrations_per_address_per_minute: u32,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self { enabled: false, require_initial_access_token: false, registrations_per_address_per_minute: 10 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The `iss` of every token and the base of every advertised endpoint.
    pub issuer: String,
    /// Where the embedded database, the encryption key file and the compiled-plugin cache live.
    pub data_dir: PathBuf,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// Bearer token for `/admin/v1`; the admin API is off while this is unset.
    pub admin_token: Option<String>,
    /// Path layouts answered besides the native one: `elma365`, `datev`, `deployteq`.
    pub profiles: Vec<CompatibilityProfile>,
    /// Sign-in attempts per username per minute on one replica before further attempts are
    /// delayed (never refused); 0 turns the limit off.
    pub sign_in_attempts_per_minute: u32,
    /// The longest a throttled username's attempt is delayed, in milliseconds.
    pub sign_in_max_delay_ms: u64,
    /// Sign-in attempts per client address (IPv6: per /64) per minute on one replica; past
    /// it the login page answers 429. 0 turns the limit off.
    pub sign_in_attempts_per_address_per_minute: u32,
    /// Sign-in attempts one login page gets; past it the page is spent. 0: no limit.
    pub sign_in_attempts_per_interaction: u32,
    /// Password grant attempts per client per minute on one replica; past it the token
    /// endpoint answers 429. 0 turns the limit off.
    pub sign_in_attempts_per_client_per_minute: u32,
    /// Password hashes (argon2id, ~19 MiB each) running at once; 0: one per CPU.
    pub password_hash_concurrency: usize,
    /// Password hashes waiting beyond those running; past it a sign-in or a user's creation
    /// is answered 503.
    pub password_hash_queue: usize,
    /// Connections open at once; past it new ones wait to be accepted. 0: what the
    /// descriptor limit (`RLIMIT_NOFILE`) leaves the database and the rest of the server.
    pub max_connections: usize,
    /// Requests answered at once; past it a request is shed at once, 503
    /// `temporarily_unavailable` with `Retry-After`, rather than queued behind the others
    /// (`overload.rs`). 0: `limits::REQUESTS_IN_FLIGHT_PER_CPU` per CPU.
    pub max_requests_in_flight: usize,
    /// Milliseconds the server may be late in running what is ready (every CPU busy, ready
    /// connections waiting for one) before requests are shed for a moment (`overload.rs`).
    /// 0: never shed for lateness.
    pub max_scheduling_delay_ms: u64,
    /// Seconds a connection has to send a request's head, from its accept or its previous
    /// answer (so a kept-alive connection idle that long is closed too).
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may move no byte either way (a stalled body, a client that does
    /// not read its answer) before it is closed.
    pub idle_timeout_secs: u64,
    /// The name this replica gives the audit events it writes (`replica`). Unset: the host
    /// name and the process id (`host-1234`), which tell every process apart but change
    /// when it restarts.
    pub replica_id: Option<String>,
    /// Seconds a stopping server (SIGTERM, SIGINT) gives the requests in flight and the
    /// back-channel logout deliveries pending before it exits.
    pub shutdown_grace: u64,
    /// One line per request at INFO (`access_log.rs`); `false` turns it off.
    pub access_log: bool,
    /// The reverse proxies (addresses or CIDR blocks) whose `Forwarded` or
    /// `X-Forwarded-For` names the client (`client_address.rs`); from any other peer those
    /// headers are ignored. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<Network>,
    /// Where `GET /metrics` (Prometheus text format) is served, on a listener of its own;
    /// unset: metrics are off and nothing listens.
    pub metrics_listen: Option<SocketAddr>,
}

/// An address block in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Network(pub ipnet::IpNet);

impl TryFrom<String> for Network {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(net) = text.parse::<ipnet::IpNet>() {
            return Ok(Self(net.trunc()));
        }
        let address: std::net::IpAddr = text.parse().map_err(|_| format!("`{text}` is no address or CIDR block"))?;
        let prefix = if address.is_ipv4() { 32 } else { 128 };
        ipnet::IpNet::new(address, prefix).map(Self).map_err(|e| e.to_string())
    }
}

impl From<Network> for String {
    fn from(network: Network) -> Self {
        network.0.to_string()
    }
}

/// The path layouts of the systems Portcullis stands in for (the paths themselves are the
/// protocol's: `oauth::profiles`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CompatibilityProfile {
    Elma365,
    Datev,
    Deployteq,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://...`. Empty means `sqlite://<data_dir>/portcullis.db`.
    pub url: String,
    pub max_connections: u32,
    /// How long a request waits for a PostgreSQL connection, opening a new one included,
    /// before its storage is unavailable (503); keep it below the storage plugin's deadline.
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoliciesConfig {
    /// The policies directory; when it does not exist the built-in policies are used.
    pub dir: PathBuf,
    /// Watch the directory and hot-reload plugins.
    pub watch: bool,
    /// Where `dir` was set (a file, the environment), when it was: a directory set there
    /// must exist, while the default one may be absent (the built-in policies).
    #[serde(skip)]
    pub dir_set_in: Option<String>,
    /// Plugin names used when a client names none.
    pub storage: String,
    pub scope: String,
    pub consent: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// The algorithm of access tokens and of the ID tokens of clients that chose none:
    /// `ES256` (default), `RS256` or `EdDSA`. Every one of them is served all the same.
    pub algorithm: crate::crypto::SigningAlgorithm,
    /// Seconds a rotated key is published before it signs: longer than the JWK Set's
    /// `Cache-Control: max-age`, so that a resource server's cached set knows it by then.
    pub publish_ahead: u64,
    /// 32 bytes, base64url, sealing signing keys at rest. Unset: a key file in `data_dir`
    /// (fine for one machine; replicas must share one configured key), made only while the
    /// database holds no signing key (`encryption_key.rs`).
    pub encryption_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// Seconds.
    pub code_ttl: u64,
    pub access_token_ttl: u64,
    pub id_token_ttl: u64,
    pub refresh_token_ttl: u64,
    pub session_ttl: u64,
    pub interaction_ttl: u64,
    /// A scope that releases the user's roles as a `role` array (DATEV's userinfo); unset: none does.
    pub roles_scope: Option<String>,
}

/// Applications that users register themselves (Deployteq's apps).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApplicationsConfig {
    /// The scopes such an application may be registered with; empty: any scope.
    pub scope_catalogue: Vec<String>,
}

/// OAuth 2.0 Demonstrating Proof of Possession (RFC 9449).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpopConfig {
    /// Every DPoP proof must carry a nonce this server issued (§8, §9): a proof without
    /// one, or with a stale one, is answered `use_dpop_nonce` and a fresh nonce in the
    /// `DPoP-Nonce` header.
    pub require_nonce: bool,
}

/// The server's own requests to its clients (`outbound.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Requests over plain `http` to a loopback address (a client on the same machine, in
    /// development). Off: only `https` is requested.
    pub allow_loopback_http: bool,
}

/// Limits shared by every replica (`oauth::sign_in_shared`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Redis (`redis://host:port/db`) where the replicas count sign-in, password grant and
    /// device code attempts together. Unset: each replica counts its own. While it cannot be
    /// reached a replica counts its own and says so.
    pub redis_url: Option<String>,
    /// The prefix of every key written to Redis, so that deployments sharing one do not
    /// count each other's attempts.
    pub redis_prefix: String,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { redis_url: None, redis_prefix: "portcullis".into() }
    }
}

/// Audit events (`audit.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Days an event is kept, from when it happened; then the upkeep purges it with the
    /// other expired records. 0: kept forever. An event keeps the retention it was written
    /// with.
    pub retention_days: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self { retention_days: 90 }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: "http://127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            log_format: LogFormat::Pretty,
            admin_token: None,
            profiles: Vec::new(),
            sign_in_attempts_per_minute: 10,
            sign_in_max_delay_ms: 5000,
            sign_in_attempts_per_address_per_minute: 60,
            sign_in_attempts_per_interaction: 10,
            sign_in_attempts_per_client_per_minute: 60,
            password_hash_concurrency: 0,
            password_hash_queue: 32,
            max_connections: 0,
            max_requests_in_flight: 0,
            max_scheduling_delay_ms: 100,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            replica_id: None,
            shutdown_grace: 10,
            access_log: true,
            trusted_proxies: Vec::new(),
            metrics_listen: None,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: String::new(), max_connections: 16, acquire_timeout_ms: 1000 }
    }
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./policies"),
            dir_set_in: None,
            watch: true,
            storage: "storage-sql".into(),
            scope: "scope-template".into(),
            consent: "consent-default".into(),
        }
    }
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self { algorithm: crate::crypto::SigningAlgorithm::ES256, publish_ahead: 3600, encryption_key: None }
    }
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            code_ttl: 600,
            access_token_ttl: 600,
            id_token_ttl: 600,
            refresh_token_ttl: 14 * 24 * 3600,
            session_ttl: 24 * 3600,
            interaction_ttl: 1800,
            roles_scope: None,
        }
    }
}

const ADMIN_TOKEN_KEY: &str = "server.admin_token";

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("configuration: {key}: {reason}")]
    Value { key: &'static str, reason: String },
}

impl Config {
    /// Loads defaults, then the file (`path`, or `portcullis.toml` when it exists), then the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(p) => figment = figment.merge(Toml::file_exact(p)),
            None => figment = figment.merge(Toml::file("portcullis.toml")),
        }
        let env = Env::prefixed("PORTCULLIS_").split("__");
        // figment reads a value of digits alone as a number (and drops its leading zeros): the
        // admin token is taken as the text that was set.
        figment = figment.merge(env.clone().ignore(&[ADMIN_TOKEN_KEY]));
        for (_, token) in env.only(&[ADMIN_TOKEN_KEY]).iter() {
            figment = figment.merge(Serialized::default(ADMIN_TOKEN_KEY, token));
        }
        let mut config: Config = figment.extract().map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        if let Some(set) = figment.find_metadata("policies.dir")
            && set.name != std::any::type_name::<Config>()
        {
            config.policies.dir_set_in = Some(match &set.source {
                Some(source) => format!("{} {source}", set.name),
                None => set.name.to_string(),
            });
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what deserializing cannot; `load` calls it, and so does `Portcullis::open` for a
    /// configuration built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let issuer = url::Url::parse(&self.server.issuer)
            .map_err(|e| ConfigError::Value { key: "server.issuer", reason: e.to_string() })?;
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(ConfigError::Value {
                key: "server.issuer",
                reason: "must have no query or fragment (RFC 8414 §2)".into(),
            });
        }
        if let Some(token) = &self.server.admin_token {
            // It arrives as `Authorization: Bearer <token>`: anything else could never be sent.
            if !is_b64token(token) {
                return Err(ConfigError::Value {
                    key: ADMIN_TOKEN_KEY,
                    reason: "must be a bearer token (RFC 6750 §2.1): ASCII letters, digits and -._~+/, then any ="
                        .into(),
                });
            }
            // A missing Authorization header reads as "", so an empty or guessable token would
            // open the admin API to anyone.
            if token.len() < MIN_ADMIN_TOKEN_CHARS {
                return Err(ConfigError::Value {
                    key: ADMIN_TOKEN_KEY,
                    reason: format!(
                        "must have at least {MIN_ADMIN_TOKEN_CHARS} characters (leave it unset to turn the admin API off)"
                    ),
                });
            }
        }
        let t = &self.tokens;
        let lifetimes = [
            ("tokens.code_ttl", t.code_ttl, limits::CODE_TTL),
            ("tokens.access_token_ttl", t.access_token_ttl, limits::ACCESS_TOKEN_TTL),
            ("tokens.id_token_ttl", t.id_token_ttl, limits::ID_TOKEN_TTL),
            ("tokens.refresh_token_ttl", t.refresh_token_ttl, limits::REFRESH_TOKEN_TTL),
            ("tokens.session_ttl", t.session_ttl, limits::SESSION_TTL),
            ("tokens.interaction_ttl", t.interaction_ttl, limits::INTERACTION_TTL),
            ("server.header_read_timeout_secs", self.server.header_read_timeout_secs, limits::CONNECTION_TIMEOUT),
            ("server.idle_timeout_secs", self.server.idle_timeout_secs, limits::CONNECTION_TIMEOUT),
        ];
        for (key, seconds, bounds) in lifetimes {
            bounds.check(seconds).map_err(|reason| ConfigError::Value { key, reason })?;
        }
        if !limits::SHUTDOWN_GRACE.contains(&self.server.shutdown_grace) {
            return Err(ConfigError::Value {
                key: "server.shutdown_grace",
                reason: format!("at most {} seconds", limits::SHUTDOWN_GRACE.end()),
            });
        }
        if self.server.trusted_proxies.len() > limits::MAX_TRUSTED_PROXIES {
            return Err(ConfigError::Value {
                key: "server.trusted_proxies",
                reason: format!("at most {} entries", limits::MAX_TRUSTED_PROXIES),
            });
        }
        let wait = self.database.acquire_timeout_ms;
        if !limits::DATABASE_ACQUIRE_TIMEOUT_MS.contains(&wait) {
            let (min, max) = limits::DATABASE_ACQUIRE_TIMEOUT_MS.into_inner();
            return Err(ConfigError::Value {
                key: "database.acquire_timeout_ms",
                reason: format!("{wait} is not between {min} and {max} milliseconds"),
            });
        }
        if self.keys.publish_ahead > limits::MAX_PUBLISH_AHEAD {
            return Err(ConfigError::Value {
                key: "keys.publish_ahead",
                reason: format!("at most {} seconds", limits::MAX_PUBLISH_AHEAD),
            });
        }
        let url = self.database_url();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::Value {
                key: "database.url",
                reason: "must start with sqlite: or postgres://".into(),
            });
        }
        Ok(())
    }

    /// The issuer without a trailing slash, the base of every endpoint URL.
    pub fn issuer(&self) -> &str {
        self.server.issuer.trim_end_matches('/')
    }

    pub fn database_acquire_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.database.acquire_timeout_ms)
    }

    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}/portcullis.db", self.server.data_dir.display())
        } else {
            self.database.url.clone()
        }
    }

    pub fn issuer_is_https(&self) -> bool {
        self.server.issuer.starts_with("https://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_token_is_a_b64token() {
        for good in ["0123456789abcdef", "abc-._~+/DEF0123==", "0012345678901234567"] {
            assert!(is_b64token(good), "{good}");
        }
        for bad in
            ["", "====", "ääääääääääääääää", "with a space 0123", "quote\"0123456789ab", "tab\t0123456789abc", "a=b"]
        {
            assert!(!is_b64token(bad), "{bad:?}");
        }
    }
}
