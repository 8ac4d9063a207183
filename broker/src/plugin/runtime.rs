//! The plugin runtime: one wasmtime engine, linker and compile cache for
//! the whole broker.
//!
//! ```ignore
//! let runtime = PluginRuntime::new(RuntimeConfig::default())?;
//! let plugin = runtime.load(&wasm_bytes).await?;
//! let credential = plugin.issue(&ctx, &connection, &request).await?;
//! ```
//!
//! The engine uses the pooling allocator (instance slots reserved up front,
//! memories reset copy-on-write) so that a fresh instance per call is cheap,
//! and epoch interruption so that a call can be stopped at its deadline.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::cache::CompileCache;
use super::component::Plugin;
use super::state::CallState;
use super::{Limits, PluginError};
use crate::sql::Pools;

/// How often the epoch advances: the granularity of deadlines, and how
/// often a busy guest yields its thread to other tasks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// How the runtime is set up.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
    /// Per-call sandbox limits.
    pub limits: Limits,
}

impl RuntimeConfig {
    /// The default cache directory: `$BROKER_PLUGIN_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/broker/plugins`, else `~/.cache/broker/plugins`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("BROKER_PLUGIN_CACHE_DIR") {
            return Some(dir.into());
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("broker/plugins"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/broker/plugins"))
    }
}

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<CallState>,
    pub(crate) cache: CompileCache,
    pub(crate) limits: Limits,
    pub(crate) pools: Arc<Pools>,
    pub(crate) redis: Arc<crate::egress::RedisPools>,
    pub(crate) http: Arc<crate::egress::HttpClients>,
    pub(crate) slots: tokio::sync::Semaphore,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// Loads plugins and runs their calls. Cheap to clone.
#[derive(Clone)]
pub struct PluginRuntime {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

/// How much of a memory slot, from its start, may stay mapped between
/// calls. Only pages a call dirtied are rewritten, so this bounds the work
/// and the memory kept per slot rather than setting it. A call dirties its
/// stack, its data and a little heap: a guest linked with a small stack
/// (see `.cargo/config.toml`) keeps all of that well inside.
const KEEP_RESIDENT: usize = 4 << 20;

fn engine(limits: &Limits) -> Result<Engine, PluginError> {
    let slots = limits.max_concurrent_calls.max(1);
    let mut pool = PoolingAllocationConfig::default();
    // A Rust component holds one main module plus a few small shims.
    pool.total_component_instances(slots)
        .total_core_instances(slots * 16)
        .total_memories(slots * 2)
        .total_tables(slots * 16)
        .total_stacks(slots)
        .max_memory_size(limits.memory_bytes)
        // Reset a slot by rewriting only the pages the last call dirtied
        // (found with Linux's PAGEMAP_SCAN, where the kernel has it), and
        // keep them mapped: no madvise, no TLB shootdown, no page faults
        // on the next call. Without PAGEMAP_SCAN the same budget is memset.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
        .map_err(|e| PluginError::Runtime(format!("cannot create the wasm engine: {e:#}")))
}

impl PluginRuntime {
    /// A runtime with its own engine and an epoch ticker thread.
    pub fn new(config: RuntimeConfig) -> Result<Self, PluginError> {
        let engine = engine(&config.limits)?;
        let mut linker = Linker::new(&engine);
        let link = |e: wasmtime::Error| {
            PluginError::Runtime(format!("cannot link host capabilities: {e:#}"))
        };
        super::versions::add_to_linker(&mut linker).map_err(link)?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let stop = stop_ticker.clone();
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| PluginError::Runtime(format!("cannot start the epoch thread: {e}")))?;

        Ok(Self {
            shared: Arc::new(Shared {
                engine,
                linker,
                cache: CompileCache::new(config.cache_dir),
                slots: tokio::sync::Semaphore::new(
                    config.limits.max_concurrent_calls.max(1) as usize
                ),
                limits: config.limits,
                pools: Arc::new(Pools::new()),
                redis: Arc::new(crate::egress::RedisPools::new()),
                http: Arc::new(crate::egress::HttpClients::new()),
                stop_ticker,
            }),
        })
    }

    /// The per-call limits.
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// The database pools the `sql` capability draws from.
    pub fn pools(&self) -> &Arc<Pools> {
        &self.shared.pools
    }

    /// Compiles (or loads from the cache) a component, checks it was built
    /// against a contract version this broker speaks, links it and asks it
    /// to describe itself.
    pub async fn load(&self, wasm: &[u8]) -> Result<Plugin, PluginError> {
        let shared = self.shared.clone();
        let bytes = wasm.to_vec();
        let component = tokio::task::spawn_blocking(move || {
            shared.cache.load_or_compile(&shared.engine, &bytes)
        })
        .await
        .map_err(|e| PluginError::Runtime(format!("compile task failed: {e}")))??;
        Plugin::new(self.shared.clone(), component, wasm).await
    }
}
