//! The example scope policy `scope-by-role`, written in Rust, JavaScript and Python
//! (`examples/plugins/scope-by-role-*`): each copied into a running server's policies
//! directory, picked up by hot reload, named by a client registered through the admin API, and
//! asked through the authorization code flow of a real OAuth client (the `oauth2` crate); and
//! each passing the shared case file through `portcullis plugin test`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope,
    TokenResponse as _, TokenUrl,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{self, Browser, Options, TestServer};

const REDIRECT: &str = "https://hr-portal.example.com/callback";

/// Every scope the policy's table names: what the client may be granted.
const CLIENT_SCOPES: [&str; 5] = ["openid", "profile", "hr:read", "hr:write", "finance:read"];

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins/scope-by-role.cases.json")
}

/// `portcullis plugin ARGS…` with no configuration around it: stdout and stderr, success.
fn portcullis_plugin(args: &[&std::ffi::OsStr]) -> (String, bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .current_dir(dir.path())
        .arg("plugin")
        .args(args)
        .output()
        .expect("portcullis runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (text, out.status.success())
}

/// Copies `name`'s manifest, then its component, into the running server's policies
/// directory, and registers a client naming it through the admin API as soon as the server
/// has it loaded (until then the registration is refused, naming the policy); the client's
/// id and secret.
async fn install_and_register(server: &TestServer, policies: &Path, name: &str) -> (String, String) {
    for ext in ["toml", "wasm"] {
        let file = format!("{name}.{ext}");
        std::fs::copy(support::examples_dir().join(&file), policies.join(&file))
            .unwrap_or_else(|e| panic!("{file} (run examples/plugins/build.sh or plugins/build.sh): {e}"));
    }
    let body = json!({"name": "HR portal", "redirect_uris": [REDIRECT], "scopes": CLIENT_SCOPES,
                      "scope_policy": name, "skip_consent": true});
    let since = Instant::now();
    loop {
        let (status, v) = server.admin_post("/admin/v1/clients", body.clone()).await;
        if status == StatusCode::CREATED {
            let id = v["client_id"].as_str().expect("client_id").to_owned();
            return (id, v["client_secret"].as_str().expect("a secret").to_owned());
        }
        assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("scope_policy")), "{v}");
        // Compiling a component of an interpreter (12 to 18 MB) takes a while on a busy machine.
        assert!(since.elapsed() < Duration::from_secs(300), "the server never loaded `{name}`: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the authorization code flow gives `username` asking for `scopes`: the granted scopes
/// and the access token, or the error and its description the redirect back carried.
async fn sign_in(
    server: &TestServer,
    (id, secret): (&str, &str),
    username: &str,
    scopes: &[&str],
) -> Result<(Vec<String>, String), (String, String)> {
    let rp = BasicClient::new(ClientId::new(id.into()))
        .set_client_secret(ClientSecret::new(secret.into()))
        .set_auth_uri(AuthUrl::new(server.url("/authorize")).expect("authorize URL"))
        .set_token_uri(TokenUrl::new(server.url("/token")).expect("token URL"))
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).expect("redirect URI"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = rp
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes.iter().map(|s| Scope::new((*s).into())))
        .set_pkce_challenge(challenge)
        .url();
    let back = Browser::new().authorize(url.as_str(), username, &format!("{username}'s password")).await;
    assert_eq!(support::query(&back, "state").as_deref(), Some(state.secret().as_str()), "{back}");
    if let Some(error) = support::query(&back, "error") {
        return Err((error, support::query(&back, "error_description").unwrap_or_default()));
    }
    let code = support::query(&back, "code").unwrap_or_else(|| panic!("a code: {back}"));
    let http = oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code is redeemed");
    let granted = tokens.scopes().expect("the granted scopes").iter().map(|s| s.to_string()).collect();
    Ok((granted, tokens.access_token().secret().clone()))
}

/// `name` loaded into a running server by hot reload grants, adds and refuses as the policy
/// says, and passes the shared cases.
async fn serves_as_the_policy_says(name: &str) {
    let policies = support::policies_copy();
    let server =
        TestServer::start_with(Options { policies: Some(policies.path().into()), watch: true, ..Default::default() })
            .await;
    let client = install_and_register(&server, policies.path(), name).await;
    let client = (client.0.as_str(), client.1.as_str());
    for (username, roles) in [("ada", &["hr"][..]), ("bob", &["hr-admin"]), ("eve", &["engineer"])] {
        server.user_with_roles(username, &format!("{username}'s password"), roles).await;
    }

    // Ada, in HR, reads HR records but may not change them; her department is in her tokens.
    let (scopes, access_token) =
        sign_in(&server, client, "ada", &["openid", "hr:read", "hr:write"]).await.expect("ada is granted");
    assert_eq!(scopes, ["openid", "hr:read"], "{name}");
    let (_, claims) = server.verify_jwt(&access_token, None).await;
    assert_eq!(claims["department"], "people", "{name}: {claims}");
    let userinfo: Value = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(&access_token)
        .send()
        .await
        .expect("UserInfo")
        .json()
        .await
        .expect("UserInfo JSON");
    assert_eq!(userinfo["department"], "people", "{name}: {userinfo}");

    // Bob, HR's administrator, may change them.
    let (scopes, access_token) =
        sign_in(&server, client, "bob", &["hr:read", "hr:write"]).await.expect("bob is granted");
    assert_eq!(scopes, ["hr:read", "hr:write"], "{name}");
    assert_eq!(server.verify_jwt(&access_token, None).await.1["department"], "people", "{name}");

    // Eve, an engineer, gets what everyone may have and no department; asking for nothing
    // else, she is refused, and told why.
    let (scopes, access_token) =
        sign_in(&server, client, "eve", &["profile", "hr:read"]).await.expect("eve gets `profile`");
    assert_eq!(scopes, ["profile"], "{name}");
    let (_, claims) = server.verify_jwt(&access_token, None).await;
    assert!(claims.get("department").is_none(), "{name}: {claims}");
    let refused = sign_in(&server, client, "eve", &["hr:write", "finance:read"]).await.map(|(s, _)| s);
    assert_eq!(
        refused,
        Err(("access_denied".into(), "the roles [engineer] allow none of [hr:write finance:read]".into())),
        "{name}"
    );

    // The shared cases, through the CLI.
    let wasm = support::examples_dir().join(format!("{name}.wasm"));
    let count = serde_json::from_str::<Value>(&std::fs::read_to_string(cases()).expect("the cases"))
        .expect("JSON cases")["cases"]
        .as_array()
        .expect("a list of cases")
        .len();
    let (out, ok) = portcullis_plugin(&["test".as_ref(), wasm.as_os_str(), cases().as_os_str()]);
    assert!(ok && out.contains(&format!("{count} cases as expected")), "{name}: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_example_policy_serves_as_it_says() {
    serves_as_the_policy_says("scope-by-role-rust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_example_policy_serves_as_it_says() {
    serves_as_the_policy_says("scope-by-role-js").await;
}

/// The Python build imports WASI 0.2 (componentize-py's runtime needs it): the server must
/// link WASI for it to load, which `plugin check` tells first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_policy_serves_as_it_says() {
    let wasm = support::examples_dir().join("scope-by-role-py.wasm");
    let (out, loads) = portcullis_plugin(&["check".as_ref(), wasm.as_os_str()]);
    assert!(out.contains("implements scope-policy, portcullis:plugin@0.4.0"), "the export is recognised: {out}");
    assert!(loads, "the Python build would load: {out}");
    serves_as_the_policy_says("scope-by-role-py").await;
}
