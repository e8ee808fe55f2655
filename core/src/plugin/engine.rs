//! The one wasmtime `Engine` every plugin runs on (pooling allocator, epoch interruption),
//! its epoch ticker, and the on-disk cache of compiled plugins.

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The ticks in `d`, at least one.
pub fn ticks(d: Duration) -> u64 {
    (d.as_micros().div_ceil(EPOCH_TICK.as_micros()) as u64).max(1)
}

/// The CPU time the calling thread has used, where the system tells it.
#[cfg(unix)]
pub fn thread_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec for the call to write, and nothing else holds it.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    (read == 0).then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

#[cfg(not(unix))]
pub fn thread_cpu_time() -> Option<Duration> {
    None
}

/// How stale [`recent_thread_cpu_time`] may be.
const CPU_CLOCK_PERIOD: Duration = Duration::from_millis(1);

thread_local! {
    /// This thread's CPU clock as last read, and when.
    static CPU_CLOCK: Cell<Option<(Instant, Duration)>> = const { Cell::new(None) };
}

/// The calling thread's CPU time as read at most [`CPU_CLOCK_PERIOD`] ago. Reading the clock
/// is a system call (about a microsecond here, a sixth of a policy call), so a thread reads
/// it at most once per period; CPU time counted from this reading is over by at most the period.
pub fn recent_thread_cpu_time() -> Option<Duration> {
    CPU_CLOCK.with(|clock| {
        let now = Instant::now();
        if let Some((read_at, cpu)) = clock.get()
            && now.duration_since(read_at) < CPU_CLOCK_PERIOD
        {
            return Some(cpu);
        }
        let cpu = thread_cpu_time()?;
        clock.set(Some((now, cpu)));
        Some(cpu)
    })
}

pub struct PluginEngine {
    pub engine: Engine,
    cache_dir: Option<PathBuf>,
}

impl PluginEngine {
    /// The engine, with a thread that advances its epoch until the engine is dropped.
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let engine = Engine::new(&config())?;
        let ticker = engine.weak();
        std::thread::Builder::new().name("plugin-epoch".into()).spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
        if let Some(dir) = &cache_dir {
            private_cache(dir).map_err(|e| anyhow::anyhow!("the compiled-plugin cache {}: {e}", dir.display()))?;
        }
        Ok(Self { engine, cache_dir })
    }

    /// Compiles a component. Compiled code is cached on disk keyed by the `.wasm`'s SHA-256
    /// and the engine's compatibility hash, so a restart does not recompile.
    pub fn compile(&self, wasm: &[u8], digest: &[u8; 32]) -> Result<Component, String> {
        let mut compat = std::hash::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut compat);
        let key = format!("{}-{:016x}.cwasm", hex::encode(digest), compat.finish());
        let cached = self.cache_dir.as_ref().map(|d| d.join(key));
        if let Some(path) = &cached
            && path.exists()
        {
            // SAFETY: the file was written by `Component::serialize` of this same engine
            // configuration (the key includes its compatibility hash) into our own data dir.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compiled-plugin cache entry")
                }
            }
        }
        let component = Component::new(&self.engine, wasm).map_err(|e| format!("does not compile: {e:#}"))?;
        if let Some(path) = &cached {
            let written = component.serialize().map_err(|e| e.to_string()).and_then(|bytes| {
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                write_private(&tmp, &bytes).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| e.to_string())
            });
            if let Err(e) = written {
                tracing::warn!(path = %path.display(), error = %e, "could not cache compiled plugin");
            }
        }
        Ok(component)
    }
}

/// The cache holds native code the server runs, so only its owner may write or read it,
/// whatever the umask: the directory 0700 and its files 0600, set explicitly. An existing
/// cache with looser permissions is tightened; one this user cannot tighten (it, or a file
/// in it, belongs to another user) stops the start.
fn private_cache(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", entry.path().display())))?;
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `path`, readable and writable by its owner only (0600, whatever the umask).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Set, not asked for at creation: the umask cannot loosen it, and a file left from
        // an earlier attempt gets it too.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)
}

/// The table bytes a reused slot keeps and zeroes: one page.
const TABLE_RESET_IN_PLACE_BYTES: usize = 4 << 10;

fn config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(512 << 10);
    config.async_stack_size(1 << 20);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(500);
    pool.total_core_instances(1000);
    pool.total_memories(1000);
    pool.total_tables(1000);
    pool.max_memory_size(crate::limits::MAX_PLUGIN_MEMORY_MB as usize * (1 << 20));
    pool.max_component_instance_size(1 << 20);
    pool.max_core_instance_size(1 << 20);
    pool.max_memories_per_component(16);
    pool.max_tables_per_component(16);
    pool.total_stacks(500);
    // A reused slot's dirty pages are found with PAGEMAP_SCAN (Linux 6.7+) and copied back
    // from the image or zeroed, up to this much, rather than handed back to the kernel: a
    // fresh instance then neither faults its pages in again (copy-on-write) nor costs the
    // `madvise` and the TLB shootdowns of giving them back. Older kernels memset the first
    // this-many bytes instead.
    pool.pagemap_scan(Enabled::Auto);
    pool.linear_memory_keep_resident(256 << 10);
    // A table that fits in one page (hundreds of functions; the built-in plugins' tables
    // hold 6 to 28) is zeroed in place, with no scan: the scan is a system call per table,
    // and a component has a table in several of its core instances.
    pool.table_keep_resident(TABLE_RESET_IN_PLACE_BYTES);
    // Storage calls run on an async stack; its used top is cleared the same way.
    pool.async_stack_keep_resident(64 << 10);
    // What is given back goes in batches, one TLB shootdown for many slots.
    pool.decommit_batch_size(16);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}
