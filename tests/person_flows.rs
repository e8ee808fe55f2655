//! What a person goes through, over HTTP: the locale they chose kept through every step of a
//! flow (login, consent, device, connections, sign-out), the username they typed kept after a
//! failed sign-in, cancelling a sign-in (the client gets `access_denied`), a consent listed
//! among their connections from the moment it is given, and error pages in their language.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Browser, TestServer, query};

const REDIRECT: &str = "https://rp.example.com/callback";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `<html lang="…">` of a page.
fn lang(html: &str) -> &str {
    html.split("<html lang=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default()
}

/// The value of the input named `name` on a page.
fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let start = html[..at].rfind("<input")?;
    let end = html[at..].find('>')? + at;
    let tag = &html[start..end];
    let value = tag.split(" value=\"").nth(1)?;
    Some(value.split('"').next()?.to_owned())
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_owned()
}

async fn html(browser: &Browser, url: &str) -> String {
    let r = browser.http.get(url).header("accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "GET {url}");
    r.text().await.unwrap()
}

/// A device asking for a token: (the device authorization response, the device's client).
async fn device(server: &TestServer, name: &str) -> (Value, String) {
    let (tv, _) = server
        .client(json!({"name": name, "public": true, "grant_types": [DEVICE_GRANT], "scopes": ["openid", "api"]}))
        .await;
    let (status, started) =
        server.form("/device_authorization", &[("client_id", &tv), ("scope", "openid api")], None).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    (started, tv)
}

async fn poll(server: &TestServer, started: &Value, client_id: &str) -> (StatusCode, Value) {
    let pairs = [
        ("grant_type", DEVICE_GRANT),
        ("device_code", started["device_code"].as_str().unwrap()),
        ("client_id", client_id),
    ];
    server.form("/token", &pairs, None).await
}

#[tokio::test]
async fn the_device_flow_keeps_the_locale_of_ui_locales_to_its_last_page() {
    let server = TestServer::start().await;
    server.user("gino", "gino password 1").await;
    let (started, tv) = device(&server, "Televisore").await;
    let browser = Browser::new();

    // The device's URI with `ui_locales=it`; the browser asks for nothing in particular.
    let mut url = url::Url::parse(started["verification_uri_complete"].as_str().unwrap()).unwrap();
    url.query_pairs_mut().append_pair("ui_locales", "it");
    let login = html(&browser, url.as_str()).await;
    assert_eq!(lang(&login), "it", "{login}");
    let r = browser.submit(&login, &[("username", "gino"), ("password", "gino password 1")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let code_page = html(&browser, &location(&r)).await;
    assert_eq!(lang(&code_page), "it", "the code page: {code_page}");

    // The code typed: "Allow access?" in Italian, naming the device's application.
    assert_eq!(input_value(&code_page, "user_code").as_deref(), started["user_code"].as_str());
    let typed = [("user_code", started["user_code"].as_str().unwrap())];
    let consent = browser.submit(&code_page, &typed).await.text().await.unwrap();
    assert_eq!(lang(&consent), "it", "the consent page: {consent}");
    assert!(consent.contains("Consentire l&#39;accesso?") || consent.contains("Consentire l'accesso?"), "{consent}");
    assert!(consent.contains("Televisore"), "{consent}");
    // Allowed: "Device connected", in Italian, naming the application.
    let done = browser.submit(&consent, &[("decision", "allow")]).await.text().await.unwrap();
    assert_eq!(lang(&done), "it", "the last page: {done}");
    assert!(done.contains("Dispositivo collegato"), "{done}");
    assert!(done.contains("Televisore"), "the application is named: {done}");

    let (status, tokens) = poll(&server, &started, &tv).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
}

#[tokio::test]
async fn a_device_denied_or_cancelled_gets_access_denied() {
    let server = TestServer::start().await;
    server.user("gino", "gino password 1").await;
    let browser = Browser::new();
    let login = html(&browser, &server.url("/device")).await;
    let r = browser.submit(&login, &[("username", "gino"), ("password", "gino password 1")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    for decision in ["deny", "cancel"] {
        let (started, tv) = device(&server, "Radio").await;
        let page = html(&browser, &server.url("/device")).await;
        let consent =
            browser.submit(&page, &[("user_code", started["user_code"].as_str().unwrap())]).await.text().await.unwrap();
        let done = browser.submit(&consent, &[("decision", decision)]).await.text().await.unwrap();
        assert!(done.contains("role=\"status\"") && done.contains("Radio"), "{decision}: {done}");
        let (status, v) = poll(&server, &started, &tv).await;
        assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("access_denied")), "{v}");
    }
}

#[tokio::test]
async fn revoking_from_the_italian_connections_page_answers_in_italian() {
    let server = TestServer::start().await;
    server.user("lucia", "lucia password 1").await;
    let (id, _) = server.client(json!({"name": "Negozio", "redirect_uris": [REDIRECT]})).await;
    let browser = Browser::new();
    let url = server.authorize_url(&[("response_type", "code"), ("client_id", &id), ("redirect_uri", REDIRECT)]);
    browser.authorize(url.as_str(), "lucia", "lucia password 1").await;

    let page = html(&browser, &server.url("/account/connections?ui_locales=it")).await;
    assert_eq!(lang(&page), "it");
    let form = page.split("<form").find(|f| f.contains("name=\"revoke\"")).expect("a revoke form");
    let r = browser.submit(&format!("<form{form}"), &[("revoke", id.as_str())]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let after = html(&browser, &location(&r)).await;
    assert_eq!(lang(&after), "it", "{after}");
    assert!(after.contains("Negozio") && after.contains("è stato revocato"), "{after}");
}

#[tokio::test]
async fn a_failed_sign_in_keeps_the_username_typed() {
    let server = TestServer::start().await;
    server.user("marta", "marta password 1").await;
    let (id, _) = server.client(json!({"name": "Shop", "redirect_uris": [REDIRECT]})).await;

    // The authorization flow's login page, with another login_hint.
    let browser = Browser::new();
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", &id),
        ("redirect_uri", REDIRECT),
        ("login_hint", "someone"),
    ]);
    let page = html(&browser, url.as_str()).await;
    assert_eq!(input_value(&page, "username").as_deref(), Some("someone"));
    let r = browser.submit(&page, &[("username", "marta"), ("password", "wrong")]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let again = r.text().await.unwrap();
    assert_eq!(input_value(&again, "username").as_deref(), Some("marta"), "{again}");

    // The account pages' login page.
    let browser = Browser::new();
    let page = html(&browser, &server.url("/account/connections")).await;
    let r = browser.submit(&page, &[("username", "marta"), ("password", "wrong")]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let again = r.text().await.unwrap();
    assert_eq!(input_value(&again, "username").as_deref(), Some("marta"), "{again}");
}

#[tokio::test]
async fn cancel_on_the_login_page_tells_the_client_access_denied() {
    let server = TestServer::start().await;
    server.user("marta", "marta password 1").await;
    let (id, _) = server
        .client(json!({"name": "Shop", "redirect_uris": [REDIRECT],
                       "response_types": ["code", "code id_token"]}))
        .await;

    // In the query, with state and iss.
    let browser = Browser::new();
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", &id),
        ("redirect_uri", REDIRECT),
        ("state", "s-1"),
    ]);
    let page = html(&browser, url.as_str()).await;
    let r = browser.submit(&page, &[("decision", "cancel")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = url::Url::parse(&location(&r)).unwrap();
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"), "{back}");
    assert_eq!(query(&back, "state").as_deref(), Some("s-1"));
    assert_eq!(query(&back, "iss").as_deref(), Some(server.issuer.as_str()));
    // The page is used up: the same form again is refused on a page.
    let r = browser.submit(&page, &[("username", "marta"), ("password", "marta password 1")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // In the fragment, as the response mode asks.
    let url = server.authorize_url(&[
        ("response_type", "code id_token"),
        ("client_id", &id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("nonce", "n"),
        ("state", "s-2"),
    ]);
    let page = html(&browser, url.as_str()).await;
    let r = browser.submit(&page, &[("decision", "cancel")]).await;
    let back = url::Url::parse(&location(&r)).unwrap();
    let fragment: Vec<(String, String)> =
        url::form_urlencoded::parse(back.fragment().unwrap_or_default().as_bytes()).into_owned().collect();
    assert!(fragment.contains(&("error".into(), "access_denied".into())), "{back}");
    assert!(fragment.contains(&("state".into(), "s-2".into())), "{back}");
}

#[tokio::test]
async fn a_consent_is_a_connection_from_the_moment_it_is_given_and_revoking_it_revokes_the_code() {
    let server = TestServer::start().await;
    server.user("nora", "nora password 1").await;
    let (id, secret) = server.client(json!({"name": "Planner", "redirect_uris": [REDIRECT]})).await;
    let secret = secret.unwrap();
    let browser = Browser::new();
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", &id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
    ]);
    let back = browser.authorize(url.as_str(), "nora", "nora password 1").await;
    let code = query(&back, "code").expect("a code");

    // Listed before the code is redeemed, as a page and as JSON.
    let list: Value = browser.http.get(server.url("/account/connections")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["client_id"], id.as_str());
    assert_eq!(list[0]["scopes"], json!(["openid"]));
    let page = html(&browser, &server.url("/account/connections")).await;
    assert!(page.contains("Planner"), "{page}");

    // Revoked: the code is dead, and the next authorization asks again.
    let r = browser.http.delete(server.url(&format!("/account/connections/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, v) = server.redeem((&id, &secret), &code, REDIRECT).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{v}");
    // Deleted, not used: the server that issued it and remembers it does not call it a replay.
    assert_eq!(v["error_description"], "the authorization code is invalid", "{v}");
    let r = browser.get(url.as_str()).await;
    assert_eq!(r.status(), StatusCode::OK, "the consent page again");
    assert!(r.text().await.unwrap().contains("name=\"decision\""));
}

#[tokio::test]
async fn error_pages_of_the_account_and_device_forms_are_in_the_locale_asked_for() {
    let server = TestServer::start().await;
    server.user("lucia", "lucia password 1").await;
    let browser = Browser::new();
    let login = html(&browser, &server.url("/account/connections")).await;
    browser.submit(&login, &[("username", "lucia"), ("password", "lucia password 1")]).await;

    // Forged forms (no CSRF token), posted from Italian pages.
    for path in ["/device?ui_locales=it", "/account/connections/revoke?ui_locales=it"] {
        let r = browser.http.post(server.url(path)).form(&[("user_code", "BBBB-BBBB"), ("revoke", "x")]).send().await;
        let r = r.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        let page = r.text().await.unwrap();
        assert_eq!(lang(&page), "it", "{path}: {page}");
    }
    // An Italian `redirect_uri` error, by ui_locales and by Accept-Language.
    let (id, _) = server.client(json!({"name": "Shop", "redirect_uris": [REDIRECT]})).await;
    let bad = [("response_type", "code"), ("client_id", id.as_str()), ("redirect_uri", "https://evil.example.com/")];
    let mut url = server.authorize_url(&bad);
    url.query_pairs_mut().append_pair("ui_locales", "it");
    let page = browser.get(url.as_str()).await.text().await.unwrap();
    assert_eq!(lang(&page), "it", "{page}");
    let r = browser.http.get(server.authorize_url(&bad)).header("accept-language", "it").send().await.unwrap();
    assert_eq!(lang(&r.text().await.unwrap()), "it");
}

#[tokio::test]
async fn logout_without_a_hint_asks_first_and_ends_the_session_when_confirmed() {
    const AFTER: &str = "https://rp.example.com/signed-out";
    let server = TestServer::start().await;
    server.user("lou", "lou password 1").await;
    let (id, secret) =
        server.client(json!({"name": "RP", "redirect_uris": [REDIRECT], "post_logout_redirect_uris": [AFTER]})).await;
    let secret = secret.unwrap();
    let browser = Browser::new();
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", &id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
    ]);
    let back = browser.authorize(url.as_str(), "lou", "lou password 1").await;
    let (_, tokens) = server.redeem((&id, &secret), &query(&back, "code").unwrap(), REDIRECT).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let (b, u, s, client) = (&browser, url.as_str(), &server, (id.as_str(), secret.as_str()));
    let signed_in = move || async move { b.get(u).await.status() == StatusCode::SEE_OTHER };
    let access = access.as_str();
    let active = move || async move {
        let (_, v) = s.form("/introspect", &[("token", access)], Some(client)).await;
        v["active"] == true
    };

    // The question, in Italian, bound to the session; nothing ends yet.
    let ask = html(&browser, &server.url("/logout?ui_locales=it")).await;
    assert_eq!(lang(&ask), "it", "{ask}");
    assert!(ask.contains("name=\"decision\"") && ask.contains("value=\"logout\""), "{ask}");
    assert!(signed_in().await, "asking ends nothing");
    // Cancelled: back to the connections page, in Italian, still signed in.
    let r = browser.submit(&ask, &[("decision", "cancel")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), server.url("/account/connections?ui_locales=it"));
    assert!(signed_in().await);
    // A confirmation without the page's token is the question again.
    let r = browser.http.post(server.url("/logout")).form(&[("decision", "logout"), ("csrf", "guess")]).send().await;
    let r = r.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("value=\"logout\""));
    assert!(signed_in().await && active().await);
    // Confirmed: signed out, in Italian; the cookie is cleared and the session's grants end.
    let r = browser.submit(&ask, &[("decision", "logout")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cleared = r.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().contains("Max-Age=0"));
    assert!(cleared, "the session cookie is cleared");
    let done = r.text().await.unwrap();
    assert_eq!(lang(&done), "it", "{done}");
    assert!(!done.contains("value=\"logout\""), "no question once signed out: {done}");
    assert!(!signed_in().await, "signed out");
    assert!(!active().await, "the session's grants end with it");

    // With the client and a URI it registered: confirmed, back there with the state.
    browser.authorize(url.as_str(), "lou", "lou password 1").await;
    let mut logout = url::Url::parse(&server.url("/logout")).unwrap();
    logout.query_pairs_mut().extend_pairs([
        ("client_id", id.as_str()),
        ("post_logout_redirect_uri", AFTER),
        ("state", "bye"),
    ]);
    let ask = html(&browser, logout.as_str()).await;
    assert!(ask.contains("RP"), "the client is named: {ask}");
    let r = browser.submit(&ask, &[("decision", "logout")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("{AFTER}?state=bye"));
    assert!(!signed_in().await);
    // A URI that cannot be checked is refused, on a page.
    for pairs in
        [vec![("post_logout_redirect_uri", AFTER)], vec![("client_id", "nobody"), ("post_logout_redirect_uri", AFTER)]]
    {
        let mut logout = url::Url::parse(&server.url("/logout")).unwrap();
        logout.query_pairs_mut().extend_pairs(pairs);
        let r = browser.get(logout.as_str()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.headers().get("location").is_none());
    }
    // Nobody signed in: nothing to ask.
    let done = html(&Browser::new(), &server.url("/logout")).await;
    assert!(!done.contains("value=\"logout\""), "{done}");
}

#[tokio::test]
async fn the_connections_page_offers_sign_out_and_the_security_page() {
    let server = TestServer::start().await;
    server.user("lou", "lou password 1").await;
    let browser = Browser::new();
    let login = html(&browser, &server.url("/account/connections?ui_locales=it")).await;
    browser.submit(&login, &[("username", "lou"), ("password", "lou password 1")]).await;
    let page = html(&browser, &server.url("/account/connections?ui_locales=it")).await;
    let sign_out = server.url("/logout?ui_locales=it");
    assert!(page.contains(&format!("action=\"{sign_out}\"")), "{page}");
    assert!(page.contains(&server.url("/account/security")), "{page}");

    // The sign-out form asks first, in Italian; confirmed, the session ends.
    let form = page.split("<form").find(|f| f.contains(&sign_out)).expect("the sign-out form");
    let r = browser.submit(&format!("<form{form}"), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ask = r.text().await.unwrap();
    assert_eq!(lang(&ask), "it");
    let r = browser.submit(&ask, &[("decision", "logout")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let again = html(&browser, &server.url("/account/connections")).await;
    assert!(again.contains("name=\"password\""), "signed out: the login page: {again}");
}
