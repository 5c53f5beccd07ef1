//! The host side of the `admission-policy` world.

use std::sync::Arc;

use super::{
    CallState, Grants, IdleInstances, Limits, PLUGIN_CALLS_IN_FLIGHT_MAX, PluginError, PluginHost, call_error,
    deadline_ticks,
};

mod bindings {
    wasmtime::component::bindgen!({
        world: "admission-policy",
        path: "../../wit",
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

/// Calls an instance serves before it is replaced by a fresh one, so that
/// whatever a plugin leaves behind in its memory stays bounded.
const CALLS_PER_INSTANCE_MAX: u32 = 10_000;

/// A configured instance between calls.
struct Pooled {
    store: wasmtime::Store<CallState>,
    instance: bindings::AdmissionPolicy,
    calls: u32,
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
    pool: std::sync::Mutex<Vec<Pooled>>,
    idle: Arc<IdleInstances>,
    calls: Arc<tokio::sync::Semaphore>,
}

impl Drop for AdmissionPolicy {
    fn drop(&mut self) {
        let idle = self.pool.get_mut().map_or(0, |pool| pool.len());
        self.idle.give_back(u32::try_from(idle).expect("a policy keeps a few idle instances"));
    }
}

impl AdmissionPolicy {
    /// Loads plugin `name` from `bytes`, which must hash to `digest`, with
    /// `config` (JSON) under `limits`.
    ///
    /// # Errors
    /// A digest mismatch; bytes that are not an admission-policy
    /// component; a configuration the plugin refuses.
    pub fn load(
        host: &PluginHost,
        name: &str,
        digest: &str,
        bytes: &[u8],
        config: &str,
        limits: Limits,
    ) -> Result<Self, PluginError> {
        Self::load_with_grants(host, name, digest, bytes, config, limits, Grants::default())
    }

    /// As [`AdmissionPolicy::load`], with what `grants` allows the plugin to
    /// reach.
    ///
    /// # Errors
    /// As [`AdmissionPolicy::load`]; a granted directory that cannot be
    /// opened.
    pub fn load_with_grants(
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
        let pre = prepare(host, name, digest, bytes)?;
        let policy = Self {
            name: Arc::from(name),
            digest: digest.to_owned(),
            config: config.to_owned(),
            limits,
            grants,
            pre,
            pool: std::sync::Mutex::default(),
            idle: host.idle_instances.clone(),
            calls: Arc::new(tokio::sync::Semaphore::new(PLUGIN_CALLS_IN_FLIGHT_MAX as usize)),
        };
        // A configuration the plugin refuses is refused now, not on the
        // first request.
        let first = policy.instantiate(host)?;
        policy.keep_idle(first);
        Ok(policy)
    }

    /// Checks that `bytes` are a component of the admission-policy world
    /// that links against the host's imports, without running it.
    ///
    /// # Errors
    /// As [`AdmissionPolicy::load`], short of configuration.
    pub fn check(host: &PluginHost, name: &str, bytes: &[u8]) -> Result<(), PluginError> {
        prepare(host, name, &super::digest_of(bytes), bytes).map(|_| ())
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The component's digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Decides `review` on a blocking thread, never on an async runtime's
    /// workers (WASI's blocking host calls, as a write to stdout, need
    /// one): once this plugin has one of its [`PLUGIN_CALLS_IN_FLIGHT_MAX`]
    /// turns and the host one of its own, both waited for within the
    /// plugin's deadline.
    ///
    /// # Errors
    /// No free turn in time; as [`AdmissionPolicy::admit`].
    pub async fn admit_blocking(
        self: &Arc<Self>,
        host: &Arc<PluginHost>,
        review: Review,
    ) -> Result<Decision, PluginError> {
        let (deadline, waiting) = (self.limits.deadline, std::time::Instant::now());
        let Ok(Ok(turn)) = tokio::time::timeout(deadline, self.calls.clone().acquire_owned()).await else {
            return Err(PluginError::Busy {
                name: self.name.to_string(),
                message: format!("its {PLUGIN_CALLS_IN_FLIGHT_MAX} calls in flight did not end within {deadline:?}"),
            });
        };
        let (policy, call_host) = (self.clone(), host.clone());
        // Both waits together take at most the deadline.
        let left = deadline.saturating_sub(waiting.elapsed());
        host.run_blocking(&self.name, left, move || {
            let _turn = turn;
            policy.admit(&call_host, &review)
        })
        .await
    }

    /// Decides `review` on the calling thread, in a configured instance,
    /// outside the bounds of [`AdmissionPolicy::admit_blocking`]: for
    /// threads that may block (tools, benchmarks, tests).
    ///
    /// # Errors
    /// The call ran past its deadline, trapped, ran out of memory or
    /// answered malformed output.
    pub fn admit(&self, host: &PluginHost, review: &Review) -> Result<Decision, PluginError> {
        let pooled = self.pool.lock().expect("instance pool lock").pop();
        let mut pooled = match pooled {
            Some(pooled) => {
                self.idle.give_back(1);
                pooled
            }
            None => self.instantiate(host)?,
        };
        pooled.store.set_epoch_deadline(deadline_ticks(self.limits.deadline));
        let answer = pooled.instance.engenho_plugins_policy().call_admit(&mut pooled.store, review);
        // A failed instance is dropped: it may be stuck in any state.
        let decision = answer.map_err(|e| call_error(&self.name, &self.limits, e))?;
        pooled.calls += 1;
        if pooled.calls < CALLS_PER_INSTANCE_MAX {
            self.keep_idle(pooled);
        }
        if !decision.patch.is_empty() && !is_json_array(&decision.patch) {
            return Err(PluginError::MalformedOutput {
                name: self.name.to_string(),
                message: "the patch is not a JSON array of operations".into(),
            });
        }
        Ok(decision)
    }

    /// Keeps `pooled` for the next call, if this policy and the host have
    /// room for one more idle instance; drops it otherwise.
    fn keep_idle(&self, pooled: Pooled) {
        let mut pool = self.pool.lock().expect("instance pool lock");
        if pool.len() < PLUGIN_CALLS_IN_FLIGHT_MAX as usize && self.idle.take() {
            pool.push(pooled);
        }
    }

    /// A fresh, configured instance.
    fn instantiate(&self, host: &PluginHost) -> Result<Pooled, PluginError> {
        let mut store = host.store(&self.name, &self.limits, &self.grants)?;
        let instance = self.pre.instantiate(&mut store).map_err(|e| call_error(&self.name, &self.limits, e))?;
        instance
            .engenho_plugins_policy()
            .call_configure(&mut store, &self.config)
            .map_err(|e| call_error(&self.name, &self.limits, e))?
            .map_err(|message| PluginError::Configuration { name: self.name.to_string(), message })?;
        Ok(Pooled { store, instance, calls: 0 })
    }
}

/// The component `bytes` compiled and linked as an admission policy.
fn prepare(
    host: &PluginHost,
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
