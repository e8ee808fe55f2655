//! RFC 6749 §4.5 extension grants answered by a grant-type plugin: the example plugin
//! `examples/plugins/grant-device-assertion`, loaded from a policies directory with the
//! operator's `[config]`, driven over HTTP at the token endpoint.

mod support;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Options, TestServer, examples_dir, policies_copy};

const GRANT: &str = "urn:portcullis:grant-type:device-assertion";
const PLUGIN: &str = "grant-device-assertion";

/// A device's key pair: the private half signs assertions, the public half goes in the manifest.
struct DeviceKey {
    pkcs8: Vec<u8>,
    public: String,
}

impl DeviceKey {
    fn new() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key").as_ref().to_vec();
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).expect("pair");
        let public = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        Self { pkcs8, public }
    }

    fn sign(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &EncodingKey::from_ed_der(&self.pkcs8))
            .expect("assertion")
    }

    /// A DPoP proof (RFC 9449 §4.2) of this key for a POST to `htu`.
    fn dpop_proof(&self, htu: &str) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("dpop+jwt".into());
        header.jwk =
            Some(serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "x": self.public})).expect("a JWK"));
        let claims = json!({"jti": uuid::Uuid::new_v4().to_string(), "htm": "POST", "htu": htu, "iat": now()});
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&self.pkcs8)).expect("proof")
    }
}

/// The example plugin's committed manifest with the operator's `[config]` in place of the
/// example one, written beside its `.wasm` (the manifest first, as an operator would).
fn install_example(dir: &std::path::Path, as_name: &str, config: &str) {
    let manifest = std::fs::read_to_string(examples_dir().join(format!("{PLUGIN}.toml"))).expect("example manifest");
    let head = manifest.split("\n[config]").next().expect("manifest");
    let manifest =
        format!("{}\n{config}", head.replace(&format!("name = \"{PLUGIN}\""), &format!("name = \"{as_name}\"")));
    std::fs::write(dir.join(format!("{as_name}.toml")), manifest).expect("manifest");
    std::fs::copy(examples_dir().join(format!("{PLUGIN}.wasm")), dir.join(format!("{as_name}.wasm")))
        .expect("example plugin (run plugins/build.sh)");
}

fn config_for(device: &str, key: &DeviceKey) -> String {
    format!(
        "[config]\nmax-lifetime = 300\n\n[config.devices.{device}]\npublic-key = \"{}\"\nscopes = [\"telemetry:write\", \"firmware:read\"]\n",
        key.public
    )
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_trades_its_signed_assertion_for_a_token_through_the_grant_plugin() {
    let key = DeviceKey::new();
    let policies = policies_copy();
    install_example(policies.path(), PLUGIN, &config_for("thermostat-7", &key));
    // A second plugin answering the same grant type is refused; the first keeps it.
    install_example(policies.path(), "grant-copy", &config_for("thermostat-7", &key));
    let server = TestServer::start_with(Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    let loaded = server.app.host.loaded();
    assert_eq!(loaded.contains_key(PLUGIN), !loaded.contains_key("grant-copy"), "exactly one answers {GRANT}");
    assert!(server.app.host.grant_plugin_for(GRANT).is_some());

    // Discovery lists the extension grant beside the server's own.
    let metadata: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    let grants = metadata["grant_types_supported"].as_array().expect("grant types");
    assert!(grants.iter().any(|g| g == GRANT), "{grants:?}");
    assert!(grants.iter().any(|g| g == "authorization_code"));

    // The gateway may have telemetry:write only: the scope policy holds it to that.
    let (gateway, secret) =
        server.client(json!({"name": "Fleet gateway", "grant_types": [GRANT], "scopes": ["telemetry:write"]})).await;
    let secret = secret.expect("confidential");
    let issuer = server.issuer.clone();
    let assertion = |jti: &str, aud: &str, exp: i64| {
        key.sign(
            &json!({"iss": "thermostat-7", "sub": "thermostat-7", "aud": aud, "exp": exp, "iat": now(), "jti": jti}),
        )
    };

    let first = assertion("a-1", &issuer, now() + 120);
    let (status, tokens) =
        server.form("/token", &[("grant_type", GRANT), ("assertion", &first)], Some((&gateway, &secret))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "telemetry:write", "the device may ask for firmware:read; the client may not");
    assert!(tokens.get("refresh_token").is_none() && tokens.get("id_token").is_none(), "{tokens}");
    let access = tokens["access_token"].as_str().expect("access token");
    let (_, claims) = server.verify_jwt(access, Some(&issuer)).await;
    assert_eq!(claims["sub"], "device:thermostat-7");
    assert_eq!(claims["client_id"], gateway.as_str());
    let (_, introspected) = server.form("/introspect", &[("token", access)], Some((&gateway, &secret))).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["sub"], "device:thermostat-7");

    // The same assertion again: its `jti` was used.
    let (status, replay) =
        server.form("/token", &[("grant_type", GRANT), ("assertion", &first)], Some((&gateway, &secret))).await;
    assert_eq!((status, replay["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{replay}");

    // The token endpoint's URL is an audience too.
    let to_endpoint = assertion("a-2", &format!("{issuer}/token"), now() + 60);
    let (status, body) = server
        .form(
            "/token",
            &[("grant_type", GRANT), ("assertion", &to_endpoint), ("scope", "telemetry:write")],
            Some((&gateway, &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // With a DPoP proof of the gateway's key, the device's token is bound to it, as any grant's.
    let gateway_key = DeviceKey::new();
    let bound = assertion("d-1", &issuer, now() + 60);
    let r = server
        .http
        .post(server.url("/token"))
        .basic_auth(&gateway, Some(&secret))
        .header("DPoP", gateway_key.dpop_proof(&server.url("/token")))
        .form(&[("grant_type", GRANT), ("assertion", bound.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let (_, claims) = server.verify_jwt(body["access_token"].as_str().unwrap(), None).await;
    assert!(claims["cnf"]["jkt"].is_string(), "{claims}");

    // Every refusal is the RFC's error, from the plugin or the host.
    let stranger = DeviceKey::new();
    let forged = stranger.sign(&json!({"iss": "thermostat-7", "aud": issuer, "exp": now() + 60, "jti": "f-1"}));
    let unknown = key.sign(&json!({"iss": "toaster-1", "aud": issuer, "exp": now() + 60, "jti": "u-1"}));
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "invalid_request"),
        (vec![("assertion", "not.a-jws".into())], "invalid_grant"),
        (vec![("assertion", forged)], "invalid_grant"),
        (vec![("assertion", unknown)], "invalid_grant"),
        (vec![("assertion", assertion("e-1", &issuer, now() - 5))], "invalid_grant"),
        (vec![("assertion", assertion("l-1", &issuer, now() + 3600))], "invalid_grant"),
        (vec![("assertion", assertion("w-1", "https://elsewhere.example", now() + 60))], "invalid_grant"),
        (vec![("assertion", assertion("s-1", &issuer, now() + 60)), ("scope", "admin".into())], "invalid_scope"),
    ];
    for (extra, error) in cases {
        let mut pairs = vec![("grant_type", GRANT.to_owned())];
        pairs.extend(extra);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = server.form("/token", &pairs, Some((&gateway, &secret))).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some(error)), "{pairs:?}: {body}");
    }

    // A client not registered for the grant type, and a grant type nobody answers.
    let (other, other_secret) = server
        .client(json!({"name": "Other", "grant_types": ["client_credentials"], "scopes": ["telemetry:write"]}))
        .await;
    let other_secret = other_secret.expect("confidential");
    let fresh = assertion("o-1", &issuer, now() + 60);
    let (status, body) =
        server.form("/token", &[("grant_type", GRANT), ("assertion", &fresh)], Some((&other, &other_secret))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")), "{body}");
    let (status, body) = server
        .form("/token", &[("grant_type", "urn:example:nobody"), ("assertion", &fresh)], Some((&gateway, &secret)))
        .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")), "{body}");
}

#[tokio::test]
async fn a_grant_plugin_without_usable_config_fails_its_request_as_a_server_error_not_the_clients() {
    let policies = policies_copy();
    install_example(policies.path(), PLUGIN, "[config]\nmax-lifetime = \"soon\"\n");
    let server = TestServer::start_with(Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    let (gateway, secret) =
        server.client(json!({"name": "Fleet gateway", "grant_types": [GRANT], "scopes": ["telemetry:write"]})).await;
    let (status, body) = server
        .form("/token", &[("grant_type", GRANT), ("assertion", "x.y.z")], Some((&gateway, &secret.expect("secret"))))
        .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("server_error")), "{body}");
}

#[tokio::test]
async fn a_client_may_be_registered_for_an_extension_grant_but_not_for_a_word_that_is_no_uri() {
    let server = TestServer::start().await;
    let (status, body) =
        server.admin_post("/admin/v1/clients", json!({"name": "Bad", "grant_types": ["device-assertion"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = server.admin_post("/admin/v1/clients", json!({"name": "Good", "grant_types": [GRANT]})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let path = format!("/admin/v1/clients/{}", body["client_id"].as_str().expect("id"));
    let (_, _, client) = server.admin(reqwest::Method::GET, &path, support::ADMIN_TOKEN, None).await;
    assert_eq!(client["grant_types"], json!([GRANT]), "{client}");
}

/// The grant types discovery names, as the server answers now.
async fn grant_types_supported(server: &TestServer) -> Vec<String> {
    let metadata: Value =
        server.http.get(server.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    serde_json::from_value(metadata["grant_types_supported"].clone()).expect("grant types")
}

/// Waits (10 s at most) until the plugin answering `GRANT` is `plugin` (`None`: none does).
async fn answered_by(server: &TestServer, plugin: Option<&str>) {
    let since = std::time::Instant::now();
    while server.app.host.grant_plugin_for(GRANT).as_deref() != plugin {
        assert!(since.elapsed() < std::time::Duration::from_secs(10), "{GRANT} never answered by {plugin:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_names_an_extension_grant_while_its_plugin_is_loaded_and_not_after() {
    let key = DeviceKey::new();
    let policies = policies_copy();
    install_example(policies.path(), PLUGIN, &config_for("thermostat-7", &key));
    let server =
        TestServer::start_with(Options { policies: Some(policies.path().into()), watch: true, ..Default::default() })
            .await;
    answered_by(&server, Some(PLUGIN)).await;
    let first = grant_types_supported(&server).await;
    assert!(first.iter().any(|g| g == GRANT), "{first:?}");
    assert_eq!(grant_types_supported(&server).await, first, "asked again, the same document");

    // The plugin taken out of the policies directory: discovery no longer names its grant.
    for file in [format!("{PLUGIN}.wasm"), format!("{PLUGIN}.toml")] {
        std::fs::remove_file(policies.path().join(file)).expect("remove the plugin");
    }
    answered_by(&server, None).await;
    let without = grant_types_supported(&server).await;
    assert!(!without.iter().any(|g| g == GRANT), "{without:?}");
    assert!(without.iter().any(|g| g == "authorization_code"), "{without:?}");

    // Put back: named again.
    install_example(policies.path(), PLUGIN, &config_for("thermostat-7", &key));
    answered_by(&server, Some(PLUGIN)).await;
    assert_eq!(grant_types_supported(&server).await, first);
}
