//! Every size and lifetime bound on what callers and operators hand the server, in one place.
//!
//! Requests are read and checked against these before anything is looked up, stored or
//! logged: an unauthenticated caller must not be able to make the server work, or the
//! database grow, in proportion to what it sends. What the server keeps in memory on a
//! caller's behalf (caches, rate limiters' keys) is bounded here too.
//!
//! This module imports nothing of the crate, so that every layer may use it.

use std::collections::HashMap;
use std::hash::Hash;

/// Largest body an OAuth endpoint or a page's form reads (authorization POST, token,
/// introspection, revocation, userinfo POST, the login and consent forms, the account and
/// device pages' forms); larger is 413 `invalid_request`.
/// Every parameter below, percent-encoded, fits with room to spare.
pub const OAUTH_BODY_BYTES: usize = 64 * 1024;

/// Longest query string `GET /authorize` reads; longer is 414 `invalid_request`. It must stay
/// below the 64 KiB request target the HTTP layer parses at all (longer is refused there,
/// without a JSON body).
pub const AUTHORIZE_QUERY_BYTES: usize = 32 * 1024;

/// Largest body the admin API reads (client and user registration).
pub const ADMIN_BODY_BYTES: usize = 1024 * 1024;

/// Most scope tokens one `scope` parameter may carry (RFC 6749 §3.3), duplicates included.
pub const MAX_SCOPES: usize = 100;

/// Longest scope token, in bytes.
pub const MAX_SCOPE_TOKEN_BYTES: usize = 256;

/// Longest `client_id`, in bytes (ours are 32 hex digits): a longer one is refused wherever
/// it is read, before it is looked up.
pub const MAX_CLIENT_ID_BYTES: usize = 256;

/// The longest user id a session cookie may name (`oauth::session`), as long as the storage
/// contract's ids; a longer name is not read, and the session is looked up without it.
pub const MAX_SESSION_USER_ID_BYTES: usize = 256;

/// Most clients (or unknown client ids of the shape this server issues) a replica keeps read.
pub const MAX_CACHED_CLIENTS: usize = 10_000;

/// Most authorization codes a replica remembers having issued and not yet seen redeemed
/// (`Storage::remember_issued_code`), so that their redemption here reads nothing; when full,
/// the expired go first. A code not remembered is read from storage.
pub const MAX_REMEMBERED_CODES: usize = 4_096;

/// Requests a replica answers at once per CPU when `server.max_requests_in_flight` is 0;
/// past them a request is shed (`overload.rs`). What piles up here waits on the database or
/// a plugin (a busy CPU is the scheduling probe's to notice).
pub const REQUESTS_IN_FLIGHT_PER_CPU: usize = 64;

/// Connections the listener keeps waiting to be accepted (`connections::bind`); the
/// kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// How often the server checks how late it runs what is ready (`overload.rs`).
pub const SCHEDULING_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// How long requests are shed after the server was found running late (`overload.rs`).
pub const SHED_HOLD: std::time::Duration = std::time::Duration::from_millis(250);

/// How long one upkeep (every 30 s) spends purging expired records, a batch per storage call
/// (`server.rs`); what is left goes at the next.
pub const PURGE_TIME_PER_UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// How often SQLite's write-ahead log is copied back into the database file off the writer
/// (`plugin/writer.rs`, `Checkpointer`); a page written many times between two rounds is
/// copied once.
pub const SQLITE_CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Write groups SQLite's writer runs in one transaction at most (`plugin/writer.rs`): those
/// queued when a group ends join its batch, so a commit's pages are written once for many
/// groups; the bound keeps the write lock from being held long for one commit.
pub const WRITE_GROUPS_PER_COMMIT: usize = 64;

/// Pages (4 KiB) SQLite's write-ahead log holds before the writer checkpoints it itself,
/// after a commit. Under steady writes the checkpoint thread never catches up with the log's
/// end (the writer appends while it copies), so the log starts over only from the writer's
/// checkpoint, which then copies what the last round left (at most a round's worth) and
/// syncs. The log file grows to about 64 MiB.
pub const SQLITE_WAL_PAGES_WRITER_CHECKPOINTS: i64 = 16_384;

/// How long after a PostgreSQL connection was last handed out the pool checks it with a
/// round trip of its own before handing it out again (`plugin/pg_pool.rs`). One taken sooner
/// is used at once: should it have broken meanwhile, its statement fails as unavailable (503)
/// and the connection is closed, as it would be had the check found it broken.
pub const POSTGRES_CHECK_IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a PostgreSQL connection serves before the pool closes it, when it is next taken,
/// and opens another (`plugin/pg_pool.rs`): a backend's caches do not grow for the life of
/// the server, and a database whose address moved is reached at its new one.
pub const POSTGRES_CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Formatted log lines waiting for the thread that writes them to stderr (`telemetry.rs`),
/// in bytes (a line is a few hundred); a logger that finds this much waiting wakes the
/// writer and waits for room.
pub const LOG_BUFFER_BYTES: usize = 256 << 10;

/// How often the log's writing thread writes what waits, in one call: the most a line waits.
pub const LOG_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// Most access tokens a replica remembers having verified the signature of (a fixed-size
/// entry each); past it the expired go first.
pub const MAX_VERIFIED_TOKENS: usize = 16 * 1024;

/// Most keys each sign-in rate limiter holds (addresses, login pages, clients, usernames;
/// each key 32 bytes or an address).
pub const MAX_LIMITER_KEYS: usize = 65_536;

/// Longest `redirect_uri`, registered or requested, in bytes.
pub const MAX_REDIRECT_URI_BYTES: usize = 2048;

/// Longest `Origin` header read, in bytes: a scheme, a host name of at most 253 bytes and a
/// port fit. A longer one is taken for no origin, before anything is looked up.
pub const MAX_ORIGIN_BYTES: usize = 300;

/// Most `allowed_origins` a client registers.
pub const MAX_ALLOWED_ORIGINS: usize = 16;

/// Longest `state`: opaque to the server, echoed back in the redirect (RFC 6749 §4.1.1).
pub const MAX_STATE_BYTES: usize = 4096;

/// Longest `acr_values` (OIDC Core §3.1.2.1), in bytes: kept with a parked interaction or a
/// device authorization request, and handed to the scope policy.
pub const MAX_ACR_VALUES_BYTES: usize = 1024;

/// Longest `claims` request (OIDC Core §5.5), in bytes: a JSON object kept with a parked
/// interaction.
pub const MAX_CLAIMS_BYTES: usize = 4096;

/// Longest value, in bytes, of each authorization request parameter kept with a parked
/// interaction or a code (RFC 6749 §4.1.1, OIDC Core §3.1.2.1, RFC 7636 §4.3). `scope` has
/// its own bounds ([`MAX_SCOPES`], [`MAX_SCOPE_TOKEN_BYTES`]).
pub const AUTHORIZATION_PARAMETERS: &[(&str, usize)] = &[
    ("client_id", MAX_CLIENT_ID_BYTES),
    ("redirect_uri", MAX_REDIRECT_URI_BYTES),
    ("state", MAX_STATE_BYTES),
    ("response_type", 64),
    ("response_mode", 64),
    ("nonce", 2048),
    ("prompt", 64),
    ("max_age", 20),
    ("login_hint", 512),
    ("ui_locales", 256),
    ("code_challenge", 128),
    ("code_challenge_method", 16),
    ("acr_values", MAX_ACR_VALUES_BYTES),
    ("claims", MAX_CLAIMS_BYTES),
    // RFC 9449 §10: a base64url SHA-256 thumbprint is 43 characters.
    ("dpop_jkt", 128),
];

/// The password grant's parameters (RFC 6749 §4.3.2), bounded before anything is hashed.
pub const PASSWORD_GRANT_PARAMETERS: &[(&str, usize)] = &[("username", 512), ("password", 1024)];

/// The longest client assertion (RFC 7523) read, in bytes.
pub const MAX_CLIENT_ASSERTION_BYTES: usize = 8 * 1024;

/// The longest a client assertion may live (its `exp` at most this far ahead), in seconds:
/// a replayed `jti` is remembered that long at most.
pub const MAX_CLIENT_ASSERTION_LIFETIME: i64 = 3600;

/// PKCE (RFC 7636 §4.1): a `code_verifier`, and a `plain` `code_challenge`, is 43 to 128
/// characters.
pub const CODE_VERIFIER_CHARS: std::ops::RangeInclusive<usize> = 43..=128;

/// The longest DPoP proof (RFC 9449 §4.2) read, in bytes: room for an RSA-4096 key in its
/// header and its signature.
pub const MAX_DPOP_PROOF_BYTES: usize = 8 * 1024;

/// The longest DPoP proof `jti` taken (RFC 9449 §4.2: 96 random bits are enough).
pub const MAX_DPOP_JTI_BYTES: usize = 256;

/// RFC 9449 §4.3 item 11, §11.1: how far a DPoP proof's `iat` may be from the server's clock,
/// either side, in seconds; its `jti` is remembered that long.
pub const DPOP_IAT_WINDOW: i64 = 60;

/// The longest request object (OIDC Core §6.1) read, in bytes.
pub const MAX_REQUEST_OBJECT_BYTES: usize = 16 * 1024;

/// The longest `request_uri` taken (RFC 9101 §5.2: at most 512 ASCII characters).
pub const MAX_REQUEST_URI_BYTES: usize = 512;

/// The largest JWK Set read from a client's `jwks_uri`, in bytes.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Most JWK Sets fetched from clients' `jwks_uri`s a replica keeps.
pub const MAX_CACHED_JWK_SETS: usize = 1024;

/// The longest any request of the server's own (to a client's `request_uris`, `jwks_uri`,
/// `backchannel_logout_uri`) may take, connecting and reading included.
pub const OUTBOUND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// A user code as typed at the device page (RFC 8628 §6.1), once its separators are
/// dropped: exactly this many characters, as the server issues them.
pub const USER_CODE_CHARS: usize = 8;

/// The longest an extension grant's plugin may have a credential remembered as used.
pub const MAX_SINGLE_USE_SECONDS: i64 = 24 * 3600;

/// Bounds of `database.acquire_timeout_ms`, how long a request waits for a PostgreSQL
/// connection. The longest is a plugin's longest deadline: the wait must fit inside the
/// storage plugin's, or an outage waits the whole deadline before its 503.
pub const DATABASE_ACQUIRE_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 10..=30_000;
/// The longest subject an extension grant's plugin may name (other than a user or the
/// client), in bytes.
pub const MAX_GRANT_SUBJECT_BYTES: usize = 255;

/// The longest extension grant type (an absolute URI, RFC 6749 §4.5) a plugin may answer or
/// a client register, in bytes.
pub const MAX_EXTENSION_GRANT_TYPE_BYTES: usize = 255;

/// The largest memory cap a plugin's manifest may ask for, in MiB.
pub const MAX_PLUGIN_MEMORY_MB: u64 = 512;

/// The longest deadline a plugin's manifest may ask for, in milliseconds.
pub const MAX_PLUGIN_DEADLINE_MS: u64 = 30_000;

/// Most instances of the storage plugin kept between calls for the next (`plugin/call.rs`);
/// one more is dropped when its call ends. Each holds its memory while it waits.
pub const MAX_IDLE_STORAGE_INSTANCES: usize = 16;

/// Most calls one storage plugin instance serves before it is dropped for a fresh one, so
/// that what its allocator leaves behind does not pile up.
pub const MAX_CALLS_PER_STORAGE_INSTANCE: u32 = 10_000;

/// How many faults in a row (a trap, a deadline, an exhausted memory) make a plugin unhealthy
/// when its manifest's `[on-fault]` does not say (`after`).
pub const DEFAULT_PLUGIN_FAULTS_AFTER: u32 = 5;

/// The most faults in a row a manifest's `[on-fault] after` may wait for before the plugin is
/// unhealthy.
pub const MAX_PLUGIN_FAULTS_AFTER: u32 = 1000;

/// The longest message a plugin logs, in characters; the rest is cut off.
pub const MAX_PLUGIN_LOG_CHARS: usize = 2000;

/// The most a plugin writes to its stdout or stderr (WASI) in one call, in bytes; it is logged
/// at debug level after the call, and a write past it fails.
pub const MAX_PLUGIN_STDIO_BYTES: usize = 4096;

/// The most origins a plugin's manifest may grant it outbound HTTP to (`[grants] http`).
pub const MAX_PLUGIN_HTTP_ORIGINS: usize = 32;

/// The largest response body a plugin's outbound HTTP request may read, in bytes.
pub const MAX_PLUGIN_HTTP_RESPONSE_BYTES: u64 = 1 << 20;

/// The longest key of a plugin's key-value cache (`portcullis:plugin/kv`), in bytes.
pub const MAX_PLUGIN_KV_KEY_BYTES: usize = 256;

/// The largest value of a plugin's key-value cache, in bytes.
pub const MAX_PLUGIN_KV_VALUE_BYTES: usize = 64 * 1024;

/// The longest time to live of an entry of a plugin's key-value cache, in seconds (a day).
pub const MAX_PLUGIN_KV_TTL_SECS: u32 = 86_400;

/// Shortest accepted `server.admin_token`, in characters.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// Shortest password a user is registered with, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Longest grace a rotated client secret keeps being accepted for, in seconds (7 days):
/// enough to roll the new secret out, short enough that a leaked one dies.
pub const MAX_SECRET_GRACE_SECONDS: u64 = 7 * 24 * 60 * 60;

/// Longest password an administrator sets, in bytes (what the password grant reads).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Most `audiences` a client registers (RFC 8693 §2.1), and the longest of them, in bytes.
pub const MAX_AUDIENCES: usize = 16;
pub const MAX_AUDIENCE_BYTES: usize = 255;

/// Most `request_uris` a client registers (OIDC Core §6.2).
pub const MAX_REQUEST_URIS: usize = 16;

/// Most keys in a JWK Set a client registers by value (`jwks`).
pub const MAX_JWKS_KEYS: usize = 16;

/// The longest name of an organization, application or template, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// The longest description of an application, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;

/// The longest icon of an application (an `https` URL or an inline `data:image` one), in bytes.
pub const MAX_ICON_BYTES: usize = 64 * 1024;

/// Bounds of a lifetime, in seconds: at least one second, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    pub max: u64,
}

impl Lifetime {
    pub const MIN: u64 = 1;

    /// `Err` names the bounds, for a message that goes with the key or field's name.
    pub fn check(self, seconds: u64) -> Result<(), String> {
        if (Self::MIN..=self.max).contains(&seconds) {
            Ok(())
        } else {
            Err(format!("{seconds} is not between {} and {} seconds", Self::MIN, self.max))
        }
    }
}

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// Authorization codes (RFC 6749 §4.1.2 recommends at most 10 minutes).
pub const CODE_TTL: Lifetime = Lifetime { max: HOUR };
pub const ACCESS_TOKEN_TTL: Lifetime = Lifetime { max: DAY };
pub const ID_TOKEN_TTL: Lifetime = Lifetime { max: DAY };
pub const REFRESH_TOKEN_TTL: Lifetime = Lifetime { max: 365 * DAY };
pub const SESSION_TTL: Lifetime = Lifetime { max: 365 * DAY };
/// How long a login or consent page stays valid.
pub const INTERACTION_TTL: Lifetime = Lifetime { max: DAY };
/// How long a connection may take to send a request's head (`server.header_read_timeout_secs`),
/// or sit idle (`server.idle_timeout_secs`).
pub const CONNECTION_TIMEOUT: Lifetime = Lifetime { max: HOUR };
/// How long a JWT-secured authorization response (JARM §2.1: a short `exp`, since the client
/// uses it at once) is valid, in seconds: fixed at 10 minutes, the default life of a code.
pub const AUTHORIZATION_RESPONSE_TTL: u64 = 600;

/// The longest any token the server signs may live: an access or ID token. A key whose
/// record does not say how long its tokens live is kept published this long once replaced.
pub const LONGEST_SIGNED_TOKEN_TTL: u64 = max(max(ACCESS_TOKEN_TTL.max, ID_TOKEN_TTL.max), AUTHORIZATION_RESPONSE_TTL);

/// The longest `keys.publish_ahead`: how long a rotated key may wait before it signs.
pub const MAX_PUBLISH_AHEAD: u64 = 7 * DAY;

/// How long `/health/ready` waits for storage to answer its read, in milliseconds.
pub const READY_STORAGE_TIMEOUT_MS: u64 = 1000;

/// How long `/health/ready` keeps its finding of the clients that name a plugin not loaded
/// (a read of every client), in seconds, and how many such clients it names.
pub const READY_CLIENTS_EVERY_SECS: u64 = 10;
pub const READY_CLIENTS_NAMED: usize = 10;

/// `server.shutdown_grace`, in seconds: how long a stopping server gives the requests in
/// flight and the back-channel logout deliveries pending.
pub const SHUTDOWN_GRACE: std::ops::RangeInclusive<u64> = 0..=HOUR;

/// How long the process, once stopped, waits for what still runs (a connection past the
/// grace, the background upkeep) before it exits, in milliseconds.
pub const EXIT_WAIT_MS: u64 = 1000;

/// Most entries `server.trusted_proxies` lists.
pub const MAX_TRUSTED_PROXIES: usize = 256;

/// Most hops of a `Forwarded` or `X-Forwarded-For` chain read, from the right (the nearest
/// proxy's end): more than any real chain of proxies.
pub const MAX_FORWARDED_HOPS: usize = 32;

/// Longest request id (`X-Request-Id`) the access log writes, in bytes; a longer one a
/// caller sent is written cut to it.
pub const MAX_LOGGED_REQUEST_ID_BYTES: usize = 128;

const fn max(a: u64, b: u64) -> u64 {
    if a > b { a } else { b }
}

// Audit events (`audit.rs`)

/// Events on one page of `GET /admin/v1/events` when the caller names no `limit`.
pub const DEFAULT_EVENTS_PAGE: usize = 100;

/// Most events on one page of `GET /admin/v1/events` (its `limit`).
pub const MAX_EVENTS_PAGE: usize = 1000;

/// Most events read from storage for one page: filters that select few events end the page
/// early, with a cursor to go on from.
pub const MAX_EVENTS_SCANNED: usize = 10_000;

/// Events read from storage in one call while a page is gathered.
pub const EVENTS_READ_AT_ONCE: usize = 500;

/// Longest value of an events filter (`type`, `subject`, `actor`, `cursor`), in bytes.
pub const MAX_EVENT_FILTER_BYTES: usize = 512;

// Sign-in limits shared through Redis (`oauth::sign_in_shared`)

/// The longest any Redis call of the sign-in limits may take (connecting, or counting an
/// attempt): past it the attempt is counted by the replica alone.
pub const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);

/// How long a replica counts alone after Redis failed before it tries Redis again.
pub const REDIS_RETRY: std::time::Duration = std::time::Duration::from_secs(5);
/// Initial access tokens for Dynamic Client Registration (RFC 7591 §3): how long one lives
/// (a day unless its administrator says otherwise), and the most registrations one may allow.
pub const INITIAL_ACCESS_TOKEN_TTL: Lifetime = Lifetime { max: 365 * DAY };
pub const DEFAULT_INITIAL_ACCESS_TOKEN_TTL: u64 = DAY;
pub const MAX_INITIAL_ACCESS_TOKEN_USES: u32 = 1_000_000;

/// Export and import (`backup.rs`): records read from the storage at a time, and writes
/// applied in one atomic group (a record and its consumption are never split).
pub const BACKUP_RECORDS_PER_READ: u32 = 500;
pub const BACKUP_WRITES_PER_GROUP: usize = 200;

/// Makes room in `map` for one more entry within `max` entries: when it is full, the
/// entries `keep` refuses go, and if fewer than half of them went, all do. Each insert
/// then costs O(1), amortised, however many keys callers make up.
pub fn make_room<K: Hash + Eq, V>(map: &mut HashMap<K, V>, max: usize, keep: impl FnMut(&K, &mut V) -> bool) {
    if map.len() < max {
        return;
    }
    map.retain(keep);
    if map.len() > max / 2 {
        map.clear();
    }
}

/// A shadow scope policy's differences from the live one are logged at most once in this
/// many seconds per shadow (each counted all the same; the next line says how many went
/// unlogged).
pub const SHADOW_LOG_EVERY_SECS: u64 = 10;

/// The longest name `portcullis plugin new` gives a plugin (its crate, files and manifest).
pub const MAX_SCAFFOLD_NAME_BYTES: usize = 64;

/// Recovery codes a user is given at once (each used once; a new set replaces the old).
pub const RECOVERY_CODES: usize = 10;

/// Characters of a recovery code, not counting the hyphens that group them by four: 16
/// characters of a 32-letter alphabet, 80 random bits.
pub const RECOVERY_CODE_CHARS: usize = 16;

/// RFC 6238 §4: the time step of authenticator app codes, in seconds, and their digits.
pub const TOTP_STEP_SECONDS: u64 = 30;
pub const TOTP_DIGITS: usize = 6;

/// RFC 6238 §5.2: time steps a code may be off by either way (the device's clock, the typing).
pub const TOTP_SKEW_STEPS: u8 = 1;

/// Bytes of an authenticator app secret (RFC 4226 §4 recommends 160 bits).
pub const TOTP_SECRET_BYTES: usize = 20;

/// Longest code or recovery code a second-factor form reads, in bytes.
pub const MAX_FACTOR_CODE_BYTES: usize = 64;

/// Longest name a person gives a passkey, in characters.
pub const MAX_PASSKEY_NAME_CHARS: usize = 64;

/// Most passkeys one user may keep.
pub const MAX_PASSKEYS: usize = 20;

/// Longest WebAuthn response (JSON) a form reads, in bytes.
pub const MAX_PASSKEY_RESPONSE_BYTES: usize = 16 * 1024;

/// How long a WebAuthn ceremony begun on a page may take to finish, in seconds.
pub const PASSKEY_CEREMONY_SECS: i64 = 300;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_drops_what_is_not_kept_or_else_everything() {
        let mut map: HashMap<u32, bool> = (0..10).map(|n| (n, n < 3)).collect();
        make_room(&mut map, 10, |_, fresh| *fresh);
        assert_eq!(map.len(), 3, "the stale went");
        let mut map: HashMap<u32, bool> = (0..10).map(|n| (n, n < 8)).collect();
        make_room(&mut map, 10, |_, fresh| *fresh);
        assert!(map.is_empty(), "too few were stale: all went");
        let mut map: HashMap<u32, bool> = (0..9).map(|n| (n, true)).collect();
        make_room(&mut map, 10, |_, _| false);
        assert_eq!(map.len(), 9, "not full yet");
    }
}
