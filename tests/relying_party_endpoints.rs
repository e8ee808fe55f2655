//! The server's own requests to a relying party's endpoints, against a real one on a
//! loopback port: request objects fetched by reference (OIDC Core §6.2), the client's keys
//! from its `jwks_uri` (OIDC Registration §2), and logout tokens
//! posted by back-channel logout (OIDC Back-Channel Logout 1.0), with the `sid` the ID
//! tokens of a session carry.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use axum::Router;
use axum::extract::{Form, State};
use axum::http::StatusCode as AxumStatus;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use parking_lot::Mutex;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Browser, TestServer, query};
use tokio::sync::mpsc;

const REDIRECT: &str = "https://rp.example.com/callback";

/// The relying party's own server: what it serves and what it was posted.
#[derive(Clone)]
struct RelyingParty {
    request_object: Arc<Mutex<String>>,
    jwks: Arc<Mutex<Value>>,
    /// The `flaky-` clients' endpoints answer 503 the first time.
    refused: Arc<Mutex<std::collections::HashSet<String>>>,
    logouts: mpsc::UnboundedSender<(String, String)>,
}

async fn request_object(State(rp): State<RelyingParty>) -> impl IntoResponse {
    ([("content-type", "application/oauth-authz-req+jwt")], rp.request_object.lock().clone())
}

async fn jwks(State(rp): State<RelyingParty>) -> axum::Json<Value> {
    axum::Json(rp.jwks.lock().clone())
}

async fn backchannel(
    State(rp): State<RelyingParty>,
    axum::extract::Path(client): axum::extract::Path<String>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> AxumStatus {
    if client.starts_with("flaky-") && rp.refused.lock().insert(client.clone()) {
        return AxumStatus::SERVICE_UNAVAILABLE;
    }
    let _ = rp.logouts.send((client, form.get("logout_token").cloned().unwrap_or_default()));
    AxumStatus::OK
}

/// Starts the relying party; returns its base URL, its state and where logout tokens arrive.
async fn relying_party() -> (String, RelyingParty, mpsc::UnboundedReceiver<(String, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let rp = RelyingParty {
        request_object: Arc::new(Mutex::new(String::new())),
        jwks: Arc::new(Mutex::new(json!({"keys": []}))),
        refused: Arc::default(),
        logouts: tx,
    };
    let app = Router::new()
        .route("/request.jwt", get(request_object))
        .route("/jwks.json", get(jwks))
        .route("/big.jwt", get(|| async { "x".repeat(64 * 1024) }))
        .route("/moved.jwt", get(|| async { Redirect::temporary("/request.jwt") }))
        .route("/missing.jwt", get(|| async { AxumStatus::NOT_FOUND }))
        .route("/backchannel/{client}", post(backchannel))
        .with_state(rp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, rp, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_objects_are_fetched_only_from_a_registered_request_uri() {
    let (rp_base, rp, _) = relying_party().await;
    let server = server_fetching_from_loopback().await;
    server.user("rita", "rita password 1").await;
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["request_uri_parameter_supported"], true);
    assert_eq!(meta["require_request_uri_registration"], true);

    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
    let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap().public_key().as_ref().to_vec();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "rp-1", "x": URL_SAFE_NO_PAD.encode(public)});
    let registered: Vec<String> =
        ["request.jwt", "big.jwt", "moved.jwt", "missing.jwt"].iter().map(|p| format!("{rp_base}/{p}")).collect();
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "by reference", "redirect_uris": [REDIRECT], "scopes": ["openid", "email"],
                   "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [jwk]},
                   "request_uris": registered}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["client_id"].as_str().unwrap().to_owned();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("rp-1".into());
    let claims = json!({"iss": id, "aud": server.issuer, "exp": portcullis::model::now() + 300, "client_id": id,
                        "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid email",
                        "state": "by-reference"});
    *rp.request_object.lock() = encode(&header, &claims, &EncodingKey::from_ed_der(pkcs8.as_ref())).unwrap();
    let authorize =
        |request_uri: &str| server.authorize_url(&[("client_id", id.as_str()), ("request_uri", request_uri)]);

    // Fetched from the registered URI (a fragment, such as a hash of the content, is no part
    // of the comparison), verified, and its parameters are the request's.
    let browser = Browser::new();
    let back =
        browser.authorize(authorize(&format!("{rp_base}/request.jwt#v1")).as_str(), "rita", "rita password 1").await;
    assert_eq!(query(&back, "state").as_deref(), Some("by-reference"), "{back}");
    assert!(query(&back, "code").is_some());

    // Refused on a page: not registered, too big, a redirect, not there; unusable content.
    for (uri, error) in [
        (format!("{rp_base}/other.jwt"), "invalid_request_uri"),
        (format!("{rp_base}/big.jwt"), "invalid_request_uri"),
        (format!("{rp_base}/moved.jwt"), "invalid_request_uri"),
        (format!("{rp_base}/missing.jwt"), "invalid_request_uri"),
        (format!("{rp_base}/{}", "a".repeat(600)), "invalid_request_uri"),
    ] {
        let r = browser.get(authorize(&uri).as_str()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(r.headers().get("location").is_none(), "{uri}");
        assert!(r.text().await.unwrap().contains(error), "{uri}");
    }
    *rp.request_object.lock() = "not a JWT".into();
    let r = browser.get(authorize(&format!("{rp_base}/request.jwt")).as_str()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("invalid_request_object"));
    let mut both = authorize(&format!("{rp_base}/request.jwt"));
    both.query_pairs_mut().append_pair("request", "a.b.c");
    let r = browser.get(both.as_str()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("invalid_request"));

    // By default the server requests nothing over plain http, loopback or not.
    let default = TestServer::start().await;
    let (status, v) = default
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "x", "redirect_uris": [REDIRECT], "request_uris": [format!("{rp_base}/request.jwt")]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let url = default.authorize_url(&[
        ("client_id", v["client_id"].as_str().unwrap()),
        ("request_uri", &format!("{rp_base}/request.jwt")),
    ]);
    let r = Browser::new().get(url.as_str()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("allow_loopback_http"));

    // Registration: only https, or http to a loopback address.
    for uri in ["http://rp.example.com/request.jwt", "ftp://rp.example.com/r", "/relative"] {
        let (status, v) = server.admin_post("/admin/v1/clients", json!({"name": "x", "request_uris": [uri]})).await;
        assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("request_uris")), "{uri}: {v}");
    }
}

/// A server allowed to request its clients' endpoints over http on this machine.
async fn server_fetching_from_loopback() -> TestServer {
    TestServer::start_with(support::Options {
        configure: Some(Box::new(|c| c.outbound.allow_loopback_http = true)),
        ..Default::default()
    })
    .await
}

/// The next logout token posted to the relying party, within a deadline.
async fn next_logout(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("a logout token arrives").expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_session_posts_logout_tokens_to_the_clients_it_signed_in_to() {
    let (rp_base, rp, mut logouts) = relying_party().await;
    let server = server_fetching_from_loopback().await;
    let user_id = server.user("lou", "lou password 1").await;
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["backchannel_logout_supported"], true);
    assert_eq!(meta["backchannel_logout_session_supported"], true);

    // Two applications on the same session; the second keeps offline access, and has its ID
    // tokens signed with RS256.
    let (a, a_secret) = server
        .client(json!({"name": "A", "redirect_uris": [REDIRECT], "scopes": ["openid"], "skip_consent": true,
                       "backchannel_logout_uri": format!("{rp_base}/backchannel/a"),
                       "backchannel_logout_session_required": true}))
        .await;
    let (b, b_secret) = server
        .client(json!({"name": "B", "redirect_uris": [REDIRECT], "scopes": ["openid", "offline_access"],
                       "skip_consent": true, "backchannel_logout_uri": format!("{rp_base}/backchannel/flaky-b"),
                       "id_token_signed_response_alg": "RS256"}))
        .await;
    let (a_secret, b_secret) = (a_secret.unwrap(), b_secret.unwrap());
    let browser = Browser::new();
    let sign_in = |client: &str, scope: &str| {
        server.authorize_url(&[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
        ])
    };
    let back = browser.authorize(sign_in(&a, "openid").as_str(), "lou", "lou password 1").await;
    let (_, a_tokens) = server.redeem((&a, &a_secret), &query(&back, "code").unwrap(), REDIRECT).await;
    let back = browser.authorize(sign_in(&b, "openid offline_access").as_str(), "lou", "lou password 1").await;
    let (_, b_tokens) = server.redeem((&b, &b_secret), &query(&back, "code").unwrap(), REDIRECT).await;
    let (_, a_id) = server.verify_jwt(a_tokens["id_token"].as_str().unwrap(), Some(&a)).await;
    let (b_header, b_id) = server.verify_jwt(b_tokens["id_token"].as_str().unwrap(), Some(&b)).await;
    assert_eq!(b_header.alg, Algorithm::RS256);
    let sid = a_id["sid"].as_str().expect("the ID token names its session").to_owned();
    assert_eq!(b_id["sid"], sid.as_str(), "one session, one sid");

    // Refreshing keeps the session's sid in the new ID token.
    let refresh = b_tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, refreshed) = server
        .form("/token", &[("grant_type", "refresh_token"), ("refresh_token", &refresh)], Some((&b, &b_secret)))
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (_, refreshed_id) = server.verify_jwt(refreshed["id_token"].as_str().unwrap(), Some(&b)).await;
    assert_eq!(refreshed_id["sid"], sid.as_str());

    // A signs the person out: both applications are told, by a logout token each; B's
    // endpoint fails the first time and is tried again.
    let mut logout = url::Url::parse(&server.url("/logout")).unwrap();
    logout.query_pairs_mut().append_pair("id_token_hint", a_tokens["id_token"].as_str().unwrap());
    assert_eq!(browser.get(logout.as_str()).await.status(), StatusCode::OK);
    let mut told = [next_logout(&mut logouts).await, next_logout(&mut logouts).await];
    told.sort();
    assert_eq!(told.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), ["a", "flaky-b"]);
    assert!(rp.refused.lock().contains("flaky-b"), "B's endpoint refused once");
    for (((path, token), client), alg) in told.iter().zip([&a, &b]).zip([Algorithm::ES256, Algorithm::RS256]) {
        let (header, claims) = server.verify_jwt(token, Some(client)).await;
        assert_eq!(header.typ.as_deref(), Some("logout+jwt"), "{path}");
        assert_eq!(header.alg, alg, "{path}: signed as the client's ID tokens are");
        assert_eq!(claims["sub"], user_id.as_str());
        assert_eq!(claims["sid"], sid.as_str());
        assert_eq!(claims["events"], json!({"http://schemas.openid.net/event/backchannel-logout": {}}));
        assert!(claims.get("nonce").is_none() && claims["jti"].is_string() && claims["iat"].is_i64());
    }

    // A's grant ended with the session; B's, with offline_access, outlives it.
    let (_, a_access) = server
        .form("/introspect", &[("token", a_tokens["access_token"].as_str().unwrap())], Some((&a, &a_secret)))
        .await;
    assert_eq!(a_access["active"], false, "{a_access}");
    let next = refreshed["refresh_token"].as_str().unwrap();
    let (status, body) =
        server.form("/token", &[("grant_type", "refresh_token"), ("refresh_token", next)], Some((&b, &b_secret))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Registration checks the URI: https or loopback http, no fragment; session_required needs it.
    for body in [
        json!({"name": "x", "backchannel_logout_uri": "http://rp.example.com/bc"}),
        json!({"name": "x", "backchannel_logout_uri": format!("{rp_base}/bc#frag")}),
        json!({"name": "x", "backchannel_logout_session_required": true}),
    ] {
        let (status, v) = server.admin_post("/admin/v1/clients", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v["field"].as_str().is_some_and(|f| f.starts_with("backchannel_logout")), "{v}");
    }
}

/// An Ed25519 key of the relying party: its JWK (public) and its signing key.
fn rp_key(kid: &str) -> (Value, EncodingKey) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
    let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap().public_key().as_ref().to_vec();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": URL_SAFE_NO_PAD.encode(public)});
    (jwk, EncodingKey::from_ed_der(pkcs8.as_ref()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_keys_are_read_from_its_jwks_uri_and_read_again_when_it_rotates() {
    let (rp_base, rp, _) = relying_party().await;
    let server = server_fetching_from_loopback().await;
    let (first, first_key) = rp_key("k1");
    *rp.jwks.lock() = json!({"keys": [first]});
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "keys by reference", "grant_types": ["client_credentials"], "scopes": ["api"],
                   "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": format!("{rp_base}/jwks.json")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["client_id"].as_str().unwrap().to_owned();
    let assertion = |kid: &str, key: &EncodingKey, jti: &str| {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.into());
        let claims = json!({"iss": id, "sub": id, "aud": server.url("/token"), "jti": jti,
                            "exp": portcullis::model::now() + 60});
        encode(&header, &claims, key).unwrap()
    };
    let token = |assertion: String| {
        let server = &server;
        async move {
            server
                .form(
                    "/token",
                    &[
                        ("grant_type", "client_credentials"),
                        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                        ("client_assertion", &assertion),
                    ],
                    None,
                )
                .await
        }
    };
    let (status, v) = token(assertion("k1", &first_key, "j1")).await;
    assert_eq!(status, StatusCode::OK, "signed with the published key: {v}");

    // The client rotates: a new key under a new id is found by fetching the set again (at
    // most once a second).
    let (second, second_key) = rp_key("k2");
    *rp.jwks.lock() = json!({"keys": [second]});
    tokio::time::sleep(portcullis::oauth::client_jwks::REFETCH_AFTER + Duration::from_millis(100)).await;
    let (status, v) = token(assertion("k2", &second_key, "j2")).await;
    assert_eq!(status, StatusCode::OK, "signed with the rotated key: {v}");
    // A key it never published is refused, as is the old one, gone from the set.
    let (_, stranger_key) = rp_key("k3");
    let (status, v) = token(assertion("k3", &stranger_key, "j3")).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{v}");
    let (status, v) = token(assertion("k1", &first_key, "j4")).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{v}");

    // Registration: jwks_uri or jwks, not both; https or loopback http.
    for (body, field) in [
        (json!({"jwks_uri": "http://rp.example.com/jwks.json"}), "jwks_uri"),
        (json!({"jwks_uri": format!("{rp_base}/jwks.json"), "jwks": {"keys": [rp_key("x").0]}}), "jwks_uri"),
    ] {
        let mut body = body;
        body["name"] = "x".into();
        body["token_endpoint_auth_method"] = "private_key_jwt".into();
        let (status, v) = server.admin_post("/admin/v1/clients", body).await;
        assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{v}");
    }
}
