//! Shadow mode: a scope policy whose manifest says `shadow-of` runs beside the live one on
//! real requests, never changes an answer, and counts every difference.

use reqwest::StatusCode;
use serde_json::json;

use crate::metrics::{scrape, value};
use crate::support::{self, Options, TestServer};

/// Copies `file` (a plugin in `from`) into `to` as `name`, shadowing `live`.
fn shadow_copy(from: &std::path::Path, file: &str, to: &std::path::Path, name: &str, live: &str) {
    std::fs::copy(from.join(format!("{file}.wasm")), to.join(format!("{name}.wasm"))).expect("copy the wasm");
    let manifest = std::fs::read_to_string(from.join(format!("{file}.toml"))).expect("manifest");
    let mut lines: Vec<String> = manifest
        .lines()
        .map(|l| if l.starts_with("name = ") { format!("name = \"{name}\"") } else { l.to_owned() })
        .collect();
    // A top-level key: before the first table.
    let first_table = lines.iter().position(|l| l.starts_with('[')).unwrap_or(lines.len());
    lines.insert(first_table, format!("shadow-of = \"{live}\""));
    std::fs::write(to.join(format!("{name}.toml")), lines.join("\n") + "\n").expect("write the manifest");
}

/// A JWT's claims.
fn payload(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).expect("a JWS");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url"))
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_policy_never_changes_an_answer_and_counts_each_difference() {
    let policies = support::policies_copy();
    // One shadow that answers as the live policy does (a copy of it), one that adds a claim
    // and traps on the scope `trap` (the test policy scope-chaos).
    shadow_copy(&support::policies_dir(), "scope-template", policies.path(), "shadow-same", "scope-template");
    shadow_copy(&support::fixtures_dir(), "scope-chaos", policies.path(), "shadow-chaos", "scope-template");
    let server =
        TestServer::start_with(Options { metrics: true, policies: Some(policies.path().into()), ..Default::default() })
            .await;
    let (client, secret) = server
        .client(json!({"name": "shadowed", "grant_types": ["client_credentials"], "scopes": ["ok", "trap"]}))
        .await;
    let secret = secret.expect("a confidential client");
    for scope in ["ok", "trap"] {
        let (status, token) = server
            .form("/token", &[("grant_type", "client_credentials"), ("scope", scope)], Some((&client, &secret)))
            .await;
        assert_eq!(status, StatusCode::OK, "{token}");
        assert_eq!(token["scope"], scope, "the live policy's answer: {token}");
        let claims = payload(token["access_token"].as_str().expect("an access token"));
        assert!(claims.get("policy").is_none(), "no claim of the shadow's: {claims}");
    }
    let text = scrape(&server).await;
    // The chaos shadow differed twice (a claim of its own, then its trap); the copy never.
    assert_eq!(
        value(&text, "portcullis_policy_shadow_diffs_total", &[("plugin", "shadow-chaos")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(value(&text, "portcullis_policy_shadow_diffs_total", &[("plugin", "shadow-same")]), None, "{text}");

    // A simulation of the live policy is not traffic: it asks no shadow, so the count stays.
    for scope in ["ok", "trap"] {
        let (status, simulation) = server
            .admin_post(
                "/admin/v1/policies/simulate",
                json!({"client_id": client, "scopes": [scope], "grant_type": "client_credentials"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{simulation}");
        assert_eq!(simulation["granted"], true, "{simulation}");
    }
    let text = scrape(&server).await;
    assert_eq!(
        value(&text, "portcullis_policy_shadow_diffs_total", &[("plugin", "shadow-chaos")]),
        Some(2.0),
        "{text}"
    );
}

#[test]
fn a_shadow_of_itself_or_of_another_kind_is_refused() {
    let manifest = |extra: &str, kind: &str| {
        format!(
            "name = \"s\"\nkind = \"{kind}\"\ncontract = \"portcullis:plugin@0.4.0\"\n{extra}\n[limits]\nmemory-mb = 16\ndeadline-ms = 50\n"
        )
    };
    let parse = |text: String| portcullis::plugin::Manifest::parse(&text, "s");
    assert!(parse(manifest("shadow-of = \"scope-template\"", "scope-policy")).is_ok());
    let itself = parse(manifest("shadow-of = \"s\"", "scope-policy")).unwrap_err();
    assert!(itself.contains("another scope policy"), "{itself}");
    let consent = parse(manifest("shadow-of = \"consent-default\"", "consent-ui")).unwrap_err();
    assert!(consent.contains("cannot shadow"), "{consent}");
}
