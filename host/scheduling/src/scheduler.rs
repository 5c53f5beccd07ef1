//! The scheduler loop: it follows nodes, pods and namespaces (informer
//! changes, coalesced by object), keeps the node table and the queue, runs
//! one cycle at a time with the profile a pod names, assumes the pod on the
//! chosen node and binds it in the background (a failed binding forgets the
//! assumption and queues the pod again).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engenho_control::Change;
use engenho_scheduler as sdk;
use engenho_wasm::{PluginHost, SchedulerPlugin};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, watch};

use super::cycle::{Cycle, CycleError, Decision, PluginRun};
use super::queue::SchedulingQueue;
use super::table::Table;
use super::view;

/// Bindings in flight at once, at most.
const BINDINGS_IN_FLIGHT_MAX: usize = 64;

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
    /// and `message`, and a `FailedScheduling` Event.
    fn unschedulable(&self, pod: PodRef, reason: &'static str, message: String) -> Pending<()>;
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

/// The selector of the Services, ReplicaSets and StatefulSets that select a
/// pod (of a namespace, with labels), all together; `None` when none does:
/// what default topology spread constraints count.
pub type DefaultSpreadSelector =
    Arc<dyn Fn(&str, &BTreeMap<String, String>) -> Option<sdk::LabelSelector> + Send + Sync>;

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
}

/// A profile's running cycle and the spec it was made from.
struct Running {
    spec: Arc<ProfileSpec>,
    cycle: Cycle,
}

/// The scheduler of one leadership term.
pub struct Scheduler {
    host: Arc<PluginHost>,
    binder: Arc<dyn Binder>,
    inbox: Arc<Inbox>,
    profiles: watch::Receiver<Profiles>,
    default_spread: DefaultSpreadSelector,
    table: Table,
    queue: SchedulingQueue,
    waiting: HashMap<String, Waiting>,
    /// Pods assumed on a node, their binding in flight.
    binding: HashMap<String, Waiting>,
    namespaces: view::NamespaceLabels,
    running: BTreeMap<String, Running>,
    /// Pods named by no profile, already told so.
    told_unknown: HashMap<String, String>,
    bindings: (mpsc::Sender<Bound>, mpsc::Receiver<Bound>),
    in_flight: usize,
}

impl Scheduler {
    /// A scheduler reading `inbox`, running `profiles`, writing through
    /// `binder`, giving pods `default_spread`'s selector.
    pub fn new(
        host: Arc<PluginHost>,
        binder: Arc<dyn Binder>,
        inbox: Arc<Inbox>,
        profiles: watch::Receiver<Profiles>,
        default_spread: DefaultSpreadSelector,
    ) -> Self {
        // The profiles as they stand are the first to start.
        let mut profiles = profiles;
        profiles.mark_changed();
        Self {
            host,
            binder,
            inbox,
            profiles,
            default_spread,
            table: Table::new(),
            queue: SchedulingQueue::new(),
            waiting: HashMap::new(),
            binding: HashMap::new(),
            namespaces: HashMap::new(),
            running: BTreeMap::new(),
            told_unknown: HashMap::new(),
            bindings: mpsc::channel(BINDINGS_IN_FLIGHT_MAX),
            in_flight: 0,
        }
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
        let record = Arc::new(self.record(&value));
        if let Some(waiting) = self.waiting.get(&pod.uid)
            && *waiting.pod == *record
            && waiting.scheduler_name == scheduler_name
        {
            // Only its status changed (as when it is told it found no node).
            return false;
        }
        self.queue.add_or_update(&pod.uid, record.priority, Instant::now());
        self.waiting.insert(pod.uid.clone(), Waiting { pod: record, scheduler_name });
        false
    }

    fn forget(&mut self, uid: &str) {
        self.queue.remove(uid);
        self.waiting.remove(uid);
        self.binding.remove(uid);
        self.told_unknown.remove(uid);
    }

    fn record(&self, pod: &Value) -> sdk::Pod {
        view::pod_record(pod, &self.namespaces, &*self.default_spread)
    }

    /// Makes a cycle for every new or changed profile (a changed one starts
    /// fresh instances; the old ones finish the cycle they are in, which,
    /// one cycle at a time, is none); drops removed ones.
    async fn refresh_profiles(&mut self) {
        if !self.profiles.has_changed().unwrap_or(false) {
            return;
        }
        let profiles = self.profiles.borrow_and_update().clone();
        self.running.retain(|name, _| profiles.contains_key(name));
        for (name, spec) in profiles {
            if self.running.get(&name).is_some_and(|r| Arc::ptr_eq(&r.spec, &spec)) {
                continue;
            }
            match start(&self.host, &spec).await {
                Ok(cycle) => {
                    tracing::info!(profile = %name, "scheduler profile running");
                    self.running.insert(name, Running { spec, cycle });
                }
                Err(error) => tracing::warn!(profile = %name, %error, "a scheduler profile could not start"),
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
        let (pod, scheduler_name) = (waiting.pod.clone(), waiting.scheduler_name.clone());
        let pod_ref = PodRef { namespace: pod.namespace.clone(), name: pod.name.clone(), uid: uid.to_owned() };
        let Some(running) = self.running.get_mut(&scheduler_name) else {
            self.queue.failed(uid, true, Instant::now());
            if self.told_unknown.insert(uid.to_owned(), scheduler_name.clone()).is_none() {
                let message = format!("no scheduler profile is named {scheduler_name:?} (spec.schedulerName)");
                tokio::spawn(self.binder.unschedulable(pod_ref, "SchedulerProfileNotFound", message));
            }
            return;
        };
        let decision = running.cycle.decide(&self.host, &self.table, &pod, &sdk::Assumptions::default()).await;
        match decision {
            Ok(Decision::Place(index)) => {
                let Some(node) = self.table.node(index).map(|n| n.node.name.clone()) else { return };
                self.table.place(&node, pod, true);
                self.queue.done(uid);
                if let Some(waiting) = self.waiting.remove(uid) {
                    self.binding.insert(uid.to_owned(), waiting);
                }
                self.in_flight += 1;
                let (binder, answers) = (self.binder.clone(), self.bindings.0.clone());
                tokio::spawn(async move {
                    let result = binder.bind(pod_ref.clone(), node.clone()).await;
                    let _ = answers.send((pod_ref, node, result)).await;
                });
            }
            Ok(Decision::Unfit(fit_error)) => {
                self.queue.failed(uid, true, Instant::now());
                tokio::spawn(self.binder.unschedulable(pod_ref, "Unschedulable", fit_error.to_string()));
            }
            Err(error) => {
                tracing::warn!(pod = %pod.name, %error, "a scheduling cycle failed");
                // The failed instance is in an unknown state: the profile
                // starts afresh on its next pod.
                self.running.remove(&scheduler_name);
                self.queue.failed(uid, false, Instant::now());
                tokio::spawn(self.binder.unschedulable(pod_ref, "SchedulerError", error.to_string()));
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

/// Fresh instances of a profile's plugins, as a cycle.
async fn start(host: &PluginHost, spec: &ProfileSpec) -> Result<Cycle, CycleError> {
    let mut plugins = Vec::with_capacity(spec.plugins.len());
    for plugin in &spec.plugins {
        let instance =
            plugin.plugin.instance(host).await.map_err(|error| CycleError { plugin: plugin.name.clone(), error })?;
        plugins.push(PluginRun::new(plugin.name.clone(), plugin.weight, instance));
    }
    Ok(Cycle::new(plugins, spec.percentage_of_nodes_to_score))
}
