//! `/account/password` over HTTP: a signed-in person changes their own password. The form's
//! CSRF token, the sign-in it asks for first, the throttle its wrong passwords count against,
//! the other sessions it ends, the grants it keeps, and its audit event.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{self, ADMIN_TOKEN, Browser, Form, Options, TestServer};

const REDIRECT: &str = "https://rp.example.com/callback";
const PASSWORD: &str = "erin's first password";
const NEW_PASSWORD: &str = "erin's second password";

/// Signs `username` in through the account login page: the session cookie is the browser's.
async fn sign_in(server: &TestServer, browser: &Browser, username: &str, password: &str) -> reqwest::Response {
    let page = html_get(server, browser, "/account/connections").await;
    assert!(page.contains("name=\"password\""), "the login page: {page}");
    browser.submit(&page, &[("username", username), ("password", password)]).await
}

async fn html_get(server: &TestServer, browser: &Browser, path: &str) -> String {
    let r = browser.http.get(server.url(path)).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "GET {path}");
    r.text().await.unwrap()
}

/// The password page's form, sent with `current`, `new` and `repeat`: the status and page.
async fn change(browser: &Browser, page: &str, current: &str, new: &str, repeat: &str) -> (StatusCode, String) {
    let r = browser
        .submit(page, &[("current-password", current), ("new-password", new), ("repeat-password", repeat)])
        .await;
    let status = r.status();
    (status, r.text().await.unwrap())
}

async fn password_page(server: &TestServer, browser: &Browser) -> String {
    let page = html_get(server, browser, "/account/password").await;
    assert!(page.contains("name=\"new-password\""), "the password page: {page}");
    page
}

#[tokio::test]
async fn without_a_session_the_login_page_leads_to_the_password_page() {
    let server = TestServer::start().await;
    server.user("erin", PASSWORD).await;
    let browser = Browser::new();
    let page = html_get(&server, &browser, "/account/password?ui_locales=de").await;
    assert!(page.contains("name=\"username\"") && page.contains("name=\"password\""), "{page}");
    assert!(!page.contains("new-password"), "no password form without a session");
    let r = browser.submit(&page, &[("username", "erin"), ("password", PASSWORD)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], server.url("/account/password?ui_locales=de").as_str());
    let page = password_page(&server, &browser).await;
    assert!(page.contains("<strong>erin Example</strong>"), "{page}");
    // The connections page links to it.
    let connections = html_get(&server, &browser, "/account/connections").await;
    assert!(connections.contains(&format!("href=\"{}\"", server.url("/account/password"))), "{connections}");
    // A form posted without a session is the login page again, never a change.
    let r = Browser::new()
        .http
        .post(server.url("/account/password"))
        .form(&[
            ("csrf", "x"),
            ("current-password", PASSWORD),
            ("new-password", NEW_PASSWORD),
            ("repeat-password", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("name=\"username\""));
}

#[tokio::test]
async fn a_form_without_its_csrf_token_changes_nothing() {
    let server = TestServer::start().await;
    server.user("erin", PASSWORD).await;
    let browser = Browser::new();
    sign_in(&server, &browser, "erin", PASSWORD).await;
    let page = password_page(&server, &browser).await;
    let csrf = Form::parse(&page).unwrap().hidden.into_iter().find(|(k, _)| k == "csrf").unwrap().1;
    let fields = [("current-password", PASSWORD), ("new-password", NEW_PASSWORD), ("repeat-password", NEW_PASSWORD)];
    // Missing, wrong, and another session's token.
    let other = Browser::new();
    sign_in(&server, &other, "erin", PASSWORD).await;
    let other_page = password_page(&server, &other).await;
    let other_csrf = Form::parse(&other_page).unwrap().hidden.into_iter().find(|(k, _)| k == "csrf").unwrap().1;
    assert_ne!(csrf, other_csrf, "each session's token is its own");
    for token in [None, Some("wrong"), Some(other_csrf.as_str())] {
        let mut pairs: Vec<(&str, &str)> = fields.to_vec();
        if let Some(token) = token {
            pairs.push(("csrf", token));
        }
        let r = browser.http.post(server.url("/account/password")).form(&pairs).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{token:?}");
        assert!(r.text().await.unwrap().contains("access_denied"), "an error page");
    }
    // A body that is no form, or too large, is refused as such.
    let r = browser
        .http
        .post(server.url("/account/password"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("current-password=%ZZ&&=")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let big = "x".repeat(portcullis::limits::OAUTH_BODY_BYTES + 1);
    let r = browser.http.post(server.url("/account/password")).form(&[("csrf", big.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The password is what it was.
    let r = sign_in(&server, &Browser::new(), "erin", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the old password still signs in");
}

#[tokio::test]
async fn refusals_show_the_page_again_with_their_reason() {
    // The test consent UI, which names the reason by its code, as the default one.
    let policies = support::policies_copy();
    for ext in ["wasm", "toml"] {
        let name = format!("consent-locales.{ext}");
        std::fs::copy(support::fixtures_dir().join(&name), policies.path().join(&name)).unwrap();
    }
    let server = TestServer::start_with(Options {
        policies: Some(policies.path().into()),
        configure: Some(Box::new(|c| c.policies.consent = "consent-locales".into())),
        ..Default::default()
    })
    .await;
    server.user("erin", PASSWORD).await;
    let browser = Browser::new();
    sign_in(&server, &browser, "erin", PASSWORD).await;
    let page = password_page(&server, &browser).await;
    assert!(page.contains("content=\"consent-locales\""), "the configured consent UI renders it: {page}");
    let cases = [
        (PASSWORD, NEW_PASSWORD, "another password", StatusCode::BAD_REQUEST, "mismatch".to_owned()),
        (
            PASSWORD,
            "short",
            "short",
            StatusCode::BAD_REQUEST,
            format!("too-short-{}", portcullis::limits::MIN_PASSWORD_CHARS),
        ),
        ("not my password", NEW_PASSWORD, NEW_PASSWORD, StatusCode::UNAUTHORIZED, "wrong-current-password".to_owned()),
    ];
    for (current, new, repeat, status, code) in cases {
        let (s, html) = change(&browser, &page, current, new, repeat).await;
        assert_eq!(s, status, "{code}: {html}");
        assert!(html.contains(&format!("<p class=\"error\">{code}</p>")), "{code}: {html}");
        assert!(html.contains("name=\"new-password\""), "the form again");
    }
    let long = "x".repeat(portcullis::limits::MAX_PASSWORD_BYTES + 1);
    let (s, html) = change(&browser, &page, PASSWORD, &long, &long).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(html.contains(&format!("too-long-{}", portcullis::limits::MAX_PASSWORD_BYTES)), "{html}");
    let r = sign_in(&server, &Browser::new(), "erin", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "nothing changed");
}

#[tokio::test]
async fn wrong_current_passwords_count_against_the_sign_in_throttle() {
    let server = TestServer::start_with(Options {
        configure: Some(Box::new(|c| c.server.sign_in_attempts_per_address_per_minute = 4)),
        ..Default::default()
    })
    .await;
    server.user("erin", PASSWORD).await;
    let browser = Browser::new();
    sign_in(&server, &browser, "erin", PASSWORD).await; // one attempt
    let page = password_page(&server, &browser).await;
    for n in 0..3 {
        let (status, _) = change(&browser, &page, &format!("guess {n}"), NEW_PASSWORD, NEW_PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {n}");
    }
    // Past the address's budget, even the right password is not looked at.
    let (status, html) = change(&browser, &page, PASSWORD, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{html}");
    assert!(html.contains("Too many attempts"), "{html}");
    // So is the login page from the same address.
    let r = sign_in(&server, &Browser::new(), "erin", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let (status, _, page) =
        server.admin(Method::GET, "/admin/v1/events?type=sign_in.throttled", ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page["events"].as_array().unwrap().is_empty(), "{page}");
    // The password is unchanged, once the address may try again (another address here).
    let elsewhere = Browser::from_address("127.0.0.2".parse().unwrap());
    let r = sign_in(&server, &elsewhere, "erin", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_change_ends_the_other_sessions_keeps_this_one_and_the_grants_and_is_an_event() {
    let server = TestServer::start().await;
    let erin = server.user("erin", PASSWORD).await;
    // A connected application, through another browser's session.
    let (id, secret) =
        server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "scopes": ["openid", "offline_access"]})).await;
    let secret = secret.unwrap();
    let other = Browser::new();
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", id.as_str()),
        ("scope", "openid offline_access"),
        ("redirect_uri", REDIRECT),
    ]);
    let back = other.authorize(url.as_str(), "erin", PASSWORD).await;
    let code = support::query(&back, "code").expect("code");
    let (status, tokens) = server.redeem((&id, &secret), &code, REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().expect("a refresh token").to_owned();
    assert!(html_get(&server, &other, "/account/connections").await.contains("data-client-id"));

    let browser = Browser::new();
    sign_in(&server, &browser, "erin", PASSWORD).await;
    let page = password_page(&server, &browser).await;
    let (status, html) = change(&browser, &page, PASSWORD, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"password-changed\""), "{html}");
    assert!(!html.contains("name=\"new-password\""), "no form once changed");

    // This browser stays signed in; the other one is signed out.
    assert!(html_get(&server, &browser, "/account/connections").await.contains(&format!("data-client-id=\"{id}\"")));
    let signed_out = html_get(&server, &other, "/account/connections").await;
    assert!(signed_out.contains("name=\"username\"") && !signed_out.contains("data-client-id"), "{signed_out}");
    // The grant stays: its refresh token still works.
    let (status, body) = server
        .form("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())], Some((&id, &secret)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The old password no longer signs in; the new one does.
    let r = sign_in(&server, &Browser::new(), "erin", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = sign_in(&server, &Browser::new(), "erin", NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The event, its actor the user.
    let (status, _, events) =
        server.admin(Method::GET, "/admin/v1/events?type=user.password_changed", ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor"], format!("user:{erin}"));
    assert_eq!(events[0]["subject"], format!("user:{erin}"));
}

#[tokio::test]
async fn a_disabled_user_cannot_change_their_password() {
    let server = TestServer::start().await;
    let erin = server.user("erin", PASSWORD).await;
    let browser = Browser::new();
    sign_in(&server, &browser, "erin", PASSWORD).await;
    let page = password_page(&server, &browser).await;
    let (status, _, body) = server
        .admin(Method::PATCH, &format!("/admin/v1/users/{erin}"), ADMIN_TOKEN, Some(json!({"disabled": true})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, html) = change(&browser, &page, PASSWORD, NEW_PASSWORD, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "the session ended with the disable: the login page");
    assert!(html.contains("name=\"username\"") && !html.contains("password-changed"), "{html}");
    let (status, _, body) = server
        .admin(Method::PATCH, &format!("/admin/v1/users/{erin}"), ADMIN_TOKEN, Some(json!({"disabled": false})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = sign_in(&server, &Browser::new(), "erin", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the password did not change");
}
