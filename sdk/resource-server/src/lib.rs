//! Accept Portcullis access tokens in a Rust resource server.
//!
//! Portcullis issues access tokens as RFC 9068 JWTs (`typ: at+jwt`; ES256 by default, RS256
//! or EdDSA when configured), signed with keys it publishes at `{issuer}/jwks.json`, with the
//! claims `iss`, `sub`, `aud` (the issuer), `exp`, `iat`, `jti`, `client_id` and `scope`. A
//! [`Validator`] checks such a token in one of two ways:
//!
//! | | [`Validator::jwks`] (local) | [`Validator::introspection`] (RFC 7662) |
//! |---|---|---|
//! | how | verifies the signature against the issuer's JWKS, fetched once and cached | asks the issuer's introspection endpoint about every token |
//! | cost | no request to the issuer per token | one HTTP round trip per request |
//! | revocation | **not seen**: a revoked token keeps working until its `exp` (600 s by default) | seen at once |
//! | needs | nothing but the issuer's URL | client credentials of a confidential client registered with `introspect_any` |
//!
//! Pick the JWKS mode when a token's remaining lifetime is an acceptable window for a revoked
//! token (short access tokens make it small), and the load or latency matters; pick
//! introspection when a revoked token (or a deleted client's) must stop at once, e.g. for
//! endpoints that move money or data.
//!
//! In JWKS mode the key set is re-fetched when a token names a `kid` the cache does not know
//! (the issuer rotated its keys), at most once per [refetch interval](Validator::with_refetch_interval)
//! (10 s) so that tokens with made-up key ids cannot make the validator hammer the issuer, and
//! when the cached set is older than its [maximum age](Validator::with_jwks_max_age) (5 min),
//! so a key the issuer withdraws stops verifying. The algorithm is the one the key's JWK names
//! (`alg`): a token whose header names another, or `none`, is refused, and so is a key without
//! `alg`. Introspection answers are **not cached**.
//!
//! For axum, [`require_scope`] is a layer that validates the `Authorization: Bearer` token,
//! checks a scope, and hands the handler the [`Claims`]; refusals follow RFC 6750 §3 (see
//! [`Error`]):
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use portcullis_resource_server::{Claims, Validator, require_scope};
//!
//! async fn webhook(claims: Claims, body: String) -> String {
//!     format!("{} sent {} bytes", claims.client_id, body.len())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Local validation against http://127.0.0.1:8080/jwks.json …
//! let validator = Validator::jwks("http://127.0.0.1:8080");
//! // … or ask the introspection endpoint about every token:
//! // let validator = Validator::introspection("http://127.0.0.1:8080/introspect", "rs-id", "rs-secret");
//! let app: Router = Router::new()
//!     .route("/webhook", post(webhook))
//!     .route_layer(require_scope(validator, "apps.webhook:execute"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Without axum, [`Validator::validate`] checks a token and [`Validator::authorize`] a
//! request's headers.
//!
//! The HTTP client has no TLS unless the `rustls-tls` feature is on (as the workspace's own
//! `reqwest`); for an `https://` issuer turn it on, or pass a client of your own with
//! [`Validator::with_http_client`].

mod claims;
mod error;
mod http;
mod introspection;
mod jwks;
mod layer;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};
use jsonwebtoken::Validation;

pub use claims::Claims;
pub use error::{DEFAULT_REALM, Error};
pub use layer::{RequireScope, RequireScopeLayer, require_scope, require_scopes};

/// The `typ` of an RFC 9068 access token (§2.1), short and long form.
const ACCESS_TOKEN_TYPES: [&str; 2] = ["at+jwt", "application/at+jwt"];

/// The longest token accepted; anything longer is refused before it costs a key lookup or a
/// request to the issuer.
pub const MAX_TOKEN_LENGTH: usize = 16 * 1024;

/// Validates Portcullis access tokens, locally against the issuer's JWKS or by asking its
/// introspection endpoint (see the [crate documentation](crate) for which to pick).
///
/// Cheap to clone; clones share the JWKS cache.
///
/// ```
/// use std::time::Duration;
/// use portcullis_resource_server::Validator;
///
/// let validator = Validator::jwks("https://id.example.com")
///     .with_audience("https://id.example.com")
///     .with_leeway(Duration::from_secs(10))
///     .with_realm("billing");
/// assert_eq!(validator.realm(), "billing");
/// ```
#[derive(Clone)]
pub struct Validator {
    mode: Mode,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    realm: Arc<str>,
    http: reqwest::Client,
    timeout: Duration,
}

#[derive(Clone)]
enum Mode {
    Jwks { url: String, cache: Arc<jwks::Cache>, refetch_interval: Duration, max_age: Duration },
    Introspection(Arc<introspection::Endpoint>),
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Validator");
        match &self.mode {
            Mode::Jwks { url, refetch_interval, max_age, .. } => {
                d.field("jwks_url", url).field("refetch_interval", refetch_interval).field("jwks_max_age", max_age)
            }
            Mode::Introspection(endpoint) => d.field("introspection", endpoint),
        };
        d.field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// The default allowance for clocks that disagree, applied to `exp` (and `nbf`).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The default interval between re-fetches of the JWKS for unknown key ids.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// The default age after which a cached JWKS is re-read.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// The default timeout of a request to the issuer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Validator {
    /// Validates tokens locally: the signature against the keys published at
    /// `{issuer}/jwks.json`, `typ`, `alg`, `iss` (exactly `issuer`), `exp` and `nbf` (with the
    /// [leeway](Self::with_leeway)), and `aud` when [set](Self::with_audience).
    ///
    /// Nothing is fetched until the first token arrives.
    pub fn jwks(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        let url = format!("{}/jwks.json", issuer.trim_end_matches('/'));
        Self::new(
            Mode::Jwks {
                url,
                cache: Arc::default(),
                refetch_interval: DEFAULT_REFETCH_INTERVAL,
                max_age: DEFAULT_JWKS_MAX_AGE,
            },
            Some(issuer),
        )
    }

    /// Asks the RFC 7662 introspection endpoint (e.g. `{issuer}/introspect`) about every
    /// token, authenticating with HTTP Basic as `client_id`. Only an `active: true` answer
    /// about an access token is accepted; answers are not cached, so revocation takes effect
    /// at once.
    ///
    /// Portcullis tells a client only about its own tokens unless it was registered with
    /// `introspect_any` (`client add --introspect-any`): register the resource server so.
    ///
    /// ```
    /// let validator = portcullis_resource_server::Validator::introspection(
    ///     "http://127.0.0.1:8080/introspect",
    ///     std::env::var("RS_CLIENT_ID").unwrap_or_default(),
    ///     std::env::var("RS_CLIENT_SECRET").unwrap_or_default(),
    /// );
    /// # let _ = validator;
    /// ```
    pub fn introspection(
        introspection_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        let endpoint = introspection::Endpoint::new(introspection_url.into(), client_id.into(), client_secret.into());
        Self::new(Mode::Introspection(Arc::new(endpoint)), None)
    }

    fn new(mode: Mode, issuer: Option<String>) -> Self {
        // No redirects: the issuer's endpoints answer where they are, and introspection
        // carries credentials.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            mode,
            issuer,
            audience: None,
            leeway: DEFAULT_LEEWAY,
            realm: Arc::from(DEFAULT_REALM),
            http,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Requires `aud` to contain `audience` (a Portcullis access token's `aud` is its issuer).
    /// Unset, `aud` is not checked.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The `iss` a token must carry. [`Validator::jwks`] sets its issuer; in introspection
    /// mode, when set, the answer's `iss` must be this.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// JWKS mode: where the keys are, instead of `{issuer}/jwks.json`. Starts a new cache.
    /// No effect in introspection mode.
    pub fn with_jwks_url(mut self, url: impl Into<String>) -> Self {
        if let Mode::Jwks { url: current, cache, .. } = &mut self.mode {
            *current = url.into();
            *cache = Arc::default();
        }
        self
    }

    /// How far past `exp` (and before `nbf`) a token is still accepted, for clocks that
    /// disagree: 30 s unless set; whole seconds. `Duration::ZERO` accepts a token only until
    /// the second of its `exp`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The realm named in `WWW-Authenticate` (`"api"` unless set).
    pub fn with_realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Arc::from(realm.into());
        self
    }

    /// The HTTP client used to reach the issuer (e.g. one with TLS roots or a proxy of your
    /// choice). The default follows no redirects.
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The timeout of each request to the issuer (10 s unless set).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// JWKS mode: the least time between two re-fetches caused by tokens naming an unknown
    /// key (10 s unless set). Within it, such tokens are refused without asking the issuer.
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        if let Mode::Jwks { refetch_interval, .. } = &mut self.mode {
            *refetch_interval = interval;
        }
        self
    }

    /// JWKS mode: a cached key set older than this is re-read before it verifies again
    /// (5 min unless set); should the issuer be unreachable, the cached keys keep serving.
    pub fn with_jwks_max_age(mut self, age: Duration) -> Self {
        if let Mode::Jwks { max_age, .. } = &mut self.mode {
            *max_age = age;
        }
        self
    }

    /// The realm named in `WWW-Authenticate`.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Validates one access token and returns its claims.
    ///
    /// ```no_run
    /// # async fn f(token: &str) {
    /// let validator = portcullis_resource_server::Validator::jwks("http://127.0.0.1:8080");
    /// match validator.validate(token).await {
    ///     Ok(claims) => println!("{} may {}", claims.client_id, claims.scope),
    ///     Err(e) => println!("refused: {e}"),
    /// }
    /// # }
    /// ```
    pub async fn validate(&self, token: &str) -> Result<Claims, Error> {
        if !is_b64token(token) {
            return Err(Error::InvalidToken("the bearer token is malformed".into()));
        }
        let claims = match &self.mode {
            Mode::Jwks { url, cache, refetch_interval, max_age } => {
                let source = jwks::Source {
                    http: &self.http,
                    url,
                    timeout: self.timeout,
                    refetch_interval: *refetch_interval,
                    max_age: *max_age,
                };
                self.validate_jwt(token, cache, &source).await?
            }
            Mode::Introspection(endpoint) => {
                let claims = endpoint.introspect(&self.http, self.timeout, token).await?;
                self.check_introspected(claims)?
            }
        };
        // RFC 9449 §7.2: a DPoP-bound token (`cnf`) is used only with a proof of its key, which
        // this validator does not check: it is never taken as a bearer token.
        if claims.extra.contains_key("cnf") {
            return Err(Error::InvalidToken("the token is DPoP-bound, not a bearer token".into()));
        }
        Ok(claims)
    }

    /// Validates the request's bearer token (see [`bearer_token`]) and checks that it carries
    /// every scope in `required`.
    pub async fn authorize<S: AsRef<str>>(&self, headers: &HeaderMap, required: &[S]) -> Result<Claims, Error> {
        let token = bearer_token(headers)?;
        let claims = self.validate(token).await?;
        if required.iter().all(|s| claims.has_scope(s.as_ref())) {
            Ok(claims)
        } else {
            let required = required.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" ");
            Err(Error::InsufficientScope { required })
        }
    }

    async fn validate_jwt(&self, token: &str, cache: &jwks::Cache, source: &jwks::Source<'_>) -> Result<Claims, Error> {
        let invalid = |m: &str| Error::InvalidToken(m.into());
        // `alg: none` and every unknown algorithm fail here already: the header does not parse.
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("the token is not a signed JWT"))?;
        if !header.typ.as_deref().is_some_and(|t| ACCESS_TOKEN_TYPES.iter().any(|a| t.eq_ignore_ascii_case(a))) {
            return Err(invalid("the token is not an access token (typ at+jwt)"));
        }
        let kid = header.kid.as_deref().ok_or_else(|| invalid("the token names no key (kid)"))?;
        let key = cache.key(kid, source).await?;
        if key.algorithm != header.alg {
            return Err(invalid("the token's alg is not its key's"));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map(|data| data.claims).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => Error::Expired,
                ErrorKind::InvalidSignature => invalid("the token's signature does not verify"),
                ErrorKind::InvalidIssuer => invalid("the token is from another issuer"),
                ErrorKind::InvalidAudience => invalid("the token is for another audience"),
                ErrorKind::ImmatureSignature => invalid("the token is not valid yet"),
                ErrorKind::MissingRequiredClaim(c) => Error::InvalidToken(format!("the token has no `{c}`")),
                _ => invalid("the token is malformed"),
            }
        })
    }

    /// What the introspection answer says is checked as a JWT's claims would be, in case the
    /// answer comes from a server more lenient than this validator.
    fn check_introspected(&self, claims: Claims) -> Result<Claims, Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        if claims.exp.saturating_add(leeway) < now {
            return Err(Error::Expired);
        }
        if let Some(issuer) = &self.issuer
            && claims.iss != *issuer
        {
            return Err(Error::InvalidToken("the token is from another issuer".into()));
        }
        if let Some(audience) = &self.audience
            && !claims.aud.contains(audience)
        {
            return Err(Error::InvalidToken("the token is for another audience".into()));
        }
        Ok(claims)
    }
}

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1).
///
/// No `Authorization` header, or one of another scheme, or `Bearer` with nothing after it, is
/// [`Error::MissingToken`]; two `Authorization` headers are [`Error::InvalidRequest`]; a
/// token that is not RFC 6750 `b64token` syntax, or longer than [`MAX_TOKEN_LENGTH`], is
/// [`Error::InvalidToken`]. Tokens in the query or the body are not read.
///
/// ```
/// use axum::http::{HeaderMap, HeaderValue, header};
/// let mut headers = HeaderMap::new();
/// headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc.def.ghi"));
/// assert_eq!(portcullis_resource_server::bearer_token(&headers), Ok("abc.def.ghi"));
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Error> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Error::MissingToken);
    };
    if values.next().is_some() {
        return Err(Error::InvalidRequest("more than one Authorization header".into()));
    }
    let malformed = || Error::InvalidToken("the bearer token is malformed".into());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::MissingToken);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Err(Error::MissingToken);
    }
    if !is_b64token(token) {
        return Err(malformed());
    }
    Ok(token)
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`,
/// at most [`MAX_TOKEN_LENGTH`] long.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && token.len() <= MAX_TOKEN_LENGTH
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn reads_the_bearer_header() {
        assert_eq!(bearer_token(&headers(&["Bearer a.b-c_d~e+f/g=="])), Ok("a.b-c_d~e+f/g=="));
        assert_eq!(bearer_token(&headers(&["bearer  tok "])), Ok("tok"));
        assert_eq!(bearer_token(&headers(&[])), Err(Error::MissingToken));
        assert_eq!(bearer_token(&headers(&["Basic dXNlcjpwYXNz"])), Err(Error::MissingToken));
        assert_eq!(bearer_token(&headers(&["Bearer"])), Err(Error::MissingToken));
        assert_eq!(bearer_token(&headers(&["Bearer   "])), Err(Error::MissingToken));
        assert!(matches!(bearer_token(&headers(&["Bearer a", "Bearer b"])), Err(Error::InvalidRequest(_))));
        for bad in ["Bearer a b", "Bearer a\"b", "Bearer ===", "Bearer a=b", "Bearer a,b"] {
            let h = headers(&[bad]);
            assert!(matches!(bearer_token(&h), Err(Error::InvalidToken(_))), "{bad}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LENGTH + 1));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&long).unwrap());
        assert!(matches!(bearer_token(&h), Err(Error::InvalidToken(_))));
    }
}
