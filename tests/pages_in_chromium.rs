//! The pages a person uses, in a real headless Chromium driven over WebDriver: signing in
//! and consenting in the language asked for, then the connections page (ELMA365: profile →
//! external applications) listing the application and revoking it, and the password page
//! it links to; the compact consent UI on a phone-sized screen.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`PORTCULLIS_CHROMIUM`,
//! `PORTCULLIS_CHROMEDRIVER` override the paths). Where they are missing the test says so
//! and passes, unless `PORTCULLIS_REQUIRE_BROWSER` is set, as CI sets it: there it fails.

#[path = "pages_in_chromium/accessibility.rs"]
mod accessibility;
mod support;

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::json;
use support::chromium::Chromium;
use support::{ADMIN_TOKEN, TestServer};

/// Where the browser lands after consent: a page of the relying party's, on loopback.
async fn relying_party() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/cb", axum::routing::get(|| async { "signed in" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/cb")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_consent_and_revoke_a_connection_in_chromium() {
    let Some(browser) = Chromium::start("ru").await else { return };
    let server = TestServer::start().await;
    let redirect = relying_party().await;

    // ELMA365: a module's external application, a template, a client from it.
    let icon = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0naHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmcnLz4=";
    let (status, _, app) = server
        .admin(
            reqwest::Method::POST,
            "/admin/v1/applications",
            ADMIN_TOKEN,
            Some(json!({"name": "Заявки", "description": "Модуль заявок", "icon": icon, "module": "requests",
                        "tokens": {"refresh_tokens": "always"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app_id = app["application"]["id"].as_str().unwrap();
    let (_, _, template) = server
        .admin(
            reqwest::Method::POST,
            &format!("/admin/v1/applications/{app_id}/templates"),
            ADMIN_TOKEN,
            Some(json!({"name": "Всё", "scopes": ["openid", "api"]})),
        )
        .await;
    let (status, _, client) = server
        .admin(
            reqwest::Method::POST,
            &format!("/admin/v1/templates/{}/clients", template["id"].as_str().unwrap()),
            ADMIN_TOKEN,
            Some(json!({"name": "Сервис", "redirect_uris": [redirect]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    let (client_id, secret) = (client["client_id"].as_str().unwrap(), client["client_secret"].as_str().unwrap());
    server.user("olga", "olga password 1").await;

    // The login page in Russian, as `ui_locales` asks.
    let authorize = format!(
        "{}?response_type=code&client_id={client_id}&scope=openid%20api&ui_locales=ru&redirect_uri={}",
        server.url("/authorize"),
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    browser.client.goto(&authorize).await.unwrap();
    assert_eq!(browser.lang().await, "ru");
    assert!(browser.text("h1").await.contains("Вход"), "{}", browser.text("h1").await);
    browser.fill("input[name=username]", "olga").await;
    browser.fill("input[name=password]", "olga password 1").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("button[name=decision]").await;

    // The consent page names the application, shows its icon and description.
    let page = browser.client.source().await.unwrap();
    assert!(page.contains("Заявки") && page.contains("Модуль заявок"), "{page}");
    let img = browser.client.find(Locator::Css("img")).await.expect("the application's icon");
    assert_eq!(img.attr("src").await.unwrap().as_deref(), Some(icon));
    browser.click("button[name=decision][value=allow]").await;
    let back = browser.wait_for_url(&redirect).await;
    assert!(back.as_str().starts_with(&redirect), "{back}");
    let code = support::query(&back, "code").expect("a code");
    let (status, tokens) = server.redeem((client_id, secret), &code, &redirect).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (access, refresh) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());

    // The connections page, in Dutch this time.
    browser.client.goto(&server.url("/account/connections?ui_locales=nl")).await.unwrap();
    assert_eq!(browser.lang().await, "nl");
    let item = format!("li.connection[data-client-id='{client_id}']");
    let listed = browser.text(&item).await;
    assert!(listed.contains("Заявки") && listed.contains("Сервис"), "{listed}");
    assert!(listed.contains("api"), "the scopes granted: {listed}");
    let today = browser.client.find(Locator::Css(&format!("{item} time"))).await.unwrap();
    let since = today.attr("datetime").await.unwrap().unwrap_or_default();
    assert_eq!(since.len(), 10, "an ISO date: {since}");

    // Revoking it: the page says so, the list no longer has it, and its tokens are dead.
    browser.click(&format!("{item} button[name=revoke]")).await;
    assert!(browser.wait_for("#revoked").await.text().await.unwrap().contains("Заявки"));
    assert!(browser.client.find(Locator::Css(&item)).await.is_err(), "gone from the list");
    let (status, body) = server
        .form("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh)], Some((client_id, secret)))
        .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let (_, body) = server.form("/introspect", &[("token", access)], Some((client_id, secret))).await;
    assert_eq!(body["active"], false, "{body}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connections_page_signs_in_in_the_browsers_language() {
    let Some(browser) = Chromium::start("de-DE").await else { return };
    let server = TestServer::start().await;
    server.user("hans", "hans password 1").await;

    // Without a session the page asks to sign in, in German from Accept-Language alone.
    browser.client.goto(&server.url("/account/connections")).await.unwrap();
    assert_eq!(browser.lang().await, "de");
    browser.fill("input[name=username]", "hans").await;
    browser.fill("input[name=password]", "wrong password").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("[role=alert]").await;
    // The username typed is kept; the password is asked again.
    let typed = browser.client.find(Locator::Css("input[name=username]")).await.unwrap();
    assert_eq!(typed.prop("value").await.unwrap().as_deref(), Some("hans"));
    browser.fill("input[name=password]", "hans password 1").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("#no-connections").await;
    let url = browser.client.current_url().await.unwrap();
    assert!(url.path().ends_with("/account/connections"), "{url}");
    browser.close().await;
}

/// Waits until the element `css` says `expected` (a form posted returns before the next page
/// has loaded, and the page before it may have had the same element).
async fn wait_for_text(browser: &Chromium, css: &str, expected: &str) {
    let mut seen = String::new();
    for _ in 0..150 {
        if let Ok(element) = browser.client.find(Locator::Css(css)).await {
            seen = element.text().await.unwrap_or_default();
            if seen.contains(expected) {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{css} never said {expected:?}; it said {seen:?}");
}

/// Fills the password form and sends it.
async fn change_password(browser: &Chromium, current: &str, new: &str, repeat: &str) {
    browser.wait_for("input[name=current-password]").await;
    browser.fill("input[name=current-password]", current).await;
    browser.fill("input[name=new-password]", new).await;
    browser.fill("input[name=repeat-password]", repeat).await;
    browser.click("button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_changes_their_password_from_the_connections_page() {
    let Some(browser) = Chromium::start("it").await else { return };
    let server = TestServer::start().await;
    let redirect = relying_party().await;
    server.user("lucia", "lucia password 1").await;
    let (client_id, secret) = server.client(json!({"name": "Negozio", "redirect_uris": [redirect]})).await;
    let secret = secret.unwrap();

    // Signed in on the connections page (in Italian, from Accept-Language), its link leads to
    // the password page.
    browser.client.goto(&server.url("/account/connections")).await.unwrap();
    browser.fill("input[name=username]", "lucia").await;
    browser.fill("input[name=password]", "lucia password 1").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("#password-link").await;
    browser.click("#password-link").await;
    browser.wait_for("input[name=current-password]").await;
    assert_eq!(browser.lang().await, "it");
    assert_eq!(browser.text("h1").await, "Cambia la password");
    let url = browser.client.current_url().await.unwrap();
    assert!(url.path().ends_with("/account/password"), "{url}");

    // A wrong current password, then a repetition that differs: the page says why, in Italian.
    change_password(&browser, "not my password", "lucia password 2", "lucia password 2").await;
    wait_for_text(&browser, "[role=alert]", "La password attuale non è corretta.").await;
    change_password(&browser, "lucia password 1", "lucia password 2", "lucia password 3").await;
    wait_for_text(&browser, "[role=alert]", "non coincidono").await;
    // Then the change.
    change_password(&browser, "lucia password 1", "lucia password 2", "lucia password 2").await;
    wait_for_text(&browser, "#password-changed", "La password è stata cambiata.").await;
    assert!(browser.client.find(Locator::Css("input[name=new-password]")).await.is_err(), "no form once changed");

    // The same page in Russian, as `ui_locales` asks; this browser is still signed in.
    browser.client.goto(&server.url("/account/password?ui_locales=ru")).await.unwrap();
    browser.wait_for("input[name=current-password]").await;
    assert_eq!(browser.lang().await, "ru");
    assert_eq!(browser.text("h1").await, "Смена пароля");
    assert!(browser.text("label[for=repeat-password]").await.contains("Повторите новый пароль"));

    // Signed out, an authorization code flow: the old password fails, the new one works.
    browser.client.delete_all_cookies().await.unwrap();
    let authorize = format!(
        "{}?response_type=code&client_id={client_id}&scope=openid&redirect_uri={}",
        server.url("/authorize"),
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    browser.client.goto(&authorize).await.unwrap();
    browser.fill("input[name=username]", "lucia").await;
    browser.fill("input[name=password]", "lucia password 1").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("[role=alert]").await;
    // The username typed is kept; the password is asked again.
    let typed = browser.client.find(Locator::Css("input[name=username]")).await.unwrap();
    assert_eq!(typed.prop("value").await.unwrap().as_deref(), Some("lucia"));
    browser.fill("input[name=password]", "lucia password 2").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("button[name=decision][value=allow]").await;
    browser.click("button[name=decision][value=allow]").await;
    let back = browser.wait_for_url(&redirect).await;
    let code = support::query(&back, "code").expect("a code");
    let (status, tokens) = server.redeem((&client_id, &secret), &code, &redirect).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    browser.close().await;
}

/// Sizes the page's viewport to `width` x `height` CSS pixels: the window's height plus what
/// the browser draws above and below the page (headless, nothing beside it).
async fn viewport(browser: &Chromium, width: u32, height: u32) {
    browser.client.set_window_size(width, height).await.unwrap();
    let around = browser.client.execute("return outerHeight - innerHeight;", vec![]).await.unwrap();
    let extra = around.as_u64().unwrap_or_else(|| panic!("{around}")) as u32;
    browser.client.set_window_size(width, height + extra).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compact_consent_page_keeps_its_decision_in_view_on_a_phone() {
    let Some(browser) = Chromium::start("en").await else { return };
    viewport(&browser, 390, 640).await;
    let server = TestServer::start().await;
    let redirect = relying_party().await;
    server.user("sam", "sam password 1").await;
    // More scopes than a phone's screen lists above its buttons.
    let mut scopes = vec!["openid", "profile", "email", "offline_access", "api"];
    let more = ["orders", "invoices", "payments", "customers", "reports", "stock", "shipments", "returns"];
    let more: Vec<String> = more.iter().flat_map(|s| [format!("{s}:read"), format!("{s}:write")]).collect();
    scopes.extend(more.iter().map(String::as_str));
    let (client_id, secret) = server
        .client(json!({"name": "Wallet", "redirect_uris": [redirect], "scopes": scopes,
                       "consent_ui": "consent-compact"}))
        .await;
    let authorize = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", &client_id),
        ("redirect_uri", &redirect),
        ("scope", &scopes.join(" ")),
    ]);
    browser.client.goto(authorize.as_str()).await.unwrap();
    browser.fill("input[name=username]", "sam").await;
    browser.fill("input[name=password]", "sam password 1").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("button[name=decision][value=allow]").await;

    // Where the Allow button is on a 390x640 screen, before anything scrolls.
    let seen = browser
        .client
        .execute(
            "const b = document.querySelector('button[name=decision][value=allow]').getBoundingClientRect();
             return {top: b.top, bottom: b.bottom, left: b.left, right: b.right, width: innerWidth,
                     height: innerHeight, scrolled: scrollY, page: document.documentElement.scrollHeight,
                     body: document.body.className};",
            vec![],
        )
        .await
        .unwrap();
    let n = |k: &str| seen[k].as_f64().unwrap_or_else(|| panic!("{k}: {seen}"));
    assert_eq!(seen["body"], "compact", "the compact consent UI: {seen}");
    assert_eq!((n("width"), n("height")), (390.0, 640.0), "a phone's viewport: {seen}");
    assert!(n("page") > n("height"), "the page is longer than the screen: {seen}");
    assert_eq!(n("scrolled"), 0.0, "{seen}");
    assert!(n("top") >= 0.0 && n("bottom") <= n("height"), "Allow is in view without scrolling: {seen}");
    assert!(n("left") >= 0.0 && n("right") <= n("width"), "and across: {seen}");
    assert!(n("bottom") - n("top") >= 44.0, "a large touch target: {seen}");

    browser.click("button[name=decision][value=allow]").await;
    let back = browser.wait_for_url(&redirect).await;
    let code = support::query(&back, "code").expect("a code");
    let (status, tokens) = server.redeem((&client_id, secret.as_deref().unwrap()), &code, &redirect).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"].as_str().map(|s| s.split(' ').count()), Some(scopes.len()), "{tokens}");
    browser.close().await;
}

/// Without a browser: the page's forms carry CSRF tokens that a forged post lacks.
#[tokio::test]
async fn forged_account_forms_are_refused() {
    let server = TestServer::start().await;
    server.user("mia", "mia password 1").await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // A login post without the page's cookie gets a fresh page, not a session.
    let r = http
        .post(server.url("/account/login"))
        .form(&[("username", "mia"), ("password", "mia password 1"), ("csrf", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(!r.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("portcullis_session=")));

    // Signed in, a revoke post without the page's token is refused.
    let browser = support::Browser::new();
    let page = browser.http.get(server.url("/account/connections")).header("accept", "text/html").send().await.unwrap();
    let html = page.text().await.unwrap();
    let r = browser.submit(&html, &[("username", "mia"), ("password", "mia password 1")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = browser.http.post(server.url("/account/connections/revoke")).form(&[("revoke", "x")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // The JSON API answers the same session.
    let list = browser.http.get(server.url("/account/connections")).send().await.unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(list.json::<serde_json::Value>().await.unwrap(), json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_is_allowed_from_the_device_page() {
    let Some(browser) = Chromium::start("it").await else { return };
    let server = TestServer::start().await;
    server.user("gino", "gino password 1").await;
    let grant = "urn:ietf:params:oauth:grant-type:device_code";
    let (tv, _) = server
        .client(json!({"name": "Televisore", "public": true, "grant_types": [grant], "scopes": ["openid", "api"]}))
        .await;
    let (status, started) =
        server.form("/device_authorization", &[("client_id", &tv), ("scope", "openid api")], None).await;
    assert_eq!(status, StatusCode::OK, "{started}");

    // The URI the device shows: sign in (in Italian, from Accept-Language), the code is there.
    browser.client.goto(started["verification_uri_complete"].as_str().unwrap()).await.unwrap();
    assert_eq!(browser.lang().await, "it");
    browser.fill("input[name=username]", "gino").await;
    browser.fill("input[name=password]", "gino password 1").await;
    browser.click("button[type=submit]").await;
    let code = browser.wait_for("input[name=user_code]").await;
    assert_eq!(code.prop("value").await.unwrap().as_deref(), started["user_code"].as_str());
    browser.click("button[type=submit]").await;
    // What the device's application asks for; allowing it.
    browser.wait_for("button[name=decision][value=allow]").await;
    assert!(browser.client.source().await.unwrap().contains("Televisore"));
    browser.click("button[name=decision][value=allow]").await;
    browser.wait_for("[role=status]").await;

    let pairs = [("grant_type", grant), ("device_code", started["device_code"].as_str().unwrap()), ("client_id", &tv)];
    let (status, tokens) = server.form("/token", &pairs, None).await;
    assert_eq!(status, StatusCode::OK, "the device gets its tokens: {tokens}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_flow_keeps_the_locale_ui_locales_chose() {
    // The browser prefers English; the device's URI asks for Italian.
    let Some(browser) = Chromium::start("en").await else { return };
    let server = TestServer::start().await;
    server.user("gino", "gino password 1").await;
    let grant = "urn:ietf:params:oauth:grant-type:device_code";
    let (tv, _) = server
        .client(json!({"name": "Televisore", "public": true, "grant_types": [grant], "scopes": ["openid", "api"]}))
        .await;
    let (_, started) = server.form("/device_authorization", &[("client_id", &tv), ("scope", "openid api")], None).await;
    let mut url = url::Url::parse(started["verification_uri_complete"].as_str().unwrap()).unwrap();
    url.query_pairs_mut().append_pair("ui_locales", "it");

    browser.client.goto(url.as_str()).await.unwrap();
    assert_eq!(browser.lang().await, "it");
    browser.fill("input[name=username]", "gino").await;
    browser.fill("input[name=password]", "gino password 1").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("input[name=user_code]").await;
    assert_eq!(browser.lang().await, "it", "the code page");
    browser.click("button[type=submit]").await;
    browser.wait_for("button[name=decision][value=allow]").await;
    assert_eq!(browser.lang().await, "it", "Allow access?");
    assert!(browser.client.title().await.unwrap().starts_with("Consentire l'accesso?"), "Allow access?");
    browser.click("button[name=decision][value=allow]").await;
    wait_for_text(&browser, "h1", "Dispositivo collegato").await;
    assert_eq!(browser.lang().await, "it", "Device connected");
    assert!(browser.client.source().await.unwrap().contains("Televisore"), "the application is named");

    let pairs = [("grant_type", grant), ("device_code", started["device_code"].as_str().unwrap()), ("client_id", &tv)];
    let (status, tokens) = server.form("/token", &pairs, None).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    browser.close().await;
}

/// Signs `username` in through the authorization code flow and allows `client_id`.
async fn connect(browser: &Chromium, server: &TestServer, client_id: &str, redirect: &str, user: (&str, &str)) {
    let authorize = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect),
        ("scope", "openid"),
    ]);
    browser.client.goto(authorize.as_str()).await.unwrap();
    browser.fill("input[name=username]", user.0).await;
    browser.fill("input[name=password]", user.1).await;
    browser.click("button[type=submit]").await;
    // The consent page, unless the person already allowed the client.
    for _ in 0..150 {
        if browser.client.current_url().await.unwrap().as_str().starts_with(redirect) {
            return;
        }
        if let Ok(allow) = browser.client.find(Locator::Css("button[name=decision][value=allow]")).await {
            allow.click().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.wait_for_url(redirect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_from_the_italian_page_stays_italian() {
    let Some(browser) = Chromium::start("en").await else { return };
    let server = TestServer::start().await;
    let redirect = relying_party().await;
    server.user("lucia", "lucia password 1").await;
    let (client_id, _) = server.client(json!({"name": "Negozio", "redirect_uris": [redirect]})).await;
    connect(&browser, &server, &client_id, &redirect, ("lucia", "lucia password 1")).await;

    // Allowed, not yet redeemed: listed already.
    browser.client.goto(&server.url("/account/connections?ui_locales=it")).await.unwrap();
    assert_eq!(browser.lang().await, "it");
    let item = format!("li.connection[data-client-id='{client_id}']");
    browser.click(&format!("{item} button[name=revoke]")).await;
    wait_for_text(&browser, "#revoked", "è stato revocato").await;
    assert_eq!(browser.lang().await, "it");
    assert!(browser.client.find(Locator::Css(&item)).await.is_err(), "gone from the list");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_the_login_page_returns_access_denied_to_the_client() {
    let Some(browser) = Chromium::start("en").await else { return };
    let server = TestServer::start().await;
    let redirect = relying_party().await;
    let (client_id, _) = server.client(json!({"name": "Negozio", "redirect_uris": [redirect]})).await;
    let authorize = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", &client_id),
        ("redirect_uri", &redirect),
        ("state", "st"),
    ]);
    browser.client.goto(authorize.as_str()).await.unwrap();
    // Cancelling needs no username or password (`formnovalidate`).
    browser.click("button[name=decision][value=cancel]").await;
    let back = browser.wait_for_url(&redirect).await;
    assert_eq!(support::query(&back, "error").as_deref(), Some("access_denied"), "{back}");
    assert_eq!(support::query(&back, "state").as_deref(), Some("st"), "{back}");
    assert_eq!(support::query(&back, "iss").as_deref(), Some(server.issuer.as_str()), "{back}");
    browser.close().await;
}

/// Waits until the page has no element `css` (the page after a form's post has loaded).
async fn wait_gone(browser: &Chromium, css: &str) {
    for _ in 0..150 {
        if browser.client.find(Locator::Css(css)).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{css} never went away");
}

/// Whether the browser is signed in: the connections page lists, rather than asks to sign in.
async fn signed_in(browser: &Chromium, server: &TestServer) -> bool {
    browser.client.goto(&server.url("/account/connections")).await.unwrap();
    browser.wait_for("form").await;
    browser.client.find(Locator::Css("input[name=password]")).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_from_the_connections_page_and_at_logout_without_a_hint() {
    let Some(browser) = Chromium::start("it").await else { return };
    let server = TestServer::start().await;
    let redirect = relying_party().await;
    server.user("lucia", "lucia password 1").await;
    let (client_id, _) = server.client(json!({"name": "Negozio", "redirect_uris": [redirect]})).await;
    connect(&browser, &server, &client_id, &redirect, ("lucia", "lucia password 1")).await;

    // From the connections page: asked, then signed out, in Italian.
    assert!(signed_in(&browser, &server).await);
    browser.click("form#sign-out button[type=submit]").await;
    // The connections page's own sign-out button is `decision=logout` too: the question is the
    // page with Cancel.
    browser.wait_for("button[name=decision][value=cancel]").await;
    assert_eq!(browser.lang().await, "it");
    // Cancel goes back to the connections page, still signed in.
    browser.click("button[name=decision][value=cancel]").await;
    // The question's own form posts to /logout too, and the URL changes before the page does:
    // wait for the connections page's sign-out form (`#sign-out`), which the question lacks.
    browser.wait_for_url(&server.url("/account/connections")).await;
    browser.wait_for("form#sign-out").await;
    let url = browser.client.current_url().await.unwrap();
    assert!(url.path().ends_with("/account/connections"), "{url}");
    browser.click("form#sign-out button[type=submit]").await;
    browser.wait_for("button[name=decision][value=cancel]").await;
    browser.click("button[name=decision][value=logout]").await;
    wait_gone(&browser, "button[name=decision]").await;
    assert_eq!(browser.lang().await, "it");
    assert!(!signed_in(&browser, &server).await, "the session ended");

    // At /logout without a hint, as a relying party sends the browser there.
    connect(&browser, &server, &client_id, &redirect, ("lucia", "lucia password 1")).await;
    browser.client.goto(&server.url(&format!("/logout?client_id={client_id}"))).await.unwrap();
    browser.wait_for("button[name=decision][value=logout]").await;
    assert!(browser.client.source().await.unwrap().contains("Negozio"), "the application is named");
    browser.click("button[name=decision][value=logout]").await;
    wait_gone(&browser, "button[name=decision]").await;
    assert!(!signed_in(&browser, &server).await, "the session ended");
    browser.close().await;
}

/// chromedriver's WebAuthn extension (WebAuthn Level 3 §11.3, Add Virtual Authenticator): an
/// authenticator built into the platform, holding discoverable credentials and verifying its
/// user.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/webauthn/authenticator", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                          "hasUserVerification": true, "isUserVerified": true});
        (http::Method::POST, Some(body.to_string()))
    }
}

/// The authenticator app of the secret the page shows as text.
fn app_in(page: &str) -> totp_rs::Totp {
    let marker = "id=\"totp-secret\">";
    let at = page.find(marker).expect("the page shows the secret") + marker.len();
    let secret: String = page[at..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    let bytes = totp_rs::Secret::try_from_base32(&secret).expect("base32").as_bytes().to_vec();
    totp_rs::Builder::new().with_secret(bytes).build().unwrap()
}

/// The page's source once it contains `text`.
async fn wait_for_source(browser: &Chromium, text: &str) -> String {
    for _ in 0..150 {
        let source = browser.client.source().await.unwrap();
        if source.contains(text) {
            return source;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the page never showed {text}");
}

async fn account_login(browser: &Chromium, server: &TestServer, username: &str, password: &str) {
    browser.client.goto(&format!("{}/account/security", server.issuer)).await.unwrap();
    browser.fill("input[name=username]", username).await;
    browser.fill("input[name=password]", password).await;
    browser.click("form button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticator_app_is_added_and_signs_in_in_chromium() {
    let Some(browser) = Chromium::start("en").await else { return };
    let clock = std::sync::Arc::new(portcullis::model::ManualClock::default());
    let server =
        TestServer::start_with(support::Options { clock: Some(clock.clone()), localhost: true, ..Default::default() })
            .await;
    let redirect = relying_party().await;
    let (client_id, secret) = server
        .client(json!({"name": "RP", "redirect_uris": [redirect], "scopes": ["openid"], "skip_consent": true}))
        .await;
    server.user("hana", "hana's password 1").await;
    let now = || portcullis::model::Clock::now(&*clock) as u64;

    account_login(&browser, &server, "hana", "hana's password 1").await;
    browser.wait_for("button[name=op][value=totp-start]").await.click().await.unwrap();
    let page = wait_for_source(&browser, "id=\"totp-secret\"").await;
    assert!(page.contains("<svg"), "the QR code is on the page");
    let app = app_in(&page);
    browser.fill("input[name=code]", &app.generate(now()).to_string()).await;
    browser.click("button[name=op][value=totp-confirm]").await;
    let page = wait_for_source(&browser, "id=\"recovery-codes\"").await;
    let shaped = |w: &str| {
        let groups: Vec<&str> = w.split('-').collect();
        groups.len() == 4 && groups.iter().all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_alphanumeric()))
    };
    let codes = page.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).filter(|w| shaped(w)).count();
    assert!(codes >= 10, "ten recovery codes are shown: {codes}");
    clock.advance(30);

    // A new sign-in asks the password, then the code.
    let url = format!(
        "{}/authorize?response_type=code&client_id={client_id}&scope=openid&prompt=login&nonce=n&redirect_uri={}",
        server.issuer,
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    browser.client.goto(&url).await.unwrap();
    browser.fill("input[name=username]", "hana").await;
    browser.fill("input[name=password]", "hana's password 1").await;
    browser.click("form button[type=submit]").await;
    browser.wait_for("input[name=code]").await.send_keys(&app.generate(now()).to_string()).await.unwrap();
    browser.click("form button[type=submit]:not([value=cancel])").await;
    let back = browser.wait_for_url(&redirect).await;
    let code = support::query(&back, "code").expect("code");
    let (status, tokens) = server.redeem((&client_id, secret.as_deref().unwrap()), &code, &redirect).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (_, claims) = server.verify_jwt(tokens["id_token"].as_str().unwrap(), Some(&client_id)).await;
    assert_eq!(claims["acr"], "2");
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_is_added_and_signs_in_without_a_password_in_chromium() {
    let Some(browser) = Chromium::start("en").await else { return };
    browser.client.issue_cmd(AddVirtualAuthenticator).await.expect("a virtual authenticator");
    let server = TestServer::start_with(support::Options { localhost: true, ..Default::default() }).await;
    let redirect = relying_party().await;
    let (client_id, secret) = server
        .client(json!({"name": "RP", "redirect_uris": [redirect], "scopes": ["openid"], "skip_consent": true}))
        .await;
    server.user("ivo", "ivo's password 12").await;

    account_login(&browser, &server, "ivo", "ivo's password 12").await;
    browser.wait_for("button[name=op][value=passkey-start]").await.click().await.unwrap();
    browser.wait_for("input[name=passkey-name]").await.send_keys("Laptop").await.unwrap();
    browser.click("[data-passkey]").await;
    let page = wait_for_source(&browser, "Laptop").await;
    assert!(page.contains("passkey-remove"), "the passkey is listed with its remove form");

    // Signed out (a fresh session), the login page's passkey signs in: two factors in one.
    browser.client.delete_all_cookies().await.unwrap();
    let url = format!(
        "{}/authorize?response_type=code&client_id={client_id}&scope=openid&nonce=n&redirect_uri={}",
        server.issuer,
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    browser.client.goto(&url).await.unwrap();
    browser.wait_for("[data-passkey]").await.click().await.unwrap();
    let back = browser.wait_for_url(&redirect).await;
    let code = support::query(&back, "code").expect("code");
    let (status, tokens) = server.redeem((&client_id, secret.as_deref().unwrap()), &code, &redirect).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (_, claims) = server.verify_jwt(tokens["id_token"].as_str().unwrap(), Some(&client_id)).await;
    assert_eq!(claims["acr"], "2");
    assert_eq!(claims["amr"], json!(["swk", "mfa"]));
    browser.close().await;
}
