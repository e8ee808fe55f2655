//! The scope interface of 0.5.0: a grant's [`ScopeInput`] as its request, its answer as a
//! [`PolicyGrant`] or a [`PolicyDenial`]. A version whose scope interface differs has its
//! [`ScopeRecords`], made from these.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::scope_world::exports::portcullis::plugin::scope as wit;
use crate::model::Client;
use crate::plugin::call::CallState;
use crate::plugin::contract::{Answer, Export, Exported, Param, ScopeWorld};
use crate::plugin::scope::{PolicyClaim, PolicyDenial, PolicyGrant, ScopeInput};
use crate::plugin::{Contract, Linked, PluginKind};

pub(in crate::plugin) use wit::{Claim, ClaimTargets, Denial, Grant, ScopeRequest};

/// A version's request, grant and denial, in place of this version's.
pub(in crate::plugin) trait ScopeRecords: Send + Sync + 'static {
    type Request: Param;
    type Grant: Answer;
    type Denial: Answer;
    /// This version's request as the version has it.
    fn request(request: ScopeRequest) -> Self::Request;
    /// The version's grant as this version has it.
    fn grant(grant: Self::Grant) -> Grant;
    /// The version's denial as this version has it.
    fn denial(denial: Self::Denial) -> Denial;
}

/// The records of 0.5.0.
pub(in crate::plugin) struct Current;

impl ScopeRecords for Current {
    type Request = ScopeRequest;
    type Grant = Grant;
    type Denial = Denial;

    fn request(request: ScopeRequest) -> ScopeRequest {
        request
    }

    fn grant(grant: Grant) -> Grant {
        grant
    }

    fn denial(denial: Denial) -> Denial {
        denial
    }
}

/// A scope policy of a version whose records are `R`'s.
struct Policy<R: ScopeRecords> {
    pre: InstancePre<CallState>,
    resolve: Export<(R::Request,), Answered<R>>,
}

/// What a policy answers: its version's grant, or its version's denial.
type Answered<R> = (Result<<R as ScopeRecords>::Grant, <R as ScopeRecords>::Denial>,);

/// Links a scope policy of `contract`, whose records are `R`'s.
pub(in crate::plugin) fn link<R: ScopeRecords>(
    pre: InstancePre<CallState>,
    contract: Contract,
) -> wasmtime::Result<Linked> {
    let resolve = Exported::of(&pre, PluginKind::ScopePolicy, contract)?.func("resolve")?;
    Ok(Linked::Scope(Box::new(Policy::<R> { pre, resolve })))
}

impl<R: ScopeRecords> ScopeWorld for Policy<R> {
    fn resolve(
        &self,
        store: &mut Store<CallState>,
        input: &ScopeInput<'_>,
    ) -> wasmtime::Result<Result<PolicyGrant, PolicyDenial>> {
        let request = R::request(request(input));
        let instance = self.pre.instantiate(&mut *store)?;
        let (answer,) = self.resolve.call(store, &instance, (request,))?;
        Ok(answer.map(|g| grant(R::grant(g))).map_err(|d| denial(R::denial(d))))
    }
}

fn request(i: &ScopeInput<'_>) -> ScopeRequest {
    let c = i.client;
    ScopeRequest {
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
            metadata: metadata(c),
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
        authentication: i.authentication.as_ref().map(|a| wit::Authentication {
            acr: a.acr.clone(),
            amr: a.amr.clone(),
            auth_time: a.auth_time,
        }),
    }
}

fn grant(g: Grant) -> PolicyGrant {
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

fn metadata(client: &Client) -> String {
    serde_json::Value::Object(client.doc.metadata.clone()).to_string()
}

fn denial(d: wit::Denial) -> PolicyDenial {
    match d {
        wit::Denial::InvalidScope(r) => PolicyDenial::InvalidScope(r),
        wit::Denial::AccessDenied(r) => PolicyDenial::AccessDenied(r),
        wit::Denial::UnauthorizedClient(r) => PolicyDenial::UnauthorizedClient(r),
        wit::Denial::StepUp(r) => PolicyDenial::StepUp(r),
    }
}
