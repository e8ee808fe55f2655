//! Validating an access token this server issued (RFC 9068 §4): signature, `typ`, issuer,
//! expiry, then liveness: not revoked by `jti`, its grant not revoked, its client still
//! registered and not expired. Liveness is one storage call.

use super::Protocol;
use super::tokens::AccessClaims;
use crate::error::OAuthError;
use crate::model::{Client, Grant, RevokedAccessToken};

/// `Ok(None)`: not a live access token of this server. `known` is a client the caller has
/// just loaded (the introspecting one), so it is not looked up again when the token is its own.
pub async fn validate(app: &Protocol, token: &str, known: Option<&Client>) -> Result<Option<AccessClaims>, OAuthError> {
    let Ok(claims) = app.keys.verify::<AccessClaims>(token, "at+jwt").await else { return Ok(None) };
    let (revoked, grant) = match &claims.gid {
        Some(gid) => app.storage.get_pair::<RevokedAccessToken, Grant>(&claims.jti, gid).await?,
        None => (app.storage.get::<RevokedAccessToken>(&claims.jti).await?, None),
    };
    if revoked.is_some() || (claims.gid.is_some() && grant.is_none()) {
        return Ok(None);
    }
    let now = app.clock.now();
    let live = match known.filter(|c| c.id == claims.client_id && c.doc.application_id.is_none()) {
        Some(c) => !c.is_expired(now),
        None => app.storage.client_context(&claims.client_id).await?.is_some_and(|c| {
            // A token issued through an instance dies with it; a disabled application's are inactive.
            !c.client.is_expired(now)
                && c.unusable().is_none()
                && claims.iid.as_ref().is_none_or(|iid| c.instance.as_ref().is_some_and(|i| &i.id == iid))
        }),
    };
    Ok(live.then_some(claims))
}
