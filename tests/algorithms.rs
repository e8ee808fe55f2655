//! The JWS algorithms as relying parties and clients meet them: every algorithm the server
//! signs with offered at once (OIDC Discovery §3: RS256 among them), ID tokens signed with the
//! algorithm a client registered (`id_token_signed_response_alg`) and verified with the
//! `openidconnect` crate against the JWKS, access tokens staying with the server's; and what
//! clients sign with Ed25519 named as RFC 9864 names it, `"alg": "Ed25519"` (client
//! assertions, request objects, DPoP proofs), accepted wherever `EdDSA` is.

mod support;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    RedirectUrl, TokenResponse,
};
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
async fn every_served_algorithm_is_advertised_and_rs256_is_among_them() {
    let server = TestServer::start().await;
    let meta = discovery(&server).await;
    // OIDC Discovery §3: RS256 MUST be included; the server's own algorithm comes first.
    let served = names(&meta["id_token_signing_alg_values_supported"]);
    assert_eq!(served.first(), Some(&"ES256"), "{served:?}");
    for alg in ["ES256", "RS256", "EdDSA"] {
        assert!(served.contains(&alg), "{alg} in {served:?}");
    }
    assert_eq!(names(&meta["authorization_signing_alg_values_supported"]), served, "JARM signs as ID tokens do");
    // Each served algorithm has a published key, whose `alg` names it.
    let jwks: Value = server.http.get(server.url("/jwks.json")).send().await.unwrap().json().await.unwrap();
    let mut published: Vec<&str> =
        jwks["keys"].as_array().unwrap().iter().map(|k| k["alg"].as_str().unwrap()).collect();
    published.sort();
    assert_eq!(published, ["ES256", "EdDSA", "RS256"], "{jwks}");
}

/// express-openid-connect and openid-client expect RS256 unless told otherwise: a client
/// registered for it gets RS256 ID tokens, which a verifier allowing RS256 alone accepts.
#[tokio::test]
async fn a_client_gets_id_tokens_signed_with_the_algorithm_it_registered() {
    let server = TestServer::start().await;
    server.user("alice", PASSWORD).await;
    let (id, secret) = server
        .client(json!({"name": "express app", "redirect_uris": [REDIRECT], "skip_consent": true,
                       "id_token_signed_response_alg": "RS256"}))
        .await;
    let (status, _, listed) =
        server.admin(reqwest::Method::GET, &format!("/admin/v1/clients/{id}"), support::ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["id_token_signed_response_alg"], "RS256", "{listed}");

    let http = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(server.issuer.clone()).unwrap(), &http)
        .await
        .expect("discovery");
    let rp = CoreClient::from_provider_metadata(metadata, ClientId::new(id.clone()), secret.map(ClientSecret::new))
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (url, _, nonce) =
        rp.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random).url();
    let back = Browser::new().authorize(url.as_str(), "alice", PASSWORD).await;
    let code = query(&back, "code").unwrap_or_else(|| panic!("a code: {back}"));
    let tokens = rp.exchange_code(AuthorizationCode::new(code)).unwrap().request_async(&http).await.expect("tokens");
    let id_token = tokens.id_token().expect("an ID token");
    // As express-openid-connect's default: RS256 and nothing else.
    let verifier = rp.id_token_verifier().set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
    let claims = id_token.claims(&verifier, &nonce).expect("the RS256 ID token verifies against the JWKS");
    let alg = id_token.signing_alg().unwrap();
    assert_eq!(*alg, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256);
    let hash = AccessTokenHash::from_token(tokens.access_token(), alg, id_token.signing_key(&verifier).unwrap());
    assert_eq!(claims.access_token_hash(), Some(&hash.unwrap()), "at_hash with RS256's SHA-256");
    // The access token keeps the server's algorithm.
    let (header, _) = server.verify_jwt(tokens.access_token().secret(), None).await;
    assert_eq!(header.alg, Algorithm::ES256);

    // Another client, registered for EdDSA: at_hash with SHA-512 (OIDC Core §3.1.3.6).
    let (ed, ed_secret) = server
        .client(json!({"name": "ed app", "redirect_uris": [REDIRECT], "skip_consent": true,
                       "id_token_signed_response_alg": "EdDSA", "response_types": ["code", "code id_token"]}))
        .await;
    let url = server.authorize_url(&[
        ("client_id", ed.as_str()),
        ("response_type", "code id_token"),
        ("scope", "openid"),
        ("nonce", "n-1"),
    ]);
    let back = Browser::new().authorize(url.as_str(), "alice", PASSWORD).await;
    let fragment: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(back.fragment().unwrap().as_bytes()).into_owned().collect();
    let (header, claims) = server.verify_jwt(&fragment["id_token"], Some(&ed)).await;
    assert_eq!(header.alg, Algorithm::EdDSA);
    let code = &fragment["code"];
    let (status, tokens) = server.redeem((&ed, ed_secret.as_deref().unwrap()), code, REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (header, back_channel) = server.verify_jwt(tokens["id_token"].as_str().unwrap(), Some(&ed)).await;
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(
        back_channel["at_hash"],
        support::at_hash(Algorithm::EdDSA, tokens["access_token"].as_str().unwrap()),
        "{back_channel}"
    );
    let c_hash = {
        use sha2::Digest;
        b64(&sha2::Sha512::digest(code.as_bytes())[..32])
    };
    assert_eq!(claims["c_hash"], c_hash, "c_hash with EdDSA's SHA-512");
    let (header, _) = server.verify_jwt(tokens["access_token"].as_str().unwrap(), None).await;
    assert_eq!(header.alg, Algorithm::ES256, "access tokens keep the server's algorithm");

    // JARM signs for the client as its ID tokens are signed.
    let url = server.authorize_url(&[
        ("client_id", id.as_str()),
        ("response_type", "code"),
        ("response_mode", "query.jwt"),
        ("scope", "openid"),
    ]);
    let back = Browser::new().authorize(url.as_str(), "alice", PASSWORD).await;
    let response = query(&back, "response").unwrap_or_else(|| panic!("a JWT-secured response: {back}"));
    let (header, _) = server.verify_jwt(&response, Some(&id)).await;
    assert_eq!(header.alg, Algorithm::RS256);

    // An algorithm the server does not sign with is refused at registration.
    for alg in ["HS256", "PS256", "none", "Ed25519", "", "rs256"] {
        let (status, v) = server
            .admin_post(
                "/admin/v1/clients",
                json!({"name": "x", "redirect_uris": [REDIRECT], "id_token_signed_response_alg": alg}),
            )
            .await;
        assert_eq!(
            (status, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("id_token_signed_response_alg")),
            "{alg}: {v}"
        );
    }
    let (status, v) = server
        .admin_post(
            "/admin/v1/clients",
            json!({"name": "x", "redirect_uris": [REDIRECT], "id_token_signed_response_alg": 256}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
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
