//! The host side of the `controller-plugin` world: a controller component
//! configured once per instance, called once per key, its reads and writes
//! served by a [`ClusterAccess`] the caller gives each reconcile.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::pool::{InstancePool, Pooled};
use super::{CallState, Compiler, LOAD_TURN_WAIT, Limits, PluginError, PluginHost, call_error};

mod bindings {
    wasmtime::component::bindgen!({
        world: "controller-plugin",
        path: "../../wit",
        imports: { "engenho:plugins/api-client.apply": async },
        exports: { default: async },
        additional_derives: [PartialEq],
    });
}

/// The types that cross the controller world, as the host sees them.
pub mod controller_types {
    pub use super::bindings::engenho::plugins::api_client::{
        ApiError, Deletion, KindRef, ObjectWrite, PatchWrite, Propagation, Selector, Write,
    };
    pub use super::bindings::engenho::plugins::events::{EventType, ObjectRef};
    pub use super::bindings::exports::engenho::plugins::controller::{Interest, ObjectKey, Outcome, Trigger};
}

use bindings::engenho::plugins::{api_client, events, log};
use controller_types::{ApiError, EventType, Interest, KindRef, ObjectKey, ObjectRef, Outcome, Selector, Write};

/// Longest one reconcile may take in wall-clock time, its writes included
/// (its own computing is bounded by its deadline, counted in epoch ticks).
pub const RECONCILE_WALL_MAX: Duration = Duration::from_secs(120);

/// Versions one `fetch` may ask for, at most.
pub const FETCH_VERSIONS_MAX: usize = 10_000;

/// The answers to one `apply`, in order, once every write is made.
pub type Applied = Pin<Box<dyn Future<Output = Vec<Result<String, ApiError>>> + Send>>;

/// What a reconcile reads and writes through: the node's informer caches
/// and the API server's write path, under the controller's identity.
pub trait ClusterAccess: Send + Sync + 'static {
    /// The cached object, as JSON.
    ///
    /// # Errors
    /// A kind the controller did not name among its interests.
    fn get(&self, kind: &KindRef, namespace: &str, name: &str) -> Result<Option<String>, ApiError>;

    /// The version of the cached object's entry.
    ///
    /// # Errors
    /// As [`ClusterAccess::get`].
    fn get_version(&self, kind: &KindRef, namespace: &str, name: &str) -> Result<Option<u64>, ApiError>;

    /// The cached objects `selector` picks, as JSON.
    ///
    /// # Errors
    /// A kind the controller did not name; a malformed label selector.
    fn list(&self, kind: &KindRef, selector: &Selector) -> Result<Vec<String>, ApiError>;

    /// The versions of the cached objects `selector` picks.
    ///
    /// # Errors
    /// As [`ClusterAccess::list`].
    fn list_versions(&self, kind: &KindRef, selector: &Selector) -> Result<Vec<u64>, ApiError>;

    /// The cached objects at `versions` (at most [`FETCH_VERSIONS_MAX`]), as
    /// JSON, in order; `None` for a version no longer cached.
    ///
    /// # Errors
    /// A kind the controller did not name among its interests.
    fn fetch(&self, kind: &KindRef, versions: &[u64]) -> Result<Vec<Option<String>>, ApiError>;

    /// Makes `writes` concurrently; each one's answer, in order.
    fn apply(&self, writes: Vec<Write>) -> Applied;

    /// Records an event about `regarding`, in the background.
    fn emit(&self, regarding: ObjectRef, event_type: EventType, reason: String, message: String);
}

fn no_cluster() -> ApiError {
    ApiError { code: 500, reason: "InternalError".into(), message: "called outside a reconcile".into() }
}

impl api_client::Host for CallState {
    fn get(&mut self, kind: KindRef, namespace: String, name: String) -> Result<Option<String>, ApiError> {
        self.cluster.as_ref().ok_or_else(no_cluster)?.get(&kind, &namespace, &name)
    }

    fn get_version(&mut self, kind: KindRef, namespace: String, name: String) -> Result<Option<u64>, ApiError> {
        self.cluster.as_ref().ok_or_else(no_cluster)?.get_version(&kind, &namespace, &name)
    }

    fn list(&mut self, kind: KindRef, selector: Selector) -> Result<Vec<String>, ApiError> {
        self.cluster.as_ref().ok_or_else(no_cluster)?.list(&kind, &selector)
    }

    fn list_versions(&mut self, kind: KindRef, selector: Selector) -> Result<Vec<u64>, ApiError> {
        self.cluster.as_ref().ok_or_else(no_cluster)?.list_versions(&kind, &selector)
    }

    fn fetch(&mut self, kind: KindRef, versions: Vec<u64>) -> Result<Vec<Option<String>>, ApiError> {
        if versions.len() > FETCH_VERSIONS_MAX {
            return Err(ApiError {
                code: 413,
                reason: "RequestEntityTooLarge".into(),
                message: format!("one fetch may ask for {FETCH_VERSIONS_MAX} versions at most"),
            });
        }
        self.cluster.as_ref().ok_or_else(no_cluster)?.fetch(&kind, &versions)
    }

    async fn apply(&mut self, writes: Vec<Write>) -> Vec<Result<String, ApiError>> {
        match self.cluster.clone() {
            Some(cluster) => cluster.apply(writes).await,
            None => writes.iter().map(|_| Err(no_cluster())).collect(),
        }
    }
}

impl events::Host for CallState {
    fn emit(&mut self, regarding: ObjectRef, event_type: EventType, reason: String, message: String) {
        if let Some(cluster) = &self.cluster {
            cluster.emit(regarding, event_type, reason, message);
        }
    }
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        };
        CallState::log(self, level, &message);
    }
}

/// A controller component, ready to reconcile: compiled, linked, its
/// configuration accepted and its interests known.
///
/// Reconciles reuse configured instances (at most `workers` idle); one
/// that traps or runs past its deadline is dropped with its instance.
pub struct ControllerPlugin {
    name: Arc<str>,
    digest: String,
    config: String,
    limits: Limits,
    pre: bindings::ControllerPluginPre<CallState>,
    interests: Vec<Interest>,
    pool: InstancePool<bindings::ControllerPlugin>,
}

impl ControllerPlugin {
    /// Loads controller `name` from `bytes`, which must hash to `digest`,
    /// with `config` (JSON) under `limits`, keeping up to `workers`
    /// instances idle. Configures a first instance, whose interests are the
    /// controller's.
    ///
    /// # Errors
    /// A digest mismatch; bytes that are not a controller-plugin component;
    /// a configuration the controller refuses (or a first instance that
    /// traps or runs past its deadline while configuring).
    pub async fn load(
        host: &PluginHost,
        name: &str,
        digest: &str,
        bytes: &[u8],
        config: &str,
        limits: Limits,
        workers: usize,
    ) -> Result<Self, PluginError> {
        let pre = {
            let (compiler, name, digest, bytes) = (host.compiler(), name.to_owned(), digest.to_owned(), bytes.to_vec());
            host.run_blocking(&name.clone(), LOAD_TURN_WAIT, move || prepare(&compiler, &name, &digest, &bytes)).await?
        };
        let mut controller = Self {
            name: Arc::from(name),
            digest: digest.to_owned(),
            config: config.to_owned(),
            limits,
            pre,
            interests: Vec::new(),
            pool: InstancePool::new(workers.max(1), host.idle_instances.clone()),
        };
        let wall = limits.deadline + super::TURN_WAIT_MIN;
        let (first, interests) = tokio::time::timeout(wall, controller.instantiate(host))
            .await
            .unwrap_or_else(|_| Err(PluginError::Deadline { name: name.to_owned(), deadline: limits.deadline }))?;
        controller.interests = interests;
        controller.pool.keep(first);
        Ok(controller)
    }

    /// Checks that `bytes` are a component of the controller-plugin world
    /// that links against the host's imports, without running it.
    ///
    /// # Errors
    /// As [`ControllerPlugin::load`], short of configuration.
    pub fn check(host: &PluginHost, name: &str, bytes: &[u8]) -> Result<(), PluginError> {
        prepare(&host.compiler(), name, &super::digest_of(bytes), bytes).map(|_| ())
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The component's digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The kinds the controller reads, and which keys their changes queue.
    pub fn interests(&self) -> &[Interest] {
        &self.interests
    }

    /// Reconciles `key` in a configured instance, its reads and writes
    /// served by `cluster`; at most [`super::RECONCILES_IN_FLIGHT_MAX`] across
    /// the node at once (waited for up to [`super::TURN_WAIT_MIN`]). The
    /// controller's own computing runs for at most its deadline (epoch
    /// ticks, not the time its writes take); the whole reconcile for at
    /// most [`RECONCILE_WALL_MAX`].
    ///
    /// # Errors
    /// No turn in time; the call ran past a bound, trapped or ran out of
    /// memory.
    pub async fn reconcile(
        &self,
        host: &PluginHost,
        key: &ObjectKey,
        cluster: Arc<dyn ClusterAccess>,
    ) -> Result<Outcome, PluginError> {
        // A free turn is taken at once; only a wait for one is timed.
        let turn = match host.reconciles.clone().try_acquire_owned() {
            Ok(turn) => Some(turn),
            Err(_) => tokio::time::timeout(super::TURN_WAIT_MIN, host.reconciles.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
        };
        let Some(_turn) = turn else {
            return Err(PluginError::Busy {
                name: self.name.to_string(),
                message: format!("all {} of the node's reconciles were in flight", super::RECONCILES_IN_FLIGHT_MAX),
            });
        };
        tokio::time::timeout(RECONCILE_WALL_MAX, self.call(host, key, cluster)).await.unwrap_or_else(|_| {
            Err(PluginError::Deadline { name: self.name.to_string(), deadline: RECONCILE_WALL_MAX })
        })
    }

    async fn call(
        &self,
        host: &PluginHost,
        key: &ObjectKey,
        cluster: Arc<dyn ClusterAccess>,
    ) -> Result<Outcome, PluginError> {
        let mut pooled = match self.pool.take() {
            Some(pooled) => pooled,
            None => self.instantiate(host).await?.0,
        };
        pooled.store.set_epoch_deadline(1);
        let state = pooled.store.data_mut();
        state.ticks_left = super::deadline_ticks(self.limits.deadline);
        state.cluster = Some(cluster);
        let answer = pooled.instance.engenho_plugins_controller().call_reconcile(&mut pooled.store, key).await;
        pooled.store.data_mut().cluster = None;
        let outcome = answer.map_err(|e| call_error(&self.name, &self.limits, e))?;
        pooled.calls += 1;
        self.pool.keep(pooled);
        Ok(outcome)
    }

    /// A fresh, configured instance, and the interests it named.
    async fn instantiate(
        &self,
        host: &PluginHost,
    ) -> Result<(Pooled<bindings::ControllerPlugin>, Vec<Interest>), PluginError> {
        let mut store = host.store(&self.name, &self.limits, &super::Grants::default())?;
        store.set_epoch_deadline(1);
        let instance =
            self.pre.instantiate_async(&mut store).await.map_err(|e| call_error(&self.name, &self.limits, e))?;
        let interests = instance
            .engenho_plugins_controller()
            .call_configure(&mut store, &self.config)
            .await
            .map_err(|e| call_error(&self.name, &self.limits, e))?
            .map_err(|message| PluginError::Configuration { name: self.name.to_string(), message })?;
        Ok((Pooled::new(store, instance), interests))
    }
}

/// The component `bytes` compiled and linked as a controller.
fn prepare(
    host: &Compiler,
    name: &str,
    digest: &str,
    bytes: &[u8],
) -> Result<bindings::ControllerPluginPre<CallState>, PluginError> {
    let invalid = |message: String| PluginError::Invalid { name: name.to_owned(), message };
    let component = host.component(name, digest, bytes)?;
    let mut linker = host.linker()?;
    bindings::ControllerPlugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |state| state)
        .map_err(|e| invalid(format!("linking the host imports: {e:#}")))?;
    let pre =
        linker.instantiate_pre(&component).map_err(|e| invalid(format!("not a controller-plugin component: {e:#}")))?;
    bindings::ControllerPluginPre::new(pre).map_err(|e| invalid(format!("not a controller-plugin component: {e:#}")))
}
