//! Signing keys as operators and resource servers see them (RFC 7517, OIDC Core §10.1.1):
//! a rotation publishes its key before the key signs, a replaced key stays published until
//! the longest-lived token it signed has expired, a retired (compromised) key leaves the JWKS
//! and takes its tokens with it at once, and the admin API lists each key's state. Time is
//! the test's clock, moved instead of waited for.

mod support;

use std::sync::Arc;

use portcullis::model::{Clock, ManualClock};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{ADMIN_TOKEN, Options, TestServer};

/// A client credentials client with `settings` (its own token lifetimes): (id, secret).
async fn daemon(server: &TestServer, settings: Value) -> (String, String) {
    let mut body = json!({"name": "daemon", "grant_types": ["client_credentials"], "scopes": ["reports"]});
    if let (Some(body), Value::Object(settings)) = (body.as_object_mut(), settings) {
        body.extend(settings);
    }
    let (id, secret) = server.client(body).await;
    (id, secret.expect("a confidential client"))
}

async fn token(server: &TestServer, (id, secret): &(String, String)) -> String {
    let (status, v) = server.form("/token", &[("grant_type", "client_credentials")], Some((id, secret))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["access_token"].as_str().expect("an access token").to_owned()
}

async fn active(server: &TestServer, (id, secret): &(String, String), token: &str) -> bool {
    let (status, v) = server.form("/introspect", &[("token", token)], Some((id, secret))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["active"] == true
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).expect("a JWT").kid.expect("a kid")
}

/// The published JWK Set and its `Cache-Control`.
async fn jwks(server: &TestServer) -> (Value, String) {
    let r = server.http.get(server.url("/jwks.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cache = r.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (r.json().await.unwrap(), cache)
}

async fn published(server: &TestServer) -> Vec<String> {
    let (set, _) = jwks(server).await;
    set["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

/// `GET /admin/v1/keys`: every key with its state.
async fn listed(server: &TestServer) -> Vec<Value> {
    let (status, _, v) = server.admin(Method::GET, "/admin/v1/keys", ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v.as_array().unwrap_or_else(|| panic!("a list of keys: {v}")).clone()
}

fn row<'a>(keys: &'a [Value], kid: &str) -> &'a Value {
    keys.iter().find(|k| k["kid"] == kid).unwrap_or_else(|| panic!("{kid} is listed: {keys:?}"))
}

async fn rotate(server: &TestServer, body: Option<Value>) -> Value {
    let (status, _, v) = server.admin(Method::POST, "/admin/v1/keys/rotate", ADMIN_TOKEN, body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

#[tokio::test]
async fn a_rotation_publishes_the_new_key_before_it_signs() {
    let clock = Arc::new(ManualClock::default());
    let server = TestServer::start_with(Options { clock: Some(clock.clone()), ..Default::default() }).await;
    let client = daemon(&server, json!({})).await;
    let first = token(&server, &client).await;
    let old = kid(&first);
    let rotated_at = clock.now();
    rotate(&server, None).await;

    // It does not sign before its time; the old key signs on.
    let during = token(&server, &client).await;
    assert_eq!(kid(&during), old, "the new key does not sign yet");
    assert!(active(&server, &client, &during).await);
    // Published at once, with a lifetime in caches shorter than the wait before it signs.
    let (set, cache) = jwks(&server).await;
    let new: Vec<&str> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "ES256" && k["kid"] != old.as_str())
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    let [new] = new[..] else { panic!("one new ES256 key is published: {set}") };
    let new = new.to_owned();
    let max_age: i64 = cache
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .unwrap_or_else(|| panic!("a max-age: {cache:?}"))
        .parse()
        .unwrap();
    assert!(cache.contains("public"), "{cache}");
    assert!((1..3600).contains(&max_age), "the JWKS is cached less long than keys.publish_ahead: {cache}");

    let keys = listed(&server).await;
    assert_eq!(row(&keys, &new)["state"], "next");
    assert_eq!(row(&keys, &new)["signs_from"], rotated_at + 3600, "keys.publish_ahead is an hour");
    assert_eq!(row(&keys, &old)["state"], "signing");
    assert_eq!(row(&keys, &new)["algorithm"], "ES256");

    clock.advance(3600);
    let after = token(&server, &client).await;
    assert_eq!(kid(&after), new, "the new key signs from its time");
    assert!(active(&server, &client, &after).await);
    let keys = listed(&server).await;
    assert_eq!(row(&keys, &new)["state"], "signing");
    let old_row = row(&keys, &old);
    assert_eq!(old_row["state"], "retiring", "{old_row}");
    assert!(published(&server).await.contains(&old), "a retiring key is published");

    // Retired once the last token it signed has expired: then out of the JWKS.
    let until = old_row["published_until"].as_i64().unwrap_or_else(|| panic!("published_until: {old_row}"));
    assert!(until >= rotated_at + 3600 + 600, "its tokens (600 s) outlive its replacement: {old_row}");
    clock.advance(until - clock.now());
    assert!(!published(&server).await.contains(&old));
    assert_eq!(row(&listed(&server).await, &old)["state"], "retired");
}

/// A client whose tokens live an hour: the key that signed one stays published (and the
/// token active) past the configuration's lifetimes, for as long as the token lives.
#[tokio::test]
async fn a_replaced_key_stays_published_until_its_longest_lived_token_expires() {
    let clock = Arc::new(ManualClock::default());
    let server = TestServer::start_with(Options { clock: Some(clock.clone()), ..Default::default() }).await;
    let client = daemon(&server, json!({"access_token_ttl": 3600})).await;
    let long = token(&server, &client).await;
    let old = kid(&long);
    rotate(&server, Some(json!({"now": true}))).await;
    assert_ne!(kid(&token(&server, &client).await), old, "`now`: the new key signs at once");

    // Past tokens.access_token_ttl, tokens.id_token_ttl and a JARM response's 600 s; the
    // keys read again, as the periodic reload does.
    clock.advance(700);
    server.app.keys.reload().await.unwrap();
    assert!(active(&server, &client, &long).await, "the token has 2,900 s left");
    assert!(published(&server).await.contains(&old), "its key stays published");
    clock.advance(2890);
    server.app.keys.reload().await.unwrap();
    assert!(active(&server, &client, &long).await, "the token has 10 s left");
    assert!(published(&server).await.contains(&old));
    clock.advance(11);
    assert!(!active(&server, &client, &long).await, "expired");
    let until = row(&listed(&server).await, &old)["published_until"].as_i64().unwrap();
    clock.advance(until - clock.now());
    assert!(!published(&server).await.contains(&old), "gone once its last token has expired");
}

#[tokio::test]
async fn retiring_a_compromised_key_ends_its_tokens_at_once() {
    let server = TestServer::start().await;
    let client = daemon(&server, json!({})).await;
    let stolen = token(&server, &client).await;
    let compromised = kid(&stolen);
    assert!(active(&server, &client, &stolen).await);
    assert!(active(&server, &client, &stolen).await, "and again, remembered");

    let path = format!("/admin/v1/keys/{compromised}/retire");
    let (status, _, changed) = server.admin(Method::POST, &path, ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let changed = changed.as_array().unwrap().clone();
    assert_eq!(row(&changed, &compromised)["state"], "retired");
    let successor = changed.iter().find(|k| k["kid"] != compromised.as_str()).expect("a successor");
    assert_eq!((&successor["algorithm"], &successor["state"]), (&json!("ES256"), &json!("signing")));

    assert!(!active(&server, &client, &stolen).await, "its tokens read inactive at once");
    assert!(!published(&server).await.contains(&compromised), "it leaves the JWKS at once");
    let fresh = token(&server, &client).await;
    assert_eq!(kid(&fresh), successor["kid"].as_str().unwrap(), "its successor signs at once");
    assert!(active(&server, &client, &fresh).await);
    assert_eq!(row(&listed(&server).await, &compromised)["state"], "retired");

    // A key that does not sign yet is retired alone; what signs goes on signing.
    let next = rotate(&server, None).await;
    let next = next.as_array().unwrap().iter().find(|k| k["algorithm"] == "ES256").unwrap()["kid"].clone();
    let path = format!("/admin/v1/keys/{}/retire", next.as_str().unwrap());
    let (status, _, changed) = server.admin(Method::POST, &path, ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed.as_array().unwrap().len(), 1, "{changed}");
    assert_eq!(kid(&token(&server, &client).await), kid(&fresh));

    let (status, _, v) = server.admin(Method::POST, "/admin/v1/keys/no-such-key/retire", ADMIN_TOKEN, None).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{v}");
    let (status, _, v) =
        server.admin(Method::POST, "/admin/v1/keys/rotate", ADMIN_TOKEN, Some(json!({"now": "yes"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // Operators and system administrators only, like every key route.
    let (status, _, _) = server.admin(Method::GET, "/admin/v1/keys", "not-the-admin-token", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Two servers on one SQLite database (as a server and the CLI beside it are): SQLite announces
/// no writes, so a server meeting a token of a key the other made reads the keys again first.
#[tokio::test]
async fn a_token_of_a_key_made_by_another_process_is_taken_after_reading_the_keys_again() {
    let a = TestServer::start().await;
    let shared = a.data.path().to_path_buf();
    let b = TestServer::start_with(Options {
        issuer: Some(a.issuer.clone()),
        configure: Some(Box::new(move |config| config.server.data_dir = shared)),
        ..Default::default()
    })
    .await;
    let client = daemon(&a, json!({})).await;
    rotate(&a, Some(json!({"now": true}))).await;
    let fresh = token(&a, &client).await;
    assert!(!published(&b).await.contains(&kid(&fresh)), "b has not read the keys since it started");
    assert!(active(&b, &client, &fresh).await, "b takes a token of the key a made");
    assert!(published(&b).await.contains(&kid(&fresh)), "and publishes the key");
}
