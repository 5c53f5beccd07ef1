//! One run of a container: a fresh store and instance of its image, run
//! on its own task to its end, under its memory limit, CPU budget and
//! stop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::logs::{ContainerLog, Output};
use super::{CPU_PERIOD, Image, POD_TICK, PodRuntime, RuntimeError};

/// Exit code of a run that grew past its memory limit (as a process
/// killed by SIGKILL).
pub const OOM_EXIT_CODE: i32 = 137;

/// Exit code of a run that was stopped (as a process killed by SIGKILL).
pub const STOPPED_EXIT_CODE: i32 = 137;

/// Exit code of a run that trapped (as a process aborted by SIGABRT).
pub const TRAP_EXIT_CODE: i32 = 134;

/// Largest linear memory a container without a memory limit may grow to.
pub const DEFAULT_MEMORY_BYTES: u64 = 1 << 30;

/// A directory given to a container, at a path of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory on the node.
    pub host: PathBuf,
    /// Where the container sees it.
    pub guest: String,
    /// Whether the container may only read it.
    pub read_only: bool,
}

/// What one run of a container is given.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// Its arguments, the program's name first.
    pub args: Vec<String>,
    /// Its environment, in order (a later name wins).
    pub env: Vec<(String, String)>,
    /// Its directories.
    pub mounts: Vec<Mount>,
    /// Its memory limit, bytes ([`DEFAULT_MEMORY_BYTES`] when none).
    pub memory_bytes: Option<u64>,
    /// Its CPU limit, thousandths of a core (none: unthrottled).
    pub cpu_millis: Option<u64>,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// It returned success.
    Completed,
    /// It returned failure, exited non-zero or trapped.
    Error,
    /// It grew past its memory limit.
    OomKilled,
    /// It was stopped.
    Stopped,
}

impl ExitReason {
    /// The reason as a container status gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error | ExitReason::Stopped => "Error",
            ExitReason::OomKilled => "OOMKilled",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Its exit code.
    pub code: i32,
    /// Why it ended.
    pub reason: ExitReason,
    /// What the host has to say about it (a trap's description).
    pub message: Option<String>,
}

/// A run in progress.
pub struct Container {
    pub(crate) stop: Stopper,
    pub(crate) done: oneshot::Receiver<Exit>,
}

impl Container {
    /// A run that ends as `done` says, stopped by `stop`.
    pub(crate) fn new(stop: Stopper, done: oneshot::Receiver<Exit>) -> Self {
        Self { stop, done }
    }

    /// A handle that stops this run, for another task.
    pub fn stopper(&self) -> Stopper {
        self.stop.clone()
    }

    /// How the run ended, once it has.
    pub async fn wait(self) -> Exit {
        self.done.await.unwrap_or(Exit {
            code: STOPPED_EXIT_CODE,
            reason: ExitReason::Error,
            message: Some("the container's task ended without an exit".into()),
        })
    }
}

/// Stops a run from elsewhere: computing, it stops at its next epoch
/// tick (where it yields); waiting in a host call, at once.
#[derive(Clone, Default)]
pub struct Stopper(pub(crate) Arc<Notify>);

impl Stopper {
    /// Stops the run.
    pub fn stop(&self) {
        self.0.notify_one();
    }
}

/// The state of a container's store.
pub(crate) struct ContainerState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: MemoryLimit,
    cpu: Option<CpuBudget>,
}

impl WasiView for ContainerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for ContainerState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: Default::default() }
    }
}

/// The store's limits, remembering whether memory was refused.
struct MemoryLimit {
    limits: StoreLimits,
    bytes: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let granted = self.limits.memory_growing(current, desired, maximum);
        if !matches!(granted, Ok(true)) {
            self.exceeded = true;
        }
        granted
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
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

/// A CPU limit as epoch ticks per [`CPU_PERIOD`]: a run that has used its
/// ticks waits for the next period.
struct CpuBudget {
    ticks_per_period: u32,
    used: u32,
    period_start: Instant,
}

impl CpuBudget {
    fn new(millis: u64) -> Self {
        let period_ticks = (CPU_PERIOD.as_millis() / POD_TICK.as_millis()).max(1) as u64;
        let ticks = (millis * period_ticks).div_ceil(1000).clamp(1, period_ticks);
        Self { ticks_per_period: ticks as u32, used: 0, period_start: Instant::now() }
    }

    /// Counts one tick of running; how long to wait before running on.
    fn tick(&mut self, now: Instant) -> Option<Duration> {
        if now.duration_since(self.period_start) >= CPU_PERIOD {
            self.period_start = now;
            self.used = 0;
        }
        self.used += 1;
        if self.used < self.ticks_per_period {
            return None;
        }
        let wait = (self.period_start + CPU_PERIOD).saturating_duration_since(now);
        self.period_start += CPU_PERIOD;
        self.used = 0;
        Some(wait)
    }
}

impl PodRuntime {
    /// A store for one instance of a container as `spec` describes it, its
    /// output to `log`: WASI and wasi:http, the memory limit, the CPU
    /// budget, a yield at every epoch tick.
    pub(crate) fn store(
        &self,
        spec: &ContainerSpec,
        log: &ContainerLog,
    ) -> Result<Store<ContainerState>, RuntimeError> {
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.args(&spec.args).stdout(log.stream(Output::Stdout)).stderr(log.stream(Output::Stderr));
        for (name, value) in effective_env(&spec.env) {
            wasi.env(name, value);
        }
        for mount in &spec.mounts {
            let perms =
                if mount.read_only { wasmtime_wasi::FsPerms::ReadOnly } else { wasmtime_wasi::FsPerms::ReadWrite };
            wasi.preopened_dir(&mount.host, &mount.guest, perms)
                .map_err(|e| RuntimeError::Setup(format!("the directory for {}: {e:#}", mount.guest)))?;
        }
        let memory = usize::try_from(spec.memory_bytes.unwrap_or(DEFAULT_MEMORY_BYTES)).unwrap_or(usize::MAX);
        let state = ContainerState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: MemoryLimit {
                limits: StoreLimitsBuilder::new().memory_size(memory).trap_on_grow_failure(true).build(),
                bytes: memory,
                exceeded: false,
            },
            cpu: spec.cpu_millis.map(CpuBudget::new),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut context| {
            match context.data_mut().cpu.as_mut().and_then(|cpu| cpu.tick(Instant::now())) {
                Some(wait) => Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(wait)))),
                None => Ok(UpdateDeadline::Yield(1)),
            }
        });
        Ok(store)
    }

    /// Starts a run of `image` (a `wasi:cli/command`) as `spec` describes,
    /// its output to `log`.
    ///
    /// # Errors
    /// A directory that cannot be opened; an image of another world.
    pub fn start(&self, image: &Image, spec: &ContainerSpec, log: &ContainerLog) -> Result<Container, RuntimeError> {
        let mut store = self.store(spec, log)?;
        let pre = CommandPre::new(image.pre.clone()).map_err(|e| RuntimeError::Setup(format!("{e:#}")))?;
        let (done, exited) = oneshot::channel();
        let (log, stop) = (log.clone(), Stopper::default());
        let stopped = stop.clone();
        tokio::spawn(async move {
            // The run's future yields at every tick, so a stop is seen
            // within one; dropping it drops the instance and its store.
            let (exit, detail) = tokio::select! {
                ended = run(&pre, &mut store) => ended,
                () = stopped.0.notified() => {
                    (Exit { code: STOPPED_EXIT_CODE, reason: ExitReason::Stopped, message: None }, None)
                }
            };
            if let Some(detail) = detail {
                let message = exit.message.as_deref().unwrap_or_default();
                log.write(Output::Stderr, format!("{message}\n{detail}\n").as_bytes());
            }
            log.finish();
            let _ = done.send(exit);
        });
        Ok(Container::new(stop, exited))
    }
}

/// `env` as a program sees it: each name once, where it first appears,
/// with the value it was last given (as Kubernetes resolves a container's
/// `env`).
fn effective_env(env: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut effective: Vec<(&str, &str)> = Vec::with_capacity(env.len());
    for (name, value) in env {
        match effective.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => effective.push((name, value)),
        }
    }
    effective
}

/// Runs `wasi:cli/run` to its end; how it ended, and what went wrong in
/// full (a trap with its backtrace) for the log.
async fn run(pre: &CommandPre<ContainerState>, store: &mut Store<ContainerState>) -> (Exit, Option<String>) {
    let outcome = match pre.instantiate_async(&mut *store).await {
        Ok(command) => command.wasi_cli_run().call_run(&mut *store).await,
        Err(error) => Err(error),
    };
    let state = store.data();
    match outcome {
        Ok(Ok(())) => (Exit { code: 0, reason: ExitReason::Completed, message: None }, None),
        Ok(Err(())) => (Exit { code: 1, reason: ExitReason::Error, message: None }, None),
        Err(error) => {
            if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
                let reason = if exit.0 == 0 { ExitReason::Completed } else { ExitReason::Error };
                return (Exit { code: exit.0, reason, message: None }, None);
            }
            let detail = Some(format!("{error:?}"));
            if state.limits.exceeded {
                let message = format!("the container grew past its memory limit ({} bytes)", state.limits.bytes);
                return (Exit { code: OOM_EXIT_CODE, reason: ExitReason::OomKilled, message: Some(message) }, detail);
            }
            let message = format!("trapped: {}", error.root_cause());
            (Exit { code: TRAP_EXIT_CODE, reason: ExitReason::Error, message: Some(message) }, detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_budget_waits_out_the_rest_of_its_period() {
        // Goal: half a core runs half the ticks of a period, then waits
        // for the period's end; a new period starts afresh.
        let start = Instant::now();
        let mut budget = CpuBudget::new(500);
        budget.period_start = start;
        let ticks = (CPU_PERIOD.as_millis() / POD_TICK.as_millis()) as u32 / 2;
        for n in 1..ticks {
            assert_eq!(budget.tick(start + POD_TICK * n), None, "tick {n}");
        }
        let wait = budget.tick(start + POD_TICK * ticks).expect("the budget is spent");
        assert_eq!(wait, CPU_PERIOD - POD_TICK * ticks);
        assert_eq!(budget.tick(start + CPU_PERIOD + POD_TICK), None, "a new period");
        assert_eq!(CpuBudget::new(1).ticks_per_period, 1, "at least a tick");
        assert_eq!(CpuBudget::new(8000).ticks_per_period, 10, "at most the period");
    }
}
