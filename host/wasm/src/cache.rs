//! Components compiled once per (digest, engine): kept in memory, and
//! precompiled on disk under the digest and the engine's compatibility
//! hash so that a restart does not compile again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;

/// Compiled components by digest, and where they are kept precompiled.
pub struct ComponentCache {
    dir: Option<PathBuf>,
    engine_hash: String,
    compiled: Mutex<HashMap<String, Component>>,
}

impl ComponentCache {
    /// A cache in `dir` (none: memory only) for components of `engine`.
    pub fn new(dir: Option<PathBuf>, engine: &Engine) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self { dir, engine_hash: format!("{:016x}", hasher.finish()), compiled: Mutex::default() }
    }

    /// The component `bytes` (of plugin or image `name`), checked to hash
    /// to `digest` (hex BLAKE3) and to be a component, compiled once.
    ///
    /// # Errors
    /// Bytes of another digest; a core module; bytes that do not compile
    /// as a component; a cache that cannot be written.
    pub fn load(&self, engine: &Engine, name: &str, digest: &str, bytes: &[u8]) -> Result<Component, PluginError> {
        let actual = super::digest_of(bytes);
        if actual != digest {
            return Err(PluginError::DigestMismatch { name: name.to_owned(), expected: digest.to_owned(), actual });
        }
        if is_core_module(bytes) {
            return Err(PluginError::Invalid {
                name: name.to_owned(),
                message: "this is a core WebAssembly module, not a component (build it for wasm32-wasip2)".into(),
            });
        }
        if let Some(component) = self.compiled.lock().expect("component cache lock").get(digest) {
            return Ok(component.clone());
        }
        let component = match &self.dir {
            Some(dir) => self.load_precompiled(engine, dir, name, digest, bytes)?,
            None => compile(engine, name, bytes)?,
        };
        self.compiled.lock().expect("component cache lock").insert(digest.to_owned(), component.clone());
        Ok(component)
    }

    fn load_precompiled(
        &self,
        engine: &Engine,
        dir: &std::path::Path,
        name: &str,
        digest: &str,
        bytes: &[u8],
    ) -> Result<Component, PluginError> {
        let path = dir.join(format!("{digest}-{}.cwasm", self.engine_hash));
        let cache_error = |message: String| PluginError::Cache { path: path.clone(), message };
        // Read into memory rather than mapped: a file changed underneath a
        // mapping would crash the node.
        if let Ok(precompiled) = std::fs::read(&path) {
            // SAFETY: wasmtime runs precompiled code as is, so the bytes must
            // be ones this engine configuration wrote. They are: the host
            // writes the file below (atomically, by rename) into its own
            // data directory, named by the component's digest and the
            // engine's compatibility hash, and wasmtime itself refuses
            // images made by another version or configuration.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize(engine, &precompiled) };
            match loaded {
                Ok(component) => return Ok(component),
                Err(error) => tracing::warn!(path = %path.display(), %error, "recompiling a stale precompiled plugin"),
            }
        }
        let serialized = engine.precompile_component(bytes).map_err(|e| invalid(name, &e))?;
        std::fs::create_dir_all(dir).map_err(|e| cache_error(format!("creating the directory: {e}")))?;
        let partial = path.with_extension("partial");
        std::fs::write(&partial, &serialized).map_err(|e| cache_error(format!("writing: {e}")))?;
        std::fs::rename(&partial, &path).map_err(|e| cache_error(format!("renaming into place: {e}")))?;
        // SAFETY: as above; the bytes were just produced by this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &serialized) };
        component.map_err(|e| cache_error(format!("loading what was just compiled: {e:#}")))
    }
}

/// Whether `bytes` start like a core module (version 1) rather than a
/// component.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

fn compile(engine: &Engine, name: &str, bytes: &[u8]) -> Result<Component, PluginError> {
    Component::new(engine, bytes).map_err(|e| invalid(name, &e))
}

fn invalid(name: &str, error: &wasmtime::Error) -> PluginError {
    PluginError::Invalid { name: name.to_owned(), message: format!("not a loadable component: {error:#}") }
}
