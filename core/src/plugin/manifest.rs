//! A plugin's manifest: `<name>.toml` beside `<name>.wasm` in the policies directory.

use serde::Deserialize;

/// The contract version this host implements.
pub const CONTRACT: &str = "portcullis:plugin@0.1.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    ScopePolicy,
    ConsentUi,
    Storage,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ScopePolicy => "scope-policy",
            Self::ConsentUi => "consent-ui",
            Self::Storage => "storage",
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    pub name: String,
    pub kind: PluginKind,
    pub contract: String,
    #[serde(default)]
    pub description: String,
    /// Written by `plugins/build.sh`; lets CI see that a committed `.wasm` is stale.
    #[serde(default)]
    pub source_hash: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub grants: Grants,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    pub memory_mb: u64,
    pub deadline_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { memory_mb: 16, deadline_ms: 100 }
    }
}

/// Capabilities beyond the contract. The host grants none of them yet: a manifest that asks
/// for one is refused rather than silently given less than it asked for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    #[serde(default)]
    pub env: Vec<String>,
}

/// The largest memory cap a manifest may ask for.
pub const MAX_MEMORY_MB: u64 = 512;
/// The longest deadline a manifest may ask for.
pub const MAX_DEADLINE_MS: u64 = 30_000;

impl Manifest {
    pub fn parse(text: &str, file_stem: &str) -> Result<Self, String> {
        let manifest: Manifest = toml_from_str(text)?;
        if manifest.name != file_stem {
            return Err(format!("name `{}` differs from the file name `{file_stem}`", manifest.name));
        }
        if manifest.contract != CONTRACT {
            return Err(format!(
                "contract `{}` is not supported (this server implements {CONTRACT})",
                manifest.contract
            ));
        }
        if manifest.limits.memory_mb == 0 || manifest.limits.memory_mb > MAX_MEMORY_MB {
            return Err(format!("limits.memory-mb must be 1..={MAX_MEMORY_MB}"));
        }
        if manifest.limits.deadline_ms == 0 || manifest.limits.deadline_ms > MAX_DEADLINE_MS {
            return Err(format!("limits.deadline-ms must be 1..={MAX_DEADLINE_MS}"));
        }
        if !manifest.grants.env.is_empty() {
            return Err("grants.env: no contract version yet exposes the environment to plugins".into());
        }
        Ok(manifest)
    }
}

fn toml_from_str(text: &str) -> Result<Manifest, String> {
    use figment::Figment;
    use figment::providers::{Format, Toml};
    Figment::from(Toml::string(text)).extract().map_err(|e| e.to_string())
}
