//! A container's image: a component, checked against its digest,
//! compiled (or read precompiled), its world found and its imports linked
//! once, kept by digest for every later start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wasmtime::component::{Component, InstancePre};

use super::container::ContainerState;
use super::{PodRuntime, RuntimeError};

/// The interface a `wasi:cli/command` component exports.
const CLI_RUN: &str = "wasi:cli/run@0.2";

/// The interface a `wasi:http/proxy` component exports.
const HTTP_HANDLER: &str = "wasi:http/incoming-handler@0.2";

/// Which world a component is of, as a pod runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// `wasi:cli/command`: runs `run` to its end.
    Command,
    /// `wasi:http/proxy`: serves HTTP requests, an instance each.
    Http,
}

/// A component ready to start as a container.
#[derive(Clone)]
pub struct Image {
    digest: Arc<str>,
    world: World,
    pub(crate) pre: InstancePre<ContainerState>,
}

impl Image {
    /// The component's digest (hex BLAKE3).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The component's world.
    pub fn world(&self) -> World {
        self.world
    }
}

/// The images prepared so far, by digest.
#[derive(Default)]
pub(crate) struct Images(Mutex<HashMap<String, Image>>);

impl PodRuntime {
    /// The image of component `digest`, if prepared before: starting it
    /// needs no bytes and no compiling.
    pub fn prepared(&self, digest: &str) -> Option<Image> {
        self.images.0.lock().expect("images lock").get(digest).cloned()
    }

    /// The image of component `bytes`, fetched as `digest`: checked,
    /// compiled once (on a blocking thread, or read precompiled), its
    /// world found, its imports linked.
    ///
    /// # Errors
    /// Bytes that do not hash to `digest`; not a component; a component
    /// that is not a `wasi:cli/command`, or imports what a pod cannot have.
    pub async fn prepare(self: &Arc<Self>, digest: &str, bytes: Vec<u8>) -> Result<Image, RuntimeError> {
        if let Some(image) = self.prepared(digest) {
            return Ok(image);
        }
        let (runtime, owned) = (self.clone(), digest.to_owned());
        let image = tokio::task::spawn_blocking(move || runtime.link(&owned, &bytes))
            .await
            .map_err(|e| RuntimeError::Setup(format!("the compiling thread: {e}")))??;
        self.images.0.lock().expect("images lock").insert(digest.to_owned(), image.clone());
        Ok(image)
    }

    fn link(&self, digest: &str, bytes: &[u8]) -> Result<Image, RuntimeError> {
        let name = format!("blake3:{digest}");
        let component = self.cache.load(&self.engine, &name, digest, bytes).map_err(|error| match error {
            engenho_wasm::PluginError::DigestMismatch { expected, actual, .. } => {
                RuntimeError::DigestMismatch { expected, actual }
            }
            engenho_wasm::PluginError::Invalid { message, .. } => {
                RuntimeError::Invalid { digest: digest.to_owned(), message }
            }
            other => RuntimeError::Setup(other.to_string()),
        })?;
        let world = world_of(&self.engine, &component, digest)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| RuntimeError::WrongWorld {
            digest: digest.to_owned(),
            message: format!("imports what a pod cannot be given: {e:#}"),
        })?;
        Ok(Image { digest: digest.into(), world, pre })
    }
}

/// The world `component` is of, by what it exports (a component that
/// exports both serves HTTP).
fn world_of(engine: &wasmtime::Engine, component: &Component, digest: &str) -> Result<World, RuntimeError> {
    let exports: Vec<String> = component.component_type().exports(engine).map(|(name, _)| name.to_owned()).collect();
    if exports.iter().any(|e| e.starts_with(HTTP_HANDLER)) {
        return Ok(World::Http);
    }
    if exports.iter().any(|e| e.starts_with(CLI_RUN)) {
        return Ok(World::Command);
    }
    Err(RuntimeError::WrongWorld {
        digest: digest.to_owned(),
        message: format!(
            "exports neither wasi:cli/run (a wasi:cli/command) nor wasi:http/incoming-handler (a wasi:http/proxy); \
             it exports [{}]",
            exports.join(", ")
        ),
    })
}
