//! The plugin host under stress: hot reload while requests run, broken files refused, and
//! plugins that trap, loop or exhaust memory failing only their own request.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use support::{Options, TestServer, fixtures_dir, policies_copy};

fn install_fixture(dir: &std::path::Path, name: &str) {
    for ext in ["toml", "wasm"] {
        std::fs::copy(fixtures_dir().join(format!("{name}.{ext}")), dir.join(format!("{name}.{ext}")))
            .expect("fixture");
    }
}

fn install_chaos(dir: &std::path::Path, as_name: &str) {
    let wasm = std::fs::read(fixtures_dir().join("scope-chaos.wasm")).expect("scope-chaos.wasm (run plugins/build.sh)");
    let manifest = std::fs::read_to_string(fixtures_dir().join("scope-chaos.toml")).expect("scope-chaos.toml");
    let manifest = manifest.replace("name = \"scope-chaos\"", &format!("name = \"{as_name}\""));
    // The manifest first: the plugin is picked up once both halves are there.
    std::fs::write(dir.join(format!("{as_name}.toml")), manifest).unwrap();
    std::fs::write(dir.join(format!("{as_name}.wasm")), wasm).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_fails_no_request_and_refuses_broken_files() {
    let policies = policies_copy();
    let server = Arc::new(
        TestServer::start_with(Options { policies: Some(policies.path().into()), watch: true, ..Default::default() })
            .await,
    );
    let (id, secret) =
        server.client(json!({"name": "daemon", "grant_types": ["client_credentials"], "scopes": ["a", "b"]})).await;
    let secret = secret.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (server, id, secret, stop, failures, total) =
            (server.clone(), id.clone(), secret.clone(), stop.clone(), failures.clone(), total.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, _) =
                    server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
                total.fetch_add(1, Ordering::Relaxed);
                if status != StatusCode::OK {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let scope_now = || async {
        let (_, body) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
        body["scope"].as_str().unwrap_or("?").to_owned()
    };
    assert_eq!(scope_now().await, "a b", "scope-template grants every allowed scope when none is asked for");

    // Replace scope-template with a policy that grants nothing unasked.
    tokio::time::sleep(Duration::from_millis(300)).await;
    install_chaos(policies.path(), "scope-template");
    let swapped_at = Instant::now();
    while !scope_now().await.is_empty() {
        assert!(swapped_at.elapsed() < Duration::from_secs(10), "the new policy never took effect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = swapped_at.elapsed();

    // A file that does not compile is refused; the previous version keeps serving.
    std::fs::write(policies.path().join("scope-template.wasm"), b"\0asm garbage").unwrap();
    std::fs::write(
        policies.path().join("broken.toml"),
        "name = \"broken\"\nkind = \"scope-policy\"\ncontract = \"portcullis:plugin@0.1.0\"\n",
    )
    .unwrap();
    std::fs::write(policies.path().join("broken.wasm"), b"not wasm").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(scope_now().await.is_empty(), "the last good version still serves");
    assert!(!server.app.host.loaded().contains_key("broken"));

    // A plugin added takes effect; removed, it is unloaded.
    install_chaos(policies.path(), "scope-extra");
    let added_at = Instant::now();
    while !server.app.host.loaded().contains_key("scope-extra") {
        assert!(added_at.elapsed() < Duration::from_secs(10), "the added plugin never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(policies.path().join("scope-extra.wasm")).unwrap();
    std::fs::remove_file(policies.path().join("scope-extra.toml")).unwrap();
    while server.app.host.loaded().contains_key("scope-extra") {
        assert!(added_at.elapsed() < Duration::from_secs(10), "the removed plugin never unloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let total = total.load(Ordering::Relaxed);
    eprintln!("hot swap: new policy live {took:?} after the file was written; {total} requests during the swaps");
    assert!(total > 20, "the load ran ({total} requests)");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no request failed during the swaps ({total} requests, swap live after {took:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_traps_loops_or_exhausts_memory_fails_only_its_request() {
    let policies = policies_copy();
    install_chaos(policies.path(), "scope-chaos");
    let server = TestServer::start_with(Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    let (id, secret) = server
        .client(json!({"name": "chaos", "grant_types": ["client_credentials"], "scopes": ["ok", "trap", "loop", "oom"], "scope_policy": "scope-chaos"}))
        .await;
    let secret = secret.unwrap();
    for bad in ["trap", "loop", "oom"] {
        let (status, body) =
            server.form("/token", &[("grant_type", "client_credentials"), ("scope", bad)], Some((&id, &secret))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{bad}: {body}");
        assert_eq!(body["error"], "server_error", "{bad}");
        let (status, body) =
            server.form("/token", &[("grant_type", "client_credentials"), ("scope", "ok")], Some((&id, &secret))).await;
        assert_eq!(status, StatusCode::OK, "the server keeps serving after `{bad}`: {body}");
        assert_eq!(body["scope"], "ok");
    }
}

#[tokio::test]
async fn a_plugin_asking_for_capabilities_or_another_contract_is_refused() {
    let policies = policies_copy();
    install_chaos(policies.path(), "scope-chaos");
    let manifest_path = policies.path().join("scope-chaos.toml");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(
        &manifest_path,
        format!("{manifest}\n[grants]\nenv = [\"HOME\"]\n").replace("[grants]\nenv = []\n", ""),
    )
    .unwrap();
    std::fs::write(
        policies.path().join("old.toml"),
        "name = \"old\"\nkind = \"scope-policy\"\ncontract = \"portcullis:plugin@9.0.0\"\n",
    )
    .unwrap();
    std::fs::copy(fixtures_dir().join("scope-chaos.wasm"), policies.path().join("old.wasm")).unwrap();
    let server = TestServer::start_with(Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    let loaded = server.app.host.loaded();
    assert!(!loaded.contains_key("scope-chaos"), "a capability grant the host cannot honour is refused");
    assert!(!loaded.contains_key("old"), "an unsupported contract version is refused");
    assert!(loaded.contains_key("scope-template"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_policy_decides_scopes_and_adds_claims() {
    let policies = policies_copy();
    install_fixture(policies.path(), "scope-js");
    let server = TestServer::start_with(Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    assert!(server.app.host.loaded().contains_key("scope-js"), "the JavaScript component loads with no WASI linked");
    let (id, secret) = server
        .client(json!({"name": "js", "grant_types": ["client_credentials"], "scopes": ["a", "b"], "scope_policy": "scope-js"}))
        .await;
    let secret = secret.unwrap();
    let (status, body) =
        server.form("/token", &[("grant_type", "client_credentials"), ("scope", "b c")], Some((&id, &secret))).await;
    assert_eq!((status, body["scope"].as_str()), (StatusCode::OK, Some("b")), "{body}");
    let payload: serde_json::Value = {
        use base64::Engine;
        let part = body["access_token"].as_str().unwrap().split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    assert_eq!(payload["policy_language"], "javascript", "the policy's claim is in the access token");
    let (status, body) =
        server.form("/token", &[("grant_type", "client_credentials"), ("scope", "z")], Some((&id, &secret))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")), "{body}");
}
