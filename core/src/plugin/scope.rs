//! Asking a scope policy plugin, of any contract version, in the server's own types.

use super::bindings::v1;
use super::{Linked, Plugin, PluginError, PluginKind, PolicyHost};
use crate::model::{AppInstance, Client, ClientTemplate, Organization, User};

use v1::scope_world::exports::portcullis::plugin::scope as wit1;

/// What one grant asks the policy: the request's side of its input.
pub struct Ask<'a> {
    pub user: Option<&'a User>,
    pub requested: &'a [String],
    pub scope_parameter_present: bool,
    pub grant_type: &'a str,
    /// On refresh: the scopes of the original grant.
    pub original_scopes: Option<&'a [String]>,
    pub acr_values: &'a [String],
    pub claims_parameter: Option<&'a str>,
}

impl<'a> Ask<'a> {
    /// What a grant of `grant_type` asks for `user` (none: the client for itself): the
    /// `requested` scopes, and whether the request had a `scope` parameter at all. No
    /// original grant, `acr_values` or `claims` unless added.
    pub fn new(
        grant_type: &'a str,
        user: Option<&'a User>,
        requested: &'a [String],
        scope_parameter_present: bool,
    ) -> Self {
        Ask {
            user,
            requested,
            scope_parameter_present,
            grant_type,
            original_scopes: None,
            acr_values: &[],
            claims_parameter: None,
        }
    }

    /// The scopes of the grant this one derives from (refresh, token exchange): its ceiling.
    pub fn within(self, original_scopes: &'a [String]) -> Self {
        Ask { original_scopes: Some(original_scopes), ..self }
    }

    /// The request's `acr_values` (OIDC Core §3.1.2.1).
    pub fn acr_values(self, acr_values: &'a [String]) -> Self {
        Ask { acr_values, ..self }
    }

    /// The request's `claims` parameter (OIDC Core §5.5), JSON text.
    pub fn claims_parameter(self, claims: Option<&'a str>) -> Self {
        Ask { claims_parameter: claims, ..self }
    }
}

/// Everything a scope policy is told about one grant: the ask, and the client's records
/// from the host's storage.
pub struct ScopeInput<'a> {
    pub client: &'a Client,
    /// Every scope the client may be granted, as its records decide (an instance's
    /// snapshot, its template's, or its own).
    pub allowed_scopes: &'a [String],
    pub template: Option<&'a ClientTemplate>,
    pub organization: Option<&'a Organization>,
    pub instance: Option<&'a AppInstance>,
    /// The user's roles: those they hold everywhere, and those they hold in the client's
    /// organization when they are a member of it.
    pub user_roles: &'a [String],
    pub ask: Ask<'a>,
}

impl ScopeInput<'_> {
    /// The roles that bound this grant: for an instance, those of the user who added it.
    fn roles(&self) -> Vec<String> {
        match (self.instance, self.ask.user) {
            (Some(i), _) => i.added_by_roles.clone(),
            (None, Some(_)) => self.user_roles.to_vec(),
            (None, None) => Vec::new(),
        }
    }
}

/// A claim as a policy answered it: the value is JSON text, not yet parsed.
pub struct PolicyClaim {
    pub name: String,
    pub value: String,
    pub access_token: bool,
    pub id_token: bool,
    pub userinfo: bool,
}

pub struct PolicyGrant {
    pub scopes: Vec<String>,
    pub claims: Vec<PolicyClaim>,
}

pub enum PolicyDenial {
    InvalidScope(String),
    AccessDenied(String),
    UnauthorizedClient(String),
}

impl PolicyHost {
    /// Runs the scope policy `name` on one request. A call it faults on goes to its
    /// manifest's `on-fault.fallback`, when that is loaded; if there is none, or the fallback
    /// faults too, the policy's fault is the answer.
    pub fn resolve_scope(
        &self,
        name: &str,
        input: &ScopeInput<'_>,
    ) -> Result<Result<PolicyGrant, PolicyDenial>, PluginError> {
        let plugin = self.get(PluginKind::ScopePolicy, name)?;
        let answer = match self.resolve_with(&plugin, input) {
            Err(fault) => match self.fallback_for(&plugin, &fault) {
                Some(fallback) => self.resolve_with(&fallback, input).map_err(|_| fault),
                None => Err(fault),
            },
            answered => answered,
        };
        self.shadow(name, input, &answer);
        answer
    }

    pub(super) fn resolve_with(
        &self,
        plugin: &Plugin,
        input: &ScopeInput<'_>,
    ) -> Result<Result<PolicyGrant, PolicyDenial>, PluginError> {
        // Contracts 0.4.0, 0.3.0 and 0.2.0 share the scope interface; only the types' paths differ.
        macro_rules! current {
            ($pre:expr, $records:ident) => {{
                let request = $records::request(input);
                let answer = self.call(plugin, |store| {
                    $pre.instantiate(&mut *store)?.portcullis_plugin_scope().call_resolve(&mut *store, &request)
                })?;
                Ok(answer.map($records::grant).map_err($records::denial))
            }};
        }
        match &plugin.linked {
            Linked::Scope(pre) => current!(pre, v4_records),
            Linked::ScopeV3(pre) => current!(pre, v3_records),
            Linked::ScopeV2(pre) => current!(pre, v2_records),
            Linked::ScopeV1(pre) => {
                let request = v1_request(input);
                let answer = self.call(plugin, |store| {
                    pre.instantiate(&mut *store)?.portcullis_plugin_scope().call_resolve(&mut *store, &request)
                })?;
                Ok(answer.map(v1_grant).map_err(|d| match d {
                    wit1::Denial::InvalidScope(r) => PolicyDenial::InvalidScope(r),
                    wit1::Denial::AccessDenied(r) => PolicyDenial::AccessDenied(r),
                    wit1::Denial::UnauthorizedClient(r) => PolicyDenial::UnauthorizedClient(r),
                }))
            }
            _ => Err(PluginError::NotLoaded { kind: PluginKind::ScopePolicy, name: plugin.manifest.name.clone() }),
        }
    }
}

fn metadata(client: &Client) -> String {
    serde_json::Value::Object(client.doc.metadata.clone()).to_string()
}

/// The conversions of a contract version whose scope interface is 0.2.0's (0.2.0, 0.3.0 and
/// 0.4.0).
macro_rules! scope_records {
    ($module:ident, $wit:path) => {
        mod $module {
            use super::{PolicyClaim, PolicyDenial, PolicyGrant, ScopeInput};
            use $wit as wit;

            pub fn request(i: &ScopeInput<'_>) -> wit::ScopeRequest {
                let c = i.client;
                wit::ScopeRequest {
                    client: wit::Client {
                        id: c.id.clone(),
                        name: c.doc.name.clone(),
                        allowed_scopes: i.allowed_scopes.to_vec(),
                        grant_types: c.doc.grant_types.clone(),
                        template: i.template.map(|t| wit::ClientTemplate {
                            id: t.id.clone(),
                            name: t.name.clone(),
                            scopes: t.scopes.clone(),
                        }),
                        owner: c.doc.owner.clone(),
                        organization_id: c.organization_id.clone(),
                        metadata: super::metadata(c),
                    },
                    user: i.ask.user.map(|u| wit::User {
                        id: u.id.clone(),
                        username: u.username.clone(),
                        name: u.doc.name.clone(),
                        email: u.doc.email.clone(),
                        email_verified: u.doc.email_verified,
                        company: u.doc.company.clone(),
                        roles: i.user_roles.to_vec(),
                        organization_id: u.doc.organization_id.clone(),
                    }),
                    organization: i.organization.map(|o| wit::Organization {
                        id: o.id.clone(),
                        name: o.name.clone(),
                        available_roles: o.available_roles.clone(),
                    }),
                    instance: i.instance.map(|a| wit::Instance {
                        id: a.id.clone(),
                        organization_id: a.organization_id.clone(),
                        added_by: a.added_by.clone(),
                        added_by_roles: a.added_by_roles.clone(),
                        scopes: a.scopes.clone(),
                    }),
                    roles: i.roles(),
                    requested_scopes: i.ask.requested.to_vec(),
                    scope_parameter_present: i.ask.scope_parameter_present,
                    grant_type: i.ask.grant_type.to_owned(),
                    original_scopes: i.ask.original_scopes.map(<[String]>::to_vec),
                    acr_values: i.ask.acr_values.to_vec(),
                    claims_parameter: i.ask.claims_parameter.map(str::to_owned),
                }
            }

            pub fn grant(g: wit::Grant) -> PolicyGrant {
                use wit::ClaimTargets as T;
                PolicyGrant {
                    scopes: g.scopes,
                    claims: g
                        .claims
                        .into_iter()
                        .map(|c| PolicyClaim {
                            access_token: c.targets.contains(T::ACCESS_TOKEN),
                            id_token: c.targets.contains(T::ID_TOKEN),
                            userinfo: c.targets.contains(T::USERINFO),
                            name: c.name,
                            value: c.value,
                        })
                        .collect(),
                }
            }

            pub fn denial(d: wit::Denial) -> PolicyDenial {
                match d {
                    wit::Denial::InvalidScope(r) => PolicyDenial::InvalidScope(r),
                    wit::Denial::AccessDenied(r) => PolicyDenial::AccessDenied(r),
                    wit::Denial::UnauthorizedClient(r) => PolicyDenial::UnauthorizedClient(r),
                }
            }
        }
    };
}

scope_records!(v4_records, crate::plugin::bindings::v4::scope_world::exports::portcullis::plugin::scope);
scope_records!(v3_records, crate::plugin::bindings::v3::scope_world::exports::portcullis::plugin::scope);
scope_records!(v2_records, crate::plugin::bindings::v2::scope_world::exports::portcullis::plugin::scope);

/// Contract 0.1.0 knew less: no owner, organization or instance details beyond ids, no
/// refresh ceiling, no `acr_values` or `claims`.
fn v1_request(i: &ScopeInput<'_>) -> wit1::ScopeRequest {
    let c = i.client;
    wit1::ScopeRequest {
        client: wit1::Client {
            id: c.id.clone(),
            name: c.doc.name.clone(),
            allowed_scopes: i.allowed_scopes.to_vec(),
            grant_types: c.doc.grant_types.clone(),
            template: i.template.map(|t| wit1::ClientTemplate {
                id: t.id.clone(),
                name: t.name.clone(),
                scopes: t.scopes.clone(),
            }),
            organization_id: c.organization_id.clone(),
            metadata: metadata(c),
        },
        user: i.ask.user.map(|u| wit1::User {
            id: u.id.clone(),
            username: u.username.clone(),
            roles: i.user_roles.to_vec(),
            organization_id: u.doc.organization_id.clone(),
        }),
        organization: i.organization.map(|o| wit1::Organization {
            id: o.id.clone(),
            name: o.name.clone(),
            available_roles: o.available_roles.clone(),
        }),
        roles: i.roles(),
        requested_scopes: i.ask.requested.to_vec(),
        scope_parameter_present: i.ask.scope_parameter_present,
        grant_type: i.ask.grant_type.to_owned(),
    }
}

/// In 0.1.0 a claim went to the access token, and to the ID token when it said so.
fn v1_grant(g: wit1::Grant) -> PolicyGrant {
    PolicyGrant {
        scopes: g.scopes,
        claims: g
            .claims
            .into_iter()
            .map(|c| PolicyClaim {
                name: c.name,
                value: c.value,
                access_token: true,
                id_token: c.id_token,
                userinfo: false,
            })
            .collect(),
    }
}
