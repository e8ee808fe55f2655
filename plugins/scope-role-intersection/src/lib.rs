//! A scope policy for applications whose scopes are roles (VMware Cloud Partner Navigator):
//! a token's scope is the intersection of three sets,
//!
//! - the application's roles (for an application added to an organization, those it had
//!   when it was added: the host passes them as the client's allowed scopes),
//! - the roles available in the organization: every organization role (`member`,
//!   `provider-administrator`, …), and of the service roles (`service:role`, such as
//!   `vcd:admin`) those the organization has,
//! - the roles of whoever bounds the grant: the user who added the application, or the
//!   user being authorized.
//!
//! A `scope` parameter narrows it further: the requested roles that are in it, in request
//! order, or `invalid_scope` when none is. An empty intersection is `invalid_scope` too
//! (RFC 6749 §5.2): the application gets no role here. No extra claims.

use portcullis_sdk::scope::{Denial, Grant, Guest, ScopeRequest};

struct RoleIntersection;

impl Guest for RoleIntersection {
    fn resolve(request: ScopeRequest) -> Result<Grant, Denial> {
        let available = |role: &str| {
            !role.contains(':')
                || request
                    .organization
                    .as_ref()
                    .is_some_and(|o| o.available_roles.iter().any(|r| r == role))
        };
        let held = |role: &str| request.roles.iter().any(|r| r == role);
        let mut effective: Vec<&String> = Vec::new();
        for role in &request.client.allowed_scopes {
            if available(role) && held(role) && !effective.contains(&role) {
                effective.push(role);
            }
        }
        if effective.is_empty() {
            return Err(Denial::InvalidScope(
                "no role of the application is both available in the organization and held by the user who added it"
                    .into(),
            ));
        }
        if !request.scope_parameter_present {
            return Ok(grant(effective.into_iter().cloned().collect()));
        }
        let mut scopes = Vec::new();
        for s in &request.requested_scopes {
            if effective.contains(&s) && !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        if scopes.is_empty() && !request.requested_scopes.is_empty() {
            return Err(Denial::InvalidScope(format!(
                "none of the requested roles is in the application's effective scope: {}",
                request.requested_scopes.join(", ")
            )));
        }
        Ok(grant(scopes))
    }
}

fn grant(scopes: Vec<String>) -> Grant {
    Grant {
        scopes,
        claims: Vec::new(),
    }
}

portcullis_sdk::export_scope_policy!(RoleIntersection);

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::scope::{Client, Instance, Organization};

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    /// An application with `app` roles, added by a user holding `adder`, to an organization
    /// where the service roles `available` are on.
    fn request(app: &[&str], available: &[&str], adder: &[&str]) -> ScopeRequest {
        ScopeRequest {
            client: Client {
                id: "c".into(),
                name: "App".into(),
                allowed_scopes: v(app),
                grant_types: v(&["client_credentials"]),
                template: None,
                owner: None,
                organization_id: Some("o".into()),
                metadata: "{}".into(),
            },
            user: None,
            organization: Some(Organization {
                id: "o".into(),
                name: "Org".into(),
                available_roles: v(available),
            }),
            instance: Some(Instance {
                id: "i".into(),
                organization_id: "o".into(),
                added_by: "u".into(),
                added_by_roles: v(adder),
                scopes: v(app),
            }),
            roles: v(adder),
            requested_scopes: Vec::new(),
            scope_parameter_present: false,
            grant_type: "client_credentials".into(),
            original_scopes: None,
            acr_values: Vec::new(),
            claims_parameter: None,
            authentication: None,
        }
    }

    fn granted(r: ScopeRequest) -> Vec<String> {
        RoleIntersection::resolve(r)
            .map(|g| g.scopes)
            .unwrap_or_else(|d| panic!("denied: {d:?}"))
    }

    #[test]
    fn intersects_app_organization_and_adder() {
        let r = request(
            &["provider-administrator", "vcd:admin", "vcd:viewer", "nsx:admin"],
            &["vcd:admin", "vcd:viewer"],
            &["provider-developer", "provider-administrator", "vcd:viewer"],
        );
        // nsx:admin is not available in the organization; vcd:admin is not the adder's.
        assert_eq!(granted(r), v(&["provider-administrator", "vcd:viewer"]));
    }

    #[test]
    fn organization_roles_need_no_availability() {
        let r = request(&["member"], &[], &["member", "provider-developer"]);
        assert_eq!(granted(r), v(&["member"]));
    }

    #[test]
    fn a_requested_scope_narrows() {
        let mut r = request(&["member", "vcd:viewer"], &["vcd:viewer"], &["member", "vcd:viewer"]);
        r.scope_parameter_present = true;
        r.requested_scopes = v(&["vcd:viewer", "vcd:admin"]);
        assert_eq!(granted(r), v(&["vcd:viewer"]));
    }

    #[test]
    fn nothing_requested_in_scope_is_invalid_scope() {
        let mut r = request(&["member"], &[], &["member"]);
        r.scope_parameter_present = true;
        r.requested_scopes = v(&["vcd:admin"]);
        assert!(matches!(
            RoleIntersection::resolve(r),
            Err(Denial::InvalidScope(_))
        ));
    }

    #[test]
    fn an_empty_intersection_is_invalid_scope() {
        let r = request(&["vcd:admin"], &["vcd:admin"], &["member"]);
        assert!(matches!(
            RoleIntersection::resolve(r),
            Err(Denial::InvalidScope(_))
        ));
    }
}
