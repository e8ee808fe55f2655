//! Asks the client's scope policy plugin which scopes a grant really gets (RFC 6749 §3.3:
//! the server may grant fewer scopes than requested and says so in `scope`). The policy is
//! asked on every grant; whatever it answers, the host keeps only scopes the client was
//! registered with (and, on refresh, that the original grant had) and drops claims the
//! server owns.

use super::Protocol;
use crate::error::OAuthError;
use crate::model::{Decision, ExtraClaim};
pub use crate::plugin::scope::Ask;
use crate::plugin::scope::{PolicyDenial, ScopeInput};
use crate::storage::ClientContext;

/// Claims a policy may not set: the server owns them.
const REGISTERED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "auth_time",
    "nonce",
    "at_hash",
    "c_hash",
    "s_hash",
    "azp",
    "gid",
    "acr",
    "amr",
    "sid",
    "cnf",
];

pub async fn resolve(app: &Protocol, context: &ClientContext, ask: Ask<'_>) -> Result<Decision, OAuthError> {
    let client = &context.client;
    // A user's roles are those they hold everywhere and, in the client's organization, those
    // they hold there as a member (VMware: organization and service roles).
    let mut user_roles = ask.user.map(|u| u.doc.roles.clone()).unwrap_or_default();
    if let (Some(user), Some(organization)) = (ask.user, context.organization.as_ref())
        && let Some(membership) = app.storage.membership(&user.id, &organization.id).await?
    {
        for role in membership.roles {
            if !user_roles.contains(&role) {
                user_roles.push(role);
            }
        }
    }
    let input = ScopeInput {
        client,
        allowed_scopes: context.allowed_scopes(),
        template: context.template.as_ref(),
        organization: context.organization.as_ref(),
        instance: context.instance.as_ref(),
        user_roles: &user_roles,
        ask,
    };
    let policy = client.doc.scope_policy.as_deref().unwrap_or(&app.host.defaults.scope);
    match app.host.resolve_scope(policy, &input)? {
        Ok(grant) => {
            // A policy narrows; it never widens past what the client may be granted, nor,
            // on refresh, past the original grant.
            let scopes: Vec<String> = grant
                .scopes
                .into_iter()
                .filter(|s| input.allowed_scopes.contains(s))
                .filter(|s| input.ask.original_scopes.is_none_or(|o| o.contains(s)))
                .collect();
            let mut claims = Vec::new();
            for c in grant.claims {
                if REGISTERED.contains(&c.name.as_str()) {
                    tracing::warn!(policy, claim = %c.name, "scope policy tried to set a registered claim; ignored");
                    continue;
                }
                let value = serde_json::from_str(&c.value).map_err(|e| {
                    OAuthError::internal("scope policy claim", format!("claim {} is not JSON: {e}", c.name))
                })?;
                claims.push(ExtraClaim {
                    name: c.name,
                    value,
                    access_token: c.access_token,
                    id_token: c.id_token,
                    userinfo: c.userinfo,
                });
            }
            Ok(Decision { scopes, claims })
        }
        Err(PolicyDenial::InvalidScope(reason)) => Err(OAuthError::InvalidScope(reason)),
        Err(PolicyDenial::AccessDenied(reason)) => Err(OAuthError::AccessDenied(reason)),
        Err(PolicyDenial::UnauthorizedClient(reason)) => Err(OAuthError::UnauthorizedClient(reason)),
    }
}
