//! `portcullis plugin new`: a plugin project in a new directory, anywhere: the contract's
//! WIT, a policy that compiles and does something visible, its manifest, a case file for
//! `portcullis plugin test`, and a README of four lines. The Rust SDK is a dependency by
//! version (or, with `sdk_path`, by path, as inside this repository).

use std::path::{Path, PathBuf};

use crate::limits::MAX_SCAFFOLD_NAME_BYTES;
use crate::plugin::{Contract, PluginKind};

/// The contract's WIT, as the project gets it.
const WIT: [(&str, &str); 8] = [
    ("portcullis.wit", include_str!("../../sdk/wit/portcullis.wit")),
    ("log.wit", include_str!("../../sdk/wit/log.wit")),
    ("scope.wit", include_str!("../../sdk/wit/scope.wit")),
    ("consent.wit", include_str!("../../sdk/wit/consent.wit")),
    ("database.wit", include_str!("../../sdk/wit/database.wit")),
    ("storage.wit", include_str!("../../sdk/wit/storage.wit")),
    ("grant.wit", include_str!("../../sdk/wit/grant.wit")),
    ("kv.wit", include_str!("../../sdk/wit/kv.wit")),
];

/// A Rust scope policy's files, by their path in the project.
const RUST_SCOPE: [(&str, &str); 5] = [
    ("Cargo.toml", include_str!("../scaffold/rust/Cargo.toml.in")),
    ("src/lib.rs", include_str!("../scaffold/rust/src/lib.rs.in")),
    ("README.md", include_str!("../scaffold/rust/README.md.in")),
    ("cases.json", include_str!("../scaffold/rust/cases.json.in")),
    ("{{name}}.toml", include_str!("../scaffold/rust/manifest.toml.in")),
];

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` is not a plugin name: lowercase letters, digits and `-`, starting with a letter, \
         at most {MAX_SCAFFOLD_NAME_BYTES} bytes"
    )]
    Name(String),
    #[error("a {kind} plugin in {lang} has no scaffold yet: `--lang rust` makes a scope policy")]
    Unsupported { kind: PluginKind, lang: String },
    #[error("{0} exists already: the project goes into a new directory")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes a new `kind` plugin named `name` in `lang` into `dir` (which must not exist);
/// returns the files written.
pub fn new_plugin(
    kind: PluginKind,
    name: &str,
    lang: &str,
    dir: &Path,
    sdk_path: Option<&Path>,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    let valid = name.len() <= MAX_SCAFFOLD_NAME_BYTES
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(ScaffoldError::Name(name.to_owned()));
    }
    if (kind, lang) != (PluginKind::ScopePolicy, "rust") {
        return Err(ScaffoldError::Unsupported { kind, lang: lang.to_owned() });
    }
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir.to_path_buf()));
    }
    let version = Contract::ALL[0].version();
    let sdk = match sdk_path {
        Some(path) => format!("version = \"{version}\", path = {:?}, ", path.display().to_string()),
        None => format!("version = \"{version}\", "),
    };
    let fill =
        |text: &str| text.replace("{{name}}", name).replace("{{sdk}}", &sdk).replace("{{contract}}", Contract::CURRENT);
    let files = RUST_SCOPE
        .iter()
        .map(|(path, text)| (fill(path), fill(text)))
        .chain(WIT.iter().map(|(path, text)| (format!("wit/{path}"), (*text).to_owned())));
    let mut written = Vec::new();
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ScaffoldError::Write { path: parent.into(), source })?;
        }
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Write { path: path.clone(), source })?;
        written.push(path);
    }
    Ok(written)
}
