//! A core WebAssembly module built with the Portcullis SDK (which embeds the world it
//! implements in a `component-type` custom section) made a validated component: what the
//! `portcullis-componentize` binary and `portcullis plugin build` both do.

/// Why a module could not be made a component.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a WebAssembly binary")]
    NotWasm,
    #[error("already a component")]
    AlreadyComponent,
    /// The module carries no component type this encoder reads.
    #[error("reading the embedded component type (was it built with the Portcullis SDK?): {0}")]
    ComponentType(String),
    /// Encoding or validating the component failed.
    #[error("encoding the component: {0}")]
    Encode(String),
}

/// The component of `module`, validated.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>, Error> {
    if !module.starts_with(b"\0asm") {
        return Err(Error::NotWasm);
    }
    if is_component(module) {
        return Err(Error::AlreadyComponent);
    }
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)
        .map_err(|e| Error::ComponentType(format!("{e:#}")))?
        .encode()
        .map_err(|e| Error::Encode(format!("{e:#}")))
}

/// Writes `bytes` to `path` through a temporary file beside it, so that a server watching the
/// policies directory never loads half a file.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The 4 bytes after the magic are the version and layer: layer 1 is a component.
fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[6..8] == [1, 0]
}
