//! JWT Secured Authorization Response Mode for OAuth 2.0 (JARM, OpenID Foundation): the
//! response modes `query.jwt`, `fragment.jwt`, `form_post.jwt` and `jwt` (§2.3), in which the
//! authorization response, or its error, travels as one parameter, `response`: a JWT signed
//! with the key that signs now for the client's algorithm (§2.1, §2.2).
//!
//! The modes are read with the other response modes (`model::ResponseMode`: `jwt` is
//! `query.jwt` for a code alone and `fragment.jwt` for response types that return tokens,
//! §2.3.4; `query.jwt` is refused for those, §2.3.1); `authorize::deliver` calls
//! [`response`] and sends its JWT the way the mode says, the form post page included.
//!
//! A client may register `authorization_signed_response_alg` (§3), any algorithm the server
//! serves (discovery's `authorization_signing_alg_values_supported`, §4); without one its
//! responses are signed as its ID tokens are. Every client may ask for a JWT-secured mode.
//! Responses are signed, never encrypted: `authorization_encrypted_response_alg` and `_enc`
//! (§2.2, §3) are not supported.

use serde_json::{Map, Value};

use super::App;
use super::tokens::id_token_algorithm;
use crate::crypto::SigningAlgorithm;
use crate::error::OAuthError;
use crate::limits::AUTHORIZATION_RESPONSE_TTL;
use crate::model::Client;

/// The one parameter a JWT-secured response carries (§2.3.1–§2.3.3).
pub const RESPONSE_PARAMETER: &str = "response";

/// §2.1, §2.2: the response JWT of `client` carrying `pairs` (the parameters the plain
/// response would have carried, or the error's `error`, `error_description` and `state`), each
/// a string claim as it would have been a parameter, with `iss`, `aud` and `exp` (10 minutes
/// on: [`AUTHORIZATION_RESPONSE_TTL`]). RFC 9207's `iss` parameter is the `iss` claim itself.
pub async fn response(app: &App, client: &Client, pairs: &[(&str, &str)]) -> Result<String, OAuthError> {
    let mut claims = Map::new();
    claims.insert("iss".into(), app.config.issuer().into());
    claims.insert("aud".into(), client.id.as_str().into());
    claims.insert("exp".into(), (app.clock.now() + AUTHORIZATION_RESPONSE_TTL as i64).into());
    for (name, value) in pairs {
        claims.entry(*name).or_insert_with(|| Value::from(*value));
    }
    let algorithm = client
        .doc
        .authorization_signed_response_alg
        .as_deref()
        .and_then(SigningAlgorithm::parse)
        .unwrap_or_else(|| id_token_algorithm(app, client));
    Ok(app.keys.sign(algorithm, "JWT", &claims, AUTHORIZATION_RESPONSE_TTL).await?)
}
