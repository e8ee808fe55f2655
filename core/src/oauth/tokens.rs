//! Minting tokens: JWT access tokens (RFC 9068), ID tokens (OIDC Core §2), opaque refresh
//! tokens (RFC 6749 §1.5), and the token response (RFC 6749 §5.1).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Protocol;
use super::dpop::Jkt;
use crate::crypto::{SigningAlgorithm, hash_secret, random_token};
use crate::error::OAuthError;
use crate::model::{Assurance, Client, ExtraClaim, RefreshToken, TokenSettings, TokenTypeSpelling, User};
use crate::storage::ClientContext;

/// The claims of an access token this server issued, as read back by introspection and userinfo.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// How the person signed in (OIDC Core §2 `acr`, RFC 8176 `amr`; RFC 9068 §2.2.1), in
    /// a user's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// The grant this token hangs off; revoking the grant revokes the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// The application instance a client credentials token was issued through; removing
    /// the instance revokes the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iid: Option<String>,
    /// RFC 9449 §6.1: the key the token is bound to; it is used only with a proof of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// RFC 7800 §3.1 `cnf`, with RFC 9449 §6.1's member: the SHA-256 JWK thumbprint of the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

/// A JWT's `aud` (RFC 7519 §4.1.3): one audience, or several.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn as_slice(&self) -> &[String] {
        match self {
            Self::One(a) => std::slice::from_ref(a),
            Self::Many(a) => a,
        }
    }

    pub fn contains(&self, audience: &str) -> bool {
        self.as_slice().iter().any(|a| a == audience)
    }
}

impl crate::keys::Expiring for AccessClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

impl AccessClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }
}

#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// `Bearer`, or as the client's application spells it (RFC 6749 §7.1: case-insensitive);
    /// `DPoP` for a token bound to a key (RFC 9449 §5).
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// RFC 8693 §2.2.1: what a token exchange issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// What one token response is issued for.
pub struct Issue<'a> {
    /// The client, with the records that decide its tokens' lifetimes and spelling.
    pub context: &'a ClientContext,
    /// The resource owner; none for client credentials.
    pub user_id: Option<&'a str>,
    /// Whom the access token is about when that is neither a user of this server nor the
    /// client (an extension grant's device): its `sub`. Such a token has no grant, so it
    /// never reads as a user's (userinfo, token exchange).
    pub subject: Option<&'a str>,
    pub scopes: &'a [String],
    pub claims: &'a [ExtraClaim],
    /// The grant the tokens hang off (`gid`); revoking it revokes them.
    pub grant_id: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub auth_time: Option<i64>,
    /// The browser session the grant was given in: the ID token's `sid`.
    pub sid: Option<&'a str>,
    /// How the person signed in (`acr`, `amr`); unset for a user's token: a password.
    pub assurance: Option<&'a Assurance>,
    /// Whom the access token is for (`aud`) when not this server alone: token exchange's
    /// `audience` or `resource` (RFC 8693 §2.1).
    pub audience: Option<&'a [String]>,
    /// The user's claims for the ID token; an ID token is issued when these are given and
    /// `openid` was granted.
    pub id_token_claims: Option<&'a Map<String, Value>>,
    pub refresh_token: Option<String>,
}

impl<'a> Issue<'a> {
    /// A token no user gave: the client's own (client credentials), or one about `subject`
    /// (an extension grant's device). No grant, no ID token, no refresh token.
    pub fn without_user(
        context: &'a ClientContext,
        subject: Option<&'a str>,
        scopes: &'a [String],
        claims: &'a [ExtraClaim],
    ) -> Self {
        Issue {
            context,
            user_id: None,
            subject,
            scopes,
            claims,
            grant_id: None,
            nonce: None,
            auth_time: None,
            sid: None,
            assurance: None,
            audience: None,
            id_token_claims: None,
            refresh_token: None,
        }
    }
}

/// The token response; with `dpop`, the key of the request's DPoP proof, the access token
/// is bound to it (RFC 9449 §5, §6.1).
pub async fn issue(app: &Protocol, what: Issue<'_>, dpop: Option<&Jkt>) -> Result<TokenResponse, OAuthError> {
    let now = app.clock.now();
    let (access_token, expires_in) = access_token(app, &what, dpop, now).await?;
    let id_token = match (what.user_id, what.id_token_claims) {
        (Some(sub), Some(user_claims)) if what.scopes.iter().any(|s| s == "openid") => {
            let hashes = Hashes { access_token: Some(&access_token), ..Default::default() };
            Some(id_token(app, &what, sub, user_claims, hashes, now).await?)
        }
        _ => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type: if dpop.is_some() { DPOP_TOKEN_TYPE } else { token_type(&what) },
        expires_in,
        scope: what.scopes.join(" "),
        refresh_token: what.refresh_token,
        id_token,
        issued_token_type: None,
    })
}

/// What the authorization endpoint itself returns (OIDC Core §3.2.2.5, §3.3.2.5): an access
/// token when `token` was asked for, an ID token when `id_token` was, the latter carrying
/// the hashes of what comes with it (`at_hash`, `c_hash`, and `s_hash` of the state).
pub struct FrontChannel {
    pub access_token: Option<(String, u64)>,
    pub token_type: &'static str,
    pub id_token: Option<String>,
}

pub async fn front_channel(
    app: &Protocol,
    what: Issue<'_>,
    access: bool,
    code: Option<&str>,
    state: Option<&str>,
) -> Result<FrontChannel, OAuthError> {
    let now = app.clock.now();
    let access_token = if access { Some(access_token(app, &what, None, now).await?) } else { None };
    let id_token = match (what.user_id, what.id_token_claims) {
        (Some(sub), Some(user_claims)) => {
            let hashes = Hashes { access_token: access_token.as_ref().map(|(t, _)| t.as_str()), code, state };
            Some(id_token(app, &what, sub, user_claims, hashes, now).await?)
        }
        _ => None,
    };
    Ok(FrontChannel { access_token, token_type: token_type(&what), id_token })
}

/// RFC 9449 §5: the `token_type` of a DPoP-bound access token.
pub const DPOP_TOKEN_TYPE: &str = "DPoP";

fn token_type(what: &Issue<'_>) -> &'static str {
    what.context.token_settings().token_type.unwrap_or(TokenTypeSpelling::Bearer).as_str()
}

/// An access token (RFC 9068), bound to `dpop`'s key if given, and its lifetime; signed with
/// the server's algorithm, which resource servers expect whichever client the token is for.
async fn access_token(
    app: &Protocol,
    what: &Issue<'_>,
    dpop: Option<&Jkt>,
    now: i64,
) -> Result<(String, u64), OAuthError> {
    let client = &what.context.client;
    let settings = what.context.token_settings();
    let ttl = settings.access_token_ttl.unwrap_or(app.config.tokens.access_token_ttl);
    let mut extra = Map::new();
    for c in what.claims.iter().filter(|c| c.access_token) {
        extra.insert(c.name.clone(), c.value.clone());
    }
    let claims = AccessClaims {
        iss: app.config.issuer().to_owned(),
        sub: what.user_id.or(what.subject).unwrap_or(&client.id).to_owned(),
        aud: match what.audience {
            Some([one]) => Audience::One(one.clone()),
            Some(many) if !many.is_empty() => Audience::Many(many.to_vec()),
            _ => Audience::One(app.config.issuer().to_owned()),
        },
        exp: now + ttl as i64,
        iat: now,
        jti: random_token(16),
        client_id: client.id.clone(),
        scope: what.scopes.join(" "),
        auth_time: what.auth_time,
        acr: what.user_id.map(|_| crate::factors::effective(what.assurance).acr),
        amr: what.user_id.map(|_| crate::factors::effective(what.assurance).amr),
        gid: what.grant_id.map(str::to_owned),
        // Only a client credentials token hangs off the instance itself; a user's hangs off its grant.
        iid: what.grant_id.is_none().then(|| what.context.instance.as_ref().map(|i| i.id.clone())).flatten(),
        cnf: dpop.map(|jkt| Confirmation { jkt: jkt.as_str().to_owned() }),
        extra,
    };
    Ok((app.keys.sign(app.keys.algorithm(), "at+jwt", &claims, ttl).await?, ttl))
}

/// What an ID token carries the hashes of (OIDC Core §3.1.3.6 `at_hash`, §3.3.2.11 `c_hash`;
/// FAPI 1.0 Advanced §5.2.2.1 `s_hash`).
#[derive(Default, Clone, Copy)]
struct Hashes<'a> {
    access_token: Option<&'a str>,
    code: Option<&'a str>,
    state: Option<&'a str>,
}

/// The algorithm a client's ID tokens are signed with, and what is signed like them for it
/// (logout tokens; JARM responses unless it chose theirs): the one it registered
/// (`id_token_signed_response_alg`, OIDC Registration §2), else the server's.
pub(crate) fn id_token_algorithm(app: &Protocol, client: &Client) -> SigningAlgorithm {
    client.doc.id_token_signed_response_alg.as_deref().and_then(SigningAlgorithm::parse).unwrap_or(app.keys.algorithm())
}

/// OIDC Core §2.
async fn id_token(
    app: &Protocol,
    what: &Issue<'_>,
    sub: &str,
    user_claims: &Map<String, Value>,
    hashes: Hashes<'_>,
    now: i64,
) -> Result<String, OAuthError> {
    // The key that signs this ID token decides the hashes' hash function.
    let signer = app.keys.signer(id_token_algorithm(app, &what.context.client))?;
    let algorithm = signer.algorithm();
    let ttl = app.config.tokens.id_token_ttl;
    let mut claims = json!({
        "iss": app.config.issuer(),
        "sub": sub,
        "aud": what.context.client.id,
        "azp": what.context.client.id,
        "exp": now + ttl as i64,
        "iat": now,
    });
    let map = claims.as_object_mut().ok_or_else(|| OAuthError::internal("id token", "claims are not an object"))?;
    // How the person signed in: OIDC Core §2 `acr` ("1" a password, "2" two factors) and
    // RFC 8176 `amr` (`crate::factors`).
    let assurance = crate::factors::effective(what.assurance);
    map.insert("acr".into(), assurance.acr.into());
    map.insert("amr".into(), json!(assurance.amr));
    for (name, value) in [("at_hash", hashes.access_token), ("c_hash", hashes.code), ("s_hash", hashes.state)] {
        if let Some(value) = value {
            map.insert(name.into(), algorithm.half_hash(value).into());
        }
    }
    if let Some(t) = what.auth_time {
        map.insert("auth_time".into(), t.into());
    }
    if let Some(n) = what.nonce {
        map.insert("nonce".into(), n.into());
    }
    if let Some(sid) = what.sid {
        map.insert("sid".into(), sid.into());
    }
    for (k, v) in user_claims {
        map.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for c in what.claims.iter().filter(|c| c.id_token) {
        map.entry(c.name.clone()).or_insert_with(|| c.value.clone());
    }
    Ok(signer.sign("JWT", &claims, ttl).await?)
}

/// The scopes this server itself gives meaning to: OIDC Core §3.1.2.1 (`openid`), §5.4
/// (`profile`, `email`), §11 (`offline_access`).
pub const SERVER_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// The claims every ID token carries, or carries when they apply (OIDC Core §2).
const ID_TOKEN_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "c_hash",
    "s_hash",
    "azp",
    "acr",
    "amr",
    "tenant",
    "sid",
];

/// Every claim the server can release: the ID token's own and every claim a scope releases.
/// Discovery's `claims_supported`.
pub fn claims_supported(roles_scope: Option<&str>) -> Vec<String> {
    let mut claims: Vec<String> = ID_TOKEN_CLAIMS.iter().map(|c| (*c).to_owned()).collect();
    let scopes = SERVER_SCOPES.iter().copied().chain(roles_scope);
    for name in scopes.flat_map(|s| scope_claims(s, roles_scope)) {
        if !claims.iter().any(|c| c == name) {
            claims.push((*name).to_owned());
        }
    }
    claims
}

/// The claim the operator's roles scope (`tokens.roles_scope`) releases: the user's roles.
const ROLE_CLAIM: &str = "role";

/// `tokens.roles_scope`, checked at start: a scope token (RFC 6749 §3.3) that is none of the
/// server's own.
pub fn check_roles_scope(roles_scope: Option<&str>) -> Result<(), crate::config::ConfigError> {
    let Some(scope) = roles_scope else { return Ok(()) };
    let one = super::params::parse_scope(Some(scope)).is_ok_and(|s| s.len() == 1);
    if !one || SERVER_SCOPES.contains(&scope) {
        return Err(crate::config::ConfigError::Value {
            key: "tokens.roles_scope",
            reason: format!("`{scope}` must be one scope token (RFC 6749 §3.3) other than the server's own"),
        });
    }
    Ok(())
}

/// The claims a scope releases: OIDC Core §5.4's standard claims (plus `company` with
/// `profile`), and the user's roles with the operator's roles scope.
fn scope_claims(scope: &str, roles_scope: Option<&str>) -> &'static [&'static str] {
    match scope {
        "profile" => &["name", "given_name", "family_name", "preferred_username", "company", "locale"],
        "email" => &["email", "email_verified"],
        _ if Some(scope) == roles_scope => &[ROLE_CLAIM],
        _ => &[],
    }
}

/// The user's value of a claim; `None` when the user has none.
fn user_claim(user: &User, name: &str) -> Option<Value> {
    match name {
        "name" => Some(user.doc.name.clone().into()),
        "given_name" => user.doc.given_name.clone().map(Value::from),
        "family_name" => user.doc.family_name.clone().map(Value::from),
        "preferred_username" => Some(user.username.clone().into()),
        "company" => user.doc.company.clone().map(Value::from),
        "locale" => user.doc.locale.clone().map(Value::from),
        "email" => Some(user.doc.email.clone().into()),
        "email_verified" => Some(user.doc.email_verified.into()),
        ROLE_CLAIM => Some(user.doc.roles.clone().into()),
        _ => None,
    }
}

/// The claims a user's scopes release (OIDC Core §5.4, and `roles_scope`'s `role`).
pub fn user_claims<'a>(
    user: &User,
    scopes: impl Iterator<Item = &'a str>,
    roles_scope: Option<&str>,
) -> Map<String, Value> {
    let mut m = Map::new();
    for name in scopes.flat_map(|s| scope_claims(s, roles_scope)) {
        if let Some(value) = user_claim(user, name) {
            m.insert((*name).to_owned(), value);
        }
    }
    m
}

/// The user's claims an ID token carries: those the granted scopes release and, when
/// `openid` was granted, those the client's settings name (ELMA365: `email`, `company`).
pub fn id_token_user_claims(
    user: &User,
    scopes: &[String],
    settings: &TokenSettings,
    roles_scope: Option<&str>,
) -> Map<String, Value> {
    let mut m = user_claims(user, scopes.iter().map(String::as_str), roles_scope);
    if scopes.iter().any(|s| s == "openid") {
        for name in settings.id_token_claims.iter().flatten() {
            if let Some(value) = user_claim(user, name) {
                m.entry(name.clone()).or_insert(value);
            }
        }
    }
    m
}

/// Whether `name` is a standard user claim the server can release (what a client's settings
/// may add to its ID tokens).
pub fn is_user_claim(name: &str) -> bool {
    SERVER_SCOPES.iter().any(|s| scope_claims(s, None).contains(&name))
}

/// A new refresh token carrying what refreshing needs: returns the token and its record.
pub fn new_refresh_token(previous: &RefreshToken, now: i64) -> (String, RefreshToken) {
    let token = random_token(32);
    let record = RefreshToken { hash: hash_secret(&token), created_at: now, ..previous.clone() };
    (token, record)
}
