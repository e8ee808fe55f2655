//! Several replicas on one PostgreSQL behave as one server: a user and client registered at
//! one are known to the other, a code issued by one is redeemed at the other, tokens minted by
//! one are live at the other, and a refresh race between two has one winner.

mod support;

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
        ..Default::default()
    })
    .await;
    let b = TestServer::start_with(Options {
        database_url: Some(url),
        encryption_key: Some(key),
        issuer: Some(a.issuer.clone()),
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
