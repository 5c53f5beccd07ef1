//! engenho's pod runtime: a pod's containers are WebAssembly components
//! run in wasmtime, in the node's own process. A component is named by its
//! BLAKE3 digest, checked against it, compiled once per digest and kept
//! precompiled on disk, so that starting a container never compiles a
//! known component. Each run of a container gets its own store: WASI with
//! the container's arguments, environment and directories, stdin closed,
//! stdout and stderr to its [`ContainerLog`]; its memory limit (growing
//! past it ends the run as `OOMKilled`, exit code 137); its CPU limit as a
//! budget of epoch ticks per period; and a stop that ends it at its next
//! tick, or at once while it waits.

mod container;
mod http;
mod image;
pub mod logs;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

pub use container::{Container, ContainerSpec, Exit, ExitReason, Mount, OOM_EXIT_CODE, Stopper, TRAP_EXIT_CODE};
pub use http::{REQUEST_TIMEOUT, REQUESTS_IN_FLIGHT_MAX};
pub use image::{Image, World};
pub use logs::{ContainerLog, Output};

use container::ContainerState;

/// How often the pods' engine's epoch advances: the longest a container
/// computes before it yields to the node's other tasks, and the grain of
/// stops and CPU budgets.
pub const POD_TICK: Duration = Duration::from_millis(10);

/// The period a CPU limit's budget renews over (the CFS quota period).
pub const CPU_PERIOD: Duration = Duration::from_millis(100);

/// Why a component cannot run as a container.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The bytes do not hash to the digest they were fetched by.
    #[error("the component's bytes hash to blake3:{actual}, not to blake3:{expected}")]
    DigestMismatch {
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes.
        actual: String,
    },
    /// The bytes are not a component this node can load.
    #[error("blake3:{digest} is not a loadable component: {message}")]
    Invalid {
        /// The component.
        digest: String,
        /// What is wrong.
        message: String,
    },
    /// The component is not of a world a pod can run.
    #[error("blake3:{digest} {message}")]
    WrongWorld {
        /// The component.
        digest: String,
        /// What it exports or imports that does not fit.
        message: String,
    },
    /// The engine could not be made.
    #[error("configuring wasmtime for pods: {0}")]
    Engine(String),
    /// A container could not be set up.
    #[error("setting up the container: {0}")]
    Setup(String),
}

/// The node's pod runtime: one engine with its epoch ticker, the
/// component cache, the WASI linker and the components prepared so far.
pub struct PodRuntime {
    engine: Engine,
    cache: engenho_wasm::ComponentCache,
    linker: Linker<ContainerState>,
    images: image::Images,
    ticking: Arc<AtomicBool>,
}

impl Drop for PodRuntime {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

impl PodRuntime {
    /// A runtime keeping precompiled components in `cache_dir` (none:
    /// compile once per process).
    ///
    /// # Errors
    /// The engine or its ticker could not be started.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Arc<Self>, RuntimeError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let ticking = Arc::new(AtomicBool::new(true));
        let (ticker_engine, running) = (engine.weak(), ticking.clone());
        std::thread::Builder::new()
            .name("pod-epoch".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    std::thread::sleep(POD_TICK);
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("the epoch thread: {e}")))?;
        let cache = engenho_wasm::ComponentCache::new(cache_dir, &engine);
        Ok(Arc::new(Self { engine, cache, linker, images: image::Images::default(), ticking }))
    }
}

#[cfg(test)]
mod tests;
