//! `portcullis-componentize IN.wasm OUT.wasm`
//!
//! Turns a core WebAssembly module built with the Portcullis SDK (which embeds the
//! world it implements in a `component-type` custom section) into a component, and
//! validates the result.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: portcullis-componentize IN.wasm OUT.wasm

Turns a core wasm module built with the Portcullis SDK into a validated
WebAssembly component. IN is the module cargo built for wasm32-unknown-unknown;
OUT is where the component is written.";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis-componentize: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let [input, output] = args.as_slice() else {
        bail!("expected two arguments\n\n{USAGE}");
    };
    let (input, output) = (PathBuf::from(input), PathBuf::from(output));

    let module = std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
    if !module.starts_with(b"\0asm") {
        bail!("{} is not a WebAssembly binary", input.display());
    }
    if is_component(&module) {
        bail!("{} is already a component", input.display());
    }

    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .with_context(|| {
            format!("{}: reading the embedded component type (was it built with the Portcullis SDK?)", input.display())
        })?
        .encode()
        .with_context(|| format!("{}: encoding the component", input.display()))?;

    // Write atomically so a server watching the policies directory never loads half a file.
    let tmp = output.with_extension("wasm.tmp");
    std::fs::write(&tmp, &component).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &output).with_context(|| format!("writing {}", output.display()))?;
    Ok(())
}

/// The 4 bytes after the magic are the version and layer: layer 1 is a component.
fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[6..8] == [1, 0]
}
