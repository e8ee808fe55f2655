//! Every page a person uses, in every locale of the default consent UI, light and dark,
//! checked by axe-core (tests/a11y, from npm) in the headless Chromium: no violation of
//! WCAG 2.1 level A or AA.

use std::collections::BTreeMap;

use fantoccini::wd::WebDriverCompatibleCommand;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::relying_party;
use crate::support::chromium::{Chromium, missing};
use crate::support::{self, TestServer};

/// The rules axe runs: WCAG 2.0 and 2.1, levels A and AA.
const WCAG_21_AA: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// WCAG 2.1 §1.4.11, which axe does not check: each visible field's border against the
/// background around it, at least 3:1. Answers the fields that fall short.
const NON_TEXT_CONTRAST: &str = "
    const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
    const luminance = ([r, g, b]) => {
        const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = el => {
        for (let e = el.parentElement; e; e = e.parentElement) {
            const c = rgb(getComputedStyle(e).backgroundColor);
            if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
        }
        return [255, 255, 255];
    };
    const short = [];
    for (const el of document.querySelectorAll('input:not([type=hidden]), textarea, select')) {
        const s = getComputedStyle(el);
        if (el.offsetParent === null || parseFloat(s.borderBottomWidth) === 0) continue;
        const [a, b] = [luminance(rgb(s.borderBottomColor).slice(0, 3)), luminance(background(el))];
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < 3) short.push(`${el.tagName.toLowerCase()}[name=${el.name}]: border ${s.borderBottomColor} on ${background(el)}: ${ratio.toFixed(2)}:1`);
    }
    return short;";

/// The locales the default consent UI renders.
const LOCALES: [&str; 5] = ["en", "ru", "nl", "de", "it"];

/// axe-core's browser build, installed by `npm ci --prefix tests/a11y`.
fn axe_source() -> Option<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/a11y/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(e) => {
            missing(&format!("{}: {e}: npm ci --prefix tests/a11y", path.display()));
            None
        }
    }
}

/// Chromium's DevTools command (through chromedriver) that makes the page prefer `scheme`.
#[derive(Debug)]
struct PreferColorScheme(&'static str);

impl WebDriverCompatibleCommand for PreferColorScheme {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({"cmd": "Emulation.setEmulatedMedia",
                          "params": {"features": [{"name": "prefers-color-scheme", "value": self.0}]}});
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

/// What axe found wrong with the pages, by page.
struct Audit {
    axe: String,
    scheme: &'static str,
    found: BTreeMap<String, Vec<String>>,
    pages: usize,
}

impl Audit {
    /// axe's violations on the page the browser shows, as JSON.
    async fn violations(&self, browser: &Chromium) -> Value {
        let client = &browser.client;
        client.execute(&format!("{}\nreturn typeof axe;", self.axe), vec![]).await.unwrap();
        let run = "const done = arguments[arguments.length - 1];
                   axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})
                      .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                          nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))))
                      .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));";
        let mut found = client.execute_async(run, vec![json!(WCAG_21_AA)]).await.unwrap();
        let borders = client.execute(NON_TEXT_CONTRAST, vec![]).await.unwrap();
        if let (Some(found), Some(borders)) = (found.as_array_mut(), borders.as_array())
            && !borders.is_empty()
        {
            found.push(json!({"id": "non-text-contrast", "impact": "serious",
                              "help": "WCAG 1.4.11: a field's border has 3:1 contrast against what is around it",
                              "nodes": borders}));
        }
        found
    }

    /// Runs axe over the page the browser shows, named `page`.
    async fn check(&mut self, browser: &Chromium, page: &str) {
        let client = &browser.client;
        let dark = client.execute("return matchMedia('(prefers-color-scheme: dark)').matches;", vec![]).await.unwrap();
        assert_eq!(dark, json!(self.scheme == "dark"), "{page}: the browser prefers {}", self.scheme);
        let violations = self.violations(browser).await;
        self.pages += 1;
        let url = client.current_url().await.unwrap();
        for v in violations.as_array().into_iter().flatten() {
            let nodes: Vec<&str> = v["nodes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            self.found.entry(format!("{page} ({}, {url})", self.scheme)).or_default().push(format!(
                "{} [{}] {}\n      {}",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?"),
                v["help"].as_str().unwrap_or("?"),
                nodes.join("\n      ")
            ));
        }
    }
}

/// A page's URL on the issuer (`localhost`, where the forms post and the cookies live).
fn on_issuer(server: &TestServer, path: &str) -> String {
    format!("{}{path}", server.issuer)
}

/// The authorization endpoint's URL on the issuer, with `pairs` as its query.
fn authorize_url(server: &TestServer, pairs: &[(&str, &str)]) -> url::Url {
    let mut url = url::Url::parse(&on_issuer(server, "/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_every_locale_passes_axe_light_and_dark() {
    let Some(axe) = axe_source() else { return };
    // A domain for an issuer, as WebAuthn asks: the pages offer passkeys.
    let server = TestServer::start_with(support::Options { localhost: true, ..Default::default() }).await;
    let redirect = relying_party().await;
    let (client_id, secret) = server.client(json!({"name": "Atlas", "redirect_uris": [redirect]})).await;
    let secret = secret.unwrap();
    let grant = "urn:ietf:params:oauth:grant-type:device_code";
    let (tv, _) = server
        .client(json!({"name": "Televisore", "public": true, "grant_types": [grant], "scopes": ["openid", "api"]}))
        .await;
    let mut pages = 0;
    let mut found = BTreeMap::new();
    for scheme in ["light", "dark"] {
        let Some(browser) = Chromium::start("en").await else { return };
        browser.client.issue_cmd(PreferColorScheme(scheme)).await.unwrap();
        let mut audit = Audit { axe: axe.clone(), scheme, found: BTreeMap::new(), pages: 0 };
        // The check itself finds what it is there to find: a page without a language whose
        // field has no label and a border too faint to see.
        let made_to_fail = "data:text/html,<title>t</title><input name=x style='border:1px solid %23ddd'>";
        browser.client.goto(made_to_fail).await.unwrap();
        let caught = audit.violations(&browser).await.to_string();
        for rule in ["html-has-lang", "label", "non-text-contrast"] {
            assert!(caught.contains(rule), "{rule} missed: {caught}");
        }
        for locale in LOCALES {
            let user = format!("{scheme}-{locale}");
            let password = format!("{user} password 1");
            server.user(&user, &password).await;
            browser.client.delete_all_cookies().await.unwrap();

            // The authorization flow: login, a failed attempt, consent.
            let authorize = authorize_url(
                &server,
                &[
                    ("response_type", "code"),
                    ("client_id", &client_id),
                    ("redirect_uri", &redirect),
                    ("scope", "openid"),
                    ("ui_locales", locale),
                ],
            );
            browser.client.goto(authorize.as_str()).await.unwrap();
            browser.wait_for("input[name=username]").await;
            audit.check(&browser, &format!("{locale} login")).await;
            browser.fill("input[name=username]", &user).await;
            browser.fill("input[name=password]", "not the password").await;
            browser.click("button[type=submit]").await;
            browser.wait_for("#login-error").await;
            audit.check(&browser, &format!("{locale} login, failed")).await;
            browser.wait_for("input[name=username]").await.clear().await.unwrap();
            browser.fill("input[name=username]", &user).await;
            browser.fill("input[name=password]", &password).await;
            browser.click("button[type=submit]").await;
            browser.wait_for("button[name=decision][value=allow]").await;
            audit.check(&browser, &format!("{locale} consent")).await;
            browser.click("button[name=decision][value=allow]").await;
            let back = browser.wait_for_url(&redirect).await;
            let code = support::query(&back, "code").expect("a code");
            let (status, tokens) = server.redeem((&client_id, &secret), &code, &redirect).await;
            assert_eq!(status, StatusCode::OK, "{tokens}");

            // An error the client cannot be told of.
            let bad = authorize_url(
                &server,
                &[
                    ("response_type", "code"),
                    ("client_id", &client_id),
                    ("redirect_uri", "https://elsewhere.example/cb"),
                    ("scope", "openid"),
                    ("ui_locales", locale),
                ],
            );
            browser.client.goto(bad.as_str()).await.unwrap();
            browser.wait_for("h1").await;
            audit.check(&browser, &format!("{locale} error")).await;

            // The account pages.
            browser
                .client
                .goto(&on_issuer(&server, &format!("/account/connections?ui_locales={locale}")))
                .await
                .unwrap();
            browser.wait_for("li.connection").await;
            audit.check(&browser, &format!("{locale} connections")).await;
            browser.client.goto(&on_issuer(&server, &format!("/account/password?ui_locales={locale}"))).await.unwrap();
            browser.wait_for("input[name=current-password]").await;
            audit.check(&browser, &format!("{locale} password")).await;

            // The device pages: the code's form, a wrong code, the question, the outcome.
            let (status, started) =
                server.form("/device_authorization", &[("client_id", &tv), ("scope", "openid api")], None).await;
            assert_eq!(status, StatusCode::OK, "{started}");
            browser.client.goto(&on_issuer(&server, &format!("/device?ui_locales={locale}"))).await.unwrap();
            browser.wait_for("input[name=user_code]").await;
            audit.check(&browser, &format!("{locale} device code")).await;
            browser.fill("input[name=user_code]", "WRONG-CODE").await;
            browser.click("button[type=submit]").await;
            browser.wait_for("[role=alert], [role=status]").await;
            audit.check(&browser, &format!("{locale} device code, refused")).await;
            browser.client.goto(&on_issuer(&server, &format!("/device?ui_locales={locale}"))).await.unwrap();
            browser.fill("input[name=user_code]", started["user_code"].as_str().unwrap()).await;
            browser.click("button[type=submit]").await;
            browser.wait_for("button[name=decision][value=allow]").await;
            audit.check(&browser, &format!("{locale} device consent")).await;
            browser.click("button[name=decision][value=allow]").await;
            browser.wait_for("[role=status]").await;
            audit.check(&browser, &format!("{locale} device connected")).await;

            // Signed out: the account pages' own sign-in.
            browser.client.delete_all_cookies().await.unwrap();
            browser
                .client
                .goto(&on_issuer(&server, &format!("/account/connections?ui_locales={locale}")))
                .await
                .unwrap();
            browser.wait_for("input[name=username]").await;
            audit.check(&browser, &format!("{locale} account sign-in")).await;

            // The security page: no second factor, an authenticator app being added, the
            // recovery codes shown once.
            browser.fill("input[name=username]", &user).await;
            browser.fill("input[name=password]", &password).await;
            browser.click("form button[type=submit]").await;
            browser.wait_for("li.connection").await;
            browser.client.goto(&on_issuer(&server, &format!("/account/security?ui_locales={locale}"))).await.unwrap();
            browser.wait_for("button[name=op][value=totp-start]").await;
            audit.check(&browser, &format!("{locale} security")).await;
            browser.click("button[name=op][value=totp-start]").await;
            let page = super::wait_for_source(&browser, "id=\"totp-secret\"").await;
            audit.check(&browser, &format!("{locale} security, adding an app")).await;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            browser.fill("input[name=code]", &super::app_in(&page).generate(now).to_string()).await;
            browser.click("button[name=op][value=totp-confirm]").await;
            browser.wait_for("button[name=op][value=recovery-regenerate]").await;
            audit.check(&browser, &format!("{locale} security, recovery codes")).await;

            // Signing out: asked, then done.
            browser.client.goto(&on_issuer(&server, &format!("/logout?ui_locales={locale}"))).await.unwrap();
            browser.wait_for("button[name=decision][value=logout]").await;
            audit.check(&browser, &format!("{locale} sign-out")).await;
            browser.click("button[name=decision][value=logout]").await;
            super::wait_gone(&browser, "button[name=decision][value=logout]").await;
            audit.check(&browser, &format!("{locale} signed out")).await;

            // Signing in again: after the password, the second factor.
            browser.client.goto(authorize.as_str()).await.unwrap();
            browser.fill("input[name=username]", &user).await;
            browser.fill("input[name=password]", &password).await;
            browser.click("form button[type=submit]").await;
            browser.wait_for("input[name=code]").await;
            audit.check(&browser, &format!("{locale} second factor")).await;
        }
        pages += audit.pages;
        found.extend(audit.found);
        browser.close().await;
    }
    let report: Vec<String> = found.iter().map(|(page, v)| format!("{page}:\n    {}", v.join("\n    "))).collect();
    assert!(
        found.is_empty(),
        "axe found WCAG 2.1 A/AA violations on {} of {pages} pages:\n{}",
        found.len(),
        report.join("\n")
    );
    assert!(pages >= 2 * LOCALES.len() * 17, "every page was checked: {pages}");
}
