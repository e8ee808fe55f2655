//! Request parameters as RFC 6749 §3.1/§3.2 define them: form-encoded, each at most once,
//! and a parameter sent without a value is treated as omitted.

use std::collections::HashMap;

use crate::error::OAuthError;
use crate::limits::{MAX_ACR_VALUES_BYTES, MAX_CLIENT_ID_BYTES};

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
        self.get(key).ok_or_else(|| missing(key))
    }

    pub fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// [`Self::required`], taken out of the parameters.
    pub fn take_required(&mut self, key: &str) -> Result<String, OAuthError> {
        self.take(key).ok_or_else(|| missing(key))
    }

    pub fn insert(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }

    /// Every parameter, sorted by name.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        pairs.sort();
        pairs
    }

    /// The parameters form-urlencoded again (in no particular order).
    pub fn encode(&self) -> String {
        form_urlencoded::Serializer::new(String::new()).extend_pairs(self.0.iter()).finish()
    }

    /// `client_id`, required, and bounded before anything looks it up.
    pub fn client_id(&self) -> Result<&str, OAuthError> {
        self.check_lengths(&[("client_id", MAX_CLIENT_ID_BYTES)])?;
        self.required("client_id")
    }

    /// Refuses any of the named parameters longer than its bound, in bytes.
    pub fn check_lengths(&self, limits: &[(&str, usize)]) -> Result<(), OAuthError> {
        for (key, max) in limits {
            if self.get(key).is_some_and(|v| v.len() > *max) {
                return Err(OAuthError::InvalidRequest(format!("`{key}` is longer than {max} bytes")));
            }
        }
        Ok(())
    }
}

fn missing(key: &str) -> OAuthError {
    OAuthError::InvalidRequest(format!("`{key}` is required"))
}

pub use crate::scopes::parse_scope;

impl Params {
    /// `acr_values` (OIDC Core §3.1.2.1), at most [`MAX_ACR_VALUES_BYTES`]: every request that
    /// takes it hands it to the scope policy, and some keep it.
    pub fn acr_values(&self) -> Result<Vec<String>, OAuthError> {
        self.check_lengths(&[("acr_values", MAX_ACR_VALUES_BYTES)])?;
        Ok(words(self.get("acr_values")))
    }
}

/// A space-separated list (`acr_values`, `ui_locales`, ...), empty entries dropped.
pub fn words(value: Option<&str>) -> Vec<String> {
    value.map(|v| v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
}
