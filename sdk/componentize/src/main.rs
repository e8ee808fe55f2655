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
    let component = portcullis_componentize::componentize(&module).with_context(|| input.display().to_string())?;
    portcullis_componentize::write_atomically(&output, &component)
        .with_context(|| format!("writing {}", output.display()))?;
    Ok(())
}
