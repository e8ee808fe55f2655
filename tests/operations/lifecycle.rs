//! The lifecycle of clients and users: changing a client (checked as a registration is),
//! rotating its secret with a grace, the plugins a client names checked against those loaded
//! (and a client whose plugin disappears answered clearly); changing, disabling, enabling and
//! deleting users, and setting their passwords; the same through the CLI.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{self, ADMIN_TOKEN, Browser, Options, TestServer};

const OLD: &str = "https://old.example.com/callback";
const NEW: &str = "https://new.example.com/callback";
const PASSWORD: &str = "correct horse battery";

pub(crate) async fn patch(server: &TestServer, path: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, v) = server.admin(Method::PATCH, path, ADMIN_TOKEN, Some(body)).await;
    (status, v)
}

/// Whether `/authorize` accepts `redirect_uri` for the client: the login page (200), not
/// the error page an unregistered redirect URI gets (400, never a redirect).
async fn authorize_status(server: &TestServer, client_id: &str, redirect_uri: &str) -> StatusCode {
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "openid"),
        ("state", "s"),
    ]);
    Browser::new().get(url.as_str()).await.status()
}

/// Signs in at the login page: the code the client gets back, or the page shown instead.
async fn sign_in(
    server: &TestServer,
    client_id: &str,
    username: &str,
    password: &str,
) -> Result<String, (StatusCode, String)> {
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", NEW),
        ("scope", "openid profile email offline_access"),
        ("state", "s"),
    ]);
    let browser = Browser::new();
    let page = browser.get(url.as_str()).await;
    assert_eq!(page.status(), StatusCode::OK, "the login page");
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"password\""), "a login form: {html}");
    let r = browser.submit(&html, &[("username", username), ("password", password)]).await;
    if r.status().is_redirection() {
        let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        Ok(support::query(&location, "code").unwrap_or_else(|| panic!("no code: {location}")))
    } else {
        Err((r.status(), r.text().await.unwrap_or_default()))
    }
}

/// A confidential web client signing users in without a consent page, and its secret.
async fn web_client(server: &TestServer) -> (String, String) {
    let (id, secret) = server
        .client(json!({"name": "Web", "redirect_uris": [NEW], "skip_consent": true,
                       "scopes": ["openid", "profile", "email", "offline_access"]}))
        .await;
    (id, secret.unwrap())
}

/// Signs `username` in and redeems the code: the token response.
async fn tokens_of(server: &TestServer, client: (&str, &str), username: &str, password: &str) -> Value {
    let code = sign_in(server, client.0, username, password).await.expect("signed in");
    let (status, tokens) = server.redeem(client, &code, NEW).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

async fn userinfo(server: &TestServer, access_token: &str) -> (StatusCode, Value) {
    let r = server.http.get(server.url("/userinfo")).bearer_auth(access_token).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn refresh(server: &TestServer, client: (&str, &str), refresh_token: &str) -> (StatusCode, Value) {
    server.form("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)], Some(client)).await
}

async fn introspect(server: &TestServer, client: (&str, &str), token: &str) -> Value {
    let (status, v) = server.form("/introspect", &[("token", token)], Some(client)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn client_credentials(server: &TestServer, id: &str, secret: &str, scope: &str) -> (StatusCode, Value) {
    server.form("/token", &[("grant_type", "client_credentials"), ("scope", scope)], Some((id, secret))).await
}

// Clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_changes_a_clients_redirect_uris() {
    let server = TestServer::start().await;
    let (id, _) = server.client(json!({"name": "Moving", "redirect_uris": [OLD]})).await;
    assert_eq!(authorize_status(&server, &id, OLD).await, StatusCode::OK);
    assert_eq!(authorize_status(&server, &id, NEW).await, StatusCode::BAD_REQUEST);

    let (status, v) = patch(&server, &format!("/admin/v1/clients/{id}"), json!({"redirect_uris": [NEW]})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["redirect_uris"], json!([NEW]));
    assert_eq!(v["name"], "Moving", "what the change does not name stays");

    assert_eq!(authorize_status(&server, &id, OLD).await, StatusCode::BAD_REQUEST, "the old one is refused");
    assert_eq!(authorize_status(&server, &id, NEW).await, StatusCode::OK, "the new one is accepted");
    let (_, _, shown) = server.admin(Method::GET, &format!("/admin/v1/clients/{id}"), ADMIN_TOKEN, None).await;
    assert_eq!(shown["redirect_uris"], json!([NEW]));

    let (status, _) = patch(&server, "/admin/v1/clients/0123456789abcdef0123456789abcdef", json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_patch_input_is_400_naming_the_field() {
    let server = TestServer::start().await;
    let (id, _) = server.client(json!({"name": "Strict", "redirect_uris": [OLD]})).await;
    let path = format!("/admin/v1/clients/{id}");
    let cases = [
        (json!({"redirect_uris": ["http://evil.example.com/cb"]}), "redirect_uris"),
        (json!({"redirect_uris": []}), "redirect_uris"),
        (json!({"name": " "}), "name"),
        (json!({"access_token_ttl": 100_000_000}), "access_token_ttl"),
        (json!({"grant_types": ["magic"]}), "grant_types"),
        (json!({"allowed_origins": ["https://app.example.com/path"]}), "allowed_origins"),
        (json!({"jwks_uri": "https://keys.example.com/jwks.json"}), "jwks_uri"),
        (json!({"scope_policy": "scope-dpet"}), "scope_policy"),
        (json!({"consent_ui": "scope-template"}), "consent_ui"),
    ];
    for (body, field) in cases {
        let (status, v) = patch(&server, &path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"], "invalid_request", "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    // What is not JSON of the update's shape: 400 naming the member, never a 500.
    for (body, member) in [
        (json!({"redirect_uris": "https://new.example.com/callback"}), "redirect_uris"),
        (json!({"public": true}), "public"),
        (json!({"access_token_ttl": -1}), "access_token_ttl"),
    ] {
        let (status, v) = patch(&server, &path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v["error_description"].as_str().unwrap_or_default().contains(member), "{body}: {v}");
    }
    let (_, _, shown) = server.admin(Method::GET, &path, ADMIN_TOKEN, None).await;
    assert_eq!(shown["redirect_uris"], json!([OLD]), "a refused change changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_is_not_loaded_is_refused_at_registration_and_update() {
    let server = TestServer::start().await;
    for (body, field) in [
        (json!({"name": "Typo", "grant_types": ["client_credentials"], "scope_policy": "scope-dpet"}), "scope_policy"),
        (json!({"name": "Typo", "redirect_uris": [OLD], "consent_ui": "consent-dfeault"}), "consent_ui"),
        // A loaded plugin of another kind is no scope policy.
        (
            json!({"name": "Kind", "grant_types": ["client_credentials"], "scope_policy": "consent-default"}),
            "scope_policy",
        ),
    ] {
        let (status, v) = server.admin_post("/admin/v1/clients", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let (id, secret) =
        server.client(json!({"name": "Fine", "grant_types": ["client_credentials"], "scopes": ["a"]})).await;
    let (status, v) = patch(&server, &format!("/admin/v1/clients/{id}"), json!({"scope_policy": "scope-dpet"})).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("scope_policy")), "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("scope-dpet"), "{v}");
    let (status, body) = client_credentials(&server, &id, &secret.unwrap(), "a").await;
    assert_eq!(status, StatusCode::OK, "the client still gets tokens: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_changes_the_scope_policy_and_a_vanished_policy_is_a_clear_server_error() {
    let policies = support::policies_copy();
    for plugin in ["scope-js", "consent-locales"] {
        for ext in ["toml", "wasm"] {
            let name = format!("{plugin}.{ext}");
            std::fs::copy(support::fixtures_dir().join(&name), policies.path().join(&name)).unwrap();
        }
    }
    let options = || Options { policies: Some(policies.path().into()), ..Default::default() };
    let first = TestServer::start_with(options()).await;
    let (id, secret) =
        first.client(json!({"name": "Policed", "grant_types": ["client_credentials"], "scopes": ["a", "b"]})).await;
    let secret = secret.unwrap();
    let (status, body) = client_credentials(&first, &id, &secret, "a").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(jwt_claims(body["access_token"].as_str().unwrap())["policy_language"], Value::Null);

    let (status, v) = patch(&first, &format!("/admin/v1/clients/{id}"), json!({"scope_policy": "scope-js"})).await;
    assert_eq!((status, v["scope_policy"].as_str()), (StatusCode::OK, Some("scope-js")), "{v}");
    let (status, body) = client_credentials(&first, &id, &secret, "a").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        jwt_claims(body["access_token"].as_str().unwrap())["policy_language"],
        "javascript",
        "the new policy decides"
    );

    let (themed, _) =
        first.client(json!({"name": "Themed", "redirect_uris": [NEW], "consent_ui": "consent-locales"})).await;
    assert_eq!(authorize_status(&first, &themed, NEW).await, StatusCode::OK);

    // The plugins' files go; the server starts again on the same data.
    for plugin in ["scope-js", "consent-locales"] {
        for ext in ["toml", "wasm"] {
            std::fs::remove_file(policies.path().join(format!("{plugin}.{ext}"))).unwrap();
        }
    }
    let data = first.data;
    let second = TestServer::start_with(Options { data: Some(data), ..options() }).await;
    assert!(!second.app.host.loaded().contains_key("scope-js"));
    let (status, body) = client_credentials(&second, &id, &secret, "a").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "not a bare 500: {body}");
    assert_eq!(body["error"], "server_error", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("scope-js"), "names the plugin: {body}");
    // Its login page cannot be shown: the client is told why, by name, not with a bare 500.
    let url = second.authorize_url(&[
        ("response_type", "code"),
        ("client_id", &themed),
        ("redirect_uri", NEW),
        ("scope", "openid"),
        ("state", "s"),
    ]);
    let r = Browser::new().get(url.as_str()).await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(support::query(&back, "error").as_deref(), Some("server_error"), "{back}");
    assert!(support::query(&back, "error_description").unwrap().contains("consent-locales"), "{back}");

    let mut missing: Vec<(String, &str, String)> = second
        .app
        .storage
        .clients_missing_plugins()
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.client_id, m.field, m.plugin))
        .collect();
    missing.sort();
    let mut expected = vec![
        (id.clone(), "scope_policy", "scope-js".to_owned()),
        (themed.clone(), "consent_ui", "consent-locales".into()),
    ];
    expected.sort();
    assert_eq!(missing, expected);
    // Readiness holds, and names each such client with the plugin it misses.
    let ready = second.http.get(second.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    let part = ready["parts"].as_array().unwrap().iter().find(|p| p["name"] == "clients").cloned();
    let part = part.unwrap_or_else(|| panic!("{ready}"));
    assert_eq!(part["state"], "degraded", "{ready}");
    let detail = part["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("client {id} names scope_policy `scope-js`")), "{detail}");
    assert!(detail.contains(&format!("client {themed} names consent_ui `consent-locales`")), "{detail}");

    // Back to the default policy: tokens again, nothing missing.
    let (status, v) = patch(&second, &format!("/admin/v1/clients/{id}"), json!({"scope_policy": null})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, body) = client_credentials(&second, &id, &secret, "a").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let missing = second.app.storage.clients_missing_plugins().await.unwrap();
    assert!(missing.iter().all(|m| m.client_id != id), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_without_grace_is_refused_at_once() {
    let server = TestServer::start().await;
    let (id, old) = server.client(json!({"name": "Rotating", "grant_types": ["client_credentials"]})).await;
    let old = old.unwrap();
    assert_eq!(client_credentials(&server, &id, &old, "").await.0, StatusCode::OK);

    let (status, _, v) = server.admin(Method::POST, &format!("/admin/v1/clients/{id}/secret"), ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let new = v["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let (status, body) = client_credentials(&server, &id, &old, "").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
    assert_eq!(client_credentials(&server, &id, &new, "").await.0, StatusCode::OK);

    let listed = server.admin(Method::GET, &format!("/admin/v1/clients/{id}"), ADMIN_TOKEN, None).await.2;
    assert!(!listed.to_string().contains(&new), "the secret is shown once");

    let (public, _) = server.client(json!({"name": "SPA", "redirect_uris": [NEW], "public": true})).await;
    let path = format!("/admin/v1/clients/{public}/secret");
    let (status, _, v) = server.admin(Method::POST, &path, ADMIN_TOKEN, Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a public client has no secret: {v}");
    let path = format!("/admin/v1/clients/{id}/secret");
    let (status, _, v) =
        server.admin(Method::POST, &path, ADMIN_TOKEN, Some(json!({"grace_seconds": 99_999_999}))).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("grace_seconds")), "{v}");
    let (status, _, v) = server.admin(Method::POST, &path, ADMIN_TOKEN, Some(json!({"grace": 5}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_accepted_during_its_grace_then_refused() {
    let clock = Arc::new(portcullis::model::ManualClock::default());
    let server = TestServer::start_with(Options { clock: Some(clock.clone()), ..Default::default() }).await;
    let (id, old) = server.client(json!({"name": "Rolling", "grant_types": ["client_credentials"]})).await;
    let old = old.unwrap();
    let path = format!("/admin/v1/clients/{id}/secret");
    let (status, _, v) = server.admin(Method::POST, &path, ADMIN_TOKEN, Some(json!({"grace_seconds": 3600}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let new = v["client_secret"].as_str().unwrap().to_owned();

    assert_eq!(client_credentials(&server, &id, &old, "").await.0, StatusCode::OK, "the old one, in its grace");
    assert_eq!(client_credentials(&server, &id, &new, "").await.0, StatusCode::OK);
    clock.advance(3599);
    assert_eq!(client_credentials(&server, &id, &old, "").await.0, StatusCode::OK, "a second before it ends");
    clock.advance(1);
    let (status, body) = client_credentials(&server, &id, &old, "").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
    assert_eq!(client_credentials(&server, &id, &new, "").await.0, StatusCode::OK);
}

// Users

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_change_shows_in_userinfo_and_the_next_id_token() {
    let server = TestServer::start().await;
    let user = server.user("ada", PASSWORD).await;
    let (id, secret) = web_client(&server).await;
    let tokens = tokens_of(&server, (&id, &secret), "ada", PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&server, access).await.1["name"], "ada Example");

    let change = json!({"name": "Ada Lovelace", "given_name": "Ada", "family_name": "Lovelace",
                        "email": "ada@lovelace.example", "company": null, "roles": ["analyst"]});
    let (status, v) = patch(&server, &format!("/admin/v1/users/{user}"), change).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["company"].as_str(), v["username"].as_str()),
        (Some("Ada Lovelace"), None, Some("ada"))
    );

    let (status, info) = userinfo(&server, access).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!((info["name"].as_str(), info["email"].as_str()), (Some("Ada Lovelace"), Some("ada@lovelace.example")));
    assert_eq!(info["family_name"], "Lovelace");

    let tokens = tokens_of(&server, (&id, &secret), "ada", PASSWORD).await;
    let (_, claims) = server.verify_jwt(tokens["id_token"].as_str().unwrap(), Some(&id)).await;
    assert_eq!((claims["name"].as_str(), claims["given_name"].as_str()), (Some("Ada Lovelace"), Some("Ada")));

    for (body, needle) in [(json!({"username": "eve"}), "username"), (json!({"roles": "admin"}), "roles")] {
        let (status, v) = patch(&server, &format!("/admin/v1/users/{user}"), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v["error_description"].as_str().unwrap_or_default().contains(needle), "{body}: {v}");
    }
    let (status, _) = patch(&server, "/admin/v1/users/nobody", json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_is_refused_everywhere_until_enabled() {
    let server = TestServer::start().await;
    let user = server.user("bob", PASSWORD).await;
    let (id, secret) = web_client(&server).await;
    let (password_client, password_secret) =
        server.client(json!({"name": "Legacy", "grant_types": ["password"], "scopes": ["openid", "profile"]})).await;
    let password_secret = password_secret.unwrap();
    let password_grant = || {
        server.form(
            "/token",
            &[("grant_type", "password"), ("username", "bob"), ("password", PASSWORD), ("scope", "openid")],
            Some((&password_client, &password_secret)),
        )
    };
    assert_eq!(password_grant().await.0, StatusCode::OK);
    let tokens = tokens_of(&server, (&id, &secret), "bob", PASSWORD).await;
    let (access, refresh_token) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    assert_eq!(introspect(&server, (&id, &secret), access).await["active"], true);

    let (status, v) = patch(&server, &format!("/admin/v1/users/{user}"), json!({"disabled": true})).await;
    assert_eq!((status, v["disabled"].as_bool()), (StatusCode::OK, Some(true)), "{v}");

    let (status, page) = sign_in(&server, &id, "bob", PASSWORD).await.expect_err("sign-in refused");
    assert!(status.is_client_error() && page.contains("name=\"password\""), "the login page again: {status}");
    let (status, body) = password_grant().await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let (status, body) = refresh(&server, (&id, &secret), refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    assert_eq!(introspect(&server, (&id, &secret), access).await["active"], false);
    assert_eq!(userinfo(&server, access).await.0, StatusCode::UNAUTHORIZED);
    let listed = server.admin(Method::GET, "/admin/v1/users", ADMIN_TOKEN, None).await.2;
    assert!(listed.as_array().unwrap().iter().any(|u| u["id"] == user.as_str() && u["disabled"] == true), "{listed}");

    let (status, v) = patch(&server, &format!("/admin/v1/users/{user}"), json!({"disabled": false})).await;
    assert_eq!((status, v["disabled"].as_bool()), (StatusCode::OK, Some(false)), "{v}");
    let tokens = tokens_of(&server, (&id, &secret), "bob", PASSWORD).await;
    assert_eq!(userinfo(&server, tokens["access_token"].as_str().unwrap()).await.0, StatusCode::OK);
    assert_eq!(password_grant().await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_tokens_die_and_the_user_leaves_the_list() {
    let server = TestServer::start().await;
    let user = server.user("carol", PASSWORD).await;
    let (id, secret) = web_client(&server).await;
    let tokens = tokens_of(&server, (&id, &secret), "carol", PASSWORD).await;
    let (access, refresh_token) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());

    let (status, _, _) = server.admin(Method::DELETE, &format!("/admin/v1/users/{user}"), ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = refresh(&server, (&id, &secret), refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    assert_eq!(introspect(&server, (&id, &secret), access).await["active"], false);
    assert_eq!(userinfo(&server, access).await.0, StatusCode::UNAUTHORIZED);
    let listed = server.admin(Method::GET, "/admin/v1/users", ADMIN_TOKEN, None).await.2;
    assert!(!listed.as_array().unwrap().iter().any(|u| u["id"] == user.as_str()), "{listed}");
    assert!(sign_in(&server, &id, "carol", PASSWORD).await.is_err());
    let (status, _, _) = server.admin(Method::DELETE, &format!("/admin/v1/users/{user}"), ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The username is free again.
    server.user("carol", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_sets_a_password_and_the_user_signs_in_with_it() {
    let server = TestServer::start().await;
    let user = server.user("dave", PASSWORD).await;
    let (id, _) = web_client(&server).await;
    let path = format!("/admin/v1/users/{user}/password");
    let (status, _, v) = server.admin(Method::POST, &path, ADMIN_TOKEN, Some(json!({"password": "short"}))).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("password")), "{v}");
    let (status, _, v) = server.admin(Method::POST, &path, ADMIN_TOKEN, Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");

    let (status, _, v) =
        server.admin(Method::POST, &path, ADMIN_TOKEN, Some(json!({"password": "a brand new passphrase"}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v.get("password").is_none() && !v.to_string().contains("passphrase"), "{v}");
    assert!(sign_in(&server, &id, "dave", PASSWORD).await.is_err(), "the old password no longer works");
    assert!(sign_in(&server, &id, "dave", "a brand new passphrase").await.is_ok());

    let (status, _, _) = server
        .admin(Method::POST, "/admin/v1/users/nobody/password", ADMIN_TOKEN, Some(json!({"password": "long enough!"})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_user_may_not_change_clients_or_users() {
    let server = TestServer::start().await;
    let user = server.user("erin", PASSWORD).await;
    let token = server.admin_token_of("erin", PASSWORD).await;
    let (id, _) = server.client(json!({"name": "Theirs", "redirect_uris": [OLD]})).await;
    for (method, path, body) in [
        (Method::PATCH, format!("/admin/v1/clients/{id}"), Some(json!({"name": "Mine"}))),
        (Method::POST, format!("/admin/v1/clients/{id}/secret"), None),
        (Method::PATCH, format!("/admin/v1/users/{user}"), Some(json!({"roles": ["system-administrator"]}))),
        (Method::POST, format!("/admin/v1/users/{user}/password"), Some(json!({"password": "my own choice"}))),
        (Method::DELETE, format!("/admin/v1/users/{user}"), None),
    ] {
        let (status, _, v) = server.admin(method.clone(), &path, &token, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {v}");
    }
}

// The CLI, against a running server's data

fn cli(server: &TestServer) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORTCULLIS_SERVER__DATA_DIR", server.data.path())
        .env("PORTCULLIS_POLICIES__DIR", support::policies_dir())
        .env("RUST_LOG", "warn")
        .current_dir(server.data.path());
    cmd
}

fn run(server: &TestServer, args: &[&str]) -> Value {
    let out = cli(server).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.trim()).unwrap_or(Value::String(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_changes_rotates_disables_enables_deletes_and_sets_passwords() {
    let server = TestServer::start().await;
    let user = server.user("frank", PASSWORD).await;
    let (id, secret) = web_client(&server).await;
    let (machine, old) = server.client(json!({"name": "Batch", "grant_types": ["client_credentials"]})).await;

    // Clients
    let changed = run(&server, &["client", "update", &id, "--redirect-uri", OLD, "--name", "Web 2"]);
    assert_eq!((changed["redirect_uris"].clone(), changed["name"].as_str()), (json!([OLD]), Some("Web 2")));
    let (_, _, shown) = server.admin(Method::GET, &format!("/admin/v1/clients/{id}"), ADMIN_TOKEN, None).await;
    assert_eq!(shown["redirect_uris"], json!([OLD]), "the server reads what the CLI wrote");
    let out = cli(&server).args(["client", "update", &id, "--scope-policy", "scope-dpet"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("scope_policy"), "{}", String::from_utf8_lossy(&out.stderr));
    run(&server, &["client", "update", &id, "--redirect-uri", NEW]);

    let rotated = run(&server, &["client", "rotate-secret", &machine, "--json"]);
    let new = rotated["client_secret"].as_str().unwrap();
    assert_eq!(client_credentials(&server, &machine, new, "").await.0, StatusCode::OK);
    assert_eq!(client_credentials(&server, &machine, &old.unwrap(), "").await.0, StatusCode::UNAUTHORIZED);

    // Users
    let changed = run(&server, &["user", "update", &user, "--name", "Frank N.", "--role", "auditor"]);
    assert_eq!((changed["name"].as_str(), changed["roles"].clone()), (Some("Frank N."), json!(["auditor"])));
    let disabled = run(&server, &["user", "disable", &user]);
    assert_eq!(disabled["disabled"], true);
    assert!(sign_in(&server, &id, "frank", PASSWORD).await.is_err(), "a disabled user signs in nowhere");
    run(&server, &["user", "enable", &user]);
    tokens_of(&server, (&id, &secret), "frank", PASSWORD).await;

    let mut child = cli(&server)
        .args(["user", "set-password", &user, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"an operator's choice\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(sign_in(&server, &id, "frank", "an operator's choice").await.is_ok());
    let out = cli(&server).args(["user", "set-password", &user]).output().unwrap();
    assert!(!out.status.success(), "never from the arguments alone");

    let deleted = run(&server, &["user", "delete", &user]);
    assert!(deleted.as_str().is_some_and(|s| s.contains(&user)));
    let listed = server.admin(Method::GET, "/admin/v1/users", ADMIN_TOKEN, None).await.2;
    assert!(!listed.to_string().contains(&user), "{listed}");
}

/// The same groups of writes on PostgreSQL: disabling revokes, deleting removes, a changed
/// client is read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_and_deleting_users_and_changing_clients_on_postgres() {
    let (url, _db) = support::fresh_postgres("lifecycle").await;
    let server = TestServer::start_with(Options { database_url: Some(url), ..Default::default() }).await;
    let user = server.user("grace", PASSWORD).await;
    let (id, secret) = web_client(&server).await;
    let tokens = tokens_of(&server, (&id, &secret), "grace", PASSWORD).await;
    let (access, refresh_token) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());

    let (status, v) = patch(&server, &format!("/admin/v1/users/{user}"), json!({"disabled": true})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(refresh(&server, (&id, &secret), refresh_token).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(introspect(&server, (&id, &secret), access).await["active"], false);
    assert!(sign_in(&server, &id, "grace", PASSWORD).await.is_err());
    patch(&server, &format!("/admin/v1/users/{user}"), json!({"disabled": false})).await;
    tokens_of(&server, (&id, &secret), "grace", PASSWORD).await;

    let (status, _, _) = server.admin(Method::DELETE, &format!("/admin/v1/users/{user}"), ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let listed = server.admin(Method::GET, "/admin/v1/users", ADMIN_TOKEN, None).await.2;
    assert!(!listed.to_string().contains(&user), "{listed}");

    let (status, v) = patch(&server, &format!("/admin/v1/clients/{id}"), json!({"redirect_uris": [OLD]})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(authorize_status(&server, &id, NEW).await, StatusCode::BAD_REQUEST);
    assert_eq!(authorize_status(&server, &id, OLD).await, StatusCode::OK);
}

/// Two replicas on one PostgreSQL: a client changed, and its secret rotated, at one is seen
/// so by the other, which had the client cached (it hears of the write; its cache's second
/// would bring it anyway, so this waits for the change without timing it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_sees_a_client_changed_at_another() {
    let (url, _db) = support::fresh_postgres("lifecycle_replicas").await;
    let key = portcullis::crypto::Sealer::generate_key();
    let options =
        || Options { database_url: Some(url.clone()), encryption_key: Some(key.clone()), ..Default::default() };
    let a = TestServer::start_with(options()).await;
    let b = TestServer::start_with(Options { issuer: Some(a.issuer.clone()), ..options() }).await;
    let (id, old) = a
        .client(json!({"name": "Shared", "redirect_uris": [OLD], "grant_types": ["authorization_code", "client_credentials"]}))
        .await;
    let old = old.unwrap();
    assert_eq!(authorize_status(&b, &id, OLD).await, StatusCode::OK, "b has the client cached");
    assert_eq!(client_credentials(&b, &id, &old, "").await.0, StatusCode::OK);

    let (status, v) = patch(&a, &format!("/admin/v1/clients/{id}"), json!({"redirect_uris": [NEW]})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, _, v) = a.admin(Method::POST, &format!("/admin/v1/clients/{id}/secret"), ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let new = v["client_secret"].as_str().unwrap().to_owned();

    let mut seen = false;
    for _ in 0..500 {
        if authorize_status(&b, &id, OLD).await == StatusCode::BAD_REQUEST {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen, "b refuses the old redirect URI");
    assert_eq!(authorize_status(&b, &id, NEW).await, StatusCode::OK);
    assert_eq!(client_credentials(&b, &id, &old, "").await.0, StatusCode::UNAUTHORIZED, "b refuses the old secret");
    assert_eq!(client_credentials(&b, &id, &new, "").await.0, StatusCode::OK);
}
