//! `portcullis plugin new`: a plugin project in a new directory, anywhere: the contract's
//! WIT, a plugin that compiles and does something visible, its manifest, a case file for
//! `portcullis plugin test` (scope policies), and a README of four lines. In Rust for every
//! kind, in JavaScript and Python for scope policies, consent UIs and extension grants.
//! The Rust SDK is a dependency by version (or, with `sdk_path`, by path, as inside this
//! repository); `portcullis plugin build` (`plugin_build.rs`) builds any of them.

use std::path::{Path, PathBuf};

use crate::limits::MAX_SCAFFOLD_NAME_BYTES;
use crate::plugin::{Contract, PluginKind};
use crate::plugin_build::{COMPONENTIZE_JS_VERSION, Language};

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

/// What every project has, by its path in the project.
const COMMON: [(&str, &str); 2] = [
    ("README.md", include_str!("../scaffold/README.md.in")),
    ("{{name}}.toml", include_str!("../scaffold/manifest.toml.in")),
];

/// A scope policy's cases, in every language (its answers are the same).
const CASES: (&str, &str) = ("cases.json", include_str!("../scaffold/cases.json.in"));

/// The plugin's own source, by kind and language: the file it goes to and its text.
const SOURCES: [(PluginKind, Language, &str, &str); 10] = [
    (PluginKind::ScopePolicy, Language::Rust, "src/lib.rs", include_str!("../scaffold/rust/scope.rs.in")),
    (PluginKind::ConsentUi, Language::Rust, "src/lib.rs", include_str!("../scaffold/rust/consent.rs.in")),
    (PluginKind::Storage, Language::Rust, "src/lib.rs", include_str!("../scaffold/rust/storage.rs.in")),
    (PluginKind::GrantType, Language::Rust, "src/lib.rs", include_str!("../scaffold/rust/grant.rs.in")),
    (PluginKind::ScopePolicy, Language::JavaScript, "plugin.js", include_str!("../scaffold/js/scope.js.in")),
    (PluginKind::ConsentUi, Language::JavaScript, "plugin.js", include_str!("../scaffold/js/consent.js.in")),
    (PluginKind::GrantType, Language::JavaScript, "plugin.js", include_str!("../scaffold/js/grant.js.in")),
    (PluginKind::ScopePolicy, Language::Python, "app.py", include_str!("../scaffold/python/scope.py.in")),
    (PluginKind::ConsentUi, Language::Python, "app.py", include_str!("../scaffold/python/consent.py.in")),
    (PluginKind::GrantType, Language::Python, "app.py", include_str!("../scaffold/python/grant.py.in")),
];

/// The language's project file, beside the source.
fn project_file(lang: Language) -> Option<(&'static str, &'static str)> {
    match lang {
        Language::Rust => Some(("Cargo.toml", include_str!("../scaffold/rust/Cargo.toml.in"))),
        Language::JavaScript => Some(("package.json", include_str!("../scaffold/js/package.json.in"))),
        Language::Python => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` is not a plugin name: lowercase letters, digits and `-`, starting with a letter, \
         at most {MAX_SCAFFOLD_NAME_BYTES} bytes"
    )]
    Name(String),
    #[error("`{0}` is not a language with scaffolds: --lang {list}", list = Language::NAMES.join(", "))]
    Language(String),
    #[error("a {kind} plugin in {lang} has no scaffold; there are: {}", available())]
    Unsupported { kind: PluginKind, lang: Language },
    #[error("{0} exists already: the project goes into a new directory")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Every kind and language there is a scaffold of (`rust: scope-policy, ...; js: ...`).
fn available() -> String {
    let langs = [Language::Rust, Language::JavaScript, Language::Python];
    let kinds = |lang| SOURCES.iter().filter(|s| s.1 == lang).map(|s| s.0.as_str()).collect::<Vec<_>>().join(", ");
    langs.map(|lang| format!("--lang {lang}: {}", kinds(lang))).join("; ")
}

/// What a kind is, in a README's and a manifest's words, and the limits its manifest starts with.
fn describe(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::ScopePolicy => "A Portcullis scope policy",
        PluginKind::ConsentUi => "A Portcullis consent UI",
        PluginKind::Storage => "A Portcullis storage backend",
        PluginKind::GrantType => "A Portcullis extension grant",
    }
}

/// The manifest's `memory-mb` and `deadline-ms` to start with: a language runtime inside the
/// component (JavaScript's, Python's) needs more of both than Rust.
fn limits(lang: Language) -> (u32, u32) {
    match lang {
        Language::Rust => (16, 100),
        Language::JavaScript => (128, 500),
        Language::Python => (128, 1000),
    }
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
    let lang = Language::parse(lang).ok_or_else(|| ScaffoldError::Language(lang.to_owned()))?;
    let (_, _, source, text) =
        SOURCES.iter().find(|s| (s.0, s.1) == (kind, lang)).ok_or(ScaffoldError::Unsupported { kind, lang })?;
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir.to_path_buf()));
    }
    let version = Contract::ALL[0].version();
    let sdk = match sdk_path {
        Some(path) => format!("version = \"{version}\", path = {:?}, ", path.display().to_string()),
        None => format!("version = \"{version}\", "),
    };
    let (memory, deadline) = limits(lang);
    let test = if kind == PluginKind::ScopePolicy {
        "`portcullis plugin test {{name}}.wasm cases.json` asks it each case of `cases.json`"
    } else {
        "`portcullis plugin check {{name}}.wasm` says whether a server would load it (`plugin test` runs scope policies only)"
    };
    let needs = match lang {
        Language::Rust => ", with a wasm32 Rust toolchain",
        Language::JavaScript => ", with node and npm",
        Language::Python => ", with componentize-py",
    };
    let fill = |text: &str| {
        text.replace("{{test}}", test)
            .replace("{{name}}", name)
            .replace("{{kind}}", kind.as_str())
            .replace("{{contract}}", Contract::CURRENT)
            .replace("{{description}}", describe(kind))
            .replace("{{language}}", lang.title())
            .replace("{{source}}", source)
            .replace("{{needs}}", needs)
            .replace("{{memory}}", &memory.to_string())
            .replace("{{deadline}}", &deadline.to_string())
            .replace("{{sdk}}", &sdk)
            .replace("{{feature}}", kind.interface())
            .replace("{{componentize_js}}", COMPONENTIZE_JS_VERSION)
    };
    let files = COMMON
        .into_iter()
        .chain((kind == PluginKind::ScopePolicy).then_some(CASES))
        .chain(project_file(lang))
        .chain([(*source, *text)])
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
