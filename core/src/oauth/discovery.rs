//! OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 Authorization Server Metadata, and the
//! JWK Set (RFC 7517 §5) they point to.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::profiles::NATIVE;
use crate::server::App;

pub fn metadata(app: &App) -> Value {
    let base = app.config.issuer();
    let locales = app.host.consent_locales(&app.host.defaults.consent);
    json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}{}", NATIVE.authorize),
        "token_endpoint": format!("{base}{}", NATIVE.token),
        "userinfo_endpoint": format!("{base}{}", NATIVE.userinfo),
        "jwks_uri": format!("{base}/jwks.json"),
        "introspection_endpoint": format!("{base}{}", NATIVE.introspect),
        "revocation_endpoint": format!("{base}{}", NATIVE.revoke),
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [app.keys.signing_algorithm()],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        // RFC 7662 §2.1: only an authenticated (confidential) client may introspect.
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp",
                             "name", "preferred_username", "company", "locale", "email", "email_verified"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "ui_locales_supported": locales,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    })
}

pub async fn openid_configuration(State(app): State<App>) -> impl IntoResponse {
    Json(metadata(&app))
}

pub async fn jwks(State(app): State<App>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/jwk-set+json")], Json(app.keys.jwks()))
}
