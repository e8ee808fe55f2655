//! RFC 6749 §4.5 Extension Grants: a `grant_type` that is an absolute URI a loaded
//! grant-type plugin answers. The token endpoint has authenticated the client and checked
//! that it is registered for the type; the plugin validates the request's own parameters
//! and names the subject and the scopes asked for. The scope policy then decides the
//! scopes, as for every grant, and the host issues the tokens (§5.1) or the plugin's
//! refusal as the §5.2 error of the same name.

use super::App;
use super::dpop::Jkt;
use super::params::Params;
use super::profiles::{Endpoint, Profile};
use super::scope_policy::{self, Ask};
use super::tokens::{self, Issue, TokenResponse};
use crate::crypto::hash_secret;
use crate::error::OAuthError;
use crate::limits::{MAX_GRANT_SUBJECT_BYTES, MAX_SINGLE_USE_SECONDS};
use crate::model::UsedGrantCredential;
use crate::plugin::grant::{GrantAsk, GrantRefusal, GrantSubject};
use crate::storage::{ClientContext, StorageError, write};

/// Parameters that authenticate the client: never handed to a plugin.
const CLIENT_CREDENTIALS: [&str; 4] = ["client_id", "client_secret", "client_assertion", "client_assertion_type"];

pub async fn exchange(
    app: &App,
    context: &ClientContext,
    params: &Params,
    (grant_type, plugin): (&str, &str),
    dpop: Option<&Jkt>,
) -> Result<TokenResponse, OAuthError> {
    let client = &context.client;
    let acr_values = params.acr_values()?;
    let now = app.clock.now();
    let issuer = app.config.issuer();
    let token_endpoint = format!("{issuer}{}", Profile::Native.path(Endpoint::Token));
    let ask = GrantAsk {
        grant_type,
        client_id: &client.id,
        parameters: params
            .pairs()
            .into_iter()
            .filter(|(k, _)| k != "grant_type" && !CLIENT_CREDENTIALS.contains(&k.as_str()))
            .collect(),
        issuer,
        token_endpoint: &token_endpoint,
        now,
    };
    let answer = app.host.exchange_grant(plugin, &ask)?.map_err(|refusal| match refusal {
        GrantRefusal::InvalidRequest(m) => OAuthError::InvalidRequest(m),
        GrantRefusal::InvalidGrant(m) => OAuthError::InvalidGrant(m),
        GrantRefusal::InvalidScope(m) => OAuthError::InvalidScope(m),
        GrantRefusal::UnauthorizedClient(m) => OAuthError::UnauthorizedClient(m),
    })?;

    // The subject's record, before anything is remembered: an unknown user is refused.
    let user = match &answer.subject {
        GrantSubject::User(who) => {
            let found = match app.storage.get_user(who).await? {
                Some(user) => Some(user),
                None => app.storage.find_user(who).await?,
            };
            let found = found.filter(|u| !u.doc.disabled);
            Some(found.ok_or_else(|| OAuthError::InvalidGrant("the grant names no user of this server".into()))?)
        }
        GrantSubject::Client | GrantSubject::Other(_) => None,
    };

    // The credential, once: remembered until the plugin says it lapses (a day at most).
    if let Some((credential, until)) = &answer.single_use {
        let seen = UsedGrantCredential {
            id: hash_secret(&format!("{grant_type}\n{}\n{credential}", client.id)),
            expires_at: (*until).clamp(now + 1, now + MAX_SINGLE_USE_SECONDS),
        };
        match app.storage.apply(vec![write::create(&seen)?]).await {
            Ok(()) => {}
            Err(StorageError::Conflict(_) | StorageError::Duplicate) => {
                return Err(OAuthError::InvalidGrant("this credential was already used".into()));
            }
            Err(e) => return Err(e.into()),
        }
    }

    let decision = scope_policy::resolve(
        app,
        context,
        Ask::new(grant_type, user.as_ref(), &answer.scopes, params.get("scope").is_some()).acr_values(&acr_values),
    )
    .await?;
    if let Some(user) = &user {
        // The plugin vouched for the user just now.
        return super::grant::issue_to_user(app, context, user, decision, now, None, dpop).await;
    }
    let subject = match &answer.subject {
        GrantSubject::Other(s) if s.is_empty() || s.len() > MAX_GRANT_SUBJECT_BYTES => {
            return Err(OAuthError::internal(
                "extension grant",
                format!("plugin `{plugin}` named an unusable subject"),
            ));
        }
        GrantSubject::Other(s) => Some(s.as_str()),
        _ => None,
    };
    tokens::issue(app, Issue::without_user(context, subject, &decision.scopes, &decision.claims), dpop).await
}
