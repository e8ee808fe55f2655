//! RFC 7662 token introspection: the resource server asks the authorization server about
//! each token, authenticating with its own client credentials (HTTP Basic, RFC 6749 §2.3.1).
//! Answers are not cached: every request asks, so a revoked token is refused at once.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value};

use crate::http::read_limited;
use crate::{Claims, Error};

/// The largest introspection answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub(crate) struct Endpoint {
    pub(crate) url: String,
    pub(crate) client_id: String,
    client_secret: String,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"…")
            .finish()
    }
}

impl Endpoint {
    pub(crate) fn new(url: String, client_id: String, client_secret: String) -> Self {
        Self { url, client_id, client_secret }
    }

    /// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
    fn authorization(&self) -> String {
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(&self.client_id), encode(&self.client_secret));
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }

    /// Asks about `token`; an answer other than `active: true` for an access token is
    /// `invalid_token`.
    pub(crate) async fn introspect(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
        token: &str,
    ) -> Result<Claims, Error> {
        let unavailable = |reason: String| {
            tracing::warn!(url = %self.url, %reason, "token introspection failed");
            Error::Unavailable(format!("introspection {}: {reason}", self.url))
        };
        let mut authorization = reqwest::header::HeaderValue::from_str(&self.authorization())
            .map_err(|_| unavailable("the client credentials do not fit a header".into()))?;
        authorization.set_sensitive(true);
        let response = http
            .post(&self.url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!("HTTP {status} (are the resource server's client credentials right?)")));
        }
        let body = read_limited(response, MAX_ANSWER_BYTES).await.map_err(unavailable)?;
        let answer: Map<String, Value> =
            serde_json::from_slice(&body).map_err(|e| unavailable(format!("not a JSON object: {e}")))?;
        claims_of(answer).map_err(|e| match e {
            Answer::Refused(e) => e,
            Answer::Unusable(reason) => unavailable(reason),
        })
    }
}

enum Answer {
    Refused(Error),
    Unusable(String),
}

/// The claims of an `active: true` answer about an access token.
fn claims_of(mut answer: Map<String, Value>) -> Result<Claims, Answer> {
    // §2.2: `active` is a boolean; anything but `true` is not an active token.
    if answer.remove("active") != Some(Value::Bool(true)) {
        return Err(Answer::Refused(Error::InvalidToken("the token is not active".into())));
    }
    // A refresh token is active too, but is no bearer token for a resource. A DPoP-bound
    // access token (RFC 9449 §6.2) passes here and is refused for its `cnf`.
    if let Some(kind) = answer.remove("token_type") {
        let is_access_token =
            kind.as_str().is_some_and(|k| ["bearer", "access_token", "dpop"].iter().any(|t| k.eq_ignore_ascii_case(t)));
        if !is_access_token {
            return Err(Answer::Refused(Error::InvalidToken("the token is not an access token".into())));
        }
    }
    serde_json::from_value(Value::Object(answer))
        .map_err(|e| Answer::Unusable(format!("the answer lacks what a token must say: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Result<Claims, Error> {
        let Value::Object(map) = v else { panic!("an object") };
        claims_of(map).map_err(|e| match e {
            Answer::Refused(e) => e,
            Answer::Unusable(r) => Error::Unavailable(r),
        })
    }

    #[test]
    fn only_an_active_access_token_is_accepted() {
        let base = json!({"active": true, "token_type": "Bearer", "sub": "s", "client_id": "c", "exp": 5,
                          "scope": "a b", "iss": "i", "aud": "i"});
        let c = claims(base.clone()).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.client_id.as_str(), c.exp, c.aud.as_slice()),
            ("s", "c", 5, &["i".to_owned()][..])
        );
        assert!(!c.extra.contains_key("active"));
        for (k, v) in [("active", json!(false)), ("active", json!("true")), ("token_type", json!("refresh_token"))] {
            let mut answer = base.clone();
            answer[k] = v;
            assert!(matches!(claims(answer), Err(Error::InvalidToken(_))), "{k}");
        }
        assert!(matches!(claims(json!({"active": false})), Err(Error::InvalidToken(_))));
        assert!(matches!(claims(json!({"active": true, "sub": "s"})), Err(Error::Unavailable(_))));
    }

    #[test]
    fn credentials_are_form_encoded_before_basic() {
        let e = Endpoint::new("u".into(), "id:1".into(), "s é+".into());
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(e.authorization().strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "id%3A1:s+%C3%A9%2B");
        assert!(!format!("{e:?}").contains("s é+"));
    }
}
