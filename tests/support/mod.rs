//! A real Portcullis server on a loopback port, driven over HTTP as clients drive it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis::config::Config;
use portcullis::server::{self, Portcullis};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub mod chromium;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestServer {
    /// The configured issuer (by default the server's own address).
    pub issuer: String,
    /// Where this server listens.
    pub base: String,
    pub app: Arc<Portcullis>,
    pub http: reqwest::Client,
    pub data: tempfile::TempDir,
    /// Where `/metrics` is served (`server.metrics_listen`), when the options asked for it.
    pub metrics: Option<String>,
}

/// The policies the tests run against: `PORTCULLIS_TEST_POLICIES` (CI points it at freshly
/// rebuilt plugins), else the committed `policies/`.
pub fn policies_dir() -> PathBuf {
    std::env::var_os("PORTCULLIS_TEST_POLICIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"))
}

/// Changes a test server's configuration before it starts.
pub type Configure = Box<dyn FnOnce(&mut Config)>;

/// A server that sheds nothing for running late: for tests that load the machine on purpose,
/// or run beside others, and measure something else (`hardening.rs` tests the shedding).
pub fn never_late(c: &mut Config) {
    c.server.max_scheduling_delay_ms = 0;
}

#[derive(Default)]
pub struct Options {
    pub database_url: Option<String>,
    pub policies: Option<PathBuf>,
    pub profiles: Vec<portcullis::config::CompatibilityProfile>,
    pub watch: bool,
    /// `keys.algorithm`; ES256 when unset.
    pub algorithm: Option<String>,
    /// `server.issuer`; the server's own address when unset (replicas share one).
    pub issuer: Option<String>,
    /// `keys.encryption_key`; a key file in the data directory when unset.
    pub encryption_key: Option<String>,
    /// The data directory; a new one when unset (pass another server's to restart on it).
    pub data: Option<tempfile::TempDir>,
    /// Any other configuration, applied last.
    pub configure: Option<Configure>,
    /// The clock requests go by; the system's when unset.
    pub clock: Option<Arc<portcullis::model::ManualClock>>,
    /// `server.metrics_listen` on a free loopback port (its URL is `TestServer::metrics`).
    pub metrics: bool,
    /// The issuer named `http://localhost:PORT` (a domain, as WebAuthn's relying party id
    /// must be), where `issuer` is unset.
    pub localhost: bool,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let data = options.data.unwrap_or_else(|| tempfile::tempdir().expect("temp dir"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let issuer = match options.issuer {
            Some(issuer) => issuer,
            None if options.localhost => format!("http://localhost:{}", addr.port()),
            None => base.clone(),
        };
        let mut config = Config::default();
        config.server.issuer = issuer.clone();
        config.server.listen = addr;
        config.server.data_dir = data.path().to_path_buf();
        config.server.admin_token = Some(ADMIN_TOKEN.into());
        config.server.profiles = options.profiles;
        config.policies.dir = options.policies.unwrap_or_else(policies_dir);
        config.policies.watch = options.watch;
        config.keys.encryption_key = options.encryption_key;
        if let Some(algorithm) = options.algorithm {
            config.keys.algorithm =
                portcullis::crypto::SigningAlgorithm::parse(&algorithm).expect("ES256, RS256 or EdDSA");
        }
        if let Some(url) = options.database_url {
            config.database.url = url;
        }
        if options.metrics {
            config.server.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        if let Some(configure) = options.configure {
            configure(&mut config);
        }
        let clock: Arc<dyn portcullis::model::Clock> = match options.clock {
            Some(clock) => clock,
            None => Arc::new(portcullis::model::SystemClock),
        };
        let app = Portcullis::open_with_clock(config, options.watch, clock).await.expect("server starts");
        // The metrics listener bound here, so that its port is known before it serves.
        let metrics = portcullis::metrics::bind(&app.config).await.expect("metrics listener");
        let metrics_url = metrics.as_ref().map(|l| format!("http://{}", l.local_addr().expect("metrics address")));
        tokio::spawn(server::serve_until(app.clone(), listener, metrics, std::future::pending()));
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("http client");
        Self { issuer, base, app, http, data, metrics: metrics_url }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The authorization endpoint's URL with `pairs` as its query.
    pub fn authorize_url(&self, pairs: &[(&str, &str)]) -> url::Url {
        let mut url = url::Url::parse(&self.url("/authorize")).expect("the server's URL");
        url.query_pairs_mut().extend_pairs(pairs);
        url
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r =
            self.http.post(self.url(path)).bearer_auth(ADMIN_TOKEN).json(&body).send().await.expect("admin request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Calls the admin API with `method` as the bearer of `token`; returns status, headers
    /// and the JSON body (`Null` when there is none).
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.expect("admin request");
        let (status, headers) = (r.status(), r.headers().clone());
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates a user through the admin API with these global roles; returns its id.
    pub async fn user_with_roles(&self, username: &str, password: &str, roles: &[&str]) -> String {
        let (status, v) = self
            .admin_post(
                "/admin/v1/users",
                json!({"username": username, "password": password, "email": format!("{username}@example.com"),
                       "name": format!("{username} Example"), "company": "Example GmbH", "roles": roles}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "user creation: {v}");
        v["id"].as_str().expect("user id").to_owned()
    }

    /// An access token for the admin API as `username`: signed in through the authorization
    /// code flow of a console client granted `portcullis:admin`, as an operator's UI would.
    pub async fn admin_token_of(&self, username: &str, password: &str) -> String {
        const CONSOLE: &str = "https://console.example.com/callback";
        let (id, secret) = self
            .client(json!({"name": "Console", "redirect_uris": [CONSOLE], "scopes": ["portcullis:admin"],
                           "skip_consent": true}))
            .await;
        let url = format!(
            "{}?response_type=code&client_id={id}&redirect_uri={}&scope=portcullis%3Aadmin",
            self.url("/authorize"),
            url::form_urlencoded::byte_serialize(CONSOLE.as_bytes()).collect::<String>()
        );
        let back = Browser::new().authorize(&url, username, password).await;
        let code = query(&back, "code").unwrap_or_else(|| panic!("no code: {back}"));
        let (status, tokens) = self.redeem((&id, secret.as_deref().expect("secret")), &code, CONSOLE).await;
        assert_eq!(status, StatusCode::OK, "console token: {tokens}");
        tokens["access_token"].as_str().expect("access token").to_owned()
    }

    /// Registers a client through the admin API; returns (client_id, client_secret).
    pub async fn client(&self, body: Value) -> (String, Option<String>) {
        let (status, v) = self.admin_post("/admin/v1/clients", body).await;
        assert_eq!(status, StatusCode::CREATED, "client registration: {v}");
        (v["client_id"].as_str().expect("client_id").to_owned(), v["client_secret"].as_str().map(str::to_owned))
    }

    pub async fn user(&self, username: &str, password: &str) -> String {
        let (status, v) = self
            .admin_post(
                "/admin/v1/users",
                json!({"username": username, "password": password, "email": format!("{username}@example.com"),
                       "name": format!("{username} Example"), "company": "Example GmbH"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "user creation: {v}");
        v["id"].as_str().expect("user id").to_owned()
    }

    /// Verifies a JWT of this server as a relying party does, against its published JWKS
    /// (see [`verify_jwt`]).
    pub async fn verify_jwt(&self, token: &str, audience: Option<&str>) -> (jsonwebtoken::Header, Value) {
        let jwks: Value = self.http.get(self.url("/jwks.json")).send().await.unwrap().json().await.unwrap();
        verify_jwt(&jwks, &self.issuer, token, audience)
    }

    /// Redeems an authorization code at the token endpoint (RFC 6749 §4.1.3).
    pub async fn redeem(&self, client: (&str, &str), code: &str, redirect_uri: &str) -> (StatusCode, Value) {
        let pairs = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri)];
        self.form("/token", &pairs, Some(client)).await
    }

    /// POSTs a form to an endpoint, returns status and JSON body.
    pub async fn form(&self, path: &str, pairs: &[(&str, &str)], basic: Option<(&str, &str)>) -> (StatusCode, Value) {
        let mut req = self.http.post(self.url(path)).form(pairs);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

/// A person at a browser: keeps cookies, follows nothing by itself.
pub struct Browser {
    pub http: reqwest::Client,
}

impl Browser {
    pub fn new() -> Self {
        Self::builder(reqwest::Client::builder())
    }

    /// A browser whose connections come from `address` (any of 127.0.0.0/8 works on loopback).
    pub fn from_address(address: std::net::IpAddr) -> Self {
        Self::builder(reqwest::Client::builder().local_address(address))
    }

    fn builder(builder: reqwest::ClientBuilder) -> Self {
        let http = builder.cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().expect("browser");
        Self { http }
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.expect("GET")
    }

    pub async fn submit(&self, html: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let form = Form::parse(html).expect("the page has a form");
        let mut pairs: Vec<(String, String)> = form.hidden;
        for (k, v) in fields {
            pairs.push(((*k).into(), (*v).into()));
        }
        self.http.post(&form.action).form(&pairs).send().await.expect("POST")
    }

    /// Runs login (and consent, when asked) from an authorization URL to the redirect back.
    pub async fn authorize(&self, url: &str, username: &str, password: &str) -> url::Url {
        let mut response = self.get(url).await;
        for _ in 0..4 {
            if response.status().is_redirection() {
                let location = response.headers()["location"].to_str().expect("location").to_owned();
                return url::Url::parse(&location).expect("redirect URL");
            }
            assert_eq!(response.status(), StatusCode::OK, "expected a page");
            let html = response.text().await.expect("page");
            response = if html.contains("name=\"password\"") {
                self.submit(&html, &[("username", username), ("password", password)]).await
            } else {
                self.submit(&html, &[("decision", "allow")]).await
            };
        }
        panic!("the flow did not redirect back");
    }
}

pub struct Form {
    pub action: String,
    pub hidden: Vec<(String, String)>,
}

impl Form {
    /// A tolerant reader of the first form's action and hidden inputs.
    pub fn parse(html: &str) -> Option<Self> {
        let start = html.find("<form")?;
        let tag_end = html[start..].find('>')? + start;
        let action = attribute(&html[start..tag_end], "action")?;
        let mut hidden = Vec::new();
        let mut rest = &html[tag_end..];
        while let Some(i) = rest.find("<input") {
            let end = rest[i..].find('>')? + i;
            let tag = &rest[i..end];
            if attribute(tag, "type").as_deref() == Some("hidden") {
                hidden.push((attribute(tag, "name")?, attribute(tag, "value").unwrap_or_default()));
            }
            rest = &rest[end..];
        }
        Some(Self { action: unescape(&action), hidden })
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=");
    let mut from = 0;
    while let Some(pos) = tag[from..].find(&needle) {
        let at = from + pos;
        let before = tag[..at].chars().last();
        from = at + needle.len();
        if !before.is_some_and(|c| c.is_whitespace()) {
            continue;
        }
        let rest = &tag[from..];
        let quote = rest.chars().next()?;
        return if quote == '"' || quote == '\'' {
            let end = rest[1..].find(quote)? + 1;
            Some(unescape(&rest[1..end]))
        } else {
            Some(rest.split(|c: char| c.is_whitespace() || c == '>').next()?.to_owned())
        };
    }
    None
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Verifies a JWT without the server's code: the signature with `jsonwebtoken` against
/// `jwks` (the key `kid` names, whose `alg` must be the header's), then `iss`, `exp` and,
/// when given, `aud`.
pub fn verify_jwt(jwks: &Value, issuer: &str, token: &str, audience: Option<&str>) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(token).expect("a JWT header");
    let kid = header.kid.clone().expect("the header names its key");
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("key {kid} is not published: {jwks}"))
        .clone();
    assert_eq!(jwk["alg"], serde_json::to_value(header.alg).unwrap(), "the key's alg is the header's");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).expect("a JWK");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("a usable public key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).expect("the signature verifies");
    (data.header, data.claims)
}

/// OIDC Core §3.1.3.6 `at_hash`, computed here rather than by the server: the left half of
/// the access token's hash under the ID token's `alg` (SHA-512 for EdDSA/Ed25519, else SHA-256).
pub fn at_hash(alg: jsonwebtoken::Algorithm, access_token: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = match alg {
        jsonwebtoken::Algorithm::EdDSA => sha2::Sha512::digest(access_token.as_bytes()).to_vec(),
        _ => sha2::Sha256::digest(access_token.as_bytes()).to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

pub fn query(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// Test-only plugins (`tests/plugins/*`, built into `tests/policies/`), or the rebuilt ones
/// CI points `PORTCULLIS_TEST_FIXTURES` at.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("PORTCULLIS_TEST_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/policies"))
}

/// The example plugins (`examples/plugins/*`, built into `examples/policies/`), or the
/// rebuilt ones CI points `PORTCULLIS_TEST_EXAMPLES` at.
pub fn examples_dir() -> PathBuf {
    std::env::var_os("PORTCULLIS_TEST_EXAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies"))
}

/// A private policies directory holding copies of the built-in plugins.
pub fn policies_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(policies_dir()).expect("policies dir") {
        let path = entry.expect("entry").path();
        if matches!(path.extension().and_then(|e| e.to_str()), Some("wasm" | "toml")) {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    dir
}

/// A new, empty PostgreSQL database, dropped with the guard. PostgreSQL is expected at
/// `PORTCULLIS_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`); tests
/// that need it fail, not skip, without it.
pub async fn fresh_postgres(tag: &str) -> (String, DropDatabase) {
    let admin_url = std::env::var("PORTCULLIS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = sqlx::PgPool::connect(&admin_url).await.expect("PostgreSQL must be reachable for this test");
    let name = format!("portcullis_{tag}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create database");
    let (base, _) = admin_url.rsplit_once('/').expect("a PostgreSQL URL ends in /DATABASE");
    admin.close().await;
    (format!("{base}/{name}"), DropDatabase { admin_url, name })
}

pub struct DropDatabase {
    admin_url: String,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime, which waits here: do the async work on a thread
        // and a connection of its own (a connection made on the test's runtime would wait for it).
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(async move {
                    if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
                        let _ = sqlx::query(&sql).execute(&admin).await;
                        admin.close().await;
                    }
                });
            }
        })
        .join();
    }
}
