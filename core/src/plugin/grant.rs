//! Asking a grant-type plugin (an extension grant, RFC 6749 §4.5) in the server's own types
//! (each version's records: `contract/`).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Linked, Plugin, PluginError, PluginKind, PolicyHost};
use crate::model::GrantType;

/// One extension grant request, as the token endpoint hands it over.
pub struct GrantAsk<'a> {
    pub grant_type: &'a str,
    pub client_id: &'a str,
    /// The request's parameters without `grant_type` and the client's credentials.
    pub parameters: Vec<(String, String)>,
    pub issuer: &'a str,
    pub token_endpoint: &'a str,
    pub now: i64,
}

/// Whom an extension grant's token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantSubject {
    /// A user of this server, by id or username.
    User(String),
    /// The client itself.
    Client,
    /// A subject the server has no record of.
    Other(String),
}

pub struct GrantAnswer {
    pub subject: GrantSubject,
    pub scopes: Vec<String>,
    /// A credential's identifier never to be accepted twice, and until when.
    pub single_use: Option<(String, i64)>,
}

/// Each maps to the RFC 6749 §5.2 error of the same name.
pub enum GrantRefusal {
    InvalidRequest(String),
    InvalidGrant(String),
    InvalidScope(String),
    UnauthorizedClient(String),
}

impl PolicyHost {
    /// The loaded grant-type plugin answering `grant_type`, by name.
    pub fn grant_plugin_for(&self, grant_type: &str) -> Option<String> {
        self.loaded().values().find(|p| p.grant_types.iter().any(|t| t == grant_type)).map(|p| p.manifest.name.clone())
    }

    /// Every extension grant type the loaded plugins answer, sorted.
    pub fn extension_grant_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.loaded().values().flat_map(|p| p.grant_types.iter().cloned()).collect();
        types.sort();
        types
    }

    /// Runs the grant-type plugin `name` on one request.
    pub fn exchange_grant(
        &self,
        name: &str,
        ask: &GrantAsk<'_>,
    ) -> Result<Result<GrantAnswer, GrantRefusal>, PluginError> {
        let plugin = self.get(PluginKind::GrantType, name)?;
        match &plugin.linked {
            Linked::Grant(grant) => self.call(&plugin, |store| grant.exchange(store, ask, &plugin.manifest.config)),
            _ => Err(PluginError::NotLoaded { kind: PluginKind::GrantType, name: name.to_owned() }),
        }
    }
}

/// The grant types a plugin said it answers, if each is an absolute URI (RFC 6749 §4.5)
/// that names no grant the server implements itself.
pub(super) fn checked_grant_types(types: Vec<String>) -> Result<Vec<String>, String> {
    if types.is_empty() {
        return Err("grant-types() named no grant type".into());
    }
    for t in &types {
        if GrantType::parse(t).is_some() {
            return Err(format!("grant type `{t}` is the server's own"));
        }
        if !GrantType::is_extension(t) {
            return Err(format!("grant type `{t}` is not an absolute URI (RFC 6749 §4.5)"));
        }
    }
    Ok(types)
}

/// A grant type `plugin` answers that another loaded plugin (not an older version of this
/// one) already answers: that plugin's name and the type.
pub(super) fn claimed_elsewhere(loaded: &HashMap<String, Arc<Plugin>>, plugin: &Plugin) -> Option<(String, String)> {
    plugin.grant_types.iter().find_map(|t| {
        loaded
            .values()
            .find(|other| other.manifest.name != plugin.manifest.name && other.grant_types.contains(t))
            .map(|other| (other.manifest.name.clone(), t.clone()))
    })
}
