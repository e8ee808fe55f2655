//! Asks the client's scope policy plugin which scopes a grant really gets (RFC 6749 §3.3:
//! the server may grant fewer scopes than requested and says so in `scope`).

use crate::error::OAuthError;
use crate::model::{Client, ExtraClaim, User};
use crate::plugin::bindings::scope_world::exports::portcullis::plugin::scope as wit;
use crate::server::Portcullis;

pub struct Granted {
    pub scopes: Vec<String>,
    pub claims: Vec<ExtraClaim>,
}

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
    "azp",
    "gid",
    "acr",
    "amr",
];

pub fn resolve(
    app: &Portcullis,
    client: &Client,
    user: Option<&User>,
    requested: &[String],
    scope_parameter_present: bool,
    grant_type: &str,
) -> Result<Granted, OAuthError> {
    let request = wit::ScopeRequest {
        client: wit::Client {
            id: client.id.clone(),
            name: client.doc.name.clone(),
            allowed_scopes: client.doc.scopes.clone(),
            grant_types: client.doc.grant_types.clone(),
            template: client.doc.template.as_ref().map(|t| wit::ClientTemplate {
                id: t.id.clone(),
                name: t.name.clone(),
                scopes: t.scopes.clone(),
            }),
            organization_id: client.organization_id.clone(),
            metadata: serde_json::Value::Object(client.doc.metadata.clone()).to_string(),
        },
        user: user.map(|u| wit::User {
            id: u.id.clone(),
            username: u.username.clone(),
            roles: u.doc.roles.clone(),
            organization_id: u.doc.organization_id.clone(),
        }),
        organization: None,
        roles: user.map(|u| u.doc.roles.clone()).unwrap_or_default(),
        requested_scopes: requested.to_vec(),
        scope_parameter_present,
        grant_type: grant_type.to_owned(),
    };
    let policy = client.doc.scope_policy.as_deref().unwrap_or(&app.host.defaults.scope);
    match app.host.resolve_scope(policy, &request)? {
        Ok(grant) => {
            // A policy narrows; it never widens past what the client was registered with.
            let scopes: Vec<String> = grant.scopes.into_iter().filter(|s| client.doc.scopes.contains(s)).collect();
            let mut claims = Vec::new();
            for c in grant.claims {
                if REGISTERED.contains(&c.name.as_str()) {
                    tracing::warn!(policy, claim = %c.name, "scope policy tried to set a registered claim; ignored");
                    continue;
                }
                let value = serde_json::from_str(&c.value).map_err(|e| {
                    OAuthError::internal("scope policy claim", format!("claim {} is not JSON: {e}", c.name))
                })?;
                claims.push(ExtraClaim { name: c.name, value, id_token: c.id_token });
            }
            Ok(Granted { scopes, claims })
        }
        Err(wit::Denial::InvalidScope(reason)) => Err(OAuthError::InvalidScope(reason)),
        Err(wit::Denial::AccessDenied(reason)) => Err(OAuthError::AccessDenied(reason)),
        Err(wit::Denial::UnauthorizedClient(reason)) => Err(OAuthError::UnauthorizedClient(reason)),
    }
}
