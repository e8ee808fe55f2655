//! The default scope policy: a token gets the scopes it asked for that the client may
//! have (and, for a client created from a template, that the template has too).
//!
//! - On refresh, never more than the original grant had.
//! - No `scope` parameter at all: every scope the client may have.
//! - A `scope` parameter none of whose scopes the client may have: `invalid_scope`.
//! - Otherwise the allowed ones, in request order; the others are dropped silently
//!   (RFC 6749 §3.3: the token response says which scopes were granted).
//!
//! No extra claims.

use portcullis_sdk::scope::{Client, Denial, Grant, Guest, ScopeRequest};

struct ScopeTemplate;

impl Guest for ScopeTemplate {
    fn resolve(request: ScopeRequest) -> Result<Grant, Denial> {
        let ScopeRequest {
            client,
            requested_scopes,
            scope_parameter_present,
            original_scopes,
            ..
        } = request;
        let permitted = |s: &str| {
            permitted(&client, s)
                && original_scopes
                    .as_ref()
                    .is_none_or(|o| o.iter().any(|a| a == s))
        };

        if !scope_parameter_present {
            let mut scopes = Vec::with_capacity(client.allowed_scopes.len());
            for s in &client.allowed_scopes {
                if permitted(s) && !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
            return Ok(Grant {
                scopes,
                claims: Vec::new(),
            });
        }

        if requested_scopes.is_empty() {
            // `scope=` with nothing in it asks for nothing.
            return Ok(Grant {
                scopes: Vec::new(),
                claims: Vec::new(),
            });
        }

        let mut scopes = Vec::with_capacity(requested_scopes.len());
        for s in &requested_scopes {
            if permitted(s) && !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        if scopes.is_empty() {
            return Err(Denial::InvalidScope(refusal(&client, &requested_scopes)));
        }
        Ok(Grant {
            scopes,
            claims: Vec::new(),
        })
    }
}

/// Whether the client may have `scope`: it was registered with it and, when it was
/// created from a template, the template has it.
fn permitted(client: &Client, scope: &str) -> bool {
    client.allowed_scopes.iter().any(|a| a == scope)
        && client
            .template
            .as_ref()
            .is_none_or(|t| t.scopes.iter().any(|a| a == scope))
}

/// "client `name` may not have any of the requested scopes: a, b"
fn refusal(client: &Client, requested: &[String]) -> String {
    let mut reason =
        String::with_capacity(64 + requested.iter().map(|s| s.len() + 2).sum::<usize>());
    reason.push_str("the client `");
    reason.push_str(if client.name.is_empty() {
        &client.id
    } else {
        &client.name
    });
    reason.push_str("` may not have any of the requested scopes: ");
    for (i, s) in requested.iter().enumerate() {
        if i > 0 {
            reason.push_str(", ");
        }
        reason.push_str(s);
    }
    reason
}

portcullis_sdk::export_scope_policy!(ScopeTemplate);

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::scope::ClientTemplate;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn request(requested: &[&str], present: bool, template: Option<&[&str]>) -> ScopeRequest {
        ScopeRequest {
            client: Client {
                id: "c1".into(),
                name: "Demo".into(),
                allowed_scopes: v(&["openid", "profile", "email", "api"]),
                grant_types: v(&["authorization_code"]),
                template: template.map(|t| ClientTemplate {
                    id: "t".into(),
                    name: "T".into(),
                    scopes: v(t),
                }),
                owner: None,
                organization_id: None,
                metadata: "{}".into(),
            },
            user: None,
            organization: None,
            instance: None,
            roles: Vec::new(),
            requested_scopes: v(requested),
            scope_parameter_present: present,
            grant_type: "authorization_code".into(),
            original_scopes: None,
            acr_values: Vec::new(),
            claims_parameter: None,
            authentication: None,
        }
    }

    fn granted(r: ScopeRequest) -> Vec<String> {
        ScopeTemplate::resolve(r)
            .map(|g| g.scopes)
            .unwrap_or_else(|d| panic!("denied: {d:?}"))
    }

    #[test]
    fn intersects_in_request_order() {
        assert_eq!(
            granted(request(&["email", "x", "openid"], true, None)),
            v(&["email", "openid"])
        );
    }

    #[test]
    fn no_scope_parameter_grants_every_allowed_scope() {
        assert_eq!(
            granted(request(&[], false, None)),
            v(&["openid", "profile", "email", "api"])
        );
        assert_eq!(
            granted(request(&[], false, Some(&["api", "openid", "z"]))),
            v(&["openid", "api"])
        );
    }

    #[test]
    fn template_narrows_the_grant() {
        assert_eq!(
            granted(request(
                &["api", "email", "openid"],
                true,
                Some(&["openid", "api"])
            )),
            v(&["api", "openid"])
        );
    }

    #[test]
    fn nothing_allowed_is_invalid_scope() {
        match ScopeTemplate::resolve(request(&["admin", "root"], true, None)) {
            Err(Denial::InvalidScope(reason)) => {
                assert!(reason.contains("admin, root") && reason.contains("Demo"))
            }
            other => panic!("{other:?}"),
        }
        // Allowed by the client but not by its template.
        assert!(matches!(
            ScopeTemplate::resolve(request(&["email"], true, Some(&["openid"]))),
            Err(Denial::InvalidScope(_))
        ));
    }

    #[test]
    fn refresh_never_exceeds_the_original_grant() {
        let mut r = request(&[], false, None);
        r.original_scopes = Some(v(&["email", "openid"]));
        assert_eq!(granted(r), v(&["openid", "email"]));
        let mut r = request(&["api", "email"], true, None);
        r.original_scopes = Some(v(&["email"]));
        assert_eq!(granted(r), v(&["email"]));
    }

    #[test]
    fn empty_scope_parameter_grants_nothing() {
        assert!(granted(request(&[], true, None)).is_empty());
    }
}
