//! RFC 8628 §3.4–§3.5 Device Access Token Request and Response: the device polls with its
//! device code until the person decides. Before then, `authorization_pending`, or
//! `slow_down` to a device polling faster than its interval (which grows by 5 s); after,
//! the tokens, once, or `access_denied`; past its life, `expired_token`.

use super::App;
use super::dpop::Jkt;
use super::params::Params;
use super::tokens::TokenResponse;
use crate::crypto::hash_secret;
use crate::error::OAuthError;
use crate::model::{DeviceAuthorization, DeviceState};
use crate::storage::{ClientContext, Loaded, StorageError, write};

pub async fn exchange(
    app: &App,
    context: &ClientContext,
    params: &Params,
    dpop: Option<&Jkt>,
) -> Result<TokenResponse, OAuthError> {
    let client = &context.client;
    let id = hash_secret(params.required("device_code")?);
    let invalid = || OAuthError::InvalidGrant("the device code is invalid".into());
    let Some(Loaded { value: device, revision, consumed }) = app.storage.get_loaded::<DeviceAuthorization>(&id).await?
    else {
        return Err(invalid());
    };
    if consumed || device.client_id != client.id {
        return Err(invalid());
    }
    let now = app.clock.now();
    if device.expires_at <= now {
        return Err(OAuthError::ExpiredToken("the device code has expired: start again".into()));
    }
    match device.state.clone() {
        DeviceState::Pending => {
            let too_soon = now - device.last_poll < device.interval;
            let mut polled = device.clone();
            polled.last_poll = now;
            if too_soon {
                polled.interval += 5;
            }
            // A concurrent poll or decision wins; this one's answer stands either way.
            match app.storage.apply(vec![write::update(&polled, revision)?]).await {
                Ok(()) | Err(StorageError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            Err(if too_soon {
                OAuthError::SlowDown(format!("poll at most every {} seconds", polled.interval))
            } else {
                OAuthError::AuthorizationPending("the person has not decided yet".into())
            })
        }
        DeviceState::Denied => {
            app.storage.apply(vec![write::delete::<DeviceAuthorization>(&id)]).await?;
            Err(OAuthError::DeviceDenied("the person denied the device".into()))
        }
        DeviceState::Approved { user_id, auth_time, decision, assurance } => {
            match app.storage.apply(vec![write::consume::<DeviceAuthorization>(&id)]).await {
                Ok(()) => {}
                Err(StorageError::Conflict(_)) => return Err(invalid()),
                Err(e) => return Err(e.into()),
            }
            let user = app.storage.get_user(&user_id).await?.filter(|u| !u.doc.disabled).ok_or_else(invalid)?;
            super::grant::issue_to_user(app, context, &user, decision, auth_time, assurance.as_ref(), dpop).await
        }
    }
}
