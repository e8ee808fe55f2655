//! The validator against a stand-in issuer on a loopback port: a JWKS the test changes at
//! will, an introspection endpoint with canned answers, both counting their requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_resource_server::{Claims, Error, Validator, require_scope};
use serde_json::{Value, json};

#[derive(Default)]
struct Issuer {
    jwks: Mutex<Value>,
    jwks_fetches: AtomicUsize,
    introspections: AtomicUsize,
    /// token → answer; anything else is `{"active": false}`.
    answers: Mutex<HashMap<String, Value>>,
}

const RS_ID: &str = "rs id";
const RS_SECRET: &str = "rs:secret";

struct Mock {
    base: String,
    state: Arc<Issuer>,
}

impl Mock {
    async fn start() -> Self {
        let state = Arc::new(Issuer::default());
        *state.jwks.lock().unwrap() = json!({"keys": []});
        let app = Router::new()
            .route("/jwks.json", get(jwks))
            .route("/introspect", post(introspect))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, state }
    }

    fn publish(&self, keys: &[Value]) {
        *self.state.jwks.lock().unwrap() = json!({ "keys": keys });
    }

    fn fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    fn validator(&self) -> Validator {
        Validator::jwks(&self.base)
    }
}

async fn jwks(State(s): State<Arc<Issuer>>) -> Json<Value> {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    Json(s.jwks.lock().unwrap().clone())
}

async fn introspect(State(s): State<Arc<Issuer>>, headers: HeaderMap, body: String) -> (StatusCode, Json<Value>) {
    s.introspections.fetch_add(1, Ordering::SeqCst);
    // urlencode("rs id") ":" urlencode("rs:secret"), base64.
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("rs+id:rs%3Asecret"));
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"})));
    }
    let form: HashMap<String, String> = form_pairs(&body);
    let answer = form.get("token").and_then(|t| s.answers.lock().unwrap().get(t).cloned());
    (StatusCode::OK, Json(answer.unwrap_or(json!({"active": false}))))
}

fn form_pairs(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")))
        .collect()
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Signer {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

struct Key {
    kid: String,
    signer: Signer,
}

impl Key {
    fn es256(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        Self { kid: kid.into(), signer: Signer::Es256(pair) }
    }

    fn ed25519(kid: &str) -> Self {
        Self { kid: kid.into(), signer: Signer::EdDsa(Ed25519KeyPair::generate().unwrap()) }
    }

    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Es256(_) => "ES256",
            Signer::EdDsa(_) => "EdDSA",
        }
    }

    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Es256(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                       "use": "sig", "alg": "ES256", "kid": self.kid})
            }
            Signer::EdDsa(pair) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()),
                                          "use": "sig", "alg": "EdDSA", "kid": self.kid}),
        }
    }

    /// A JWT with this key's signature under any header.
    fn sign_with_header(&self, header: Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let signature = match &self.signer {
            Signer::Es256(pair) => pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::EdDsa(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(json!({"typ": "at+jwt", "alg": self.alg(), "kid": self.kid}), claims)
    }
}

fn claims(issuer: &str, scope: &str) -> Value {
    json!({"iss": issuer, "sub": "client-1", "aud": issuer, "exp": now() + 600, "iat": now(),
           "jti": "j1", "client_id": "client-1", "scope": scope})
}

fn invalid(r: Result<Claims, Error>) -> String {
    match r {
        Err(Error::InvalidToken(m)) => m,
        other => panic!("expected invalid_token, got {other:?}"),
    }
}

#[tokio::test]
async fn accepts_a_good_token_and_checks_every_claim() {
    let mock = Mock::start().await;
    let (es, ed) = (Key::es256("es"), Key::ed25519("ed"));
    mock.publish(&[es.jwk(), ed.jwk()]);
    let v = mock.validator();
    let good = claims(&mock.base, "a apps.webhook:execute");

    let c = v.validate(&es.sign(&good)).await.unwrap();
    assert_eq!((c.iss.as_str(), c.client_id.as_str(), c.sub.as_str()), (mock.base.as_str(), "client-1", "client-1"));
    assert!(c.has_scope("apps.webhook:execute"));
    assert_eq!(v.validate(&ed.sign(&good)).await.unwrap().jti.as_deref(), Some("j1"));
    assert_eq!(mock.fetches(), 1, "the JWKS is fetched once and cached");

    // typ: at+jwt in either form and any case; nothing else.
    for typ in ["AT+JWT", "application/at+jwt", "Application/AT+JWT"] {
        let token = es.sign_with_header(json!({"typ": typ, "alg": "ES256", "kid": "es"}), &good);
        assert!(v.validate(&token).await.is_ok(), "{typ}");
    }
    for header in [
        json!({"typ": "JWT", "alg": "ES256", "kid": "es"}),
        json!({"alg": "ES256", "kid": "es"}),
        json!({"typ": "at+jwt", "alg": "ES256"}),
    ] {
        invalid(v.validate(&es.sign_with_header(header, &good)).await);
    }

    // The algorithm is the key's: not another one the header names, never `none` or HMAC.
    let ed_under_es_kid = ed.sign_with_header(json!({"typ": "at+jwt", "alg": "EdDSA", "kid": "es"}), &good);
    assert_eq!(invalid(v.validate(&ed_under_es_kid).await), "the token's alg is not its key's");
    let none = format!(
        "{}.{}.",
        b64(json!({"typ": "at+jwt", "alg": "none", "kid": "es"}).to_string().as_bytes()),
        b64(good.to_string().as_bytes())
    );
    invalid(v.validate(&none).await);
    let hs = es.sign_with_header(json!({"typ": "at+jwt", "alg": "HS256", "kid": "es"}), &good);
    assert_eq!(invalid(v.validate(&hs).await), "the token's alg is not its key's");

    // A signature of another key under a published kid.
    let impostor = Key::es256("es");
    assert_eq!(invalid(v.validate(&impostor.sign(&good)).await), "the token's signature does not verify");
    // A tampered payload.
    let token = es.sign(&good);
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = b64(claims(&mock.base, "admin").to_string().as_bytes());
    parts[1] = &forged;
    invalid(v.validate(&parts.join(".")).await);

    // iss, sub, exp.
    let mut other_issuer = good.clone();
    other_issuer["iss"] = json!("https://elsewhere.example");
    assert_eq!(invalid(v.validate(&es.sign(&other_issuer)).await), "the token is from another issuer");
    let mut no_sub = good.clone();
    no_sub.as_object_mut().unwrap().remove("sub");
    invalid(v.validate(&es.sign(&no_sub)).await);
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 120);
    assert_eq!(v.validate(&es.sign(&expired)).await, Err(Error::Expired));
    let mut just_expired = good.clone();
    just_expired["exp"] = json!(now() - 5);
    assert!(v.validate(&es.sign(&just_expired)).await.is_ok(), "within the 30 s leeway");
    let strict = mock.validator().with_leeway(Duration::ZERO);
    assert_eq!(strict.validate(&es.sign(&just_expired)).await, Err(Error::Expired));

    // aud, when asked for.
    let with_aud = mock.validator().with_audience(&mock.base);
    assert!(with_aud.validate(&es.sign(&good)).await.is_ok());
    let other_aud = mock.validator().with_audience("https://api.example");
    assert_eq!(invalid(other_aud.validate(&es.sign(&good)).await), "the token is for another audience");

    // Not a JWT at all.
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJFUzI1NiJ9", "x y"] {
        invalid(v.validate(garbage).await);
    }
}

#[tokio::test]
async fn unknown_kids_refetch_the_keys_but_at_most_once_per_interval() {
    let mock = Mock::start().await;
    let (old, new) = (Key::es256("old"), Key::es256("new"));
    mock.publish(&[old.jwk()]);
    let v = mock.validator().with_refetch_interval(Duration::from_secs(1));
    let c = claims(&mock.base, "a");
    assert!(v.validate(&old.sign(&c)).await.is_ok());
    assert_eq!(mock.fetches(), 1);

    // Rotation: a token under a key published after the cache was filled.
    mock.publish(&[old.jwk(), new.jwk()]);
    assert!(v.validate(&new.sign(&c)).await.is_ok(), "re-fetched for the new kid");
    assert_eq!(mock.fetches(), 2);
    assert!(v.clone().validate(&old.sign(&c)).await.is_ok(), "the old key still verifies");

    // A flood of made-up kids: the rotation's re-fetch was this interval's one, so none more;
    // in the next interval, one for the whole flood.
    // Made before the clock matters: the flood itself takes microseconds.
    let bogus: Vec<String> = (0..50).map(|i| Key::es256(&format!("bogus-{i}")).sign(&c)).collect();
    let flood = async || {
        for token in &bogus {
            let m = invalid(v.validate(token).await);
            assert_eq!(m, "the token is signed with a key the issuer does not publish");
        }
    };
    flood().await;
    assert_eq!(mock.fetches(), 2, "rate limited since the rotation's re-fetch");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    flood().await;
    assert_eq!(mock.fetches(), 3, "one re-fetch for the whole flood");

    // A key published during the rate limit is found after the interval.
    let newer = Key::es256("newer");
    mock.publish(&[old.jwk(), new.jwk(), newer.jwk()]);
    invalid(v.validate(&newer.sign(&c)).await);
    assert_eq!(mock.fetches(), 3);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert!(v.validate(&newer.sign(&c)).await.is_ok());
    assert_eq!(mock.fetches(), 4);
}

#[tokio::test]
async fn a_withdrawn_key_stops_verifying_once_the_cache_is_old() {
    let mock = Mock::start().await;
    let (a, b) = (Key::es256("a"), Key::es256("b"));
    mock.publish(&[a.jwk(), b.jwk()]);
    let v = mock.validator().with_jwks_max_age(Duration::from_secs(1));
    let c = claims(&mock.base, "s");
    assert!(v.validate(&a.sign(&c)).await.is_ok());
    mock.publish(&[b.jwk()]);
    assert!(v.validate(&a.sign(&c)).await.is_ok(), "cached, still young");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    invalid(v.validate(&a.sign(&c)).await);
    assert!(v.validate(&b.sign(&c)).await.is_ok());
    assert_eq!(mock.fetches(), 2);
}

#[tokio::test]
async fn an_unreachable_issuer_is_unavailable_not_invalid() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let v = Validator::jwks(&base).with_timeout(Duration::from_secs(2));
    let key = Key::es256("k");
    let r = v.validate(&key.sign(&claims(&base, "a"))).await;
    assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
    let v = Validator::introspection(format!("{base}/introspect"), "id", "secret");
    assert!(matches!(v.validate("opaque").await, Err(Error::Unavailable(_))));
}

#[tokio::test]
async fn introspection_accepts_only_active_access_tokens_and_asks_every_time() {
    let mock = Mock::start().await;
    let exp = now() + 600;
    let active = json!({"active": true, "token_type": "Bearer", "scope": "apps.webhook:execute", "client_id": "c",
                        "sub": "c", "iss": mock.base, "aud": mock.base, "exp": exp, "iat": now(), "jti": "j"});
    {
        let mut answers = mock.state.answers.lock().unwrap();
        answers.insert("good".into(), active.clone());
        let mut refresh = active.clone();
        refresh["token_type"] = json!("refresh_token");
        answers.insert("refresh".into(), refresh);
        let mut stale = active.clone();
        stale["exp"] = json!(now() - 120);
        answers.insert("stale".into(), stale);
    }
    let url = format!("{}/introspect", mock.base);
    let v = Validator::introspection(&url, RS_ID, RS_SECRET);
    let c = v.validate("good").await.unwrap();
    assert_eq!((c.client_id.as_str(), c.exp), ("c", exp));
    assert!(v.validate("good").await.is_ok());
    assert_eq!(mock.state.introspections.load(Ordering::SeqCst), 2, "answers are not cached");
    assert_eq!(invalid(v.validate("revoked").await), "the token is not active");
    assert_eq!(invalid(v.validate("refresh").await), "the token is not an access token");
    assert_eq!(v.validate("stale").await, Err(Error::Expired));
    let pinned = Validator::introspection(&url, RS_ID, RS_SECRET).with_issuer("https://other.example");
    assert_eq!(invalid(pinned.validate("good").await), "the token is from another issuer");
    // Wrong credentials are the resource server's problem, not the token's.
    let wrong = Validator::introspection(&url, RS_ID, "nope");
    assert!(matches!(wrong.validate("good").await, Err(Error::Unavailable(_))));
}

/// The layer over real HTTP: each RFC 6750 §3 answer.
#[tokio::test]
async fn the_layer_answers_per_rfc_6750() {
    let mock = Mock::start().await;
    let key = Key::es256("k");
    mock.publish(&[key.jwk()]);
    async fn handler(claims: Claims) -> String {
        format!("hello {}", claims.client_id)
    }
    let app = Router::new()
        .route("/r", post(handler))
        .route_layer(require_scope(mock.validator().with_realm("test"), "apps.webhook:execute"))
        .route("/open", get(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let send = |token: Option<String>| {
        let mut r = http.post(format!("{base}/r"));
        if let Some(t) = token {
            r = r.header(header::AUTHORIZATION, t);
        }
        r.send()
    };

    let ok = send(Some(format!("Bearer {}", key.sign(&claims(&mock.base, "apps.webhook:execute"))))).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "hello client-1");

    let none = send(None).await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers()[header::WWW_AUTHENTICATE], r#"Bearer realm="test""#);
    let basic = send(Some("Basic dXNlcjpwYXNz".into())).await.unwrap();
    assert_eq!(basic.headers()[header::WWW_AUTHENTICATE], r#"Bearer realm="test""#);

    let bad = send(Some("Bearer not-a-jwt".into())).await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let challenge = bad.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(challenge.starts_with(r#"Bearer realm="test", error="invalid_token", error_description=""#), "{challenge}");
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()));

    let scopeless = send(Some(format!("Bearer {}", key.sign(&claims(&mock.base, "crm.customer:read"))))).await.unwrap();
    assert_eq!(scopeless.status(), StatusCode::FORBIDDEN);
    let challenge = scopeless.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    assert!(challenge.ends_with(r#"scope="apps.webhook:execute""#), "{challenge}");
    let body: Value = scopeless.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");

    // Without the layer, the extractor refuses rather than letting the request through.
    let open = http.get(format!("{base}/open")).send().await.unwrap();
    assert_eq!(open.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // route_layer leaves unknown paths alone.
    assert_eq!(http.get(format!("{base}/nowhere")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}
