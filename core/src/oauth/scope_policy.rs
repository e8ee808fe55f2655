//! Asks the client's scope policy plugin which scopes a grant really gets (RFC 6749 §3.3:
//! the server may grant fewer scopes than requested and says so in `scope`). The policy is
//! asked on every grant; whatever it answers, the host keeps only scopes the client was
//! registered with (and, on refresh, that the original grant had) and drops claims the
//! server owns. A policy that faults (a trap, its deadline, its memory), when no fallback
//! answers for it, refuses the grant as a denial would: it fails closed, with an answer the
//! client can act on rather than a `server_error` it may retry.

use super::Protocol;
use crate::error::OAuthError;
use crate::model::{Decision, ExtraClaim, GrantType, User};
use crate::plugin::PluginError;
pub use crate::plugin::scope::Ask;
use crate::plugin::scope::{Authentication, PolicyDenial, ScopeInput};
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
    "act",
    "tenant",
];

/// DATEV's reserved `acr_values` (its manual, authorization and token endpoints): the tenant
/// `tenant:<id>` selects, if any. `idp:<name>` would skip the login page for another identity
/// provider, which the manual itself calls not active: it is accepted and has no effect, as
/// does any other value (an ACR the server meets with its one, the password).
fn selected_tenant(acr_values: &[String]) -> Result<Option<&str>, OAuthError> {
    let mut tenants = acr_values.iter().filter_map(|v| v.strip_prefix("tenant:"));
    let tenant = tenants.next();
    if tenants.next().is_some() {
        return Err(OAuthError::InvalidRequest("`acr_values` selects at most one `tenant:`".into()));
    }
    match tenant {
        Some("") => Err(OAuthError::InvalidRequest("`tenant:` needs the tenant's id".into())),
        t => Ok(t),
    }
}

/// A grant refused, by the host's rules or the policy's denial: where a person decides on a
/// page (authorization, a device's page), `access_denied`; at the token endpoint, whose
/// errors (RFC 6749 §5.2) have no `access_denied`, a user's grant is invalid and a client's
/// request for itself asked for scopes it gets none of.
fn refused(ask: &Ask<'_>, why: String) -> OAuthError {
    let on_a_page = [GrantType::AuthorizationCode.as_str(), "implicit", GrantType::DeviceCode.as_str()];
    if on_a_page.contains(&ask.grant_type) {
        OAuthError::AccessDenied(why)
    } else if ask.user.is_some() {
        OAuthError::InvalidGrant(why)
    } else {
        OAuthError::InvalidScope(why)
    }
}

/// A user's roles for a grant of `context`'s client: those they hold everywhere and, in the
/// client's organization, those they hold there as a member (VMware: organization and
/// service roles). None for the client's own grant.
pub(crate) async fn user_roles(
    app: &Protocol,
    context: &ClientContext,
    user: Option<&User>,
) -> Result<Vec<String>, OAuthError> {
    let mut roles = user.map(|u| u.doc.roles.clone()).unwrap_or_default();
    if let (Some(user), Some(organization)) = (user, context.organization.as_ref())
        && let Some(membership) = app.storage.membership(&user.id, &organization.id).await?
    {
        add_new(&mut roles, membership.roles);
    }
    Ok(roles)
}

/// Adds the roles `roles` does not hold yet, in order.
fn add_new(roles: &mut Vec<String>, more: Vec<String>) {
    for role in more {
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
}

/// What the scope policy grants on one request, after the host's rules: the scopes and
/// the claims that go into what is issued, or the OAuth error the request gets.
pub async fn resolve(app: &Protocol, context: &ClientContext, ask: Ask<'_>) -> Result<Decision, OAuthError> {
    resolve_with(app, context, ask, None).await.map(|r| r.decision)
}

/// [`resolve`] for a person signed in as `authentication` says (`ScopeInput::authentication`:
/// a policy may ask for more, `PolicyDenial::StepUp`).
pub async fn resolve_signed_in(
    app: &Protocol,
    context: &ClientContext,
    ask: Ask<'_>,
    authentication: Authentication,
) -> Result<Decision, OAuthError> {
    resolve_as(app, context, ask, None, Some(authentication)).await.map(|r| r.decision)
}

/// What one ask came to, before anything is issued: the decision, and what the host took
/// out of the policy's answer.
pub(crate) struct Resolution {
    pub decision: Decision,
    /// Scopes the policy granted that the host dropped: outside what the client may be
    /// granted or, on refresh, outside the original grant.
    pub dropped_scopes: Vec<String>,
    /// Claims the policy set that the server owns, dropped.
    pub dropped_claims: Vec<String>,
}

/// [`resolve`], with `policy` asked in place of the client's own scope policy when given
/// (a simulation trying another loaded policy), and what the host removed kept.
pub(crate) async fn resolve_with(
    app: &Protocol,
    context: &ClientContext,
    ask: Ask<'_>,
    policy: Option<&str>,
) -> Result<Resolution, OAuthError> {
    resolve_as(app, context, ask, policy, None).await
}

async fn resolve_as(
    app: &Protocol,
    context: &ClientContext,
    ask: Ask<'_>,
    policy: Option<&str>,
    authentication: Option<Authentication>,
) -> Result<Resolution, OAuthError> {
    let client = &context.client;
    // In the tenant the request selects, too, the roles the user holds there as a member.
    let tenant = selected_tenant(ask.acr_values)?;
    let mut user_roles = user_roles(app, context, ask.user).await?;
    let mut add_roles = |roles: Vec<String>| add_new(&mut user_roles, roles);
    if let Some(tenant) = tenant {
        let Some(user) = ask.user else {
            return Err(OAuthError::InvalidRequest("`tenant:` selects a user's area: this grant has no user".into()));
        };
        let membership = app.storage.membership(&user.id, tenant).await?;
        if membership.is_none() && user.doc.organization_id.as_deref() != Some(tenant) {
            return Err(refused(&ask, format!("the user has no access to tenant `{tenant}`")));
        }
        add_roles(membership.map(|m| m.roles).unwrap_or_default());
    }
    // Deployteq: only the user who registered an owner-only application may let it in, by
    // any grant.
    if let (Some(user), Some(application)) = (ask.user, context.application.as_ref().filter(|a| a.owner_only))
        && application.created_by.as_deref() != Some(user.id.as_str())
    {
        return Err(refused(&ask, "only the user who registered this application may authorize it".into()));
    }
    let input = ScopeInput {
        client,
        allowed_scopes: context.allowed_scopes(),
        template: context.template.as_ref(),
        organization: context.organization.as_ref(),
        instance: context.instance.as_ref(),
        user_roles: &user_roles,
        authentication,
        ask,
    };
    // A simulation (a policy named in place of the client's own) is not traffic: the live
    // policy's shadows are asked on real requests only.
    let simulated = policy.is_some();
    let policy = policy.or(client.doc.scope_policy.as_deref()).unwrap_or(&app.host.defaults.scope);
    let answered =
        if simulated { app.host.simulate_scope(policy, &input) } else { app.host.resolve_scope(policy, &input) };
    let answer = match answered {
        Ok(answer) => answer,
        // A policy that faulted (and whose fallback, if any, did not answer) decided nothing:
        // the grant is refused, as a denial would be, from the first fault on.
        Err(PluginError::Trap { .. } | PluginError::Unanswered { .. }) => {
            return Err(refused(&input.ask, format!("the scope policy `{policy}` failed; nothing is granted")));
        }
        Err(e) => return Err(plugin_error(client, e)),
    };
    match answer {
        Ok(grant) => {
            // A policy narrows; it never widens past what the client may be granted, nor,
            // on refresh, past the original grant.
            let (scopes, dropped_scopes): (Vec<String>, Vec<String>) = grant.scopes.into_iter().partition(|s| {
                input.allowed_scopes.contains(s) && input.ask.original_scopes.is_none_or(|o| o.contains(s))
            });
            let mut claims = Vec::new();
            let mut dropped_claims = Vec::new();
            for c in grant.claims {
                if REGISTERED.contains(&c.name.as_str()) {
                    tracing::warn!(policy, claim = %c.name, "scope policy tried to set a registered claim; ignored");
                    dropped_claims.push(c.name);
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
            // The tenant the request selected, in every token (and kept on refresh).
            if let Some(tenant) = tenant {
                claims.push(ExtraClaim {
                    name: "tenant".into(),
                    value: tenant.into(),
                    access_token: true,
                    id_token: true,
                    userinfo: true,
                });
            }
            Ok(Resolution { decision: Decision { scopes, claims }, dropped_scopes, dropped_claims })
        }
        Err(PolicyDenial::InvalidScope(reason)) => Err(OAuthError::InvalidScope(reason)),
        Err(PolicyDenial::AccessDenied(reason)) => Err(refused(&input.ask, reason)),
        // On the authorization page the person can be asked for a second factor
        // (`second_factor::policy_step_up`); anywhere else it is refused as a denial is.
        Err(PolicyDenial::StepUp(reason)) => match refused(&input.ask, reason) {
            OAuthError::AccessDenied(reason) if input.ask.grant_type != GrantType::DeviceCode.as_str() => {
                Err(OAuthError::StepUp(reason))
            }
            other => Err(other),
        },
        Err(PolicyDenial::UnauthorizedClient(reason)) => Err(OAuthError::UnauthorizedClient(reason)),
    }
}

/// A plugin the client names (its scope policy, its consent UI) failing: one that is not
/// loaded is logged as an ERROR naming the client and the plugin and answered `server_error`
/// naming the plugin, not a bare 500; any other failure as before.
pub(crate) fn plugin_error(client: &crate::model::Client, e: crate::plugin::PluginError) -> OAuthError {
    match e {
        crate::plugin::PluginError::NotLoaded { kind, name } => {
            tracing::error!(client_id = %client.id, plugin = %name, %kind, "a client names a plugin that is not loaded");
            OAuthError::PluginNotLoaded(format!(
                "the {kind} plugin `{name}` this client names is not loaded; the server's operator must load it or change the client"
            ))
        }
        e => e.into(),
    }
}
