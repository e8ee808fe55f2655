//! The systems Portcullis stands in for, each as its manual tells it: set up → authorize →
//! token → use → revoke, with the `openidconnect` and `oauth2` crates as the relying party,
//! on embedded SQLite and on PostgreSQL.
//!
//! - ELMA365 (seed 001): a module's external application, client templates, clients from
//!   them, the authorization code flow at `/api/o/oauth/v2/*`, the user's connections.
//! - VMware Cloud Partner Navigator (seed 004): organizations and roles, OAuth apps created
//!   in an organization and added to it, the effective scope as a role intersection.
//! - Deployteq (seed 003): apps a user registers, client credentials and authorization
//!   code at `/oauth2/*`, `expires_in: 3600` and `token_type: "bearer"`.
//! - DATEV (seed 002): the `password` grant at `/connect/token`; `acr_values` selecting the
//!   tenant (`tenant:<id>`) at both endpoints, `idp:` accepted, `acr`/`amr` in ID tokens; the
//!   device code grant (`/connect/deviceauthorization`, the `/device` pages, polling).

mod support;

use std::sync::Arc;

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use portcullis::config::CompatibilityProfile;
use portcullis::model::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{ADMIN_TOKEN, Browser, Options, TestServer, query};

fn rp_http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("rp http")
}

/// A server on SQLite, or on a fresh PostgreSQL database (kept alive by the guard).
async fn server(
    postgres: bool,
    profile: CompatibilityProfile,
    mut options: Options,
) -> (TestServer, Option<support::DropDatabase>) {
    let guard = if postgres {
        let (url, guard) = support::fresh_postgres("seed").await;
        options.database_url = Some(url);
        Some(guard)
    } else {
        None
    };
    options.profiles = vec![profile];
    (TestServer::start_with(options).await, guard)
}

/// A resource server that may introspect every client's tokens; returns a function that
/// says whether a token is active.
async fn introspector(server: &TestServer) -> (String, String) {
    let (id, secret) = server
        .client(json!({"name": "Resource server", "grant_types": ["client_credentials"], "introspect_any": true}))
        .await;
    (id, secret.expect("secret"))
}

async fn active(server: &TestServer, rs: &(String, String), token: &str) -> bool {
    let (status, v) = server.form("/introspect", &[("token", token)], Some((&rs.0, &rs.1))).await;
    assert_eq!(status, StatusCode::OK, "introspection: {v}");
    v["active"] == true
}

// ELMA365 (001)

async fn elma365(postgres: bool) {
    let clock = Arc::new(ManualClock::default());
    let (server, _db) =
        server(postgres, CompatibilityProfile::Elma365, Options { clock: Some(clock.clone()), ..Default::default() })
            .await;
    let rs = introspector(&server).await;
    server.user_with_roles("admin", "admin password 1", &["system-administrator"]).await;
    server.user_with_roles("ivan", "ivan password 1", &[]).await;
    let admin = server.admin_token_of("admin", "admin password 1").await;
    let ivan = server.admin_token_of("ivan", "ivan password 1").await;

    // Only system administrators set up external applications. As the manual's administrator
    // does: no token settings; a module's application behaves as ELMA365's by default.
    let module_app = json!({
        "name": "Заявки", "description": "Модуль заявок", "icon": "https://elma.example.com/icon.png",
        "module": "requests",
    });
    let (status, _, v) = server.admin(Method::POST, "/admin/v1/applications", &ivan, Some(module_app.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, _, v) = server.admin(Method::POST, "/admin/v1/applications", &admin, Some(module_app.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let app_id = v["application"]["id"].as_str().unwrap().to_owned();
    assert_eq!(v["application"]["scopes"], json!(["openid", "api"]));
    assert_eq!(
        v["application"]["tokens"],
        json!({"code_ttl": 600, "access_token_ttl": 600, "refresh_token_ttl": 1209600, "refresh_tokens": "always",
               "token_type": null, "id_token_claims": ["email", "company"]}),
        "ELMA365's lifetimes, a refresh token without offline_access, email and company in the ID token"
    );
    assert!(v.get("credentials").is_none(), "a module's clients come from its templates");
    // One external application per module.
    let (status, _, _) = server.admin(Method::POST, "/admin/v1/applications", &admin, Some(module_app)).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A template fixes the access level: `openid`, `api` or both, nothing else.
    let templates = format!("/admin/v1/applications/{app_id}/templates");
    let (status, _, v) = server
        .admin(Method::POST, &templates, &admin, Some(json!({"name": "Всё", "scopes": ["openid", "email"]})))
        .await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("scopes")), "{v}");
    let (status, _, template) =
        server.admin(Method::POST, &templates, &admin, Some(json!({"name": "Всё", "scopes": ["openid", "api"]}))).await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let template_id = template["id"].as_str().unwrap();

    // A client from the template: several redirect URIs, an expiry date, id and secret once.
    let redirect = "https://service.example.com/elma/callback";
    let expires_at = portcullis::model::now() + 30 * 24 * 3600;
    let clients = format!("/admin/v1/templates/{template_id}/clients");
    let body = json!({"name": "Сервис", "redirect_uris": [redirect, "https://service.example.com/other"],
                      "expires_at": expires_at});
    let (status, _, _) = server.admin(Method::POST, &clients, &ivan, Some(body.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, headers, created) = server.admin(Method::POST, &clients, &admin, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(headers["cache-control"], "no-store");
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let (_, _, shown) = server.admin(Method::GET, &format!("/admin/v1/clients/{client_id}"), ADMIN_TOKEN, None).await;
    assert!(!shown.to_string().contains(&secret), "the secret is shown once only");

    // The third-party service: authorization code at /api/o/oauth/v2/*, secret in the body.
    server.user("olga", "olga password 1").await;
    let http = rp_http();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(server.issuer.clone()).unwrap(), &http)
        .await
        .expect("discovery");
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_auth_uri(AuthUrl::new(server.url("/api/o/oauth/v2/authorize")).unwrap())
    .set_token_uri(TokenUrl::new(server.url("/api/o/oauth/v2/token")).unwrap())
    .set_auth_type(AuthType::RequestBody)
    .set_redirect_uri(RedirectUrl::new(redirect.into()).unwrap());
    let (url, state, nonce) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("api".into()))
        .url();
    let browser = Browser::new();
    let back = browser.authorize(url.as_str(), "olga", "olga password 1").await;
    assert_eq!(query(&back, "state").as_deref(), Some(state.secret().as_str()));
    let code = query(&back, "code").expect("code");
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code.clone()))
        .request_async(&http)
        .await
        .expect("token at /api/o/oauth/v2/token");
    assert_eq!(tokens.expires_in().map(|d| d.as_secs()), Some(600), "access token: 10 minutes");
    let refresh = tokens.refresh_token().expect("a refresh token without offline_access").clone();
    let id_token = tokens.id_token().expect("an ID token with openid");
    let claims = id_token.claims(&rp.id_token_verifier(), &nonce).expect("the ID token verifies");
    let (_, raw) = server.verify_jwt(&id_token.to_string(), Some(&client_id)).await;
    let olga = claims.subject().as_str().to_owned();
    assert_eq!(raw["email"], "olga@example.com", "the user's email: {raw}");
    assert_eq!(raw["company"], "Example GmbH", "the user's company: {raw}");
    assert!(!olga.is_empty());

    // Refreshing, as the manual shows it: a new access token and a new refresh token.
    let (status, refreshed) = server
        .form(
            "/api/o/oauth/v2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.secret()),
                ("client_id", &client_id),
                ("client_secret", &secret),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    assert!(active(&server, &rs, &access).await);

    // The manual's literal URL: the parameters as a path segment after `authorize/`.
    let literal = format!(
        "{}/client_id={client_id}&redirect_uri={redirect}&scope=openid api&response_type=code&response_mode=query&state=elma",
        server.url("/api/o/oauth/v2/authorize")
    );
    let response = browser.get(&literal).await;
    assert!(response.status().is_redirection(), "a signed-in user who consented goes straight back");
    let back = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "state").as_deref(), Some("elma"));
    assert!(query(&back, "code").is_some(), "{back}");

    // The user sees the connection in the profile, and revokes it.
    let list: Value = browser.get(&server.url("/account/connections")).await.json().await.unwrap();
    let connection = list.as_array().unwrap().iter().find(|c| c["client_id"] == client_id.as_str()).expect("listed");
    assert_eq!(connection["application"]["name"], "Заявки");
    assert_eq!(connection["scopes"], json!(["openid", "api"]));
    let (status, _, _) = server.admin(Method::GET, "/account/connections", "x", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no session, no connections");
    let revoked = browser.http.delete(server.url(&format!("/account/connections/{client_id}"))).send().await.unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let (status, dead) = server
        .form(
            "/api/o/oauth/v2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &client_id),
                ("client_secret", &secret),
            ],
            None,
        )
        .await;
    assert_eq!((status, dead["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert!(!active(&server, &rs, &access).await, "the connection's access tokens are inactive");
    let page = browser.get(url.as_str()).await;
    assert_eq!(page.status(), StatusCode::OK, "the consent is forgotten: the page asks again");
    assert!(page.text().await.unwrap().contains("name=\"decision\""));

    // Editing the template changes what its clients get.
    let (status, _, _) = server
        .admin(Method::PATCH, &format!("/admin/v1/templates/{template_id}"), &admin, Some(json!({"scopes": ["api"]})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (url, _, _) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("api".into()))
        .url();
    let back = browser.authorize(url.as_str(), "olga", "olga password 1").await;
    let code = query(&back, "code").unwrap();
    let redemption = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", client_id.as_str()),
        ("client_secret", secret.as_str()),
        ("redirect_uri", redirect),
    ];
    let (status, narrowed) = server.form("/api/o/oauth/v2/token", &redemption, None).await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    assert_eq!(narrowed["scope"], "api");
    assert!(narrowed.get("id_token").is_none(), "no openid, no ID token");

    // A code works once (and presented again, revokes what it gave).
    let (status, again) = server.form("/api/o/oauth/v2/token", &redemption, None).await;
    assert_eq!((status, again["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

    // Past its expiry date, the client gets nothing.
    clock.advance(31 * 24 * 3600);
    let (status, v) = server
        .form(
            "/api/o/oauth/v2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", narrowed["refresh_token"].as_str().unwrap()),
                ("client_id", &client_id),
                ("client_secret", &secret),
            ],
            None,
        )
        .await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{v}");
}

#[tokio::test]
async fn elma365_external_application_on_sqlite() {
    elma365(false).await;
}

#[tokio::test]
async fn elma365_external_application_on_postgres() {
    elma365(true).await;
}

// VMware Cloud Partner Navigator (004)

async fn vmware(postgres: bool) {
    use oauth2::basic::BasicClient;

    let (server, _db) = server(postgres, CompatibilityProfile::Datev, Options::default()).await;
    let rs = introspector(&server).await;
    let operator = ADMIN_TOKEN;
    // A provider organization and one of its customers, with the service roles each has.
    let (status, _, provider) = server
        .admin(
            Method::POST,
            "/admin/v1/organizations",
            operator,
            Some(json!({"name": "Provider", "available_roles": ["vcd:admin", "vcd:viewer"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{provider}");
    let org = provider["id"].as_str().unwrap().to_owned();
    let (_, _, customer) = server
        .admin(
            Method::POST,
            "/admin/v1/organizations",
            operator,
            Some(json!({"name": "Customer", "parent_id": org, "available_roles": ["vcd:viewer"]})),
        )
        .await;
    let customer = customer["id"].as_str().unwrap().to_owned();

    let anna = server.user_with_roles("anna", "anna password 1", &[]).await;
    let dev = server.user_with_roles("dev", "dev password 1", &[]).await;
    let max = server.user_with_roles("max", "max password 1", &[]).await;
    let roles = |user: &str, roles: Value| {
        let path = format!("/admin/v1/organizations/{org}/members/{user}");
        let server = &server;
        async move { server.admin(Method::PUT, &path, operator, Some(json!({"roles": roles}))).await }
    };
    assert_eq!(roles(&anna, json!(["provider-administrator", "vcd:admin", "vcd:viewer"])).await.0, StatusCode::OK);
    assert_eq!(
        roles(&dev, json!(["provider-developer", "provider-service-manager", "vcd:viewer"])).await.0,
        StatusCode::OK
    );
    assert_eq!(roles(&max, json!(["member"])).await.0, StatusCode::OK);
    let (status, _, v) = roles(&max, json!(["provider-developer"])).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("roles")), "not a role of its own");
    let (status, _, _) = roles(&max, json!(["member", "nsx:admin"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a service role the organization lacks");
    let anna_token = server.admin_token_of("anna", "anna password 1").await;
    let dev_token = server.admin_token_of("dev", "dev password 1").await;
    let max_token = server.admin_token_of("max", "max password 1").await;

    // Only a provider administrator or developer creates an app, never above their roles.
    let app = json!({"name": "Billing sync", "description": "Reads usage", "organization_id": org,
                     "scopes": ["provider-service-manager", "vcd:viewer"], "tokens": {"access_token_ttl": 1800}});
    let (status, _, _) = server.admin(Method::POST, "/admin/v1/applications", &max_token, Some(app.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut too_much = app.clone();
    too_much["scopes"] = json!(["provider-service-manager", "vcd:admin", "vcd:viewer"]);
    let (status, _, v) = server.admin(Method::POST, "/admin/v1/applications", &dev_token, Some(too_much)).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("scopes")));
    assert!(v["error_description"].as_str().unwrap().contains("vcd:admin"), "names the excess role: {v}");
    let (status, headers, created) = server.admin(Method::POST, "/admin/v1/applications", &dev_token, Some(app)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment;") && disposition.contains(".json"), "{disposition}");
    let app_id = created["application"]["id"].as_str().unwrap().to_owned();
    let id = created["credentials"]["client_id"].as_str().unwrap().to_owned();
    let secret = created["credentials"]["client_secret"].as_str().unwrap().to_owned();

    let rp = BasicClient::new(oauth2::ClientId::new(id.clone()))
        .set_client_secret(oauth2::ClientSecret::new(secret.clone()))
        .set_token_uri(oauth2::TokenUrl::new(server.url("/connect/token")).unwrap());
    let http = rp_http();

    // Created, but not added: no token yet.
    let (status, v) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")), "{v}");
    // Only to the organization it was created in.
    let (status, _, _) = server
        .admin(
            Method::POST,
            &format!("/admin/v1/organizations/{customer}/instances"),
            operator,
            Some(json!({"application_id": app_id, "added_by": anna})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let instances = format!("/admin/v1/organizations/{org}/instances");
    let (status, _, instance) =
        server.admin(Method::POST, &instances, &anna_token, Some(json!({"application_id": app_id}))).await;
    assert_eq!(status, StatusCode::CREATED, "{instance}");

    // app ∩ available in the organization ∩ the adder's roles: anna lacks provider-service-manager.
    let token = rp.exchange_client_credentials().request_async(&http).await.expect("client credentials");
    let scopes: Vec<String> = token.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    assert_eq!(scopes, ["vcd:viewer"]);
    assert_eq!(token.expires_in().map(|d| d.as_secs()), Some(1800), "the app's access token lifetime");
    let first = token.access_token().secret().clone();
    assert!(active(&server, &rs, &first).await);
    assert_eq!(instance["effective_roles"], json!(["vcd:viewer"]), "the instance shows what it gets: {instance}");

    // The service roles available in the organization change: the instance follows at once,
    // and with none of its roles left it gets an RFC 6749 §5.2 error.
    let organization = format!("/admin/v1/organizations/{org}");
    let narrow = json!({"available_roles": ["vcd:admin"]});
    let (status, _, _) = server.admin(Method::PATCH, &organization, &anna_token, Some(narrow.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the provider's operator sets what is available");
    let (status, _, v) =
        server.admin(Method::PATCH, &organization, operator, Some(json!({"available_roles": ["member"]}))).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("available_roles")), "{v}");
    let (status, _, v) = server.admin(Method::PATCH, &organization, operator, Some(narrow)).await;
    assert_eq!((status, v["available_roles"].clone()), (StatusCode::OK, json!(["vcd:admin"])), "{v}");
    let (_, _, listed) = server.admin(Method::GET, &instances, &anna_token, None).await;
    assert_eq!(listed[0]["effective_roles"], json!([]), "{listed}");
    assert!(listed[0]["no_roles"].as_str().is_some_and(|why| why.contains("available")), "{listed}");
    let (status, v) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")), "{v}");
    let (status, _, _) = server
        .admin(Method::PATCH, &organization, operator, Some(json!({"available_roles": ["vcd:admin", "vcd:viewer"]})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, listed) = server.admin(Method::GET, &instances, &anna_token, None).await;
    assert_eq!(listed[0]["effective_roles"], json!(["vcd:viewer"]), "{listed}");
    let token = rp.exchange_client_credentials().request_async(&http).await.expect("client credentials");
    assert_eq!(token.scopes().unwrap()[0].as_str(), "vcd:viewer");

    // Editing the app leaves the instance as it was added.
    let (status, _, _) = server
        .admin(
            Method::PATCH,
            &format!("/admin/v1/applications/{app_id}"),
            &dev_token,
            Some(json!({"scopes": ["provider-service-manager"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = rp.exchange_client_credentials().request_async(&http).await.expect("client credentials");
    assert_eq!(token.scopes().unwrap()[0].as_str(), "vcd:viewer", "unchanged until removed and added again");

    // Listings: created in the organization, and with access to it.
    let (_, _, created_in) =
        server.admin(Method::GET, &format!("/admin/v1/organizations/{org}/applications"), &anna_token, None).await;
    assert_eq!(created_in.as_array().unwrap().len(), 1);
    let (_, _, with_access) = server.admin(Method::GET, &instances, &max_token, None).await;
    assert_eq!(with_access[0]["application_id"], app_id.as_str());
    let (status, _, _) =
        server.admin(Method::GET, &format!("/admin/v1/organizations/{customer}/instances"), &max_token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not a member there");

    // Removing the instance revokes its access at once; adding it again takes the app as it is now.
    let instance_id = instance["id"].as_str().unwrap();
    let (status, _, _) =
        server.admin(Method::DELETE, &format!("/admin/v1/instances/{instance_id}"), &max_token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a member may not");
    let (status, _, _) =
        server.admin(Method::DELETE, &format!("/admin/v1/instances/{instance_id}"), &anna_token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!active(&server, &rs, &first).await, "removed: its tokens are inactive");
    let (status, _) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) =
        server.admin(Method::POST, &instances, &dev_token, Some(json!({"application_id": app_id}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let token = rp.exchange_client_credentials().request_async(&http).await.expect("client credentials");
    assert_eq!(token.scopes().unwrap()[0].as_str(), "provider-service-manager");
    assert!(!active(&server, &rs, &first).await, "a token of the removed instance stays dead");
    let second = token.access_token().secret().clone();

    // Deleting the app invalidates its credentials at once.
    let (status, _, _) =
        server.admin(Method::DELETE, &format!("/admin/v1/applications/{app_id}"), &anna_token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, v) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    assert!(!active(&server, &rs, &second).await);
}

#[tokio::test]
async fn vmware_organization_apps_on_sqlite() {
    vmware(false).await;
}

#[tokio::test]
async fn vmware_organization_apps_on_postgres() {
    vmware(true).await;
}

// Deployteq (003)

async fn deployteq(postgres: bool) {
    use oauth2::basic::BasicClient;

    let catalogue: Vec<String> = [
        "apps.webhook:execute",
        "crm.customer:read",
        "crm.inbox.inboxes:read",
        "crm.inbox.messages:read",
        "crm.inbox.messages:update",
        "crm.inbox.messages:delete",
        "offline_access",
    ]
    .map(String::from)
    .to_vec();
    let options = Options {
        configure: Some(Box::new(move |c| c.applications.scope_catalogue = catalogue)),
        ..Default::default()
    };
    let (server, _db) = server(postgres, CompatibilityProfile::Deployteq, options).await;
    let owner = server.user_with_roles("marketeer", "marketeer password", &["application-manager"]).await;
    server.user_with_roles("colleague", "colleague password", &["application-manager"]).await;
    let token = server.admin_token_of("marketeer", "marketeer password").await;
    let colleague = server.admin_token_of("colleague", "colleague password").await;

    // Register the application: name, description, scopes from the catalogue, redirect URL.
    let redirect = "https://your-application.com/registered/callback";
    let mut app = json!({"name": "Webhook sender", "description": "Calls our webhook",
                         "scopes": ["apps.webhook:execute", "crm.everything"], "redirect_uris": [redirect],
                         "tokens": {"access_token_ttl": 3600, "token_type": "bearer"}});
    let (status, _, v) = server.admin(Method::POST, "/admin/v1/applications", &token, Some(app.clone())).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("scopes")), "{v}");
    app["scopes"] = json!(["apps.webhook:execute", "crm.customer:read", "offline_access"]);
    let (status, _, created) = server.admin(Method::POST, "/admin/v1/applications", &token, Some(app)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["application"]["created_by"], owner.as_str());
    let app_id = created["application"]["id"].as_str().unwrap().to_owned();
    let id = created["credentials"]["client_id"].as_str().unwrap().to_owned();
    let secret = created["credentials"]["client_secret"].as_str().unwrap().to_owned();

    // Client credentials with HTTP Basic, as the manual's curl.
    let (status, v) = server
        .form(
            "/oauth2/token",
            &[("grant_type", "client_credentials"), ("scope", "apps.webhook:execute")],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let keys: Vec<&str> = {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort();
        k
    };
    assert_eq!(keys, ["access_token", "expires_in", "scope", "token_type"]);
    assert_eq!(
        (v["expires_in"].as_u64(), v["scope"].as_str(), v["token_type"].as_str()),
        (Some(3600), Some("apps.webhook:execute"), Some("bearer"))
    );
    let rp = BasicClient::new(oauth2::ClientId::new(id.clone()))
        .set_client_secret(oauth2::ClientSecret::new(secret.clone()))
        .set_auth_uri(oauth2::AuthUrl::new(server.url("/oauth2/auth")).unwrap())
        .set_token_uri(oauth2::TokenUrl::new(server.url("/oauth2/token")).unwrap());
    let http = rp_http();
    let cc = rp
        .exchange_client_credentials()
        .add_scope(oauth2::Scope::new("apps.webhook:execute".into()))
        .request_async(&http)
        .await
        .expect("the oauth2 crate reads `bearer`");
    assert_eq!(cc.expires_in().map(|d| d.as_secs()), Some(3600));

    // Authorization code at /oauth2/auth, no redirect_uri (one is registered); only the
    // user who registered the application may authorize it.
    let auth = |scope: &str| {
        format!("{}?client_id={id}&response_type=code&state=Example12345&scope={scope}", server.url("/oauth2/auth"))
    };
    let back = Browser::new().authorize(&auth("apps.webhook:execute"), "colleague", "colleague password").await;
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"), "{back}");
    let browser = Browser::new();
    let back = browser.authorize(&auth("apps.webhook:execute"), "marketeer", "marketeer password").await;
    assert!(back.as_str().starts_with(redirect), "{back}");
    assert_eq!(query(&back, "state").as_deref(), Some("Example12345"));
    let code = query(&back, "code").unwrap();
    let pairs = [("grant_type", "authorization_code"), ("code", code.as_str())];
    let (status, v) = server.form("/oauth2/token", &pairs, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["expires_in"].as_u64(), v["token_type"].as_str()), (Some(3600), Some("bearer")));
    assert!(v.get("refresh_token").is_none(), "refresh tokens only with offline_access");

    // With offline_access, and with the redirect URI in the query: a refresh token too.
    let url = format!(
        "{}&redirect_uri={}",
        auth("apps.webhook:execute%20offline_access"),
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    let back = browser.authorize(&url, "marketeer", "marketeer password").await;
    let tokens = rp
        .exchange_code(oauth2::AuthorizationCode::new(query(&back, "code").unwrap()))
        .set_redirect_uri(std::borrow::Cow::Owned(oauth2::RedirectUrl::new(redirect.into()).unwrap()))
        .request_async(&http)
        .await
        .expect("code exchange");
    let refresh = tokens.refresh_token().expect("a refresh token with offline_access").clone();
    let refreshed = rp.exchange_refresh_token(&refresh).request_async(&http).await.expect("refresh");
    assert_eq!(refreshed.expires_in().map(|d| d.as_secs()), Some(3600));

    // Update and delete: the owner may, a colleague may not.
    let path = format!("/admin/v1/applications/{app_id}");
    let (status, _, _) =
        server.admin(Method::PATCH, &path, &colleague, Some(json!({"description": "taken over"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, v) = server.admin(Method::PATCH, &path, &token, Some(json!({"description": "Sends orders"}))).await;
    assert_eq!((status, v["description"].as_str()), (StatusCode::OK, Some("Sends orders")), "{v}");
    let (status, _, v) = server.admin(Method::PATCH, &path, &token, Some(json!({"scopes": ["root"]}))).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("scopes")));
    // Without a redirect URL the app has no code flow, nor its refresh; with one again, it has.
    let refresh_again = refreshed.refresh_token().unwrap().secret().to_owned();
    let (status, _, v) = server.admin(Method::PATCH, &path, &token, Some(json!({"redirect_uris": []}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let refresh_grant = [("grant_type", "refresh_token"), ("refresh_token", refresh_again.as_str())];
    let (status, v) = server.form("/oauth2/token", &refresh_grant, Some((&id, &secret))).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")), "{v}");
    let (status, _, v) = server.admin(Method::PATCH, &path, &token, Some(json!({"redirect_uris": [redirect]}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = server.form("/oauth2/token", &refresh_grant, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, _, _) = server.admin(Method::DELETE, &path, &colleague, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = server.admin(Method::DELETE, &path, &token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, v) = server.form("/oauth2/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let (status, _) = server
        .form(
            "/oauth2/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refreshed.refresh_token().unwrap().secret())],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deployteq_apps_on_sqlite() {
    deployteq(false).await;
}

#[tokio::test]
async fn deployteq_apps_on_postgres() {
    deployteq(true).await;
}

// The admin API as a resource server of its own tokens

#[tokio::test]
async fn admin_api_takes_user_tokens_with_the_admin_scope_only() {
    let server = TestServer::start().await;
    server.user_with_roles("root", "root password 1", &["system-administrator"]).await;
    server.user_with_roles("plain", "plain password 1", &[]).await;
    let root = server.admin_token_of("root", "root password 1").await;
    let plain = server.admin_token_of("plain", "plain password 1").await;
    let (status, _, v) = server.admin(Method::GET, "/admin/v1/users", &root, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, _, _) = server.admin(Method::GET, "/admin/v1/users", &plain, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a user without the role");
    // Every operation of the server itself checks its caller: none is open to a plain user.
    let (client, _) = server.client(json!({"name": "rp", "redirect_uris": ["https://rp.example/cb"]})).await;
    let administrators_only = [
        (Method::GET, "/admin/v1/clients".to_owned(), None),
        (Method::POST, "/admin/v1/clients".to_owned(), Some(json!({"name": "x"}))),
        (Method::GET, format!("/admin/v1/clients/{client}"), None),
        (Method::DELETE, format!("/admin/v1/clients/{client}"), None),
        (Method::POST, "/admin/v1/users".to_owned(), Some(json!({"username": "u", "password": "p4ssw0rd!"}))),
        (Method::GET, "/admin/v1/keys".to_owned(), None),
        (Method::POST, "/admin/v1/keys/rotate".to_owned(), None),
        (Method::POST, "/admin/v1/keys/nope/retire".to_owned(), None),
        (Method::GET, "/admin/v1/organizations".to_owned(), None),
        (Method::GET, "/admin/v1/applications/nope/templates".to_owned(), None),
    ];
    for (method, path, body) in administrators_only {
        let (status, _, v) = server.admin(method.clone(), &path, &plain, body).await;
        assert_eq!((status, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{method} {path}");
    }
    let (status, _, _) = server.admin(Method::GET, &format!("/admin/v1/clients/{client}"), &root, None).await;
    assert_eq!(status, StatusCode::OK, "the client is still there");
    let (status, headers, v) = server.admin(Method::GET, "/admin/v1/users", "not-a-token", None).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    // A token without the admin scope: insufficient_scope (RFC 6750 §3.1).
    let (id, secret) =
        server.client(json!({"name": "daemon", "grant_types": ["client_credentials"], "scopes": ["x"]})).await;
    let (_, cc) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret.unwrap()))).await;
    let (status, _, v) = server.admin(Method::GET, "/admin/v1/users", cc["access_token"].as_str().unwrap(), None).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("insufficient_scope")));
    // Bad input names the field, and nothing is written.
    let (status, _, v) = server
        .admin(
            Method::POST,
            "/admin/v1/organizations",
            &root,
            Some(json!({"name": "O", "available_roles": ["member"]})),
        )
        .await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("available_roles")));
    let (_, _, orgs) = server.admin(Method::GET, "/admin/v1/organizations", &root, None).await;
    assert_eq!(orgs, json!([]));
    for path in ["applications", "members", "instances"] {
        let (status, _, v) =
            server.admin(Method::GET, &format!("/admin/v1/organizations/nope/{path}"), &root, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "an unknown organization's {path}: {v}");
    }
    let (status, _, v) = server
        .admin(
            Method::POST,
            "/admin/v1/applications",
            &root,
            Some(json!({"name": "A", "module": "m", "tokens": {"access_token_ttl": 0}})),
        )
        .await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("tokens")), "{v}");
    let (_, _, apps) = server.admin(Method::GET, "/admin/v1/applications", &root, None).await;
    assert_eq!(apps, json!([]));
}

// DATEV (002)

/// The manual's `password` grant at `/connect/token`: off unless the client is registered for
/// it, never for a public client, throttled per client; `acr_values` reach the scope policy.
async fn datev_password_grant(postgres: bool) {
    use oauth2::basic::BasicClient;
    use oauth2::{ResourceOwnerPassword, ResourceOwnerUsername, TokenResponse as _};

    let configure: support::Configure = Box::new(|c| c.server.sign_in_attempts_per_client_per_minute = 3);
    let (server, _db) =
        server(postgres, CompatibilityProfile::Datev, Options { configure: Some(configure), ..Default::default() })
            .await;
    server.user("mario", "mario password 1").await;
    let (id, secret) = server
        .client(json!({"name": "Koinos app", "grant_types": ["password", "refresh_token"],
                       "scopes": ["openid", "email", "efat", "offline_access"]}))
        .await;
    let secret = secret.unwrap();
    let rp = BasicClient::new(oauth2::ClientId::new(id.clone()))
        .set_client_secret(oauth2::ClientSecret::new(secret.clone()))
        .set_token_uri(oauth2::TokenUrl::new(server.url("/connect/token")).unwrap());
    let http = rp_http();
    let tokens = rp
        .exchange_password(
            &ResourceOwnerUsername::new("mario".into()),
            &ResourceOwnerPassword::new("mario password 1".into()),
        )
        .add_scope(oauth2::Scope::new("openid".into()))
        .add_scope(oauth2::Scope::new("efat".into()))
        .add_scope(oauth2::Scope::new("offline_access".into()))
        .request_async(&http)
        .await
        .expect("password grant");
    let scopes: Vec<String> = tokens.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    assert_eq!(scopes, ["openid", "efat", "offline_access"]);
    let refresh = tokens.refresh_token().expect("a refresh token with offline_access");
    rp.exchange_refresh_token(refresh).request_async(&http).await.expect("refresh");
    let (_, claims) = server.verify_jwt(tokens.access_token().secret(), None).await;
    assert_eq!(claims["client_id"], id.as_str());
    assert!(claims["auth_time"].is_i64(), "the password was checked just now: {claims}");

    // With `openid` an ID token; a wrong password is `invalid_grant` (RFC 6749 §5.2).
    let grant = |password: &'static str| {
        vec![("grant_type", "password"), ("username", "mario"), ("password", password), ("scope", "openid email")]
    };
    let (status, v) = server.form("/connect/token", &grant("mario password 1"), Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, id_token) = server.verify_jwt(v["id_token"].as_str().expect("an ID token"), Some(&id)).await;
    assert_eq!(id_token["email"], "mario@example.com");
    let (status, v) = server.form("/connect/token", &grant("wrong"), Some((&id, &secret))).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{v}");
    // The client's budget per minute is spent (3 attempts): 429, before any password is checked.
    let (status, v) = server.form("/connect/token", &grant("mario password 1"), Some((&id, &secret))).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("temporarily_unavailable")), "{v}");

    // Off unless registered; never for a public client; a missing parameter is invalid_request.
    let (other, other_secret) = server.client(json!({"name": "cc", "scopes": ["efat"]})).await;
    let other_secret = other_secret.unwrap();
    let (status, v) = server.form("/connect/token", &grant("mario password 1"), Some((&other, &other_secret))).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")), "{v}");
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "spa", "public": true, "grant_types": ["password"], "redirect_uris": ["https://spa.example.com/"]}),
        )
        .await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("grant_types")), "{v}");
    let (third, third_secret) =
        server.client(json!({"name": "third", "grant_types": ["password"], "scopes": ["efat"]})).await;
    let (status, v) = server
        .form(
            "/connect/token",
            &[("grant_type", "password"), ("username", "mario")],
            Some((&third, &third_secret.unwrap())),
        )
        .await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datev_password_grant_on_sqlite() {
    datev_password_grant(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datev_password_grant_on_postgres() {
    datev_password_grant(true).await;
}

/// The manual's userinfo example: `name`, `given_name`, `family_name` with `profile`, and the
/// user's roles as a `role` array with the scope the operator names for them.
async fn datev_userinfo(postgres: bool) {
    let configure: support::Configure = Box::new(|c| c.tokens.roles_scope = Some("role".into()));
    let (server, _db) =
        server(postgres, CompatibilityProfile::Datev, Options { configure: Some(configure), ..Default::default() })
            .await;
    let (status, mario) = server
        .admin_post(
            "/admin/v1/users",
            json!({"username": "mario", "password": "mario password 1", "email": "mario@example.com",
                   "name": "Mario Rossi", "given_name": "Mario", "family_name": "Rossi", "roles": ["user", "admin"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mario}");
    assert_eq!((mario["given_name"].as_str(), mario["family_name"].as_str()), (Some("Mario"), Some("Rossi")));
    let (id, secret) = server
        .client(json!({"name": "Koinos app", "grant_types": ["password"], "scopes": ["openid", "profile", "role"]}))
        .await;
    let secret = secret.unwrap();
    let userinfo = |scope: &'static str| {
        let (server, id, secret) = (&server, &id, &secret);
        async move {
            let grant =
                [("grant_type", "password"), ("username", "mario"), ("password", "mario password 1"), ("scope", scope)];
            let (status, tokens) = server.form("/connect/token", &grant, Some((id, secret))).await;
            assert_eq!(status, StatusCode::OK, "{tokens}");
            let access = tokens["access_token"].as_str().unwrap();
            let r = server.http.get(server.url("/connect/userinfo")).bearer_auth(access).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let (_, id_token) = server.verify_jwt(tokens["id_token"].as_str().expect("an ID token"), Some(id)).await;
            (r.json::<Value>().await.unwrap(), id_token)
        }
    };
    let (claims, id_token) = userinfo("openid profile role").await;
    assert_eq!(claims["sub"], mario["id"]);
    assert_eq!(claims["name"], "Mario Rossi");
    assert_eq!(claims["given_name"], "Mario");
    assert_eq!(claims["family_name"], "Rossi");
    assert_eq!(claims["role"], json!(["user", "admin"]), "{claims}");
    assert_eq!((id_token["given_name"].as_str(), id_token["role"].clone()), (Some("Mario"), json!(["user", "admin"])));
    let (claims, _) = userinfo("openid profile").await;
    assert_eq!(claims["family_name"], "Rossi");
    assert!(claims.get("role").is_none(), "the roles only with their scope: {claims}");
    let (claims, _) = userinfo("openid").await;
    assert!(claims.get("given_name").is_none(), "the names only with profile: {claims}");

    let metadata: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    for name in ["given_name", "family_name", "role"] {
        assert!(metadata["claims_supported"].as_array().unwrap().iter().any(|c| c == name), "{name} supported");
    }
    assert!(metadata["scopes_supported"].as_array().unwrap().iter().any(|s| s == "role"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datev_userinfo_on_sqlite() {
    datev_userinfo(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datev_userinfo_on_postgres() {
    datev_userinfo(true).await;
}

/// DATEV's `acr_values`: `tenant:<id>` selects the area the user works in, at the authorization
/// and token endpoints alike, refused where the user has no access, in every token and kept on
/// refresh; `idp:<name>` is accepted and does nothing (the manual: not active).
async fn datev_tenants(postgres: bool) {
    let (server, _db) = server(postgres, CompatibilityProfile::Datev, Options::default()).await;
    let (status, _, studio) =
        server.admin(Method::POST, "/admin/v1/organizations", ADMIN_TOKEN, Some(json!({"name": "Studio Rossi"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{studio}");
    let studio = studio["id"].as_str().unwrap().to_owned();
    let (_, _, other) =
        server.admin(Method::POST, "/admin/v1/organizations", ADMIN_TOKEN, Some(json!({"name": "Other"}))).await;
    let other = other["id"].as_str().unwrap().to_owned();
    let mario = server.user("mario", "mario password 1").await;
    let (status, _, v) = server
        .admin(
            Method::PUT,
            &format!("/admin/v1/organizations/{studio}/members/{mario}"),
            ADMIN_TOKEN,
            Some(json!({"roles": ["accountant"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let redirect = "https://myapp.example.com/callback";
    let (id, secret) = server
        .client(json!({"name": "Koinos", "redirect_uris": [redirect],
                       "grant_types": ["authorization_code", "refresh_token", "password"],
                       "scopes": ["openid", "email", "efat", "offline_access"]}))
        .await;
    let secret = secret.unwrap();

    // The authorization endpoint, as the manual's example asks, with a tenant and an idp.
    let selected = format!("tenant:{studio} idp:google");
    let mut url = url::Url::parse(&server.url("/connect/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("client_id", id.as_str()),
        ("scope", "openid email efat offline_access"),
        ("response_type", "code"),
        ("redirect_uri", redirect),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        ("code_challenge_method", "S256"),
        ("state", "abc"),
        ("nonce", "xyz"),
        ("acr_values", selected.as_str()),
    ]);
    let browser = Browser::new();
    let back = browser.authorize(url.as_str(), "mario", "mario password 1").await;
    let code = query(&back, "code").unwrap_or_else(|| panic!("a code: {back}"));
    let (status, tokens) = server
        .form(
            "/connect/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            ],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (_, at) = server.verify_jwt(tokens["access_token"].as_str().unwrap(), None).await;
    assert_eq!(at["tenant"], studio.as_str(), "the tenant is in the access token");
    let (_, it) = server.verify_jwt(tokens["id_token"].as_str().unwrap(), Some(&id)).await;
    assert_eq!((it["tenant"].as_str(), it["nonce"].as_str()), (Some(studio.as_str()), Some("xyz")));
    assert_eq!((it["acr"].as_str(), it["amr"].clone()), (Some("1"), json!(["pwd"])));
    let (status, refreshed) = server
        .form(
            "/connect/token",
            &[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (_, at) = server.verify_jwt(refreshed["access_token"].as_str().unwrap(), None).await;
    assert_eq!(at["tenant"], studio.as_str(), "kept on refresh");

    // A tenant the user has no access to: refused at both endpoints.
    let mut refused = url::Url::parse(&server.url("/connect/authorize")).unwrap();
    let other_tenant = format!("tenant:{other}");
    refused.query_pairs_mut().extend_pairs(url.query_pairs().map(|(k, v)| {
        let v = if k == "acr_values" { other_tenant.clone().into() } else { v };
        (k, v)
    }));
    let back = browser.authorize(refused.as_str(), "mario", "mario password 1").await;
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"), "{back}");
    async fn password_grant(server: &TestServer, client: (&str, &str), acr: &str) -> (StatusCode, Value) {
        let pairs = [
            ("grant_type", "password"),
            ("username", "mario"),
            ("password", "mario password 1"),
            ("scope", "openid efat"),
            ("acr_values", acr),
        ];
        server.form("/connect/token", &pairs, Some(client)).await
    }
    let client = (id.as_str(), secret.as_str());
    let (status, v) = password_grant(&server, client, &other_tenant).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{v}");
    let (status, v) = password_grant(&server, client, &format!("tenant:{studio} {other_tenant}")).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{v}");
    let (status, v) = password_grant(&server, client, &format!("tenant:{studio}")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, it) = server.verify_jwt(v["id_token"].as_str().unwrap(), Some(&id)).await;
    assert_eq!(it["tenant"], studio.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datev_tenants_on_sqlite() {
    datev_tenants(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datev_tenants_on_postgres() {
    datev_tenants(true).await;
}

/// DATEV's `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628): the device asks at
/// `/connect/deviceauthorization`, a person signs in at the verification URI, enters the code
/// and allows (or denies); the device polls `/connect/token` meanwhile.
async fn datev_device_code(postgres: bool) {
    let clock = Arc::new(ManualClock::default());
    let (server, _db) =
        server(postgres, CompatibilityProfile::Datev, Options { clock: Some(clock.clone()), ..Default::default() })
            .await;
    server.user("gina", "gina password 1").await;
    let device_grant = "urn:ietf:params:oauth:grant-type:device_code";
    let (tv, _) = server
        .client(json!({"name": "Koinos TV", "public": true, "grant_types": [device_grant, "refresh_token"],
                       "scopes": ["openid", "email", "efat", "offline_access"]}))
        .await;
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["device_authorization_endpoint"], server.url("/device_authorization"));
    let ask = |scope: &'static str| {
        let server = &server;
        let tv = tv.clone();
        async move {
            let (status, v) = server
                .form("/connect/deviceauthorization", &[("client_id", tv.as_str()), ("scope", scope)], None)
                .await;
            assert_eq!(status, StatusCode::OK, "{v}");
            v
        }
    };
    let poll = |device_code: String| {
        let server = &server;
        let tv = tv.clone();
        async move {
            let pairs =
                [("grant_type", device_grant), ("device_code", device_code.as_str()), ("client_id", tv.as_str())];
            server.form("/connect/token", &pairs, None).await
        }
    };
    let started = ask("openid email efat offline_access").await;
    let user_code = started["user_code"].as_str().unwrap().to_owned();
    let device_code = started["device_code"].as_str().unwrap().to_owned();
    assert_eq!(user_code.len(), 9, "XXXX-XXXX: {user_code}");
    assert_eq!(started["interval"], 5);
    assert_eq!(started["verification_uri"], server.url("/device"));

    // Polling before the person decides: pending, then slow_down when too fast.
    let (status, v) = poll(device_code.clone()).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("authorization_pending")), "{v}");
    let (_, v) = poll(device_code.clone()).await;
    assert_eq!(v["error"], "slow_down", "{v}");

    // The person: the complete URI, sign in, the code filled in, the application's request, allow.
    let browser = Browser::new();
    let page = browser.get(started["verification_uri_complete"].as_str().unwrap()).await.text().await.unwrap();
    assert!(page.contains("name=\"password\""), "sign in first: {page}");
    let r = browser.submit(&page, &[("username", "gina"), ("password", "gina password 1")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let next = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(next.contains("/device?user_code="), "{next}");
    let page = browser.get(&next).await.text().await.unwrap();
    assert!(page.contains(&user_code), "the code is filled in: {page}");
    let consent = browser.submit(&page, &[("user_code", user_code.as_str())]).await.text().await.unwrap();
    assert!(consent.contains("Koinos TV") && consent.contains("name=\"decision\""), "{consent}");
    let done = browser.submit(&consent, &[("decision", "allow")]).await.text().await.unwrap();
    assert!(done.contains("role=\"status\""), "{done}");

    // The device's next poll, at its slower interval, gets the tokens, once.
    clock.advance(11);
    let (status, tokens) = poll(device_code.clone()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "openid email efat offline_access");
    assert!(tokens["refresh_token"].is_string());
    let (_, id_token) = server.verify_jwt(tokens["id_token"].as_str().unwrap(), Some(&tv)).await;
    assert_eq!(id_token["email"], "gina@example.com");
    clock.advance(11);
    let (_, v) = poll(device_code).await;
    assert_eq!(v["error"], "invalid_grant", "used once: {v}");

    // Denied: access_denied. A wrong code: the page says so. Too late: expired_token.
    let denied = ask("efat").await;
    let page = browser.get(&server.url("/device")).await.text().await.unwrap();
    let r = browser.submit(&page, &[("user_code", "BBBB-BBBB")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let code = denied["user_code"].as_str().unwrap().to_lowercase().replace('-', "");
    let consent = browser.submit(&page, &[("user_code", code.as_str())]).await.text().await.unwrap();
    browser.submit(&consent, &[("decision", "deny")]).await;
    clock.advance(6);
    let (status, v) = poll(denied["device_code"].as_str().unwrap().to_owned()).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("access_denied")), "{v}");
    let late = ask("efat").await;
    clock.advance(601);
    let (_, v) = poll(late["device_code"].as_str().unwrap().to_owned()).await;
    assert_eq!(v["error"], "expired_token", "{v}");

    // A client not registered for the grant may not ask; a forged form is refused.
    let (other, other_secret) = server.client(json!({"name": "web", "scopes": ["efat"]})).await;
    let (status, v) =
        server.form("/connect/deviceauthorization", &[("scope", "efat")], Some((&other, &other_secret.unwrap()))).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")), "{v}");
    let r = browser.http.post(server.url("/device")).form(&[("user_code", "BBBB-BBBB")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datev_device_code_on_sqlite() {
    datev_device_code(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datev_device_code_on_postgres() {
    datev_device_code(true).await;
}
