//! Backup and restore: `portcullis export` and `portcullis import` run as the operator runs
//! them, against a server's data; and the encryption key a start is made with.

use std::path::Path;
use std::process::{Command, Output};

use portcullis::crypto::Sealer;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{self, Browser, Options, TestServer, query};

const REDIRECT: &str = "https://rp.example.com/cb";

/// The `portcullis` binary on a data directory, with `keys.encryption_key` when given and the
/// database at `database` when given (else SQLite in the data directory).
fn portcullis(data: &Path, key: Option<&str>, database: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORTCULLIS_SERVER__DATA_DIR", data)
        .env("PORTCULLIS_POLICIES__DIR", support::policies_dir())
        .env("RUST_LOG", "warn")
        .current_dir(data);
    if let Some(key) = key {
        cmd.env("PORTCULLIS_KEYS__ENCRYPTION_KEY", key);
    }
    if let Some(url) = database {
        cmd.env("PORTCULLIS_DATABASE__URL", url);
    }
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("portcullis runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fingerprint(key: &str) -> String {
    Sealer::from_base64(key).expect("a key").fingerprint().to_owned()
}

async fn server(key: &str, data: Option<tempfile::TempDir>, database_url: Option<String>) -> TestServer {
    TestServer::start_with(Options { encryption_key: Some(key.to_owned()), data, database_url, ..Options::default() })
        .await
}

/// What a server holds before it is exported, and what the restored server is checked with.
struct Before {
    client: (String, String),
    user: String,
    access_token: String,
    refresh_token: String,
    code: String,
    kids: Vec<String>,
    /// The issuer of the tokens: the old server's address.
    issuer: String,
}

/// A user, a client, a grant with a refresh token (through the authorization code flow), an
/// access token; the keys that sign.
async fn populate(s: &TestServer) -> Before {
    let user = s.user("bob", "bob's password").await;
    let (id, secret) = s
        .client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true,
                       "always_issue_refresh_token": true,
                       "grant_types": ["authorization_code", "refresh_token", "client_credentials"]}))
        .await;
    let secret = secret.expect("a confidential client");
    let url = s.authorize_url(&[("response_type", "code"), ("client_id", &id), ("redirect_uri", REDIRECT)]);
    let back = Browser::new().authorize(url.as_str(), "bob", "bob's password").await;
    let code = query(&back, "code").expect("a code");
    let (status, tokens) = s.redeem((&id, &secret), &code, REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let kids = kids(s).await;
    Before {
        client: (id, secret),
        user,
        access_token: tokens["access_token"].as_str().expect("access token").to_owned(),
        refresh_token: tokens["refresh_token"].as_str().expect("refresh token").to_owned(),
        code,
        kids,
        issuer: s.issuer.clone(),
    }
}

async fn kids(s: &TestServer) -> Vec<String> {
    let jwks: Value = s.http.get(s.url("/jwks.json")).send().await.unwrap().json().await.unwrap();
    let mut kids: Vec<String> =
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
    kids.sort();
    kids
}

/// The restored server knows the client, the user, the grant and the keys; a consumed code
/// stays consumed.
async fn check_restored(s: &TestServer, before: &Before) {
    let (id, secret) = (before.client.0.as_str(), before.client.1.as_str());
    assert_eq!(kids(s).await, before.kids, "the same signing keys, no new ones");
    let jwks: Value = s.http.get(s.url("/jwks.json")).send().await.unwrap().json().await.unwrap();
    let (_, claims) = support::verify_jwt(&jwks, &before.issuer, &before.access_token, None);
    assert_eq!(claims["client_id"], id, "a token signed before verifies with the JWKS after");
    let (status, body) = s.form("/token", &[("grant_type", "client_credentials")], Some((id, secret))).await;
    assert_eq!(status, StatusCode::OK, "the same client gets tokens: {body}");
    s.verify_jwt(body["access_token"].as_str().unwrap(), None).await;
    let (status, body) = s
        .form(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &before.refresh_token)],
            Some((id, secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the grant and its refresh token came along: {body}");
    let (status, users) = s
        .admin_post(
            "/admin/v1/users",
            json!({"username": "bob", "password": "another password 123", "email": "bob2@example.com",
                   "name": "Bob Again", "company": "Example GmbH"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "bob exists, username and all: {users}");
    let (status, _, listed) = s.admin(reqwest::Method::GET, "/admin/v1/users", support::ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(listed.to_string().contains(&before.user), "{listed}");
    let replay = [("grant_type", "authorization_code"), ("code", before.code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, body) = s.form("/token", &replay, Some((id, secret))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a redeemed code stays redeemed: {body}");
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn an_export_restores_into_a_fresh_data_dir_with_the_same_key() {
    let key = Sealer::generate_key();
    let old = server(&key, None, None).await;
    let before = populate(&old).await;

    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("portcullis.jsonl");
    let out = run(portcullis(old.data.path(), Some(&key), None).arg("export").arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["encryption_key_fingerprint"], fingerprint(&key));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let header: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["format"], "portcullis-export");
    assert_eq!(header["version"], 1);
    assert_eq!(header["encryption_key_fingerprint"], fingerprint(&key));
    assert!(!text.contains(&key), "the encryption key is not in the export");
    let trailer: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(trailer["records"], summary["records"]);
    let kinds: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["kind"].as_str().map(str::to_owned))
        .collect();
    for kind in ["client", "user", "username", "grant", "refresh-token", "code", "signing-key", "session"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} records are exported");
    }
    drop(old);

    let fresh = tempfile::tempdir().unwrap();
    let out = run(portcullis(fresh.path(), Some(&key), None).arg("import").arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!fresh.path().join("encryption.key").exists(), "the configured key is used, no file written");
    let again = run(portcullis(fresh.path(), Some(&key), None).arg("import").arg(&file));
    assert!(!again.status.success(), "a second import into the same database is refused");
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));

    let restored = server(&key, Some(fresh), None).await;
    check_restored(&restored, &before).await;
}

#[tokio::test]
async fn an_import_with_another_key_or_none_is_refused_naming_the_keys() {
    let key = Sealer::generate_key();
    let old = server(&key, None, None).await;
    old.client(json!({"name": "daemon", "grant_types": ["client_credentials"]})).await;
    let file = old.data.path().join("export.jsonl");
    let out = run(portcullis(old.data.path(), Some(&key), None).arg("export").arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));

    let fresh = tempfile::tempdir().unwrap();
    let other = Sealer::generate_key();
    let out = run(portcullis(fresh.path(), Some(&other), None).arg("import").arg(&file));
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains(&fingerprint(&key)), "names the export's key: {said}");
    assert!(said.contains(&fingerprint(&other)), "names the configured key: {said}");

    let out = run(portcullis(fresh.path(), None, None).arg("import").arg(&file));
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains(&fingerprint(&key)) && said.contains("no encryption key"), "{said}");
    assert!(!fresh.path().join("encryption.key").exists(), "import writes no key file");

    // Nothing was written: the right key, as the key file this time, still finds the
    // database empty.
    std::fs::write(fresh.path().join("encryption.key"), &key).unwrap();
    let out = run(portcullis(fresh.path(), None, None).arg("import").arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn an_export_cut_short_is_refused() {
    let key = Sealer::generate_key();
    let old = server(&key, None, None).await;
    let file = old.data.path().join("export.jsonl");
    let out = run(portcullis(old.data.path(), Some(&key), None).arg("export").arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    let cut: Vec<&str> = text.lines().collect();
    std::fs::write(&file, cut[..cut.len() - 1].join("\n")).unwrap();

    let fresh = tempfile::tempdir().unwrap();
    let out = run(portcullis(fresh.path(), Some(&key), None).arg("import").arg(&file));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("incomplete"), "{}", stderr(&out));

    // A record of no kind the server knows, or a body that is no record of its kind.
    for bad in [r#"{"kind":"nonesuch","id":"x","body":{}}"#, r#"{"kind":"client","id":"x","body":{"id":1}}"#] {
        let mut lines = cut.clone();
        lines.insert(1, bad);
        std::fs::write(&file, lines.join("\n")).unwrap();
        let out = run(portcullis(fresh.path(), Some(&key), None).arg("import").arg(&file));
        assert!(!out.status.success());
        assert!(stderr(&out).contains("line 2"), "names the line: {}", stderr(&out));
    }
    // Nothing of the refused files was written: the whole one restores into the database.
    std::fs::write(&file, &text).unwrap();
    let out = run(portcullis(fresh.path(), Some(&key), None).arg("import").arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_start_without_the_key_file_or_with_another_key_fails_and_writes_no_key() {
    let data = tempfile::tempdir().unwrap();
    let key_file = data.path().join("encryption.key");
    let first = run(portcullis(data.path(), None, None).args(["keys", "list"]));
    assert!(first.status.success(), "{}", stderr(&first));
    let key = std::fs::read_to_string(&key_file).expect("the first start makes a key file");

    std::fs::remove_file(&key_file).unwrap();
    let out = run(portcullis(data.path(), None, None).args(["keys", "list"]));
    assert!(!out.status.success(), "a start without the key its keys were sealed with fails");
    let said = stderr(&out);
    assert!(said.contains("encryption.key") && said.contains("missing"), "{said}");
    assert!(said.contains(&fingerprint(&key)), "names the key the keys were sealed with: {said}");
    assert!(!key_file.exists(), "no new key file");

    let other = Sealer::generate_key();
    let out = run(portcullis(data.path(), Some(&other), None).args(["keys", "list"]));
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("is not the one"), "says the key is another: {said}");
    assert!(said.contains(&fingerprint(&key)) && said.contains(&fingerprint(&other)), "{said}");
    assert!(!key_file.exists());

    std::fs::write(&key_file, &other).unwrap();
    let out = run(portcullis(data.path(), None, None).args(["keys", "list"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&fingerprint(&key)), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), other, "the file is left as it was");

    std::fs::write(&key_file, &key).unwrap();
    let out = run(portcullis(data.path(), None, None).args(["keys", "list"]));
    assert!(out.status.success(), "the right key starts again: {}", stderr(&out));
}

#[tokio::test]
async fn an_export_from_sqlite_restores_into_postgresql() {
    let key = Sealer::generate_key();
    let old = server(&key, None, None).await;
    let before = populate(&old).await;
    let file = old.data.path().join("export.jsonl");
    let out = run(portcullis(old.data.path(), Some(&key), None).arg("export").arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));

    let (url, _drop) = support::fresh_postgres("backup").await;
    let fresh = tempfile::tempdir().unwrap();
    let out = run(portcullis(fresh.path(), Some(&key), Some(&url)).arg("import").arg(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    drop(old);

    let restored = server(&key, Some(fresh), Some(url.clone())).await;
    check_restored(&restored, &before).await;
}

// Dynamic Client Registration (RFC 7591) and its management (RFC 7592).

/// A server registering clients, `per_minute` registrations per address (0: any number).
async fn registering_server_with(per_minute: u32) -> TestServer {
    TestServer::start_with(Options {
        configure: Some(Box::new(move |c: &mut portcullis::config::Config| {
            c.registration.enabled = true;
            c.registration.registrations_per_address_per_minute = per_minute;
        })),
        ..Options::default()
    })
    .await
}

async fn registering_server() -> TestServer {
    registering_server_with(0).await
}

#[tokio::test]
async fn registrations_from_one_address_are_limited() {
    let s = registering_server_with(2).await;
    let metadata = json!({"redirect_uris": [REDIRECT]});
    for _ in 0..2 {
        let (status, body) = send(&s, reqwest::Method::POST, "/register", None, Some(metadata.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = send(&s, reqwest::Method::POST, "/register", None, Some(metadata)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
}

async fn discovery(s: &TestServer) -> Value {
    s.http.get(s.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap()
}

async fn send(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = s.http.request(method, s.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn registration_is_off_unless_enabled() {
    let s = TestServer::start().await;
    assert!(discovery(&s).await.get("registration_endpoint").is_none());
    let (status, _) =
        send(&s, reqwest::Method::POST, "/register", None, Some(json!({"redirect_uris": [REDIRECT]}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_client_registered_with_openidconnect_gets_tokens_and_manages_its_registration() {
    use openidconnect::core::{CoreClientRegistrationRequest, CoreGrantType};
    use openidconnect::registration::EmptyAdditionalClientMetadata;
    use openidconnect::{RedirectUrl, RegistrationUrl};

    let s = registering_server().await;
    let endpoint = discovery(&s).await["registration_endpoint"].as_str().expect("advertised").to_owned();
    assert_eq!(endpoint, s.url("/register"));
    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let registered = CoreClientRegistrationRequest::new(
        vec![RedirectUrl::new(REDIRECT.into()).unwrap()],
        EmptyAdditionalClientMetadata::default(),
    )
    .set_grant_types(Some(vec![CoreGrantType::AuthorizationCode, CoreGrantType::ClientCredentials]))
    .register_async(&RegistrationUrl::new(endpoint).unwrap(), &http)
    .await
    .expect("registered");
    let id = registered.client_id().to_string();
    let secret = registered.client_secret().expect("a confidential client's secret").secret().clone();
    let token = registered.registration_access_token().expect("a registration access token").secret().clone();
    let uri = registered.registration_client_uri().expect("its configuration endpoint").to_string();
    assert_eq!(uri, s.url(&format!("/register/{id}")));

    let (status, body) = s.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "the registered client gets a token: {body}");
    s.verify_jwt(body["access_token"].as_str().unwrap(), None).await;

    // RFC 7592 §2.1: read, with a new registration access token each time.
    let path = format!("/register/{id}");
    let (status, read) = send(&s, reqwest::Method::GET, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["client_id"], id.as_str());
    assert_eq!(read["redirect_uris"], json!([REDIRECT]));
    assert!(read.get("client_secret").is_none(), "the secret is stored hashed, never shown again");
    let token2 = read["registration_access_token"].as_str().unwrap().to_owned();
    let (status, body) = send(&s, reqwest::Method::GET, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the used token is void: {body}");
    assert_eq!(body["error"], "invalid_token");
    let (status, _) = send(&s, reqwest::Method::GET, &path, Some("not-a-token"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // §2.2: update, a new secret with it.
    let other = "https://rp.example.com/other";
    let change = json!({"client_id": id, "redirect_uris": [other], "client_name": "Renamed",
                        "grant_types": ["authorization_code", "client_credentials"]});
    let (status, updated) = send(&s, reqwest::Method::PUT, &path, Some(&token2), Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["redirect_uris"], json!([other]));
    assert_eq!(updated["client_name"], "Renamed");
    let new_secret = updated["client_secret"].as_str().expect("a new secret").to_owned();
    let token3 = updated["registration_access_token"].as_str().unwrap().to_owned();
    let (status, _) = s.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old secret is void");
    let (status, body) = s.form("/token", &[("grant_type", "client_credentials")], Some((&id, &new_secret))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let wrong = json!({"client_id": "someone-else", "redirect_uris": [other]});
    let (status, body) = send(&s, reqwest::Method::PUT, &path, Some(&token3), Some(wrong)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // §2.3: delete.
    let (status, _) = send(&s, reqwest::Method::DELETE, &path, Some(&token3), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = s.form("/token", &[("grant_type", "client_credentials")], Some((&id, &new_secret))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the deleted client gets nothing: {body}");
    let (status, _) = send(&s, reqwest::Method::GET, &path, Some(&token3), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_client_metadata_gets_the_rfc_7591_error() {
    let s = registering_server().await;
    let cases = [
        (json!({"redirect_uris": ["https://rp.example.com/cb#fragment"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": ["http://rp.example.com/cb"]}), "invalid_redirect_uri"),
        (json!({"redirect_uris": "https://rp.example.com/cb"}), "invalid_client_metadata"),
        (json!({"redirect_uris": [REDIRECT], "grant_types": ["nonsense"]}), "invalid_client_metadata"),
        (json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "magic"}), "invalid_client_metadata"),
        (json!({"redirect_uris": [REDIRECT], "id_token_signed_response_alg": "HS256"}), "invalid_client_metadata"),
        (json!({"redirect_uris": [REDIRECT], "client_id": "chosen"}), "invalid_client_metadata"),
        (json!({"grant_types": ["authorization_code"]}), "invalid_redirect_uri"),
        (json!([1, 2]), "invalid_client_metadata"),
    ];
    for (body, error) in cases {
        let (status, answer) = send(&s, reqwest::Method::POST, "/register", None, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"], error, "{body}: {answer}");
    }
    let r = s.http.post(s.url("/register")).body("not json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Metadata this server does not read is ignored (RFC 7591 §2); a public client gets no secret.
    let (status, body) = send(
        &s,
        reqwest::Method::POST,
        "/register",
        None,
        Some(json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "logo_uri": "https://x"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.get("client_secret").is_none());
    assert_eq!(body["token_endpoint_auth_method"], "none");
}

#[tokio::test]
async fn initial_access_tokens_are_required_spent_and_revoked() {
    let s = TestServer::start_with(Options {
        configure: Some(Box::new(|c: &mut portcullis::config::Config| {
            c.registration.enabled = true;
            c.registration.require_initial_access_token = true;
            c.registration.registrations_per_address_per_minute = 0;
        })),
        ..Options::default()
    })
    .await;
    let metadata = json!({"redirect_uris": [REDIRECT]});
    let post = reqwest::Method::POST;
    let (status, body) = send(&s, post.clone(), "/register", None, Some(metadata.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_token");
    let (status, body) = send(&s, post.clone(), "/register", Some("made-up"), Some(metadata.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, issued) = s.admin_post("/admin/v1/registration/tokens", json!({"ttl": 600, "uses": 1})).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let once = issued["token"].as_str().unwrap().to_owned();
    assert_eq!(issued["uses_left"], 1);
    let (status, body) = send(&s, post.clone(), "/register", Some(&once), Some(metadata.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "accepted: {body}");
    let (status, body) = send(&s, post.clone(), "/register", Some(&once), Some(metadata.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "used up: {body}");

    let (status, issued) = s.admin_post("/admin/v1/registration/tokens", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let (token, id) = (issued["token"].as_str().unwrap().to_owned(), issued["id"].as_str().unwrap().to_owned());
    let admin = support::ADMIN_TOKEN;
    let (status, _, listed) = s.admin(reqwest::Method::GET, "/admin/v1/registration/tokens", admin, None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()], "the used-up token is not listed");
    assert!(!listed.to_string().contains(&token), "tokens are never listed");
    let (status, body) = send(&s, post.clone(), "/register", Some(&token), Some(metadata.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let path = format!("/admin/v1/registration/tokens/{id}");
    let (status, _, _) = s.admin(reqwest::Method::DELETE, &path, admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = s.admin(reqwest::Method::DELETE, &path, admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = send(&s, post.clone(), "/register", Some(&token), Some(metadata.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked: {body}");

    for bad in [json!({"ttl": 0}), json!({"uses": 0}), json!({"ttl": 99999999999u64}), json!({"other": 1})] {
        let (status, body) = s.admin_post("/admin/v1/registration/tokens", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[test]
fn initial_access_tokens_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let out = run(portcullis(data.path(), None, None).args(["registration", "token", "issue", "--uses", "2"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let issued: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (token, id) = (issued["token"].as_str().unwrap(), issued["id"].as_str().unwrap());
    assert_eq!(issued["uses_left"], 2);
    let out = run(portcullis(data.path(), None, None).args(["registration", "token", "list"]));
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(listed.contains(id) && !listed.contains(token), "{listed}");
    let out = run(portcullis(data.path(), None, None).args(["registration", "token", "revoke", id]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(portcullis(data.path(), None, None).args(["registration", "token", "list"]));
    assert!(out.stdout.is_empty());
    let out = run(portcullis(data.path(), None, None).args(["registration", "token", "revoke", id]));
    assert!(!out.status.success());
}

#[tokio::test]
async fn registration_answers_at_the_compatibility_layouts_paths_too() {
    let s = TestServer::start_with(Options {
        profiles: vec![portcullis::config::CompatibilityProfile::Deployteq],
        configure: Some(Box::new(|c: &mut portcullis::config::Config| c.registration.enabled = true)),
        ..Options::default()
    })
    .await;
    let (status, body) =
        send(&s, reqwest::Method::POST, "/oauth2/register", None, Some(json!({"redirect_uris": [REDIRECT]}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["client_id"].as_str().unwrap();
    let token = body["registration_access_token"].as_str().unwrap();
    let (status, body) = send(&s, reqwest::Method::GET, &format!("/oauth2/register/{id}"), Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
