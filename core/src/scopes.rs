//! The `scope` value (RFC 6749 §3.3), as every request and every registration carries it.
//! Below the protocol and the registry alike: both read scope lists with it.

use std::collections::HashSet;

use crate::error::OAuthError;
use crate::limits::{MAX_SCOPE_TOKEN_BYTES, MAX_SCOPES};

/// A `scope` value (RFC 6749 §3.3): space-delimited, order kept, duplicates dropped.
/// At most [`MAX_SCOPES`] tokens of at most [`MAX_SCOPE_TOKEN_BYTES`] each; the work is linear
/// in the length of the value.
pub fn parse_scope(value: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut scopes: Vec<String> = Vec::new();
    for (n, s) in value.unwrap_or("").split(' ').filter(|s| !s.is_empty()).enumerate() {
        if n >= MAX_SCOPES {
            return Err(OAuthError::InvalidScope(format!("at most {MAX_SCOPES} scopes may be requested")));
        }
        if s.len() > MAX_SCOPE_TOKEN_BYTES {
            return Err(OAuthError::InvalidScope(format!(
                "a scope token is at most {MAX_SCOPE_TOKEN_BYTES} bytes long"
            )));
        }
        // scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        if !s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)) {
            return Err(OAuthError::InvalidScope(format!("`{s}` is not a valid scope token")));
        }
        if seen.insert(s) {
            scopes.push(s.to_owned());
        }
    }
    Ok(scopes)
}
