//! The host side of the `scheduler-plugin` world: a scheduler plugin
//! component whose instances each keep their own node table, kept current
//! by batches of changes, and judge the pod last prepared.
//!
//! Unlike the other worlds' instances, a scheduler instance is long-lived
//! (its table is its state) and belongs to its caller, which calls it one
//! call at a time; every node keeps at most [`SCHEDULER_INSTANCES_MAX`].

use std::sync::Arc;

use engenho_scheduler as sdk;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;

use super::{CallState, Compiler, LOAD_TURN_WAIT, Limits, PluginError, PluginHost, call_error};

mod bindings {
    wasmtime::component::bindgen!({
        world: "scheduler-plugin",
        path: "../../wit",
        exports: { default: async },
    });
}

mod convert;

use bindings::engenho::plugins::log;
use bindings::engenho::plugins::scheduler_types as wit;

/// Scheduler plugin instances a node keeps at once, at most (each holds one
/// of the pooling allocator's instance slots for as long as it lives).
pub const SCHEDULER_INSTANCES_MAX: u32 = 48;

/// Scheduler plugin instances a trial leaves free for the scheduler, at
/// least: two default profiles' worth, what the scheduler needs to swap a
/// profile (it starts the new instances before it drops the old).
pub const SCHEDULER_INSTANCES_SPARED: u32 = 16;

const _: () = assert!(SCHEDULER_INSTANCES_SPARED < SCHEDULER_INSTANCES_MAX, "a trial can take an instance at all");

impl PluginHost {
    /// Scheduler plugin instances the node could still start now.
    pub fn scheduler_instances_free(&self) -> u32 {
        u32::try_from(self.scheduler_instances.available_permits()).unwrap_or(u32::MAX)
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

impl wit::Host for CallState {}

/// The pod a cycle judges, shared by its plugins' instances: each takes
/// the parts it reads, and keeps the pod to know it when it is placed.
pub struct PodRecord(Arc<sdk::Pod>);

impl PodRecord {
    /// `pod`, for the instances of a cycle.
    pub fn new(pod: &sdk::Pod) -> Self {
        Self(Arc::new(pod.clone()))
    }
}

/// A scheduler plugin component, compiled and linked, its configuration
/// accepted: what makes instances.
pub struct SchedulerPlugin {
    name: Arc<str>,
    digest: String,
    config: String,
    limits: Limits,
    pre: bindings::SchedulerPluginPre<CallState>,
    abilities: sdk::Abilities,
}

impl SchedulerPlugin {
    /// Loads scheduler plugin `name` from `bytes`, which must hash to
    /// `digest`, with `config` (JSON) under `limits`; configures a first
    /// instance to learn the plugin's abilities (and to refuse a
    /// configuration it refuses).
    ///
    /// # Errors
    /// A digest mismatch; bytes that are not a scheduler-plugin component; a
    /// configuration the plugin refuses, or a first instance that traps or
    /// runs past its deadline while configuring.
    pub async fn load(
        host: &PluginHost,
        name: &str,
        digest: &str,
        bytes: &[u8],
        config: &str,
        limits: Limits,
    ) -> Result<Self, PluginError> {
        let pre = {
            let (compiler, name, digest, bytes) = (host.compiler(), name.to_owned(), digest.to_owned(), bytes.to_vec());
            host.run_blocking(&name.clone(), LOAD_TURN_WAIT, move || prepare(&compiler, &name, &digest, &bytes)).await?
        };
        let mut plugin = Self {
            name: Arc::from(name),
            digest: digest.to_owned(),
            config: config.to_owned(),
            limits,
            pre,
            abilities: sdk::Abilities::default(),
        };
        let first = plugin.instance(host).await?;
        plugin.abilities = first.abilities;
        Ok(plugin)
    }

    /// Checks that `bytes` are a component of the scheduler-plugin world
    /// that links against the host's imports, without running it.
    ///
    /// # Errors
    /// As [`SchedulerPlugin::load`], short of configuration.
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

    /// The configuration (JSON) its instances are configured with.
    pub fn config(&self) -> &str {
        &self.config
    }

    /// Which calls the plugin takes part in.
    pub fn abilities(&self) -> sdk::Abilities {
        self.abilities
    }

    /// A fresh, configured instance with an empty table.
    ///
    /// # Errors
    /// The node already keeps [`SCHEDULER_INSTANCES_MAX`] instances; the
    /// instance trapped or ran past its deadline while configuring, or
    /// refused its configuration.
    pub async fn instance(&self, host: &PluginHost) -> Result<SchedulerInstance, PluginError> {
        let slot = host.scheduler_instances.clone().try_acquire_owned().map_err(|_| PluginError::Busy {
            name: self.name.to_string(),
            message: format!("the node already keeps {SCHEDULER_INSTANCES_MAX} scheduler plugin instances"),
        })?;
        self.configured(host, slot).await
    }

    /// A fresh instance, as [`SchedulerPlugin::instance`], for a caller
    /// that must not starve the scheduler (a trial): taken only while more
    /// than [`SCHEDULER_INSTANCES_SPARED`] instances are free. A trial runs
    /// one at a time on a node, so no other spared taker races it.
    ///
    /// # Errors
    /// No more than [`SCHEDULER_INSTANCES_SPARED`] instances are free; as
    /// [`SchedulerPlugin::instance`].
    pub async fn spare_instance(&self, host: &PluginHost) -> Result<SchedulerInstance, PluginError> {
        let free = host.scheduler_instances_free();
        if free <= SCHEDULER_INSTANCES_SPARED {
            return Err(PluginError::Busy {
                name: self.name.to_string(),
                message: format!(
                    "{free} of the node's {SCHEDULER_INSTANCES_MAX} scheduler plugin instances are free, and \
                     {SCHEDULER_INSTANCES_SPARED} are kept for the scheduler"
                ),
            });
        }
        let slot = host.scheduler_instances.clone().try_acquire_owned().map_err(|_| PluginError::Busy {
            name: self.name.to_string(),
            message: format!("the node already keeps {SCHEDULER_INSTANCES_MAX} scheduler plugin instances"),
        })?;
        self.configured(host, slot).await
    }

    /// A fresh instance holding `slot`, configured.
    async fn configured(
        &self,
        host: &PluginHost,
        slot: OwnedSemaphorePermit,
    ) -> Result<SchedulerInstance, PluginError> {
        let mut store = host.store(&self.name, &self.limits, &super::Grants::default())?;
        store.set_epoch_deadline(1);
        store.data_mut().ticks_left = super::deadline_ticks(self.limits.deadline);
        let instance =
            self.pre.instantiate_async(&mut store).await.map_err(|e| call_error(&self.name, &self.limits, e))?;
        let abilities = instance
            .engenho_plugins_scheduler()
            .call_configure(&mut store, &self.config)
            .await
            .map_err(|e| call_error(&self.name, &self.limits, e))?
            .map_err(|message| PluginError::Configuration { name: self.name.to_string(), message })?;
        Ok(SchedulerInstance {
            name: self.name.clone(),
            limits: self.limits,
            store,
            instance,
            abilities: convert::abilities(abilities),
            prepared: None,
            _slot: slot,
        })
    }
}

/// One configured instance of a scheduler plugin and its table. A call that
/// fails leaves the instance in an unknown state: its caller drops it.
pub struct SchedulerInstance {
    name: Arc<str>,
    limits: Limits,
    store: Store<CallState>,
    instance: bindings::SchedulerPlugin,
    abilities: sdk::Abilities,
    /// The pod of the last `prepare`, until a change places it.
    prepared: Option<Arc<sdk::Pod>>,
    _slot: OwnedSemaphorePermit,
}

impl SchedulerInstance {
    /// Which calls the plugin takes part in.
    pub fn abilities(&self) -> sdk::Abilities {
        self.abilities
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bytes of linear memory the instance was granted (its memories
    /// together): what its table and its heap cost.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limits.memory_bytes
    }

    /// Applies `changes` to the instance's table, in order, and takes
    /// `pod` as the pod the filter and score calls that follow judge; which
    /// of them the pod needs. The first placement of the pod prepared last
    /// crosses as a reference to it, not as the pod again.
    ///
    /// # Errors
    /// No turn in time; the call trapped, ran out of memory or ran past its
    /// deadline.
    pub async fn prepare(
        &mut self,
        host: &PluginHost,
        changes: &[sdk::Change],
        pod: &PodRecord,
    ) -> Result<sdk::Plan, PluginError> {
        let mut prepared = self.prepared.take();
        let changes = crossing(changes, &mut prepared, self.abilities.pod_parts);
        let record = convert::pod(&pod.0, self.abilities.pod_parts);
        let _turn = self.begin(host).await?;
        let plan = self
            .instance
            .engenho_plugins_scheduler()
            .call_prepare(&mut self.store, &changes, &record)
            .await
            .map_err(|e| call_error(&self.name, &self.limits, e))?;
        self.prepared = Some(pod.0.clone());
        Ok(sdk::Plan { filter: plan.filter, score: plan.score })
    }

    /// The plugin's verdict on each of `candidates` for the prepared pod,
    /// under `assumptions`, in order.
    ///
    /// # Errors
    /// As [`SchedulerInstance::prepare`]; an answer with another number of
    /// verdicts than candidates.
    pub async fn filter(
        &mut self,
        host: &PluginHost,
        candidates: &[u32],
        assumptions: &sdk::Assumptions,
    ) -> Result<sdk::Verdicts, PluginError> {
        let assumptions = convert::assumptions(assumptions, self.abilities.pod_parts);
        let _turn = self.begin(host).await?;
        let answer = self
            .instance
            .engenho_plugins_scheduler()
            .call_filter(&mut self.store, candidates, &assumptions)
            .await
            .map_err(|e| call_error(&self.name, &self.limits, e))?;
        let refusals = answer.refusals.into_iter().map(convert::refusal).collect();
        let verdicts = sdk::Verdicts::from_parts(refusals, answer.by_candidate)
            .map_err(|message| PluginError::MalformedOutput { name: self.name.to_string(), message })?;
        checked_verdicts(&self.name, verdicts, candidates.len())
    }

    /// The plugin's score (0 to 100) of each of `nodes` for the prepared
    /// pod, in order.
    ///
    /// # Errors
    /// As [`SchedulerInstance::prepare`]; an answer with another number of
    /// scores than nodes, or a score above 100.
    pub async fn score(&mut self, host: &PluginHost, nodes: &[u32]) -> Result<Vec<u32>, PluginError> {
        let _turn = self.begin(host).await?;
        let answer = self
            .instance
            .engenho_plugins_scheduler()
            .call_score(&mut self.store, nodes)
            .await
            .map_err(|e| call_error(&self.name, &self.limits, e))?;
        checked_scores(&self.name, answer, nodes.len())
    }

    /// One of the host's call turns, and the call's deadline set.
    async fn begin(&mut self, host: &PluginHost) -> Result<OwnedSemaphorePermit, PluginError> {
        let turn = host.turn(&self.name, super::TURN_WAIT_MIN).await?;
        self.store.set_epoch_deadline(1);
        self.store.data_mut().ticks_left = super::deadline_ticks(self.limits.deadline);
        Ok(turn)
    }
}

/// `changes` as they cross to an instance reading `parts` of pods: the
/// first placement of `prepared` (the pod it judged last, which that
/// placement spends) as a reference to it.
fn crossing(changes: &[sdk::Change], prepared: &mut Option<Arc<sdk::Pod>>, parts: sdk::PodParts) -> Vec<wit::Change> {
    changes
        .iter()
        .map(|change| match change {
            sdk::Change::PodPlaced(node, placed)
                if prepared.as_deref().is_some_and(|prepared| placed.same_but_node_name(prepared)) =>
            {
                *prepared = None;
                wit::Change::PreparedPlaced(*node)
            }
            other => convert::change(other, parts),
        })
        .collect()
}

/// `verdicts`, plugin `name`'s answer to a filter of `candidates` nodes,
/// as a component's or a natively compiled plugin's.
///
/// # Errors
/// Another number of verdicts than candidates.
pub fn checked_verdicts(name: &str, verdicts: sdk::Verdicts, candidates: usize) -> Result<sdk::Verdicts, PluginError> {
    if verdicts.len() != candidates {
        let message = format!("{} verdicts for {candidates} candidate nodes", verdicts.len());
        return Err(PluginError::MalformedOutput { name: name.to_owned(), message });
    }
    Ok(verdicts)
}

/// `scores`, plugin `name`'s scores of `nodes` nodes, as a component's or a
/// natively compiled plugin's.
///
/// # Errors
/// Another number of scores than nodes; a score above
/// [`sdk::MAX_NODE_SCORE`].
pub fn checked_scores(name: &str, scores: Vec<u32>, nodes: usize) -> Result<Vec<u32>, PluginError> {
    let malformed = |message: String| PluginError::MalformedOutput { name: name.to_owned(), message };
    if scores.len() != nodes {
        return Err(malformed(format!("{} scores for {nodes} nodes", scores.len())));
    }
    if let Some(score) = scores.iter().find(|s| **s > sdk::MAX_NODE_SCORE) {
        return Err(malformed(format!("a score of {score}, above {}", sdk::MAX_NODE_SCORE)));
    }
    Ok(scores)
}

/// The component `bytes` compiled and linked as a scheduler plugin.
fn prepare(
    host: &Compiler,
    name: &str,
    digest: &str,
    bytes: &[u8],
) -> Result<bindings::SchedulerPluginPre<CallState>, PluginError> {
    let invalid = |message: String| PluginError::Invalid { name: name.to_owned(), message };
    let component = host.component(name, digest, bytes)?;
    let mut linker = host.linker()?;
    bindings::SchedulerPlugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |state| state)
        .map_err(|e| invalid(format!("linking the host imports: {e:#}")))?;
    let pre =
        linker.instantiate_pre(&component).map_err(|e| invalid(format!("not a scheduler-plugin component: {e:#}")))?;
    bindings::SchedulerPluginPre::new(pre).map_err(|e| invalid(format!("not a scheduler-plugin component: {e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prepared_pod_crosses_once_as_a_reference_when_placed() {
        // Goal: the placement of the pod an instance judged last (the
        // table names its node) crosses as `prepared-placed`, once; other
        // placements, and that pod's next, cross whole.
        let pod = |uid: &str| sdk::Pod { uid: uid.into(), ..sdk::Pod::default() };
        let placed = |uid: &str| sdk::Pod { node_name: "a".into(), ..pod(uid) };
        let changes = [
            sdk::Change::PodPlaced(0, placed("other")),
            sdk::Change::PodPlaced(0, placed("judged")),
            sdk::Change::PodPlaced(0, placed("judged")),
        ];
        let mut prepared = Some(Arc::new(pod("judged")));
        let crossed = crossing(&changes, &mut prepared, sdk::PodParts::ALL);
        assert!(prepared.is_none(), "spent");
        assert!(matches!(&crossed[0], wit::Change::PodPlaced(p) if p.pod.uid == "other"));
        assert!(matches!(crossed[1], wit::Change::PreparedPlaced(0)));
        assert!(matches!(&crossed[2], wit::Change::PodPlaced(p) if p.pod.uid == "judged"));
    }
}
