//! The authorization server as relying parties see it: discovery, the authorization code
//! flow through the real login and consent forms, tokens checked against the JWKS with the
//! `openidconnect` crate, refresh rotation, client credentials with the `oauth2` crate,
//! introspection, revocation, and every bad input answered with its RFC error.

mod support;

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Browser, TestServer, query};

const REDIRECT: &str = "https://rp.example.com/callback";

fn rp_http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("rp http")
}

#[tokio::test]
async fn discovery_metadata_and_jwks() {
    let server = TestServer::start().await;
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["issuer"], server.issuer);
    assert_eq!(meta["token_endpoint"], server.url("/token"));
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    assert_eq!(meta["id_token_signing_alg_values_supported"], json!(["ES256", "RS256", "EdDSA"]));
    assert_eq!(meta["ui_locales_supported"], json!(["en", "ru", "nl", "de", "it"]), "the consent UI's locales");
    let rfc8414: Value = server
        .http
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rfc8414["issuer"], server.issuer);
    let jwks: Value = server.http.get(server.url("/jwks.json")).send().await.unwrap().json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert!(key.get("d").is_none(), "the JWKS must never publish a private key");
}

#[tokio::test]
async fn authorization_code_flow_with_pkce_id_token_userinfo_and_refresh() {
    let server = TestServer::start().await;
    server.user("alice", "correct horse battery").await;
    let (client_id, secret) = server
        .client(json!({"name": "Relying Party", "redirect_uris": [REDIRECT],
                       "scopes": ["openid", "profile", "email", "offline_access"]}))
        .await;

    let http = rp_http();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(server.issuer.clone()).unwrap(), &http)
        .await
        .expect("discovery");
    let rp =
        CoreClient::from_provider_metadata(metadata, ClientId::new(client_id.clone()), secret.map(ClientSecret::new))
            .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let browser = Browser::new();
    let back = browser.authorize(url.as_str(), "alice", "correct horse battery").await;
    assert_eq!(query(&back, "state").as_deref(), Some(state.secret().as_str()));
    assert_eq!(query(&back, "iss").as_deref(), Some(server.issuer.as_str()), "RFC 9207 iss");
    let code = query(&back, "code").expect("code");

    let tokens = rp
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token exchange");
    let id_token = tokens.id_token().expect("id_token");
    let verifier = rp.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).expect("ID token verifies against the JWKS");
    assert_eq!(claims.email().map(|e| e.as_str()), Some("alice@example.com"));
    assert!(claims.auth_time().is_some());
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));
    let granted: Vec<String> = tokens.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    assert_eq!(granted, ["openid", "profile", "email", "offline_access"]);

    let info: CoreUserInfoClaims =
        rp.user_info(tokens.access_token().clone(), None).unwrap().request_async(&http).await.expect("userinfo");
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.com"));
    let raw: Value = server
        .http
        .get(server.url("/userinfo"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["company"], "Example GmbH");

    // Rotation: each refresh returns a new refresh token...
    let first_refresh = tokens.refresh_token().expect("refresh token with offline_access").clone();
    let refreshed = rp.exchange_refresh_token(&first_refresh).unwrap().request_async(&http).await.expect("refresh");
    let second_refresh = refreshed.refresh_token().expect("rotated refresh token").clone();
    assert_ne!(first_refresh.secret(), second_refresh.secret());
    // ...and presenting the rotated one again revokes the whole family.
    let reuse = rp.exchange_refresh_token(&first_refresh).unwrap().request_async(&http).await;
    assert!(reuse.is_err(), "a rotated refresh token must not work twice");
    let (status, body) = server
        .form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", second_refresh.secret()),
                ("client_id", &client_id),
                ("client_secret", "x"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let family_dead = rp.exchange_refresh_token(&second_refresh).unwrap().request_async(&http).await;
    assert!(family_dead.is_err(), "reuse detection revokes the newest token of the family too");
    let info =
        server.http.get(server.url("/userinfo")).bearer_auth(refreshed.access_token().secret()).send().await.unwrap();
    assert_eq!(info.status(), StatusCode::UNAUTHORIZED, "access tokens of a revoked family are dead");

    // The code worked once; a replay is invalid_grant.
    let replay = rp.exchange_code(AuthorizationCode::new(code)).unwrap().request_async(&http).await;
    assert!(replay.is_err());

    // Consent is remembered: with the session, authorize redirects straight back.
    let (url, _, _) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(PkceCodeChallenge::new_random_sha256().0)
        .url();
    let direct = browser.get(url.as_str()).await;
    assert_eq!(direct.status(), StatusCode::SEE_OTHER);
    let back = url::Url::parse(direct.headers()["location"].to_str().unwrap()).unwrap();
    assert!(query(&back, "code").is_some() && query(&back, "error").is_none(), "{back}");
}

/// Exchanges a code obtained with `redirect_uri=REDIRECT` at the token endpoint.
async fn redeem(server: &TestServer, id: &str, secret: &str, code: &str) -> (StatusCode, Value) {
    server.redeem((id, secret), code, REDIRECT).await
}

async fn code_for(server: &TestServer, client_id: &str, extra: &[(&str, &str)]) -> (Browser, url::Url) {
    let browser = Browser::new();
    let mut url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("state", "s1"),
    ]);
    url.query_pairs_mut().extend_pairs(extra);
    let back = browser.authorize(url.as_str(), "bob", "bob's password").await;
    (browser, back)
}

/// A server with the user bob, and a confidential client (its id and secret) that is issued
/// refresh tokens.
async fn bob_and_a_client_with_refresh_tokens() -> (TestServer, String, String) {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, secret) =
        server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "always_issue_refresh_token": true})).await;
    (server, id, secret.unwrap())
}

#[tokio::test]
async fn code_replay_revokes_what_the_code_issued() {
    let (server, id, secret) = bob_and_a_client_with_refresh_tokens().await;
    let (_, back) = code_for(&server, &id, &[("scope", "openid")]).await;
    let code = query(&back, "code").unwrap();
    let pairs = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, first) = server.form("/token", &pairs, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, second) = server.form("/token", &pairs, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(second["error"], "invalid_grant");
    let refresh = first["refresh_token"].as_str().unwrap();
    let (status, body) = server
        .form("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh)], Some((&id, &secret)))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "the replay revoked the refresh token"
    );
    let (_, introspected) =
        server.form("/introspect", &[("token", first["access_token"].as_str().unwrap())], Some((&id, &secret))).await;
    assert_eq!(introspected["active"], false);
}

/// The names of a JSON object's members, sorted.
fn members(v: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

/// RFC 7662 §2.2: a live token's introspection names what it grants, with the claims its
/// JWT carries; a refresh token's, what its grant holds; and nothing else.
#[tokio::test]
async fn introspection_tells_what_an_access_token_and_a_refresh_token_grant() {
    let (server, id, secret) = bob_and_a_client_with_refresh_tokens().await;
    let (_, back) = code_for(&server, &id, &[("scope", "openid")]).await;
    let (status, tokens) = redeem(&server, &id, &secret, &query(&back, "code").unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let (_, claims) = server.verify_jwt(access, None).await;

    let (status, v) = server.form("/introspect", &[("token", access)], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        members(&v),
        [
            "acr",
            "active",
            "amr",
            "aud",
            "auth_time",
            "client_id",
            "exp",
            "iat",
            "iss",
            "jti",
            "scope",
            "sub",
            "token_type"
        ],
        "{v}"
    );
    assert_eq!((&v["active"], &v["token_type"]), (&json!(true), &json!("Bearer")));
    for claim in ["acr", "amr", "aud", "auth_time", "client_id", "exp", "iat", "iss", "jti", "scope", "sub"] {
        assert_eq!(v[claim], claims[claim], "`{claim}` as the token says");
    }

    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, r) = server.form("/introspect", &[("token", refresh)], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(members(&r), ["active", "client_id", "exp", "iat", "iss", "scope", "sub", "token_type"], "{r}");
    assert_eq!((&r["active"], &r["token_type"]), (&json!(true), &json!("refresh_token")));
    assert_eq!((&r["client_id"], &r["sub"], &r["iss"]), (&claims["client_id"], &claims["sub"], &claims["iss"]));
    assert_eq!(r["scope"], tokens["scope"]);
    assert!(r["exp"].as_i64().unwrap() > claims["exp"].as_i64().unwrap(), "{r}");

    // Used once, the refresh token is consumed: inactive, and `active` is all it says.
    let pairs = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    assert_eq!(server.form("/token", &pairs, Some((&id, &secret))).await.0, StatusCode::OK);
    let (_, used) = server.form("/introspect", &[("token", refresh)], Some((&id, &secret))).await;
    assert_eq!(used, json!({"active": false}));
}

#[tokio::test]
async fn grant_ids_begin_with_the_time_they_were_made() {
    // A grant's id (an access token's `gid`) is a UUIDv7: grants made one after another are
    // stored side by side, where random ids would scatter them.
    use base64::Engine;
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, secret) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT]})).await;
    let secret = secret.unwrap();
    let mut gids = Vec::new();
    for _ in 0..3 {
        let (_, back) = code_for(&server, &id, &[("scope", "openid")]).await;
        let (status, body) = redeem(&server, &id, &secret, &query(&back, "code").unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let payload = body["access_token"].as_str().unwrap().split('.').nth(1).unwrap().to_owned();
        let claims: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        gids.push(claims["gid"].as_str().expect("a gid").to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    for gid in &gids {
        let uuid = uuid::Uuid::parse_str(gid).expect("a UUID in 32 hex digits");
        assert_eq!((gid.len(), uuid.get_version_num()), (32, 7), "{gid}");
        let (seconds, nanos) = uuid.get_timestamp().expect("a time").to_unix();
        let made = seconds * 1000 + u64::from(nanos) / 1_000_000;
        assert!(made <= now && now - made < 60_000, "{gid} was made at {made}, now is {now}");
    }
    assert!(gids.windows(2).all(|w| w[0] < w[1]), "in the order they were made: {gids:?}");
}

#[tokio::test]
async fn expired_code_is_invalid_grant() {
    let clock = std::sync::Arc::new(portcullis::model::ManualClock::default());
    let server = TestServer::start_with(support::Options { clock: Some(clock.clone()), ..Default::default() }).await;
    server.user("bob", "bob's password").await;
    let (id, secret) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "code_ttl": 60})).await;
    let (_, back) = code_for(&server, &id, &[]).await;
    let code = query(&back, "code").unwrap();
    clock.advance(61);
    let (status, body) = redeem(&server, &id, &secret.unwrap(), &code).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

#[tokio::test]
async fn access_tokens_expire_by_the_servers_clock() {
    let clock = std::sync::Arc::new(portcullis::model::ManualClock::default());
    let server = TestServer::start_with(support::Options { clock: Some(clock.clone()), ..Default::default() }).await;
    let (id, secret) = server
        .client(
            json!({"name": "daemon", "grant_types": ["client_credentials"], "scopes": ["a"], "access_token_ttl": 300}),
        )
        .await;
    let secret = secret.unwrap();
    let (_, body) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let pairs = [("token", token.as_str())];
    let introspect = || server.form("/introspect", &pairs, Some((&id, &secret)));
    assert_eq!(introspect().await.1["active"], true);
    clock.advance(299);
    assert_eq!(introspect().await.1["active"], true, "live until its last second");
    clock.advance(1);
    assert_eq!(introspect().await.1["active"], false, "expired at `exp`");
}

#[tokio::test]
async fn client_credentials_introspection_and_revocation() {
    use oauth2::basic::BasicClient;
    use oauth2::{AuthUrl, TokenUrl};

    let server = TestServer::start().await;
    let (id, secret) = server
        .client(json!({"name": "daemon", "grant_types": ["client_credentials"], "scopes": ["api.read", "api.write"]}))
        .await;
    let secret = secret.unwrap();
    let rp = BasicClient::new(oauth2::ClientId::new(id.clone()))
        .set_client_secret(oauth2::ClientSecret::new(secret.clone()))
        .set_auth_uri(AuthUrl::new(server.url("/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(server.url("/token")).unwrap());
    let http = rp_http();
    let token = rp
        .exchange_client_credentials()
        .add_scope(oauth2::Scope::new("api.read".into()))
        .request_async(&http)
        .await
        .expect("client credentials");
    assert_eq!(token.scopes().unwrap()[0].as_str(), "api.read");
    assert!(token.refresh_token().is_none(), "RFC 6749 §4.4.3: no refresh token");
    let access = token.access_token().secret().clone();
    let header: Value = {
        use base64::Engine;
        let h = access.split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
    };
    assert_eq!(header["typ"], "at+jwt", "RFC 9068 access token");
    assert_eq!(header["alg"], "ES256");

    // No scope requested: everything the client may have.
    let (_, all) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!(all["scope"], "api.read api.write");
    // Nothing allowed among the requested scopes: invalid_scope.
    let (status, denied) =
        server.form("/token", &[("grant_type", "client_credentials"), ("scope", "admin")], Some((&id, &secret))).await;
    assert_eq!((status, denied["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));

    let (status, live) = server.form("/introspect", &[("token", &access)], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(live["active"], true);
    assert_eq!(live["client_id"], id);
    assert_eq!(live["scope"], "api.read");
    let (status, _) =
        server.form("/revoke", &[("token", &access), ("token_type_hint", "access_token")], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, dead) = server.form("/introspect", &[("token", &access)], Some((&id, &secret))).await;
    assert_eq!(dead["active"], false);
    let (status, _) = server.form("/revoke", &[("token", "not-a-token")], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "RFC 7009 §2.2: unknown tokens are not an error");
    let (_, garbage) = server.form("/introspect", &[("token", "a.b.c")], Some((&id, &secret))).await;
    assert_eq!(garbage, json!({"active": false}));
}

#[tokio::test]
async fn bad_input_gets_the_rfc_error_never_a_500() {
    let server = TestServer::start().await;
    let (id, secret) =
        server.client(json!({"name": "daemon", "grant_types": ["client_credentials"], "scopes": ["a"]})).await;
    let secret = secret.unwrap();
    type Case<'a> = (Vec<(&'a str, &'a str)>, Option<(&'a str, &'a str)>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("grant_type", "client_credentials")], Some((&id, "wrong")), StatusCode::UNAUTHORIZED, "invalid_client"),
        (vec![("grant_type", "client_credentials")], Some(("nobody", "x")), StatusCode::UNAUTHORIZED, "invalid_client"),
        (
            vec![("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", "wrong")],
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            vec![("grant_type", "urn:example:unknown")],
            Some((&id, &secret)),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (vec![], Some((&id, &secret)), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            vec![("grant_type", "authorization_code"), ("code", "x")],
            Some((&id, &secret)),
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
        ),
        (
            vec![("grant_type", "client_credentials"), ("grant_type", "client_credentials")],
            Some((&id, &secret)),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            vec![("grant_type", "client_credentials"), ("scope", "a\u{7f}")],
            Some((&id, &secret)),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            vec![("grant_type", "client_credentials"), ("client_secret", &secret)],
            Some((&id, &secret)),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (pairs, basic, status, error) in cases {
        let (got, body) = server.form("/token", &pairs, basic).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(error)), "{pairs:?} → {body}");
        assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()));
    }
    // Not a form body at all.
    for (content_type, body) in [
        ("application/json", "{\"grant_type\":\"client_credentials\"}"),
        ("application/x-www-form-urlencoded", "%%%\u{0}&&="),
    ] {
        let r = server
            .http
            .post(server.url("/token"))
            .header("content-type", content_type)
            .basic_auth(&id, Some(&secret))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{content_type}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_request");
    }
    let r = server
        .http
        .post(server.url("/token"))
        .header("authorization", "Basic !!!")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    // Userinfo without or with a bad token.
    let r = server.http.get(server.url("/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = server.http.get(server.url("/userinfo")).bearer_auth("garbage").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Introspection and revocation need client authentication.
    let (status, body) = server.form("/introspect", &[("token", "x")], None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let (status, body) = server.form("/revoke", &[("token", "x")], Some((&id, "wrong"))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    // Admin API: malformed JSON and unknown fields are 400, a wrong token 401.
    let r = server
        .http
        .post(server.url("/admin/v1/clients"))
        .bearer_auth(support::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (status, _) = server.admin_post("/admin/v1/clients", json!({"name": "x", "colour": "red"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let r = server.http.get(server.url("/admin/v1/clients")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn authorization_errors_are_shown_or_redirected_as_rfc6749_says() {
    let server = TestServer::start().await;
    let (id, _) =
        server.client(json!({"name": "rp", "redirect_uris": [REDIRECT, "https://rp.example.com/other"]})).await;
    let browser = Browser::new();
    let authorize = |pairs: &[(&str, &str)]| {
        let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(pairs);
        url.to_string()
    };
    // Unknown client, unregistered or missing redirect URI: a page, never a redirect.
    for pairs in [
        vec![("response_type", "code"), ("client_id", "nobody"), ("redirect_uri", REDIRECT)],
        vec![("response_type", "code"), ("client_id", id.as_str()), ("redirect_uri", "https://evil.example.com/cb")],
        vec![("response_type", "code"), ("client_id", id.as_str())],
        vec![("response_type", "code")],
    ] {
        let r = browser.get(&authorize(&pairs)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{pairs:?}");
        assert!(r.headers().get("location").is_none());
    }
    // Everything else goes back to the client with error, state and iss.
    let cases = [
        (vec![("response_type", "code"), ("response_mode", "query.jws")], "invalid_request"),
        (vec![("response_type", "code unknown")], "unsupported_response_type"),
        (vec![("response_type", "code"), ("prompt", "none")], "login_required"),
        (
            vec![("response_type", "code"), ("code_challenge", "short"), ("code_challenge_method", "S256")],
            "invalid_request",
        ),
        (
            vec![
                ("response_type", "code"),
                ("code_challenge", "E9Melhoa2OwvFrEQ1-RQcbhYeXnoQOGWKwCp5U9WpT4M"),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (vec![("response_type", "code"), ("max_age", "-1")], "invalid_request"),
        (vec![("response_type", "code"), ("prompt", "none login")], "invalid_request"),
    ];
    for (extra, error) in cases {
        let mut pairs = vec![("client_id", id.as_str()), ("redirect_uri", REDIRECT), ("state", "xyz")];
        pairs.extend(extra.iter().copied());
        let r = browser.get(&authorize(&pairs)).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{extra:?}");
        let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert!(back.as_str().starts_with(REDIRECT));
        assert_eq!(query(&back, "error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(query(&back, "state").as_deref(), Some("xyz"));
        assert_eq!(query(&back, "iss").as_deref(), Some(server.issuer.as_str()));
    }
}

#[tokio::test]
async fn wrong_redirect_uri_at_the_token_endpoint_and_denied_consent() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, secret) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT]})).await;
    let (_, back) = code_for(&server, &id, &[("scope", "openid")]).await;
    let code = query(&back, "code").unwrap();
    let (status, body) = server
        .form(
            "/token",
            &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://rp.example.com/x")],
            Some((&id, secret.as_deref().unwrap())),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

    // A second client: the user denies consent.
    let (id2, _) = server.client(json!({"name": "other", "redirect_uris": [REDIRECT]})).await;
    let browser = Browser::new();
    let url = server.authorize_url(&[("response_type", "code"), ("client_id", id2.as_str()), ("state", "d")]);
    let login = browser.get(url.as_str()).await.text().await.unwrap();
    let consent =
        browser.submit(&login, &[("username", "bob"), ("password", "bob's password")]).await.text().await.unwrap();
    let denied = browser.submit(&consent, &[("decision", "deny")]).await;
    let back = url::Url::parse(denied.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("access_denied"));
    // A wrong password re-renders the login page, with no redirect.
    let browser = Browser::new();
    let login = browser.get(url.as_str()).await.text().await.unwrap();
    let again = browser.submit(&login, &[("username", "bob"), ("password", "nope")]).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(again.text().await.unwrap().contains("name=\"password\""));
}

#[tokio::test]
async fn refresh_token_only_with_offline_access() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, secret) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT]})).await;
    let secret = secret.unwrap();
    for (scope, expect_refresh) in [("openid", false), ("openid offline_access", true)] {
        let (_, back) = code_for(&server, &id, &[("scope", scope)]).await;
        let code = query(&back, "code").unwrap();
        let (status, body) = redeem(&server, &id, &secret, &code).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body.get("refresh_token").is_some(), expect_refresh, "{scope}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 600);
    }
}

#[tokio::test]
async fn refresh_rotation_race_has_one_winner() {
    let (server, id, secret) = bob_and_a_client_with_refresh_tokens().await;
    let (_, back) = code_for(&server, &id, &[]).await;
    let code = query(&back, "code").unwrap();
    let (_, body) = redeem(&server, &id, &secret, &code).await;
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let pairs = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    let attempts = (0..4).map(|_| server.form("/token", &pairs, Some((&id, &secret))));
    let results = futures::future::join_all(attempts).await;
    let winners = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(results.iter().all(|(s, b)| *s == StatusCode::OK || b["error"] == "invalid_grant"));
}

#[tokio::test]
async fn expired_or_deleted_clients_get_nothing() {
    let server = TestServer::start().await;
    let past = portcullis::model::now() - 10;
    let (id, secret) =
        server.client(json!({"name": "old", "grant_types": ["client_credentials"], "expires_at": past})).await;
    let (status, body) =
        server.form("/token", &[("grant_type", "client_credentials")], Some((&id, secret.as_deref().unwrap()))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));

    let (id, secret) = server.client(json!({"name": "gone", "grant_types": ["client_credentials"]})).await;
    let secret = secret.unwrap();
    let (_, token) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    let (introspector, isecret) =
        server.client(json!({"name": "rs", "grant_types": ["client_credentials"], "introspect_any": true})).await;
    let access = token["access_token"].as_str().unwrap();
    let (_, live) =
        server.form("/introspect", &[("token", access)], Some((&introspector, isecret.as_deref().unwrap()))).await;
    assert_eq!(live["active"], true);
    let r = server
        .http
        .delete(server.url(&format!("/admin/v1/clients/{id}")))
        .bearer_auth(support::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, dead) =
        server.form("/introspect", &[("token", access)], Some((&introspector, isecret.as_deref().unwrap()))).await;
    assert_eq!(dead["active"], false, "deleting a client kills its tokens at once");
    let (status, _) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_verifiable() {
    let server = TestServer::start().await;
    let (id, secret) = server.client(json!({"name": "daemon", "grant_types": ["client_credentials"]})).await;
    let secret = secret.unwrap();
    let (_, before) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    let rotate = server.http.post(server.url("/admin/v1/keys/rotate")).bearer_auth(support::ADMIN_TOKEN);
    let r = rotate.json(&json!({"now": true})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let jwks: Value = server.http.get(server.url("/jwks.json")).send().await.unwrap().json().await.unwrap();
    let es256 = jwks["keys"].as_array().unwrap().iter().filter(|k| k["alg"] == "ES256").count();
    assert_eq!(es256, 2, "the old key stays published");
    let (_, after) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    for t in [&before, &after] {
        let (_, v) =
            server.form("/introspect", &[("token", t["access_token"].as_str().unwrap())], Some((&id, &secret))).await;
        assert_eq!(v["active"], true);
    }
}

/// Introspection remembers which tokens it verified, but never past a change of keys: a key
/// taken out of storage (another replica, an operator removing a compromised key) stops
/// verifying its tokens as soon as the ring is reloaded, remembered or not.
#[tokio::test]
async fn a_removed_key_stops_verifying_tokens_introspected_before() {
    let server = TestServer::start().await;
    let (id, secret) = server.client(json!({"name": "daemon", "grant_types": ["client_credentials"]})).await;
    let secret = secret.unwrap();
    let (_, body) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let pairs = [("token", token.as_str())];
    let introspect = || server.form("/introspect", &pairs, Some((&id, &secret)));
    assert_eq!(introspect().await.1["active"], true);
    assert_eq!(introspect().await.1["active"], true, "and again, remembered");

    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let remove = portcullis::storage::write::delete::<portcullis::model::SigningKeyRecord>(&kid);
    server.app.storage.apply(vec![remove]).await.unwrap();
    // What the server does every 30 s (and after a rotation) to pick up other replicas' keys.
    server.app.keys.reload().await.unwrap();
    assert_eq!(introspect().await.1["active"], false, "its key is gone");
}

#[tokio::test]
async fn compatibility_profiles_answer_at_their_paths() {
    let server = TestServer::start_with(support::Options {
        profiles: {
            use portcullis::config::CompatibilityProfile::*;
            vec![Elma365, Datev, Deployteq]
        },
        ..Default::default()
    })
    .await;
    let (id, secret) =
        server.client(json!({"name": "daemon", "grant_types": ["client_credentials"], "scopes": ["x"]})).await;
    let secret = secret.unwrap();
    for path in ["/api/o/oauth/v2/token", "/connect/token", "/oauth2/token", "/token"] {
        let (status, body) = server.form(path, &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
}

#[tokio::test]
async fn public_client_uses_pkce_and_no_secret() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, secret) = server.client(json!({"name": "spa", "redirect_uris": [REDIRECT], "public": true})).await;
    assert!(secret.is_none());
    // Without PKCE a public client is refused.
    let browser = Browser::new();
    let url = server.authorize_url(&[("response_type", "code"), ("client_id", id.as_str()), ("state", "p")]);
    let r = browser.get(url.as_str()).await;
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_request"));

    let verifier = "a-very-long-code-verifier-with-enough-entropy-0123456789";
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let (_, back) = code_for(&server, &id, &[("code_challenge", &challenge), ("code_challenge_method", "S256")]).await;
    let code = query(&back, "code").unwrap();
    let exchange = |verifier: &'static str, code: String| {
        let id = id.clone();
        let server = &server;
        async move {
            server
                .form(
                    "/token",
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("client_id", &id),
                        ("redirect_uri", REDIRECT),
                        ("code_verifier", verifier),
                    ],
                    None,
                )
                .await
        }
    };
    let (status, body) = exchange("a-different-code-verifier-that-does-not-match-at-all-000", code.clone()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    // The failed attempt consumed the code: a code works once, whatever happens.
    let (_, back) = code_for(&server, &id, &[("code_challenge", &challenge), ("code_challenge_method", "S256")]).await;
    let (status, body) = exchange(verifier, query(&back, "code").unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A public client cannot pretend to be confidential, nor use client credentials.
    let (status, body) = server.form("/token", &[("grant_type", "client_credentials"), ("client_id", &id)], None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")));
}

#[tokio::test]
async fn prompt_login_and_max_age_force_a_fresh_login() {
    let clock = std::sync::Arc::new(portcullis::model::ManualClock::default());
    let server = TestServer::start_with(support::Options { clock: Some(clock.clone()), ..Default::default() }).await;
    server.user("bob", "bob's password").await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true})).await;
    let (browser, back) = code_for(&server, &id, &[]).await;
    assert!(query(&back, "code").is_some());
    let with = |extra: &[(&str, &str)]| {
        let mut url = server.authorize_url(&[("response_type", "code"), ("client_id", id.as_str())]);
        url.query_pairs_mut().extend_pairs(extra);
        url.to_string()
    };
    // The session is reused: a code comes back, not an error (an error redirect is a 303 too).
    for extra in [&[][..], &[("prompt", "none")][..]] {
        let r = browser.get(&with(extra)).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{extra:?}");
        let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        assert!(back.as_str().starts_with(REDIRECT), "{back}");
        assert_eq!(query(&back, "error"), None, "{extra:?}: {back}");
        assert!(query(&back, "code").is_some(), "{extra:?}: {back}");
    }
    // ...unless the client asks for a fresh login.
    clock.advance(1);
    for extra in [[("prompt", "login")], [("max_age", "0")]] {
        let r = browser.get(&with(&extra)).await;
        assert_eq!(r.status(), StatusCode::OK, "{extra:?}");
        let page = r.text().await.unwrap();
        assert!(page.contains("name=\"password\""), "{extra:?} shows the login page");
    }
    // And prompt=none with a too-old session is login_required, not a page.
    let r = browser.get(&with(&[("prompt", "none"), ("max_age", "0")])).await;
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn rs256_and_eddsa_keys_sign_verifiable_tokens() {
    for (alg, kty, algorithm) in
        [("RS256", "RSA", jsonwebtoken::Algorithm::RS256), ("EdDSA", "OKP", jsonwebtoken::Algorithm::EdDSA)]
    {
        let server =
            TestServer::start_with(support::Options { algorithm: Some(alg.into()), ..Default::default() }).await;
        let jwks: Value = server.http.get(server.url("/jwks.json")).send().await.unwrap().json().await.unwrap();
        assert_eq!(jwks["keys"][0]["kty"], kty);
        let (id, secret) = server.client(json!({"name": "d", "grant_types": ["client_credentials"]})).await;
        let secret = secret.unwrap();
        let (status, token) =
            server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {token}");
        // Verified against the JWKS with jsonwebtoken, not by the server's own introspection.
        let (header, claims) = server.verify_jwt(token["access_token"].as_str().unwrap(), None).await;
        assert_eq!((header.alg, header.typ.as_deref()), (algorithm, Some("at+jwt")), "{alg}");
        assert_eq!(claims["client_id"], id.as_str());

        // An ID token from the code flow, and its at_hash under the key's algorithm.
        server.user("bob", "bob's password").await;
        let (rp, rp_secret) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT]})).await;
        let (_, back) = code_for(&server, &rp, &[("scope", "openid"), ("nonce", "n-1")]).await;
        let (status, tokens) =
            redeem(&server, &rp, rp_secret.as_deref().unwrap(), &query(&back, "code").unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {tokens}");
        let access_token = tokens["access_token"].as_str().unwrap();
        let (header, claims) = server.verify_jwt(tokens["id_token"].as_str().unwrap(), Some(&rp)).await;
        assert_eq!(header.alg, algorithm, "{alg}");
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["at_hash"], support::at_hash(algorithm, access_token), "{alg}: OIDC Core §3.1.3.6");
        server.verify_jwt(access_token, None).await;
    }
}

#[tokio::test]
async fn userinfo_accepts_post_and_compiled_plugins_are_cached() {
    let server = TestServer::start().await;
    let cached = std::fs::read_dir(server.data.path().join("plugin-cache")).unwrap().count();
    assert!(cached >= 3, "compiled plugins are cached on disk ({cached})");
    server.user("bob", "bob's password").await;
    let (id, secret) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT]})).await;
    let (_, back) = code_for(&server, &id, &[("scope", "openid email")]).await;
    let code = query(&back, "code").unwrap();
    let (_, tokens) = redeem(&server, &id, secret.as_deref().unwrap(), &code).await;
    let (status, info) =
        server.form("/userinfo", &[("access_token", tokens["access_token"].as_str().unwrap())], None).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["email"], "bob@example.com");
    assert!(info.get("name").is_none(), "profile claims need the profile scope");
}

#[tokio::test]
async fn without_a_policies_directory_the_built_in_policies_serve() {
    let missing = std::env::temp_dir().join(format!("portcullis-no-policies-{}", std::process::id()));
    let server = TestServer::start_with(support::Options { policies: Some(missing), ..Default::default() }).await;
    let loaded = server.app.host.loaded();
    for name in ["storage-sql", "scope-template", "consent-default"] {
        assert!(loaded.contains_key(name), "{name}");
    }
    let (id, secret) =
        server.client(json!({"name": "d", "grant_types": ["client_credentials"], "scopes": ["x"]})).await;
    let (status, body) =
        server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret.unwrap()))).await;
    assert_eq!((status, body["scope"].as_str()), (StatusCode::OK, Some("x")));
}

#[tokio::test]
async fn prompt_consent_asks_again_and_lifetimes_are_per_client() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT]})).await;
    let (browser, _) = code_for(&server, &id, &[]).await;
    let mut url = server.authorize_url(&[("response_type", "code"), ("client_id", id.as_str())]);
    let r = browser.get(url.as_str()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "consent remembered");
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(query(&back, "code").is_some() && query(&back, "error").is_none(), "consent remembered: {back}");
    url.query_pairs_mut().append_pair("prompt", "consent");
    let page = browser.get(url.as_str()).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("name=\"decision\""), "prompt=consent shows the consent page");

    let (id, secret) =
        server.client(json!({"name": "short", "grant_types": ["client_credentials"], "access_token_ttl": 60})).await;
    let secret = secret.unwrap();
    let (_, token) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!(token["expires_in"], 60);
    let (_, v) =
        server.form("/introspect", &[("token", token["access_token"].as_str().unwrap())], Some((&id, &secret))).await;
    assert_eq!(v["exp"].as_i64().unwrap() - v["iat"].as_i64().unwrap(), 60);
}

#[tokio::test]
async fn password_guessing_uses_up_the_login_page_but_never_locks_the_user_out() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true})).await;
    let browser = Browser::new();
    let url = server.authorize_url(&[("response_type", "code"), ("client_id", id.as_str())]);
    let mut page = browser.get(url.as_str()).await.text().await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = browser.submit(&page, &[("username", "bob"), ("password", "guess")]).await;
        statuses.push(r.status());
        page = r.text().await.unwrap();
    }
    assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    // The page has had its ten attempts: even the right password cannot continue on it.
    let r = browser.submit(&page, &[("username", "bob"), ("password", "bob's password")]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!r.text().await.unwrap().contains("name=\"password\""), "the spent page offers no form");
    // On a new page the right password still signs bob in, the guessing notwithstanding.
    let back = browser.authorize(url.as_str(), "bob", "bob's password").await;
    assert!(query(&back, "code").is_some(), "{back}");
}

#[tokio::test]
async fn cookies_are_httponly_lax_and_secure_behind_an_https_issuer() {
    for (issuer, secure) in [(None, false), (Some("https://id.example.com".to_owned()), true)] {
        let server = TestServer::start_with(support::Options { issuer, ..Default::default() }).await;
        let (id, _) = server.client(json!({"name": "rp", "redirect_uris": [REDIRECT]})).await;
        let url = server.authorize_url(&[("response_type", "code"), ("client_id", id.as_str())]);
        let r = server.http.get(url.as_str()).send().await.unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
        assert_eq!(cookie.contains("Secure"), secure, "{cookie}");
    }
}

/// The parameters of an authorization response's fragment.
fn fragment(url: &url::Url) -> std::collections::HashMap<String, String> {
    let fragment = url.fragment().unwrap_or_else(|| panic!("a fragment: {url}"));
    url::form_urlencoded::parse(fragment.as_bytes()).into_owned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_and_hybrid_flows_answer_in_the_fragment_and_by_form_post() {
    use openidconnect::core::{CoreIdToken, CoreResponseType};
    use openidconnect::{AccessToken, AuthorizationCodeHash};

    let server = TestServer::start().await;
    server.user("alice", "correct horse battery").await;
    let (client_id, secret) = server
        .client(json!({"name": "RP", "redirect_uris": [REDIRECT], "scopes": ["openid", "profile", "email", "api"],
                       "response_types": ["code", "id_token", "id_token token", "code id_token",
                                          "code id_token token", "token"]}))
        .await;
    let http = rp_http();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(server.issuer.clone()).unwrap(), &http)
        .await
        .expect("discovery");
    assert_eq!(metadata.response_types_supported().len(), 7);
    let rp =
        CoreClient::from_provider_metadata(metadata, ClientId::new(client_id.clone()), secret.map(ClientSecret::new))
            .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let verifier = rp.id_token_verifier();
    let browser = Browser::new();

    // Implicit (`id_token token`): everything in the fragment, nothing in the query.
    let (url, state, nonce) = rp
        .authorize_url(CoreAuthenticationFlow::Implicit(true), CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .url();
    let back = browser.authorize(url.as_str(), "alice", "correct horse battery").await;
    assert!(back.query().is_none(), "tokens never travel in the query: {back}");
    let f = fragment(&back);
    assert_eq!(f["state"], *state.secret());
    assert_eq!(f["token_type"], "Bearer");
    assert_eq!(f["iss"], server.issuer);
    let id_token: CoreIdToken = f["id_token"].parse().unwrap();
    let claims = id_token.claims(&verifier, &nonce).expect("the ID token verifies, with its nonce");
    assert_eq!(claims.email().map(|e| e.as_str()), Some("alice@example.com"));
    let access_token = AccessToken::new(f["access_token"].clone());
    let alg = id_token.signing_alg().unwrap();
    let key = id_token.signing_key(&verifier).unwrap();
    assert_eq!(claims.access_token_hash(), Some(&AccessTokenHash::from_token(&access_token, alg, key).unwrap()));
    let info = server.http.get(server.url("/userinfo")).bearer_auth(access_token.secret()).send().await.unwrap();
    assert_eq!(info.status(), StatusCode::OK, "the access token works");

    // Hybrid (`code id_token`): `c_hash` binds the ID token to the code, which redeems.
    let (url, _, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::Hybrid(vec![CoreResponseType::Code, CoreResponseType::IdToken]),
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url();
    let f = fragment(&browser.authorize(url.as_str(), "alice", "correct horse battery").await);
    let id_token: CoreIdToken = f["id_token"].parse().unwrap();
    let claims = id_token.claims(&verifier, &nonce).unwrap();
    let code = AuthorizationCode::new(f["code"].clone());
    let key = id_token.signing_key(&verifier).unwrap();
    assert_eq!(claims.code_hash(), Some(&AuthorizationCodeHash::from_code(&code, alg, key).unwrap()));
    assert!(claims.access_token_hash().is_none(), "no access token came with it");
    let tokens = rp.exchange_code(code).unwrap().request_async(&http).await.expect("the code redeems");
    assert!(tokens.id_token().is_some());

    // `form_post` (`code id_token token`): a page that posts everything to the redirect URI,
    // whose CSP allows its one script and nothing else; the ID token hashes code and state.
    let url = server.authorize_url(&[
        ("response_type", "code id_token token"),
        ("response_mode", "form_post"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid api"),
        ("state", "s-1"),
        ("nonce", "n-1"),
    ]);
    let consent = browser.get(url.as_str()).await.text().await.unwrap();
    assert!(consent.contains("name=\"decision\""), "the consent page for `api`: {consent}");
    let page = browser.submit(&consent, &[("decision", "allow")]).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'sha256-") && csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("form-action") && csp.contains("https://rp.example.com"), "{csp}");
    let html = page.text().await.unwrap();
    let form = support::Form::parse(&html).expect("a form");
    assert_eq!(form.action, REDIRECT);
    let posted: std::collections::HashMap<_, _> = form.hidden.into_iter().collect();
    assert_eq!(posted["state"], "s-1");
    assert!(posted.contains_key("code") && posted.contains_key("access_token"));
    let (_, id_claims) = server.verify_jwt(&posted["id_token"], Some(&client_id)).await;
    assert_eq!(id_claims["nonce"], "n-1");
    for hash in ["at_hash", "c_hash", "s_hash"] {
        assert!(id_claims[hash].is_string(), "{hash} in {id_claims}");
    }
}

#[tokio::test]
async fn front_channel_errors_are_the_ones_the_specs_name() {
    let server = TestServer::start().await;
    server.user("bob", "bob password 1").await;
    let (client_id, _) = server
        .client(json!({"name": "RP", "redirect_uris": [REDIRECT], "scopes": ["openid", "email", "api"],
                       "response_types": ["code", "id_token", "token", "code token"]}))
        .await;
    let (code_only, _) = server.client(json!({"name": "code only", "redirect_uris": [REDIRECT]})).await;
    let ask = |client: &str, pairs: &[(&str, &str)]| {
        let mut url = server.authorize_url(&[("client_id", client), ("redirect_uri", REDIRECT), ("state", "st")]);
        url.query_pairs_mut().extend_pairs(pairs);
        url
    };
    // (client, parameters, error, whether it comes back in the fragment)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, bool);
    let cases: &[Case] = &[
        (&client_id, &[("response_type", "id_token"), ("scope", "openid")], "invalid_request", true),
        (&client_id, &[("response_type", "id_token"), ("scope", "openid api"), ("nonce", "n")], "invalid_scope", true),
        (&client_id, &[("response_type", "token"), ("scope", "openid api")], "invalid_scope", true),
        (&client_id, &[("response_type", "id_token"), ("scope", "email"), ("nonce", "n")], "invalid_scope", true),
        (
            &client_id,
            &[("response_type", "token"), ("response_mode", "query"), ("scope", "api")],
            "invalid_request",
            true,
        ),
        (&client_id, &[("response_type", "code token"), ("scope", "openid api")], "invalid_request", true),
        (
            &client_id,
            &[("response_type", "code"), ("response_mode", "web_message"), ("scope", "api")],
            "invalid_request",
            false,
        ),
        (&client_id, &[("response_type", "code code"), ("scope", "api")], "unsupported_response_type", false),
        (
            &code_only,
            &[("response_type", "id_token token"), ("scope", "openid"), ("nonce", "n")],
            "unauthorized_client",
            true,
        ),
    ];
    for (client, pairs, error, in_fragment) in cases {
        let r = server.http.get(ask(client, pairs).as_str()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{pairs:?}");
        let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        let got = if *in_fragment { fragment(&back).get("error").cloned() } else { query(&back, "error") };
        assert_eq!(got.as_deref(), Some(*error), "{pairs:?} → {back}");
    }
    // A registered `token` flow of resource scopes: an access token, no ID token, no refresh.
    let browser = Browser::new();
    let back = browser
        .authorize(ask(&client_id, &[("response_type", "token"), ("scope", "api")]).as_str(), "bob", "bob password 1")
        .await;
    let f = fragment(&back);
    assert_eq!(f["scope"], "api");
    assert!(!f.contains_key("id_token") && !f.contains_key("refresh_token") && !f.contains_key("code"));
    // Registering a response type needs its grant and a redirect URI.
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "x", "grant_types": ["client_credentials"], "response_types": ["code"]}),
        )
        .await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("response_types")), "{v}");
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "x", "redirect_uris": [REDIRECT], "response_types": ["code token x"]}),
        )
        .await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("response_types")), "{v}");
}

#[tokio::test]
async fn clients_authenticate_with_jwts_they_sign_once() {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

    let server = TestServer::start().await;
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    let methods = &meta["token_endpoint_auth_methods_supported"];
    assert!(methods.as_array().unwrap().iter().any(|m| m == "private_key_jwt"), "{methods}");

    // private_key_jwt: the client's Ed25519 key, its public half registered as a JWK Set.
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1", "use": "sig",
                     "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())});
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "signer", "scopes": ["api"],
                    "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert!(v.get("client_secret").is_none(), "a private_key_jwt client gets no secret");
    let signer = v["client_id"].as_str().unwrap().to_owned();
    let now = portcullis::model::now();
    let assertion = |client: &str, aud: &str, exp: i64, jti: &str, alg: Algorithm, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = (alg == Algorithm::EdDSA).then(|| "k1".into());
        let claims = json!({"iss": client, "sub": client, "aud": aud, "exp": exp, "iat": now, "jti": jti});
        encode(&header, &claims, key).unwrap()
    };
    let ed = EncodingKey::from_ed_der(pkcs8.as_ref());
    let token_url = server.url("/token");
    let server = &server;
    let cc = |assertion: String| async move {
        let pairs = [
            ("grant_type", "client_credentials".to_owned()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()),
            ("client_assertion", assertion),
        ];
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        server.form("/token", &pairs, None).await
    };
    let good = assertion(&signer, &token_url, now + 60, "j1", Algorithm::EdDSA, &ed);
    let (status, v) = cc(good.clone()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["scope"], "api");
    // RFC 7523 §3: each refused with invalid_client.
    let stranger = EncodingKey::from_ed_der(
        Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap().as_ref(),
    );
    for (why, bad) in [
        ("replayed jti", good),
        (
            "another audience",
            assertion(&signer, "https://elsewhere.example.com/token", now + 60, "j2", Algorithm::EdDSA, &ed),
        ),
        ("expired", assertion(&signer, &token_url, now - 10, "j3", Algorithm::EdDSA, &ed)),
        ("too long-lived", assertion(&signer, &token_url, now + 86_400, "j4", Algorithm::EdDSA, &ed)),
        ("another key", assertion(&signer, &token_url, now + 60, "j5", Algorithm::EdDSA, &stranger)),
        ("not a JWT", "x.y".to_owned()),
    ] {
        let (status, v) = cc(bad).await;
        assert_eq!((status, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{why}: {v}");
    }
    // The issuer itself is an audience too.
    let (status, v) = cc(assertion(&signer, &server.issuer, now + 60, "j6", Algorithm::EdDSA, &ed)).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // client_secret_jwt: HMAC with its secret; registered so, the secret alone no longer does.
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "hmac", "scopes": ["api"], "token_endpoint_auth_method": "client_secret_jwt"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (hmac, secret) = (v["client_id"].as_str().unwrap().to_owned(), v["client_secret"].as_str().unwrap().to_owned());
    let key = EncodingKey::from_secret(secret.as_bytes());
    let (status, v) = cc(assertion(&hmac, &token_url, now + 60, "h1", Algorithm::HS256, &key)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = cc(assertion(&hmac, &token_url, now + 60, "h1", Algorithm::HS256, &key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "replayed: {v}");
    let (status, _) = server.form("/token", &[("grant_type", "client_credentials")], Some((&hmac, &secret))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a client_secret_jwt client does not send its secret");
    let wrong = EncodingKey::from_secret(b"not the secret");
    let (status, _) = cc(assertion(&hmac, &token_url, now + 60, "h2", Algorithm::HS256, &wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, v) = server
        .form(
            "/token",
            &[("grant_type", "client_credentials"), ("client_assertion_type", "urn:x"), ("client_assertion", "a.b.c")],
            None,
        )
        .await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{v}");

    // Registration: keys only for private_key_jwt, public ones only, `none` only for public clients.
    for (body, field) in [
        (json!({"name": "x", "token_endpoint_auth_method": "private_key_jwt"}), "jwks"),
        (
            json!({"name": "x", "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
            "jwks",
        ),
        (json!({"name": "x", "jwks": {"keys": [jwk]}}), "jwks"),
        (json!({"name": "x", "token_endpoint_auth_method": "none"}), "token_endpoint_auth_method"),
        (json!({"name": "x", "token_endpoint_auth_method": "tls_client_auth"}), "token_endpoint_auth_method"),
    ] {
        let (status, v) = server.admin_post("/admin/v1/clients", body.clone()).await;
        assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{body}: {v}");
    }
}

#[tokio::test]
async fn pushed_authorization_requests_are_used_once_and_can_be_required() {
    let server = TestServer::start().await;
    server.user("pat", "pat password 1").await;
    let (id, secret) = server
        .client(json!({"name": "pushy", "redirect_uris": [REDIRECT], "scopes": ["openid", "email"],
                       "require_pushed_authorization_requests": true}))
        .await;
    let secret = secret.unwrap();
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["pushed_authorization_request_endpoint"], server.url("/par"));
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let request = [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email"),
        ("state", "pushed-state"),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        ("code_challenge_method", "S256"),
    ];
    let (status, pushed) = server.form("/par", &request, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::CREATED, "{pushed}");
    assert_eq!(pushed["expires_in"], 90);
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));

    // The authorization request names only the client and the request_uri.
    let authorize =
        |request_uri: &str, client: &str| server.authorize_url(&[("client_id", client), ("request_uri", request_uri)]);
    let browser = Browser::new();
    let back = browser.authorize(authorize(&request_uri, &id).as_str(), "pat", "pat password 1").await;
    assert_eq!(query(&back, "state").as_deref(), Some("pushed-state"));
    let code = query(&back, "code").expect("a code");
    let (status, body) = server
        .form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", verifier),
                ("redirect_uri", REDIRECT),
            ],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Used once; unknown and foreign request URIs are shown on a page, never redirected.
    for (uri, client, error) in [
        (request_uri.as_str(), id.as_str(), "invalid_request_uri"),
        ("urn:ietf:params:oauth:request_uri:nothing-here", id.as_str(), "invalid_request_uri"),
        ("https://rp.example.com/request.jwt", id.as_str(), "invalid_request_uri"),
    ] {
        let r = browser.get(authorize(uri, client).as_str()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains(error), "{uri}");
    }
    // Pushed by one client, named by another.
    let (status, pushed) = server.form("/par", &request, Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (other, _) = server.client(json!({"name": "other", "redirect_uris": [REDIRECT]})).await;
    let r = browser.get(authorize(pushed["request_uri"].as_str().unwrap(), &other).as_str()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A client registered to push may not send its request directly.
    let mut direct = url::Url::parse(&server.url("/authorize")).unwrap();
    direct.query_pairs_mut().extend_pairs(request.iter().copied().chain([("client_id", id.as_str())]));
    let r = browser.get(direct.as_str()).await;
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "error").as_deref(), Some("invalid_request"));

    // The endpoint checks the request as the authorization endpoint would, and the client.
    for (pairs, client, status, error) in [
        (
            vec![("response_type", "code"), ("redirect_uri", "https://evil.example.com/")],
            (id.as_str(), secret.as_str()),
            400,
            "invalid_request",
        ),
        (vec![("redirect_uri", REDIRECT)], (id.as_str(), secret.as_str()), 400, "invalid_request"),
        (
            vec![("response_type", "code"), ("request_uri", "urn:x")],
            (id.as_str(), secret.as_str()),
            400,
            "invalid_request",
        ),
        (
            vec![("response_type", "code"), ("request", "a.b.c")],
            (id.as_str(), secret.as_str()),
            400,
            "invalid_request_object",
        ),
        (vec![("response_type", "code")], (id.as_str(), "wrong"), 401, "invalid_client"),
    ] {
        let (got, v) = server.form("/par", &pairs, Some(client)).await;
        assert_eq!((got.as_u16(), v["error"].as_str()), (status, Some(error)), "{pairs:?}: {v}");
    }
}

#[tokio::test]
async fn request_objects_are_verified_and_win_over_the_query() {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

    let server = TestServer::start().await;
    server.user("rita", "rita password 1").await;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap().public_key().as_ref().to_vec();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "rp-1", "x": URL_SAFE_NO_PAD.encode(public)});
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "signed requests", "redirect_uris": [REDIRECT],
                    "scopes": ["openid", "email"], "response_types": ["code", "id_token"],
                    "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["client_id"].as_str().unwrap().to_owned();
    let key = EncodingKey::from_ed_der(pkcs8.as_ref());
    let now = portcullis::model::now();
    let sign = |claims: Value, key: &EncodingKey| {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("rp-1".into());
        encode(&header, &claims, key).unwrap()
    };
    let object = |overrides: Value| {
        let mut claims = json!({"iss": id, "aud": server.issuer, "exp": now + 300, "client_id": id,
                                "response_type": "id_token", "redirect_uri": REDIRECT, "scope": "openid email",
                                "state": "from-the-object", "nonce": "object-nonce"});
        for (k, v) in overrides.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let authorize = |request: &str, extra: &[(&str, &str)]| {
        let mut url = server.authorize_url(&[
            ("client_id", id.as_str()),
            ("response_type", "id_token"),
            ("scope", "openid"),
            ("state", "from-the-query"),
            ("request", request),
        ]);
        url.query_pairs_mut().extend_pairs(extra);
        url
    };

    // Signed with the client's registered key: its parameters are the request's.
    let browser = Browser::new();
    let back =
        browser.authorize(authorize(&sign(object(json!({})), &key), &[]).as_str(), "rita", "rita password 1").await;
    let f = fragment(&back);
    assert_eq!(f["state"], "from-the-object", "the object's parameters win");
    let (_, claims) = server.verify_jwt(&f["id_token"], Some(&id)).await;
    assert_eq!(claims["nonce"], "object-nonce");
    assert_eq!(claims["email"], "rita@example.com", "the object's scope, not the query's");

    // Each refused on a page with invalid_request_object (no redirect URI is trusted yet).
    let stranger = EncodingKey::from_ed_der(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref());
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(object(json!({})).to_string())
    );
    for (why, request) in [
        ("another key", sign(object(json!({})), &stranger)),
        ("unsigned", unsigned),
        ("another issuer", sign(object(json!({"iss": "someone-else"})), &key)),
        ("another audience", sign(object(json!({"aud": "https://elsewhere.example.com"})), &key)),
        ("expired", sign(object(json!({"exp": now - 10})), &key)),
        ("another response_type", sign(object(json!({"response_type": "code"})), &key)),
        ("nested", sign(object(json!({"request": "x"})), &key)),
    ] {
        let r = browser.get(authorize(&request, &[]).as_str()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{why}");
        assert!(r.headers().get("location").is_none(), "{why}");
        assert!(r.text().await.unwrap().contains("invalid_request_object"), "{why}");
    }
    let r = browser.get(authorize(&sign(object(json!({})), &key), &[("request_uri", "urn:x")]).as_str()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "request and request_uri together");
    // A client registered for unsigned request objects sends those, and only those.
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "unsigned", "redirect_uris": [REDIRECT], "scopes": ["openid", "email"],
                    "request_object_signing_alg": "none"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let open_id = v["client_id"].as_str().unwrap().to_owned();
    let claims = json!({"client_id": open_id, "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid",
                        "state": "unsigned-state"});
    let plain =
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let url = server.authorize_url(&[("client_id", open_id.as_str()), ("response_type", "code"), ("request", &plain)]);
    let back = browser.authorize(url.as_str(), "rita", "rita password 1").await;
    assert_eq!(query(&back, "state").as_deref(), Some("unsigned-state"));
    let url = server.authorize_url(&[("client_id", open_id.as_str()), ("request", &sign(object(json!({})), &key))]);
    assert!(browser.get(url.as_str()).await.text().await.unwrap().contains("invalid_request_object"));
    let (status, v) =
        server.admin_post("/admin/v1/clients", json!({"name": "x", "request_object_signing_alg": "HS1"})).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("request_object_signing_alg")));

    // A client with no keys or sealed secret cannot sign a request object.
    let (plain, _) = server.client(json!({"name": "plain", "redirect_uris": [REDIRECT]})).await;
    let url = server.authorize_url(&[("client_id", plain.as_str()), ("request", &sign(object(json!({})), &key))]);
    let r = browser.get(url.as_str()).await;
    assert!(r.text().await.unwrap().contains("invalid_request_object"));
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_and_returns_to_a_registered_uri() {
    const AFTER: &str = "https://rp.example.com/signed-out";
    let server = TestServer::start().await;
    server.user("lou", "lou password 1").await;
    let (id, secret) =
        server.client(json!({"name": "RP", "redirect_uris": [REDIRECT], "post_logout_redirect_uris": [AFTER]})).await;
    let secret = secret.unwrap();
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["end_session_endpoint"], server.url("/logout"));

    let browser = Browser::new();
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
    ]);
    let back = browser.authorize(url.as_str(), "lou", "lou password 1").await;
    let (_, tokens) = redeem(&server, &id, &secret, &query(&back, "code").unwrap()).await;
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    // Signed in: a second authorization needs no login page.
    let r = browser.get(url.as_str()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the session carries on");

    let logout = |pairs: &[(&str, &str)]| {
        let mut url = url::Url::parse(&server.url("/logout")).unwrap();
        url.query_pairs_mut().extend_pairs(pairs);
        url
    };
    // Refused, on a page, and the session stays: no hint, a forged hint, an unregistered URI.
    for pairs in [
        vec![("post_logout_redirect_uri", AFTER)],
        vec![("id_token_hint", "a.b.c")],
        vec![("id_token_hint", id_token.as_str()), ("post_logout_redirect_uri", "https://evil.example.com/")],
        vec![("id_token_hint", id_token.as_str()), ("client_id", "someone-else")],
    ] {
        let r = browser.get(logout(&pairs).as_str()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{pairs:?}");
        assert!(r.headers().get("location").is_none());
    }
    assert_eq!(browser.get(url.as_str()).await.status(), StatusCode::SEE_OTHER, "still signed in");

    // The hint, the registered URI and state: signed out, and back with the state.
    let r = browser
        .get(logout(&[("id_token_hint", &id_token), ("post_logout_redirect_uri", AFTER), ("state", "bye")]).as_str())
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("{AFTER}?state=bye"));
    let r = browser.get(url.as_str()).await;
    assert_eq!(r.status(), StatusCode::OK, "the login page again");
    assert!(r.text().await.unwrap().contains("name=\"password\""));

    // Registration checks the URIs as redirect URIs.
    let (status, v) = server
        .admin_post("/admin/v1/clients", json!({"name": "x", "post_logout_redirect_uris": ["http://example.com/out"]}))
        .await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("post_logout_redirect_uris")), "{v}");
}

#[tokio::test]
async fn token_exchange_trades_a_users_token_within_its_scopes() {
    const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
    let server = TestServer::start().await;
    server.user("tex", "tex password 1").await;
    let (front, front_secret) = server
        .client(json!({"name": "front", "redirect_uris": [REDIRECT], "scopes": ["openid", "api", "offline_access"]}))
        .await;
    let front_secret = front_secret.unwrap();
    let (back_end, back_secret) =
        server.client(json!({"name": "back", "grant_types": [EXCHANGE], "scopes": ["api", "reports"]})).await;
    let back_secret = back_secret.unwrap();
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", front.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid api offline_access"),
    ]);
    let back = Browser::new().authorize(url.as_str(), "tex", "tex password 1").await;
    let (_, tokens) = redeem(&server, &front, &front_secret, &query(&back, "code").unwrap()).await;
    let subject = tokens["access_token"].as_str().unwrap().to_owned();

    let exchange = |extra: Vec<(&'static str, String)>, client: (String, String)| {
        let server = &server;
        let subject = subject.clone();
        async move {
            let mut pairs = vec![
                ("grant_type", EXCHANGE.to_owned()),
                ("subject_token", subject),
                ("subject_token_type", ACCESS.to_owned()),
            ];
            for (k, v) in extra {
                pairs.retain(|(key, _)| *key != k);
                pairs.push((k, v));
            }
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            server.form("/token", &pairs, Some((&client.0, &client.1))).await
        }
    };
    let backend = (back_end.clone(), back_secret.clone());
    let (status, v) = exchange(vec![("scope", "api".into())], backend.clone()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["issued_token_type"].as_str(), v["scope"].as_str()), (Some(ACCESS), Some("api")));
    assert!(v.get("refresh_token").is_none());
    let exchanged = v["access_token"].as_str().unwrap().to_owned();
    let (_, claims) = server.verify_jwt(&exchanged, None).await;
    assert_eq!(claims["client_id"], back_end.as_str());
    let (_, introspected) = server.form("/introspect", &[("token", &exchanged)], Some((&back_end, &back_secret))).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["sub"], claims["sub"]);

    // The RFC's errors for what cannot be.
    for (extra, status, error) in [
        (vec![("scope", "api reports".to_owned())], 400, "invalid_scope"),
        (vec![("subject_token", "not-a-token".to_owned())], 400, "invalid_request"),
        (vec![("subject_token_type", "urn:ietf:params:oauth:token-type:id_token".to_owned())], 400, "invalid_request"),
        (
            vec![("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token".to_owned())],
            400,
            "invalid_request",
        ),
        (vec![("audience", "https://elsewhere.example.com".to_owned())], 400, "invalid_target"),
        (vec![("actor_token", "x".to_owned())], 400, "invalid_request"),
    ] {
        let (got, v) = exchange(extra.clone(), backend.clone()).await;
        assert_eq!((got.as_u16(), v["error"].as_str()), (status, Some(error)), "{extra:?}: {v}");
    }
    let (got, v) = exchange(vec![], (front.clone(), front_secret.clone())).await;
    assert_eq!((got, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")), "not registered");

    // Revoking the grant the subject token hangs off revokes the exchanged token too.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _) = server.form("/revoke", &[("token", refresh)], Some((&front, &front_secret))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, introspected) = server.form("/introspect", &[("token", &exchanged)], Some((&back_end, &back_secret))).await;
    assert_eq!(introspected["active"], false, "{introspected}");
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "x", "public": true, "redirect_uris": [REDIRECT], "grant_types": [EXCHANGE]}),
        )
        .await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("grant_types")));
}

#[tokio::test]
async fn token_exchange_delegates_to_an_actor_the_policy_names_and_to_registered_audiences() {
    const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
    const API: &str = "https://api.example.com";
    // The scope-chaos policy names who may act for the user (scope `may_act:<sub>`).
    let policies = support::policies_copy();
    for ext in ["toml", "wasm"] {
        std::fs::copy(
            support::fixtures_dir().join(format!("scope-chaos.{ext}")),
            policies.path().join(format!("scope-chaos.{ext}")),
        )
        .unwrap();
    }
    let server =
        TestServer::start_with(support::Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    server.user("dee", "dee password 1").await;
    let (gateway, gateway_secret) = server
        .client(json!({"name": "gateway", "grant_types": [EXCHANGE, "client_credentials"],
                       "scopes": ["openid", "api"], "audiences": [API]}))
        .await;
    let gateway_secret = gateway_secret.unwrap();
    let may_act = format!("may_act:{gateway}");
    let (front, front_secret) = server
        .client(json!({"name": "front", "redirect_uris": [REDIRECT], "scope_policy": "scope-chaos",
                       "scopes": ["openid", "api", may_act, "may_act:someone-else"]}))
        .await;
    let front_secret = front_secret.unwrap();
    let user_token = |scope: String| {
        let server = &server;
        let (front, front_secret) = (front.clone(), front_secret.clone());
        async move {
            let url = server.authorize_url(&[
                ("response_type", "code"),
                ("client_id", front.as_str()),
                ("redirect_uri", REDIRECT),
                ("scope", scope.as_str()),
            ]);
            let back = Browser::new().authorize(url.as_str(), "dee", "dee password 1").await;
            let (_, tokens) = redeem(server, &front, &front_secret, &query(&back, "code").unwrap()).await;
            tokens["access_token"].as_str().expect("access token").to_owned()
        }
    };
    let subject = user_token(format!("openid api {may_act}")).await;
    let (_, claims) = server.verify_jwt(&subject, None).await;
    assert_eq!(claims["may_act"], json!({"sub": gateway}), "the policy names the actor");
    assert!(claims.get("act").is_none(), "`act` is the server's own: the policy's is dropped");
    let (_, actor) =
        server.form("/token", &[("grant_type", "client_credentials")], Some((&gateway, &gateway_secret))).await;
    let actor = actor["access_token"].as_str().unwrap().to_owned();
    let exchange = |subject: String, extra: Vec<(&'static str, String)>| {
        let server = &server;
        let (gateway, gateway_secret) = (gateway.clone(), gateway_secret.clone());
        async move {
            let mut pairs = vec![
                ("grant_type", EXCHANGE.to_owned()),
                ("subject_token", subject),
                ("subject_token_type", ACCESS.into()),
            ];
            pairs.extend(extra);
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            server.form("/token", &pairs, Some((&gateway, &gateway_secret))).await
        }
    };
    let as_actor = |audience: &str| {
        vec![
            ("actor_token", actor.clone()),
            ("actor_token_type", ACCESS.to_owned()),
            ("audience", audience.to_owned()),
            ("scope", "openid api".to_owned()),
        ]
    };

    // Delegation to the registered audience: `act` names the gateway, `aud` the API.
    let (status, v) = exchange(subject.clone(), as_actor(API)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let delegated = v["access_token"].as_str().unwrap().to_owned();
    let (_, claims) = server.verify_jwt(&delegated, Some(API)).await;
    assert_eq!(claims["act"], json!({"sub": gateway, "client_id": gateway}));
    assert_eq!(claims["aud"], API);
    let (_, introspected) =
        server.form("/introspect", &[("token", &delegated)], Some((&gateway, &gateway_secret))).await;
    assert_eq!((introspected["active"].as_bool(), &introspected["act"]), (Some(true), &claims["act"]));
    // A token for another audience is not one for this server's userinfo.
    let r = server.http.get(server.url("/userinfo")).bearer_auth(&delegated).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Exchanged again, the earlier actor stays visible, nested (§4.1).
    let (status, v) = exchange(delegated.clone(), as_actor(&server.issuer)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, chained) = server.verify_jwt(v["access_token"].as_str().unwrap(), Some(&server.issuer)).await;
    assert_eq!(chained["act"]["act"], json!({"sub": gateway, "client_id": gateway}), "{chained}");

    // Refused: an actor `may_act` does not name, an unregistered audience, a bad actor token.
    let someone_else = user_token("openid api may_act:someone-else".into()).await;
    for (subject, extra, error) in [
        (someone_else, as_actor(API), "invalid_request"),
        (subject.clone(), as_actor("https://elsewhere.example.com"), "invalid_target"),
        (
            subject.clone(),
            vec![("actor_token", "x".to_owned()), ("actor_token_type", ACCESS.to_owned())],
            "invalid_request",
        ),
        (subject.clone(), vec![("actor_token", actor.clone())], "invalid_request"),
        (
            subject.clone(),
            vec![("actor_token", actor.clone()), ("actor_token_type", "urn:x".into())],
            "invalid_request",
        ),
    ] {
        let (status, v) = exchange(subject, extra.clone()).await;
        assert_eq!((status, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some(error)), "{extra:?}: {v}");
    }
    let (status, v) = server.admin_post("/admin/v1/clients", json!({"name": "x", "audiences": [API]})).await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("audiences")), "{v}");
}
