//! Audit events: what the admin API, the CLI, people and clients do is recorded with its
//! actor, subject, request id and replica, listed through `GET /admin/v1/events` and
//! `portcullis events`, filtered, paged, and purged after its retention.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{self, ADMIN_TOKEN, Browser, Options, TestServer, query};

const REDIRECT: &str = "https://rp.example.com/callback";

fn named(replica: &'static str) -> Options {
    Options { configure: Some(Box::new(move |c| c.server.replica_id = Some(replica.into()))), ..Default::default() }
}

/// `GET /admin/v1/events` with `query`: the page.
pub(crate) async fn events(server: &TestServer, query: &str) -> Value {
    let (status, _, page) = server.admin(Method::GET, &format!("/admin/v1/events?{query}"), ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    page
}

/// The events of a page of type `kind`.
fn of_type<'a>(page: &'a Value, kind: &str) -> Vec<&'a Value> {
    page["events"].as_array().expect("events").iter().filter(|e| e["type"] == kind).collect()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn client_changes_through_the_admin_api_are_events_with_actor_subject_request_and_replica() {
    let server = TestServer::start_with(named("replica-a")).await;

    let body = json!({"name": "rp", "redirect_uris": [REDIRECT]});
    let (status, headers, created) = server.admin(Method::POST, "/admin/v1/clients", ADMIN_TOKEN, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let request_id = headers["x-request-id"].to_str().unwrap().to_owned();
    let id = created["client_id"].as_str().unwrap().to_owned();

    let page = events(&server, &format!("subject=client:{id}")).await;
    let made = of_type(&page, "client.created");
    assert_eq!(made.len(), 1, "{page}");
    let e = made[0];
    assert_eq!(e["actor"], "operator");
    assert_eq!(e["subject"], format!("client:{id}"));
    assert_eq!(e["request_id"], request_id.as_str(), "the response's x-request-id");
    assert_eq!(e["replica"], "replica-a");
    assert_eq!(e["client_address"], "127.0.0.1");
    assert_eq!(e["detail"]["name"], "rp");
    assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "RFC 3339: {e}");

    // A user's own application: changing its redirect URIs changes its client.
    let alice = server.user_with_roles("alice", "alice's password", &["application-manager"]).await;
    let body = json!({"name": "own", "created_by": alice, "scopes": ["openid"], "redirect_uris": [REDIRECT]});
    let (status, _, app) = server.admin(Method::POST, "/admin/v1/applications", ADMIN_TOKEN, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app_id = app["application"]["id"].as_str().unwrap().to_owned();
    let app_client = app["credentials"]["client_id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/applications/{app_id}");
    let change = json!({"redirect_uris": ["https://rp.example.com/other"]});
    let (status, headers, v) = server.admin(Method::PATCH, &path, ADMIN_TOKEN, Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let page = events(&server, &format!("subject=client:{app_client}&type=client.updated")).await;
    let updated = of_type(&page, "client.updated");
    assert_eq!(updated.len(), 1, "{page}");
    assert_eq!(updated[0]["request_id"], headers["x-request-id"].to_str().unwrap());
    assert_eq!(
        of_type(&events(&server, &format!("subject=application:{app_id}")).await, "application.updated").len(),
        1
    );

    let (status, headers, _) =
        server.admin(Method::DELETE, &format!("/admin/v1/clients/{id}"), ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let page = events(&server, &format!("subject=client:{id}")).await;
    let deleted = of_type(&page, "client.deleted");
    assert_eq!(deleted.len(), 1, "{page}");
    assert_eq!(deleted[0]["actor"], "operator");
    assert_eq!(deleted[0]["request_id"], headers["x-request-id"].to_str().unwrap());

    // Every admin request is an event of the token's use, with its route.
    let page = events(&server, "type=admin.token_used&limit=1000").await;
    let routes: Vec<&str> = page["events"].as_array().unwrap().iter().filter_map(|e| e["subject"].as_str()).collect();
    assert!(routes.contains(&"route:DELETE /admin/v1/clients/{id}"), "{routes:?}");
    assert!(routes.contains(&"route:POST /admin/v1/clients"), "{routes:?}");
}

#[tokio::test]
async fn changing_clients_and_users_are_events() {
    let server = TestServer::start().await;
    let body = json!({"name": "rp", "redirect_uris": [REDIRECT]});
    let (status, _, created) = server.admin(Method::POST, "/admin/v1/clients", ADMIN_TOKEN, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["client_id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/clients/{id}");
    let (status, _, v) = server.admin(Method::PATCH, &path, ADMIN_TOKEN, Some(json!({"name": "renamed"}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let secret = format!("{path}/secret");
    let (status, _, v) = server.admin(Method::POST, &secret, ADMIN_TOKEN, Some(json!({"grace_seconds": 60}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let page = events(&server, &format!("subject=client:{id}")).await;
    assert_eq!(of_type(&page, "client.updated")[0]["detail"]["name"], "renamed", "{page}");
    assert_eq!(of_type(&page, "client.secret_rotated")[0]["detail"]["grace_seconds"], 60, "{page}");

    let user = server.user("erin", "erin's password").await;
    let path = format!("/admin/v1/users/{user}");
    for change in [json!({"name": "Erin"}), json!({"disabled": true}), json!({"disabled": false})] {
        let (status, _, v) = server.admin(Method::PATCH, &path, ADMIN_TOKEN, Some(change)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let password = format!("{path}/password");
    let (status, _, v) =
        server.admin(Method::POST, &password, ADMIN_TOKEN, Some(json!({"password": "a new password"}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, _, _) = server.admin(Method::DELETE, &path, ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let page = events(&server, &format!("subject=user:{user}")).await;
    let types: Vec<&str> = page["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["user.created", "user.updated", "user.disabled", "user.enabled", "user.password_set", "user.deleted"],
        "{page}"
    );
}

#[tokio::test]
async fn dynamic_registrations_and_initial_access_tokens_are_events() {
    let configure: support::Configure = Box::new(|c| c.registration.enabled = true);
    let server = TestServer::start_with(Options { configure: Some(configure), ..Default::default() }).await;
    let (status, _, issued) =
        server.admin(Method::POST, "/admin/v1/registration/tokens", ADMIN_TOKEN, Some(json!({"uses": 1}))).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let token = issued["token"].as_str().unwrap();
    let answer = server
        .http
        .post(server.url("/register"))
        .bearer_auth(token)
        .json(&json!({"client_name": "self-made", "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    let answer: Value = answer.json().await.unwrap();
    let id = answer["client_id"].as_str().unwrap();
    let page = events(&server, &format!("subject=client:{id}")).await;
    let made = of_type(&page, "client.created");
    assert_eq!(made.len(), 1, "{page}");
    assert_eq!(made[0]["actor"], format!("client:{id}"));
    assert_eq!(made[0]["detail"]["registration"], true);
    assert_eq!(made[0]["detail"]["initial_access_token"], true);
    let uri = answer["registration_client_uri"].as_str().unwrap();
    let access = answer["registration_access_token"].as_str().unwrap();
    let gone = server.http.delete(uri).bearer_auth(access).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let page = events(&server, &format!("subject=client:{id}&type=client.deleted")).await;
    assert_eq!(of_type(&page, "client.deleted")[0]["actor"], format!("client:{id}"), "{page}");
    let issued_events = events(&server, "type=initial_access_token.issued").await;
    assert_eq!(of_type(&issued_events, "initial_access_token.issued")[0]["actor"], "operator", "{issued_events}");
}

#[tokio::test]
async fn an_admin_scoped_user_is_the_actor_of_what_they_do() {
    let server = TestServer::start().await;
    let admin_id = server.user_with_roles("root", "root's password", &["system-administrator"]).await;
    let token = server.admin_token_of("root", "root's password").await;
    let body = json!({"name": "by root", "redirect_uris": [REDIRECT]});
    let (status, _, created) = server.admin(Method::POST, "/admin/v1/clients", &token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["client_id"].as_str().unwrap();
    let page = events(&server, &format!("subject=client:{id}")).await;
    assert_eq!(of_type(&page, "client.created")[0]["actor"], format!("user:{admin_id}"));
    let page = events(&server, &format!("type=admin.scope_used&actor=user:{admin_id}")).await;
    assert!(!page["events"].as_array().unwrap().is_empty(), "{page}");

    // A user without the administrator role reads no events.
    server.user_with_roles("plain", "plain's password", &[]).await;
    let token = server.admin_token_of("plain", "plain's password").await;
    let (status, _, _) = server.admin(Method::GET, "/admin/v1/events", &token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// An authorization code request of the client `id` for `openid`, back to [`REDIRECT`].
fn openid_authorization(server: &TestServer, id: &str) -> url::Url {
    server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", id),
        ("scope", "openid"),
        ("redirect_uri", REDIRECT),
    ])
}

#[tokio::test]
async fn consent_given_is_an_event_of_the_user() {
    let server = TestServer::start().await;
    let alice = server.user("alice", "alice's password").await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "scopes": ["openid"]})).await;
    let browser = Browser::new();
    let url = openid_authorization(&server, &id);
    let back = browser.authorize(url.as_str(), "alice", "alice's password").await;
    assert!(query(&back, "code").is_some(), "{back}");

    let page = events(&server, &format!("actor=user:{alice}")).await;
    let given = of_type(&page, "consent.given");
    assert_eq!(given.len(), 1, "{page}");
    assert_eq!(given[0]["subject"], format!("client:{id}"));
    assert_eq!(given[0]["detail"]["scopes"], json!(["openid"]));
    assert!(given[0]["request_id"].is_string());
}

#[tokio::test]
async fn a_revoked_connection_is_an_event_of_its_user() {
    let server = TestServer::start().await;
    let alice = server.user("alice", "alice's password").await;
    let (id, secret) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "scopes": ["openid"]})).await;
    let browser = Browser::new();
    let url = openid_authorization(&server, &id);
    let back = browser.authorize(url.as_str(), "alice", "alice's password").await;
    let code = query(&back, "code").expect("code");
    let (status, tokens) = server.redeem((&id, secret.as_deref().unwrap()), &code, REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    let r = browser.http.delete(server.url(&format!("/account/connections/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let page = events(&server, &format!("actor=user:{alice}&subject=client:{id}")).await;
    let revoked = of_type(&page, "connection.revoked");
    assert_eq!(revoked.len(), 1, "{page}");
    assert_eq!(revoked[0]["request_id"], request_id.as_str());
    assert_eq!(of_type(&page, "consent.revoked").len(), 1, "{page}");
    assert_eq!(of_type(&page, "consent.given").len(), 1, "{page}");
}

#[tokio::test]
async fn refresh_token_reuse_is_an_event_of_the_client() {
    let server = TestServer::start().await;
    let (id, secret) = server
        .client(json!({"name": "rp", "redirect_uris": [REDIRECT], "scopes": ["openid"], "skip_consent": true,
                       "always_issue_refresh_token": true}))
        .await;
    let secret = secret.unwrap();
    server.user("bob", "bob's password").await;
    let url = openid_authorization(&server, &id);
    let back = Browser::new().authorize(url.as_str(), "bob", "bob's password").await;
    let (status, tokens) = server.redeem((&id, &secret), &query(&back, "code").unwrap(), REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let pairs = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (status, _) = server.form("/token", &pairs, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(of_type(&events(&server, "type=refresh_token.reused").await, "refresh_token.reused").is_empty());

    let (status, v) = server.form("/token", &pairs, Some((&id, &secret))).await;
    assert_eq!(v["error"], "invalid_grant", "{status} {v}");
    let page = events(&server, "type=refresh_token.reused").await;
    let reused = of_type(&page, "refresh_token.reused");
    assert_eq!(reused.len(), 1, "{page}");
    assert_eq!(reused[0]["actor"], format!("client:{id}"));
    assert!(reused[0]["subject"].as_str().unwrap().starts_with("grant:"));
}

#[tokio::test]
async fn a_throttled_password_grant_is_one_event() {
    let configure: support::Configure = Box::new(|c| c.server.sign_in_attempts_per_client_per_minute = 2);
    let server = TestServer::start_with(Options { configure: Some(configure), ..Default::default() }).await;
    server.user("mario", "mario password 1").await;
    let (id, secret) = server.client(json!({"name": "app", "grant_types": ["password"], "scopes": ["openid"]})).await;
    let secret = secret.unwrap();
    let pairs = [("grant_type", "password"), ("username", "mario"), ("password", "wrong password")];
    let mut throttled = 0;
    for _ in 0..5 {
        let (status, _) = server.form("/token", &pairs, Some((&id, &secret))).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            throttled += 1;
        }
    }
    assert!(throttled >= 2, "the client's attempts were throttled");
    let page = events(&server, "type=sign_in.throttled").await;
    let told = of_type(&page, "sign_in.throttled");
    assert_eq!(told.len(), 1, "once a minute, however many attempts: {page}");
    assert_eq!(told[0]["subject"], format!("client:{id}"));
    assert_eq!(told[0]["actor"], format!("client:{id}"));
    assert_eq!(told[0]["detail"]["reason"], "client");
}

#[tokio::test]
async fn user_codes_typed_too_often_are_an_event_of_the_user() {
    let configure: support::Configure = Box::new(|c| c.server.sign_in_attempts_per_interaction = 2);
    let server = TestServer::start_with(Options { configure: Some(configure), ..Default::default() }).await;
    let gina = server.user("gina", "gina password 1").await;
    let browser = Browser::new();
    let page = browser.get(&server.url("/device")).await.text().await.unwrap();
    let r = browser.submit(&page, &[("username", "gina"), ("password", "gina password 1")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let next = r.headers()["location"].to_str().unwrap().to_owned();
    let page = browser.get(&next).await.text().await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(browser.submit(&page, &[("user_code", "BBBB-BBBB")]).await.status());
    }
    assert_eq!(statuses, [StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST, StatusCode::TOO_MANY_REQUESTS]);
    let page = events(&server, "type=sign_in.throttled").await;
    let told = of_type(&page, "sign_in.throttled");
    assert_eq!(told.len(), 1, "{page}");
    assert_eq!(told[0]["subject"], format!("user:{gina}"));
    assert_eq!(told[0]["actor"], format!("user:{gina}"));
    assert_eq!(told[0]["detail"]["reason"], "device-code");
}

#[tokio::test]
async fn filters_and_paging_select_events() {
    let clock = Arc::new(portcullis::model::ManualClock::default());
    let server = TestServer::start_with(Options { clock: Some(clock.clone()), ..Default::default() }).await;
    let (first, _) = server.client(json!({"name": "first", "grant_types": ["client_credentials"]})).await;
    clock.advance(3600);
    let (second, _) = server.client(json!({"name": "second", "grant_types": ["client_credentials"]})).await;
    let bob = server.user("bob", "bob's password").await;

    let created = |page: &Value| -> Vec<String> {
        of_type(page, "client.created").iter().map(|e| e["subject"].as_str().unwrap().to_owned()).collect()
    };
    let all = events(&server, "type=client.created").await;
    assert_eq!(created(&all), [format!("client:{first}"), format!("client:{second}")], "oldest first");
    assert!(all["events"].as_array().unwrap().iter().all(|e| e["type"] == "client.created"));

    // subject
    let page = events(&server, &format!("subject=client:{second}")).await;
    assert_eq!(created(&page), [format!("client:{second}")]);
    // actor
    let page = events(&server, "actor=operator&type=user.created").await;
    assert_eq!(page["events"][0]["subject"], format!("user:{bob}"));
    assert!(events(&server, "actor=system&type=user.created").await["events"].as_array().unwrap().is_empty());
    // since and until
    let now = time::OffsetDateTime::from_unix_timestamp(portcullis::model::Clock::now(&*clock)).unwrap();
    let rfc = |t: time::OffsetDateTime| enc(&t.format(&time::format_description::well_known::Rfc3339).unwrap());
    let half_hour_ago = rfc(now - time::Duration::minutes(30));
    let page = events(&server, &format!("type=client.created&since={half_hour_ago}")).await;
    assert_eq!(created(&page), [format!("client:{second}")]);
    let page = events(&server, &format!("type=client.created&until={half_hour_ago}")).await;
    assert_eq!(created(&page), [format!("client:{first}")]);

    // Paging: one at a time, following the cursor, gives what one page gives.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!("type=client.created&limit=1&cursor={}", enc(c)),
            None => "type=client.created&limit=1".to_owned(),
        };
        let page = events(&server, &q).await;
        assert!(page["events"].as_array().unwrap().len() <= 1);
        paged.extend(created(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, created(&all));

    // Bad filters are the admin API's 400.
    for bad in ["since=yesterday", "until=2024-13-01T00:00:00Z", "limit=0", "limit=100000", "cursor=%00", "color=red"] {
        let (status, _, v) = server.admin(Method::GET, &format!("/admin/v1/events?{bad}"), ADMIN_TOKEN, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
}

#[tokio::test]
async fn retention_purges_old_events() {
    let clock = Arc::new(portcullis::model::ManualClock::default());
    let configure: support::Configure = Box::new(|c| c.events.retention_days = 10);
    let server = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        configure: Some(configure),
        ..Default::default()
    })
    .await;
    let (old, _) = server.client(json!({"name": "old", "grant_types": ["client_credentials"]})).await;
    clock.advance(9 * 24 * 3600);
    let (new, _) = server.client(json!({"name": "new", "grant_types": ["client_credentials"]})).await;
    clock.advance(2 * 24 * 3600);
    // What the upkeep does every ten minutes.
    server.app.storage.purge_expired(portcullis::model::Clock::now(&*clock)).await.unwrap();
    let page = events(&server, "type=client.created").await;
    let subjects: Vec<&str> = page["events"].as_array().unwrap().iter().filter_map(|e| e["subject"].as_str()).collect();
    assert_eq!(subjects, [format!("client:{new}")], "the event of {old} is past its ten days");
}

#[tokio::test]
async fn the_cli_lists_the_servers_events_and_its_own() {
    let server = TestServer::start_with(named("server-replica")).await;
    let (id, _) = server.client(json!({"name": "rp", "grant_types": ["client_credentials"]})).await;
    let config = server.data.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = {:?}\nreplica_id = \"cli\"\n[policies]\ndir = {:?}\nwatch = false\n",
            server.data.path(),
            support::policies_dir()
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        // Only the configuration file: the test's own `PORTCULLIS_*` variables are no settings.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("the CLI runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let lines: Vec<Value> =
        cli(&["events", "--type", "client.created"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["subject"], format!("client:{id}"));
    assert_eq!(lines[0]["replica"], "server-replica");

    // What the CLI does is an event too: the operator's, on its own replica, with no request.
    cli(&["org", "add", "--name", "Acme"]);
    let lines: Vec<Value> = cli(&["events", "--type", "organization.created", "--actor", "operator"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["replica"], "cli");
    assert_eq!(lines[0]["request_id"], Value::Null);
    // And the server lists it.
    let page = events(&server, "type=organization.created").await;
    assert_eq!(page["events"][0]["replica"], "cli");
    let limited = cli(&["events", "--limit", "1"]);
    assert_eq!(limited.lines().count(), 1);
}

// Sign-in limits shared by replicas through Redis

const REDIS: &str = "redis://127.0.0.1:6379";

/// Three replicas on one SQLite file, counting sign-in attempts through `redis` (if any)
/// under a prefix of this test's own, with `limit` setting their limits.
async fn three_replicas(
    redis: Option<&str>,
    limit: fn(&mut portcullis::config::Config),
) -> (Vec<TestServer>, tempfile::TempDir) {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/shared.db", shared.path().display());
    let key = portcullis::crypto::Sealer::generate_key();
    let prefix = format!("portcullis-test-{}", portcullis::crypto::random_token(8));
    let mut replicas: Vec<TestServer> = Vec::new();
    for _ in 0..3 {
        let (redis, prefix) = (redis.map(str::to_owned), prefix.clone());
        let configure: support::Configure = Box::new(move |c| {
            c.limits.redis_url = redis;
            c.limits.redis_prefix = prefix;
            c.server.sign_in_attempts_per_address_per_minute = 0;
            c.server.sign_in_attempts_per_client_per_minute = 0;
            c.server.sign_in_attempts_per_minute = 0;
            c.server.sign_in_max_delay_ms = 1;
            limit(c);
        });
        let issuer = replicas.first().map(|r| r.issuer.clone());
        let server = TestServer::start_with(Options {
            database_url: Some(url.clone()),
            encryption_key: Some(key.clone()),
            issuer,
            configure: Some(configure),
            ..Default::default()
        })
        .await;
        replicas.push(server);
    }
    if redis.is_some() {
        for r in &replicas {
            // Each connects to Redis in the background as it starts.
            for _ in 0..200 {
                if r.app.protocol.sign_in_limit.state() == portcullis::oauth::sign_in_shared::SharedState::Shared {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            assert_eq!(r.app.protocol.sign_in_limit.state().to_string(), "shared");
        }
    }
    (replicas, shared)
}

/// Six wrong passwords for `mario`, spread over the three replicas in turn: each answer's status.
async fn six_attempts_spread(replicas: &[TestServer]) -> Vec<StatusCode> {
    replicas[0].user("mario", "mario password 1").await;
    let (id, secret) =
        replicas[0].client(json!({"name": "app", "grant_types": ["password"], "scopes": ["openid"]})).await;
    let secret = secret.unwrap();
    let pairs = [("grant_type", "password"), ("username", "mario"), ("password", "not the password")];
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (status, _) = replicas[i % 3].form("/token", &pairs, Some((&id, &secret))).await;
        statuses.push(status);
    }
    statuses
}

fn per_address(c: &mut portcullis::config::Config) {
    c.server.sign_in_attempts_per_address_per_minute = 3;
}

fn per_username(c: &mut portcullis::config::Config) {
    c.server.sign_in_attempts_per_minute = 3;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_limit_holds_across_replicas_sharing_redis() {
    let (replicas, _db) = three_replicas(Some(REDIS), per_address).await;
    let statuses = six_attempts_spread(&replicas).await;
    assert!(statuses[..3].iter().all(|s| *s == StatusCode::BAD_REQUEST), "three attempts are the budget: {statuses:?}");
    // (Counted in one-minute windows: one that turns during the test resets the count once.)
    assert!(
        statuses[3..].contains(&StatusCode::TOO_MANY_REQUESTS),
        "the budget is spent, whichever replica: {statuses:?}"
    );
    let page = events(&replicas[1], "type=sign_in.throttled").await;
    assert!(page["events"].as_array().unwrap().iter().any(|e| e["detail"]["reason"] == "address"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_replica_has_its_own_address_budget() {
    let (replicas, _db) = three_replicas(None, per_address).await;
    assert_eq!(replicas[0].app.protocol.sign_in_limit.state().to_string(), "local");
    let statuses = six_attempts_spread(&replicas).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::BAD_REQUEST), "two attempts each: {statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_username_delay_holds_across_replicas_sharing_redis() {
    let (replicas, _db) = three_replicas(Some(REDIS), per_username).await;
    let statuses = six_attempts_spread(&replicas).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::BAD_REQUEST), "delayed, never refused: {statuses:?}");
    let page = events(&replicas[0], "type=sign_in.throttled&subject=username:mario").await;
    assert!(!page["events"].as_array().unwrap().is_empty(), "mario's attempts were delayed: {page}");

    let (replicas, _db) = three_replicas(None, per_username).await;
    six_attempts_spread(&replicas).await;
    let page = events(&replicas[0], "type=sign_in.throttled&subject=username:mario").await;
    assert!(page["events"].as_array().unwrap().is_empty(), "two attempts each, within each budget: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_redis_is_unreachable_signs_users_in_and_says_so() {
    let configure: support::Configure = Box::new(|c| {
        c.limits.redis_url = Some("redis://127.0.0.1:1".into());
        c.server.sign_in_attempts_per_address_per_minute = 2;
    });
    let server = TestServer::start_with(Options { configure: Some(configure), ..Default::default() }).await;
    server.user("mario", "mario password 1").await;
    let (id, secret) = server.client(json!({"name": "app", "grant_types": ["password"], "scopes": ["openid"]})).await;
    let secret = secret.unwrap();
    let pairs = [("grant_type", "password"), ("username", "mario"), ("password", "mario password 1")];
    let (status, v) = server.form("/token", &pairs, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let state = server.app.protocol.sign_in_limit.state().to_string();
    assert!(state.starts_with("fallback("), "{state}");
    // Readiness holds, and names what is not as configured.
    let ready = server.http.get(server.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    let part = ready["parts"].as_array().unwrap().iter().find(|p| p["name"] == "throttles").cloned();
    let part = part.unwrap_or_else(|| panic!("{ready}"));
    assert_eq!(part["state"], "degraded", "{ready}");
    assert!(part["detail"].as_str().unwrap().contains("this replica counts on its own"), "{ready}");
    // Its own counters still hold.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(server.form("/token", &pairs, Some((&id, &secret))).await.0);
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
}
