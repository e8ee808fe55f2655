//! RFC 7636 Proof Key for Code Exchange.

use crate::error::OAuthError;
use crate::limits::CODE_VERIFIER_CHARS;

/// §4.2: `code_challenge_method` is `S256` or `plain` (the default when absent).
pub fn check_challenge(challenge: &str, method: &str, plain_allowed: bool) -> Result<(), OAuthError> {
    match method {
        "S256" => {}
        "plain" if plain_allowed => {}
        "plain" => return Err(OAuthError::InvalidRequest("this client must use code_challenge_method S256".into())),
        other => return Err(OAuthError::InvalidRequest(format!("code_challenge_method `{other}` is not supported"))),
    }
    if !is_code_verifier_shaped(challenge) {
        let (min, max) = (CODE_VERIFIER_CHARS.start(), CODE_VERIFIER_CHARS.end());
        return Err(OAuthError::InvalidRequest(format!("code_challenge must be {min}-{max} unreserved characters")));
    }
    Ok(())
}

/// §4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
fn is_code_verifier_shaped(v: &str) -> bool {
    CODE_VERIFIER_CHARS.contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// §4.6: the server recomputes the challenge from the verifier.
pub fn verify(verifier: &str, challenge: &str, method: &str) -> Result<(), OAuthError> {
    if !is_code_verifier_shaped(verifier) {
        return Err(OAuthError::InvalidGrant("code_verifier is malformed".into()));
    }
    let computed = match method {
        "S256" => crate::crypto::s256(verifier),
        _ => verifier.to_owned(),
    };
    if subtle::ConstantTimeEq::ct_eq(computed.as_bytes(), challenge.as_bytes()).into() {
        Ok(())
    } else {
        Err(OAuthError::InvalidGrant("code_verifier does not match the code_challenge".into()))
    }
}
