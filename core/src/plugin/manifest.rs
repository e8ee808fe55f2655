//! A plugin's manifest: `<name>.toml` beside `<name>.wasm` in the policies directory.

use serde::Deserialize;

use crate::limits::{
    DEFAULT_PLUGIN_FAULTS_AFTER, MAX_PLUGIN_DEADLINE_MS, MAX_PLUGIN_FAULTS_AFTER, MAX_PLUGIN_MEMORY_MB,
};

/// The contract versions this host links, the current one first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `portcullis:plugin@0.5.0`: every kind.
    V5,
    /// `portcullis:plugin@0.4.0`: every kind.
    V4,
    /// `portcullis:plugin@0.3.0`: every kind.
    V3,
    /// `portcullis:plugin@0.2.0`: scope, consent and storage plugins.
    V2,
    /// `portcullis:plugin@0.1.0`: scope and consent plugins only.
    V1,
}

impl Contract {
    pub const CURRENT: &str = "portcullis:plugin@0.5.0";

    /// Every version this host links, the current one ([`Self::CURRENT`]) first.
    pub const ALL: [Contract; 5] = [Self::V5, Self::V4, Self::V3, Self::V2, Self::V1];

    /// The version's number, as its package and interface names carry it (`0.5.0`).
    pub fn version(self) -> &'static str {
        match self {
            Self::V5 => "0.5.0",
            Self::V4 => "0.4.0",
            Self::V3 => "0.3.0",
            Self::V2 => "0.2.0",
            Self::V1 => "0.1.0",
        }
    }

    /// Whether the version has the `kv` interface (0.4.0 and later).
    pub fn has_kv(self) -> bool {
        matches!(self, Self::V5 | Self::V4)
    }

    /// The version a manifest's `contract` names (`portcullis:plugin@0.5.0`).
    fn parse(text: &str) -> Option<Self> {
        let version = text.strip_prefix("portcullis:plugin@")?;
        Self::ALL.into_iter().find(|c| c.version() == version)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    ScopePolicy,
    ConsentUi,
    Storage,
    /// An extension grant (RFC 6749 §4.5); contract 0.3.0 and later.
    GrantType,
}

impl PluginKind {
    pub const ALL: [PluginKind; 4] = [Self::ScopePolicy, Self::ConsentUi, Self::Storage, Self::GrantType];

    /// The contract's interface a plugin of this kind exports (`scope`, `consent`, ...).
    pub fn interface(self) -> &'static str {
        match self {
            Self::ScopePolicy => "scope",
            Self::ConsentUi => "consent",
            Self::Storage => "storage",
            Self::GrantType => "grant",
        }
    }

    /// The kind as a manifest names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScopePolicy => "scope-policy",
            Self::ConsentUi => "consent-ui",
            Self::Storage => "storage",
            Self::GrantType => "grant-type",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ManifestFile {
    name: String,
    kind: PluginKind,
    contract: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    source_hash: Option<String>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    grants: Grants,
    #[serde(default)]
    on_fault: OnFault,
    #[serde(default)]
    shadow_of: Option<String>,
    #[serde(default)]
    config: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub kind: PluginKind,
    pub contract: Contract,
    pub description: String,
    /// Written by `plugins/build.sh`; lets CI see that a committed `.wasm` is stale.
    pub source_hash: Option<String>,
    pub limits: Limits,
    pub grants: Grants,
    /// What a fault of the plugin (a trap, a deadline, an exhausted memory) does.
    pub on_fault: OnFault,
    /// A scope policy in shadow mode: the live scope policy it runs beside, on every call of
    /// that one, its answer compared and never used.
    pub shadow_of: Option<String>,
    /// The operator's settings for the plugin (the manifest's `[config]` table) as a JSON
    /// object's text, written once at load and handed as is to every call of the plugins whose
    /// contract takes them (grant types).
    pub config: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    pub memory_mb: u64,
    /// How long one call may run: CPU time for a synchronous call, wall-clock time for a
    /// storage call (`call.rs`).
    pub deadline_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { memory_mb: 16, deadline_ms: 100 }
    }
}

/// Capabilities beyond the contract, each lent only to a plugin whose manifest grants it
/// (`plugin/wasi.rs` refuses a plugin that imports one without its grant). A manifest
/// that asks for one the host cannot grant is refused rather than silently given less than it
/// asked for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    #[serde(default)]
    pub env: Vec<String>,
    /// The origins (`https://host[:port]`) the plugin may send HTTP requests to through
    /// `wasi:http/outgoing-handler`; checked at load, kept as each origin's serialization.
    #[serde(default)]
    pub http: Vec<String>,
    /// The plugin's own key-value cache (`portcullis:plugin/kv`).
    #[serde(default)]
    pub kv: bool,
}

/// The manifest's `[on-fault]` table: when the plugin counts as unhealthy, and which plugin
/// answers a call it faulted on.
///
/// Every fault counts and a call it answers (whatever it answers) sets the count back to
/// zero, as does a new version of the plugin. At `after` faults in a row the plugin is
/// unhealthy: `/health/ready` names it in a degraded part and `portcullis_plugin_healthy` is
/// 0. What one request gets does not depend on that state: a scope policy's fault is a
/// denial of the grant from the first fault, or, with a `fallback`, the same call answered by
/// the fallback (`plugin/scope.rs`, `plugin/consent.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OnFault {
    /// Faults in a row before the plugin is unhealthy.
    #[serde(default = "default_faults_after")]
    pub after: u32,
    /// The plugin, of the same kind, that answers a call this one faulted on (scope policies
    /// and consent UIs only). Without one the fault is a denial (scope policies) or the
    /// request's error (other kinds).
    #[serde(default)]
    pub fallback: Option<String>,
}

impl Default for OnFault {
    fn default() -> Self {
        Self { after: DEFAULT_PLUGIN_FAULTS_AFTER, fallback: None }
    }
}

fn default_faults_after() -> u32 {
    DEFAULT_PLUGIN_FAULTS_AFTER
}

impl Manifest {
    pub fn parse(text: &str, file_stem: &str) -> Result<Self, String> {
        let file: ManifestFile = toml_from_str(text)?;
        if file.name != file_stem {
            return Err(format!("name `{}` differs from the file name `{file_stem}`", file.name));
        }
        let contract = Contract::parse(&file.contract).ok_or_else(|| {
            format!(
                "contract `{}` is not supported (this server links portcullis:plugin@0.5.0, @0.4.0, @0.3.0 and @0.2.0 \
                 and, for scope and consent plugins, portcullis:plugin@0.1.0)",
                file.contract
            )
        })?;
        if !file.config.is_empty() && file.kind != PluginKind::GrantType {
            return Err(format!("[config]: a {} plugin is given no configuration (grant-type plugins are)", file.kind));
        }
        let mut manifest = Manifest {
            name: file.name,
            kind: file.kind,
            contract,
            description: file.description,
            source_hash: file.source_hash,
            limits: file.limits,
            grants: file.grants,
            on_fault: file.on_fault,
            shadow_of: file.shadow_of,
            config: serde_json::Value::Object(file.config).to_string(),
        };
        if manifest.limits.memory_mb == 0 || manifest.limits.memory_mb > MAX_PLUGIN_MEMORY_MB {
            return Err(format!("limits.memory-mb must be 1..={MAX_PLUGIN_MEMORY_MB}"));
        }
        if manifest.limits.deadline_ms == 0 || manifest.limits.deadline_ms > MAX_PLUGIN_DEADLINE_MS {
            return Err(format!("limits.deadline-ms must be 1..={MAX_PLUGIN_DEADLINE_MS}"));
        }
        if manifest.on_fault.after == 0 || manifest.on_fault.after > MAX_PLUGIN_FAULTS_AFTER {
            return Err(format!("on-fault.after must be 1..={MAX_PLUGIN_FAULTS_AFTER}"));
        }
        if let Some(fallback) = &manifest.on_fault.fallback {
            if !matches!(manifest.kind, PluginKind::ScopePolicy | PluginKind::ConsentUi) {
                return Err(format!(
                    "on-fault.fallback: a {} plugin has none (scope-policy and consent-ui plugins do)",
                    manifest.kind
                ));
            }
            if fallback == &manifest.name {
                return Err("on-fault.fallback names the plugin itself".into());
            }
            if fallback.is_empty() {
                return Err("on-fault.fallback names no plugin".into());
            }
        }
        if let Some(live) = &manifest.shadow_of {
            if manifest.kind != PluginKind::ScopePolicy {
                return Err(format!("shadow-of: a {} plugin cannot shadow one (scope policies can)", manifest.kind));
            }
            if live == &manifest.name || live.is_empty() {
                return Err("shadow-of must name another scope policy".into());
            }
        }
        if !manifest.grants.env.is_empty() {
            return Err("grants.env: no contract version yet exposes the environment to plugins".into());
        }
        manifest.grants.http = super::http::origins(&manifest.grants.http, manifest.kind)?;
        if manifest.grants.kv
            && !matches!(manifest.kind, PluginKind::ScopePolicy | PluginKind::ConsentUi | PluginKind::GrantType)
        {
            return Err(format!("grants.kv: a {} plugin is lent no key-value cache", manifest.kind));
        }
        if manifest.grants.kv && !manifest.contract.has_kv() {
            return Err("grants.kv: the key-value cache is part of portcullis:plugin@0.4.0 and later".into());
        }
        Ok(manifest)
    }
}

fn toml_from_str(text: &str) -> Result<ManifestFile, String> {
    use figment::Figment;
    use figment::providers::{Format, Toml};
    Figment::from(Toml::string(text)).extract().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::Contract;

    #[test]
    fn every_version_is_read_back_from_its_name_and_the_current_one_is_the_first() {
        for contract in Contract::ALL {
            assert_eq!(Contract::parse(&format!("portcullis:plugin@{}", contract.version())), Some(contract));
        }
        assert_eq!(Contract::parse(Contract::CURRENT), Some(Contract::ALL[0]));
        assert_eq!(Contract::parse("portcullis:plugin@0.6.0"), None);
        assert_eq!(Contract::parse("0.5.0"), None);
    }
}
