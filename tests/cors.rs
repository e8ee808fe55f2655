//! Browser applications on other origins (the Fetch Standard's CORS protocol): discovery and
//! the JWK Set are readable from anywhere; the endpoints an application calls as its client
//! answer preflights for origins some client registered, and let an origin read an answer
//! only when the request's client registered it; the admin API and the pages never do. A
//! single-page application with oidc-client-ts signs in, renews and signs out in Chromium
//! with its security checks on (skipped, except under `PORTCULLIS_REQUIRE_BROWSER`, where
//! Chromium or the library is missing).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::Locator;
use portcullis::oauth::profiles::{Endpoint, Profile};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::chromium::{self, Chromium};
use support::{ADMIN_TOKEN, Browser, TestServer, query};

const SPA: &str = "https://spa.example.com";
const SPA_CALLBACK: &str = "https://spa.example.com/callback";
const OTHER: &str = "https://other.example.com";
const FOREIGN: &str = "https://evil.example.net";

/// The CORS headers of an answer (Fetch §3.2.3), by lower-case name.
fn cors_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("access-control-"))
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or("?").to_owned()))
        .collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The comma-separated words of a header, lower-cased.
fn words(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(|w| w.trim().to_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// What a browser sends before a cross-origin request that is not simple (Fetch §4.8).
async fn preflight(server: &TestServer, path: &str, origin: &str, method: &str) -> (StatusCode, HeaderMap) {
    let r = server
        .http
        .request(Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "authorization,dpop")
        .send()
        .await
        .unwrap();
    (r.status(), r.headers().clone())
}

/// A preflight allowed for `origin`, with the methods, the headers a client sends, a max-age,
/// and never credentials.
fn assert_preflight_allowed(path: &str, (status, headers): &(StatusCode, HeaderMap), origin: &str, method: &str) {
    assert_eq!(*status, StatusCode::NO_CONTENT, "{path}");
    assert_eq!(header(headers, "access-control-allow-origin"), Some(origin), "{path}: {headers:?}");
    assert!(words(headers, "vary").contains(&"origin".into()), "{path}: {headers:?}");
    assert!(words(headers, "access-control-allow-methods").contains(&method.to_ascii_lowercase()), "{path}");
    let allowed = words(headers, "access-control-allow-headers");
    for h in ["authorization", "content-type", "dpop"] {
        assert!(allowed.contains(&h.into()), "{path}: {h} in {allowed:?}");
    }
    assert!(header(headers, "access-control-max-age").is_some_and(|s| s.parse::<u32>().is_ok()), "{path}");
    assert!(headers.get("access-control-allow-credentials").is_none(), "{path}: never credentials");
}

/// An actual cross-origin answer `origin` may read, exposing what a client reads.
fn assert_readable_by(what: &str, headers: &HeaderMap, origin: &str) {
    assert_eq!(header(headers, "access-control-allow-origin"), Some(origin), "{what}: {headers:?}");
    assert!(words(headers, "vary").contains(&"origin".into()), "{what}: {headers:?}");
    let exposed = words(headers, "access-control-expose-headers");
    assert!(exposed.contains(&"dpop-nonce".into()) && exposed.contains(&"www-authenticate".into()), "{what}");
    assert!(headers.get("access-control-allow-credentials").is_none(), "{what}: never credentials");
}

fn assert_no_cors(what: &str, headers: &HeaderMap) {
    assert_eq!(cors_headers(headers), vec![], "{what}");
}

/// POSTs a form from a page at `origin`.
async fn form_from(
    server: &TestServer,
    origin: &str,
    path: &str,
    pairs: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = server.http.post(server.url(path)).header("origin", origin).form(pairs);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

async fn userinfo_from(server: &TestServer, origin: &str, token: &str) -> (StatusCode, HeaderMap) {
    let r = server.http.get(server.url("/userinfo")).header("origin", origin).bearer_auth(token).send().await.unwrap();
    (r.status(), r.headers().clone())
}

/// An authorization code for a public client, with PKCE S256; returns it with the verifier.
async fn code_with_pkce(server: &TestServer, client_id: &str) -> (String, &'static str) {
    let verifier = "a-code-verifier-of-a-single-page-application-0123456789";
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", SPA_CALLBACK),
        ("scope", "openid email offline_access"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let back = Browser::new().authorize(url.as_str(), "ada", "ada's password").await;
    (query(&back, "code").unwrap_or_else(|| panic!("no code: {back}")), verifier)
}

#[tokio::test]
async fn preflights_are_answered_for_origins_some_client_registered() {
    let server = TestServer::start().await;
    let (spa, _) = server.client(json!({"name": "SPA", "public": true, "redirect_uris": [SPA_CALLBACK]})).await;
    let endpoints = [
        ("/token", "POST"),
        ("/userinfo", "GET"),
        ("/revoke", "POST"),
        ("/par", "POST"),
        ("/device_authorization", "POST"),
    ];
    // The origin of a redirect URI, by default.
    for (path, method) in endpoints {
        assert_preflight_allowed(path, &preflight(&server, path, SPA, method).await, SPA, method);
    }
    // An origin registered explicitly.
    let other = "https://app.other.example.com";
    server
        .client(json!({"name": "Other", "public": true, "redirect_uris": ["https://other.example.com/cb"],
                       "allowed_origins": [other]}))
        .await;
    for (path, method) in endpoints {
        assert_preflight_allowed(path, &preflight(&server, path, other, method).await, other, method);
    }

    // Any other origin gets no CORS header at all, and the browser sends nothing.
    let refused = [
        FOREIGN.to_owned(),
        // Registered explicitly elsewhere, so not the origin of the redirect URI.
        OTHER.to_owned(),
        "null".to_owned(),
        "http://spa.example.com".to_owned(),
        format!("https://{}.example.com", "a".repeat(400)),
    ];
    for origin in &refused {
        let (status, headers) = preflight(&server, "/token", origin, "POST").await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{origin}");
        assert_no_cors(origin, &headers);
    }
    // An OPTIONS that is no preflight is told the methods.
    let r = server.http.request(Method::OPTIONS, server.url("/token")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(r.headers(), "allow"), Some("POST"));
    assert_no_cors("plain OPTIONS", r.headers());

    // Introspection is for resource servers, never browsers.
    let (status, headers) = preflight(&server, "/introspect", SPA, "POST").await;
    assert!(status.is_client_error(), "{status}");
    assert_no_cors("introspection", &headers);

    // Deleting the client takes its origin with it at once.
    let (status, _, _) = server.admin(Method::DELETE, &format!("/admin/v1/clients/{spa}"), ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_no_cors("deleted client", &preflight(&server, "/token", SPA, "POST").await.1);
}

#[tokio::test]
async fn only_the_origins_of_the_requests_client_read_its_answers() {
    let server = TestServer::start().await;
    server.user("ada", "ada's password").await;
    let (spa, _) = server
        .client(json!({"name": "SPA", "public": true, "redirect_uris": [SPA_CALLBACK],
                       "grant_types": ["authorization_code", "refresh_token"]}))
        .await;
    // Another client's origin: registered, so its preflights pass, but not the SPA's.
    server.client(json!({"name": "Other", "public": true, "redirect_uris": ["https://other.example.com/cb"]})).await;

    // The token request: the SPA's origin reads it, another client's does not.
    let (code, verifier) = code_with_pkce(&server, &spa).await;
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", spa.as_str()),
        ("redirect_uri", SPA_CALLBACK),
        ("code_verifier", verifier),
    ];
    let (status, headers, tokens) = form_from(&server, SPA, "/token", &redeem, None).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_readable_by("token", &headers, SPA);
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    // An error of a known client is readable too: the SPA learns its code is spent.
    let (status, headers, body) = form_from(&server, SPA, "/token", &redeem, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    assert_readable_by("invalid_grant", &headers, SPA);
    let (code, verifier) = code_with_pkce(&server, &spa).await;
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", spa.as_str()),
        ("redirect_uri", SPA_CALLBACK),
        ("code_verifier", verifier),
    ];
    let (status, headers, tokens) = form_from(&server, OTHER, "/token", &redeem, None).await;
    assert_eq!(status, StatusCode::OK, "the server answers, the browser keeps it from the page: {tokens}");
    assert_no_cors("another client's origin", &headers);
    let (access, refresh) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    // A request that names no client it could authenticate is nobody's.
    let unknown = [("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_id", "nobody")];
    let (status, headers, _) = form_from(&server, SPA, "/token", &unknown, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_no_cors("unknown client", &headers);

    // Refreshing, as a browser application renews its tokens.
    let pairs = [("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", spa.as_str())];
    let (status, headers, renewed) = form_from(&server, SPA, "/token", &pairs, None).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_readable_by("refresh", &headers, SPA);

    // Userinfo: the access token's client decides, for answers and errors alike.
    let (status, headers) = userinfo_from(&server, SPA, access).await;
    assert_eq!(status, StatusCode::OK);
    assert_readable_by("userinfo", &headers, SPA);
    assert_no_cors("userinfo from another origin", &userinfo_from(&server, OTHER, access).await.1);
    let (status, headers) = userinfo_from(&server, SPA, "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_no_cors("userinfo without a valid token", &headers);

    // Revocation.
    let renewed_access = renewed["access_token"].as_str().unwrap();
    let pairs = [("token", renewed_access), ("client_id", spa.as_str())];
    let (status, headers, _) = form_from(&server, OTHER, "/revoke", &pairs, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_no_cors("revocation from another origin", &headers);
    let (status, headers, _) = form_from(&server, SPA, "/revoke", &pairs, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_readable_by("revocation", &headers, SPA);
}

#[tokio::test]
async fn pushed_and_device_authorization_answer_their_clients_origins() {
    let server = TestServer::start().await;
    let (spa, _) = server.client(json!({"name": "SPA", "public": true, "redirect_uris": [SPA_CALLBACK]})).await;
    let tv_origin = "https://tv.example.com";
    let device_grant = "urn:ietf:params:oauth:grant-type:device_code";
    let (tv, _) = server
        .client(json!({"name": "TV", "public": true, "grant_types": [device_grant], "scopes": ["openid"],
                       "allowed_origins": [tv_origin]}))
        .await;

    let push = [
        ("client_id", spa.as_str()),
        ("response_type", "code"),
        ("redirect_uri", SPA_CALLBACK),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        ("code_challenge_method", "S256"),
    ];
    let (status, headers, body) = form_from(&server, SPA, "/par", &push, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_readable_by("par", &headers, SPA);
    let (status, headers, _) = form_from(&server, tv_origin, "/par", &push, None).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_no_cors("par from another client's origin", &headers);
    // Its errors, once the client is known, are the client's to read.
    let bad =
        [("client_id", spa.as_str()), ("response_type", "code"), ("redirect_uri", "https://elsewhere.example.com/")];
    let (status, headers, body) = form_from(&server, SPA, "/par", &bad, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_readable_by("par error", &headers, SPA);

    let ask = [("client_id", tv.as_str()), ("scope", "openid")];
    let (status, headers, body) = form_from(&server, tv_origin, "/device_authorization", &ask, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_readable_by("device authorization", &headers, tv_origin);
    let (status, headers, _) = form_from(&server, SPA, "/device_authorization", &ask, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_no_cors("device authorization from another client's origin", &headers);
}

/// A client stored before client records carried `origin` keys gets them when the server
/// next starts, once per database.
#[tokio::test]
async fn clients_stored_before_origin_keys_are_keyed_at_start() {
    use portcullis::plugin::store::{Record, RecordRef, Write};
    let first = TestServer::start().await;
    let (id, _) = first.client(json!({"name": "spa", "public": true, "redirect_uris": [SPA_CALLBACK]})).await;
    // The client as an earlier version wrote it: the same body, no origin key; the migration undone.
    let stored = first.app.host.store_get(&[RecordRef { kind: "client", id: id.clone() }]).await.unwrap();
    let body = stored.into_iter().next().flatten().expect("the client").body;
    let old = Record { kind: "client", id: id.clone(), body, keys: Vec::new(), expires_at: None };
    let undo = Write::Delete(RecordRef { kind: "migration", id: "client-origin-keys".into() });
    first.app.host.store_apply(vec![Write::Put(old), undo]).await.unwrap();
    let (_, headers) = preflight(&first, "/token", SPA, "POST").await;
    assert!(cors_headers(&headers).is_empty(), "not found by its origin before");

    let TestServer { data, .. } = first;
    let server = TestServer::start_with(support::Options { data: Some(data), ..Default::default() }).await;
    let (status, headers) = preflight(&server, "/token", SPA, "POST").await;
    assert_eq!((status, header(&headers, "access-control-allow-origin")), (StatusCode::NO_CONTENT, Some(SPA)));
}

#[tokio::test]
async fn discovery_and_the_jwks_are_readable_from_any_origin() {
    let server = TestServer::start().await;
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks.json"] {
        let r = server.http.get(server.url(path)).header("origin", FOREIGN).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(r.headers(), "access-control-allow-origin"), Some("*"), "{path}");
        assert!(r.headers().get("access-control-allow-credentials").is_none(), "{path}");
        let (status, headers) = preflight(&server, path, FOREIGN, "GET").await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"), "{path}");
        assert!(words(&headers, "access-control-allow-methods").contains(&"get".into()), "{path}");
    }
}

#[tokio::test]
async fn every_layout_answers_cross_origin_requests_alike() {
    let server = TestServer::start_with(support::Options {
        profiles: {
            use portcullis::config::CompatibilityProfile::*;
            vec![Elma365, Datev, Deployteq]
        },
        ..Default::default()
    })
    .await;
    let (id, secret) = server
        .client(json!({"name": "Daemon with a console", "grant_types": ["client_credentials"], "scopes": ["x"],
                       "allowed_origins": [SPA]}))
        .await;
    let secret = secret.unwrap();
    let profiles = [Profile::Native, Profile::Elma365, Profile::Datev, Profile::Deployteq];
    for profile in profiles {
        let token = profile.path(Endpoint::Token);
        let (status, headers, body) =
            form_from(&server, SPA, token, &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
        assert_eq!(status, StatusCode::OK, "{token}: {body}");
        assert_readable_by(token, &headers, SPA);
        let (_, headers, _) =
            form_from(&server, FOREIGN, token, &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
        assert_no_cors(token, &headers);
        // Every endpoint at every path: preflights where browser applications call, none elsewhere.
        for endpoint in Endpoint::ALL {
            let path = profile.path(endpoint);
            let answer = preflight(&server, path, SPA, "POST").await;
            match endpoint {
                Endpoint::Token
                | Endpoint::Userinfo
                | Endpoint::Revocation
                | Endpoint::PushedAuthorization
                | Endpoint::DeviceAuthorization => assert_preflight_allowed(path, &answer, SPA, "POST"),
                Endpoint::Authorization | Endpoint::Introspection | Endpoint::EndSession | Endpoint::Registration => {
                    assert_no_cors(path, &answer.1)
                }
            }
            assert_no_cors(path, &preflight(&server, path, FOREIGN, "POST").await.1);
        }
    }
}

#[tokio::test]
async fn the_admin_api_and_the_pages_never_answer_other_origins() {
    let server = TestServer::start().await;
    let (spa, _) = server.client(json!({"name": "SPA", "public": true, "redirect_uris": [SPA_CALLBACK]})).await;
    server.user("ada", "ada's password").await;
    let from_spa = |method: Method, path: &str| {
        server.http.request(method, server.url(path)).header("origin", SPA).bearer_auth(ADMIN_TOKEN)
    };

    for path in ["/admin/v1/clients", "/admin/v1/users", "/admin/v1/openapi.json", &format!("/admin/v1/clients/{spa}")]
    {
        let r = from_spa(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_no_cors(path, r.headers());
        let (_, headers) = preflight(&server, path, SPA, "POST").await;
        assert_no_cors(path, &headers);
    }
    let r = from_spa(Method::POST, "/admin/v1/clients").json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_no_cors("admin POST", r.headers());

    // The login page, its form, the consent page; the connections, device and logout pages.
    let browser = Browser::new();
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", &spa),
        ("redirect_uri", SPA_CALLBACK),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        ("code_challenge_method", "S256"),
        ("scope", "openid"),
    ]);
    let login = browser.http.get(url.as_str()).header("origin", SPA).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert_no_cors("login page", login.headers());
    let html = login.text().await.unwrap();
    let form = support::Form::parse(&html).unwrap();
    let mut pairs = form.hidden.clone();
    pairs.extend([("username".to_owned(), "ada".to_owned()), ("password".to_owned(), "ada's password".to_owned())]);
    let consent = browser.http.post(&form.action).header("origin", SPA).form(&pairs).send().await.unwrap();
    assert_eq!(consent.status(), StatusCode::OK);
    assert_no_cors("consent page", consent.headers());
    for path in ["/account/connections", "/device", "/logout", "/health", "/no-such-endpoint"] {
        let r = browser.http.get(server.url(path)).header("origin", SPA).header("accept", "text/html").send().await;
        let r = r.unwrap();
        assert_no_cors(path, r.headers());
        assert_no_cors(path, &preflight(&server, path, SPA, "POST").await.1);
    }
}

#[tokio::test]
async fn registration_checks_origins_and_defaults_to_the_redirect_uris() {
    let server = TestServer::start().await;
    let too_many: Vec<String> = (0..17).map(|i| format!("https://app{i}.example.com")).collect();
    let bad: Vec<Value> = vec![
        json!(["https://spa.example.com/app"]),
        json!(["https://spa.example.com/"]),
        json!(["https://spa.example.com?x=1"]),
        json!(["https://spa.example.com#top"]),
        json!(["https://user@spa.example.com"]),
        json!(["http://spa.example.com"]),
        json!(["ftp://spa.example.com"]),
        json!(["*"]),
        json!(["null"]),
        json!(["spa.example.com"]),
        json!([format!("https://{}.example.com", "a".repeat(400))]),
        json!(too_many),
    ];
    for origins in bad {
        let (status, body) =
            server.admin_post("/admin/v1/clients", json!({"name": "SPA", "allowed_origins": origins})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{origins}: {body}");
        assert_eq!(body["field"], "allowed_origins", "{origins}: {body}");
    }

    // Origins are kept as a browser sends them; the default is the redirect URIs' http(s) origins.
    let (explicit, _) = server
        .client(json!({"name": "Explicit", "redirect_uris": [SPA_CALLBACK],
                       "allowed_origins": ["https://App.Example.com:443", "http://localhost:5173", "http://[::1]:8080"]}))
        .await;
    let (default, _) = server
        .client(json!({"name": "Default", "redirect_uris": [SPA_CALLBACK, "https://spa.example.com/silent",
                       "http://127.0.0.1:8080/cb", "com.example.app:/callback"]}))
        .await;
    let (none, _) = server
        .client(json!({"name": "None", "redirect_uris": ["https://server-side.example.com/cb"], "allowed_origins": []}))
        .await;
    let (status, _, listed) = server.admin(Method::GET, "/admin/v1/clients", ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK);
    let origins_of = |id: &str| listed.as_array().unwrap().iter().find(|c| c["client_id"] == id).unwrap().clone();
    assert_eq!(
        origins_of(&explicit)["allowed_origins"],
        json!(["https://app.example.com", "http://localhost:5173", "http://[::1]:8080"])
    );
    assert_eq!(origins_of(&default)["allowed_origins"], json!([SPA, "http://127.0.0.1:8080"]));
    assert_eq!(origins_of(&none)["allowed_origins"], json!([]));

    // What is listed is what preflights answer.
    let app = "https://app.example.com";
    assert_preflight_allowed("explicit", &preflight(&server, "/token", app, "POST").await, app, "POST");
    let local = "http://127.0.0.1:8080";
    assert_preflight_allowed("default", &preflight(&server, "/token", local, "POST").await, local, "POST");
    let server_side = "https://server-side.example.com";
    assert_no_cors("no origins", &preflight(&server, "/token", server_side, "POST").await.1);
}

/// Where oidc-client-ts's browser bundle is: under `PORTCULLIS_TEST_SPA_MODULES`, else the
/// `node_modules` that `.ci/run` installs beside the application (`npm ci --prefix tests/spa`).
fn oidc_client_bundle() -> Option<PathBuf> {
    let modules = std::env::var_os("PORTCULLIS_TEST_SPA_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| spa_dir().join("node_modules"));
    let bundle = modules.join("oidc-client-ts/dist/browser/oidc-client-ts.min.js");
    if bundle.is_file() {
        return Some(bundle);
    }
    chromium::missing(&format!("{} is missing: npm ci --prefix tests/spa", bundle.display()));
    None
}

fn spa_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/spa")
}

/// The single-page application (`tests/spa`), served from a loopback origin of its own.
struct Spa {
    origin: String,
    listener: tokio::net::TcpListener,
}

impl Spa {
    async fn bind() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self { origin: format!("http://{}", listener.local_addr().unwrap()), listener }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// Serves the page (at `/` and the paths the server sends the browser back to), its
    /// script, the library, and where to find the server and as which client.
    fn serve(self, bundle: &Path, authority: &str, client_id: &str) {
        use axum::response::Html;
        use axum::routing::get;
        let page = std::fs::read_to_string(spa_dir().join("index.html")).unwrap();
        let script = |text: String| move || async move { ([("content-type", "text/javascript")], text) };
        let config = json!({"authority": authority, "client_id": client_id});
        let app = axum::Router::new()
            .route("/", get(Html(page.clone())))
            .route("/callback", get(Html(page.clone())))
            .route("/signed-out", get(Html(page)))
            .route("/app.js", get(script(std::fs::read_to_string(spa_dir().join("app.js")).unwrap())))
            .route("/oidc-client-ts.min.js", get(script(std::fs::read_to_string(bundle).unwrap())))
            .route("/config.json", get(axum::Json(config)));
        tokio::spawn(async move { axum::serve(self.listener, app).await });
    }
}

/// Waits until the application says `status` (`#status`), and fails with what it says
/// otherwise.
async fn wait_for_status(browser: &Chromium, status: &str) {
    for _ in 0..150 {
        if let Ok(element) = browser.client.find(Locator::Css("#status")).await
            && element.text().await.is_ok_and(|t| t == status)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = browser.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
    let said = browser.client.source().await.unwrap_or_default();
    panic!("the application never said `{status}` at {url}: {said}");
}

/// Waits for the server's page that shows `css`, and fails with what the application says
/// if it stopped on its way there.
async fn wait_for_server_page(browser: &Chromium, css: &str) {
    for _ in 0..150 {
        if browser.client.find(Locator::Css(css)).await.is_ok() {
            return;
        }
        if let Ok(element) = browser.client.find(Locator::Css("#error")).await
            && let Ok(error) = element.text().await
            && !error.is_empty()
        {
            panic!("the application failed on its way to {css}: {error}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never appeared at {:?}", browser.client.current_url().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_page_application_signs_in_renews_and_signs_out_in_chromium() {
    let Some(bundle) = oidc_client_bundle() else { return };
    let Some(browser) = Chromium::start("en").await else { return };
    let server = TestServer::start().await;
    let user = server.user("ada", "ada's password").await;
    // The application's origin, and another one its client did not register.
    let (app, foreign) = (Spa::bind().await, Spa::bind().await);
    let (client_id, _) = server
        .client(json!({"name": "Single-page application", "public": true,
                       "redirect_uris": [app.url("/callback"), foreign.url("/callback")],
                       "post_logout_redirect_uris": [app.url("/signed-out"), foreign.url("/signed-out")],
                       "allowed_origins": [app.origin]}))
        .await;
    let (app_url, foreign_url) = (app.url("/"), foreign.url("/"));
    let (signed_out, foreign_callback) = (app.url("/signed-out"), foreign.url("/callback"));
    app.serve(&bundle, &server.issuer, &client_id);
    foreign.serve(&bundle, &server.issuer, &client_id);

    // Sign in: discovery, then the server's login and consent pages, then the code (with
    // PKCE) redeemed and userinfo read by the application, across origins.
    browser.client.goto(&app_url).await.unwrap();
    wait_for_status(&browser, "signed out").await;
    browser.click("#sign-in").await;
    wait_for_server_page(&browser, "input[name=username]").await;
    browser.fill("input[name=username]", "ada").await;
    browser.fill("input[name=password]", "ada's password").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("button[name=decision][value=allow]").await;
    browser.click("button[name=decision][value=allow]").await;
    wait_for_status(&browser, "signed in").await;
    let profile: Value = serde_json::from_str(&browser.text("#profile").await).unwrap();
    assert_eq!(profile["sub"], user.as_str(), "{profile}");
    assert_eq!(profile["email"], "ada@example.com", "{profile}");
    let first = browser.text("#access-token").await;
    assert!(!first.is_empty());

    // Renew with the refresh token: a new access token.
    browser.click("#renew").await;
    let mut renewed = first.clone();
    for _ in 0..150 {
        renewed = browser.text("#access-token").await;
        if renewed != first && !renewed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(renewed, first, "renewing gave a new access token: {}", browser.text("#error").await);
    assert_eq!(browser.text("#status").await, "signed in");

    // The same application from an origin its client did not register: discovery is public
    // and the person is still signed in, so it gets its code, but the browser keeps the token
    // endpoint's answer from it.
    browser.client.goto(&foreign_url).await.unwrap();
    wait_for_status(&browser, "signed out").await;
    browser.click("#sign-in").await;
    wait_for_status(&browser, "failed").await;
    let error = browser.text("#error").await;
    assert!(error.contains("Failed to fetch"), "{error}");
    assert!(browser.client.current_url().await.unwrap().as_str().starts_with(&foreign_callback));

    // Sign out at the end session endpoint, back to the application, whose next sign-in asks
    // for the password again.
    browser.client.goto(&app_url).await.unwrap();
    wait_for_status(&browser, "signed in").await;
    browser.click("#sign-out").await;
    wait_for_status(&browser, "signed out").await;
    assert!(browser.client.current_url().await.unwrap().as_str().starts_with(&signed_out));
    browser.click("#sign-in").await;
    wait_for_server_page(&browser, "input[name=password]").await;
    browser.close().await;
}
