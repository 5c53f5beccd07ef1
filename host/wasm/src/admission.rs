//! The host side of the `admission-policy` world.

use std::sync::Arc;
use std::time::Instant;

use super::pool::{InstancePool, Pooled};
use super::{
    CallState, Compiler, Grants, LOAD_TURN_WAIT, Limits, PLUGIN_CALLS_IN_FLIGHT_MAX, PluginError, PluginHost,
    TURN_WAIT_MIN, call_error,
};

mod bindings {
    wasmtime::component::bindgen!({
        world: "admission-policy",
        path: "../../wit",
        exports: { default: async },
    });
}

use bindings::engenho::plugins::log;

pub use bindings::engenho::plugins::admission_types::{Decision, Operation, Review, UserInfo};

impl bindings::engenho::plugins::admission_types::Host for CallState {}

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

/// An admission policy, ready to decide: its component checked and
/// compiled, its imports linked, its configuration accepted.
///
/// Calls reuse configured instances from a small pool (instantiating and
/// configuring per call measured about twice the cost of the call itself);
/// an instance that traps or runs past its deadline is dropped, and every
/// instance is replaced after a bounded number of calls. A policy keeps at
/// most [`PLUGIN_CALLS_IN_FLIGHT_MAX`] instances idle, and only while the
/// host's budget of idle instances across plugins has room.
pub struct AdmissionPolicy {
    name: Arc<str>,
    digest: String,
    config: String,
    limits: Limits,
    grants: Grants,
    pre: bindings::AdmissionPolicyPre<CallState>,
    pool: InstancePool<bindings::AdmissionPolicy>,
    calls: tokio::sync::Semaphore,
}

impl AdmissionPolicy {
    /// Loads plugin `name` from `bytes`, which must hash to `digest`, with
    /// `config` (JSON) under `limits`.
    ///
    /// # Errors
    /// A digest mismatch; bytes that are not an admission-policy
    /// component; a configuration the plugin refuses.
    pub async fn load(
        host: &PluginHost,
        name: &str,
        digest: &str,
        bytes: &[u8],
        config: &str,
        limits: Limits,
    ) -> Result<Self, PluginError> {
        Self::load_with_grants(host, name, digest, bytes, config, limits, Grants::default()).await
    }

    /// As [`AdmissionPolicy::load`], with what `grants` allows the plugin to
    /// reach. Compiling runs on a blocking thread, once one of the host's
    /// turns is free (waited for at most [`LOAD_TURN_WAIT`]).
    ///
    /// # Errors
    /// As [`AdmissionPolicy::load`]; a granted directory that cannot be
    /// opened; no turn in time.
    pub async fn load_with_grants(
        host: &PluginHost,
        name: &str,
        digest: &str,
        bytes: &[u8],
        config: &str,
        limits: Limits,
        grants: Grants,
    ) -> Result<Self, PluginError> {
        let grants =
            grants.checked(&host.reserved).map_err(|message| PluginError::Grant { name: name.to_owned(), message })?;
        let pre = {
            let (compiler, name, digest, bytes) = (host.compiler(), name.to_owned(), digest.to_owned(), bytes.to_vec());
            host.run_blocking(&name.clone(), LOAD_TURN_WAIT, move || prepare(&compiler, &name, &digest, &bytes)).await?
        };
        let policy = Self {
            name: Arc::from(name),
            digest: digest.to_owned(),
            config: config.to_owned(),
            limits,
            grants,
            pre,
            pool: InstancePool::new(PLUGIN_CALLS_IN_FLIGHT_MAX as usize, host.idle_instances.clone()),
            calls: tokio::sync::Semaphore::new(PLUGIN_CALLS_IN_FLIGHT_MAX as usize),
        };
        // A configuration the plugin refuses is refused now, not on the
        // first request.
        let first = policy.within_deadline(policy.instantiate(host)).await?;
        policy.pool.keep(first);
        Ok(policy)
    }

    /// Checks that `bytes` are a component of the admission-policy world
    /// that links against the host's imports, without running it.
    ///
    /// # Errors
    /// As [`AdmissionPolicy::load`], short of configuration.
    pub fn check(host: &PluginHost, name: &str, bytes: &[u8]) -> Result<(), PluginError> {
        prepare(&host.compiler(), name, &super::digest_of(bytes), bytes).map(|_| ())
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The component's digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Decides `review` in a configured instance, as a future that yields
    /// to the async runtime at every epoch tick (so a plugin that computes
    /// holds a runtime worker for one tick at a time): once this plugin has
    /// one of its [`PLUGIN_CALLS_IN_FLIGHT_MAX`] turns and the host one of
    /// its own, both waited for within the plugin's deadline or
    /// [`TURN_WAIT_MIN`], whichever is longer (a busy node's queue is not
    /// the plugin's fault); the call itself then runs for at most its
    /// deadline.
    ///
    /// # Errors
    /// No free turn in time; the call ran past its deadline, trapped, ran
    /// out of memory or answered malformed output.
    pub async fn admit(&self, host: &PluginHost, review: &Review) -> Result<Decision, PluginError> {
        let (wait, waiting) = (self.limits.deadline.max(TURN_WAIT_MIN), Instant::now());
        let Ok(Ok(_turn)) = tokio::time::timeout(wait, self.calls.acquire()).await else {
            return Err(PluginError::Busy {
                name: self.name.to_string(),
                message: format!("its {PLUGIN_CALLS_IN_FLIGHT_MAX} calls in flight did not end within {wait:?}"),
            });
        };
        // Both waits together take at most `wait`.
        let _host_turn = host.turn(&self.name, wait.saturating_sub(waiting.elapsed())).await?;
        let decision = self.within_deadline(self.call(host, review)).await?;
        if !decision.patch.is_empty() && !is_json_array(&decision.patch) {
            return Err(PluginError::MalformedOutput {
                name: self.name.to_string(),
                message: "the patch is not a JSON array of operations".into(),
            });
        }
        Ok(decision)
    }

    /// One call in an idle instance (or a fresh one), which goes back to
    /// the pool unless the call failed or the instance served its calls.
    async fn call(&self, host: &PluginHost, review: &Review) -> Result<Decision, PluginError> {
        let mut pooled = match self.pool.take() {
            Some(pooled) => pooled,
            None => self.instantiate(host).await?,
        };
        // The first yield comes a tick from now, not at once for an
        // instance that sat idle across ticks.
        pooled.store.set_epoch_deadline(1);
        pooled.store.data_mut().ticks_left = super::deadline_ticks(self.limits.deadline);
        let answer = pooled.instance.engenho_plugins_policy().call_admit(&mut pooled.store, review).await;
        // A failed instance is dropped: it may be stuck in any state.
        let decision = answer.map_err(|e| call_error(&self.name, &self.limits, e))?;
        pooled.calls += 1;
        self.pool.keep(pooled);
        Ok(decision)
    }

    /// `work` cut off when it has taken its deadline and [`TURN_WAIT_MIN`]
    /// more in wall-clock time: the deadline of the plugin's own running is
    /// counted in epoch ticks; this bounds a call stuck in a host call or
    /// starved of the runtime. A call cut off is dropped with its instance.
    async fn within_deadline<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, PluginError>>,
    ) -> Result<T, PluginError> {
        let deadline = self.limits.deadline;
        tokio::time::timeout(deadline + TURN_WAIT_MIN, work)
            .await
            .unwrap_or_else(|_| Err(PluginError::Deadline { name: self.name.to_string(), deadline }))
    }

    /// A fresh, configured instance.
    async fn instantiate(&self, host: &PluginHost) -> Result<Pooled<bindings::AdmissionPolicy>, PluginError> {
        let mut store = host.store(&self.name, &self.limits, &self.grants)?;
        let instance =
            self.pre.instantiate_async(&mut store).await.map_err(|e| call_error(&self.name, &self.limits, e))?;
        instance
            .engenho_plugins_policy()
            .call_configure(&mut store, &self.config)
            .await
            .map_err(|e| call_error(&self.name, &self.limits, e))?
            .map_err(|message| PluginError::Configuration { name: self.name.to_string(), message })?;
        Ok(Pooled::new(store, instance))
    }
}

/// The component `bytes` compiled and linked as an admission policy.
fn prepare(
    host: &Compiler,
    name: &str,
    digest: &str,
    bytes: &[u8],
) -> Result<bindings::AdmissionPolicyPre<CallState>, PluginError> {
    let invalid = |message: String| PluginError::Invalid { name: name.to_owned(), message };
    let component = host.component(name, digest, bytes)?;
    let mut linker = host.linker()?;
    bindings::AdmissionPolicy::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |state| state)
        .map_err(|e| invalid(format!("linking the host imports: {e:#}")))?;
    let pre =
        linker.instantiate_pre(&component).map_err(|e| invalid(format!("not an admission-policy component: {e:#}")))?;
    bindings::AdmissionPolicyPre::new(pre).map_err(|e| invalid(format!("not an admission-policy component: {e:#}")))
}

/// Whether `text` looks like a JSON array (the host parses it fully when it
/// applies the patch).
fn is_json_array(text: &str) -> bool {
    let text = text.trim();
    text.starts_with('[') && text.ends_with(']')
}
