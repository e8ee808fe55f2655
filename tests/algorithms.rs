//! The JWS algorithms as clients meet them: what clients sign with Ed25519 named as RFC 9864
//! names it, `"alg": "Ed25519"` (client assertions, request objects, DPoP proofs), accepted
//! wherever `EdDSA` is, and both names advertised.

mod support;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Browser, TestServer, query};

const REDIRECT: &str = "https://rp.example.com/callback";
const PASSWORD: &str = "correct horse battery";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A client's Ed25519 key: its public half as a JWK, and JWS signing whatever the header says.
struct Ed25519 {
    pkcs8: Vec<u8>,
    jwk: Value,
}

impl Ed25519 {
    fn new(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap().as_ref().to_vec();
        let public = Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap().public_key().as_ref().to_vec();
        // As openid-client 6 publishes it: the key's `alg` is RFC 9864's name too.
        let jwk =
            json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "Ed25519", "use": "sig", "x": b64(&public)});
        Self { pkcs8, jwk }
    }

    /// The JWS Compact Serialization of `header` and `claims` (RFC 7515 §7.1), the signature
    /// computed by jsonwebtoken: jsonwebtoken's own `Header` has no `Ed25519` to write.
    fn sign(&self, header: Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let key = EncodingKey::from_ed_der(&self.pkcs8);
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::EdDSA).unwrap();
        format!("{input}.{signature}")
    }
}

async fn discovery(server: &TestServer) -> Value {
    server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array().unwrap_or_else(|| panic!("a list: {list}")).iter().map(|v| v.as_str().unwrap()).collect()
}

#[tokio::test]
async fn ed25519_client_jwts_are_accepted_where_eddsa_is() {
    let server = TestServer::start().await;
    let meta = discovery(&server).await;
    for list in [
        "token_endpoint_auth_signing_alg_values_supported",
        "request_object_signing_alg_values_supported",
        "dpop_signing_alg_values_supported",
    ] {
        let algs = names(&meta[list]);
        assert!(algs.contains(&"EdDSA") && algs.contains(&"Ed25519"), "{list}: {algs:?}");
    }
    server.user("rita", PASSWORD).await;
    let key = Ed25519::new("rp-1");
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "openid-client 6", "redirect_uris": [REDIRECT], "scopes": ["openid", "email", "api"],
                   "grant_types": ["authorization_code", "client_credentials"], "skip_consent": true,
                   "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [key.jwk]},
                   "request_object_signing_alg": "Ed25519"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["client_id"].as_str().unwrap().to_owned();
    let now = portcullis::model::now();

    // RFC 7523 client assertion.
    let assertion = |jti: &str, alg: &str| {
        let claims =
            json!({"iss": id, "sub": id, "aud": server.url("/token"), "exp": now + 60, "iat": now, "jti": jti});
        key.sign(json!({"alg": alg, "kid": "rp-1", "typ": "JWT"}), &claims)
    };
    let token_request = |assertion: String| {
        let server = &server;
        async move {
            let pairs = [
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion.as_str()),
            ];
            server.form("/token", &pairs, None).await
        }
    };
    let (status, v) = token_request(assertion("a-1", "Ed25519")).await;
    assert_eq!(status, StatusCode::OK, "an Ed25519 client assertion: {v}");
    let (status, v) = token_request(assertion("a-2", "EdDSA")).await;
    assert_eq!(status, StatusCode::OK, "and as EdDSA: {v}");
    let (status, v) = token_request(assertion("a-1", "Ed25519")).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "replayed: {v}");
    let forged = Ed25519::new("rp-1").sign(
        json!({"alg": "Ed25519", "kid": "rp-1"}),
        &json!({"iss": id, "sub": id, "aud": server.issuer, "exp": now + 60, "jti": "a-3"}),
    );
    let (status, v) = token_request(forged).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "another key: {v}");

    // OIDC Core §6.1 request object, from a client registered with `Ed25519`.
    let object = json!({"iss": id, "aud": server.issuer, "exp": now + 300, "client_id": id, "response_type": "code",
                        "redirect_uri": REDIRECT, "scope": "openid email", "state": "from-the-object"});
    let request = key.sign(json!({"alg": "Ed25519", "kid": "rp-1"}), &object);
    let url = server.authorize_url(&[("client_id", id.as_str()), ("response_type", "code"), ("request", &request)]);
    let back = Browser::new().authorize(url.as_str(), "rita", PASSWORD).await;
    assert_eq!(query(&back, "state").as_deref(), Some("from-the-object"), "{back}");
    // Registered as `Ed25519`, its `EdDSA` request objects are the same algorithm.
    let request = key.sign(json!({"alg": "EdDSA", "kid": "rp-1"}), &object);
    let url = server.authorize_url(&[("client_id", id.as_str()), ("response_type", "code"), ("request", &request)]);
    let back = Browser::new().authorize(url.as_str(), "rita", PASSWORD).await;
    assert_eq!(query(&back, "state").as_deref(), Some("from-the-object"), "{back}");

    // RFC 9449 DPoP proof.
    let proof_key = Ed25519::new("unused");
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": proof_key.jwk["x"]});
    let proof = |jti: &str| {
        let claims = json!({"jti": jti, "htm": "POST", "htu": server.url("/token"), "iat": portcullis::model::now()});
        proof_key.sign(json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": jwk}), &claims)
    };
    let (status, v) = {
        let pairs = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &assertion("a-4", "Ed25519")),
        ];
        let r = server.http.post(server.url("/token")).form(&pairs).header("DPoP", proof("p-1")).send().await.unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK, "an Ed25519 DPoP proof: {v}");
    assert_eq!(v["token_type"], "DPoP");
    let thumbprint = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(jwk.clone())
        .unwrap()
        .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256);
    let (_, claims) = server.verify_jwt(v["access_token"].as_str().unwrap(), None).await;
    assert_eq!(claims["cnf"]["jkt"], thumbprint, "bound to the Ed25519 key");
    // A proof naming `Ed25519` with a key of another curve is refused.
    let p256 = json!({"kty": "EC", "crv": "P-256", "x": proof_key.jwk["x"], "y": proof_key.jwk["x"]});
    let bad = proof_key.sign(
        json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": p256}),
        &json!({"jti": "p-2", "htm": "POST", "htu": server.url("/token"), "iat": portcullis::model::now()}),
    );
    let pairs = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", &assertion("a-5", "Ed25519")),
    ];
    let r = server.http.post(server.url("/token")).form(&pairs).header("DPoP", bad).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_dpop_proof");
}
