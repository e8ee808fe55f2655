//! Prometheus metrics on a listener of their own (`server.metrics_listen`): what a scrape
//! shows after real requests. The recorder is the process's, shared by every server of this
//! test binary, so the tests check that series are there and that they grew, never totals.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Options, TestServer};

async fn metrics_server(configure: Option<crate::support::Configure>) -> TestServer {
    TestServer::start_with(Options { metrics: true, configure, ..Default::default() }).await
}

/// The scrape of the server's metrics listener.
pub(crate) async fn scrape(server: &TestServer) -> String {
    let base = server.metrics.as_deref().expect("the server serves metrics");
    let r = server.http.get(format!("{base}/metrics")).send().await.expect("scrape");
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r.headers()["content-type"].to_str().expect("content type").to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    r.text().await.expect("scrape body")
}

/// The sum of the samples of `name` whose labels include every one of `labels`; `None` when
/// no sample has them.
pub(crate) fn value(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in scrape.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, sample)) = line.rsplit_once(' ') else { continue };
        let (metric, label_set) = match series.split_once('{') {
            Some((metric, rest)) => (metric, rest.strip_suffix('}').unwrap_or(rest)),
            None => (series, ""),
        };
        if metric != name || !labels.iter().all(|(k, v)| has_label(label_set, k, v)) {
            continue;
        }
        let sample: f64 = sample.parse().unwrap_or_else(|_| panic!("a number in {line}"));
        *found.get_or_insert(0.0) += sample;
    }
    found
}

fn has_label(label_set: &str, key: &str, value: &str) -> bool {
    label_set.split(',').any(|p| p == format!("{key}=\"{value}\""))
}

async fn client_credentials_token(server: &TestServer) {
    let (id, secret) = server.client(json!({"name": "svc", "grant_types": ["client_credentials"]})).await;
    let secret = secret.expect("a confidential client");
    let (status, body) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_token_request_shows_in_the_scrape() {
    let server = metrics_server(None).await;
    client_credentials_token(&server).await;
    let text = scrape(&server).await;

    let issued = value(&text, "portcullis_tokens_issued_total", &[("grant_type", "client_credentials")]);
    assert!(issued.is_some_and(|n| n >= 1.0), "tokens issued: {issued:?}\n{text}");
    let requests = value(&text, "portcullis_http_requests_total", &[("endpoint", "/token"), ("status", "200")]);
    assert!(requests.is_some_and(|n| n >= 1.0), "token requests: {requests:?}\n{text}");
    let timed = value(&text, "portcullis_http_request_duration_seconds_count", &[("endpoint", "/token")]);
    assert!(timed.is_some_and(|n| n >= 1.0), "token requests timed: {timed:?}\n{text}");
    assert!(
        text.contains("portcullis_http_request_duration_seconds_bucket{endpoint=\"/token\",le=\"0.005\"}"),
        "{text}"
    );

    let scope = [("plugin", "scope-template"), ("kind", "scope-policy"), ("outcome", "ok")];
    assert!(value(&text, "portcullis_plugin_calls_total", &scope).is_some_and(|n| n >= 1.0), "{text}");
    let storage = [("plugin", "storage-sql"), ("kind", "storage"), ("outcome", "ok")];
    assert!(value(&text, "portcullis_plugin_calls_total", &storage).is_some_and(|n| n >= 1.0), "{text}");
    let timed = value(&text, "portcullis_plugin_call_duration_seconds_count", &[("plugin", "scope-template")]);
    assert!(timed.is_some_and(|n| n >= 1.0), "{text}");
    // Registering the client wrote it; the scrape read the keys.
    let apply = value(&text, "portcullis_storage_calls_total", &[("operation", "apply"), ("outcome", "ok")]);
    assert!(apply.is_some_and(|n| n >= 1.0), "{text}");
    assert!(value(&text, "portcullis_storage_calls_total", &[("operation", "list")]).is_some(), "{text}");
    let loaded =
        value(&text, "portcullis_plugin_reloads_total", &[("plugin", "scope-template"), ("outcome", "loaded")]);
    assert!(loaded.is_some_and(|n| n >= 1.0), "{text}");

    // Every state and algorithm is a series; each algorithm served has a key signing.
    for algorithm in ["ES256", "RS256", "EdDSA"] {
        let signing = value(&text, "portcullis_signing_keys", &[("state", "signing"), ("algorithm", algorithm)]);
        assert!(signing.is_some_and(|n| n >= 1.0), "{algorithm} signing: {signing:?}\n{text}");
        for state in ["next", "retiring", "retired"] {
            let n = value(&text, "portcullis_signing_keys", &[("state", state), ("algorithm", algorithm)]);
            assert!(n.is_some(), "{algorithm} {state}\n{text}");
        }
    }
}

#[tokio::test]
async fn requests_count_again_on_the_next_scrape() {
    let server = metrics_server(None).await;
    client_credentials_token(&server).await;
    let before = scrape(&server).await;
    let series = [("endpoint", "/token"), ("status", "200")];
    let first = value(&before, "portcullis_http_requests_total", &series).expect("token requests counted");
    let issued_first = value(&before, "portcullis_tokens_issued_total", &[("grant_type", "client_credentials")]);
    client_credentials_token(&server).await;
    let after = scrape(&server).await;
    let second = value(&after, "portcullis_http_requests_total", &series).expect("token requests counted");
    assert!(second > first, "{first} then {second}");
    let issued_second = value(&after, "portcullis_tokens_issued_total", &[("grant_type", "client_credentials")]);
    assert!(issued_second > issued_first, "{issued_first:?} then {issued_second:?}");
}

#[tokio::test]
async fn an_unknown_path_is_never_a_label() {
    let server = metrics_server(None).await;
    let r = server.http.get(server.url("/no/such/path/123?x=1")).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let text = scrape(&server).await;
    assert!(!text.contains("no/such"), "{text}");
    assert!(!text.contains("path/123"), "{text}");
    let unmatched = value(&text, "portcullis_http_requests_total", &[("endpoint", "unmatched"), ("status", "404")]);
    assert!(unmatched.is_some_and(|n| n >= 1.0), "{unmatched:?}\n{text}");
}

#[tokio::test]
async fn the_main_listener_does_not_answer_metrics() {
    let server = metrics_server(None).await;
    let r = server.http.get(server.url("/metrics")).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The metrics listener answers nothing but `/metrics`.
    let base = server.metrics.as_deref().expect("metrics served");
    let r = server.http.get(format!("{base}/token")).send().await.expect("request");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn failed_and_throttled_sign_ins_are_counted() {
    // One password grant attempt per client and minute: the second is throttled.
    let server = metrics_server(Some(Box::new(|c| c.server.sign_in_attempts_per_client_per_minute = 1))).await;
    server.user("mario", "the right password 1").await;
    let (id, secret) = server.client(json!({"name": "app", "grant_types": ["password"]})).await;
    let secret = secret.expect("a confidential client");
    let before = scrape(&server).await;
    let count = |text: &str, outcome: &str| {
        value(text, "portcullis_sign_in_attempts_total", &[("outcome", outcome)]).unwrap_or(0.0)
    };
    let wrong = [("grant_type", "password"), ("username", "mario"), ("password", "a wrong password")];
    let (status, body) = server.form("/token", &wrong, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = server.form("/token", &wrong, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let after = scrape(&server).await;
    assert!(count(&after, "failure") > count(&before, "failure"), "{after}");
    assert!(count(&after, "throttled") > count(&before, "throttled"), "{after}");
    let refused = value(&after, "portcullis_http_requests_total", &[("endpoint", "/token"), ("status", "429")]);
    assert!(refused.is_some_and(|n| n >= 1.0), "{after}");
}

/// A storage plugin's instance serves one call after another; a scope policy gets a fresh
/// instance for every grant.
#[tokio::test]
async fn storage_calls_reuse_an_instance_and_every_grant_gets_a_fresh_policy() {
    const ROUNDS: usize = 100;
    let server = metrics_server(None).await;
    let (id, secret) = server.client(json!({"name": "resource server", "grant_types": ["client_credentials"]})).await;
    let secret = secret.expect("a confidential client");
    let grant = [("grant_type", "client_credentials")];
    let (status, body) = server.form("/token", &grant, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("an access token").to_owned();

    let before = scrape(&server).await;
    for _ in 0..ROUNDS {
        // Reads the token's revocation from storage.
        let (status, body) = server.form("/introspect", &[("token", &token)], Some((&id, &secret))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["active"], true, "{body}");
        // Asks the scope policy.
        let (status, body) = server.form("/token", &grant, Some((&id, &secret))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let after = scrape(&server).await;

    let grew = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}\n{after}"))
            - value(&before, name, labels).unwrap_or(0.0)
    };
    let storage = [("plugin", "storage-sql"), ("kind", "storage")];
    let storage_calls = grew("portcullis_plugin_calls_total", &storage);
    let storage_instances = grew("portcullis_plugin_instances_total", &storage);
    assert!(storage_calls >= ROUNDS as f64, "{storage_calls} storage calls");
    // The recorder is the process's: other servers of this test binary make instances
    // meanwhile, and their first calls each make one. This server's calls, one after
    // another, reuse one.
    assert!(
        storage_instances * 4.0 < storage_calls,
        "{storage_instances} storage instances made for {storage_calls} calls"
    );
    let scope = [("plugin", "scope-template"), ("kind", "scope-policy")];
    let scope_instances = grew("portcullis_plugin_instances_total", &scope);
    assert!(scope_instances >= ROUNDS as f64, "{scope_instances} scope policy instances for {ROUNDS} grants");
}

#[test]
fn metrics_are_off_unless_configured() {
    let config = portcullis::config::Config::default();
    assert_eq!(config.server.metrics_listen, None);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let listener = runtime.block_on(portcullis::metrics::bind(&config)).expect("nothing to bind");
    assert!(listener.is_none(), "a metrics listener without server.metrics_listen");
}
