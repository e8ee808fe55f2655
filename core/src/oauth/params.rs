//! Request parameters as RFC 6749 §3.1/§3.2 define them: form-encoded, each at most once,
//! and a parameter sent without a value is treated as omitted.

use std::collections::HashMap;

use crate::error::OAuthError;

#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(encoded: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(encoded) {
            if v.is_empty() {
                continue;
            }
            if map.insert(k.clone().into_owned(), v.into_owned()).is_some() {
                return Err(OAuthError::InvalidRequest(format!("parameter `{k}` is repeated")));
            }
        }
        Ok(Self(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn required(&self, key: &str) -> Result<&str, OAuthError> {
        self.get(key).ok_or_else(|| OAuthError::InvalidRequest(format!("`{key}` is required")))
    }

    pub fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }
}

/// A `scope` value (RFC 6749 §3.3): space-delimited, order kept, duplicates dropped.
pub fn parse_scope(value: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let mut scopes: Vec<String> = Vec::new();
    for s in value.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        if !s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)) {
            return Err(OAuthError::InvalidScope(format!("`{s}` is not a valid scope token")));
        }
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_owned());
        }
    }
    Ok(scopes)
}
