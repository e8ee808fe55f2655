//! Several replicas on one PostgreSQL behave as one server: a user and client registered at
//! one are known to the other, a code issued by one is redeemed at the other, tokens minted by
//! one are live at the other, a refresh race between two has one winner, and what one writes
//! of keys and clients the others hear of at once. Their servers shed nothing for running
//! late (`support::never_late`): a delay caused by the tests beside them is not what is measured.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use support::{Browser, Options, TestServer, query};

const REDIRECT: &str = "https://rp.example.com/callback";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_act_as_one_server() {
    let (url, _db) = support::fresh_postgres("replicas").await;
    let key = portcullis::crypto::Sealer::generate_key();
    let a = TestServer::start_with(Options {
        database_url: Some(url.clone()),
        encryption_key: Some(key.clone()),
        configure: Some(Box::new(support::never_late)),
        ..Default::default()
    })
    .await;
    let b = TestServer::start_with(Options {
        database_url: Some(url),
        encryption_key: Some(key),
        issuer: Some(a.issuer.clone()),
        configure: Some(Box::new(support::never_late)),
        ..Default::default()
    })
    .await;
    assert_eq!(a.app.keys.jwks(), b.app.keys.jwks(), "replicas publish the same keys");

    a.user("alice", "alice's password").await;
    let (id, secret) =
        a.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "always_issue_refresh_token": true})).await;
    let secret = secret.unwrap();

    let browser = Browser::new();
    let mut authorize = url::Url::parse(&a.url("/authorize")).unwrap();
    authorize.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", id.as_str()),
        ("scope", "openid"),
    ]);
    let back = browser.authorize(authorize.as_str(), "alice", "alice's password").await;
    let code = query(&back, "code").expect("code from replica A");

    let (status, tokens) =
        b.form("/token", &[("grant_type", "authorization_code"), ("code", &code)], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "replica B redeems A's code: {tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    for server in [&a, &b] {
        let (_, v) = server.form("/introspect", &[("token", access)], Some((&id, &secret))).await;
        assert_eq!(v["active"], true);
    }

    let refresh = tokens["refresh_token"].as_str().unwrap();
    let pairs = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (ra, rb) =
        tokio::join!(a.form("/token", &pairs, Some((&id, &secret))), b.form("/token", &pairs, Some((&id, &secret))));
    let winners = [&ra, &rb].iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(winners, 1, "a refresh race between replicas has one winner: {ra:?} {rb:?}");

    // Replaying the code at A is refused, and revokes what B issued from it.
    let (_, again) =
        a.form("/token", &[("grant_type", "authorization_code"), ("code", &code)], Some((&id, &secret))).await;
    assert_eq!(again["error"], "invalid_grant");
    let (_, v) = b.form("/introspect", &[("token", access)], Some((&id, &secret))).await;
    assert_eq!(v["active"], false);
}

/// A client credentials client: (id, secret).
async fn daemon(server: &TestServer) -> (String, String) {
    let (id, secret) = server.client(json!({"name": "daemon", "grant_types": ["client_credentials"]})).await;
    (id, secret.expect("a confidential client"))
}

async fn access_token(server: &TestServer, (id, secret): &(String, String)) -> String {
    let (status, v) = server.form("/token", &[("grant_type", "client_credentials")], Some((id, secret))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["access_token"].as_str().expect("an access token").to_owned()
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).expect("a JWT").kid.expect("a kid")
}

async fn publishes(server: &TestServer, kid: &str) -> bool {
    let jwks: serde_json::Value = server.http.get(server.url("/jwks.json")).send().await.unwrap().json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == kid)
}

/// Waits until `done` holds, for at most a second from `since`; false if it never did.
async fn within_a_second<F: Future<Output = bool>>(since: Instant, mut done: impl FnMut() -> F) -> bool {
    loop {
        if done().await {
            return true;
        }
        if since.elapsed() > Duration::from_secs(1) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three replicas on one PostgreSQL. A key rotated at one (through the admin API, or the CLI
/// in a process of its own) is published by every replica within a second, and no replica
/// ever refuses a token another signed with it; a client deleted at one is refused by the
/// others within a second. The periodic reload (every 30 s) is not what they wait for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_hear_of_new_keys_and_deleted_clients_at_once() {
    let (url, _db) = support::fresh_postgres("replicas").await;
    let key = portcullis::crypto::Sealer::generate_key();
    let a = TestServer::start_with(Options {
        database_url: Some(url.clone()),
        encryption_key: Some(key.clone()),
        configure: Some(Box::new(support::never_late)),
        ..Default::default()
    })
    .await;
    let mut others = Vec::new();
    for _ in 0..2 {
        others.push(
            TestServer::start_with(Options {
                database_url: Some(url.clone()),
                encryption_key: Some(key.clone()),
                issuer: Some(a.issuer.clone()),
                configure: Some(Box::new(support::never_late)),
                ..Default::default()
            })
            .await,
        );
    }
    let replicas = [&a, &others[0], &others[1]];
    let client = daemon(&a).await;
    let before = access_token(&a, &client).await;

    // Rotated at A, at once: A signs with the new key; B takes its tokens straight away,
    // whether or not it has heard of the key yet; C, asked nothing, publishes it within a
    // second, having heard.
    let r = a.http.post(a.url("/admin/v1/keys/rotate")).bearer_auth(support::ADMIN_TOKEN).json(&json!({"now": true}));
    assert_eq!(r.send().await.unwrap().status(), StatusCode::OK);
    let rotated = Instant::now();
    let signed = access_token(&a, &client).await;
    let new = kid(&signed);
    assert_ne!(new, kid(&before));
    let (_, v) = others[0].form("/introspect", &[("token", &signed)], Some((&client.0, &client.1))).await;
    assert_eq!(v["active"], true, "replica 1 takes a token of the new key at once: {v}");
    assert!(within_a_second(rotated, || publishes(&others[1], &new)).await, "replica 2 publishes {new}");
    for (i, server) in replicas.iter().enumerate() {
        assert!(publishes(server, &new).await, "replica {i} publishes {new}");
        let (_, v) = server.form("/introspect", &[("token", &signed)], Some((&client.0, &client.1))).await;
        assert_eq!(v["active"], true, "replica {i} takes a token of the new key: {v}");
    }

    // Rotated by the CLI, a process of its own on the same database.
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORTCULLIS_SERVER__DATA_DIR", data.path())
        .env("PORTCULLIS_SERVER__ISSUER", &a.issuer)
        .env("PORTCULLIS_DATABASE__URL", &url)
        .env("PORTCULLIS_KEYS__ENCRYPTION_KEY", &key)
        .env("PORTCULLIS_POLICIES__DIR", support::policies_dir())
        .env("RUST_LOG", "warn")
        .args(["keys", "rotate", "--now"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rotated = Instant::now();
    let added: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let cli_key = added.iter().find(|k| k["algorithm"] == "ES256").expect("a new ES256 key")["kid"].clone();
    let cli_key = cli_key.as_str().unwrap().to_owned();
    for (i, server) in replicas.iter().enumerate() {
        let signs = || async { kid(&access_token(server, &client).await) == cli_key };
        assert!(within_a_second(rotated, signs).await, "replica {i} signs with {cli_key}");
        assert!(publishes(server, &cli_key).await, "replica {i} publishes {cli_key}");
    }
    for signer in replicas {
        let token = access_token(signer, &client).await;
        for (i, server) in replicas.iter().enumerate() {
            let (_, v) = server.form("/introspect", &[("token", &token)], Some((&client.0, &client.1))).await;
            assert_eq!(v["active"], true, "replica {i} takes every replica's tokens: {v}");
        }
    }
    for (i, server) in replicas.iter().enumerate() {
        let (_, v) = server.form("/introspect", &[("token", &before)], Some((&client.0, &client.1))).await;
        assert_eq!(v["active"], true, "replica {i} still takes a replaced key's tokens: {v}");
    }

    // A client deleted at A: the others, which have it cached, refuse it within a second.
    let doomed = daemon(&a).await;
    let cached = Instant::now();
    for server in &others {
        access_token(server, &doomed).await;
    }
    let r = a.http.delete(a.url(&format!("/admin/v1/clients/{}", doomed.0))).bearer_auth(support::ADMIN_TOKEN);
    assert_eq!(r.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    for (i, server) in others.iter().enumerate() {
        let refused = || async {
            let pairs = [("grant_type", "client_credentials")];
            server.form("/token", &pairs, Some((&doomed.0, &doomed.1))).await.0 == StatusCode::UNAUTHORIZED
        };
        assert!(within_a_second(cached, refused).await, "replica {} refuses the deleted client", i + 1);
    }
}
