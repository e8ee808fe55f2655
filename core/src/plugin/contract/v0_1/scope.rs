//! The scope interface of 0.1.0: a request without the client's owner, the user's details
//! beyond their roles, the instance, the refresh ceiling, `acr_values` and `claims`; a claim
//! that goes to the access token, and to the ID token when it says so.

use crate::plugin::contract::v0_4::scope::{Records as V4, old as v4};
use crate::plugin::contract::v0_5::scope::{Claim, ClaimTargets, Denial, Grant, ScopeRecords, ScopeRequest};

bindings!("../sdk/wit/0.1.0", "scope-policy-plugin");

use bindings::exports::portcullis::plugin::scope as old;

pub(in crate::plugin) struct Records;

impl ScopeRecords for Records {
    type Request = old::ScopeRequest;
    type Grant = old::Grant;
    /// 0.4.0's, the same since 0.1.0.
    type Denial = v4::Denial;

    fn request(r: ScopeRequest) -> old::ScopeRequest {
        let c = r.client;
        old::ScopeRequest {
            client: old::Client {
                id: c.id,
                name: c.name,
                allowed_scopes: c.allowed_scopes,
                grant_types: c.grant_types,
                template: c.template.map(|t| old::ClientTemplate { id: t.id, name: t.name, scopes: t.scopes }),
                organization_id: c.organization_id,
                metadata: c.metadata,
            },
            user: r.user.map(|u| old::User {
                id: u.id,
                username: u.username,
                roles: u.roles,
                organization_id: u.organization_id,
            }),
            organization: r.organization.map(|o| old::Organization {
                id: o.id,
                name: o.name,
                available_roles: o.available_roles,
            }),
            roles: r.roles,
            requested_scopes: r.requested_scopes,
            scope_parameter_present: r.scope_parameter_present,
            grant_type: r.grant_type,
        }
    }

    fn grant(g: old::Grant) -> Grant {
        let claims = g.claims.into_iter().map(claim).collect();
        Grant { scopes: g.scopes, claims }
    }

    fn denial(d: v4::Denial) -> Denial {
        V4::denial(d)
    }
}

/// A 0.1.0 claim went to the access token, and to the ID token when it said so.
fn claim(c: old::Claim) -> Claim {
    let targets =
        if c.id_token { ClaimTargets::ACCESS_TOKEN | ClaimTargets::ID_TOKEN } else { ClaimTargets::ACCESS_TOKEN };
    Claim { name: c.name, value: c.value, targets }
}
