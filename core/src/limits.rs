//! Every size and lifetime bound on what callers and operators hand the server, in one place.
//!
//! Requests are read and checked against these before anything is looked up, stored or
//! logged: an unauthenticated caller must not be able to make the server work, or the
//! database grow, in proportion to what it sends.

/// Largest body an OAuth endpoint reads (authorization POST, token, introspection,
/// revocation, userinfo POST, the login and consent forms); larger is 413 `invalid_request`.
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

/// Longest `client_id`, in bytes (ours are 32 hex digits).
pub const MAX_CLIENT_ID_BYTES: usize = 256;

/// Longest `redirect_uri`, registered or requested, in bytes.
pub const MAX_REDIRECT_URI_BYTES: usize = 2048;

/// Longest `state`: opaque to the server, echoed back in the redirect (RFC 6749 §4.1.1).
pub const MAX_STATE_BYTES: usize = 4096;

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
    // RFC 9449 §10: a base64url SHA-256 thumbprint is 43 characters.
    ("dpop_jkt", 128),
];

/// The password grant's parameters (RFC 6749 §4.3.2), bounded before anything is hashed.
pub const PASSWORD_GRANT_PARAMETERS: &[(&str, usize)] = &[("username", 512), ("password", 1024), ("acr_values", 1024)];

/// The longest client assertion (RFC 7523) read, in bytes.
pub const MAX_CLIENT_ASSERTION_BYTES: usize = 8 * 1024;

/// The longest DPoP proof (RFC 9449 §4.2) read, in bytes: room for an RSA-4096 key in its
/// header and its signature.
pub const MAX_DPOP_PROOF_BYTES: usize = 8 * 1024;

/// The longest DPoP proof `jti` taken (RFC 9449 §4.2: 96 random bits are enough).
pub const MAX_DPOP_JTI_BYTES: usize = 256;

/// The longest request object (OIDC Core §6.1) read, in bytes.
pub const MAX_REQUEST_OBJECT_BYTES: usize = 16 * 1024;

/// The longest `request_uri` taken (RFC 9101 §5.2: at most 512 ASCII characters).
pub const MAX_REQUEST_URI_BYTES: usize = 512;

/// The longest an extension grant's plugin may have a credential remembered as used.
pub const MAX_SINGLE_USE_SECONDS: i64 = 24 * 3600;

/// Shortest accepted `server.admin_token`, in characters.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

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
/// How long a JWT-secured authorization response (JARM §2.1: a short `exp`, since the client
/// uses it at once) is valid, in seconds: fixed at 10 minutes, the default life of a code.
pub const AUTHORIZATION_RESPONSE_TTL: u64 = 600;

/// The longest any token the server signs may live: an access or ID token. A key whose
/// record does not say how long its tokens live is kept published this long once replaced.
pub const LONGEST_SIGNED_TOKEN_TTL: u64 = max(max(ACCESS_TOKEN_TTL.max, ID_TOKEN_TTL.max), AUTHORIZATION_RESPONSE_TTL);

/// The longest `keys.publish_ahead`: how long a rotated key may wait before it signs.
pub const MAX_PUBLISH_AHEAD: u64 = 7 * DAY;

const fn max(a: u64, b: u64) -> u64 {
    if a > b { a } else { b }
}
