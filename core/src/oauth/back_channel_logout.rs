//! OpenID Connect Back-Channel Logout 1.0: when a person's session here ends, every client
//! they signed in to during it that registered a `backchannel_logout_uri` (§2.2) is posted a
//! logout token (§2.4, §2.5) naming the session (`sid`, §2.1, which the ID tokens of that
//! session carry) and the person, so it can end its own session. The grants the session gave
//! without `offline_access` end with it (§2.7); those with it outlive the session, as
//! `offline_access` means.
//!
//! Delivery is a POST per client through [`crate::outbound`], after the session has ended
//! and without holding up the person's response. A client that does not answer 2xx is tried
//! again after [`RETRIES`]' delays (the token stays valid that long), then logged. A
//! stopping server waits for the deliveries under way, within `server.shutdown_grace`.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Value, json};

use super::Protocol;
use super::session;
use crate::crypto::random_token;
use crate::error::OAuthError;
use crate::model::{Grant, Session};
use crate::outbound::Outbound;
use crate::storage::Storage;

/// §2.4: the event a logout token carries.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How long a logout token is valid: it is delivered at once, or retried within this time.
const LIFETIME: i64 = 120;

/// The waits before the second and third attempts at delivering a logout token.
pub const RETRIES: [std::time::Duration; 2] = [std::time::Duration::from_secs(1), std::time::Duration::from_secs(5)];

/// §2.4 Logout Token claims. Never a `nonce` (§2.4: it must not carry one).
#[derive(Serialize)]
struct LogoutClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    sid: &'a str,
    events: Value,
}

/// The session has ended: revoke what ends with it, and tell the clients it signed in to.
pub async fn session_ended(app: &Protocol, ended: &Session) -> Result<(), OAuthError> {
    let sid = session::sid(&ended.hash);
    let now = app.clock.now();
    let grants: Vec<Grant> = app
        .storage
        .list_user_grants(&ended.user_id, now)
        .await?
        .into_iter()
        .filter(|g| g.doc.sid.as_deref() == Some(sid.as_str()))
        .collect();
    // §2.7: refresh tokens issued without `offline_access` to the session are revoked.
    let writes: Vec<_> = grants
        .iter()
        .filter(|g| !g.doc.scopes.iter().any(|s| s == "offline_access"))
        .flat_map(|g| Storage::revoke_grant_writes(&g.id))
        .collect();
    if !writes.is_empty() {
        app.storage.apply(writes).await?;
    }
    let mut told = HashSet::new();
    for grant in &grants {
        if !told.insert(grant.client_id.as_str()) {
            continue;
        }
        let Some(context) = app.storage.client_context(&grant.client_id).await? else { continue };
        let Some(uri) = context.client.doc.backchannel_logout_uri.clone() else { continue };
        let claims = LogoutClaims {
            iss: app.config.issuer(),
            sub: &ended.user_id,
            aud: &grant.client_id,
            iat: now,
            exp: now + LIFETIME,
            jti: random_token(16),
            sid: &sid,
            events: json!({ EVENT: {} }),
        };
        // §2.4: explicitly typed, so it can never pass for an ID token; signed as the
        // client's ID tokens are.
        let algorithm = super::tokens::id_token_algorithm(app, &context.client);
        let token = app.keys.sign(algorithm, "logout+jwt", &claims, LIFETIME as u64).await?;
        app.outbound.spawn(deliver(app.outbound.clone(), grant.client_id.clone(), uri, token));
    }
    Ok(())
}

/// §2.5: the logout token, posted as a form, tried again after each of [`RETRIES`].
async fn deliver(outbound: Outbound, client_id: String, uri: String, token: String) {
    let url = match url::Url::parse(&uri) {
        Ok(url) => url,
        Err(error) => return tracing::warn!(client = %client_id, %error, "back-channel logout not delivered"),
    };
    let mut waits = RETRIES.iter();
    loop {
        match outbound.post_form(&url, &[("logout_token", &token)]).await {
            Ok(()) => return tracing::info!(client = %client_id, "back-channel logout delivered"),
            Err(error) => match waits.next() {
                Some(wait) => {
                    tracing::info!(client = %client_id, %error, "back-channel logout not delivered yet; trying again");
                    tokio::time::sleep(*wait).await;
                }
                None => return tracing::warn!(client = %client_id, %error, "back-channel logout not delivered"),
            },
        }
    }
}
