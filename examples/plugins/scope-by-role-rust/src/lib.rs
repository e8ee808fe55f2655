//! scope-by-role, in Rust: each scope asked for is granted when the roles of the grant allow
//! it, by the table below; the access token, the ID token and UserInfo say the user's
//! department, read from the same roles; a request left with no scope is refused, saying why.
//! `scope-by-role-js` and `scope-by-role-py` are the same policy in JavaScript and Python, and
//! all three pass `../scope-by-role.cases.json`.

use portcullis_sdk::scope::{Claim, ClaimTargets, Denial, Grant, Guest, ScopeRequest};

/// Which roles may have each scope: any one of them (none listed: everyone). A scope the
/// table does not name is never granted.
const SCOPES: &[(&str, &[&str])] = &[
    ("openid", &[]),
    ("profile", &[]),
    ("hr:read", &["hr", "hr-admin"]),
    ("hr:write", &["hr-admin"]),
    ("finance:read", &["finance", "auditor"]),
];

/// The department each role belongs to; the user's is that of their first role named here.
const DEPARTMENTS: &[(&str, &str)] = &[
    ("hr", "people"),
    ("hr-admin", "people"),
    ("finance", "finance"),
    ("auditor", "finance"),
];

struct ScopeByRole;

impl Guest for ScopeByRole {
    fn resolve(request: ScopeRequest) -> Result<Grant, Denial> {
        let roles = &request.roles;
        // No `scope` parameter: everything the client may have is asked for.
        let asked = if request.scope_parameter_present {
            &request.requested_scopes
        } else {
            &request.client.allowed_scopes
        };
        let allowed = |scope: &str| {
            SCOPES
                .iter()
                .find(|(name, _)| *name == scope)
                .is_some_and(|(_, needs)| needs.is_empty() || needs.iter().any(|n| roles.iter().any(|r| r == n)))
        };
        let scopes: Vec<String> = asked.iter().filter(|s| allowed(s)).cloned().collect();
        if scopes.is_empty() {
            return Err(Denial::AccessDenied(format!(
                "the roles [{}] allow none of [{}]",
                roles.join(" "),
                asked.join(" ")
            )));
        }
        let department = roles
            .iter()
            .find_map(|role| DEPARTMENTS.iter().find(|(r, _)| r == role).map(|(_, d)| *d));
        let claims = department
            .map(|d| Claim {
                name: "department".into(),
                value: format!("\"{d}\""),
                targets: ClaimTargets::ACCESS_TOKEN | ClaimTargets::ID_TOKEN | ClaimTargets::USERINFO,
            })
            .into_iter()
            .collect();
        Ok(Grant { scopes, claims })
    }
}

portcullis_sdk::export_scope_policy!(ScopeByRole);
