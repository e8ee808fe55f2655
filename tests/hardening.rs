//! Hostile and careless input: oversized requests and parameters, unknown paths, unsafe
//! registrations, and who may introspect what. Every refusal carries its RFC error code.

mod support;

use portcullis::limits;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TestServer, query};

const REDIRECT: &str = "https://rp.example.com/callback";

/// Bytes the embedded database occupies on disk: the main file and its WAL or journal.
fn database_bytes(server: &TestServer) -> u64 {
    std::fs::read_dir(server.data.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("portcullis.db"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Whether a response parked an authorization request (it sets the interaction cookie).
fn parks(r: &reqwest::Response) -> bool {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap_or_default().starts_with("portcullis_interaction="))
}

async fn json_error(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn authorize_url(server: &TestServer, pairs: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.to_string()
}

/// `n` distinct, valid scope tokens.
fn distinct_scopes(n: usize) -> String {
    (0..n).map(|i| format!("s{i}")).collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn a_megabyte_scope_and_a_huge_login_hint_are_refused_and_nothing_is_parked() {
    let server = TestServer::start().await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT]})).await;
    let base = [("response_type", "code"), ("client_id", id.as_str()), ("redirect_uri", REDIRECT), ("state", "s")];

    // An ordinary request is parked while the person signs in: the check below can see it.
    let r = server.http.post(server.url("/authorize")).form(&base).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(parks(&r));
    let before = database_bytes(&server);

    let login_hint = "x".repeat(1_900_000);
    for _ in 0..20 {
        let mut pairs = base.to_vec();
        pairs.push(("login_hint", &login_hint));
        let r = server.http.post(server.url("/authorize")).form(&pairs).send().await.unwrap();
        assert!(!parks(&r));
        let (status, body) = json_error(r).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("invalid_request")));
    }

    let mut scope = distinct_scopes(150_000);
    scope.truncate(1_000_000);
    let mut pairs = base.to_vec();
    pairs.push(("scope", scope.trim_end()));
    let r = server.http.post(server.url("/authorize")).form(&pairs).send().await.unwrap();
    assert!(!parks(&r));
    let (status, body) = json_error(r).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("invalid_request")));

    let grown = database_bytes(&server) - before;
    assert!(grown < 256 * 1024, "the database grew by {grown} bytes");
}

#[tokio::test]
async fn scopes_and_stored_parameters_are_bounded_below_the_body_limit() {
    let server = TestServer::start().await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT]})).await;
    let before = database_bytes(&server);
    let base = [("response_type", "code"), ("client_id", id.as_str()), ("redirect_uri", REDIRECT)];

    let too_many = distinct_scopes(limits::MAX_SCOPES + 1);
    let too_long = "s".repeat(limits::MAX_SCOPE_TOKEN_BYTES + 1);
    let over = |name: &str| {
        let max = limits::AUTHORIZATION_PARAMETERS.iter().find(|(n, _)| *n == name).unwrap().1;
        "a".repeat(max + 1)
    };
    let (login_hint, nonce, ui_locales, prompt) =
        (over("login_hint"), over("nonce"), over("ui_locales"), over("prompt"));
    let cases: [(&str, &str, &str); 6] = [
        ("scope", &too_many, "invalid_scope"),
        ("scope", &too_long, "invalid_scope"),
        ("login_hint", &login_hint, "invalid_request"),
        ("nonce", &nonce, "invalid_request"),
        ("ui_locales", &ui_locales, "invalid_request"),
        ("prompt", &prompt, "invalid_request"),
    ];
    for (name, value, error) in cases {
        let mut pairs = base.to_vec();
        pairs.extend([("state", "xyz"), (name, value)]);
        let r = server.http.get(authorize_url(&server, &pairs)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{name}");
        assert!(!parks(&r), "{name}");
        let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert!(back.as_str().starts_with(REDIRECT));
        assert_eq!(query(&back, "error").as_deref(), Some(error), "{name}");
        assert_eq!(query(&back, "state").as_deref(), Some("xyz"), "{name}");
    }

    // An over-long state is refused, and not sent back.
    let state = "s".repeat(limits::MAX_STATE_BYTES + 1);
    let mut pairs = base.to_vec();
    pairs.push(("state", &state));
    let r = server.http.get(authorize_url(&server, &pairs)).send().await.unwrap();
    assert!(!parks(&r));
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query(&back, "state"), None);

    assert!(database_bytes(&server) - before < 64 * 1024, "nothing was stored");

    // At the bounds, the request proceeds to the login page.
    let scopes = distinct_scopes(limits::MAX_SCOPES);
    let hint = "h".repeat(512);
    let mut pairs = base.to_vec();
    pairs.extend([("scope", scopes.as_str()), ("login_hint", &hint)]);
    let r = server.http.get(authorize_url(&server, &pairs)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(parks(&r));

    // Duplicates count towards the bound, and are dropped from what is kept.
    let token = "openid ".repeat(limits::MAX_SCOPES + 1);
    let mut pairs = base.to_vec();
    pairs.push(("scope", token.trim_end()));
    let r = server.http.get(authorize_url(&server, &pairs)).send().await.unwrap();
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_scope"));

    // The token endpoint bounds `scope` alike.
    let (cid, secret) = server.client(json!({"name": "d", "grant_types": ["client_credentials"]})).await;
    let (status, body) = server
        .form("/token", &[("grant_type", "client_credentials"), ("scope", &too_many)], Some((&cid, &secret.unwrap())))
        .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
}

#[tokio::test]
async fn oauth_endpoints_read_small_bodies_and_the_admin_api_larger_ones() {
    let server = TestServer::start().await;
    let big = "x".repeat(limits::OAUTH_BODY_BYTES + 1);
    for path in [
        "/authorize",
        "/token",
        "/introspect",
        "/revoke",
        "/userinfo",
        "/interaction/login",
        "/interaction/consent",
        "/account/login",
        "/account/connections/revoke",
        "/device",
    ] {
        let r = server.http.post(server.url(path)).form(&[("token", big.as_str())]).send().await.unwrap();
        let (status, body) = json_error(r).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("invalid_request")),
            "{path}"
        );
    }
    // A query past the bound of GET /authorize.
    let long = "x".repeat(limits::AUTHORIZE_QUERY_BYTES + 1);
    let r = server.http.get(authorize_url(&server, &[("login_hint", &long)])).send().await.unwrap();
    let (status, body) = json_error(r).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::URI_TOO_LONG, Some("invalid_request")));

    // The admin API takes a registration far larger than any OAuth request...
    let description = "d".repeat(4 * limits::OAUTH_BODY_BYTES);
    let (status, body) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "big", "description": description, "grant_types": ["client_credentials"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // ...up to its own bound.
    let description = "d".repeat(limits::ADMIN_BODY_BYTES + 1);
    let (status, body) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "huge", "description": description, "grant_types": ["client_credentials"]}),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("invalid_request")));
}

#[tokio::test]
async fn unknown_paths_are_404_and_admin_paths_still_want_the_token() {
    let server = TestServer::start().await;
    for path in ["/nope", "/admin/v1/nope", "/.well-known/unknown", "/token/extra"] {
        let r = server.http.get(server.url(path)).send().await.unwrap();
        let (status, body) = json_error(r).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{path}");
    }
    for path in ["/admin/v1/clients", "/admin/v1/users", "/admin/v1/clients/x"] {
        let r = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
    let r = server.http.post(server.url("/admin/v1/keys/rotate")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn registration_refuses_unsafe_redirect_uris_and_unbounded_lifetimes() {
    let server = TestServer::start().await;
    let too_long = format!("https://rp.example.com/{}", "a".repeat(limits::MAX_REDIRECT_URI_BYTES));
    for uri in [
        "javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "myapp:/callback",
        "http://rp.example.com/callback",
        "http://127.0.0.2.example.com/callback",
        "https://rp.example.com/callback#fragment",
        "/relative/callback",
        too_long.as_str(),
    ] {
        let (status, body) =
            server.admin_post("/admin/v1/clients", json!({"name": "rp", "redirect_uris": [uri]})).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{uri}");
    }
    for uri in [
        "https://rp.example.com/callback",
        "http://127.0.0.1:8080/callback",
        "http://[::1]:8080/callback",
        "http://localhost:3000/callback",
        "com.example.app:/oauth2redirect",
    ] {
        let (status, body) =
            server.admin_post("/admin/v1/clients", json!({"name": "rp", "redirect_uris": [uri]})).await;
        assert_eq!(status, StatusCode::CREATED, "{uri}: {body}");
    }

    for (field, seconds) in [
        ("access_token_ttl", u64::MAX),
        ("access_token_ttl", 0),
        ("access_token_ttl", 86_401),
        ("refresh_token_ttl", u64::MAX),
        ("refresh_token_ttl", 366 * 86_400),
        ("code_ttl", 3601),
    ] {
        let (status, body) = server
            .admin_post(
                "/admin/v1/clients",
                json!({"name": "rp", "redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "client_credentials"], field: seconds}),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{field}={seconds}"
        );
        assert!(body["error_description"].as_str().unwrap().contains(field), "{body}");
    }
    // At the bound, a token lives that long and expires after it was issued.
    let (id, secret) = server
        .client(json!({"name": "daemon", "grant_types": ["client_credentials"], "access_token_ttl": 86_400}))
        .await;
    let secret = secret.unwrap();
    let (_, token) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!(token["expires_in"], 86_400);
    let (_, v) =
        server.form("/introspect", &[("token", token["access_token"].as_str().unwrap())], Some((&id, &secret))).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["exp"].as_i64().unwrap() - v["iat"].as_i64().unwrap(), 86_400);
}

/// Signs bob in and redeems the code: (access token, refresh token) issued to `client`.
async fn tokens_for(server: &TestServer, client: &str, secret: &str) -> (String, String) {
    let url = authorize_url(
        server,
        &[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", REDIRECT),
            ("scope", "openid offline_access"),
        ],
    );
    let back = support::Browser::new().authorize(&url, "bob", "bob's password").await;
    let code = query(&back, "code").expect("code");
    let pairs = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, body) = server.form("/token", &pairs, Some((client, secret))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (body["access_token"].as_str().unwrap().to_owned(), body["refresh_token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn introspection_needs_a_confidential_client_and_shows_it_only_its_own_tokens() {
    let server = TestServer::start().await;
    let bob = server.user("bob", "bob's password").await;
    let (rp, rp_secret) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT]})).await;
    let rp_secret = rp_secret.unwrap();
    let (access, refresh) = tokens_for(&server, &rp, &rp_secret).await;
    let (spa, _) = server.client(json!({"name": "spa", "redirect_uris": [REDIRECT], "public": true})).await;
    let (other, other_secret) = server.client(json!({"name": "other", "grant_types": ["client_credentials"]})).await;
    let other_secret = other_secret.unwrap();
    let (rs, rs_secret) =
        server.client(json!({"name": "rs", "grant_types": ["client_credentials"], "introspect_any": true})).await;
    let rs_secret = rs_secret.unwrap();

    for token in [&access, &refresh] {
        // A public client authenticates nothing: invalid_client, whichever token it names.
        let (status, body) = server.form("/introspect", &[("token", token), ("client_id", &spa)], None).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
        // Another confidential client learns nothing about it.
        let (status, body) = server.form("/introspect", &[("token", token)], Some((&other, &other_secret))).await;
        assert_eq!((status, &body), (StatusCode::OK, &json!({"active": false})));
        let (_, body) = server
            .form(
                "/introspect",
                &[("token", token), ("token_type_hint", "refresh_token")],
                Some((&other, &other_secret)),
            )
            .await;
        assert_eq!(body, json!({"active": false}));
        // The client it was issued to does...
        let (_, body) = server.form("/introspect", &[("token", token)], Some((&rp, &rp_secret))).await;
        assert_eq!((body["active"].as_bool(), body["client_id"].as_str()), (Some(true), Some(rp.as_str())), "{body}");
        // ...and so does a resource server registered to introspect any token.
        let (_, body) = server.form("/introspect", &[("token", token)], Some((&rs, &rs_secret))).await;
        assert_eq!((body["active"].as_bool(), body["sub"].as_str()), (Some(true), Some(bob.as_str())), "{body}");
    }
    // A client still sees its own client-credentials token.
    let (_, own) = server.form("/token", &[("grant_type", "client_credentials")], Some((&other, &other_secret))).await;
    let own = own["access_token"].as_str().unwrap();
    let (_, body) = server.form("/introspect", &[("token", own)], Some((&other, &other_secret))).await;
    assert_eq!(body["active"], true);

    // Only a confidential client may be a resource server.
    let (status, body) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "x", "redirect_uris": [REDIRECT], "public": true, "introspect_any": true}),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    // Discovery no longer offers `none` at the introspection endpoint.
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        meta["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"])
    );
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `Authorization: Basic` for `id` and `secret`, as RFC 6749 §2.3.1 writes them.
fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

#[tokio::test]
async fn client_ids_are_bounded_at_every_endpoint_and_never_size_the_client_cache() {
    let server = TestServer::start().await;
    let (tv, _) = server.client(json!({"name": "tv", "public": true, "grant_types": [DEVICE_GRANT]})).await;
    let cached = || server.app.storage.cached_clients();
    let before = cached();
    let long = format!("0{}", "b".repeat(100_000));
    let too_long = "c".repeat(limits::MAX_CLIENT_ID_BYTES + 1);
    for path in ["/token", "/introspect", "/revoke", "/par", "/device_authorization"] {
        let pairs = [("grant_type", "client_credentials"), ("token", "t"), ("scope", "openid")];
        // In the Basic header...
        let r = server.http.post(server.url(path)).header("authorization", basic(&long, "x")).form(&pairs).send().await;
        let (status, body) = json_error(r.unwrap()).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{path}");
        // ...in the body, with a secret or without (a public client names itself)...
        for secret in [Some("x"), None] {
            let mut form = pairs.to_vec();
            form.push(("client_id", &too_long));
            form.extend(secret.map(|s| ("client_secret", s)));
            let (status, body) = server.form(path, &form, None).await;
            assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{path}");
        }
        // ...or as the subject of a client assertion (RFC 7523 §3), read before its signature.
        let assertion =
            unsigned_jwt(&json!({"iss": too_long, "sub": too_long, "aud": server.issuer, "exp": 4e9, "jti": "j"}));
        let mut form = pairs.to_vec();
        form.extend([("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")]);
        form.push(("client_assertion", &assertion));
        let (status, body) = server.form(path, &form, None).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{path}");
    }
    // The reproducer, at a smaller scale: ids no one registered, long and short, leave nothing behind.
    for n in 0..200 {
        let long = format!("{n}{}", "b".repeat(100_000));
        let short = format!("nobody-{n}");
        for id in [&long, &short] {
            let r = server
                .http
                .post(server.url("/token"))
                .header("authorization", basic(id, "x"))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
    }
    assert_eq!(cached(), before, "the client cache kept what unauthenticated callers sent");
    // A registered client still authenticates, and is cached.
    let (status, body) = server.form("/device_authorization", &[("client_id", &tv)], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A JWT with `claims` and a signature of nothing: enough to be read before it is verified.
fn unsigned_jwt(claims: &Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.c2ln", b64(&json!({"alg": "HS256", "typ": "JWT"})), b64(claims))
}

#[tokio::test]
async fn the_account_sign_in_takes_only_csrf_tokens_the_server_could_have_issued() {
    let server = TestServer::start().await;
    server.user("mia", "mia password 1").await;
    let limiter = &server.app.protocol.sign_in_limit;
    let before = limiter.keys();
    let post = |csrf: String| {
        server
            .http
            .post(server.url("/account/login"))
            .header("cookie", format!("portcullis_account_login={csrf}"))
            .form(&[("username", "mia"), ("password", "wrong password"), ("csrf", csrf.as_str())])
            .send()
    };
    // The reproducer: a caller-chosen token of 300 KB, cookie and field alike, is past the body bound.
    let r = post(format!("0{}", "c".repeat(300_000))).await.unwrap();
    let (status, body) = json_error(r).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("invalid_request")));
    // Within the bound, a token of a shape the server never issues is a stale form: a fresh
    // page, and no attempt counted against it.
    for n in 0..40 {
        let r = post(format!("{n}{}", "c".repeat(30_000))).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("name=\"password\""), "the login page again");
    }
    assert_eq!(limiter.keys(), before, "a caller-chosen token became a limiter key");
    // A token of the issued shape is a login page's, and counts.
    let page = server.http.get(server.url("/account/connections")).header("accept", "text/html").send().await.unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = cookie.split_once('=').unwrap().1.to_owned();
    let r = post(csrf).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a wrong password on a real page");
    assert!(limiter.keys() > before);
}

#[tokio::test]
async fn acr_values_and_claims_are_bounded_before_anything_is_parked() {
    let server = TestServer::start().await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT]})).await;
    let (tv, _) = server.client(json!({"name": "tv", "public": true, "grant_types": [DEVICE_GRANT]})).await;
    let base = [("response_type", "code"), ("client_id", id.as_str()), ("redirect_uri", REDIRECT), ("state", "s")];
    // Each about 60 KB, and within the body bound once form-encoded.
    let acr_values = (0..5000).map(|n| format!("level-{n:05}")).collect::<Vec<_>>().join(" ");
    let claims = json!({"userinfo": {"email": {"value": "a".repeat(60_000)}}}).to_string();
    let before = database_bytes(&server);
    for _ in 0..10 {
        for (name, value) in [("acr_values", &acr_values), ("claims", &claims)] {
            let mut pairs = base.to_vec();
            pairs.push((name, value));
            let r = server.http.post(server.url("/authorize")).form(&pairs).send().await.unwrap();
            assert!(!parks(&r), "{name}");
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{name}");
            let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
            assert_eq!(query(&back, "error").as_deref(), Some("invalid_request"), "{name}");
        }
        // A public client's device authorization request is stored: bounded alike.
        let pairs = [("client_id", tv.as_str()), ("acr_values", &acr_values)];
        let (status, body) = server.form("/device_authorization", &pairs, None).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    }
    let grown = database_bytes(&server) - before;
    assert!(grown < 128 * 1024, "the database grew by {grown} bytes");
    // At their bounds, both are parked with the request.
    let acr = |max: usize| acr_values[..max].rsplit_once(' ').unwrap().0.to_owned();
    let acr = acr(limits::MAX_ACR_VALUES_BYTES);
    let fitting_claims = json!({"userinfo": {"email": {"essential": true}}}).to_string();
    let mut pairs = base.to_vec();
    pairs.extend([("acr_values", acr.as_str()), ("claims", fitting_claims.as_str())]);
    let r = server.http.post(server.url("/authorize")).form(&pairs).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(parks(&r));
    let (status, body) =
        server.form("/device_authorization", &[("client_id", tv.as_str()), ("acr_values", &acr)], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_hashes_passwords_through_the_bounded_hasher() {
    let server = TestServer::start_with(support::Options {
        configure: Some(Box::new(|c| {
            c.server.password_hash_concurrency = 1;
            c.server.password_hash_queue = 1;
        })),
        ..Default::default()
    })
    .await;
    let server = std::sync::Arc::new(server);
    let creations = (0..32).map(|n| {
        let server = server.clone();
        tokio::spawn(async move {
            let body = json!({"username": format!("user{n}"), "password": "a long password", "email": "", "name": ""});
            let r = server.http.post(server.url("/admin/v1/users")).bearer_auth(support::ADMIN_TOKEN).json(&body);
            let r = r.send().await.unwrap();
            let retry_after = r.headers().get("retry-after").is_some();
            let (status, body) = json_error(r).await;
            (status, body, retry_after)
        })
    });
    let answers = futures::future::join_all(creations).await;
    let mut created = 0;
    let mut busy = 0;
    for answer in answers {
        let (status, body, retry_after) = answer.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"], "temporarily_unavailable", "{body}");
                assert!(retry_after, "a 503 says when to try again");
                busy += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(busy > 0, "every one of 32 hashes was queued at once ({created} created)");
    let (status, _, users) = server.admin(reqwest::Method::GET, "/admin/v1/users", support::ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(users.as_array().unwrap().len(), created);
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_the_server_keeps_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(support::Options {
        configure: Some(Box::new(|c| {
            c.server.max_connections = 8;
            c.server.header_read_timeout_secs = 1;
            c.server.idle_timeout_secs = 2;
        })),
        ..Default::default()
    })
    .await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let connect = |sent: &'static [u8]| {
        let address = address.clone();
        async move {
            let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
            connection.write_all(sent).await.unwrap();
            connection
        }
    };
    let mut stalled = Vec::new();
    // Three times as many as the server serves at once, each a request line and never the
    // rest of its head...
    for _ in 0..24 {
        stalled.push(connect(b"GET /health HTTP/1.1\r\n").await);
    }
    // ...a body that stops coming...
    stalled.push(
        connect(b"POST /token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 1000\r\n\r\ngrant_type=").await,
    );
    // ...and a connection kept alive after its answer, asking nothing more.
    stalled.push(connect(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await);

    let r = server.http.get(server.url("/health")).timeout(std::time::Duration::from_secs(15)).send().await;
    assert!(r.is_ok_and(|r| r.status() == StatusCode::OK), "the server answers past the stalled connections");
    let mut answer = Vec::new();
    for (n, connection) in stalled.iter_mut().enumerate() {
        answer.clear();
        let closed =
            tokio::time::timeout(std::time::Duration::from_secs(15), connection.read_to_end(&mut answer)).await;
        assert!(closed.is_ok(), "connection {n} stayed open");
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "the kept-alive connection was answered first");
}

#[tokio::test]
async fn past_the_requests_in_flight_bound_a_request_is_shed_with_retry_after() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(support::Options {
        metrics: true,
        configure: Some(Box::new(|c| {
            c.server.max_requests_in_flight = 2;
            c.server.max_scheduling_delay_ms = 0;
        })),
        ..Default::default()
    })
    .await;
    let address = server.base.trim_start_matches("http://").to_owned();
    // Two token requests whose bodies have not all come: each is being answered, waiting for it.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut connection = tokio::net::TcpStream::connect(&address).await.unwrap();
        connection
            .write_all(b"POST /token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 41\r\n\r\ngrant_type=")
            .await
            .unwrap();
        held.push(connection);
    }
    // A third request is refused at once, as soon as the server has both in hand.
    let mut shed = None;
    for _ in 0..200 {
        let r = server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            shed = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let shed = shed.expect("a third request at once is shed");
    assert!(shed.headers().contains_key("retry-after"), "a shed request says when to come back");
    let (status, body) = json_error(shed).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("temporarily_unavailable")));
    // The health endpoints are answered whatever the load: an orchestrator must see the replica.
    for path in ["/health/live", "/health/ready"] {
        let r = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path} while at the bound");
    }
    // The held requests end (the rest of their bodies comes) and are answered as usual...
    for connection in &mut held {
        connection.write_all(b"client_credentials&client_id=x").await.unwrap();
        let mut head = [0u8; 12];
        connection.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 401", "a held request is answered as it would have been");
    }
    drop(held);
    // ...and then requests are admitted again.
    let mut admitted = false;
    for _ in 0..200 {
        let r = server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap();
        if r.status() == StatusCode::OK {
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(admitted, "requests are admitted once the held ones are answered");
    let scrape = server
        .http
        .get(format!("{}/metrics", server.metrics.as_deref().expect("metrics")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let shed_total = scrape
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_requests_shed_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(shed_total.is_some_and(|n| n >= 1.0), "the shed requests are counted: {shed_total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_server_running_late_sheds_requests_until_it_catches_up() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let server = TestServer::start_with(support::Options {
        configure: Some(Box::new(|c| c.server.max_scheduling_delay_ms = 50)),
        ..Default::default()
    })
    .await;
    let discovery = server.url("/.well-known/openid-configuration");
    let r = server.http.get(&discovery).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "admitted while the server keeps up");
    // More work than the server's one thread runs: forty tasks taking 5 ms each turn, so
    // that whatever is ready waits some 200 ms for the thread.
    let busy = Arc::new(AtomicBool::new(true));
    for _ in 0..40 {
        let busy = busy.clone();
        tokio::spawn(async move {
            while busy.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(5));
                tokio::task::yield_now().await;
            }
        });
    }
    let mut shed = None;
    for _ in 0..50 {
        let r = server.http.get(&discovery).send().await.unwrap();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            shed = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
    }
    let shed = shed.expect("a server running late sheds requests");
    assert!(shed.headers().contains_key("retry-after"), "a shed request says when to come back");
    let (status, body) = json_error(shed).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("temporarily_unavailable")));
    let live = server.http.get(server.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK, "liveness is answered while requests are shed");
    // Once the work is done, requests are admitted again.
    busy.store(false, Ordering::Relaxed);
    let mut admitted = false;
    for _ in 0..200 {
        if server.http.get(&discovery).send().await.unwrap().status() == StatusCode::OK {
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(admitted, "requests are admitted again once the server has caught up");
}
