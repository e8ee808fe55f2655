//! What a plugin may import beyond the contract: WASI granting nothing, outbound HTTP to the
//! origins its manifest lists, its key-value cache; and the refusal of a plugin that imports
//! one its manifest does not grant.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::support::{Options, TestServer, fixtures_dir, policies_copy};
use super::{install_fixture, jwt_claims};

/// The claims of the access token in a token response.
fn claims_of(token: &Value) -> Value {
    jwt_claims(token.as_str().expect("access token"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasi_policy_answers_and_gets_no_environment_no_files_and_no_sockets() {
    let policies = policies_copy();
    install_fixture(policies.path(), "scope-wasi");
    let server = TestServer::start_with(Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    assert!(server.app.host.loaded().contains_key("scope-wasi"), "a component importing WASI loads");
    let (id, secret) = server
        .client(json!({"name": "wasi", "grant_types": ["client_credentials"], "scopes": ["a"], "scope_policy": "scope-wasi"}))
        .await;
    let secret = secret.unwrap();
    // A port that answers: the plugin must not reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let scope = format!("a connect:{port}");
    let (status, body) =
        server.form("/token", &[("grant_type", "client_credentials"), ("scope", &scope)], Some((&id, &secret))).await;
    assert_eq!((status, body["scope"].as_str()), (StatusCode::OK, Some("a")), "{body}");
    let claims = claims_of(&body["access_token"]);
    assert_eq!(claims["env"], 0, "no environment variable of the host: {claims}");
    assert_eq!(claims["args"], 0, "{claims}");
    assert_eq!(claims["dirs"], 0, "no directory to read files from: {claims}");
    assert_eq!(claims["random"], true, "randomness is lent: {claims}");
    assert_eq!(claims["clock"], true, "the wall clock is lent: {claims}");
    let socket = claims["socket"].as_str().expect("the socket's outcome");
    assert!(socket.contains("access-denied"), "a socket is denied: {socket}");
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "no connection reached the port"
    );
}

/// A small HR service on loopback: `GET /roles/{user}` answers the user's roles, one a line;
/// `sleepy` is never answered, `bulky` gets a body past the plugins' cap. Counts requests.
async fn hr_service() -> (u16, Arc<AtomicUsize>) {
    use axum::extract::{Path, State};
    let asked = Arc::new(AtomicUsize::new(0));
    async fn roles(State(asked): State<Arc<AtomicUsize>>, Path(user): Path<String>) -> String {
        asked.fetch_add(1, Ordering::SeqCst);
        match user.as_str() {
            "alice" => "reader\n".into(),
            "erin" => "editor\nreader\n".into(),
            "sleepy" => std::future::pending().await,
            "bulky" => "reader\n".repeat(300_000),
            _ => String::new(),
        }
    }
    let app = axum::Router::new().route("/roles/{user}", axum::routing::get(roles)).with_state(asked.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, asked)
}

/// scope-hr's manifest granting HTTP to `origin` (and the key-value cache).
fn hr_manifest(origin: &str) -> String {
    let manifest = std::fs::read_to_string(fixtures_dir().join("scope-hr.toml")).expect("scope-hr.toml");
    manifest.replace("http = [\"http://127.0.0.1:9\"]", &format!("http = [\"{origin}\"]"))
}

async fn hr_server(origin: &str) -> (TestServer, tempfile::TempDir) {
    let policies = policies_copy();
    std::fs::write(policies.path().join("scope-hr.toml"), hr_manifest(origin)).unwrap();
    std::fs::copy(fixtures_dir().join("scope-hr.wasm"), policies.path().join("scope-hr.wasm")).unwrap();
    let server = TestServer::start_with(Options {
        policies: Some(policies.path().into()),
        configure: Some(Box::new(|c| c.outbound.allow_loopback_http = true)),
        ..Default::default()
    })
    .await;
    assert!(server.app.host.loaded().contains_key("scope-hr"), "scope-hr loads with its grants");
    (server, policies)
}

/// A password grant for `user` (password `pw-<user>-0123`) asking `scope`.
async fn password_grant(server: &TestServer, client: (&str, &str), user: &str, scope: &str) -> (StatusCode, Value) {
    let password = format!("pw-{user}-0123");
    server
        .form(
            "/token",
            &[("grant_type", "password"), ("username", user), ("password", &password), ("scope", scope)],
            Some(client),
        )
        .await
}

async fn hr_client(server: &TestServer, users: &[&str]) -> (String, String) {
    for user in users {
        server.user(user, &format!("pw-{user}-0123")).await;
    }
    let (id, secret) = server
        .client(json!({"name": "hr", "grant_types": ["password"], "scope_policy": "scope-hr",
                       "scopes": ["docs:read", "docs:write", "kv-set", "kv-get", "kv-delete"]}))
        .await;
    (id, secret.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_granted_http_asks_its_hr_service_and_nothing_else() {
    let (hr, asked) = hr_service().await;
    let (elsewhere, asked_elsewhere) = hr_service().await;
    let origin = format!("http://127.0.0.1:{hr}");
    let (server, _policies) = hr_server(&origin).await;
    let (id, secret) = hr_client(&server, &["alice", "erin", "sleepy", "bulky"]).await;
    let client = (id.as_str(), secret.as_str());

    let scope = format!("docs:read docs:write hr={origin}");
    let (status, body) = password_grant(&server, client, "alice", &scope).await;
    assert_eq!((status, body["scope"].as_str()), (StatusCode::OK, Some("docs:read")), "{body}");
    assert_eq!(claims_of(&body["access_token"])["hr_roles"], json!(["reader"]));
    let (status, body) = password_grant(&server, client, "erin", &scope).await;
    assert_eq!((status, body["scope"].as_str()), (StatusCode::OK, Some("docs:read docs:write")), "{body}");
    assert_eq!(asked.load(Ordering::SeqCst), 2, "one request to the HR service per grant");

    // An origin the manifest does not list: the host refuses the request inside the plugin.
    let unlisted = format!("docs:read hr=http://127.0.0.1:{elsewhere}");
    let (status, body) = password_grant(&server, client, "alice", &unlisted).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let why = body["error_description"].as_str().unwrap_or_default();
    assert!(why.contains("HR service") && why.contains("HttpRequestDenied"), "the policy denied: {body}");
    assert_eq!(asked_elsewhere.load(Ordering::SeqCst), 0, "nothing reached the unlisted origin");

    // A service that never answers is cut off at the deadline: the grant is refused.
    let (status, body) = password_grant(&server, client, "sleepy", &scope).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A body past the cap is refused.
    let (status, body) = password_grant(&server, client, "bulky", &scope).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let why = body["error_description"].as_str().unwrap_or_default();
    assert!(why.contains("HttpResponseBodySize"), "the body was too long: {body}");

    // The server keeps serving.
    let (status, body) = password_grant(&server, client, "alice", &scope).await;
    assert_eq!((status, body["scope"].as_str()), (StatusCode::OK, Some("docs:read")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_granted_http_is_refused_loopback_http_unless_the_server_allows_it() {
    let (hr, asked) = hr_service().await;
    let origin = format!("http://127.0.0.1:{hr}");
    let policies = policies_copy();
    std::fs::write(policies.path().join("scope-hr.toml"), hr_manifest(&origin)).unwrap();
    std::fs::copy(fixtures_dir().join("scope-hr.wasm"), policies.path().join("scope-hr.wasm")).unwrap();
    let server = TestServer::start_with(Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    let (id, secret) = hr_client(&server, &["alice"]).await;
    let (status, body) = password_grant(&server, (&id, &secret), "alice", &format!("docs:read hr={origin}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error_description"].as_str().unwrap_or_default().contains("HttpRequestDenied"), "{body}");
    assert_eq!(asked.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_keeps_a_note_in_its_key_value_cache_across_requests() {
    let (server, _policies) = hr_server("http://127.0.0.1:9").await;
    let (id, secret) = hr_client(&server, &["alice"]).await;
    let client = (id.as_str(), secret.as_str());
    let (status, body) = password_grant(&server, client, "alice", "kv-get").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(claims_of(&body["access_token"])["note"], Value::Null, "nothing noted yet");
    let (status, body) = password_grant(&server, client, "alice", "kv-set").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = password_grant(&server, client, "alice", "kv-get").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(claims_of(&body["access_token"])["note"], "noted for alice", "read back in another request");
    let (status, body) = password_grant(&server, client, "alice", "kv-delete").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = password_grant(&server, client, "alice", "kv-get").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(claims_of(&body["access_token"])["note"], Value::Null, "deleted");
}

#[tokio::test]
async fn a_plugin_importing_a_capability_its_manifest_does_not_grant_is_refused_naming_the_grant() {
    let server = TestServer::start().await;
    let wasm = std::fs::read(fixtures_dir().join("scope-hr.wasm")).expect("scope-hr.wasm");
    let granted = hr_manifest("https://hr.example.com");
    let host = &server.app.host;
    assert!(host.prepare(&granted, "scope-hr", &wasm).is_ok(), "with both grants it loads");
    let without_http = granted.replace("http = [\"https://hr.example.com\"]", "");
    let refused = host.prepare(&without_http, "scope-hr", &wasm).err().expect("refused without `http`");
    assert!(refused.contains("wasi:http/outgoing-handler") && refused.contains("http = ["), "{refused}");
    let without_kv = granted.replace("kv = true", "");
    let refused = host.prepare(&without_kv, "scope-hr", &wasm).err().expect("refused without `kv`");
    assert!(refused.contains("portcullis:plugin/kv") && refused.contains("kv = true"), "{refused}");
    for (origin, says) in [
        ("http://hr.example.com", "not an https origin"),
        ("https://hr.example.com/roles", "not an origin"),
        ("hr.example.com", "not a URL"),
    ] {
        let refused = host.prepare(&hr_manifest(origin), "scope-hr", &wasm).err().expect("a bad origin is refused");
        assert!(refused.contains(says), "{origin}: {refused}");
    }
    // A plugin importing WASI but nothing granted needs no grant.
    let wasi = std::fs::read(fixtures_dir().join("scope-wasi.wasm")).expect("scope-wasi.wasm");
    let manifest = std::fs::read_to_string(fixtures_dir().join("scope-wasi.toml")).expect("scope-wasi.toml");
    assert!(host.prepare(&manifest, "scope-wasi", &wasi).is_ok());
}
