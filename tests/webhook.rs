//! The Deployteq-style webhook receiver (`examples/webhook-receiver`) in front of a real
//! Portcullis: tokens from the token endpoint, checked by `portcullis-resource-server`
//! locally (JWKS) and by introspection, everything over real HTTP on loopback.

mod support;

use std::time::Duration;

use portcullis::config::CompatibilityProfile;
use portcullis_resource_server::Validator;
use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::{Value, json};
use support::{Options, TestServer};

const SCOPE: &str = "apps.webhook:execute";
const PAYLOAD: &str = r#"{"firstname": "Oauth", "email": "oauth2@deployteq.com"}"#;

/// The receiver on a loopback port of its own.
async fn receiver(validator: Validator) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/webhook", listener.local_addr().expect("addr"));
    let app = webhook_receiver::router(validator.with_realm("webhook"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// A confidential client-credentials client with these scopes: (id, secret).
async fn client(server: &TestServer, scopes: &[&str], extra: Value) -> (String, String) {
    let mut body = json!({"name": "sender", "grant_types": ["client_credentials"], "scopes": scopes});
    if let (Some(map), Value::Object(extra)) = (body.as_object_mut(), extra) {
        map.extend(extra);
    }
    let (id, secret) = server.client(body).await;
    (id, secret.expect("a confidential client has a secret"))
}

/// A token from the client credentials grant, the client authenticating with HTTP Basic.
async fn token(server: &TestServer, path: &str, (id, secret): (&str, &str), scope: &str) -> String {
    let (status, body) =
        server.form(path, &[("grant_type", "client_credentials"), ("scope", scope)], Some((id, secret))).await;
    assert_eq!(status, StatusCode::OK, "token endpoint: {body}");
    assert_eq!(body["scope"], scope);
    body["access_token"].as_str().expect("access_token").to_owned()
}

struct Answer {
    status: StatusCode,
    www_authenticate: Option<String>,
    body: Value,
}

async fn post(url: &str, bearer: Option<&str>, body: &str) -> Answer {
    let mut request = reqwest::Client::new()
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_owned());
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("webhook request");
    let status = response.status();
    let www_authenticate = response.headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().expect("ASCII").to_owned());
    let text = response.text().await.expect("body");
    Answer { status, www_authenticate, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
}

/// The webhook took the payload: 202 and an acknowledgement naming the token's client.
fn assert_accepted(answer: &Answer, client_id: &str) {
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.body["status"], "accepted");
    let sent: Value = serde_json::from_str(PAYLOAD).expect("payload");
    assert_eq!(answer.body["received"], sent);
    assert_eq!(answer.body["client_id"], client_id);
    assert_eq!(answer.body["sub"], client_id, "client credentials: the client is the subject");
}

/// 401 `invalid_token`, in the header (RFC 6750 §3) and the body.
fn assert_invalid_token(answer: &Answer, what: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}: {}", answer.body);
    let challenge = answer.www_authenticate.as_deref().unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
    assert!(
        challenge.starts_with(r#"Bearer realm="webhook", error="invalid_token", error_description=""#),
        "{what}: {challenge}"
    );
    assert_eq!(answer.body["error"], "invalid_token", "{what}");
    assert!(answer.body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{what}");
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).expect("a JWT").kid.expect("a kid")
}

#[tokio::test]
async fn jwks_mode_accepts_webhook_tokens_and_refuses_everything_else() {
    let server = TestServer::start().await;
    let url = receiver(Validator::jwks(&server.issuer).with_audience(&server.issuer)).await;
    let (id, secret) = client(&server, &[SCOPE], json!({})).await;
    let good = token(&server, "/token", (&id, &secret), SCOPE).await;

    assert_accepted(&post(&url, Some(&good), PAYLOAD).await, &id);

    // A client registered without the scope: a valid token, but 403 insufficient_scope.
    let (crm, crm_secret) = client(&server, &["crm.customer:read"], json!({})).await;
    let crm_token = token(&server, "/token", (&crm, &crm_secret), "crm.customer:read").await;
    let answer = post(&url, Some(&crm_token), PAYLOAD).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.www_authenticate.as_deref(),
        Some(
            r#"Bearer realm="webhook", error="insufficient_scope", error_description="the token lacks the scope `apps.webhook:execute`", scope="apps.webhook:execute""#
        )
    );
    assert_eq!(answer.body["error"], "insufficient_scope");

    // No token: 401 with a challenge and no error code (RFC 6750 §3.1).
    let answer = post(&url, None, PAYLOAD).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.www_authenticate.as_deref(), Some(r#"Bearer realm="webhook""#));

    assert_invalid_token(&post(&url, Some("garbage"), PAYLOAD).await, "garbage");
    assert_invalid_token(&post(&url, Some("eyJhbGciOiJub25lIn0.e30."), PAYLOAD).await, "alg none");

    // Tokens of another Portcullis that claims to be this issuer: its key is not published here.
    let impostor = TestServer::start_with(Options { issuer: Some(server.issuer.clone()), ..Default::default() }).await;
    let (other, other_secret) = client(&impostor, &[SCOPE], json!({})).await;
    let foreign = token(&impostor, "/token", (&other, &other_secret), SCOPE).await;
    assert_ne!(kid(&foreign), kid(&good));
    assert_invalid_token(&post(&url, Some(&foreign), PAYLOAD).await, "another server's key");
    // The same token under this server's kid: the signature does not verify.
    let relabelled = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut header: Value =
            serde_json::from_slice(&b64.decode(foreign.split('.').next().unwrap()).unwrap()).unwrap();
        header["kid"] = json!(kid(&good));
        let rest = foreign.split_once('.').unwrap().1;
        format!("{}.{rest}", b64.encode(header.to_string()))
    };
    let answer = post(&url, Some(&relabelled), PAYLOAD).await;
    assert_invalid_token(&answer, "another key under a published kid");
    assert_eq!(answer.body["error_description"], "the token's signature does not verify");

    // A valid token but a body that is no JSON object: 400.
    for body in ["firstname=Oauth", "[1, 2]", ""] {
        let answer = post(&url, Some(&good), body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body:?}: {}", answer.body);
        assert_eq!(answer.body["error"], "invalid_request");
    }
    // … checked only once the token is: without one, the body is never looked at.
    assert_eq!(post(&url, None, "firstname=Oauth").await.status, StatusCode::UNAUTHORIZED);
}

/// Deployteq's manual, as a session: the token from `/oauth2/token` (the Deployteq layout),
/// the webhook asking `/oauth2/introspect` about it, and a revocation that takes effect at
/// once there, while the JWKS-mode receiver keeps accepting the revoked token until it expires.
#[tokio::test]
async fn introspection_mode_accepts_and_sees_revocation_at_once() {
    let server =
        TestServer::start_with(Options { profiles: vec![CompatibilityProfile::Deployteq], ..Default::default() }).await;
    let (rs, rs_secret) = client(&server, &[], json!({"name": "webhook", "introspect_any": true})).await;
    let introspecting =
        receiver(Validator::introspection(server.url("/oauth2/introspect"), rs, rs_secret).with_issuer(&server.issuer))
            .await;
    let local = receiver(Validator::jwks(&server.issuer)).await;
    let (id, secret) = client(&server, &[SCOPE], json!({})).await;
    let access = token(&server, "/oauth2/token", (&id, &secret), SCOPE).await;

    assert_accepted(&post(&introspecting, Some(&access), PAYLOAD).await, &id);
    assert_accepted(&post(&local, Some(&access), PAYLOAD).await, &id);

    let (crm, crm_secret) = client(&server, &["crm.customer:read"], json!({})).await;
    let crm_token = token(&server, "/oauth2/token", (&crm, &crm_secret), "crm.customer:read").await;
    let answer = post(&introspecting, Some(&crm_token), PAYLOAD).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.www_authenticate.as_deref().is_some_and(|c| c.contains(r#"error="insufficient_scope""#)));
    assert_eq!(
        post(&introspecting, None, PAYLOAD).await.www_authenticate.as_deref(),
        Some(r#"Bearer realm="webhook""#)
    );
    assert_invalid_token(&post(&introspecting, Some("garbage"), PAYLOAD).await, "garbage, introspected");

    let (status, _) = server.form("/oauth2/revoke", &[("token", &access)], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK);
    let answer = post(&introspecting, Some(&access), PAYLOAD).await;
    assert_invalid_token(&answer, "revoked");
    assert_eq!(answer.body["error_description"], "the token is not active");
    // The trade-off the JWKS mode documents: it cannot know.
    assert_accepted(&post(&local, Some(&access), PAYLOAD).await, &id);

    // A receiver whose own credentials are wrong cannot check tokens: 503, not the token's fault.
    let misconfigured =
        receiver(Validator::introspection(server.url("/oauth2/introspect"), id.clone(), "wrong secret")).await;
    let fresh = token(&server, "/oauth2/token", (&id, &secret), SCOPE).await;
    let answer = post(&misconfigured, Some(&fresh), PAYLOAD).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.body);
    assert_eq!(answer.www_authenticate, None);
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let server = TestServer::start().await;
    let (rs, rs_secret) = client(&server, &[], json!({"name": "webhook", "introspect_any": true})).await;
    let (id, secret) = client(&server, &[SCOPE], json!({"access_token_ttl": 1})).await;
    let short = token(&server, "/token", (&id, &secret), SCOPE).await;
    let strict = receiver(Validator::jwks(&server.issuer).with_leeway(Duration::ZERO)).await;
    let lenient = receiver(Validator::jwks(&server.issuer)).await;
    let introspecting = receiver(Validator::introspection(server.url("/introspect"), rs, rs_secret)).await;
    assert_accepted(&post(&strict, Some(&short), PAYLOAD).await, &id);

    // `exp` is one second after `iat`; two seconds on, it has passed by at least a second.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let answer = post(&strict, Some(&short), PAYLOAD).await;
    assert_invalid_token(&answer, "expired, no leeway");
    assert_eq!(answer.body["error_description"], "the token has expired");
    assert_invalid_token(&post(&introspecting, Some(&short), PAYLOAD).await, "expired, introspected");
    // The default 30 s leeway still takes it: the leeway is what the strict receiver turned off.
    assert_accepted(&post(&lenient, Some(&short), PAYLOAD).await, &id);
}

#[tokio::test]
async fn a_key_rotation_is_followed_without_a_restart() {
    let server = TestServer::start().await;
    let url = receiver(Validator::jwks(&server.issuer).with_refetch_interval(Duration::from_secs(60))).await;
    let (id, secret) = client(&server, &[SCOPE], json!({})).await;
    let before = token(&server, "/token", (&id, &secret), SCOPE).await;
    // The receiver fetches and caches the JWKS, which knows only the first key.
    assert_accepted(&post(&url, Some(&before), PAYLOAD).await, &id);

    let r = server
        .http
        .post(server.url("/admin/v1/keys/rotate"))
        .bearer_auth(support::ADMIN_TOKEN)
        .json(&json!({"now": true}))
        .send()
        .await
        .expect("rotate");
    assert_eq!(r.status(), StatusCode::OK);
    let after = token(&server, "/token", (&id, &secret), SCOPE).await;
    assert_ne!(kid(&after), kid(&before), "the new token is signed with the new key");

    assert_accepted(&post(&url, Some(&after), PAYLOAD).await, &id);
    assert_accepted(&post(&url, Some(&before), PAYLOAD).await, &id);
    // A second rotation at once: the re-fetch for the first one was just now, so a token of
    // the next key waits for the refetch interval (60 s here) rather than hammering the issuer.
    server
        .http
        .post(server.url("/admin/v1/keys/rotate"))
        .bearer_auth(support::ADMIN_TOKEN)
        .json(&json!({"now": true}))
        .send()
        .await
        .expect("rotate");
    let third = token(&server, "/token", (&id, &secret), SCOPE).await;
    assert_invalid_token(&post(&url, Some(&third), PAYLOAD).await, "a key newer than the rate limit allows");
}

/// RS256 and EdDSA keys (`keys.algorithm`) are followed as well as the default ES256.
#[tokio::test]
async fn every_signing_algorithm_is_accepted() {
    for algorithm in ["RS256", "EdDSA"] {
        let server = TestServer::start_with(Options { algorithm: Some(algorithm.into()), ..Default::default() }).await;
        let url = receiver(Validator::jwks(&server.issuer)).await;
        let (id, secret) = client(&server, &[SCOPE], json!({})).await;
        let access = token(&server, "/token", (&id, &secret), SCOPE).await;
        let header = jsonwebtoken::decode_header(&access).expect("a JWT");
        assert_eq!(format!("{:?}", header.alg), algorithm);
        assert_accepted(&post(&url, Some(&access), PAYLOAD).await, &id);
    }
}
