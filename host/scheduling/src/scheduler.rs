//! The scheduler loop: it follows nodes, pods and namespaces (informer
//! changes, coalesced by object), keeps the node table and the queue, runs
//! one cycle at a time with the profile a pod names, assumes the pod on the
//! chosen node and binds it in the background (a failed binding forgets the
//! assumption and queues the pod again).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engenho_control::Change;
use engenho_scheduler as sdk;
use engenho_wasm::{PluginError, PluginHost, SchedulerPlugin};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, watch};

use super::cycle::{Cycle, CycleError, Decision, FitError, PluginRun, Runner};
use super::preemption::{self, Budget, Candidate, Preemption};
use super::queue::SchedulingQueue;
use super::table::Table;
use super::view;

/// Bindings in flight at once, at most.
const BINDINGS_IN_FLIGHT_MAX: usize = 64;

/// How far the search for preemption victims moves its start each time
/// (a prime, so that every node gets its turn to be first).
const PREEMPTION_STRIDE: usize = 7919;

/// Cycles a new version of a profile runs before it is trusted: a plugin
/// failure in any of them brings back the version before it.
pub const PROBATION_CYCLES: u32 = 5;

/// A pod the scheduler writes about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

/// A binding's answer: the pod, the node, and whether it was bound.
type Bound = (PodRef, String, Result<(), String>);

/// A future the loop waits for.
pub type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the scheduler writes, through the API server under its own
/// identity.
pub trait Binder: Send + Sync + 'static {
    /// Binds `pod` to node `node` (`pods/binding`).
    fn bind(&self, pod: PodRef, node: String) -> Pending<Result<(), String>>;

    /// Records that `pod` found no node: `PodScheduled=False` with `reason`
    /// and `message` (and `status.nominatedNodeName` when preemption made
    /// room for it on a node), and a `FailedScheduling` Event.
    fn unschedulable(
        &self,
        pod: PodRef,
        reason: &'static str,
        message: String,
        nominated: Option<String>,
    ) -> Pending<()>;

    /// Evicts `victims` from `node` to make room for `pod` (each marked
    /// `DisruptionTarget`, deleted, and told by a `Preempted` Event), and
    /// takes their nomination from `displaced`, pods of lower priority
    /// nominated to that node.
    fn preempt(&self, pod: PodRef, node: String, victims: Vec<PodRef>, displaced: Vec<PodRef>) -> Pending<()>;
}

/// A plugin of a profile, loaded.
#[derive(Clone)]
pub struct ProfilePlugin {
    /// Its name in the profile.
    pub name: String,
    /// Its weight in the sum of scores.
    pub weight: u32,
    /// The loaded component.
    pub plugin: Arc<SchedulerPlugin>,
}

/// A profile as the loop runs it.
#[derive(Clone)]
pub struct ProfileSpec {
    /// Its plugins, in order.
    pub plugins: Vec<ProfilePlugin>,
    /// The share of nodes scored at most (`None`: adaptive).
    pub percentage_of_nodes_to_score: Option<u32>,
}

/// The profiles by the scheduler name pods give.
pub type Profiles = BTreeMap<String, Arc<ProfileSpec>>;

/// A version of a profile the scheduler gave up on.
#[derive(Clone)]
pub struct Failed {
    /// The version that failed (its first cycles, or its start).
    pub failed: Arc<ProfileSpec>,
    /// The version running again in its place, if one ran before it.
    pub restored: Option<Arc<ProfileSpec>>,
    /// What failed, naming the plugin.
    pub reason: String,
}

/// The failed versions by scheduler name: each stays until another version
/// of its profile is given.
pub type FailedProfiles = BTreeMap<String, Failed>;

/// The selector of the Services, ReplicaSets and StatefulSets that select a
/// pod (of a namespace, with labels), all together; `None` when none does:
/// what default topology spread constraints count.
pub type DefaultSpreadSelector =
    Arc<dyn Fn(&str, &BTreeMap<String, String>) -> Option<sdk::LabelSelector> + Send + Sync>;

/// The PodDisruptionBudgets of the cluster, read at the moment of asking.
pub type BudgetReader = Arc<dyn Fn() -> Vec<Budget> + Send + Sync>;

/// What the loop reads of the cluster beyond nodes, pods and namespaces.
#[derive(Clone)]
pub struct Lookups {
    /// The selector that default topology spread constraints count.
    pub default_spread: DefaultSpreadSelector,
    /// The budgets preemption respects.
    pub budgets: BudgetReader,
}

/// Scheduler plugins compiled into the host, by name: given a plugin's
/// name and its configuration (JSON), the plugin configured, behind the
/// SDK's [`sdk::Judge`], and the calls it takes part in (or why it refused
/// the configuration); `None` for a plugin the host does not hold. A
/// scheduler given these runs them in place of the components of the same
/// names, which is how a node measures what the component boundary costs
/// end to end; the profile's plugins are still checked and loaded as
/// components.
pub type NativePlugins = Arc<dyn Fn(&str, &str) -> Option<Result<NativePlugin, String>> + Send + Sync>;

/// A scheduler plugin compiled into the host, configured: the plugin
/// behind the SDK's [`sdk::Judge`], and the calls it takes part in.
pub type NativePlugin = (Box<dyn sdk::Judge>, sdk::Abilities);

/// Informer changes the loop has yet to read, the latest per object.
#[derive(Default)]
pub struct Inbox {
    changes: Mutex<HashMap<(Source, String), Change>>,
    arrived: Notify,
}

/// Which informer a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Nodes.
    Nodes,
    /// Pods.
    Pods,
    /// Namespaces.
    Namespaces,
}

impl Inbox {
    /// Keeps `change` of `source` for the loop, merged with one of the same
    /// object still unread (the first `old`, the latest `new`).
    pub fn push(&self, source: Source, change: &Change) {
        let Some(key) = change.new.as_ref().or(change.old.as_ref()).map(|c| c.key.clone()) else { return };
        let mut changes = self.changes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        changes.entry((source, key)).and_modify(|kept| kept.new = change.new.clone()).or_insert_with(|| change.clone());
        drop(changes);
        self.arrived.notify_one();
    }

    fn take(&self) -> Vec<((Source, String), Change)> {
        let mut changes = self.changes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        changes.drain().collect()
    }
}

/// A pod waiting for a node.
struct Waiting {
    pod: Arc<sdk::Pod>,
    scheduler_name: String,
    /// Whether it may evict pods of lower priority (`preemptionPolicy`).
    preempts: bool,
}

/// A pod nominated to a node where preemption makes room for it: it counts
/// there for pods of no higher priority until it is bound.
struct Nominated {
    node: String,
    pod: Arc<sdk::Pod>,
}

/// A profile's running cycle and the spec it was made from.
struct Running {
    spec: Arc<ProfileSpec>,
    cycle: Cycle,
    /// The version before it, kept while this one is on probation.
    previous: Option<Box<Running>>,
    probation_left: u32,
}

impl Running {
    /// A cycle of `spec` on probation, `previous` ready to take over.
    fn new(spec: Arc<ProfileSpec>, cycle: Cycle, previous: Option<Running>) -> Self {
        let previous = previous.map(|mut p| {
            p.previous = None;
            Box::new(p)
        });
        Self { spec, cycle, previous, probation_left: PROBATION_CYCLES }
    }

    /// One more cycle passed; the previous version goes once probation ends.
    fn passed(&mut self) {
        self.probation_left = self.probation_left.saturating_sub(1);
        if self.probation_left == 0 {
            self.previous = None;
        }
    }
}

/// The scheduler of one leadership term.
pub struct Scheduler {
    host: Arc<PluginHost>,
    binder: Arc<dyn Binder>,
    inbox: Arc<Inbox>,
    profiles: watch::Receiver<Profiles>,
    failed: watch::Sender<FailedProfiles>,
    lookups: Lookups,
    table: Table,
    queue: SchedulingQueue,
    waiting: HashMap<String, Waiting>,
    /// Pods assumed on a node, their binding in flight.
    binding: HashMap<String, Waiting>,
    nominated: HashMap<String, Nominated>,
    /// Bound pods being deleted.
    terminating: HashSet<String>,
    /// Where the next search for preemption victims starts.
    preemption_offset: usize,
    namespaces: view::NamespaceLabels,
    running: BTreeMap<String, Running>,
    /// Pods named by no profile, already told so.
    told_unknown: HashMap<String, String>,
    bindings: (mpsc::Sender<Bound>, mpsc::Receiver<Bound>),
    in_flight: usize,
    natives: Option<NativePlugins>,
    /// Where bindings and status writes run: the runtime the scheduler was
    /// made on, so that its cycles may run on a thread of their own.
    spawner: tokio::runtime::Handle,
}

impl Scheduler {
    /// A scheduler reading `inbox`, running `profiles` (and telling
    /// `failed` which versions it gave up on), writing through `binder`
    /// on the runtime it is made on, reading the rest of the cluster
    /// through `lookups`.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(
        host: Arc<PluginHost>,
        binder: Arc<dyn Binder>,
        inbox: Arc<Inbox>,
        (profiles, failed): (watch::Receiver<Profiles>, watch::Sender<FailedProfiles>),
        lookups: Lookups,
    ) -> Self {
        // The profiles as they stand are the first to start.
        let mut profiles = profiles;
        profiles.mark_changed();
        Self {
            host,
            binder,
            inbox,
            profiles,
            failed,
            lookups,
            table: Table::new(),
            queue: SchedulingQueue::new(),
            waiting: HashMap::new(),
            binding: HashMap::new(),
            nominated: HashMap::new(),
            terminating: HashSet::new(),
            preemption_offset: 0,
            namespaces: HashMap::new(),
            running: BTreeMap::new(),
            told_unknown: HashMap::new(),
            bindings: mpsc::channel(BINDINGS_IN_FLIGHT_MAX),
            in_flight: 0,
            natives: None,
            spawner: tokio::runtime::Handle::current(),
        }
    }

    /// The scheduler, running the plugins `natives` holds compiled into
    /// the host in place of their components.
    #[must_use]
    pub fn with_native_plugins(mut self, natives: NativePlugins) -> Self {
        self.natives = Some(natives);
        self
    }

    /// Schedules until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            self.read_inbox();
            self.refresh_profiles().await;
            while let Ok((pod, node, result)) = self.bindings.1.try_recv() {
                self.bound(pod, node, result);
            }
            let now = Instant::now();
            if self.in_flight < BINDINGS_IN_FLIGHT_MAX
                && let Some(uid) = self.queue.pop(now)
            {
                self.schedule(&uid).await;
                self.trim_log();
                continue;
            }
            let wake =
                self.queue.next_ready_at().map_or(Duration::from_secs(1), |at| at.saturating_duration_since(now));
            tokio::select! {
                () = self.inbox.arrived.notified() => {}
                answer = self.bindings.1.recv() => if let Some((pod, node, result)) = answer { self.bound(pod, node, result) },
                // Seen here, read by the next refresh.
                _ = self.profiles.changed() => self.profiles.mark_changed(),
                () = tokio::time::sleep(wake.max(Duration::from_millis(1))) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    fn read_inbox(&mut self) {
        let mut helps = false;
        let changes = self.inbox.take();
        // Namespaces first: pods read their labels.
        for ((source, _), change) in changes.iter().filter(|((s, _), _)| *s == Source::Namespaces) {
            debug_assert_eq!(*source, Source::Namespaces);
            self.namespace_changed(change);
        }
        for ((source, _), change) in &changes {
            match source {
                Source::Nodes => {
                    self.node_changed(change);
                    helps = true;
                }
                Source::Pods => helps |= self.pod_changed(change),
                Source::Namespaces => {}
            }
        }
        if helps {
            self.queue.cluster_changed(Instant::now());
        }
    }

    fn namespace_changed(&mut self, change: &Change) {
        match &change.new {
            Some(namespace) => {
                self.namespaces.insert(namespace.name.clone(), namespace.labels.clone());
            }
            None => {
                if let Some(old) = &change.old {
                    self.namespaces.remove(&old.name);
                }
            }
        }
    }

    fn node_changed(&mut self, change: &Change) {
        match &change.new {
            Some(node) => match node.value() {
                Ok(value) => self.table.set_node(view::node(&value)),
                Err(error) => tracing::warn!(node = %node.name, %error, "a node could not be read"),
            },
            None => {
                if let Some(old) = &change.old {
                    self.table.remove_node(&old.name);
                }
            }
        }
    }

    /// Follows one pod; whether the change could help pods that found no
    /// node (a pod left a node).
    fn pod_changed(&mut self, change: &Change) -> bool {
        let Some(pod) = &change.new else {
            let Some(old) = &change.old else { return false };
            self.forget(&old.uid);
            return self.table.unplace(&old.uid).is_some();
        };
        let Ok(value) = pod.value() else { return false };
        let finished = view::finished(&value);
        if !pod.node_name.is_empty() {
            self.forget(&pod.uid);
            if pod.deleting {
                self.terminating.insert(pod.uid.clone());
            }
            if finished {
                return self.table.unplace(&pod.uid).is_some();
            }
            let record = Arc::new(self.record(&value));
            self.table.place(&pod.node_name, record, false);
            return false;
        }
        let gated = view::gated(&value);
        if pod.deleting || finished || gated {
            self.forget(&pod.uid);
            return self.table.unplace(&pod.uid).is_some();
        }
        if self.table.placed(&pod.uid).is_some() {
            // Assumed, its binding in flight.
            return false;
        }
        let scheduler_name = view::scheduler_name(&value).to_owned();
        let preempts = value.pointer("/spec/preemptionPolicy").and_then(Value::as_str) != Some("Never");
        let record = Arc::new(self.record(&value));
        if let Some(node) = value.pointer("/status/nominatedNodeName").and_then(Value::as_str).filter(|n| !n.is_empty())
            && !self.nominated.contains_key(&pod.uid)
        {
            // Nominated by an earlier term's scheduler.
            self.nominated.insert(pod.uid.clone(), Nominated { node: node.to_owned(), pod: record.clone() });
        }
        if let Some(waiting) = self.waiting.get(&pod.uid)
            && *waiting.pod == *record
            && waiting.scheduler_name == scheduler_name
            && waiting.preempts == preempts
        {
            // Only its status changed (as when it is told it found no node).
            return false;
        }
        self.queue.add_or_update(&pod.uid, record.priority, Instant::now());
        if let Some(nominated) = self.nominated.get_mut(&pod.uid) {
            nominated.pod = record.clone();
        }
        self.waiting.insert(pod.uid.clone(), Waiting { pod: record, scheduler_name, preempts });
        false
    }

    fn forget(&mut self, uid: &str) {
        self.queue.remove(uid);
        self.waiting.remove(uid);
        self.binding.remove(uid);
        self.told_unknown.remove(uid);
        self.nominated.remove(uid);
        self.terminating.remove(uid);
    }

    fn record(&self, pod: &Value) -> sdk::Pod {
        view::pod_record(pod, &self.namespaces, &*self.lookups.default_spread)
    }

    /// Makes a cycle for every new or changed profile (a changed one starts
    /// fresh instances on probation, the version before it kept until they
    /// pass; cycles run one at a time, so none is in flight); drops removed
    /// ones. A version given up on is not started again.
    async fn refresh_profiles(&mut self) {
        if !self.profiles.has_changed().unwrap_or(false) {
            return;
        }
        let profiles = self.profiles.borrow_and_update().clone();
        self.running.retain(|name, _| profiles.contains_key(name));
        self.failed.send_if_modified(|failed| {
            let before = failed.len();
            failed.retain(|name, _| profiles.contains_key(name));
            failed.len() != before
        });
        for (name, spec) in profiles {
            if self.running.get(&name).is_some_and(|r| Arc::ptr_eq(&r.spec, &spec))
                || self.failed.borrow().get(&name).is_some_and(|f| Arc::ptr_eq(&f.failed, &spec))
            {
                continue;
            }
            match start(&self.host, &spec, self.natives.as_ref()).await {
                Ok(cycle) => {
                    tracing::info!(profile = %name, "scheduler profile running");
                    self.failed.send_if_modified(|failed| failed.remove(&name).is_some());
                    let previous = self.running.remove(&name);
                    self.running.insert(name, Running::new(spec, cycle, previous));
                }
                Err(error) => {
                    tracing::warn!(profile = %name, %error, "a scheduler profile could not start");
                    let restored = self.running.get(&name).map(|r| r.spec.clone());
                    let failed = Failed { failed: spec, restored, reason: error.to_string() };
                    self.failed.send_modify(|all| {
                        all.insert(name, failed);
                    });
                }
            }
        }
        // Pods that named a profile that now exists try again.
        self.told_unknown.retain(|_, scheduler_name| !self.running.contains_key(scheduler_name));
        self.queue.cluster_changed(Instant::now());
    }

    async fn schedule(&mut self, uid: &str) {
        let Some(waiting) = self.waiting.get(uid) else {
            self.queue.remove(uid);
            return;
        };
        let (pod, scheduler_name, preempts) = (waiting.pod.clone(), waiting.scheduler_name.clone(), waiting.preempts);
        let pod_ref = PodRef { namespace: pod.namespace.clone(), name: pod.name.clone(), uid: uid.to_owned() };
        let Some(running) = self.running.get_mut(&scheduler_name) else {
            if let Some(failed) = self.failed.borrow().get(&scheduler_name) {
                // Its only version failed to start: the pod waits for another.
                self.queue.failed(uid, false, Instant::now());
                self.spawner.spawn(self.binder.unschedulable(pod_ref, "SchedulerError", failed.reason.clone(), None));
                return;
            }
            self.queue.failed(uid, true, Instant::now());
            if self.told_unknown.insert(uid.to_owned(), scheduler_name.clone()).is_none() {
                let message = format!("no scheduler profile is named {scheduler_name:?} (spec.schedulerName)");
                self.spawner.spawn(self.binder.unschedulable(pod_ref, "SchedulerProfileNotFound", message, None));
            }
            return;
        };
        let assumptions = nominated_assumptions(&self.nominated, &self.table, &pod);
        let nominated_node = self.nominated.get(uid).and_then(|n| self.table.index_of(&n.node));
        let may_preempt = if !preempts {
            Err("not eligible due to preemptionPolicy=Never.")
        } else if terminating_on(&self.table, &self.terminating, nominated_node, &pod) {
            Err("not eligible due to a terminating pod on the nominated node.")
        } else {
            self.preemption_offset = self.preemption_offset.wrapping_add(PREEMPTION_STRIDE);
            Ok((&self.lookups.budgets, self.preemption_offset))
        };
        let cluster = (&mut running.cycle, &*self.host, &self.table);
        let outcome = judge(cluster, &pod, &assumptions, nominated_node, may_preempt).await;
        if outcome.is_ok() {
            running.passed();
        }
        match outcome {
            Ok(Outcome::Place(index)) => self.place(uid, pod, pod_ref, index),
            Ok(Outcome::Unfit(fit_error, candidate)) => {
                self.queue.failed(uid, true, Instant::now());
                let nominated = candidate.and_then(|c| self.nominate(&pod, &pod_ref, c));
                self.spawner.spawn(self.binder.unschedulable(
                    pod_ref,
                    "Unschedulable",
                    fit_error.to_string(),
                    nominated,
                ));
            }
            Err(error) => self.cycle_failed(uid, &scheduler_name, pod_ref, &error),
        }
    }

    /// Assumes `pod` on the node at `index` and binds it in the background.
    fn place(&mut self, uid: &str, pod: Arc<sdk::Pod>, pod_ref: PodRef, index: u32) {
        let Some(node) = self.table.node(index).map(|n| n.node.name.clone()) else { return };
        self.table.place(&node, pod, true);
        self.queue.done(uid);
        self.nominated.remove(uid);
        if let Some(waiting) = self.waiting.remove(uid) {
            self.binding.insert(uid.to_owned(), waiting);
        }
        self.in_flight += 1;
        let (binder, answers) = (self.binder.clone(), self.bindings.0.clone());
        self.spawner.spawn(async move {
            let result = binder.bind(pod_ref.clone(), node.clone()).await;
            let _ = answers.send((pod_ref, node, result)).await;
        });
    }

    /// Nominates `pod` to the candidate's node and evicts its victims in the
    /// background; the node's name.
    fn nominate(&mut self, pod: &Arc<sdk::Pod>, pod_ref: &PodRef, candidate: Candidate) -> Option<String> {
        let node = self.table.node(candidate.node)?.node.name.clone();
        let displaced: Vec<String> = self
            .nominated
            .iter()
            .filter(|(other, n)| **other != pod_ref.uid && n.node == node && n.pod.priority < pod.priority)
            .map(|(other, _)| other.clone())
            .collect();
        let displaced: Vec<PodRef> =
            displaced.iter().filter_map(|other| self.nominated.remove(other)).map(|n| pod_ref_of(&n.pod)).collect();
        self.nominated.insert(pod_ref.uid.clone(), Nominated { node: node.clone(), pod: pod.clone() });
        let victims = candidate.victims.iter().map(|v| pod_ref_of(v)).collect();
        tracing::info!(pod = %pod.name, node = %node, victims = candidate.victims.len(), "preempting");
        self.spawner.spawn(self.binder.preempt(pod_ref.clone(), node.clone(), victims, displaced));
        Some(node)
    }

    /// A plugin failed during `uid`'s cycle: the pod is told; a profile
    /// version on probation gives way to the one before it, any other
    /// starts afresh.
    fn cycle_failed(&mut self, uid: &str, scheduler_name: &str, pod_ref: PodRef, error: &CycleError) {
        tracing::warn!(pod = %pod_ref.name, %error, "a scheduling cycle failed");
        let message = error.to_string();
        self.spawner.spawn(self.binder.unschedulable(pod_ref, "SchedulerError", message.clone(), None));
        // The failed instances are in an unknown state.
        let Some(failed) = self.running.remove(scheduler_name) else { return };
        match failed.previous.filter(|_| failed.probation_left > 0) {
            Some(previous) => {
                tracing::warn!(profile = %scheduler_name, %error, "a new profile version failed; rolled back");
                let rolled_back =
                    Failed { failed: failed.spec, restored: Some(previous.spec.clone()), reason: message };
                self.failed.send_modify(|all| {
                    all.insert(scheduler_name.to_owned(), rolled_back);
                });
                self.running.insert(scheduler_name.to_owned(), *previous);
                self.queue.retry(uid);
            }
            None => {
                // The same version starts afresh on the next loop turn.
                self.profiles.mark_changed();
                self.queue.failed(uid, false, Instant::now());
            }
        }
    }

    fn bound(&mut self, pod: PodRef, node: String, result: Result<(), String>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(waiting) = self.binding.remove(&pod.uid) else { return };
        let assumed = self.table.placed(&pod.uid).is_some_and(|p| p.assumed);
        match result {
            Ok(()) if assumed => self.table.place(&node, waiting.pod, false),
            Ok(()) => {}
            Err(error) => {
                tracing::info!(pod = %pod.name, node = %node, %error, "a binding failed");
                if assumed {
                    self.table.unplace(&pod.uid);
                    let now = Instant::now();
                    self.queue.add_or_update(&pod.uid, waiting.pod.priority, now);
                    self.queue.failed(&pod.uid, false, now);
                    self.waiting.insert(pod.uid, waiting);
                }
            }
        }
    }

    fn trim_log(&mut self) {
        let oldest = self.running.values().filter_map(|r| r.cycle.oldest_cursor()).min();
        self.table.trim(oldest.unwrap_or_else(|| self.table.cursor()));
    }
}

/// What a cycle decided for a pod.
enum Outcome {
    /// It goes to the node at this index.
    Place(u32),
    /// No node fits; preemption may have found where to make room.
    Unfit(FitError, Option<Candidate>),
}

/// Finds a node for `pod`: the node it is nominated to if it fits there,
/// else by a full cycle; when none fits and it `may_preempt` (with the
/// budgets and the node to start from; else why not), where evictions
/// would make room.
async fn judge(
    (cycle, host, table): (&mut Cycle, &PluginHost, &Table),
    pod: &sdk::Pod,
    assumptions: &sdk::Assumptions,
    nominated_node: Option<u32>,
    may_preempt: Result<(&BudgetReader, usize), &'static str>,
) -> Result<Outcome, CycleError> {
    if let Some(node) = nominated_node {
        cycle.prepare(host, table, pod).await?;
        if cycle.fits(host, pod, node, assumptions).await? {
            return Ok(Outcome::Place(node));
        }
    }
    let mut fit_error = match cycle.decide(host, table, pod, assumptions).await? {
        Decision::Place(node) => return Ok(Outcome::Place(node)),
        Decision::Unfit(fit_error) => fit_error,
    };
    match may_preempt {
        Err(ineligible) => fit_error.preemption = Some(ineligible.to_owned()),
        Ok((budgets, offset)) => {
            let budgets = budgets();
            match preemption::preempt((cycle, host, table), pod, &fit_error, assumptions, &budgets, offset).await? {
                Preemption::Evict(candidate) => return Ok(Outcome::Unfit(fit_error, Some(candidate))),
                Preemption::Futile(why) => fit_error.preemption = Some(why),
            }
        }
    }
    Ok(Outcome::Unfit(fit_error, None))
}

/// Whether a pod of lower priority than `pod` is still leaving the node it
/// is nominated to (it waits for that rather than evict more).
fn terminating_on(table: &Table, terminating: &HashSet<String>, nominated: Option<u32>, pod: &sdk::Pod) -> bool {
    let Some(entry) = nominated.and_then(|i| table.node(i)) else { return false };
    entry.pods.iter().any(|other| {
        terminating.contains(other) && table.placed(other).is_some_and(|placed| placed.pod.priority < pod.priority)
    })
}

/// The pods nominated to a node that count for `pod` there: those of no
/// lower priority than it, but itself.
fn nominated_assumptions(nominated: &HashMap<String, Nominated>, table: &Table, pod: &sdk::Pod) -> sdk::Assumptions {
    let extra = nominated
        .iter()
        .filter(|(uid, n)| **uid != pod.uid && n.pod.priority >= pod.priority)
        .filter_map(|(_, n)| Some((table.index_of(&n.node)?, (*n.pod).clone())))
        .collect();
    sdk::Assumptions { without: Vec::new(), extra }
}

fn pod_ref_of(pod: &sdk::Pod) -> PodRef {
    PodRef { namespace: pod.namespace.clone(), name: pod.name.clone(), uid: pod.uid.clone() }
}

/// Fresh instances of a profile's plugins, as a cycle: those `natives`
/// holds compiled into the host, the others as components.
async fn start(host: &PluginHost, spec: &ProfileSpec, natives: Option<&NativePlugins>) -> Result<Cycle, CycleError> {
    let mut plugins = Vec::with_capacity(spec.plugins.len());
    for plugin in &spec.plugins {
        let failed = |error| CycleError { plugin: plugin.name.clone(), error };
        let native = natives.and_then(|natives| natives(&plugin.name, plugin.plugin.config()));
        let run = match native {
            Some(Ok((judge, abilities))) => {
                let runner = Runner::Native { name: plugin.name.clone(), judge, abilities };
                PluginRun::with_runner(plugin.name.clone(), plugin.weight, runner)
            }
            Some(Err(message)) => {
                return Err(failed(PluginError::Configuration { name: plugin.name.clone(), message }));
            }
            None => {
                PluginRun::new(plugin.name.clone(), plugin.weight, plugin.plugin.instance(host).await.map_err(failed)?)
            }
        };
        plugins.push(run);
    }
    Ok(Cycle::new(plugins, spec.percentage_of_nodes_to_score))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::tests::profile;

    /// A plugin "compiled into the host" that lets every pod go anywhere.
    struct Anywhere;

    impl sdk::Judge for Anywhere {
        fn prepare(&mut self, _: &[sdk::Change], _: &sdk::Pod) -> sdk::Plan {
            sdk::Plan::FULL
        }

        fn filter(&mut self, _: &sdk::Pod, candidates: &[u32], _: &sdk::Assumptions) -> sdk::Verdicts {
            sdk::Verdicts::all_fit(candidates.len())
        }

        fn score(&mut self, _: &sdk::Pod, nodes: &[u32]) -> Vec<u32> {
            vec![0; nodes.len()]
        }
    }

    #[tokio::test]
    async fn plugins_compiled_into_the_host_run_in_place_of_their_components() {
        // Goal: a scheduler given native plugins runs each one they hold
        // natively, configured as the profile configures its component,
        // and the rest as components; a native plugin that refuses its
        // configuration fails the profile's start, naming the plugin.
        let host = PluginHost::new(None).expect("an engine");
        let config = r#"{"scoringStrategy":{"type":"MostAllocated"}}"#;
        let spec = profile(&host, &[("node-resources-fit", 1, config), ("node-name", 1, "{}")]).await;
        let asked = Arc::new(Mutex::new(Vec::new()));
        let natives: NativePlugins = {
            let asked = asked.clone();
            Arc::new(move |name: &str, config: &str| {
                asked.lock().expect("unpoisoned").push((name.to_owned(), config.to_owned()));
                let abilities =
                    sdk::Abilities { filters: true, scores: true, reads_pods: false, pod_parts: sdk::PodParts::ALL };
                (name == "node-resources-fit").then(|| Ok((Box::new(Anywhere) as Box<dyn sdk::Judge>, abilities)))
            })
        };
        let cycle = start(&host, &spec, Some(&natives)).await.expect("the profile starts");
        let runs: Vec<(&str, bool)> =
            cycle.plugins().iter().map(|p| (p.name.as_str(), matches!(p.runner(), Runner::Native { .. }))).collect();
        assert_eq!(runs, [("node-resources-fit", true), ("node-name", false)]);
        let asked = asked.lock().expect("unpoisoned").clone();
        assert_eq!(asked, [("node-resources-fit".to_owned(), config.to_owned()), ("node-name".into(), "{}".into())]);

        let without = start(&host, &spec, None).await.expect("the profile starts");
        assert!(without.plugins().iter().all(|p| matches!(p.runner(), Runner::Component(_))));

        let refusing: NativePlugins = Arc::new(|name: &str, _: &str| Some(Err(format!("{name} takes no config"))));
        let error = start(&host, &spec, Some(&refusing)).await.err().expect("the start fails");
        assert_eq!(error.plugin, "node-resources-fit");
        assert!(error.to_string().contains("node-resources-fit takes no config"), "{error}");
    }
}
