//! OAuth 2.0 Demonstrating Proof of Possession (RFC 9449) as a client and a resource server
//! see it: proofs built here by hand (the key's JWK in the header, signed with jsonwebtoken),
//! tokens bound to their key at the token endpoint, used at userinfo with the `DPoP` scheme,
//! every check of §4.3 failing with its error, nonces, and the bindings of refresh tokens,
//! codes and clients registered for them.

mod support;

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use portcullis::model::ManualClock;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Browser, TestServer, query};

const REDIRECT: &str = "https://rp.example.com/callback";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A client's P-256 key pair: the private key to sign proofs, the public one as a JWK.
struct Key {
    signing: EncodingKey,
    jwk: Value,
}

impl Key {
    fn new() -> Self {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        // The uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])});
        Self { signing: EncodingKey::from_ec_der(pkcs8.as_ref()), jwk }
    }

    /// The RFC 7638 SHA-256 thumbprint, as jsonwebtoken computes it.
    fn thumbprint(&self) -> String {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(self.jwk.clone()).unwrap();
        jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
    }

    /// A proof for `htm` and `htu`, issued now by `clock` (the system's when none), with `extra` claims.
    fn proof_at(&self, htm: &str, htu: &str, iat: i64, extra: Value) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let mut claims = json!({"jti": uuid::Uuid::new_v4().to_string(), "htm": htm, "htu": htu, "iat": iat});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            claims[k] = v;
        }
        self.sign(&header, &claims)
    }

    fn proof(&self, htm: &str, htu: &str) -> String {
        self.proof_at(htm, htu, portcullis::model::now(), json!({}))
    }

    /// A JWS of `header` and `claims`, signed with this key whatever the header says.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &self.signing, Algorithm::ES256).unwrap();
        format!("{input}.{signature}")
    }
}

/// `ath` (§4.2): base64url of the SHA-256 of the access token.
fn ath(token: &str) -> String {
    b64(&Sha256::digest(token.as_bytes()))
}

/// POSTs a form to the token endpoint at `path` with these `DPoP` headers (each one header field).
async fn token_request(
    server: &TestServer,
    path: &str,
    pairs: &[(&str, &str)],
    basic: Option<(&str, &str)>,
    proofs: &[&str],
) -> (StatusCode, HeaderMap, Value) {
    let mut req = server.http.post(server.url(path)).form(pairs);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    for proof in proofs {
        req = req.header("DPoP", *proof);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let text = r.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// GETs userinfo with `authorization` and a `DPoP` proof, if any.
async fn userinfo(server: &TestServer, authorization: &str, proof: Option<&str>) -> (StatusCode, HeaderMap, Value) {
    let mut req = server.http.get(server.url("/userinfo")).header("Authorization", authorization);
    if let Some(proof) = proof {
        req = req.header("DPoP", proof);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let text = r.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn www_authenticate(headers: &HeaderMap) -> &str {
    headers.get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// A confidential client for the client credentials grant: (id, secret).
async fn daemon(server: &TestServer) -> (String, String) {
    let (id, secret) =
        server.client(json!({"name": "daemon", "grant_types": ["client_credentials"], "scopes": ["reports"]})).await;
    (id, secret.unwrap())
}

#[tokio::test]
async fn discovery_lists_the_proof_algorithms() {
    let server = TestServer::start().await;
    let meta: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    let algs = meta["dpop_signing_alg_values_supported"].as_array().expect("listed");
    for alg in ["ES256", "RS256", "PS256", "EdDSA"] {
        assert!(algs.iter().any(|a| a == alg), "{alg} in {algs:?}");
    }
    assert!(!algs.iter().any(|a| a.as_str().is_some_and(|a| a.starts_with("HS") || a == "none")));
}

#[tokio::test]
async fn client_credentials_token_is_bound_to_the_proofs_key_and_introspection_says_so() {
    let server = TestServer::start().await;
    let (id, secret) = daemon(&server).await;
    let key = Key::new();
    let proof = key.proof("POST", &server.url("/token"));
    let (status, _, body) =
        token_request(&server, "/token", &[("grant_type", "client_credentials")], Some((&id, &secret)), &[&proof])
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap();
    let (_, claims) = server.verify_jwt(token, None).await;
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint(), "§6.1: cnf.jkt is the key's RFC 7638 thumbprint");

    let (status, v) = server.form("/introspect", &[("token", token)], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["active"], true);
    assert_eq!(v["token_type"], "DPoP", "§6.2");
    assert_eq!(v["cnf"], json!({"jkt": key.thumbprint()}));

    // Without a proof, nothing changes: a bearer token, no `cnf`.
    let (status, body) = server.form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let bearer = body["access_token"].as_str().unwrap();
    assert!(server.verify_jwt(bearer, None).await.1.get("cnf").is_none());
    let (_, v) = server.form("/introspect", &[("token", bearer)], Some((&id, &secret))).await;
    assert_eq!((v["token_type"].as_str(), v.get("cnf")), (Some("Bearer"), None));

    // Userinfo wants `openid`: 403 `insufficient_scope`, challenged in the token's own scheme.
    let proof = key.proof_at("GET", &server.url("/userinfo"), portcullis::model::now(), json!({"ath": ath(token)}));
    let (status, headers, v) = userinfo(&server, &format!("DPoP {token}"), Some(&proof)).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("insufficient_scope")), "{v}");
    assert!(www_authenticate(&headers).starts_with("DPoP error=\"insufficient_scope\", scope=\"openid\""));
    let (status, headers, _) = userinfo(&server, &format!("Bearer {bearer}"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(www_authenticate(&headers), "Bearer error=\"insufficient_scope\", scope=\"openid\"");

    // The resource server SDK takes bearer tokens only: the bound one is refused, by JWKS
    // and by introspection alike.
    use portcullis_resource_server::Validator;
    let (rs, rs_secret) =
        server.client(json!({"name": "rs", "grant_types": ["client_credentials"], "introspect_any": true})).await;
    let rs_secret = rs_secret.unwrap();
    for validator in
        [Validator::jwks(&server.issuer), Validator::introspection(server.url("/introspect"), rs, rs_secret)]
    {
        assert!(validator.validate(bearer).await.is_ok());
        assert!(validator.validate(token).await.is_err(), "a DPoP-bound token is no bearer token");
    }
}

#[tokio::test]
async fn each_check_of_section_4_3_refuses_with_invalid_dpop_proof() {
    use portcullis::config::CompatibilityProfile::Datev;
    let server = TestServer::start_with(support::Options { profiles: vec![Datev], ..Default::default() }).await;
    let (id, secret) = daemon(&server).await;
    let key = Key::new();
    let htu = server.url("/token");
    let now = portcullis::model::now();
    let header = |alg: &str| json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.jwk});
    let claims = || json!({"jti": uuid::Uuid::new_v4().to_string(), "htm": "POST", "htu": htu, "iat": now});
    let hs256 = {
        let input = format!("{}.{}", b64(header("HS256").to_string().as_bytes()), b64(claims().to_string().as_bytes()));
        let sig = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &EncodingKey::from_secret(b"a shared secret"),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{input}.{sig}")
    };
    let tampered = {
        let good = key.proof("POST", &htu);
        let (input, _) = good.rsplit_once('.').unwrap();
        let other = Key::new().proof("POST", &htu);
        format!("{input}.{}", other.rsplit_once('.').unwrap().1)
    };
    let mut with_private = key.jwk.clone();
    with_private["d"] = json!(b64(&[7u8; 32]));
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}).to_string().as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("not a JWT", vec!["not.a.jwt.at.all".into()]),
        ("typ is not dpop+jwt", vec![key.sign(&json!({"typ": "JWT", "alg": "ES256", "jwk": key.jwk}), &claims())]),
        ("a symmetric alg", vec![hs256]),
        ("alg none", vec![unsigned]),
        ("no jwk", vec![key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256"}), &claims())]),
        (
            "a private key in jwk",
            vec![key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": with_private}), &claims())],
        ),
        ("a signature of another key", vec![tampered]),
        ("htm GET", vec![key.proof("GET", &htu)]),
        ("htu of another endpoint", vec![key.proof("POST", &server.url("/introspect"))]),
        ("htu of another server", vec![key.proof("POST", "https://elsewhere.example.com/token")]),
        ("htu of another layout's token endpoint", vec![key.proof("POST", &server.url("/connect/token"))]),
        ("iat two minutes ago", vec![key.proof_at("POST", &htu, now - 120, json!({}))]),
        ("iat two minutes ahead", vec![key.proof_at("POST", &htu, now + 120, json!({}))]),
        ("no jti", vec![key.sign(&header("ES256"), &json!({"htm": "POST", "htu": htu, "iat": now}))]),
        ("two DPoP headers", vec![key.proof("POST", &htu), key.proof("POST", &htu)]),
        ("a proof too long", vec![key.proof_at("POST", &htu, now, json!({"pad": "x".repeat(9000)}))]),
    ];
    for (case, proofs) in &cases {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let (status, _, body) =
            token_request(&server, "/token", &[("grant_type", "client_credentials")], Some((&id, &secret)), &proofs)
                .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")),
            "{case}: {body}"
        );
    }

    // A proof is used once (§11.1).
    let proof = key.proof("POST", &htu);
    let pairs = [("grant_type", "client_credentials")];
    let (status, _, body) = token_request(&server, "/token", &pairs, Some((&id, &secret)), &[&proof]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = token_request(&server, "/token", &pairs, Some((&id, &secret)), &[&proof]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")),
        "replayed: {body}"
    );

    // `htu` is the URL the request came in at, in any layout, without query or fragment.
    let proof = key.proof("POST", &format!("{}?q=1#f", server.url("/connect/token")));
    let (status, _, body) = token_request(&server, "/connect/token", &pairs, Some((&id, &secret)), &[&proof]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
}

#[tokio::test]
async fn an_ed25519_key_binds_too_and_a_key_must_be_of_its_algs_curve() {
    use aws_lc_rs::signature::Ed25519KeyPair;
    let server = TestServer::start().await;
    let (id, secret) = daemon(&server).await;
    let htu = server.url("/token");
    let pairs = [("grant_type", "client_credentials")];
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk});
    let claims = json!({"jti": "ed-1", "htm": "POST", "htu": htu, "iat": portcullis::model::now()});
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_ed_der(pkcs8.as_ref()), Algorithm::EdDSA)
            .unwrap();
    let proof = format!("{input}.{signature}");
    let (status, _, body) = token_request(&server, "/token", &pairs, Some((&id, &secret)), &[&proof]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
    let (_, at) = server.verify_jwt(body["access_token"].as_str().unwrap(), None).await;
    assert_eq!(at["cnf"]["jkt"], jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256));

    // An ES256 proof whose `jwk` claims another curve, or another key type, is refused.
    let key = Key::new();
    for (kty, crv) in [("EC", "P-384"), ("OKP", "Ed25519")] {
        let mut jwk = key.jwk.clone();
        jwk["kty"] = json!(kty);
        jwk["crv"] = json!(crv);
        let claims = json!({"jti": uuid::Uuid::new_v4().to_string(), "htm": "POST", "htu": htu,
                            "iat": portcullis::model::now()});
        let proof = key.sign(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}), &claims);
        let (status, _, body) = token_request(&server, "/token", &pairs, Some((&id, &secret)), &[&proof]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")),
            "{kty} {crv}: {body}"
        );
    }
}

#[tokio::test]
async fn authorization_code_refresh_and_userinfo_with_a_public_client() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, _) = server
        .client(json!({"name": "spa", "redirect_uris": [REDIRECT], "public": true, "skip_consent": true,
                       "scopes": ["openid", "email", "offline_access"]}))
        .await;
    let key = Key::new();
    let verifier = "a-very-long-code-verifier-with-enough-entropy-0123456789";
    let challenge = b64(&Sha256::digest(verifier.as_bytes()));
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email offline_access"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    let back = Browser::new().authorize(url.as_str(), "bob", "bob's password").await;
    let code = query(&back, "code").expect("a code");
    let token_url = server.url("/token");
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", id.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    let (status, _, tokens) = token_request(&server, "/token", &pairs, None, &[&key.proof("POST", &token_url)]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().expect("a refresh token").to_owned();
    assert_eq!(server.verify_jwt(&access, None).await.1["cnf"]["jkt"], key.thumbprint());

    // §7: userinfo with the DPoP scheme and a proof naming the token.
    let userinfo_url = server.url("/userinfo");
    let proof = key.proof_at("GET", &userinfo_url, portcullis::model::now(), json!({"ath": ath(&access)}));
    let (status, _, claims) = userinfo(&server, &format!("DPoP {access}"), Some(&proof)).await;
    assert_eq!(status, StatusCode::OK, "{claims}");
    assert_eq!(claims["email"], "bob@example.com");
    // By POST too: `htm` is the request's method.
    let proof = key.proof_at("POST", &userinfo_url, portcullis::model::now(), json!({"ath": ath(&access)}));
    let r = server
        .http
        .post(&userinfo_url)
        .header("Authorization", format!("DPoP {access}"))
        .header("DPoP", proof)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A DPoP-bound token is never a bearer token (§7.2).
    let (status, headers, body) = userinfo(&server, &format!("Bearer {access}"), None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")), "{body}");
    assert!(www_authenticate(&headers).starts_with("DPoP error=\"invalid_token\""), "{headers:?}");
    // Nor used without a proof, with another key's, or with a proof for another token.
    let (status, headers, body) = userinfo(&server, &format!("DPoP {access}"), None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof")), "{body}");
    let challenge = www_authenticate(&headers);
    assert!(challenge.starts_with("DPoP error=\"invalid_dpop_proof\"") && challenge.contains("algs=\""), "{challenge}");
    let other = Key::new().proof_at("GET", &userinfo_url, portcullis::model::now(), json!({"ath": ath(&access)}));
    let (status, _, body) = userinfo(&server, &format!("DPoP {access}"), Some(&other)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof")), "{body}");
    let wrong_ath = key.proof_at("GET", &userinfo_url, portcullis::model::now(), json!({"ath": ath("another token")}));
    let (status, _, body) = userinfo(&server, &format!("DPoP {access}"), Some(&wrong_ath)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof")), "{body}");
    let no_ath = key.proof("GET", &userinfo_url);
    let (status, _, body) = userinfo(&server, &format!("DPoP {access}"), Some(&no_ath)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof")), "{body}");

    // §5: the public client's refresh token is bound to the key: without a proof, or with
    // another key's, it is refused (and stays usable).
    let refresh_pairs =
        [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", id.as_str())];
    let (status, _, body) = token_request(&server, "/token", &refresh_pairs, None, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");
    let other = Key::new().proof("POST", &token_url);
    let (status, _, body) = token_request(&server, "/token", &refresh_pairs, None, &[&other]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let (status, _, refreshed) =
        token_request(&server, "/token", &refresh_pairs, None, &[&key.proof("POST", &token_url)]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["token_type"], "DPoP", "refreshed access tokens stay bound");
    assert_eq!(
        server.verify_jwt(refreshed["access_token"].as_str().unwrap(), None).await.1["cnf"]["jkt"],
        key.thumbprint()
    );
    // The successor is bound to the same key.
    let next = refreshed["refresh_token"].as_str().unwrap();
    let next_pairs = [("grant_type", "refresh_token"), ("refresh_token", next), ("client_id", id.as_str())];
    let (status, _, body) = token_request(&server, "/token", &next_pairs, None, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");
    let (status, _, body) =
        token_request(&server, "/token", &next_pairs, None, &[&key.proof("POST", &token_url)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A bearer token (no `cnf`) keeps working as a bearer token, and only as one.
    let (id2, secret2) = server
        .client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true, "scopes": ["openid", "email"]}))
        .await;
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", id2.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email"),
    ]);
    let back = Browser::new().authorize(url.as_str(), "bob", "bob's password").await;
    let (status, tokens) =
        server.redeem((&id2, secret2.as_deref().unwrap()), &query(&back, "code").unwrap(), REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let bearer = tokens["access_token"].as_str().unwrap();
    let (status, _, body) = userinfo(&server, &format!("Bearer {bearer}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let proof = key.proof_at("GET", &userinfo_url, portcullis::model::now(), json!({"ath": ath(bearer)}));
    let (status, headers, body) = userinfo(&server, &format!("DPoP {bearer}"), Some(&proof)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")), "{body}");
    assert!(www_authenticate(&headers).starts_with("DPoP "), "{headers:?}");
}

#[tokio::test]
async fn a_confidential_clients_refresh_token_is_not_bound_but_its_access_tokens_are() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, secret) = server
        .client(json!({"name": "rp", "redirect_uris": [REDIRECT], "skip_consent": true,
                       "always_issue_refresh_token": true, "scopes": ["openid"]}))
        .await;
    let secret = secret.unwrap();
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
    ]);
    let back = Browser::new().authorize(url.as_str(), "bob", "bob's password").await;
    let code = query(&back, "code").unwrap();
    let token_url = server.url("/token");
    let first = Key::new();
    let pairs = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT)];
    let (status, _, tokens) =
        token_request(&server, "/token", &pairs, Some((&id, &secret)), &[&first.proof("POST", &token_url)]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().expect("a refresh token");
    // Another key's proof: the new access token is bound to that key.
    let second = Key::new();
    let pairs = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (status, _, body) =
        token_request(&server, "/token", &pairs, Some((&id, &secret)), &[&second.proof("POST", &token_url)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(
        server.verify_jwt(body["access_token"].as_str().unwrap(), None).await.1["cnf"]["jkt"],
        second.thumbprint()
    );
}

#[tokio::test]
async fn nonces_when_the_server_requires_them() {
    let clock = Arc::new(ManualClock::default());
    let server = TestServer::start_with(support::Options {
        clock: Some(clock.clone()),
        configure: Some(Box::new(|c| c.dpop.require_nonce = true)),
        ..Default::default()
    })
    .await;
    let (id, secret) = daemon(&server).await;
    let key = Key::new();
    let htu = server.url("/token");
    let pairs = [("grant_type", "client_credentials")];
    let basic = Some((id.as_str(), secret.as_str()));
    let now = || portcullis::model::Clock::now(clock.as_ref());

    // §8: no nonce: `use_dpop_nonce`, and one to use in `DPoP-Nonce`.
    let (status, headers, body) =
        token_request(&server, "/token", &pairs, basic, &[&key.proof_at("POST", &htu, now(), json!({}))]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("use_dpop_nonce")), "{body}");
    let nonce = headers.get("dpop-nonce").expect("a DPoP-Nonce header").to_str().unwrap().to_owned();
    let proof = key.proof_at("POST", &htu, now(), json!({"nonce": nonce}));
    let (status, headers, body) = token_request(&server, "/token", &pairs, basic, &[&proof]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    // §8.2: the answer brings the next nonce, which the next proof may use at once.
    let next = headers.get("dpop-nonce").expect("the next nonce").to_str().unwrap().to_owned();
    let proof = key.proof_at("POST", &htu, now(), json!({"nonce": next}));
    let (status, _, body) = token_request(&server, "/token", &pairs, basic, &[&proof]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();

    // A nonce not of this server's making.
    let proof = key.proof_at("POST", &htu, now(), json!({"nonce": "made-up"}));
    let (status, headers, body) = token_request(&server, "/token", &pairs, basic, &[&proof]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("use_dpop_nonce")), "{body}");
    assert!(headers.get("dpop-nonce").is_some());

    // A nonce is good for a bounded time; past it the answer carries a fresh one.
    clock.advance(portcullis::oauth::dpop::NONCE_LIFETIME + 1);
    let proof = key.proof_at("POST", &htu, now(), json!({"nonce": nonce}));
    let (status, headers, body) = token_request(&server, "/token", &pairs, basic, &[&proof]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("use_dpop_nonce")), "stale: {body}");
    let fresh = headers.get("dpop-nonce").expect("a fresh nonce").to_str().unwrap().to_owned();
    assert_ne!(fresh, nonce);
    let proof = key.proof_at("POST", &htu, now(), json!({"nonce": fresh}));
    let (status, _, body) = token_request(&server, "/token", &pairs, basic, &[&proof]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // §9: at a protected resource, the same, as a 401 with a DPoP challenge.
    let access = body["access_token"].as_str().map(str::to_owned).unwrap_or(access);
    let proof = key.proof_at("GET", &server.url("/userinfo"), now(), json!({"ath": ath(&access)}));
    let (status, headers, body) = userinfo(&server, &format!("DPoP {access}"), Some(&proof)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("use_dpop_nonce")), "{body}");
    assert!(www_authenticate(&headers).starts_with("DPoP error=\"use_dpop_nonce\""), "{headers:?}");
    assert!(headers.get("dpop-nonce").is_some());
}

#[tokio::test]
async fn a_client_registered_for_bound_tokens_sends_a_proof() {
    let server = TestServer::start().await;
    let (id, secret) = server
        .client(json!({"name": "daemon", "grant_types": ["client_credentials"], "scopes": ["reports"],
                       "dpop_bound_access_tokens": true}))
        .await;
    let secret = secret.unwrap();
    let pairs = [("grant_type", "client_credentials")];
    let (status, body) = server.form("/token", &pairs, Some((&id, &secret))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");
    let proof = Key::new().proof("POST", &server.url("/token"));
    let (status, _, body) = token_request(&server, "/token", &pairs, Some((&id, &secret)), &[&proof]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    // The admin API lists the setting.
    let (status, _, clients) =
        server.admin(reqwest::Method::GET, "/admin/v1/clients", support::ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK);
    let listed = clients.as_array().expect("a list").iter().find(|c| c["client_id"] == id.as_str()).expect("listed");
    assert_eq!(listed["dpop_bound_access_tokens"], true, "{listed}");
}

#[tokio::test]
async fn a_code_asked_for_with_dpop_jkt_or_pushed_with_a_proof_is_redeemed_with_that_key() {
    let server = TestServer::start().await;
    server.user("bob", "bob's password").await;
    let (id, _) = server
        .client(json!({"name": "spa", "redirect_uris": [REDIRECT], "public": true, "skip_consent": true, "scopes": ["openid"]}))
        .await;
    let key = Key::new();
    let verifier = "a-very-long-code-verifier-with-enough-entropy-0123456789";
    let challenge = b64(&Sha256::digest(verifier.as_bytes()));
    let url = server.authorize_url(&[
        ("response_type", "code"),
        ("client_id", id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("dpop_jkt", key.thumbprint().as_str()),
    ]);
    let back = Browser::new().authorize(url.as_str(), "bob", "bob's password").await;
    let code = query(&back, "code").expect("a code");
    let token_url = server.url("/token");
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", id.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ];
    let (status, _, body) = token_request(&server, "/token", &pairs, None, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");
    let other = Key::new().proof("POST", &token_url);
    let (status, _, body) = token_request(&server, "/token", &pairs, None, &[&other]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let (status, _, body) = token_request(&server, "/token", &pairs, None, &[&key.proof("POST", &token_url)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");

    // §10.1: a proof sent with a pushed request binds the code the same way; a `dpop_jkt`
    // beside it names the proof's key or the push is refused.
    let par_url = server.url("/par");
    let other = Key::new();
    let mut pushed_pairs = vec![
        ("client_id", id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let other_jkt = other.thumbprint();
    let mut mismatched = pushed_pairs.clone();
    mismatched.push(("dpop_jkt", other_jkt.as_str()));
    let (status, _, body) = token_request(&server, "/par", &mismatched, None, &[&key.proof("POST", &par_url)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");
    let jkt = key.thumbprint();
    pushed_pairs.push(("dpop_jkt", jkt.as_str()));
    let (status, _, pushed) =
        token_request(&server, "/par", &pushed_pairs, None, &[&key.proof("POST", &par_url)]).await;
    assert_eq!(status, StatusCode::CREATED, "{pushed}");
    let code = code_for_pushed(&server, &id, &pushed).await;
    let pairs = redemption(&code, &id, verifier);
    let (status, _, body) = token_request(&server, "/token", &pairs, None, &[&other.proof("POST", &token_url)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let (status, _, body) = token_request(&server, "/token", &pairs, None, &[&key.proof("POST", &token_url)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A push with a proof and no `dpop_jkt` binds the code to the proof's key all the same.
    pushed_pairs.pop();
    let (status, _, pushed) =
        token_request(&server, "/par", &pushed_pairs, None, &[&key.proof("POST", &par_url)]).await;
    assert_eq!(status, StatusCode::CREATED, "{pushed}");
    let code = code_for_pushed(&server, &id, &pushed).await;
    let pairs = redemption(&code, &id, verifier);
    let (status, _, body) = token_request(&server, "/token", &pairs, None, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");
    let (status, _, body) = token_request(&server, "/token", &pairs, None, &[&key.proof("POST", &token_url)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Bob signs in through a pushed request's `request_uri`: the code he gets back.
async fn code_for_pushed(server: &TestServer, client_id: &str, pushed: &Value) -> String {
    let url =
        server.authorize_url(&[("client_id", client_id), ("request_uri", pushed["request_uri"].as_str().unwrap())]);
    let back = Browser::new().authorize(url.as_str(), "bob", "bob's password").await;
    query(&back, "code").expect("a code")
}

/// A public client's redemption of `code` (RFC 6749 §4.1.3, with its PKCE verifier).
fn redemption<'a>(code: &'a str, client_id: &'a str, verifier: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ]
}
