//! Second factors over HTTP: adding an authenticator app on the account security page (codes
//! computed here with totp-rs, on the server's clock), signing in with a code or a recovery
//! code (each used once), wrong codes, throttling, `acr`/`amr` in ID tokens (checked with the
//! `openidconnect` crate), refresh and introspection saying the same, step-up demanded by
//! `acr_values` and by the `claims` parameter, and an administrator's reset with its audit
//! events.

use std::sync::Arc;

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, RedirectUrl,
    TokenResponse,
};
use portcullis::model::{Clock, ManualClock};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, Browser, Options, TestServer, query};

const REDIRECT: &str = "https://rp.example.com/callback";
const PASSWORD: &str = "frank's long password";

async fn server_with_clock() -> (TestServer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    let server = TestServer::start_with(Options { clock: Some(clock.clone()), ..Default::default() }).await;
    (server, clock)
}

/// Signs `username` in through the account login page.
async fn account_sign_in(server: &TestServer, browser: &Browser, username: &str) -> reqwest::Response {
    let r = browser.http.get(server.url("/account/connections")).header("accept", "text/html").send().await.unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains("name=\"password\""), "the login page: {page}");
    browser.submit(&page, &[("username", username), ("password", PASSWORD)]).await
}

/// The security page as JSON.
async fn security(server: &TestServer, browser: &Browser) -> Value {
    let r =
        browser.http.get(server.url("/account/security")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// One operation of the security page, posted as its form is, read back as JSON.
async fn operate(server: &TestServer, browser: &Browser, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
    let csrf = security(server, browser).await["csrf"].as_str().unwrap().to_owned();
    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    form.extend_from_slice(pairs);
    let r = browser
        .http
        .post(server.url("/account/security"))
        .header("accept", "application/json")
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The authenticator app of an enrolment's base32 secret, as the person's phone has it.
fn app_of(secret: &str) -> totp_rs::Totp {
    let bytes = totp_rs::Secret::try_from_base32(secret).expect("a base32 secret").as_bytes().to_vec();
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(bytes)
        .build()
        .unwrap()
}

fn code_at(app: &totp_rs::Totp, clock: &ManualClock) -> String {
    app.generate(clock.now() as u64).to_string()
}

/// A code that is not the right one now.
fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

/// Adds an authenticator app for the signed-in person of `browser`: the app and the
/// recovery codes shown once.
async fn enrol(server: &TestServer, clock: &ManualClock, browser: &Browser) -> (totp_rs::Totp, Vec<String>) {
    let (status, state) = operate(server, browser, &[("op", "totp-start")]).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["totp"], "enrolling");
    let uri = state["totp_enrolment"]["uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    // Key Uri Format: SHA-1, six digits and 30 seconds are the defaults an app assumes.
    assert!(!uri.contains("algorithm=") || uri.contains("algorithm=SHA1"), "{uri}");
    let app = app_of(state["totp_enrolment"]["secret"].as_str().unwrap());
    let right = code_at(&app, clock);
    let (status, refused) = operate(server, browser, &[("op", "totp-confirm"), ("code", &wrong(&right))]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a wrong first code: {refused}");
    assert_eq!(refused["totp"], "enrolling");
    let (status, state) = operate(server, browser, &[("op", "totp-confirm"), ("code", &right)]).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["totp"], "on");
    let codes: Vec<String> =
        state["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(state["recovery_left"], 10);
    // Shown once: the page read again does not show them.
    assert!(security(server, browser).await.get("recovery_codes").is_none());
    // The code that confirmed it is spent: the next sign-in needs the next one.
    clock.advance(30);
    (app, codes)
}

async fn client(server: &TestServer) -> (String, String) {
    let (id, secret) = server
        .client(json!({"name": "RP", "redirect_uris": [REDIRECT], "scopes": ["openid", "profile", "offline_access"],
                       "skip_consent": true}))
        .await;
    (id, secret.unwrap())
}

fn authorize_url(server: &TestServer, client_id: &str, extra: &str) -> String {
    format!(
        "{}?response_type=code&client_id={client_id}&scope=openid%20offline_access&state=s&nonce=n&redirect_uri={}{extra}",
        server.url("/authorize"),
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    )
}

async fn page(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    (status, r.text().await.unwrap())
}

fn redirected(r: &reqwest::Response) -> url::Url {
    assert!(r.status().is_redirection(), "expected a redirect, got {} {:?}", r.status(), r.headers());
    url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap()
}

/// The ID token's claims for a code, verified against the JWKS.
async fn id_claims(server: &TestServer, (id, secret): (&str, &str), code: &str) -> (Value, Value) {
    let (status, tokens) = server.redeem((id, secret), code, REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (_, claims) = server.verify_jwt(tokens["id_token"].as_str().unwrap(), Some(id)).await;
    (claims, tokens)
}

#[tokio::test]
async fn sign_in_with_an_authenticator_app_and_with_recovery_codes() {
    let (server, clock) = server_with_clock().await;
    let user = server.user("frank", PASSWORD).await;
    let (client_id, secret) = client(&server).await;
    let setup = Browser::new();
    account_sign_in(&server, &setup, "frank").await;
    let before = security(&server, &setup).await;
    assert_eq!(before["totp"], "off");
    assert_eq!(before["recovery_left"], 0);
    let (app, recovery) = enrol(&server, &clock, &setup).await;

    // After the password, the second factor: a wrong code shows the page again.
    let browser = Browser::new();
    let (status, login) = page(browser.get(&authorize_url(&server, &client_id, "")).await).await;
    assert_eq!(status, StatusCode::OK);
    let (status, factor) = page(browser.submit(&login, &[("username", "frank"), ("password", PASSWORD)]).await).await;
    assert_eq!(status, StatusCode::OK, "{factor}");
    assert!(factor.contains("name=\"code\"") && !factor.contains("name=\"password\""), "{factor}");
    let right = code_at(&app, &clock);
    let (status, again) = page(browser.submit(&factor, &[("code", &wrong(&right))]).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{again}");
    assert!(again.contains("name=\"code\""));
    let back = redirected(&browser.submit(&again, &[("code", &right)]).await);
    let code = query(&back, "code").unwrap_or_else(|| panic!("{back}"));
    let (claims, tokens) = id_claims(&server, (&client_id, &secret), &code).await;
    assert_eq!(claims["acr"], "2");
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));

    // The refreshed ID token, and introspection, say the same.
    let (status, refreshed) = server
        .form(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())],
            Some((&client_id, &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (_, again_claims) = server.verify_jwt(refreshed["id_token"].as_str().unwrap(), Some(&client_id)).await;
    assert_eq!(
        (again_claims["acr"].clone(), again_claims["amr"].clone()),
        (claims["acr"].clone(), claims["amr"].clone())
    );
    let (_, active) = server
        .form("/introspect", &[("token", refreshed["access_token"].as_str().unwrap())], Some((&client_id, &secret)))
        .await;
    assert_eq!(active["acr"], "2", "{active}");
    assert_eq!(active["amr"], json!(["pwd", "otp", "mfa"]));

    // The same code again, in its window, is refused.
    let other = Browser::new();
    let (_, login) = page(other.get(&authorize_url(&server, &client_id, "")).await).await;
    let (_, factor) = page(other.submit(&login, &[("username", "frank"), ("password", PASSWORD)]).await).await;
    let (status, _) = page(other.submit(&factor, &[("code", &right)]).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a code is used once");

    // A recovery code, typed loosely, signs in once.
    let typed = recovery[3].to_uppercase();
    let back = redirected(&other.submit(&factor, &[("code", &typed)]).await);
    assert!(query(&back, "code").is_some(), "{back}");
    let third = Browser::new();
    let (_, login) = page(third.get(&authorize_url(&server, &client_id, "")).await).await;
    let (_, factor) = page(third.submit(&login, &[("username", "frank"), ("password", PASSWORD)]).await).await;
    let (status, _) = page(third.submit(&factor, &[("code", &recovery[3])]).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a recovery code is spent");
    assert_eq!(security(&server, &setup).await["recovery_left"], 9);

    // Regenerated: ten new ones, the old ones dead.
    let (status, state) = operate(&server, &setup, &[("op", "recovery-regenerate")]).await;
    assert_eq!(status, StatusCode::OK);
    let fresh = state["recovery_codes"].as_array().unwrap();
    assert_eq!(fresh.len(), 10);
    assert_eq!(state["recovery_left"], 10);
    let (status, _) = page(third.submit(&factor, &[("code", &recovery[4])]).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old set is replaced");

    // Removing the app asks a current code.
    clock.advance(30);
    let (status, _) = operate(&server, &setup, &[("op", "totp-remove"), ("code", "000000")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, state) = operate(&server, &setup, &[("op", "totp-remove"), ("code", &code_at(&app, &clock))]).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["totp"], "off");
    assert_eq!(state["recovery_left"], 0);
    // The password alone signs in again, at acr 1.
    let plain = Browser::new();
    let back = plain.authorize(&authorize_url(&server, &client_id, ""), "frank", PASSWORD).await;
    let (claims, _) = id_claims(&server, (&client_id, &secret), &query(&back, "code").unwrap()).await;
    assert_eq!((claims["acr"].clone(), claims["amr"].clone()), (json!("1"), json!(["pwd"])));

    let events = crate::audit::events(&server, &format!("subject=user:{user}")).await;
    let kinds: Vec<&str> = events["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in ["factor.totp_enabled", "factor.recovery_regenerated", "factor.recovery_used", "factor.totp_removed"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn acr_and_amr_verify_with_an_openid_connect_client() {
    let (server, clock) = server_with_clock().await;
    server.user("frank", PASSWORD).await;
    let (client_id, secret) = client(&server).await;
    let browser = Browser::new();
    account_sign_in(&server, &browser, "frank").await;
    let (app, _) = enrol(&server, &clock, &browser).await;

    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(server.issuer.clone()).unwrap(), &http)
        .await
        .expect("discovery");
    let supported: Vec<String> =
        metadata.acr_values_supported().expect("acr_values_supported").iter().map(|a| a.to_string()).collect();
    assert_eq!(supported, ["1", "2"]);
    let rp = CoreClient::from_provider_metadata(metadata, ClientId::new(client_id), Some(ClientSecret::new(secret)))
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (url, _, nonce) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_auth_context_value(AuthenticationContextClass::new("2".into()))
        .url();
    // The browser's session is at one factor (it signed in before the app was added): the
    // request asks only for the second.
    let (status, factor) = page(browser.get(url.as_str()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(factor.contains("name=\"code\"") && !factor.contains("name=\"password\""), "{factor}");
    let back = redirected(&browser.submit(&factor, &[("code", &code_at(&app, &clock))]).await);
    let code = query(&back, "code").unwrap();
    let tokens = rp.exchange_code(AuthorizationCode::new(code)).unwrap().request_async(&http).await.unwrap();
    let claims = tokens.id_token().unwrap().claims(&rp.id_token_verifier(), &nonce).expect("verifies");
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("2"));
    let methods: Vec<String> = claims.auth_method_refs().unwrap().iter().map(|m| m.to_string()).collect();
    assert_eq!(methods, ["pwd", "otp", "mfa"]);

    // The session is raised: the next request asks nothing and says two factors.
    let (url, _, _) =
        rp.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random).url();
    let back = redirected(&browser.get(url.as_str()).await);
    assert!(query(&back, "code").is_some(), "{back}");

    // A new sign-in (`prompt=login`) asks both again.
    let (status, login) = page(browser.get(&format!("{url}&prompt=login")).await).await;
    assert_eq!(status, StatusCode::OK);
    let (_, factor) = page(browser.submit(&login, &[("username", "frank"), ("password", PASSWORD)]).await).await;
    assert!(factor.contains("name=\"code\""), "{factor}");
}

#[tokio::test]
async fn a_person_without_a_second_factor_and_a_demand_for_two() {
    let server = TestServer::start().await;
    server.user("gina", PASSWORD).await;
    let (client_id, secret) = client(&server).await;
    // Voluntary (`acr_values`): one factor, and the ID token says so.
    let browser = Browser::new();
    let back = browser.authorize(&authorize_url(&server, &client_id, "&acr_values=2"), "gina", PASSWORD).await;
    let (claims, _) = id_claims(&server, (&client_id, &secret), &query(&back, "code").unwrap()).await;
    assert_eq!(claims["acr"], "1");
    // Essential (the `claims` parameter): the client is told it cannot be met.
    let claims = r#"{"id_token":{"acr":{"essential":true,"values":["2"]}}}"#;
    let extra = format!("&claims={}", url::form_urlencoded::byte_serialize(claims.as_bytes()).collect::<String>());
    let back = Browser::new().authorize(&authorize_url(&server, &client_id, &extra), "gina", PASSWORD).await;
    assert_eq!(query(&back, "error").as_deref(), Some("unmet_authentication_requirements"), "{back}");
    assert_eq!(query(&back, "state").as_deref(), Some("s"));
    // With a session, too.
    let back = redirected(&browser.get(&authorize_url(&server, &client_id, &extra)).await);
    assert_eq!(query(&back, "error").as_deref(), Some("unmet_authentication_requirements"), "{back}");
}

#[tokio::test]
async fn second_factor_attempts_are_throttled_per_address() {
    let clock = Arc::new(ManualClock::default());
    let server = TestServer::start_with(Options {
        clock: Some(clock.clone()),
        configure: Some(Box::new(|c| c.server.sign_in_attempts_per_address_per_minute = 4)),
        ..Default::default()
    })
    .await;
    server.user("frank", PASSWORD).await;
    let (client_id, _) = client(&server).await;
    let setup = Browser::from_address("127.0.0.2".parse().unwrap());
    account_sign_in(&server, &setup, "frank").await;
    let (app, _) = enrol(&server, &clock, &setup).await;

    let browser = Browser::from_address("127.0.0.3".parse().unwrap());
    let (_, login) = page(browser.get(&authorize_url(&server, &client_id, "")).await).await;
    let (_, factor) = page(browser.submit(&login, &[("username", "frank"), ("password", PASSWORD)]).await).await;
    let right = code_at(&app, &clock);
    for _ in 0..3 {
        let (status, _) = page(browser.submit(&factor, &[("code", &wrong(&right))]).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Past the address's budget even the right code is not looked at.
    let (status, throttled) = page(browser.submit(&factor, &[("code", &right)]).await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{throttled}");
    assert!(throttled.contains("name=\"code\""), "the page again, saying why");
}

#[tokio::test]
async fn an_administrator_resets_a_persons_factors() {
    let (server, clock) = server_with_clock().await;
    let user = server.user("frank", PASSWORD).await;
    let (client_id, _) = client(&server).await;
    let browser = Browser::new();
    account_sign_in(&server, &browser, "frank").await;
    enrol(&server, &clock, &browser).await;

    let path = format!("/admin/v1/users/{user}/factors");
    let (status, _, _) = server.admin(Method::DELETE, &path, "not-the-token", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = server.admin(Method::DELETE, "/admin/v1/users/nobody/factors", ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, _) = server.admin(Method::DELETE, &path, ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Their sessions ended; the password alone signs them in again.
    let r =
        browser.http.get(server.url("/account/security")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let back = Browser::new().authorize(&authorize_url(&server, &client_id, ""), "frank", PASSWORD).await;
    assert!(query(&back, "code").is_some(), "{back}");
    account_sign_in(&server, &browser, "frank").await;
    assert_eq!(security(&server, &browser).await["totp"], "off");

    let events = crate::audit::events(&server, "type=user.factors_reset").await;
    let reset = &events["events"][0];
    assert_eq!(reset["actor"], "operator");
    assert_eq!(reset["subject"], format!("user:{user}"));
}

#[tokio::test]
async fn the_account_pages_ask_the_second_factor_too() {
    let (server, clock) = server_with_clock().await;
    server.user("frank", PASSWORD).await;
    let setup = Browser::new();
    account_sign_in(&server, &setup, "frank").await;
    let (app, _) = enrol(&server, &clock, &setup).await;

    // A password alone does not reach the security page of an account that has a factor.
    let browser = Browser::new();
    let r = account_sign_in(&server, &browser, "frank").await;
    let (status, factor) = page(r).await;
    assert_eq!(status, StatusCode::OK);
    assert!(factor.contains("name=\"code\""), "{factor}");
    let r =
        browser.http.get(server.url("/account/security")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no session yet");
    let (status, again) = page(browser.submit(&factor, &[("code", "000000")]).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let r = browser.submit(&again, &[("code", &code_at(&app, &clock))]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(security(&server, &browser).await["totp"], "on");
}
