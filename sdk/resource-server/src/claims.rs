//! The validated claims of an access token.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// What a validated access token says (RFC 9068 §2.2; in introspection mode, the RFC 7662
/// §2.2 answer, whose members have the same names).
///
/// Handlers behind [`require_scope`](crate::require_scope) take it as an extractor:
///
/// ```
/// use portcullis_resource_server::Claims;
///
/// async fn handler(claims: Claims) -> String {
///     format!("hello {} (client {})", claims.sub, claims.client_id)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer. Always present, and checked, in JWKS mode; in introspection mode as the
    /// server answers it (empty when it does not say).
    #[serde(default)]
    pub iss: String,
    /// The subject: the user, or for client credentials the client itself.
    pub sub: String,
    /// The audiences (`aud` may be one string or a list).
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The token's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The client the token was issued to.
    pub client_id: String,
    /// The granted scopes, space separated (see [`Claims::scopes`]).
    #[serde(default)]
    pub scope: String,
    /// Every other claim (e.g. those a scope policy added).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Claims {
    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether `scope` was granted (an exact match of one scope token).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_portcullis_access_token() {
        let c: Claims = serde_json::from_value(json!({
            "iss": "https://id.example", "sub": "c1", "aud": "https://id.example", "exp": 20, "iat": 10,
            "jti": "j", "client_id": "c1", "scope": "a  apps.webhook:execute", "gid": "g"
        }))
        .unwrap();
        assert_eq!(c.aud, ["https://id.example"]);
        assert_eq!(c.scopes().collect::<Vec<_>>(), ["a", "apps.webhook:execute"]);
        assert!(c.has_scope("apps.webhook:execute"));
        assert!(!c.has_scope("apps.webhook"));
        assert!(!c.has_scope(""));
        assert_eq!(c.extra["gid"], "g");
        let many: Claims =
            serde_json::from_value(json!({"sub": "s", "aud": ["x", "y"], "exp": 1, "client_id": "c"})).unwrap();
        assert_eq!(many.aud, ["x", "y"]);
        assert!(many.scopes().next().is_none());
    }
}
