//! What a plugin imports beyond the contract, and what the host lends it.
//!
//! - WASI 0.2 (what componentize-py and componentize-js components import), to scope,
//!   consent and grant-type plugins, granting nothing: no preopened directory, no
//!   environment, no arguments, no sockets (TCP, UDP and name lookup all denied), an empty
//!   stdin; clocks and randomness only. Stdout and stderr go into the plugin's log at debug
//!   level after the call, at most [`MAX_PLUGIN_STDIO_BYTES`] of each.
//! - Outbound HTTP (`wasi:http/outgoing-handler`), only with `http = [...]` under the
//!   manifest's `[grants]` ([`super::http`]).
//! - The key-value cache (`portcullis:plugin/kv`), only with `kv = true` ([`super::kv`]).
//!
//! A plugin importing any of them is linked against its world's linker with these added
//! (built when it is loaded) and its calls get a [`Lent`] in their store; a plugin importing
//! none is linked and called as before, with nothing built per call. A plugin importing one
//! its manifest does not grant is refused at load, with the grant that would allow it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::call::CallState;
use super::manifest::{Contract, Grants, PluginKind};
use super::{Plugin, PolicyHost};
use crate::limits::MAX_PLUGIN_STDIO_BYTES;

/// What a component imports beyond the contract.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Needs {
    /// Any WASI interface (outbound HTTP included: its streams are WASI's).
    pub wasi: bool,
    /// `wasi:http/*`.
    pub http: bool,
    /// `portcullis:plugin/kv`.
    pub kv: bool,
}

impl Needs {
    /// Whether the component imports anything the host lends beyond the contract.
    pub fn any(self) -> bool {
        self.wasi || self.http || self.kv
    }

    /// What `component` imports.
    pub fn of(component: &Component, engine: &wasmtime::Engine) -> Self {
        let mut needs = Self::default();
        for (name, _) in component.component_type().imports(engine) {
            match capability(name) {
                Some(Capability::Wasi) => needs.wasi = true,
                Some(Capability::Http) => (needs.wasi, needs.http) = (true, true),
                Some(Capability::Kv) => needs.kv = true,
                None => {}
            }
        }
        needs
    }
}

/// A capability an import belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Capability {
    Wasi,
    Http,
    Kv,
}

/// The capability `import` (`wasi:io/poll@0.2.3`, `portcullis:plugin/kv@0.4.0`, ...) belongs to.
pub(super) fn capability(import: &str) -> Option<Capability> {
    if import.starts_with("wasi:http/") {
        Some(Capability::Http)
    } else if import.starts_with("wasi:") {
        Some(Capability::Wasi)
    } else if import.starts_with("portcullis:plugin/kv@") {
        Some(Capability::Kv)
    } else {
        None
    }
}

/// Why a plugin of `kind` whose manifest grants `grants` may not have `import`, in plain
/// words naming the grant that would allow it; `None` when it may.
pub(super) fn refusal(import: &str, kind: PluginKind, grants: &Grants) -> Option<String> {
    let capability = capability(import)?;
    if kind == PluginKind::Storage {
        return Some(format!(
            "imports {import}, which storage plugins are not lent (their calls are asynchronous and reach \
             nothing but the database): build it without"
        ));
    }
    match capability {
        Capability::Wasi => None,
        Capability::Http if grants.http.is_empty() => Some(format!(
            "imports outbound HTTP ({import}) but its manifest grants none: add `http = [\"https://...\"]` \
             (the origins it may reach) under [grants]"
        )),
        Capability::Kv if !grants.kv => Some(format!(
            "imports the key-value cache ({import}) but its manifest does not grant it: add `kv = true` under [grants]"
        )),
        Capability::Http | Capability::Kv => None,
    }
}

/// Every import of `component` that `kind` and `grants` do not allow, refused in one message.
pub(super) fn check_grants(
    component: &Component,
    engine: &wasmtime::Engine,
    kind: PluginKind,
    grants: &Grants,
) -> Result<(), String> {
    let refused: Vec<String> =
        component.component_type().imports(engine).filter_map(|(name, _)| refusal(name, kind, grants)).collect();
    if refused.is_empty() { Ok(()) } else { Err(refused.join("; ")) }
}

/// `base` (a world's linker) with what `needs` asks for added: WASI, and outbound HTTP and
/// the key-value cache when asked for (the grants were checked before).
pub(super) fn linker(
    base: &Linker<CallState>,
    needs: Needs,
    contract: Contract,
) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = base.clone();
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    if needs.http {
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
    }
    if needs.kv && contract.has_kv() {
        super::kv::link(&mut linker, contract)?;
    }
    Ok(linker)
}

/// The linker a component with `needs` links against: `base` itself when it needs nothing.
pub(super) fn lend(
    base: &Linker<CallState>,
    needs: Needs,
    contract: Contract,
) -> Result<std::borrow::Cow<'_, Linker<CallState>>, String> {
    if !needs.any() {
        return Ok(std::borrow::Cow::Borrowed(base));
    }
    linker(base, needs, contract).map(std::borrow::Cow::Owned).map_err(|e| format!("does not link: {e:#}"))
}

/// What the host keeps for lending: itself (the key-value cache goes through its storage
/// plugin) and the server's rule on loopback `http`.
pub(super) struct Lending {
    pub host: Weak<PolicyHost>,
    allow_loopback_http: AtomicBool,
}

impl Lending {
    pub fn new(host: Weak<PolicyHost>) -> Self {
        Self { host, allow_loopback_http: AtomicBool::new(false) }
    }

    pub fn allow_loopback_http(&self) -> bool {
        self.allow_loopback_http.load(Ordering::Relaxed)
    }
}

impl PolicyHost {
    /// Lets plugins granted outbound HTTP reach loopback `http` origins (the server's
    /// `outbound.allow_loopback_http`); off until said.
    pub fn set_allow_loopback_http(&self, allow: bool) {
        self.lending.allow_loopback_http.store(allow, Ordering::Relaxed);
    }
}

/// What one call of a plugin that imports a capability is lent.
pub(crate) struct Lent {
    table: ResourceTable,
    wasi: WasiCtx,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    pub(super) http: Option<super::http::Outgoing>,
    pub(super) kv: Option<super::kv::Cache>,
}

impl Lent {
    /// What a call of `plugin` ending at `deadline` (wall clock) is lent.
    pub(super) fn new(host: &PolicyHost, plugin: &Plugin, deadline: Instant) -> Self {
        let stdout = MemoryOutputPipe::new(MAX_PLUGIN_STDIO_BYTES);
        let stderr = MemoryOutputPipe::new(MAX_PLUGIN_STDIO_BYTES);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        let grants = &plugin.manifest.grants;
        Self {
            table: ResourceTable::new(),
            wasi,
            stdout,
            stderr,
            http: (plugin.needs.http && !grants.http.is_empty())
                .then(|| super::http::Outgoing::new(grants.http.clone(), host.lending.allow_loopback_http(), deadline)),
            kv: (plugin.needs.kv && grants.kv)
                .then(|| super::kv::Cache::new(host.lending.host.clone(), plugin.name.clone())),
        }
    }

    /// Writes what the plugin wrote to stdout and stderr into its log, at debug level.
    pub(super) fn flush(&self, plugin: &Arc<str>) {
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let written = pipe.contents();
            if !written.is_empty() {
                let text = String::from_utf8_lossy(&written);
                tracing::debug!(target: "plugin", plugin = &**plugin, stream, message = ?text);
            }
        }
    }

    /// Nothing lent at all: what a store whose plugin imports nothing would answer, were it
    /// ever asked (it is not linked to anything that asks).
    fn nothing() -> Box<Self> {
        Box::new(Self {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().allow_tcp(false).allow_udp(false).build(),
            stdout: MemoryOutputPipe::new(0),
            stderr: MemoryOutputPipe::new(0),
            http: None,
            kv: None,
        })
    }
}

impl CallState {
    /// What this call is lent, and the resource table the lent interfaces share.
    pub(super) fn lent(&mut self) -> &mut Lent {
        self.lent.get_or_insert_with(Lent::nothing)
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let lent = self.lent();
        WasiCtxView { ctx: &mut lent.wasi, table: &mut lent.table }
    }
}

impl wasmtime_wasi_http::WasiHttpView for CallState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        let lent = self.lent();
        let http = lent.http.get_or_insert_with(super::http::Outgoing::denied);
        wasmtime_wasi_http::WasiHttpCtxView { ctx: &mut http.ctx, table: &mut lent.table, hooks: &mut http.hooks }
    }
}

/// Runs a call of a plugin that imports a capability off the tokio worker thread it was
/// asked on: WASI's and outbound HTTP's synchronous implementations block on the runtime
/// (`Handle::block_on`), which a worker thread may not do. On the multi-threaded runtime the
/// worker's other tasks move to another thread for as long as the call runs
/// (`block_in_place`); on a current-thread runtime the call runs on a thread of its own;
/// outside a runtime, here.
pub(super) fn off_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| s.spawn(f).join()).unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        Err(_) => f(),
    }
}
