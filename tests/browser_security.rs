//! What a person's browser meets: the headers of every page.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{Browser, TestServer};

const REDIRECT: &str = "https://rp.example.com/callback";

fn authorize_url(server: &TestServer, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([("response_type", "code"), ("client_id", client_id), ("state", "s")]);
    url.query_pairs_mut().extend_pairs(extra);
    url.to_string()
}

async fn login_page(browser: &Browser, url: &str) -> String {
    let r = browser.get(url).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("name=\"password\""), "a login page: {page}");
    page
}

// --- headers --------------------------------------------------------------

/// `'sha256-…'` of each `<style>` element's text, computed here from the page.
fn style_hashes(html: &str) -> Vec<String> {
    use base64::Engine;
    use sha2::Digest;
    html.split("<style>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</style>").map(|(css, _)| css))
        .map(|css| {
            let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(css.as_bytes()));
            format!("'sha256-{hash}'")
        })
        .collect()
}

fn directives(csp: &str) -> Vec<(String, Vec<String>)> {
    csp.split(';')
        .filter_map(|d| {
            let mut words = d.split_whitespace().map(str::to_owned);
            Some((words.next()?, words.collect()))
        })
        .collect()
}

fn directive(csp: &str, name: &str) -> Option<Vec<String>> {
    directives(csp).into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// The headers every page gets; returns the page.
async fn assert_page_headers(r: reqwest::Response, form_action: &[&str]) -> String {
    let h = r.headers().clone();
    let page = r.text().await.unwrap();
    assert_eq!(h["cache-control"], "no-store", "{page}");
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    assert_eq!(directive(&csp, "default-src"), Some(vec!["'none'".to_owned()]), "{csp}");
    assert_eq!(directive(&csp, "frame-ancestors"), Some(vec!["'none'".to_owned()]), "{csp}");
    assert_eq!(directive(&csp, "base-uri"), Some(vec!["'none'".to_owned()]), "{csp}");
    let actions: Vec<String> = form_action.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(directive(&csp, "form-action"), Some(actions), "{csp}");
    // The built-in pages use one inline stylesheet: allowed by its hash, nothing else.
    let styles = style_hashes(&page);
    assert!(!styles.is_empty(), "the built-in pages have an inline stylesheet");
    assert_eq!(directive(&csp, "style-src"), Some(styles), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let allowed: Vec<String> = directives(&csp).into_iter().map(|(n, _)| n).collect();
    assert_eq!(allowed, ["default-src", "style-src", "form-action", "frame-ancestors", "base-uri"], "{csp}");
    page
}

#[tokio::test]
async fn pages_have_a_strict_content_security_policy_and_are_neither_cached_nor_framed() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT]})).await;
    let origin = url::Url::parse(&server.issuer).unwrap().origin().ascii_serialization();
    let browser = Browser::new();

    // Login and consent: forms post to the issuer, whose answer redirects to the client.
    let r = browser.get(&authorize_url(&server, &id, &[])).await;
    let login = assert_page_headers(r, &[&origin, "https://rp.example.com"]).await;
    let r = browser.submit(&login, &[("username", "bob"), ("password", "bob's password")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let consent = assert_page_headers(r, &[&origin, "https://rp.example.com"]).await;
    assert!(consent.contains("name=\"decision\""));
    // A wrong password's page too.
    let other = Browser::new();
    let page = login_page(&other, &authorize_url(&server, &id, &[])).await;
    let r = other.submit(&page, &[("username", "bob"), ("password", "wrong")]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_page_headers(r, &[&origin, "https://rp.example.com"]).await;

    // The authorization error page (never redirected) has no form at all.
    for url in [
        authorize_url(&server, "nobody", &[]),
        authorize_url(&server, &id, &[("redirect_uri", "https://evil.example.com/cb")]),
    ] {
        let r = browser.get(&url).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let page = assert_page_headers(r, &["'none'"]).await;
        assert!(page.contains("Something went wrong"), "{page}");
    }
}
