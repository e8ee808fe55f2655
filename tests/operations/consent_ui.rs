//! Which consent UI renders a client's pages: the client's own, else its application's, else
//! its organization's, else the server's default; set through the admin API, a name that is
//! no loaded consent UI refused by field, and each change audited.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::audit::events;
use crate::lifecycle::patch;
use crate::support::{ADMIN_TOKEN, Browser, TestServer};

const REDIRECT: &str = "https://wallet.example.com/callback";
const PASSWORD: &str = "anna password 1";
/// What only `consent-compact` puts in its pages.
const COMPACT: &str = "<body class=\"compact\">";

async fn post(server: &TestServer, path: &str, body: Value) -> Value {
    let (status, v) = server.admin_post(path, body).await;
    assert!(status.is_success(), "POST {path}: {status} {v}");
    v
}

/// An organization whose administrator Anna created an application, added it, and whose
/// client was given the authorization code flow: (organization, application, client).
async fn organization_with_a_wallet(server: &TestServer) -> (String, String, String) {
    let org = post(server, "/admin/v1/organizations", json!({"name": "Wallets"})).await;
    let org = org["id"].as_str().unwrap().to_owned();
    let anna = server.user("anna", PASSWORD).await;
    let path = format!("/admin/v1/organizations/{org}/members/{anna}");
    let (status, _, v) =
        server.admin(Method::PUT, &path, ADMIN_TOKEN, Some(json!({"roles": ["provider-administrator"]}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let app = post(
        server,
        "/admin/v1/applications",
        json!({"name": "Wallet", "organization_id": org, "scopes": ["provider-administrator"], "created_by": anna}),
    )
    .await;
    let app_id = app["application"]["id"].as_str().unwrap().to_owned();
    let client_id = app["credentials"]["client_id"].as_str().unwrap().to_owned();
    post(
        server,
        &format!("/admin/v1/organizations/{org}/instances"),
        json!({"application_id": app_id, "added_by": anna}),
    )
    .await;
    let (status, v) = patch(
        server,
        &format!("/admin/v1/clients/{client_id}"),
        json!({"redirect_uris": [REDIRECT], "grant_types": ["client_credentials", "authorization_code"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    (org, app_id, client_id)
}

/// The consent page the client's authorization request shows `browser` (signed in first
/// where it is not yet).
async fn consent_page(server: &TestServer, browser: &Browser, client_id: &str) -> String {
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "provider-administrator"),
        ("state", "s"),
    ]);
    let r = browser.get(url.as_str()).await;
    assert_eq!(r.status(), StatusCode::OK, "a page");
    let mut html = r.text().await.unwrap();
    if html.contains("name=\"password\"") {
        let r = browser.submit(&html, &[("username", "anna"), ("password", PASSWORD)]).await;
        assert_eq!(r.status(), StatusCode::OK, "the consent page after signing in");
        html = r.text().await.unwrap();
    }
    assert!(html.contains("name=\"decision\" value=\"allow\""), "a consent page: {html}");
    html
}

#[tokio::test]
async fn the_client_then_its_application_then_its_organization_choose_the_consent_ui() {
    let server = TestServer::start().await;
    let (org, app, client) = organization_with_a_wallet(&server).await;
    let browser = Browser::new();
    let (org_path, app_path) = (format!("/admin/v1/organizations/{org}"), format!("/admin/v1/applications/{app}"));
    let client_path = format!("/admin/v1/clients/{client}");
    assert!(!consent_page(&server, &browser, &client).await.contains(COMPACT), "nothing named: the default");

    // The organization's choice reaches its application's client.
    let (status, v) = patch(&server, &org_path, json!({"consent_ui": "consent-compact"})).await;
    assert_eq!((status, v["consent_ui"].as_str()), (StatusCode::OK, Some("consent-compact")), "{v}");
    let page = consent_page(&server, &browser, &client).await;
    assert!(page.contains(COMPACT) && page.contains("provider-administrator"), "{page}");

    // The application's overrides it; the client's overrides both.
    let (status, v) = patch(&server, &app_path, json!({"consent_ui": "consent-default"})).await;
    assert_eq!((status, v["consent_ui"].as_str()), (StatusCode::OK, Some("consent-default")), "{v}");
    assert!(!consent_page(&server, &browser, &client).await.contains(COMPACT), "the application's");
    let (status, v) = patch(&server, &client_path, json!({"consent_ui": "consent-compact"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(consent_page(&server, &browser, &client).await.contains(COMPACT), "the client's");

    // Cleared level by level (`null`), the next one decides again.
    assert_eq!(patch(&server, &client_path, json!({"consent_ui": null})).await.0, StatusCode::OK);
    assert!(!consent_page(&server, &browser, &client).await.contains(COMPACT), "the application's again");
    let (status, v) = patch(&server, &app_path, json!({"consent_ui": null})).await;
    assert_eq!((status, &v["consent_ui"]), (StatusCode::OK, &Value::Null), "{v}");
    assert!(consent_page(&server, &browser, &client).await.contains(COMPACT), "the organization's again");

    // Each change is audited with what it set.
    let set =
        |page: Value| page["events"].as_array().unwrap().iter().map(|e| e["detail"]["consent_ui"].clone()).collect();
    let organization: Vec<Value> =
        set(events(&server, &format!("subject=organization:{org}&type=organization.updated")).await);
    assert_eq!(organization, [json!("consent-compact")]);
    let application: Vec<Value> =
        set(events(&server, &format!("subject=application:{app}&type=application.updated")).await);
    assert_eq!(application, [json!("consent-default"), Value::Null]);
}

#[tokio::test]
async fn a_consent_ui_that_is_not_loaded_is_refused_by_field() {
    let server = TestServer::start().await;
    let (org, app, _) = organization_with_a_wallet(&server).await;
    for path in [format!("/admin/v1/organizations/{org}"), format!("/admin/v1/applications/{app}")] {
        // Unknown, and loaded but of another kind.
        for name in ["consent-compcat", "scope-template"] {
            let (status, v) = patch(&server, &path, json!({"consent_ui": name})).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {name}: {v}");
            assert_eq!(
                (v["error"].as_str(), v["field"].as_str()),
                (Some("invalid_request"), Some("consent_ui")),
                "{v}"
            );
            let said = v["error_description"].as_str().unwrap_or_default();
            assert!(said.contains(&format!("no consent-ui plugin named `{name}` is loaded")), "{v}");
        }
        let (_, _, now) = server.admin(Method::GET, &path, ADMIN_TOKEN, None).await;
        assert_eq!(now["consent_ui"], Value::Null, "nothing was written: {now}");
    }
}
