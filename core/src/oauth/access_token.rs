//! Validating an access token this server issued (RFC 9068 §4): signature, `typ`, issuer,
//! expiry, then liveness: not revoked by `jti`, its grant not revoked, its client still
//! registered and not expired.

use super::tokens::AccessClaims;
use crate::error::OAuthError;
use crate::model::now;
use crate::server::Portcullis;

/// `Ok(None)`: not a live access token of this server.
pub async fn validate(app: &Portcullis, token: &str) -> Result<Option<AccessClaims>, OAuthError> {
    let Ok(claims) = app.keys.verify::<AccessClaims>(token, "at+jwt") else { return Ok(None) };
    if app.storage.is_token_id_revoked(&claims.jti).await? {
        return Ok(None);
    }
    if let Some(gid) = &claims.gid {
        match app.storage.get_grant(gid).await? {
            Some(g) if !g.revoked => {}
            _ => return Ok(None),
        }
    }
    match app.storage.get_client(&claims.client_id).await? {
        Some(c) if !c.is_expired(now()) => Ok(Some(claims)),
        _ => Ok(None),
    }
}
