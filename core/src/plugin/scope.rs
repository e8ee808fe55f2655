//! Asking a scope policy plugin, of any contract version, in the server's own types (each
//! version's records: `contract/`).

use super::{Linked, Plugin, PluginError, PluginKind, PolicyHost};
use crate::model::{AppInstance, Client, ClientTemplate, Organization, User};

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
    /// How the person signed in, when a person did; none for the client's own grants.
    pub authentication: Option<Authentication>,
    pub ask: Ask<'a>,
}

/// How a person signed in: what a scope policy may ask for more of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// `"1"` one factor (a password), `"2"` two factors.
    pub acr: String,
    /// The methods used (RFC 8176): `pwd`, `otp`, `hwk`, `swk`, `mfa`.
    pub amr: Vec<String>,
    /// When the person signed in, Unix seconds.
    pub auth_time: i64,
}

impl ScopeInput<'_> {
    /// The roles that bound this grant: for an instance, those of the user who added it.
    pub(super) fn roles(&self) -> Vec<String> {
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
    /// The grant needs a stronger sign-in (contract 0.5.0 and later): where a person can be
    /// asked, they are asked for a second factor and the policy asked again; elsewhere it
    /// is refused as `AccessDenied` is.
    StepUp(String),
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
        let answer = self.answer_or_fallback(&plugin, input);
        self.shadow(name, input, &answer);
        answer
    }

    /// [`Self::resolve_scope`] for a simulation, which is not traffic: its shadows are not
    /// asked, so their differences count real requests only.
    pub fn simulate_scope(
        &self,
        name: &str,
        input: &ScopeInput<'_>,
    ) -> Result<Result<PolicyGrant, PolicyDenial>, PluginError> {
        let plugin = self.get(PluginKind::ScopePolicy, name)?;
        self.answer_or_fallback(&plugin, input)
    }

    /// The policy's answer, or its fallback's when it faulted and has one that answers.
    fn answer_or_fallback(
        &self,
        plugin: &Plugin,
        input: &ScopeInput<'_>,
    ) -> Result<Result<PolicyGrant, PolicyDenial>, PluginError> {
        match self.resolve_with(plugin, input) {
            Err(fault) => match self.fallback_for(plugin, &fault) {
                Some(fallback) => self.resolve_with(&fallback, input).map_err(|_| fault),
                None => Err(fault),
            },
            answered => answered,
        }
    }

    pub(super) fn resolve_with(
        &self,
        plugin: &Plugin,
        input: &ScopeInput<'_>,
    ) -> Result<Result<PolicyGrant, PolicyDenial>, PluginError> {
        match &plugin.linked {
            Linked::Scope(policy) => self.call(plugin, |store| policy.resolve(store, input)),
            _ => Err(PluginError::NotLoaded { kind: PluginKind::ScopePolicy, name: plugin.manifest.name.clone() }),
        }
    }
}
