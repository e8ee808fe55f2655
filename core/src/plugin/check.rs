//! What a component is, told without a server (`portcullis plugin check`): which plugin kind
//! and contract version it implements (the contract's interface it exports), whether it
//! links against the host's linker of that world, and in plain words each import the host
//! does not give.

use wasmtime::component::Component;

use super::engine::PluginEngine;
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
    /// `None` when the host gives it to a world the component implements; otherwise what
    /// it is, and what would give it, in plain words.
    pub missing: Option<String>,
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
    let mut worlds = Vec::new();
    for contract in Contract::ALL {
        for kind in PluginKind::ALL {
            let interface = format!("portcullis:plugin/{}@{}", kind.interface(), contract.version());
            if exports.contains(&interface) {
                let links = linkers.link(&component, kind, contract).map(|_| ());
                worlds.push(World { kind, contract, links });
            }
        }
    }
    let imports = ty
        .imports(&engine.engine)
        .map(|(name, _)| Import { name: name.to_owned(), missing: missing(name, &worlds) })
        .collect();
    Ok(Report { worlds, imports })
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
        "wasi:http" => "outbound HTTP (wasi:http): this server lends plugins no outbound HTTP; no manifest grant \
                        gives it yet"
            .into(),
        p if p.starts_with("wasi:") => format!(
            "WASI ({p}): this server links no WASI interface to plugins, which get everything a call needs as \
             arguments; build the component without it"
        ),
        _ => "not part of any contract this server links".into(),
    })
}
