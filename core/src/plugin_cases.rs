//! A scope policy's own unit test, with no server and no database (`portcullis plugin test
//! FILE CASES`): each case describes one grant (the client, the user and their roles, the
//! organization, the requested scopes, the grant type, ...) and the answer expected of the
//! policy; the policy is loaded into a plugin host of its own and asked each case.
//!
//! The cases file is JSON: `{"cases": [{"name": …, "client": {…}, "user": {…}, "requested":
//! […], "expect": {"scopes": […], "claims": {…}} or {"denied": "access_denied"}}, …]}`. With
//! `--update`, each case's `expect` is written from what the policy answered.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{Client, ClientDocument, Organization, User, UserDocument};
use crate::plugin::scope::{Ask, PolicyDenial, ScopeInput};
use crate::plugin::{Defaults, PluginKind, PolicyHost};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cases {
    pub cases: Vec<Case>,
}

/// One grant the policy is asked about, and what it should answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default = "authorization_code")]
    pub grant_type: String,
    pub client: CaseClient,
    /// None: the client asks for itself (client credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<CaseUser>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<CaseOrganization>,
    #[serde(default)]
    pub requested: Vec<String>,
    /// Whether the request had a `scope` parameter (default: when `requested` is not empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_parameter_present: Option<bool>,
    /// On refresh: the original grant's scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acr_values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

fn authorization_code() -> String {
    "authorization_code".into()
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseClient {
    #[serde(default = "client_id")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// The scopes the client may be granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

fn client_id() -> String {
    "client".into()
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseUser {
    #[serde(default = "user_id")]
    pub id: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
}

fn user_id() -> String {
    "user".into()
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseOrganization {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub available_roles: Vec<String>,
}

/// What the policy answers: scopes (and claims, by name, their values as JSON), or a denial
/// named by its OAuth error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, serde_json::Value>,
    /// `invalid_scope`, `access_denied` or `unauthorized_client`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied: Option<String>,
}

/// One case's outcome.
pub struct Outcome {
    pub name: String,
    pub answered: Expect,
    /// What the case expected before the run (none: nothing yet).
    pub expected: Option<Expect>,
    /// Whether the answer is the one expected.
    pub agrees: bool,
}

/// Loads the policy at `wasm` (its manifest beside it, or none: it is taken for a scope
/// policy of the contract it exports) into a host of its own and asks it every case.
pub async fn run(wasm_path: &Path, cases: &mut Cases, update: bool) -> anyhow::Result<Vec<Outcome>> {
    let wasm = std::fs::read(wasm_path).map_err(|e| anyhow::anyhow!("{}: {e}", wasm_path.display()))?;
    let stem = wasm_path.file_stem().and_then(|s| s.to_str()).unwrap_or("policy").to_owned();
    let manifest_path = wasm_path.with_extension("toml");
    let manifest = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(_) => {
            let report = crate::plugin::check::check(&wasm).map_err(|e| anyhow::anyhow!("{e}"))?;
            let world =
                report.worlds.iter().find(|w| w.kind == PluginKind::ScopePolicy && w.links.is_ok()).ok_or_else(
                    || anyhow::anyhow!("{} is not a scope policy this server links", wasm_path.display()),
                )?;
            format!(
                "name = {stem:?}\nkind = \"scope-policy\"\ncontract = \"portcullis:plugin@{}\"\n",
                world.contract.version()
            )
        }
    };
    let database = crate::plugin::database::Database::connect("sqlite::memory:", 1, std::time::Duration::from_secs(1))
        .await
        .map_err(|e| anyhow::anyhow!("an in-memory database for the plugin host: {e}"))?;
    let defaults = Defaults { storage: String::new(), scope: stem.clone(), consent: String::new() };
    let host: Arc<PolicyHost> = PolicyHost::new(database, defaults, None)?;
    let plugin = host.prepare(&manifest, &stem, &wasm).map_err(|e| anyhow::anyhow!("{}: {e}", wasm_path.display()))?;
    if plugin.manifest.kind != PluginKind::ScopePolicy {
        anyhow::bail!("{} is a {} plugin; only scope policies have cases", wasm_path.display(), plugin.manifest.kind);
    }
    host.install(plugin).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut outcomes = Vec::new();
    for case in &mut cases.cases {
        let answered = ask(&host, &stem, case)?;
        let expected = case.expect.clone();
        let agrees = expected.as_ref().is_some_and(|e| agrees(e, &answered));
        if update {
            case.expect = Some(answered.clone());
        }
        outcomes.push(Outcome { name: case.name.clone(), answered, expected, agrees });
    }
    Ok(outcomes)
}

/// Whether the answer is what was expected: the same scopes in any order, the same claims,
/// the same denial.
fn agrees(expected: &Expect, answered: &Expect) -> bool {
    let sorted = |s: &Option<Vec<String>>| {
        s.clone().map(|mut s| {
            s.sort();
            s
        })
    };
    sorted(&expected.scopes) == sorted(&answered.scopes)
        && expected.claims == answered.claims
        && expected.denied == answered.denied
}

fn ask(host: &PolicyHost, policy: &str, case: &Case) -> anyhow::Result<Expect> {
    let client = Client {
        id: case.client.id.clone(),
        secret_hash: None,
        organization_id: case.client.organization_id.clone(),
        created_at: 0,
        doc: ClientDocument {
            name: case.client.name.clone(),
            scopes: case.client.scopes.clone(),
            grant_types: case.client.grant_types.clone(),
            owner: case.client.owner.clone(),
            metadata: case.client.metadata.clone(),
            ..Default::default()
        },
    };
    let user = case.user.as_ref().map(|u| User {
        id: u.id.clone(),
        username: u.username.clone(),
        password_hash: String::new(),
        created_at: 0,
        doc: UserDocument {
            email: u.email.clone(),
            email_verified: u.email_verified,
            name: u.name.clone(),
            company: u.company.clone(),
            roles: u.roles.clone(),
            organization_id: u.organization_id.clone(),
            ..Default::default()
        },
    });
    let organization = case.organization.as_ref().map(|o| Organization {
        id: o.id.clone(),
        name: o.name.clone(),
        parent_id: None,
        available_roles: o.available_roles.clone(),
        consent_ui: None,
        created_at: 0,
    });
    let roles = user.as_ref().map(|u| u.doc.roles.clone()).unwrap_or_default();
    let present = case.scope_parameter_present.unwrap_or(!case.requested.is_empty());
    let mut ask = Ask::new(&case.grant_type, user.as_ref(), &case.requested, present).acr_values(&case.acr_values);
    if let Some(original) = &case.original_scopes {
        ask = ask.within(original);
    }
    let input = ScopeInput {
        client: &client,
        allowed_scopes: &client.doc.scopes,
        template: None,
        organization: organization.as_ref(),
        instance: None,
        user_roles: &roles,
        authentication: None,
        ask,
    };
    let answer = host.resolve_scope(policy, &input).map_err(|e| anyhow::anyhow!("case `{}`: {e}", case.name))?;
    Ok(match answer {
        Ok(grant) => Expect {
            scopes: Some(grant.scopes),
            claims: grant
                .claims
                .into_iter()
                .map(|c| {
                    let value = serde_json::from_str(&c.value).unwrap_or(serde_json::Value::String(c.value));
                    (c.name, value)
                })
                .collect(),
            denied: None,
        },
        Err(denial) => Expect {
            scopes: None,
            claims: BTreeMap::new(),
            denied: Some(
                match denial {
                    PolicyDenial::InvalidScope(_) => "invalid_scope",
                    PolicyDenial::AccessDenied(_) => "access_denied",
                    PolicyDenial::UnauthorizedClient(_) => "unauthorized_client",
                    PolicyDenial::StepUp(_) => "step_up",
                }
                .into(),
            ),
        },
    })
}
