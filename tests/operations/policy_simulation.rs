//! `POST /admin/v1/policies/simulate`: what a scope policy would grant a stored client and
//! user, through the host's rules and the real plugins, with nothing issued, stored or
//! audited.

use portcullis::model::{Consent, Grant};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{self, ADMIN_TOKEN, Options, TestServer};

const SIMULATE: &str = "/admin/v1/policies/simulate";

/// A policies directory with the built-in plugins and the test policy `scope-chaos`.
fn policies_with_chaos() -> tempfile::TempDir {
    let policies = support::policies_copy();
    for ext in ["toml", "wasm"] {
        let file = format!("scope-chaos.{ext}");
        std::fs::copy(support::fixtures_dir().join(&file), policies.path().join(&file)).expect("scope-chaos fixture");
    }
    policies
}

/// Every audit event but the admin requests' own, as (type, subject).
async fn changes(server: &TestServer) -> Vec<(String, String)> {
    let (status, _, page) = server.admin(Method::GET, "/admin/v1/events?limit=1000", ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| !e["type"].as_str().unwrap_or_default().starts_with("admin."))
        .map(|e| (e["type"].as_str().unwrap().to_owned(), e["subject"].as_str().unwrap().to_owned()))
        .collect()
}

async fn simulate(server: &TestServer, body: Value) -> (StatusCode, Value) {
    server.admin_post(SIMULATE, body).await
}

/// A VMware-style setup: an organization with the service role `vcd:admin` on, a client of
/// it whose scopes are roles and whose policy is `scope-role-intersection`, and a user who
/// holds `member` everywhere and `vcd:admin` as a member of the organization.
async fn roles_setup(server: &TestServer) -> (String, String) {
    let (status, org) = server
        .admin_post("/admin/v1/organizations", json!({"name": "Provider", "available_roles": ["vcd:admin"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    let org = org["id"].as_str().unwrap().to_owned();
    let user = server.user_with_roles("ada", "correct horse battery", &["member"]).await;
    let (status, _, m) = server
        .admin(
            Method::PUT,
            &format!("/admin/v1/organizations/{org}/members/{user}"),
            ADMIN_TOKEN,
            Some(json!({"roles": ["vcd:admin"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{m}");
    let (client, _) = server
        .client(json!({"name": "Navigator", "redirect_uris": ["https://app.example.com/cb"],
                       "grant_types": ["authorization_code", "refresh_token", "password"],
                       "scopes": ["member", "vcd:admin", "provider-administrator"],
                       "scope_policy": "scope-role-intersection", "organization_id": org}))
        .await;
    (client, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulation_grants_what_the_policy_would_on_stored_records_and_stores_nothing() {
    let policies = policies_with_chaos();
    let server = TestServer::start_with(Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    let (client, user) = roles_setup(&server).await;
    let before = changes(&server).await;

    // The client's own policy: its roles ∩ those available ∩ those the user holds (here and
    // in the organization).
    let (status, s) = simulate(&server, json!({"client_id": client, "user": "ada"})).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["plugin"], "scope-role-intersection");
    assert_eq!(s["client_plugin"], "scope-role-intersection");
    assert_eq!(s["granted"], true);
    assert_eq!(s["scopes"], json!(["member", "vcd:admin"]), "{s}");
    assert_eq!(s["claims"], json!([]));
    assert_eq!(s["user_id"], user.as_str());
    assert_eq!(s["user_roles"], json!(["member", "vcd:admin"]), "everywhere and in the organization: {s}");
    assert_eq!(s["grant_type"], "authorization_code");
    assert!(s.get("denied").is_none());
    assert!(s.get("requested_scopes").is_none(), "no scope parameter");

    // A `scope` narrows it; a scope outside the client's is named as the host's.
    let (status, s) =
        simulate(&server, json!({"client_id": client, "user": user, "scopes": ["vcd:admin", "billing"]})).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["scopes"], json!(["vcd:admin"]));
    assert_eq!(s["requested_scopes"], json!(["vcd:admin", "billing"]));
    assert_eq!(s["removed_by_host"]["requested_not_allowed"], json!(["billing"]));

    // The policy refusing: what a real request would get, and why.
    let (status, s) = simulate(&server, json!({"client_id": client, "user": "ada", "scopes": ["billing"]})).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["granted"], false);
    assert_eq!(s["scopes"], json!([]));
    assert_eq!(s["denied"]["error"], "invalid_scope", "{s}");
    assert!(s["denied"]["error_description"].as_str().unwrap().contains("billing"), "{s}");

    // The host refusing before any policy: a grant type the client is not registered for.
    let (status, s) = simulate(
        &server,
        json!({"client_id": client, "user": "ada", "grant_type": "urn:ietf:params:oauth:grant-type:device_code"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["denied"]["error"], "unauthorized_client", "{s}");

    // Another loaded policy in the client's policy's place, on the same records: scope-chaos
    // grants what is asked and allowed, adds its claim, and oversteps on `widen`; the host
    // removes what it overstepped with.
    let (status, s) = simulate(
        &server,
        json!({"client_id": client, "user": "ada", "scopes": ["member", "widen"], "plugin": "scope-chaos"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["plugin"], "scope-chaos");
    assert_eq!(s["client_plugin"], "scope-role-intersection");
    assert_eq!(s["scopes"], json!(["member"]));
    assert_eq!(
        s["claims"],
        json!([{"name": "policy", "value": "chaos", "access_token": true, "id_token": true, "userinfo": true}])
    );
    assert_eq!(s["removed_by_host"]["requested_not_allowed"], json!(["widen"]));
    assert_eq!(s["removed_by_host"]["policy_scopes"], json!(["admin"]));
    assert_eq!(s["removed_by_host"]["policy_claims"], json!(["sub", "iss"]));

    // The client still has its own policy, and nothing was issued, stored or audited.
    let (_, _, c) = server.admin(Method::GET, &format!("/admin/v1/clients/{client}"), ADMIN_TOKEN, None).await;
    assert_eq!(c["scope_policy"], "scope-role-intersection", "{c}");
    let storage = &server.app.storage;
    assert!(storage.find::<Grant>("user", &user).await.unwrap().is_empty(), "no grant");
    assert!(storage.find::<Consent>("user", &user).await.unwrap().is_empty(), "no consent");
    assert_eq!(changes(&server).await, before, "a simulation is no change: no event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulation_refuses_what_it_cannot_try_by_name() {
    let policies = policies_with_chaos();
    let server = TestServer::start_with(Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    let (client, user) = roles_setup(&server).await;

    let (status, e) = simulate(&server, json!({"client_id": "nope", "user": "ada"})).await;
    assert_eq!((status, e["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{e}");
    let (status, e) = simulate(&server, json!({"client_id": client, "user": "nobody"})).await;
    assert_eq!((status, e["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{e}");
    assert!(e["error_description"].as_str().unwrap().contains("nobody"), "{e}");

    for (plugin, says) in [("scope-missing", "no scope policy"), ("consent-default", "consent-ui")] {
        let (status, e) = simulate(&server, json!({"client_id": client, "user": "ada", "plugin": plugin})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        assert_eq!(e["field"], "plugin", "{e}");
        assert!(e["error_description"].as_str().unwrap().contains(says), "{e}");
    }
    for grant_type in ["refresh_token", "magic"] {
        let (status, e) =
            simulate(&server, json!({"client_id": client, "user": "ada", "grant_type": grant_type})).await;
        assert_eq!((status, e["field"].as_str()), (StatusCode::BAD_REQUEST, Some("grant_type")), "{e}");
    }
    let (status, e) = simulate(&server, json!({"client_id": client})).await;
    assert_eq!((status, e["field"].as_str()), (StatusCode::BAD_REQUEST, Some("user")), "{e}");
    let (status, e) = simulate(&server, json!({"client_id": client, "user": "ada", "scopes": ["a b"]})).await;
    assert_eq!((status, e["field"].as_str()), (StatusCode::BAD_REQUEST, Some("scopes")), "{e}");
    let (status, e) = simulate(&server, json!({"client_id": client, "user": "ada", "extra": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");

    // A disabled user: said so.
    let (status, _, _) = server
        .admin(Method::PATCH, &format!("/admin/v1/users/{user}"), ADMIN_TOKEN, Some(json!({"disabled": true})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = simulate(&server, json!({"client_id": client, "user": "ada"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(e["error_description"].as_str().unwrap().contains("disabled"), "{e}");

    // A user whose admin-scoped token does not make them an administrator.
    server.user("bob", "correct horse battery").await;
    let token = server.admin_token_of("bob", "correct horse battery").await;
    let body = json!({"client_id": client, "user": "bob"});
    let (status, _, e) = server.admin(Method::POST, SIMULATE, &token, Some(body)).await;
    assert_eq!((status, e["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_policy_is_the_denial_a_real_request_gets() {
    let policies = policies_with_chaos();
    let server = TestServer::start_with(Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    let (client, secret) = server
        .client(json!({"name": "chaos", "grant_types": ["client_credentials"], "scopes": ["ok", "trap"],
                       "scope_policy": "scope-chaos"}))
        .await;
    let (real_status, real) = server
        .form("/token", &[("grant_type", "client_credentials"), ("scope", "trap")], Some((&client, &secret.unwrap())))
        .await;
    // A policy that faults grants nothing: the real request is refused as a denial would be,
    // and the simulation shows that denial.
    assert_eq!((real_status, real["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")), "{real}");
    let (status, e) =
        simulate(&server, json!({"client_id": client, "grant_type": "client_credentials", "scopes": ["trap"]})).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["granted"], false, "{e}");
    assert_eq!(e["denied"]["error"], real["error"], "{e} / {real}");
    assert!(e["denied"]["error_description"].as_str().unwrap().contains("failed"), "{e}");

    // The client's own grant, granted.
    let (status, s) =
        simulate(&server, json!({"client_id": client, "grant_type": "client_credentials", "scopes": ["ok"]})).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["scopes"], json!(["ok"]));
    assert!(s.get("user_id").is_none());
}

/// The host's rules come before the policy: an owner-only application (Deployteq) lets in
/// only the user who registered it, refused as the endpoint would refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_rules_refuse_before_the_policy_as_the_endpoint_would() {
    let catalogue = vec!["apps.webhook:execute".to_owned(), "crm.customer:read".to_owned()];
    let options = Options {
        configure: Some(Box::new(move |c| c.applications.scope_catalogue = catalogue)),
        ..Default::default()
    };
    let server = TestServer::start_with(options).await;
    server.user_with_roles("marketeer", "marketeer password", &["application-manager"]).await;
    server.user_with_roles("colleague", "colleague password", &["application-manager"]).await;
    let token = server.admin_token_of("marketeer", "marketeer password").await;
    let app = json!({"name": "Webhook sender", "scopes": ["apps.webhook:execute", "crm.customer:read"],
                     "redirect_uris": ["https://your-application.com/callback"]});
    let (status, _, created) = server.admin(Method::POST, "/admin/v1/applications", &token, Some(app)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let client = created["credentials"]["client_id"].as_str().unwrap().to_owned();

    let (status, s) = simulate(&server, json!({"client_id": client, "user": "colleague"})).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["denied"]["error"], "access_denied", "on the authorization page: {s}");
    assert!(s["denied"]["error_description"].as_str().unwrap().contains("registered this application"), "{s}");
    let (status, s) =
        simulate(&server, json!({"client_id": client, "user": "marketeer", "scopes": ["apps.webhook:execute"]})).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!((s["granted"].as_bool(), &s["scopes"]), (Some(true), &json!(["apps.webhook:execute"])), "{s}");
}
