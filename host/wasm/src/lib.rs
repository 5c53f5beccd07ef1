//! The plugin host: one wasmtime [`Engine`] per node; components identified
//! by their BLAKE3 digest, compiled once and kept precompiled on disk; every
//! call in a fresh instance under a deadline, a memory limit and table
//! limits, so that a plugin that loops, grabs memory or traps fails only its
//! own call.
//!
//! Instances come from an `InstancePre` (with the pooling allocator); each
//! plugin keeps a few configured instances for reuse, drops any that traps
//! or runs past its deadline, and replaces each after a bounded number of
//! calls. Calls are futures on wasmtime's async support: plugin code runs
//! on a fiber and yields to the async runtime at every epoch tick, and
//! WASI's host calls (stdout, files, sockets) are awaited, never blocking
//! a runtime worker; compiling runs on a blocking thread. Calls and loads
//! take turns: [`CALLS_IN_FLIGHT_MAX`] per node and
//! [`PLUGIN_CALLS_IN_FLIGHT_MAX`] per plugin; idle instances across plugins
//! stay within a budget, so that calls in flight always find an instance.

mod admission;
mod cache;
mod controller;
mod grants;
mod pool;
mod scheduler;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, StoreLimits,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use admission::{AdmissionPolicy, Decision, Operation, Review, UserInfo};
pub use cache::ComponentCache;
pub use controller::{
    Applied, ClusterAccess, ControllerPlugin, FETCH_VERSIONS_MAX, RECONCILE_WALL_MAX, controller_types,
};
pub use grants::{Grants, Reserved};
pub use scheduler::{
    PodRecord, SCHEDULER_INSTANCES_MAX, SCHEDULER_INSTANCES_SPARED, SchedulerInstance, SchedulerPlugin, checked_scores,
    checked_verdicts,
};

/// The names a component exports and imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces {
    /// Exported interfaces and functions, by name.
    pub exports: Vec<String>,
    /// Imported interfaces and functions, by name.
    pub imports: Vec<String>,
}

/// The wasmtime release plugins and pods run in (the workspace pins it).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// How often the engine's epoch advances while plugin calls run: the
/// longest a plugin computes on a runtime worker before it yields to the
/// other tasks (so a plugin that computes to its deadline delays a request
/// it does not decide by about a tick per step of that request), and how
/// far a call may run past its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How often the epoch advances while no call runs: the ticker thread
/// sleeps longer on an idle node.
const IDLE_TICK: Duration = Duration::from_millis(10);

/// Shortest a call waits for its turns before it is refused as busy, however
/// short its deadline: on a node under load, requests queue for the runtime
/// and its plugins' turns alike.
pub const TURN_WAIT_MIN: Duration = Duration::from_secs(1);

/// Longest a load waits for one of the host's turns before it compiles.
pub const LOAD_TURN_WAIT: Duration = Duration::from_secs(10);

/// Bytes of a log line kept; the rest is cut.
const LOG_LINE_BYTES_MAX: usize = 4096;

/// Instances the pooling allocator keeps ready: the most that can exist at
/// once, across every plugin.
const POOLED_INSTANCES: u32 = 256;

/// Plugin calls and loads running at once on a node, at most: each holds
/// an instance and its stack (a load, a blocking thread) while it runs.
pub const CALLS_IN_FLIGHT_MAX: u32 = 16;

/// One plugin's calls running at once, at most, so that a plugin that is
/// slow or under load leaves threads and instances to the others; also
/// the configured instances one plugin keeps idle.
pub const PLUGIN_CALLS_IN_FLIGHT_MAX: u32 = 4;

/// Controller reconciles running at once on a node, at most: each holds an
/// instance and its stack while it runs, including while it waits for its
/// writes (which is why reconciles do not take the turns of other calls:
/// their writes pass admission policies, which need those turns).
pub const RECONCILES_IN_FLIGHT_MAX: u32 = 32;

/// Configured instances kept idle for reuse, across every plugin: with the
/// calls and reconciles in flight, never more than the pooling allocator
/// holds, so a call always finds an instance slot.
const IDLE_INSTANCES_MAX: u32 =
    POOLED_INSTANCES - CALLS_IN_FLIGHT_MAX - RECONCILES_IN_FLIGHT_MAX - scheduler::SCHEDULER_INSTANCES_MAX;

const _: () = assert!(PLUGIN_CALLS_IN_FLIGHT_MAX < CALLS_IN_FLIGHT_MAX, "one plugin never takes every call slot");
const _: () = assert!(
    CALLS_IN_FLIGHT_MAX + RECONCILES_IN_FLIGHT_MAX + scheduler::SCHEDULER_INSTANCES_MAX < POOLED_INSTANCES,
    "idle instances have room beside the calls"
);

/// Largest linear memory a pooled instance may grow to.
const POOLED_MEMORY_BYTES_MAX: usize = 256 << 20;

/// Why a plugin could not be loaded or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The bytes do not hash to the digest they were given as.
    #[error("plugin {name}: the bytes hash to {actual}, not to the expected digest {expected}")]
    DigestMismatch {
        /// The plugin.
        name: String,
        /// The digest expected.
        expected: String,
        /// The digest of the bytes.
        actual: String,
    },
    /// The bytes are not a component, or not one of the expected world.
    #[error("plugin {name}: {message}")]
    Invalid {
        /// The plugin.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A grant names what no plugin may reach.
    #[error("plugin {name} was refused a grant: {message}")]
    Grant {
        /// The plugin.
        name: String,
        /// Which grant, and why.
        message: String,
    },
    /// The call found no free turn within its deadline.
    #[error("plugin {name} could not run: {message}")]
    Busy {
        /// The plugin.
        name: String,
        /// Which bound was reached.
        message: String,
    },
    /// The configuration was refused by the plugin.
    #[error("plugin {name} refused its configuration: {message}")]
    Configuration {
        /// The plugin.
        name: String,
        /// The plugin's reason.
        message: String,
    },
    /// The call ran past its deadline.
    #[error("plugin {name} ran past its {deadline:?} deadline")]
    Deadline {
        /// The plugin.
        name: String,
        /// The deadline.
        deadline: Duration,
    },
    /// The call trapped (including running out of memory).
    #[error("plugin {name} failed: {message}")]
    Trap {
        /// The plugin.
        name: String,
        /// The trap, as wasmtime describes it.
        message: String,
    },
    /// The plugin answered something the host cannot use.
    #[error("plugin {name} answered malformed output: {message}")]
    MalformedOutput {
        /// The plugin.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// The precompiled cache could not be used.
    #[error("plugin cache {path}: {message}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// The limits of every call of one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest a call may run.
    pub deadline: Duration,
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Largest table, in elements.
    pub table_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { deadline: Duration::from_millis(100), memory_bytes: 64 << 20, table_elements: 20_000 }
    }
}

/// The per-call state of an instance: WASI with only what was granted, the
/// limits, and the plugin's name for its log lines.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: CountedLimits,
    plugin: Arc<str>,
    /// Epoch ticks the call in progress may still run across: its
    /// deadline counts the time it runs, not the time it waits to.
    ticks_left: u64,
    /// What a controller's reconcile in progress reads and writes through.
    cluster: Option<Arc<dyn ClusterAccess>>,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl CallState {
    fn new(plugin: Arc<str>, limits: &Limits, grants: &Grants) -> Result<Self, PluginError> {
        // No arguments; environment, directories and TCP connections only
        // as granted; no UDP, listening or name lookups.
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.allow_udp(false).allow_ip_name_lookup(false).allow_tcp(!grants.tcp_connect.is_empty());
        let allowed = Arc::new(grants.tcp_connect.clone());
        wasi.socket_addr_check(move |address, use_| {
            use wasmtime_wasi::sockets::SocketAddrUse;
            let permitted = match use_ {
                SocketAddrUse::TcpConnect => allowed.contains(&address),
                // A connect binds to the wildcard address first.
                SocketAddrUse::TcpBind => !allowed.is_empty() && address.ip().is_unspecified() && address.port() == 0,
                _ => false,
            };
            Box::pin(async move { permitted })
        });
        for (name, value) in &grants.environment {
            wasi.env(name, value);
        }
        for (host, guest) in &grants.directories {
            wasi.preopened_dir(host, guest, wasmtime_wasi::FsPerms::ReadOnly).map_err(|e| PluginError::Invalid {
                name: plugin.to_string(),
                message: format!("the granted directory {}: {e:#}", host.display()),
            })?;
        }
        Ok(Self {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: CountedLimits {
                limits: wasmtime::StoreLimitsBuilder::new()
                    .memory_size(limits.memory_bytes)
                    .table_elements(limits.table_elements)
                    .instances(16)
                    .trap_on_grow_failure(true)
                    .build(),
                memory_bytes: 0,
            },
            plugin,
            ticks_left: deadline_ticks(limits.deadline),
            cluster: None,
        })
    }

    /// Writes a plugin's log line to the node's log, tagged with its name.
    fn log(&self, level: &str, message: &str) {
        let mut end = message.len().min(LOG_LINE_BYTES_MAX);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let message = &message[..end];
        let plugin = &*self.plugin;
        match level {
            "debug" => tracing::debug!(plugin, "{message}"),
            "info" => tracing::info!(plugin, "{message}"),
            "warn" => tracing::warn!(plugin, "{message}"),
            _ => tracing::error!(plugin, "{message}"),
        }
    }
}

/// A store's limits, counting the linear memory its instances were
/// granted (every memory together, from its first page on).
struct CountedLimits {
    limits: StoreLimits,
    memory_bytes: usize,
}

impl ResourceLimiter for CountedLimits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let granted = self.limits.memory_growing(current, desired, maximum)?;
        if granted {
            self.memory_bytes = self.memory_bytes.saturating_add(desired.saturating_sub(current));
        }
        Ok(granted)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// The node's plugin host: one engine, its epoch ticker, the component
/// cache.
pub struct PluginHost {
    compiler: Compiler,
    ticking: Arc<AtomicBool>,
    reserved: Reserved,
    calls: Arc<Semaphore>,
    reconciles: Arc<Semaphore>,
    idle_instances: Arc<IdleInstances>,
    /// Slots for the long-lived instances of scheduler plugins.
    scheduler_instances: Arc<Semaphore>,
}

/// What compiling and linking a component needs: the engine and the
/// component cache, cheap to clone onto a blocking thread.
#[derive(Clone)]
pub(crate) struct Compiler {
    engine: Engine,
    cache: Arc<cache::ComponentCache>,
}

impl Compiler {
    /// The component `bytes`, checked against `digest` (hex BLAKE3) and
    /// compiled (or read precompiled from the cache).
    fn component(&self, name: &str, digest: &str, bytes: &[u8]) -> Result<Component, PluginError> {
        self.cache.load(&self.engine, name, digest, bytes)
    }

    /// A linker with WASI (nothing granted), awaited by calls.
    fn linker(&self) -> Result<Linker<CallState>, PluginError> {
        let mut linker = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| PluginError::Invalid { name: "(linker)".into(), message: format!("{e:#}") })?;
        Ok(linker)
    }
}

/// The count of configured instances kept idle across every plugin,
/// bounded by [`IDLE_INSTANCES_MAX`].
#[derive(Debug, Default)]
pub(crate) struct IdleInstances(AtomicU32);

impl IdleInstances {
    /// Takes a place for one more idle instance; false when none is left.
    fn take(&self) -> bool {
        self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < IDLE_INSTANCES_MAX).then_some(n + 1)).is_ok()
    }

    /// Gives back the places of `count` instances no longer idle.
    fn give_back(&self, count: u32) {
        let before = self.0.fetch_sub(count, Ordering::AcqRel);
        assert!(before >= count, "gave back {count} idle instances of {before}");
    }

    /// The instances idle now.
    fn count(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

impl PluginHost {
    /// A host keeping precompiled components in `cache_dir` (none: compile
    /// on every load).
    ///
    /// # Errors
    /// The engine could not be configured.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        config.profiler(profiler(std::env::var(PROFILER_ENV).ok().as_deref())?);
        let mut pooling = PoolingAllocationConfig::default();
        pooling.total_component_instances(POOLED_INSTANCES);
        pooling.total_core_instances(POOLED_INSTANCES * 4);
        pooling.total_memories(POOLED_INSTANCES * 2);
        pooling.total_tables(POOLED_INSTANCES * 4);
        pooling.max_memory_size(POOLED_MEMORY_BYTES_MAX);
        pooling.total_stacks(POOLED_INSTANCES);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&config).map_err(|e| PluginError::Invalid {
            name: "(engine)".into(),
            message: format!("configuring wasmtime: {e:#}"),
        })?;
        let ticking = Arc::new(AtomicBool::new(true));
        let calls = Arc::new(Semaphore::new(CALLS_IN_FLIGHT_MAX as usize));
        let reconciles = Arc::new(Semaphore::new(RECONCILES_IN_FLIGHT_MAX as usize));
        let (ticker_engine, running) = (engine.weak(), ticking.clone());
        let (in_flight, reconciling) = (calls.clone(), reconciles.clone());
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    let busy = in_flight.available_permits() < CALLS_IN_FLIGHT_MAX as usize
                        || reconciling.available_permits() < RECONCILES_IN_FLIGHT_MAX as usize;
                    std::thread::sleep(if busy { EPOCH_TICK } else { IDLE_TICK });
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .map_err(|e| PluginError::Invalid { name: "(engine)".into(), message: format!("epoch thread: {e}") })?;
        Ok(Self {
            compiler: Compiler { cache: Arc::new(cache::ComponentCache::new(cache_dir, &engine)), engine },
            ticking,
            reserved: Reserved::default(),
            calls,
            reconciles,
            idle_instances: Arc::default(),
            scheduler_instances: Arc::new(Semaphore::new(scheduler::SCHEDULER_INSTANCES_MAX as usize)),
        })
    }

    /// One of the node's [`CALLS_IN_FLIGHT_MAX`] turns for a call or load
    /// of `plugin`, waited for at most `wait`.
    ///
    /// # Errors
    /// No turn within `wait`.
    pub(crate) async fn turn(&self, plugin: &str, wait: Duration) -> Result<OwnedSemaphorePermit, PluginError> {
        match tokio::time::timeout(wait, self.calls.clone().acquire_owned()).await {
            Ok(Ok(turn)) => Ok(turn),
            _ => Err(PluginError::Busy {
                name: plugin.to_owned(),
                message: format!("all {CALLS_IN_FLIGHT_MAX} of the node's plugin calls were in flight for {wait:?}"),
            }),
        }
    }

    /// Runs `work` (compiling) on a blocking thread of the current tokio
    /// runtime, never on its async workers, once one of the host's turns is
    /// free; waits for a turn at most `wait`. The turn is held until `work`
    /// returns, even when the caller stops waiting for it.
    ///
    /// # Errors
    /// No turn within `wait`; what `work` returns.
    pub(crate) async fn run_blocking<T: Send + 'static>(
        &self,
        plugin: &str,
        wait: Duration,
        work: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
    ) -> Result<T, PluginError> {
        let turn = self.turn(plugin, wait).await?;
        let done = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            work()
        });
        done.await
            .map_err(|e| PluginError::Trap { name: plugin.to_owned(), message: format!("its thread failed: {e}") })?
    }

    /// What compiling needs, for a blocking thread.
    pub(crate) fn compiler(&self) -> Compiler {
        self.compiler.clone()
    }

    /// What component `bytes` (of digest `digest`) exports and imports, by
    /// name (`wasi:cli/run@0.2.6`), compiled as any plugin is (and so kept
    /// precompiled).
    ///
    /// # Errors
    /// Bytes that do not hash to `digest`, are not a component, or do not
    /// compile.
    pub fn interfaces(&self, name: &str, digest: &str, bytes: &[u8]) -> Result<Interfaces, PluginError> {
        let component = self.compiler.component(name, digest, bytes)?;
        let engine = &self.compiler.engine;
        let kind = component.component_type();
        let names = |items: &mut dyn Iterator<Item = &str>| items.map(str::to_owned).collect();
        Ok(Interfaces {
            exports: names(&mut kind.exports(engine).map(|(name, _)| name)),
            imports: names(&mut kind.imports(engine).map(|(name, _)| name)),
        })
    }

    /// Configured instances kept idle now, across every plugin.
    pub fn idle_instances(&self) -> u32 {
        self.idle_instances.count()
    }

    /// The host, refusing every grant that names what `reserved` holds.
    #[must_use]
    pub fn with_reserved(mut self, reserved: Reserved) -> Self {
        self.reserved = reserved;
        self
    }

    /// A store for `plugin`'s calls, under `limits`, with what `grants`
    /// allows, yielding to the async runtime at every epoch tick.
    ///
    /// # Errors
    /// A granted directory that cannot be opened.
    fn store(&self, plugin: &Arc<str>, limits: &Limits, grants: &Grants) -> Result<Store<CallState>, PluginError> {
        let mut store = Store::new(&self.compiler.engine, CallState::new(plugin.clone(), limits, grants)?);
        store.limiter(|state| &mut state.limits);
        // At each tick the plugin runs across: yield to the runtime, or
        // stop it once its ticks are spent. Ticks that pass while it waits
        // to be polled again are not its own, so a busy node does not
        // spend a fast plugin's deadline.
        store.epoch_deadline_callback(|mut context| {
            let state = context.data_mut();
            if state.ticks_left == 0 {
                return Ok(wasmtime::UpdateDeadline::Interrupt);
            }
            state.ticks_left -= 1;
            Ok(wasmtime::UpdateDeadline::Yield(1))
        });
        Ok(store)
    }
}

/// The environment variable naming how plugin code is profiled: unset or
/// empty, not at all; `perfmap`, with `/tmp/perf-<pid>.map` naming each
/// compiled function for `perf report`.
pub const PROFILER_ENV: &str = "ENGENHO_PLUGIN_PROFILER";

/// The profiling [`PROFILER_ENV`]'s `value` asks for.
///
/// # Errors
/// A value other than empty or `perfmap`.
fn profiler(value: Option<&str>) -> Result<wasmtime::ProfilingStrategy, PluginError> {
    match value.unwrap_or_default() {
        "" => Ok(wasmtime::ProfilingStrategy::None),
        "perfmap" => Ok(wasmtime::ProfilingStrategy::PerfMap),
        other => Err(PluginError::Invalid {
            name: "(engine)".into(),
            message: format!("{PROFILER_ENV}={other:?}: the profilers are \"perfmap\" or none (empty)"),
        }),
    }
}

/// The hex BLAKE3 digest of `bytes`: a component's identity.
pub fn digest_of(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Turns a failed call into the plugin's error: its deadline spent, or a
/// trap, with wasmtime's description (running out of memory is one).
fn call_error(plugin: &str, limits: &Limits, error: wasmtime::Error) -> PluginError {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => PluginError::Deadline { name: plugin.to_owned(), deadline: limits.deadline },
        _ => PluginError::Trap { name: plugin.to_owned(), message: format!("{error:#}") },
    }
}

/// The epoch ticks a call may run across in `deadline`.
fn deadline_ticks(deadline: Duration) -> u64 {
    u64::try_from(deadline.as_micros().div_ceil(EPOCH_TICK.as_micros())).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod profiler_tests {
    #[test]
    fn only_known_profilers_are_taken() {
        // Goal: a misspelt profiler stops the engine with its name, not
        // silently runs unprofiled.
        assert!(matches!(super::profiler(None), Ok(wasmtime::ProfilingStrategy::None)));
        assert!(matches!(super::profiler(Some("")), Ok(wasmtime::ProfilingStrategy::None)));
        assert!(matches!(super::profiler(Some("perfmap")), Ok(wasmtime::ProfilingStrategy::PerfMap)));
        let error = super::profiler(Some("vtune")).expect_err("not offered").to_string();
        assert!(error.contains("ENGENHO_PLUGIN_PROFILER=\"vtune\""), "{error}");
    }
}

#[cfg(test)]
mod version_tests {
    #[test]
    fn the_wasmtime_version_is_the_one_the_workspace_pins() {
        // Goal: the version a node reports cannot drift from the build's.
        let manifest = include_str!("../../../Cargo.toml");
        let pin = format!("wasmtime = {{ version = \"={}\"", super::WASMTIME_VERSION);
        assert!(manifest.contains(&pin), "Cargo.toml does not pin {pin}");
    }
}
