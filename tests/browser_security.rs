//! What a person's browser meets: sign-in throttling that slows guessing without locking
//! anyone out, the headers of every page and of personal JSON, cookies under an https
//! issuer, private files on disk, `prompt=select_account`, the error page in the client's
//! consent UI and the asked locale, and what discovery advertises (algorithm, scopes, claims).

mod support;

use std::net::{IpAddr, Ipv4Addr};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Browser, Options, TestServer, query};

const REDIRECT: &str = "https://rp.example.com/callback";

fn from(last: u8) -> Browser {
    Browser::from_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
}

fn authorize_url(server: &TestServer, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([("response_type", "code"), ("client_id", client_id), ("state", "s")]);
    url.query_pairs_mut().extend_pairs(extra);
    url.to_string()
}

fn location(r: &reqwest::Response) -> url::Url {
    url::Url::parse(r.headers()["location"].to_str().expect("location")).expect("a URL")
}

async fn login_page(browser: &Browser, url: &str) -> String {
    let r = browser.get(url).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("name=\"password\""), "a login page: {page}");
    page
}

/// Redeems a code at the token endpoint with HTTP Basic client authentication.
async fn redeem(server: &TestServer, id: &str, secret: &str, code: &str) -> Value {
    let (status, body) = server.redeem((id, secret), code, REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

// --- sign-in throttling ------------------------------------------------------------------

#[tokio::test]
async fn the_right_password_gets_in_while_the_username_is_under_attack() {
    // Bob's attempts beyond 10 a minute are delayed, by at most a second here.
    let server = TestServer::start_with(Options {
        configure: Some(Box::new(|c| c.server.sign_in_max_delay_ms = 1000)),
        ..Default::default()
    })
    .await;
    server.user("bob", "bob's password").await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true})).await;
    let url = authorize_url(&server, &id, &[]);

    // Someone else, from another address, guesses bob's password on two login pages.
    let attacker = from(2);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let mut page = login_page(&attacker, &url).await;
        for _ in 0..6 {
            let r = attacker.submit(&page, &[("username", "bob"), ("password", "guess")]).await;
            statuses.push(r.status());
            page = r.text().await.unwrap();
        }
    }
    assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED), "delayed, not refused: {statuses:?}");

    // Bob, with his password, still gets in.
    let back = Browser::new().authorize(&url, "bob", "bob's password").await;
    assert_eq!(query(&back, "error"), None, "{back}");
    assert!(query(&back, "code").is_some(), "{back}");
}

#[tokio::test]
async fn one_address_that_floods_gets_429_pages() {
    let server = TestServer::start_with(Options {
        configure: Some(Box::new(|c| c.server.sign_in_attempts_per_address_per_minute = 5)),
        ..Default::default()
    })
    .await;
    server.user("bob", "bob's password").await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true})).await;
    let url = authorize_url(&server, &id, &[]);

    // Five attempts from one address (a different username each, as a sprayer would)...
    let flooder = from(3);
    let mut page = login_page(&flooder, &url).await;
    for n in 0..5 {
        let r = flooder.submit(&page, &[("username", &format!("user{n}")), ("password", "guess")]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
        page = r.text().await.unwrap();
    }
    // ...and the next ones are refused before any password is checked, even a right one.
    for (username, password) in [("user5", "guess"), ("bob", "bob's password")] {
        let r = flooder.submit(&page, &[("username", username), ("password", password)]).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        page = r.text().await.unwrap();
        assert!(page.contains("name=\"password\""), "the login page again, to try later");
    }
    // Another address is not affected.
    let back = from(4).authorize(&url, "bob", "bob's password").await;
    assert!(query(&back, "code").is_some(), "{back}");
}

#[tokio::test]
async fn one_login_page_cannot_be_used_for_unlimited_guesses() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true})).await;
    let url = authorize_url(&server, &id, &[]);
    let browser = Browser::new();
    let mut page = login_page(&browser, &url).await;
    // Ten guesses at ten usernames: no username is throttled, but the page counts them all.
    for n in 0..10 {
        let r = browser.submit(&page, &[("username", &format!("user{n}")), ("password", "guess")]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
        page = r.text().await.unwrap();
    }
    let spent = browser.submit(&page, &[("username", "bob"), ("password", "bob's password")]).await;
    assert_eq!(spent.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(spent.headers().get("location").is_none(), "no code for a spent page");
    let text = spent.text().await.unwrap();
    assert!(!text.contains("name=\"password\""), "the spent page offers no form: {text}");
    // The page is gone for good: posting its form again is a stale page, not a sign-in.
    let again = browser.submit(&page, &[("username", "bob"), ("password", "bob's password")]).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    // A new page works.
    let back = browser.authorize(&url, "bob", "bob's password").await;
    assert!(query(&back, "code").is_some(), "{back}");
}

#[tokio::test]
async fn password_hashes_beyond_the_queue_get_a_busy_page() {
    let server = TestServer::start_with(Options {
        configure: Some(Box::new(|c| {
            c.server.password_hash_concurrency = 1;
            c.server.password_hash_queue = 0;
        })),
        ..Default::default()
    })
    .await;
    server.user("bob", "bob's password").await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true})).await;
    let url = authorize_url(&server, &id, &[]);
    let browser = Browser::new();
    let page = login_page(&browser, &url).await;

    // The one hash slot is taken (as by a sign-in in progress): the next attempt is told to retry.
    let slot = server.app.passwords.slot().await.expect("a free slot");
    let busy = browser.submit(&page, &[("username", "bob"), ("password", "bob's password")]).await;
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = busy.text().await.unwrap();
    assert!(page.contains("busy"), "{page}");
    // Once the slot is free the same page signs bob in.
    drop(slot);
    let r = browser.submit(&page, &[("username", "bob"), ("password", "bob's password")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(query(&location(&r), "code").is_some());
}

// --- headers, cookies, files --------------------------------------------------------------

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
        // Worded for a person, the server's description folded away.
        assert!(page.contains("</h1>") && page.contains("<summary>Details</summary>"), "{page}");
    }
}

#[tokio::test]
async fn userinfo_and_introspection_answers_are_not_stored() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, secret) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true})).await;
    let secret = secret.unwrap();
    let back = Browser::new()
        .authorize(&authorize_url(&server, &id, &[("scope", "openid email")]), "bob", "bob's password")
        .await;
    let tokens = redeem(&server, &id, &secret, &query(&back, "code").unwrap()).await;
    let access = tokens["access_token"].as_str().unwrap();

    let r = server.http.get(server.url("/userinfo")).bearer_auth(access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let r = server.http.post(server.url("/userinfo")).form(&[("access_token", access)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    for token in [access, "not-a-token"] {
        let r = server
            .http
            .post(server.url("/introspect"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["cache-control"], "no-store", "{token}");
    }
}

/// The value `name` is set to in a response's `Set-Cookie` headers.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<(String, String)> {
    r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        let (pair, _) = c.split_once(';')?;
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| (v.to_owned(), c.to_owned()))
    })
}

#[tokio::test]
async fn cookies_behind_an_https_issuer_carry_the_host_prefix_and_are_read_back() {
    let server =
        TestServer::start_with(Options { issuer: Some("https://id.example.com".into()), ..Default::default() }).await;
    server.user("bob", "bob's password").await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true})).await;
    // The browser would reach the server at the issuer; here cookies travel by hand.
    let http = &server.http;
    let r = http.get(authorize_url(&server, &id, &[])).send().await.unwrap();
    let (interaction, header) =
        set_cookie(&r, "__Host-portcullis_interaction").expect("the interaction cookie has the __Host- prefix");
    // RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain.
    assert!(header.contains("; Secure") && header.contains("; Path=/;"), "{header}");
    assert!(!header.to_ascii_lowercase().contains("domain="), "{header}");
    let page = r.text().await.unwrap();
    let form = support::Form::parse(&page).unwrap();
    let mut pairs = form.hidden.clone();
    pairs.extend([("username".to_owned(), "bob".to_owned()), ("password".to_owned(), "bob's password".to_owned())]);
    let r = http
        .post(server.url("/interaction/login"))
        .header("cookie", format!("__Host-portcullis_interaction={interaction}"))
        .form(&pairs)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the prefixed interaction cookie is read back");
    let (session, header) = set_cookie(&r, "__Host-portcullis_session").expect("the session cookie has the prefix");
    assert!(header.contains("; Secure") && header.contains("; Path=/;"), "{header}");
    // The session is read back by its prefixed name: authorize answers at once.
    let r = http
        .get(authorize_url(&server, &id, &[("prompt", "none")]))
        .header("cookie", format!("__Host-portcullis_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(query(&location(&r), "code").is_some(), "{}", location(&r));
    // An unprefixed cookie (which another host could have set) is not a session.
    let r = http
        .get(authorize_url(&server, &id, &[("prompt", "none")]))
        .header("cookie", format!("portcullis_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(query(&location(&r), "error").as_deref(), Some("login_required"));
}

/// Signs `username` in by hand (no cookie jar) and returns the session cookie's value.
async fn session_cookie(server: &TestServer, client_id: &str, username: &str, password: &str) -> String {
    let http = &server.http;
    let r = http.get(authorize_url(server, client_id, &[])).send().await.unwrap();
    let (interaction, _) = set_cookie(&r, "portcullis_interaction").expect("an interaction cookie");
    let form = support::Form::parse(&r.text().await.unwrap()).unwrap();
    let mut pairs = form.hidden.clone();
    pairs.extend([("username".to_owned(), username.to_owned()), ("password".to_owned(), password.to_owned())]);
    let r = http
        .post(server.url("/interaction/login"))
        .header("cookie", format!("portcullis_interaction={interaction}"))
        .form(&pairs)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "signed in");
    set_cookie(&r, "portcullis_session").expect("a session cookie").0
}

/// What `prompt=none` answers a browser sending `session` as its session cookie: the code's
/// owner as the ID token names it, or the error.
async fn silently(server: &TestServer, client: (&str, &str), session: &str) -> Result<String, String> {
    let r = server
        .http
        .get(authorize_url(server, client.0, &[("prompt", "none"), ("scope", "openid")]))
        .header("cookie", format!("portcullis_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "prompt=none redirects, whatever the cookie");
    let at = location(&r);
    let Some(code) = query(&at, "code") else { return Err(query(&at, "error").expect("an error")) };
    let tokens = redeem(server, client.0, client.1, &code).await;
    let (_, claims) = server.verify_jwt(tokens["id_token"].as_str().expect("an ID token"), Some(client.0)).await;
    Ok(claims["sub"].as_str().expect("sub").to_owned())
}

#[tokio::test]
async fn a_session_cookie_names_its_user_and_a_cookie_naming_another_finds_no_session() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let server = TestServer::start().await;
    let alice = server.user("alice", "alice's password").await;
    let bob = server.user("bob", "bob's password").await;
    let (id, secret) = server
        .client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true, "scopes": ["openid"]}))
        .await;
    let client = (id.as_str(), secret.as_deref().expect("a confidential client"));
    let session = session_cookie(&server, &id, "alice", "alice's password").await;
    let (named, random) = session.split_once('.').expect("the cookie names its user before a dot");
    assert_eq!(URL_SAFE_NO_PAD.decode(named).unwrap(), alice.as_bytes(), "the name is the user's id");
    assert_eq!(silently(&server, client, &session).await, Ok(alice.clone()), "the session continues");

    // The same random part under another user's name, a name that is no base64url, a name
    // past the bound, and an empty one: none is a session, and none is answered with a 500.
    let long = URL_SAFE_NO_PAD.encode([b'a'; 300]);
    for forged in [
        format!("{}.{random}", URL_SAFE_NO_PAD.encode(&bob)),
        format!("%%%.{random}"),
        format!("{long}.{random}"),
        format!(".{random}"),
        random.to_owned(),
    ] {
        assert_eq!(silently(&server, client, &forged).await, Err("login_required".into()), "{forged}");
    }
    // Bob's own session is Bob's.
    let bobs = session_cookie(&server, &id, "bob", "bob's password").await;
    assert_eq!(silently(&server, client, &bobs).await, Ok(bob));
}

#[tokio::test]
async fn a_session_started_before_cookies_named_their_user_still_continues() {
    let server = TestServer::start().await;
    let alice = server.user("alice", "alice's password").await;
    let (id, secret) =
        server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "scopes": ["openid", "profile"]})).await;
    let client = (id.as_str(), secret.as_deref().expect("a confidential client"));
    // A session as earlier versions stored it: its cookie 32 random bytes, naming nobody.
    let legacy = "cvq0kTZ3sXbN6Wq1m2Yx8LrJ0pA4eUiHgDfC7oZtS5w";
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let stored = portcullis::model::Session {
        hash: portcullis::crypto::hash_secret(legacy),
        user_id: alice.clone(),
        auth_time: now,
        expires_at: now + 3600,
        assurance: None,
    };
    server.app.storage.apply(vec![portcullis::storage::write::create(&stored).unwrap()]).await.unwrap();
    // No consent yet: the session is read, and then the user and their (missing) consent.
    assert_eq!(silently(&server, client, legacy).await, Err("consent_required".into()));
    let r = server
        .http
        .get(authorize_url(&server, &id, &[("scope", "openid")]))
        .header("cookie", format!("portcullis_session={legacy}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the consent page, for the signed-in user");
    let (interaction, _) = set_cookie(&r, "portcullis_interaction").expect("an interaction cookie");
    let page = r.text().await.unwrap();
    let form = support::Form::parse(&page).expect("the consent form");
    let mut pairs = form.hidden.clone();
    pairs.push(("decision".to_owned(), "allow".to_owned()));
    let r = server
        .http
        .post(&form.action)
        .header("cookie", format!("portcullis_session={legacy}; portcullis_interaction={interaction}"))
        .form(&pairs)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    // Consented: the legacy session now continues silently, as Alice.
    assert_eq!(silently(&server, client, legacy).await, Ok(alice));
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_the_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let base = tempfile::tempdir().unwrap();
    let data_dir = base.path().join("var/portcullis");
    let dir = data_dir.clone();
    let server = TestServer::start_with(Options {
        configure: Some(Box::new(move |c| c.server.data_dir = dir)),
        ..Default::default()
    })
    .await;
    // Something written, so SQLite's WAL files exist too.
    server.user("bob", "bob's password").await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700, "data_dir");
    let mut files = 0;
    for entry in std::fs::read_dir(&data_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("portcullis.db") || name == "encryption.key" {
            assert_eq!(mode(&path) & 0o077, 0, "{name} is {:o}", mode(&path));
            files += 1;
        }
    }
    assert!(files >= 3, "the database, its WAL files and the key file were checked ({files})");
}

// --- keys -----------------------------------------------------------------------------------

#[tokio::test]
async fn changing_the_algorithm_changes_what_signs_and_discovery_lists_it_first() {
    let first = TestServer::start().await;
    let (daemon, daemon_secret) = first.client(json!({"name": "d", "grant_types": ["client_credentials"]})).await;
    let daemon_secret = daemon_secret.unwrap();
    let (_, before) =
        first.form("/token", &[("grant_type", "client_credentials")], Some((&daemon, &daemon_secret))).await;
    let before = before["access_token"].as_str().unwrap().to_owned();
    let (header, _) = first.verify_jwt(&before, None).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);

    // The same data directory, restarted with EdDSA: every algorithm was served already, so
    // the same keys are published, and what signs access tokens changes.
    let first_jwks: Value = first.http.get(first.url("/jwks.json")).send().await.unwrap().json().await.unwrap();
    let TestServer { data, issuer: first_issuer, .. } = first;
    let server =
        TestServer::start_with(Options { data: Some(data), algorithm: Some("EdDSA".into()), ..Default::default() })
            .await;
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["id_token_signing_alg_values_supported"], json!(["EdDSA", "ES256", "RS256"]));
    let jwks: Value = server.http.get(server.url("/jwks.json")).send().await.unwrap().json().await.unwrap();
    let kids = |set: &Value| {
        let mut kids: Vec<String> =
            set["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        kids.sort();
        kids
    };
    assert_eq!(kids(&jwks), kids(&first_jwks), "the keys stay as they were");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA", "the server's algorithm's key first");
    let (header, _) = support::verify_jwt(&jwks, &first_issuer, &before, None);
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256, "a token of the old key still verifies");

    // New tokens are signed with what discovery advertises, at_hash with SHA-512.
    server.user("bob", "bob's password").await;
    let (id, secret) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true})).await;
    let back =
        Browser::new().authorize(&authorize_url(&server, &id, &[("scope", "openid")]), "bob", "bob's password").await;
    let tokens = redeem(&server, &id, &secret.unwrap(), &query(&back, "code").unwrap()).await;
    let access = tokens["access_token"].as_str().unwrap();
    let (header, claims) = server.verify_jwt(tokens["id_token"].as_str().unwrap(), Some(&id)).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(claims["at_hash"], support::at_hash(jsonwebtoken::Algorithm::EdDSA, access));
    let (header, _) = server.verify_jwt(access, None).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
}

// --- prompt=select_account ------------------------------------------------------------------

#[tokio::test]
async fn prompt_select_account_lets_the_person_sign_in_as_someone_else() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let alice = server.user("alice", "alice's password").await;
    let (id, secret) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true})).await;
    let browser = Browser::new();
    let back = browser.authorize(&authorize_url(&server, &id, &[]), "bob", "bob's password").await;
    assert!(query(&back, "code").is_some());

    // With bob's session, select_account still shows the login page, bob suggested.
    let page = login_page(&browser, &authorize_url(&server, &id, &[("prompt", "select_account")])).await;
    assert!(page.contains("value=\"bob\""), "the signed-in username is suggested: {page}");
    let r = browser.submit(&page, &[("username", "alice"), ("password", "alice's password")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let back = location(&r);
    let tokens = redeem(&server, &id, &secret.unwrap(), &query(&back, "code").expect("a code")).await;
    let (_, claims) = server.verify_jwt(tokens["access_token"].as_str().unwrap(), None).await;
    assert_eq!(claims["sub"], alice.as_str(), "the code is alice's");

    // A login_hint wins over the signed-in user.
    let page =
        login_page(&browser, &authorize_url(&server, &id, &[("prompt", "select_account"), ("login_hint", "carol")]))
            .await;
    assert!(page.contains("value=\"carol\""), "{page}");
}

// --- discovery ------------------------------------------------------------------------------

#[tokio::test]
async fn discovery_advertises_the_scopes_clients_may_get_and_the_claims_tokens_carry() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, secret) = server
        .client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true,
                       "scopes": ["openid", "profile", "email", "reports.read"]}))
        .await;
    server.client(json!({"name": "d", "grant_types": ["client_credentials"], "scopes": ["invoices.write"]})).await;
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    let scopes: Vec<&str> = meta["scopes_supported"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(scopes, ["openid", "profile", "email", "offline_access", "invoices.write", "reports.read"]);

    // Every claim an ID token or userinfo carries is advertised.
    let claims_supported: Vec<&str> =
        meta["claims_supported"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let url = authorize_url(&server, &id, &[("scope", "openid profile email"), ("nonce", "n")]);
    let back = Browser::new().authorize(&url, "bob", "bob's password").await;
    let tokens = redeem(&server, &id, &secret.unwrap(), &query(&back, "code").unwrap()).await;
    let (_, id_token) = server.verify_jwt(tokens["id_token"].as_str().unwrap(), Some(&id)).await;
    let userinfo: Value = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (k, _) in id_token.as_object().unwrap().iter().chain(userinfo.as_object().unwrap()) {
        assert!(claims_supported.contains(&k.as_str()), "{k} is released but not in {claims_supported:?}");
    }
    assert!(claims_supported.contains(&"company") && claims_supported.contains(&"at_hash"), "{claims_supported:?}");
}

// --- the error page ---------------------------------------------------------------------------

#[tokio::test]
async fn the_error_page_is_the_clients_consent_ui_in_the_locale_asked_for() {
    // consent-locales renders de, fr and en, and names itself in the page.
    let policies = support::policies_copy();
    for ext in ["wasm", "toml"] {
        let name = format!("consent-locales.{ext}");
        std::fs::copy(support::fixtures_dir().join(&name), policies.path().join(&name)).unwrap();
    }
    let server = TestServer::start_with(Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    let (id, _) =
        server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "consent_ui": "consent-locales"})).await;
    let bad_redirect = [("redirect_uri", "https://evil.example.com/cb")];
    let page = |ui_locales: Option<&'static str>, accept: Option<&'static str>, client: Option<String>| {
        let server = &server;
        let mut extra = bad_redirect.to_vec();
        if let Some(l) = ui_locales {
            extra.push(("ui_locales", l));
        }
        async move {
            let client = client.unwrap_or_else(|| "nobody".into());
            let mut req = server.http.get(authorize_url(server, &client, &extra));
            if let Some(a) = accept {
                req = req.header("accept-language", a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            assert!(r.headers().get("location").is_none(), "never redirected");
            r.text().await.unwrap()
        }
    };
    let by_plugin = |html: &str| html.contains("<meta name=\"generator\" content=\"consent-locales\">");
    let lang = |html: &str| html.split("<html lang=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_owned);

    let cases = [
        (Some("fr"), None, "fr"),
        (Some("fr-CA de"), Some("de"), "fr"),
        (Some("it de"), Some("fr"), "de"),
        (Some("it"), Some("fr-CH, de;q=0.9"), "fr"),
        (None, Some("it, de;q=0.5, fr;q=0.8"), "fr"),
        (None, Some("fr;q=0, en;q=0.1"), "en"),
        (None, None, "de"),
    ];
    for (ui_locales, accept, want) in cases {
        let html = page(ui_locales, accept, Some(id.clone())).await;
        assert!(by_plugin(&html), "the client's consent UI renders its error page: {html}");
        assert_eq!(lang(&html).as_deref(), Some(want), "ui_locales={ui_locales:?} accept-language={accept:?}");
        assert!(html.contains("redirect_uri"), "the description is shown: {html}");
    }
    // An unknown client: the default consent UI, in its one locale.
    let html = page(Some("fr"), Some("fr"), None).await;
    assert!(!by_plugin(&html) && html.contains("<h1>This application cannot sign you in</h1>"), "{html}");
    assert_eq!(lang(&html).as_deref(), Some("en"));

    // The login page follows Accept-Language too when the request names no ui_locales.
    let r = server.http.get(authorize_url(&server, &id, &[])).header("accept-language", "fr").send().await.unwrap();
    let html = r.text().await.unwrap();
    assert!(by_plugin(&html) && html.contains("name=\"password\""), "{html}");
    assert_eq!(lang(&html).as_deref(), Some("fr"));
}
