//! The scope interface of 0.4.0, the same since 0.2.0: 0.5.0's without how the person signed
//! in, and without the denial asking for a stronger sign-in.

use crate::plugin::contract::v0_5::scope::{Denial, Grant, ScopeRecords, ScopeRequest};

bindings!("../sdk/wit/0.4.0", "scope-policy-plugin");

pub(in crate::plugin) use bindings::exports::portcullis::plugin::scope as old;

/// 0.4.0's request and denial; the grant is 0.5.0's.
pub(in crate::plugin) struct Records;

impl ScopeRecords for Records {
    type Request = old::ScopeRequest;
    type Grant = Grant;
    type Denial = old::Denial;

    fn request(r: ScopeRequest) -> old::ScopeRequest {
        let c = r.client;
        old::ScopeRequest {
            client: old::Client {
                id: c.id,
                name: c.name,
                allowed_scopes: c.allowed_scopes,
                grant_types: c.grant_types,
                template: c.template.map(|t| old::ClientTemplate { id: t.id, name: t.name, scopes: t.scopes }),
                owner: c.owner,
                organization_id: c.organization_id,
                metadata: c.metadata,
            },
            user: r.user.map(|u| old::User {
                id: u.id,
                username: u.username,
                name: u.name,
                email: u.email,
                email_verified: u.email_verified,
                company: u.company,
                roles: u.roles,
                organization_id: u.organization_id,
            }),
            organization: r.organization.map(|o| old::Organization {
                id: o.id,
                name: o.name,
                available_roles: o.available_roles,
            }),
            instance: r.instance.map(|a| old::Instance {
                id: a.id,
                organization_id: a.organization_id,
                added_by: a.added_by,
                added_by_roles: a.added_by_roles,
                scopes: a.scopes,
            }),
            roles: r.roles,
            requested_scopes: r.requested_scopes,
            scope_parameter_present: r.scope_parameter_present,
            grant_type: r.grant_type,
            original_scopes: r.original_scopes,
            acr_values: r.acr_values,
            claims_parameter: r.claims_parameter,
        }
    }

    fn grant(grant: Grant) -> Grant {
        grant
    }

    fn denial(d: old::Denial) -> Denial {
        match d {
            old::Denial::InvalidScope(r) => Denial::InvalidScope(r),
            old::Denial::AccessDenied(r) => Denial::AccessDenied(r),
            old::Denial::UnauthorizedClient(r) => Denial::UnauthorizedClient(r),
        }
    }
}
