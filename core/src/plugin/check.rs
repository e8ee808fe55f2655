//! What a component is, told without a server (`portcullis plugin check`): which plugin kind
//! and contract version it implements (the contract's interface it exports), whether it
//! links against the host's linker of that world, and in plain words each import the host
//! does not give. WASI counts as given (granting nothing); outbound HTTP and the key-value
//! cache link as if the manifest granted them, and the plain words say which grant each needs.

use wasmtime::component::Component;

use super::engine::PluginEngine;
use super::manifest::Grants;
use super::wasi::{self, Capability, Needs};
use super::{Contract, Linkers, PluginKind};

/// The verdict on one component.
pub struct Report {
    /// Each world whose interface the component exports, and whether it links.
    pub worlds: Vec<World>,
    /// What the component imports, in its order.
    pub imports: Vec<Import>,
}

/// A world the component exports the interface of.
pub struct World {
    pub kind: PluginKind,
    pub contract: Contract,
    /// `Err` says why the host would refuse it.
    pub links: Result<(), String>,
}

pub struct Import {
    /// The import's name (`portcullis:plugin/log@0.4.0`, `wasi:io/poll@0.2.0`, ...).
    pub name: String,
    /// `None` when the host gives it to a world the component implements (a capability only
    /// with the manifest's grant, which `grant` names); otherwise what it is, and what would
    /// give it, in plain words.
    pub missing: Option<String>,
    /// The manifest's grant it needs, in plain words, when it needs one.
    pub grant: Option<String>,
}

impl Report {
    /// Whether the server would load the component as one of the worlds it implements.
    pub fn loads(&self) -> bool {
        self.worlds.iter().any(|w| w.links.is_ok())
    }
}

/// Compiles `wasm` (a component) and checks it against every world of every contract version
/// the host links.
pub fn check(wasm: &[u8]) -> Result<Report, String> {
    let engine = PluginEngine::new(None).map_err(|e| format!("the plugin engine: {e:#}"))?;
    let linkers = Linkers::new(&engine.engine).map_err(|e| format!("the host's linkers: {e:#}"))?;
    let component =
        Component::new(&engine.engine, wasm).map_err(|e| format!("not a component this host compiles: {e:#}"))?;
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(&engine.engine).map(|(name, _)| name.to_owned()).collect();
    let needs = Needs::of(&component, &engine.engine);
    let mut worlds = Vec::new();
    for contract in Contract::ALL {
        for kind in PluginKind::ALL {
            let interface = format!("portcullis:plugin/{}@{}", kind.interface(), contract.version());
            if exports.contains(&interface) {
                let granted = Grants { http: vec!["https://example.com".into()], kv: true, ..Grants::default() };
                let imports = ty.imports(&engine.engine).map(|(name, _)| name.to_owned()).collect::<Vec<_>>();
                let links = match imports.iter().find_map(|i| wasi::refusal(i, kind, &granted)) {
                    Some(refused) => Err(refused),
                    None => linkers.link(&component, kind, contract, needs).map(|_| ()),
                };
                worlds.push(World { kind, contract, links });
            }
        }
    }
    let imports = ty
        .imports(&engine.engine)
        .map(|(name, _)| Import { name: name.to_owned(), missing: missing(name, &worlds), grant: grant(name) })
        .collect();
    Ok(Report { worlds, imports })
}

/// Why the server would refuse the component with `manifest`: an import its grants do not
/// allow, named with the grant that would.
pub fn refused(report: &Report, manifest: &super::Manifest) -> Option<String> {
    let refused: Vec<String> =
        report.imports.iter().filter_map(|i| wasi::refusal(&i.name, manifest.kind, &manifest.grants)).collect();
    (!refused.is_empty()).then(|| refused.join("; "))
}

/// The manifest's grant `import` needs, in plain words, if it needs one.
fn grant(import: &str) -> Option<String> {
    match wasi::capability(import)? {
        Capability::Wasi => None,
        Capability::Http => Some(
            "outbound HTTP (wasi:http/outgoing-handler): only with `http = [\"https://...\"]` (the origins it may \
             reach) under the manifest's [grants]"
                .into(),
        ),
        Capability::Kv => Some("the key-value cache: only with `kv = true` under the manifest's [grants]".into()),
    }
}

/// What the host lacks to give `import` to the worlds the component implements, if anything.
fn missing(import: &str, worlds: &[World]) -> Option<String> {
    let given_to = |interface: &str, kinds: &[PluginKind]| {
        worlds.iter().any(|w| {
            kinds.contains(&w.kind) && import == format!("portcullis:plugin/{interface}@{}", w.contract.version())
        })
    };
    if given_to("log", &PluginKind::ALL) || given_to("database", &[PluginKind::Storage]) {
        return None;
    }
    let lent_to = [PluginKind::ScopePolicy, PluginKind::ConsentUi, PluginKind::GrantType];
    let lendable = worlds.iter().any(|w| lent_to.contains(&w.kind));
    match wasi::capability(import) {
        Some(Capability::Wasi | Capability::Http) if lendable => return None,
        Some(Capability::Kv) if worlds.iter().any(|w| lent_to.contains(&w.kind) && w.contract.has_kv()) => {
            return None;
        }
        _ => {}
    }
    let (package, _) = import.split_once('/').unwrap_or((import, ""));
    Some(match package {
        "portcullis:plugin" if import.starts_with("portcullis:plugin/database@") => {
            "the database: only a storage plugin (kind = \"storage\") is lent it, of the same contract version".into()
        }
        "portcullis:plugin" => {
            "an interface of the contract that no world it implements imports, or of another contract version than \
             the one it exports"
                .into()
        }
        "wasi:http" => "outbound HTTP (wasi:http): lent to scope, consent and grant-type plugins whose manifest \
                        grants it (`http = [\"https://...\"]` under [grants]), never to storage plugins"
            .into(),
        p if p.starts_with("wasi:") => format!(
            "WASI ({p}): linked to scope, consent and grant-type plugins (granting nothing), never to storage \
             plugins; build the component without it"
        ),
        _ => "not part of any contract this server links".into(),
    })
}
