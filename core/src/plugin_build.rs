//! `portcullis plugin build [DIR]`: a plugin project (what `portcullis plugin new` writes, or
//! any project laid out the same way) built into `<name>.wasm`, a component, and `<name>.toml`,
//! its manifest with the `source-hash` of the project's sources.
//!
//! The language is read from the project: a `Cargo.toml` is Rust, a `package.json`
//! JavaScript, an `app.py` (or a `pyproject.toml`) Python. Each is built with what the machine
//! has, and a missing tool is named with the commands that install it:
//!
//! - Rust: `cargo build --release --target wasm32-unknown-unknown`, with rustup's wasm target
//!   when it is installed, otherwise Debian's `rustc` building std from its sources
//!   (`-Zbuild-std`, linked with rustup's `rust-lld`); the core module is then made a component
//!   in-process (`portcullis_componentize`). The target directory is a cache shared by every
//!   project (`PORTCULLIS_PLUGIN_TARGET_DIR`, by default `<cache>/plugin-target`).
//! - JavaScript: `@bytecodealliance/componentize-js` from the project's `node_modules`, or
//!   from a cache directory it is installed into with npm (`PORTCULLIS_NPM_CACHE_DIR`, by
//!   default `<cache>/npm`), against the project's WIT, with its optional features (stdio,
//!   clocks, random, HTTP) off.
//! - Python: `componentize-py` from a virtual environment given (`--python-venv`,
//!   `PORTCULLIS_PYTHON_VENV`), from `PATH`, or from `<cache>/python`, against the project's
//!   WIT. The component imports WASI 0.2, which the host links granting nothing (`print`
//!   reaches the server's log at debug level; clocks and randomness work; files, the
//!   environment and sockets are empty or refused).
//!
//! `<cache>` is `PORTCULLIS_CACHE_DIR`, by default `~/.cache/portcullis`.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use sha2::{Digest, Sha256};

use crate::plugin::Manifest;

/// The componentize-js a JavaScript project is built with (and its scaffold names).
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
/// The componentize-py the install hint names.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// A language plugin projects are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    JavaScript,
    Python,
}

impl Language {
    /// The names `--lang` takes.
    pub const NAMES: [&str; 3] = ["rust", "js", "python"];

    /// The language `--lang` names (`rust`, `js` or `javascript`, `python` or `py`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "rust" => Some(Self::Rust),
            "js" | "javascript" => Some(Self::JavaScript),
            "python" | "py" => Some(Self::Python),
            _ => None,
        }
    }

    /// The name `--lang` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::JavaScript => "js",
            Self::Python => "python",
        }
    }

    /// The language's name in prose.
    pub fn title(self) -> &'static str {
        match self {
            Self::Rust => "Rust",
            Self::JavaScript => "JavaScript",
            Self::Python => "Python",
        }
    }

    /// The language of the project in `dir`, by its project file.
    pub fn of_project(dir: &Path) -> Option<Self> {
        if dir.join("Cargo.toml").is_file() {
            Some(Self::Rust)
        } else if dir.join("package.json").is_file() {
            Some(Self::JavaScript)
        } else if dir.join(PYTHON_APP).is_file() || dir.join("pyproject.toml").is_file() {
            Some(Self::Python)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Python module a project's component is built from.
const PYTHON_APP: &str = "app.py";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "{0}: no plugin project: a Cargo.toml (Rust), a package.json (JavaScript) or an app.py (Python) \
         (`portcullis plugin new` writes one)"
    )]
    NoProject(PathBuf),
    #[error(
        "{0}: no manifest: a NAME.toml with the plugin's name, kind and contract (`portcullis plugin new` writes one)"
    )]
    NoManifest(PathBuf),
    #[error("{dir}: more than one manifest ({names}): keep one NAME.toml per project")]
    ManyManifests { dir: PathBuf, names: String },
    #[error("{path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{what} is not installed here; install it with\n{install}")]
    MissingTool { what: &'static str, install: String },
    #[error("{tool} failed ({status}): see its output above")]
    ToolFailed { tool: String, status: ExitStatus },
    #[error("{tool}: {source}")]
    Run { tool: String, source: std::io::Error },
    #[error("cargo built no WebAssembly library from {0}: its [lib] needs crate-type = [\"cdylib\"]")]
    NoArtifact(PathBuf),
    #[error("{path}: {source}")]
    Componentize { path: PathBuf, source: portcullis_componentize::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// What to build, and where.
pub struct Options {
    /// The project.
    pub dir: PathBuf,
    /// Where `<name>.wasm` and `<name>.toml` go (default: `dir`).
    pub out: Option<PathBuf>,
    /// A virtual environment with componentize-py (Python projects).
    pub python_venv: Option<PathBuf>,
}

/// What was built.
pub struct Built {
    pub language: Language,
    /// The component.
    pub wasm: PathBuf,
    /// Its manifest, with the sources' hash.
    pub manifest: PathBuf,
    /// The component's size in bytes.
    pub bytes: usize,
}

/// Builds the project in `options.dir`.
pub fn build(options: &Options) -> Result<Built, BuildError> {
    let dir = &options.dir;
    let language = Language::of_project(dir).ok_or_else(|| BuildError::NoProject(dir.clone()))?;
    let (manifest_path, manifest) = project_manifest(dir)?;
    let out = options.out.clone().unwrap_or_else(|| dir.clone());
    std::fs::create_dir_all(&out).map_err(|source| BuildError::Io { path: out.clone(), source })?;
    // A JavaScript or Python component imports every interface of its world: the world with
    // the key-value cache only when the manifest grants it (a Rust plugin imports what it calls).
    let world = format!("{}-plugin{}", manifest.kind, if manifest.grants.kv { "-kv" } else { "" });
    // The tools run elsewhere: they get the project's absolute path.
    let absolute = dir.canonicalize().map_err(|source| BuildError::Io { path: dir.clone(), source })?;
    let component = match language {
        Language::Rust => build_rust(&absolute)?,
        Language::JavaScript => build_js(&absolute, &world)?,
        Language::Python => build_python(&absolute, &world, options.python_venv.as_deref())?,
    };
    let wasm = out.join(format!("{}.wasm", manifest.name));
    portcullis_componentize::write_atomically(&wasm, &component)
        .map_err(|source| BuildError::Io { path: wasm.clone(), source })?;
    // The hash is taken after the build, which may have written a lock file.
    let outputs = |d: &Path| [d.join(format!("{}.wasm", manifest.name)), d.join(format!("{}.toml", manifest.name))];
    let skip: Vec<PathBuf> = [manifest_path.clone()].into_iter().chain(outputs(dir)).chain(outputs(&out)).collect();
    let hash = source_hash(dir, &skip)?;
    let text = read(&manifest_path)?;
    let built_manifest = out.join(format!("{}.toml", manifest.name));
    portcullis_componentize::write_atomically(&built_manifest, with_source_hash(&text, &hash).as_bytes())
        .map_err(|source| BuildError::Io { path: built_manifest.clone(), source })?;
    Ok(Built { language, wasm, manifest: built_manifest, bytes: component.len() })
}

fn read(path: &Path) -> Result<String, BuildError> {
    std::fs::read_to_string(path).map_err(|source| BuildError::Io { path: path.to_path_buf(), source })
}

/// The project's manifest: the one `NAME.toml` in `dir` (beside `Cargo.toml` or
/// `pyproject.toml`, which are not manifests) that reads as one.
fn project_manifest(dir: &Path) -> Result<(PathBuf, Manifest), BuildError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BuildError::Io { path: dir.to_path_buf(), source })?;
    let mut found = Vec::new();
    let mut refused = None;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        if !is_toml || ["Cargo", "pyproject", "rustfmt", ".rustfmt", "clippy"].contains(&stem) || !path.is_file() {
            continue;
        }
        match Manifest::parse(&read(&path)?, stem) {
            Ok(manifest) => found.push((path, manifest)),
            Err(reason) => refused = Some(BuildError::Manifest { path, reason }),
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(refused.unwrap_or_else(|| BuildError::NoManifest(dir.to_path_buf()))),
        _ => {
            let mut names: Vec<String> = found.iter().map(|(_, m)| format!("{}.toml", m.name)).collect();
            names.sort();
            Err(BuildError::ManyManifests { dir: dir.to_path_buf(), names: names.join(", ") })
        }
    }
}

/// The manifest's text with `source-hash = "HASH"` among its top-level keys (replacing one
/// that was there).
fn with_source_hash(text: &str, hash: &str) -> String {
    let mut lines: Vec<String> =
        text.lines().filter(|l| !l.trim_start().starts_with("source-hash")).map(str::to_owned).collect();
    let first_table = lines.iter().position(|l| l.trim_start().starts_with('[')).unwrap_or(lines.len());
    let mut at = first_table;
    while at > 0 && lines[at - 1].trim().is_empty() {
        at -= 1;
    }
    lines.insert(at, format!("source-hash = \"{hash}\""));
    lines.join("\n") + "\n"
}

/// SHA-256 over the project's files (`sha256sum` lines, sorted by path), without what builds
/// write or fetch (`target`, `node_modules`, `__pycache__`, hidden entries) and without `skip`
/// (the manifest, whose hash this is, and the outputs).
pub fn source_hash(dir: &Path, skip: &[PathBuf]) -> Result<String, BuildError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        let entries = std::fs::read_dir(&at).map_err(|source| BuildError::Io { path: at.clone(), source })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || ["target", "node_modules", "__pycache__"].contains(&&*name) {
                continue;
            }
            if skip.iter().any(|s| same_file(s, &path)) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                let relative: Vec<String> =
                    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                files.push((relative.join("/"), path));
            }
        }
    }
    files.sort();
    let mut list = String::new();
    for (relative, path) in files {
        let bytes = std::fs::read(&path).map_err(|source| BuildError::Io { path: path.clone(), source })?;
        list.push_str(&format!("{}  {relative}\n", hex::encode(Sha256::digest(&bytes))));
    }
    Ok(hex::encode(Sha256::digest(list.as_bytes())))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

// --- tools -------------------------------------------------------------------------------

/// Where built tools and targets are kept: `PORTCULLIS_CACHE_DIR`, or `~/.cache/portcullis`.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PORTCULLIS_CACHE_DIR") {
        return dir.into();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/portcullis")
}

/// The cache directory a variable names, or `default` under [`cache_dir`].
fn cache_subdir(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| cache_dir().join(default))
}

/// `program` on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Runs `command` with its output shown; its stdout goes to stderr, so that what the build
/// prints stays apart from what `plugin build` prints.
fn run(tool: &str, mut command: Command) -> Result<(), BuildError> {
    let stdout: Stdio = match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => fd.into(),
        Err(_) => Stdio::inherit(),
    };
    let status = command.stdout(stdout).status().map_err(|source| BuildError::Run { tool: tool.to_owned(), source })?;
    if !status.success() {
        return Err(BuildError::ToolFailed { tool: tool.to_owned(), status });
    }
    Ok(())
}

/// The output of `program args`, when it runs and succeeds.
fn output_of(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

// --- Rust --------------------------------------------------------------------------------

const RUST_INSTALL: &str = "  rustup target add wasm32-unknown-unknown\n\
     or, on Debian (std built from its sources, linked with the rust-lld of a rustup toolchain):\n  \
     apt-get install rustc-web rust-web-src";

/// How a wasm32 module is built on this machine.
enum RustToolchain {
    /// rustup's toolchain with its prebuilt wasm32-unknown-unknown std.
    Rustup,
    /// Debian's rustc building std from its sources, linked with `lld`.
    DebianStd { rustc: PathBuf, lld: PathBuf },
}

fn rust_toolchain() -> Result<RustToolchain, BuildError> {
    let missing = || BuildError::MissingTool {
        what: "a Rust toolchain for wasm32-unknown-unknown",
        install: RUST_INSTALL.into(),
    };
    let rustup = on_path("rustup");
    let installed = rustup.as_deref().and_then(|r| output_of(r, &["target", "list", "--installed"]));
    if installed.is_some_and(|t| t.lines().any(|l| l.trim() == "wasm32-unknown-unknown")) {
        return Ok(RustToolchain::Rustup);
    }
    let rustc = PathBuf::from("/usr/bin/rustc");
    let std_sources = output_of(&rustc, &["--print", "sysroot"])
        .map(|root| Path::new(root.trim()).join("lib/rustlib/src/rust/library"))
        .is_some_and(|p| p.is_dir());
    // rust-lld comes with every rustup toolchain, under the host's target.
    let host_rustc = on_path("rustc").ok_or_else(missing)?;
    let sysroot = output_of(&host_rustc, &["--print", "sysroot"]).ok_or_else(missing)?;
    let host = output_of(&host_rustc, &["-vV"])
        .and_then(|v| v.lines().find_map(|l| l.strip_prefix("host: ").map(str::to_owned)))
        .ok_or_else(missing)?;
    let lld = Path::new(sysroot.trim()).join("lib/rustlib").join(host.trim()).join("bin/rust-lld");
    if std_sources && lld.is_file() {
        return Ok(RustToolchain::DebianStd { rustc, lld });
    }
    Err(missing())
}

fn build_rust(dir: &Path) -> Result<Vec<u8>, BuildError> {
    let cargo = on_path("cargo").ok_or_else(|| BuildError::MissingTool {
        what: "cargo",
        install: "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh\n  \
                  rustup target add wasm32-unknown-unknown"
            .into(),
    })?;
    let toolchain = rust_toolchain()?;
    let cargo_toml = dir.join("Cargo.toml");
    let target_dir = cache_subdir("PORTCULLIS_PLUGIN_TARGET_DIR", "plugin-target");
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--target", "wasm32-unknown-unknown", "--message-format=json-render-diagnostics"])
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--manifest-path")
        .arg(&cargo_toml)
        .env_remove("RUSTFLAGS")
        .stderr(Stdio::inherit());
    // A 64 KiB stack (rust-lld's default is 1 MiB) keeps a call's memory small.
    let mut flags = vec!["-Clink-arg=-zstack-size=65536".to_owned()];
    if let RustToolchain::DebianStd { rustc, lld } = &toolchain {
        flags.push(format!("-Clinker={}", lld.display()));
        command.arg("-Zbuild-std=std,panic_abort").env("RUSTC", rustc).env("RUSTC_BOOTSTRAP", "1");
    }
    command.env("CARGO_ENCODED_RUSTFLAGS", flags.join("\u{1f}"));
    let output = command.output().map_err(|source| BuildError::Run { tool: "cargo".into(), source })?;
    if !output.status.success() {
        return Err(BuildError::ToolFailed { tool: "cargo build".into(), status: output.status });
    }
    let module = wasm_artifact(&String::from_utf8_lossy(&output.stdout), &cargo_toml)
        .ok_or_else(|| BuildError::NoArtifact(cargo_toml.clone()))?;
    let bytes = std::fs::read(&module).map_err(|source| BuildError::Io { path: module.clone(), source })?;
    portcullis_componentize::componentize(&bytes).map_err(|source| BuildError::Componentize { path: module, source })
}

/// The `.wasm` cargo's JSON messages say it built for the package of `cargo_toml`.
fn wasm_artifact(messages: &str, cargo_toml: &Path) -> Option<PathBuf> {
    messages.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find_map(|m| {
        let ours = m["reason"] == "compiler-artifact"
            && m["manifest_path"].as_str().is_some_and(|p| same_file(Path::new(p), cargo_toml));
        let files = m["filenames"].as_array()?;
        files.iter().filter_map(|f| f.as_str()).find(|f| ours && f.ends_with(".wasm")).map(PathBuf::from)
    })
}

// --- JavaScript --------------------------------------------------------------------------

/// Reads the arguments (source, WIT directory, world, output) and writes the component;
/// run with the directory holding componentize-js's `node_modules` as its working directory.
const COMPONENTIZE_JS: &str = r#"
import { componentize } from "@bytecodealliance/componentize-js";
import { readFile, writeFile } from "node:fs/promises";
const [src, witPath, worldName, out] = process.argv.slice(1);
const { component } = await componentize(await readFile(src, "utf8"), {
  witPath,
  worldName,
  disableFeatures: ["stdio", "random", "clocks", "http", "fetch-event"],
});
await writeFile(out, component);
"#;

const NODE_INSTALL: &str = "  apt-get install nodejs npm";

fn build_js(dir: &Path, world: &str) -> Result<Vec<u8>, BuildError> {
    let node = on_path("node").ok_or(BuildError::MissingTool { what: "node", install: NODE_INSTALL.into() })?;
    let package = "node_modules/@bytecodealliance/componentize-js";
    let tools = if dir.join(package).is_dir() {
        dir.to_path_buf()
    } else {
        let tools =
            cache_subdir("PORTCULLIS_NPM_CACHE_DIR", "npm").join(format!("componentize-js-{COMPONENTIZE_JS_VERSION}"));
        if !tools.join(package).is_dir() {
            install_componentize_js(&tools)?;
        }
        tools
    };
    let package_json = read(&dir.join("package.json"))?;
    let main = serde_json::from_str::<serde_json::Value>(&package_json)
        .ok()
        .and_then(|p| p["main"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "plugin.js".into());
    let scratch = tempdir(&tools)?;
    let out = scratch.join("component.wasm");
    let mut command = Command::new(node);
    command
        .args(["--input-type=module", "-e", COMPONENTIZE_JS])
        .arg(dir.join(main))
        .arg(dir.join("wit"))
        .arg(world)
        .arg(&out)
        .current_dir(&tools);
    let result = run("componentize-js", command)
        .and_then(|()| std::fs::read(&out).map_err(|source| BuildError::Io { path: out.clone(), source }));
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// componentize-js installed with npm into `tools`.
fn install_componentize_js(tools: &Path) -> Result<(), BuildError> {
    let npm = on_path("npm").ok_or(BuildError::MissingTool { what: "npm", install: NODE_INSTALL.into() })?;
    std::fs::create_dir_all(tools).map_err(|source| BuildError::Io { path: tools.to_path_buf(), source })?;
    let package = serde_json::json!({
        "private": true,
        "dependencies": { "@bytecodealliance/componentize-js": COMPONENTIZE_JS_VERSION },
    });
    let path = tools.join("package.json");
    std::fs::write(&path, package.to_string()).map_err(|source| BuildError::Io { path, source })?;
    eprintln!("installing @bytecodealliance/componentize-js {COMPONENTIZE_JS_VERSION} into {}", tools.display());
    let mut command = Command::new(npm);
    command.args(["install", "--no-audit", "--no-fund", "--silent"]).current_dir(tools);
    run("npm install", command)
}

/// A new directory under `parent`, for one build's scratch files.
fn tempdir(parent: &Path) -> Result<PathBuf, BuildError> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = parent.join(format!("build-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io { path: dir.clone(), source })?;
    Ok(dir)
}

// --- Python ------------------------------------------------------------------------------

fn build_python(dir: &Path, world: &str, venv: Option<&Path>) -> Result<Vec<u8>, BuildError> {
    let venv = venv.map(Path::to_path_buf).or_else(|| std::env::var_os("PORTCULLIS_PYTHON_VENV").map(PathBuf::from));
    let default_venv = cache_dir().join("python");
    let found = match &venv {
        Some(venv) => Some(venv.join("bin/componentize-py")).filter(|p| p.is_file()),
        None => on_path("componentize-py")
            .or_else(|| Some(default_venv.join("bin/componentize-py")).filter(|p| p.is_file())),
    };
    let componentize_py = found.ok_or_else(|| {
        let venv = venv.unwrap_or(default_venv);
        BuildError::MissingTool {
            what: "componentize-py",
            install: format!(
                "  python3 -m venv {venv}\n  {venv}/bin/pip install componentize-py=={COMPONENTIZE_PY_VERSION}",
                venv = venv.display()
            ),
        }
    })?;
    if !dir.join(PYTHON_APP).is_file() {
        return Err(BuildError::Io {
            path: dir.join(PYTHON_APP),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "the module the component is built from"),
        });
    }
    let scratch = tempdir(&cache_dir())?;
    let out = scratch.join("component.wasm");
    let mut command = Command::new(componentize_py);
    command
        .arg("-d")
        .arg(dir.join("wit"))
        .args(["-w", world, "componentize", "-p"])
        .arg(dir)
        .arg(PYTHON_APP.trim_end_matches(".py"))
        .arg("-o")
        .arg(&out)
        .current_dir(dir);
    let result = run("componentize-py", command)
        .and_then(|()| std::fs::read(&out).map_err(|source| BuildError::Io { path: out.clone(), source }));
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[cfg(test)]
mod tests {
    use super::{source_hash, with_source_hash};

    #[test]
    fn the_source_hash_follows_the_sources_and_nothing_a_build_writes() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("src/lib.rs", "fn a() {}");
        write("p.toml", "name = \"p\"");
        let skip = [dir.path().join("p.toml")];
        let before = source_hash(dir.path(), &skip).unwrap();
        for built in ["target/x", "node_modules/y/z.js", "__pycache__/app.pyc", ".git/HEAD", "p.toml"] {
            write(built, "anything");
        }
        assert_eq!(source_hash(dir.path(), &skip).unwrap(), before);
        write("src/lib.rs", "fn b() {}");
        let changed = source_hash(dir.path(), &skip).unwrap();
        assert_ne!(changed, before);
        write("src/more.rs", "");
        assert_ne!(source_hash(dir.path(), &skip).unwrap(), changed);
    }

    #[test]
    fn the_source_hash_goes_among_the_top_level_keys_once() {
        let text = "name = \"a\"\nsource-hash = \"old\"\n\n[limits]\nmemory-mb = 16\n";
        assert_eq!(with_source_hash(text, "new"), "name = \"a\"\nsource-hash = \"new\"\n\n[limits]\nmemory-mb = 16\n");
        assert_eq!(with_source_hash("name = \"a\"", "h"), "name = \"a\"\nsource-hash = \"h\"\n");
    }
}
