//! JWT Secured Authorization Response Mode (JARM) as a client sees it: each response mode's
//! `response` verified against the published JWKS (signature, `iss`, `aud`, `exp`), its
//! parameters read from inside, and the code in it redeemed; errors JWT-secured as well;
//! the modes a response type may not use refused; registration and discovery.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Browser, TestServer, query};

const REDIRECT: &str = "https://rp.example.com/callback";
const PASSWORD: &str = "correct horse battery";

/// A confidential client registered for the code, implicit and hybrid response types.
async fn rp(server: &TestServer, extra: Value) -> (String, String) {
    let mut body = json!({"name": "RP", "redirect_uris": [REDIRECT], "scopes": ["openid", "email", "api"],
                          "response_types": ["code", "id_token", "token", "code id_token", "code id_token token"],
                          "skip_consent": true});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let (id, secret) = server.client(body).await;
    (id, secret.expect("a confidential client"))
}

fn authorize(server: &TestServer, client_id: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = server.authorize_url(&[("client_id", client_id), ("redirect_uri", REDIRECT)]);
    url.query_pairs_mut().extend_pairs(pairs);
    url.into()
}

/// The `response` parameter, which a JWT-secured response carries alone.
fn only_response(params: Vec<(String, String)>) -> String {
    match params.as_slice() {
        [(name, value)] if name == "response" => value.clone(),
        other => panic!("a JWT-secured response carries `response` alone: {other:?}"),
    }
}

/// `query.jwt` (JARM §2.3.1): the JWT in the redirect URI's query, nothing in a fragment.
fn from_query(back: &url::Url) -> String {
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert!(back.fragment().is_none(), "{back}");
    only_response(back.query_pairs().into_owned().collect())
}

/// `fragment.jwt` (JARM §2.3.2): the JWT in the fragment, nothing in the query.
fn from_fragment(back: &url::Url) -> String {
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert!(back.query().is_none(), "nothing in the query: {back}");
    let fragment = back.fragment().unwrap_or_else(|| panic!("a fragment: {back}"));
    only_response(url::form_urlencoded::parse(fragment.as_bytes()).into_owned().collect())
}

/// `form_post.jwt` (JARM §2.3.3): a page whose form posts the JWT to the redirect URI, with
/// the form post page's CSP.
async fn from_form_post(page: reqwest::Response) -> String {
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'sha256-") && csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("form-action") && csp.contains("https://rp.example.com"), "{csp}");
    let html = page.text().await.unwrap();
    let form = support::Form::parse(&html).unwrap_or_else(|| panic!("a form: {html}"));
    assert_eq!(form.action, REDIRECT);
    only_response(form.hidden)
}

fn location(r: &reqwest::Response) -> url::Url {
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap()
}

/// Checks a response JWT as a client does (JARM §2.4): its signature against the server's
/// published JWKS, `iss`, `aud` and an `exp` 10 minutes on; returns its claims.
async fn claims_of(server: &TestServer, client_id: &str, jwt: &str) -> Value {
    let (header, claims) = server.verify_jwt(jwt, Some(client_id)).await;
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(claims["iss"], server.issuer);
    assert_eq!(claims["aud"], client_id);
    let now = portcullis::model::now();
    let exp = claims["exp"].as_i64().expect("exp");
    assert!((now + 590..=now + 610).contains(&exp), "exp is 10 minutes on: {exp} at {now}");
    claims
}

fn text<'a>(claims: &'a Value, name: &str) -> &'a str {
    claims[name].as_str().unwrap_or_else(|| panic!("`{name}` in {claims}"))
}

#[tokio::test]
async fn query_jwt_carries_the_code_and_state_signed_for_the_client() {
    let server = TestServer::start().await;
    server.user("alice", PASSWORD).await;
    let (id, secret) = rp(&server, json!({})).await;
    let url = authorize(
        &server,
        &id,
        &[("response_type", "code"), ("response_mode", "query.jwt"), ("scope", "openid email"), ("state", "s-1")],
    );
    let back = Browser::new().authorize(&url, "alice", PASSWORD).await;
    let claims = claims_of(&server, &id, &from_query(&back)).await;
    assert_eq!(claims["state"], "s-1");
    assert!(claims.get("error").is_none() && claims.get("id_token").is_none(), "{claims}");
    let (status, tokens) = server.redeem((&id, &secret), text(&claims, "code"), REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "the code redeems: {tokens}");
    assert!(tokens["id_token"].is_string());
}

#[tokio::test]
async fn fragment_jwt_carries_a_hybrid_response() {
    let server = TestServer::start().await;
    server.user("alice", PASSWORD).await;
    let (id, secret) = rp(&server, json!({})).await;
    let url = authorize(
        &server,
        &id,
        &[
            ("response_type", "code id_token"),
            ("response_mode", "fragment.jwt"),
            ("scope", "openid email"),
            ("state", "s-2"),
            ("nonce", "n-2"),
        ],
    );
    let back = Browser::new().authorize(&url, "alice", PASSWORD).await;
    let claims = claims_of(&server, &id, &from_fragment(&back)).await;
    assert_eq!(claims["state"], "s-2");
    let code = text(&claims, "code");
    // The ID token inside is the one the hybrid flow issues: its nonce, `c_hash` and `s_hash`.
    let (header, id_token) = server.verify_jwt(text(&claims, "id_token"), Some(&id)).await;
    assert_eq!(id_token["nonce"], "n-2");
    assert_eq!(id_token["c_hash"], support::at_hash(header.alg, code));
    assert_eq!(id_token["s_hash"], support::at_hash(header.alg, "s-2"));
    assert!(claims.get("access_token").is_none(), "`code id_token` returns no access token: {claims}");
    let (status, tokens) = server.redeem((&id, &secret), code, REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "the code redeems: {tokens}");
}

#[tokio::test]
async fn form_post_jwt_posts_one_signed_response() {
    let server = TestServer::start().await;
    server.user("alice", PASSWORD).await;
    let (id, secret) = rp(&server, json!({})).await;
    let url = authorize(
        &server,
        &id,
        &[
            ("response_type", "code id_token token"),
            ("response_mode", "form_post.jwt"),
            ("scope", "openid api"),
            ("state", "s-3"),
            ("nonce", "n-3"),
        ],
    );
    let browser = Browser::new();
    let login = browser.get(&url).await.text().await.unwrap();
    assert!(login.contains("name=\"password\""), "the login page: {login}");
    let page = browser.submit(&login, &[("username", "alice"), ("password", PASSWORD)]).await;
    let claims = claims_of(&server, &id, &from_form_post(page).await).await;
    // Every parameter the plain response carries, as the strings they would have been.
    assert_eq!(claims["state"], "s-3");
    assert_eq!(claims["token_type"], "Bearer");
    assert_eq!(claims["scope"], "openid api");
    assert!(text(&claims, "expires_in").parse::<u64>().is_ok_and(|s| s > 0), "{claims}");
    let (_, id_token) = server.verify_jwt(text(&claims, "id_token"), Some(&id)).await;
    assert_eq!(id_token["nonce"], "n-3");
    let info =
        server.http.get(server.url("/userinfo")).bearer_auth(text(&claims, "access_token")).send().await.unwrap();
    assert_eq!(info.status(), StatusCode::OK, "the access token works");
    let (status, tokens) = server.redeem((&id, &secret), text(&claims, "code"), REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "the code redeems: {tokens}");
}

#[tokio::test]
async fn jwt_is_query_jwt_for_a_code_and_fragment_jwt_for_tokens() {
    let server = TestServer::start().await;
    server.user("alice", PASSWORD).await;
    let (id, secret) = rp(&server, json!({})).await;
    let browser = Browser::new();

    // JARM §2.3.4: `code` answers in the query.
    let url = authorize(&server, &id, &[("response_type", "code"), ("response_mode", "jwt"), ("scope", "openid")]);
    let back = browser.authorize(&url, "alice", PASSWORD).await;
    let claims = claims_of(&server, &id, &from_query(&back)).await;
    let (status, tokens) = server.redeem((&id, &secret), text(&claims, "code"), REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // A response type that returns tokens answers in the fragment (the session continues).
    let url = authorize(
        &server,
        &id,
        &[("response_type", "code id_token"), ("response_mode", "jwt"), ("scope", "openid"), ("nonce", "n-4")],
    );
    let back = location(&browser.get(&url).await);
    let claims = claims_of(&server, &id, &from_fragment(&back)).await;
    assert!(claims["id_token"].is_string(), "{claims}");
    let (status, tokens) = server.redeem((&id, &secret), text(&claims, "code"), REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // Pushed first (RFC 9126): the mode is the pushed request's.
    let pushed = [
        ("client_id", id.as_str()),
        ("response_type", "code"),
        ("response_mode", "jwt"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "pushed"),
    ];
    let (status, par) = server.form("/par", &pushed, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::CREATED, "{par}");
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([("client_id", id.as_str()), ("request_uri", text(&par, "request_uri"))]);
    let back = location(&browser.get(url.as_str()).await);
    let claims = claims_of(&server, &id, &from_query(&back)).await;
    assert_eq!(claims["state"], "pushed");
}

#[tokio::test]
async fn errors_come_back_jwt_secured_once_the_redirect_uri_is_checked() {
    let server = TestServer::start().await;
    server.user("alice", PASSWORD).await;
    let (id, _) = rp(&server, json!({})).await;

    // (parameters, error, whether the response is in the fragment)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, bool);
    let cases: &[Case] = &[
        (&[("response_type", "code"), ("response_mode", "query.jwt"), ("prompt", "none")], "login_required", false),
        (&[("response_type", "code"), ("response_mode", "jwt"), ("prompt", "none")], "login_required", false),
        (
            &[
                ("response_type", "code id_token"),
                ("response_mode", "jwt"),
                ("prompt", "none"),
                ("scope", "openid"),
                ("nonce", "n"),
            ],
            "login_required",
            true,
        ),
        // JARM §2.3.1: no tokens in the query, JWT or not; the refusal comes in the fragment.
        (&[("response_type", "token"), ("response_mode", "query.jwt"), ("scope", "api")], "invalid_request", true),
        (
            &[("response_type", "code id_token"), ("response_mode", "query.jwt"), ("scope", "openid"), ("nonce", "n")],
            "invalid_request",
            true,
        ),
        // The hybrid and implicit flows' own rules: a nonce, and identity scopes for `id_token`.
        (
            &[("response_type", "id_token"), ("response_mode", "fragment.jwt"), ("scope", "openid")],
            "invalid_request",
            true,
        ),
        (
            &[
                ("response_type", "id_token"),
                ("response_mode", "fragment.jwt"),
                ("scope", "openid api"),
                ("nonce", "n"),
            ],
            "invalid_scope",
            true,
        ),
        (&[("response_type", "code unknown"), ("response_mode", "jwt")], "unsupported_response_type", false),
        (
            &[("response_type", "code"), ("response_mode", "query.jwt"), ("code_challenge", "short")],
            "invalid_request",
            false,
        ),
    ];
    for (pairs, error, in_fragment) in cases {
        let mut pairs = pairs.to_vec();
        pairs.push(("state", "st"));
        let r = server.http.get(authorize(&server, &id, &pairs)).send().await.unwrap();
        let back = location(&r);
        let jwt = if *in_fragment { from_fragment(&back) } else { from_query(&back) };
        let claims = claims_of(&server, &id, &jwt).await;
        assert_eq!(claims["error"], *error, "{pairs:?}: {claims}");
        assert_eq!(claims["state"], "st", "{pairs:?}");
        assert!(claims["error_description"].is_string(), "{claims}");
        assert!(claims.get("code").is_none() && claims.get("access_token").is_none(), "{claims}");
    }

    // `form_post.jwt`: the error posted by the same page.
    let url =
        authorize(&server, &id, &[("response_type", "code"), ("response_mode", "form_post.jwt"), ("prompt", "none")]);
    let claims = claims_of(&server, &id, &from_form_post(server.http.get(url).send().await.unwrap()).await).await;
    assert_eq!(claims["error"], "login_required");

    // Denied at the consent page: the interaction kept the mode.
    let (asks, _) = rp(&server, json!({"skip_consent": false})).await;
    let url =
        authorize(&server, &asks, &[("response_type", "code"), ("response_mode", "query.jwt"), ("scope", "openid")]);
    let browser = Browser::new();
    let login = browser.get(&url).await.text().await.unwrap();
    let consent = browser.submit(&login, &[("username", "alice"), ("password", PASSWORD)]).await.text().await.unwrap();
    assert!(consent.contains("name=\"decision\""), "the consent page: {consent}");
    let back = location(&browser.submit(&consent, &[("decision", "deny")]).await);
    let claims = claims_of(&server, &asks, &from_query(&back)).await;
    assert_eq!(claims["error"], "access_denied");

    // A mode the server does not know is refused, in the plain query.
    let r =
        server.http.get(authorize(&server, &id, &[("response_type", "code"), ("response_mode", "query.jws")])).send();
    let back = location(&r.await.unwrap());
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query(&back, "iss").as_deref(), Some(server.issuer.as_str()));

    // Odd combinations get their RFC error (a redirect, a page or a form post), never a 500.
    for pairs in [
        &[("response_mode", "jwt")][..],
        &[("response_type", ""), ("response_mode", "fragment.jwt")],
        &[("response_type", "id_token token"), ("response_mode", "form_post.jwt")],
        &[("response_type", "code"), ("response_mode", "jwt"), ("response_mode", "jwt")],
        &[("response_type", "token"), ("response_mode", "JWT")],
    ] {
        let r = server.http.get(authorize(&server, &id, pairs)).send().await.unwrap();
        assert!(!r.status().is_server_error(), "{pairs:?}: {}", r.status());
    }

    // An unregistered redirect URI is shown on a page, JWT-secured mode or not.
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("client_id", id.as_str()),
        ("redirect_uri", "https://evil.example.com/"),
        ("response_type", "code"),
        ("response_mode", "query.jwt"),
    ]);
    let r = server.http.get(url.as_str()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn discovery_lists_the_modes_and_registration_only_algorithms_served() {
    let server = TestServer::start().await;
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    let modes = meta["response_modes_supported"].as_array().unwrap();
    for mode in ["query", "fragment", "form_post", "jwt", "query.jwt", "fragment.jwt", "form_post.jwt"] {
        assert!(modes.contains(&json!(mode)), "{mode} in {modes:?}");
    }
    assert_eq!(meta["authorization_signing_alg_values_supported"], json!(["ES256", "RS256", "EdDSA"]));

    for alg in ["ES256", "RS256", "EdDSA"] {
        let (id, _) = rp(&server, json!({"authorization_signed_response_alg": alg})).await;
        assert!(!id.is_empty());
    }
    for alg in [json!("PS256"), json!("Ed25519"), json!("none"), json!("HS256"), json!("")] {
        let (status, v) = server
            .admin_post(
                "/admin/v1/clients",
                json!({"name": "x", "redirect_uris": [REDIRECT], "authorization_signed_response_alg": alg}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{alg}: {v}");
        assert_eq!(v["field"], "authorization_signed_response_alg", "{v}");
    }
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "x", "redirect_uris": [REDIRECT], "authorization_signed_response_alg": 256}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn responses_are_signed_with_the_key_that_signs_now_and_the_algorithm_registered() {
    let server =
        TestServer::start_with(support::Options { algorithm: Some("EdDSA".into()), ..Default::default() }).await;
    server.user("alice", PASSWORD).await;
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["authorization_signing_alg_values_supported"], json!(["EdDSA", "ES256", "RS256"]));
    // Unregistered, a client's responses are signed as its ID tokens are: the server's algorithm.
    let (plain, _) = rp(&server, json!({})).await;
    let url = authorize(&server, &plain, &[("response_type", "code"), ("response_mode", "query.jwt")]);
    let jwt = from_query(&Browser::new().authorize(&url, "alice", PASSWORD).await);
    assert_eq!(jsonwebtoken::decode_header(&jwt).unwrap().alg, jsonwebtoken::Algorithm::EdDSA);
    let (es, _) = rp(&server, json!({"authorization_signed_response_alg": "ES256"})).await;
    let url = authorize(&server, &es, &[("response_type", "code"), ("response_mode", "query.jwt")]);
    let jwt = from_query(&Browser::new().authorize(&url, "alice", PASSWORD).await);
    assert_eq!(jsonwebtoken::decode_header(&jwt).unwrap().alg, jsonwebtoken::Algorithm::ES256, "as registered");
    claims_of(&server, &es, &jwt).await;
    let (id, secret) = rp(&server, json!({"authorization_signed_response_alg": "EdDSA"})).await;
    let browser = Browser::new();
    let url =
        authorize(&server, &id, &[("response_type", "code"), ("response_mode", "query.jwt"), ("scope", "openid")]);
    let jwt = from_query(&browser.authorize(&url, "alice", PASSWORD).await);
    assert_eq!(jsonwebtoken::decode_header(&jwt).unwrap().alg, jsonwebtoken::Algorithm::EdDSA);
    let claims = claims_of(&server, &id, &jwt).await;
    let (status, tokens) = server.redeem((&id, &secret), text(&claims, "code"), REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // After a rotation the new key signs (at once, asked so), and the JWKS publishes it.
    let old_kid = jsonwebtoken::decode_header(&jwt).unwrap().kid;
    let rotate = server.http.post(server.url("/admin/v1/keys/rotate")).bearer_auth(support::ADMIN_TOKEN);
    let r = rotate.json(&json!({"now": true})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let back = location(&browser.get(&url).await);
    let jwt = from_query(&back);
    assert_ne!(jsonwebtoken::decode_header(&jwt).unwrap().kid, old_kid);
    claims_of(&server, &id, &jwt).await;
}
