//! The scheduler on the raft leader: `SchedulerProfile` objects
//! (engenho.io/v1alpha1) name the scheduler-plugin Plugins a profile runs,
//! with weights and config; pods pick a profile by `spec.schedulerName`.
//! The loop (`engenho-scheduling`) reads nodes, pods and namespaces from
//! the node's informers and writes as its own service account
//! (`system:serviceaccount:kube-system:kube-scheduler`) through the API
//! server's write path: `pods/binding`, the pod's `PodScheduled`
//! condition, `FailedScheduling` Events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use engenho_control::controller::lead;
use engenho_control::{Action, Whole, everywhere};
use engenho_scheduling::scheduler::Pending;
use engenho_scheduling::{
    Binder, BudgetReader, DefaultSpreadSelector, FailedProfiles, Inbox, Lookups, NativePlugins, PodRef, ProfilePlugin,
    ProfileSpec, Profiles, Scheduler, Source, preemption::Budget, view,
};
use engenho_wasm::SchedulerPlugin;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::client::{ApiClient, PatchType};
use super::controllers::events::{Event, EventRecorder, Regarding};
use super::handlers::ApiState;
use super::plugins::{self, GROUP, PluginSpec, TrustRoot};

pub mod trial;

/// The scheduler's loop name and service account.
pub const NAME: &str = "kube-scheduler";

/// The world of scheduler plugins.
pub const SCHEDULER_WORLD: &str = "scheduler-plugin";

/// The plural of `SchedulerProfile`.
pub const PROFILES_PLURAL: &str = "schedulerprofiles";

/// The profile pods get unless they name another.
pub const DEFAULT_PROFILE: &str = "default-scheduler";

/// The built-in scheduler plugins, as (Plugin name, built component), in
/// the order the default profile runs them, with their default weight.
pub const BUILT_IN_PLUGINS: [(&str, u32); 8] = [
    ("node-name", 0),
    ("node-unschedulable", 0),
    ("taint-toleration", 3),
    ("node-affinity", 2),
    ("node-resources-fit", 1),
    ("pod-topology-spread", 2),
    ("inter-pod-affinity", 2),
    ("node-resources-balanced-allocation", 1),
];

/// The CustomResourceDefinition of `SchedulerProfile`.
pub fn definition() -> Value {
    let plugin = json!({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "description": "A Plugin of the scheduler-plugin world."},
        "weight": {"type": "integer", "minimum": 0, "maximum": 100,
            "description": "What its scores weigh in the sum (default 1)."},
        "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "description": "Its configuration, given to it as JSON (default: the Plugin's own)."},
    }});
    let spec = json!({"type": "object", "required": ["schedulerName", "plugins"], "properties": {
        "schedulerName": {"type": "string", "description": "The name pods give in spec.schedulerName."},
        "plugins": {"type": "array", "items": plugin, "description": "The plugins, in the order they filter."},
        "percentageOfNodesToScore": {"type": "integer", "minimum": 0, "maximum": 100,
            "description": "The share of nodes a cycle scores at most (0 or unset: adaptive)."},
    }});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "schedulerprofiles.engenho.io"},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {"plural": PROFILES_PLURAL, "singular": "schedulerprofile", "kind": "SchedulerProfile",
                "shortNames": ["sp"]},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Scheduler", "type": "string", "jsonPath": ".spec.schedulerName"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[0].status"},
                    {"name": "Reason", "type": "string", "jsonPath": ".status.conditions[0].reason"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "Which scheduler plugins place the pods that name this scheduler, and how.",
                    "properties": {
                        "spec": spec,
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    })
}

/// The profile every cluster starts with: the built-in plugins with
/// kube-scheduler's default weights.
pub fn default_profile() -> Value {
    let plugins: Vec<Value> =
        BUILT_IN_PLUGINS.iter().map(|(name, weight)| json!({"name": name, "weight": weight})).collect();
    json!({
        "apiVersion": "engenho.io/v1alpha1",
        "kind": "SchedulerProfile",
        "metadata": {"name": DEFAULT_PROFILE},
        "spec": {"schedulerName": DEFAULT_PROFILE, "plugins": plugins},
    })
}

/// The spec of a built-in scheduler Plugin, without digest and signature:
/// each instance keeps the whole node table, so it gets room for a large
/// cluster's.
pub fn built_in_plugin_spec() -> Value {
    json!({"world": SCHEDULER_WORLD, "limits": {"deadlineMillis": 2000, "memoryBytes": 268_435_456}})
}

/// Installs the default profile unless it exists.
///
/// # Errors
/// The store refused the write.
pub async fn install_default_profile(
    objects: &super::objects::ObjectStore,
    registry: &super::resources::Registry,
) -> Result<(), super::status::ApiError> {
    let Some(profiles) = registry.find_plural(GROUP, PROFILES_PLURAL) else {
        return Err(super::status::ApiError::internal("the SchedulerProfile kind is not installed"));
    };
    match objects.create(profiles, None, default_profile(), &super::objects::WriteOptions::default()).await {
        Ok(_) | Err(super::status::ApiError { reason: "AlreadyExists", .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

/// A profile's spec, as the loop reads it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ProfileObject {
    scheduler_name: String,
    plugins: Vec<ProfilePluginObject>,
    percentage_of_nodes_to_score: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ProfilePluginObject {
    name: String,
    weight: Option<u32>,
    config: Option<Value>,
}

/// A plugin loaded for a profile, and what it was loaded from.
struct Loaded {
    digest: String,
    config: String,
    plugin: Arc<SchedulerPlugin>,
}

/// The scheduler of this node: it runs while the node leads.
pub struct SchedulerLoop {
    state: Arc<ApiState>,
    router: Router,
    natives: Option<NativePlugins>,
}

impl SchedulerLoop {
    /// The scheduler, writing through `router`, running the plugins
    /// `natives` holds compiled into the host in place of their components.
    pub fn new(state: Arc<ApiState>, router: Router, natives: Option<NativePlugins>) -> Self {
        Self { state, router, natives }
    }

    /// Schedules while this node leads, until `stop` turns true.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let leadership = self.state.objects.node().leadership();
        let this = Arc::new(self);
        lead(leadership, stop, |term_over| {
            let this = this.clone();
            async move { this.term(term_over).await }
        })
        .await;
    }

    async fn term(self: Arc<Self>, term_over: watch::Receiver<bool>) {
        let registry = self.state.registry();
        let (Some(nodes), Some(pods), Some(namespaces)) =
            (registry.find("", "v1", "nodes"), registry.find("", "v1", "pods"), registry.find("", "v1", "namespaces"))
        else {
            return;
        };
        let inbox = Arc::new(Inbox::default());
        let mut subscriptions = Vec::new();
        for (t, source) in [(namespaces, Source::Namespaces), (nodes, Source::Nodes), (pods, Source::Pods)] {
            let informer = super::loops::informer_of(&self.state.informers, t);
            informer.synced().await;
            let inbox = inbox.clone();
            subscriptions.push(informer.subscribe(move |change| inbox.push(source, change)));
        }
        let (profiles, profiles_seen) = watch::channel(Profiles::new());
        let (failed, failed_seen) = watch::channel(FailedProfiles::new());
        let client = ApiClient::new(self.router.clone(), super::controllers::identity(NAME), NAME);
        let follower = Arc::new(ProfileFollower {
            state: self.state.clone(),
            status: client.clone(),
            loader: ProfileLoader::default(),
            reconciling: tokio::sync::Mutex::new(()),
            profiles,
            failed: failed_seen,
        });
        let events = EventRecorder::start(client.clone(), self.state.registry.clone(), NAME);
        let binder = Arc::new(ApiBinder { client, events, registry: self.state.registry.clone() });
        let lookups =
            Lookups { default_spread: default_spread_selector(&self.state), budgets: budget_reader(&self.state) };
        let mut scheduler =
            Scheduler::new(self.state.plugin_host.clone(), binder, inbox, (profiles_seen, failed), lookups);
        if let Some(natives) = &self.natives {
            scheduler = scheduler.with_native_plugins(natives.clone());
        }
        tokio::join!(follower.run(term_over.clone()), on_own_thread(scheduler.run(term_over)));
        drop(subscriptions);
    }
}

/// Runs the scheduler's loop on a thread of its own (its own
/// single-threaded runtime) until it returns. Its cycles are CPU work
/// that takes a core for as long as pods are pending: on a runtime
/// worker they would hold that worker (and the loops sharing its task),
/// and their plugin instances' code and tables would be evicted from the
/// caches by whatever the worker ran in between. Bindings and status
/// writes still run on the node's runtime (see `Scheduler::new`). When no
/// thread or runtime can be started, the loop runs here.
async fn on_own_thread(work: impl Future<Output = ()> + Send + 'static) {
    let work = Arc::new(Mutex::new(Some(Box::pin(work))));
    let take = |work: &Mutex<Option<_>>| work.lock().ok().and_then(|mut work| work.take());
    let (done, finished) = tokio::sync::oneshot::channel();
    let taken = work.clone();
    let started = std::thread::Builder::new().name("scheduler".into()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => {
                if let Some(work) = take(&taken) {
                    runtime.block_on(work);
                }
            }
            Err(error) => tracing::warn!(%error, "the scheduler's runtime could not start; it runs on the node's"),
        }
        let _ = done.send(());
    });
    match started {
        Ok(_) => {
            let _ = finished.await;
        }
        Err(error) => tracing::warn!(%error, "the scheduler's thread could not start; it runs on the node's runtime"),
    }
    if let Some(work) = take(&work) {
        work.await;
    }
}

/// Workload selectors kept by informer entry version before the kept set is
/// emptied and read again from the objects.
const WORKLOAD_SELECTORS_KEPT_MAX: usize = 16_384;

/// kube-scheduler's default selector for spreading a pod: the selectors of
/// the Services, ReplicaSets and StatefulSets of its namespace that select
/// it, together; read from the node's informers at the moment of asking,
/// each object's selector decoded once per cached version.
fn default_spread_selector(state: &ApiState) -> DefaultSpreadSelector {
    let registry = state.registry();
    let informers: Vec<(bool, Arc<engenho_control::Informer>)> =
        [("", "services"), ("apps", "replicasets"), ("apps", "statefulsets")]
            .iter()
            .filter_map(|(group, plural)| registry.find_plural(group, plural))
            .map(|t| (t.plural == "services", super::loops::informer_of(&state.informers, t)))
            .collect();
    let kept: Mutex<HashMap<u64, Option<Arc<engenho_scheduler::LabelSelector>>>> = Mutex::default();
    Arc::new(move |namespace, labels| {
        let mut together: engenho_scheduler::LabelSelector = Vec::new();
        let filter = engenho_control::Filter { namespace: Some(namespace), ..engenho_control::Filter::default() };
        let mut kept = kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (is_service, informer) in &informers {
            for object in informer.list(&filter) {
                if kept.len() >= WORKLOAD_SELECTORS_KEPT_MAX && !kept.contains_key(&object.version) {
                    kept.clear();
                }
                let selector = kept.entry(object.version).or_insert_with(|| {
                    object.value().ok().and_then(|value| workload_selector(*is_service, &value)).map(Arc::new)
                });
                if let Some(selector) = selector.as_deref().filter(|s| view::selects(s, labels)) {
                    together.extend(selector.iter().cloned());
                }
            }
        }
        (!together.is_empty()).then_some(together)
    })
}

/// The cluster's PodDisruptionBudgets as preemption weighs them, read from
/// the node's informer at the moment of asking.
fn budget_reader(state: &ApiState) -> BudgetReader {
    let informer = state
        .registry()
        .find_plural("policy", "poddisruptionbudgets")
        .map(|t| super::loops::informer_of(&state.informers, t));
    Arc::new(move || {
        let Some(informer) = &informer else { return Vec::new() };
        informer
            .list(&engenho_control::Filter::default())
            .iter()
            .filter_map(|object| {
                let value = object.value().ok()?;
                Some(Budget {
                    namespace: object.namespace.clone(),
                    selector: view::label_selector(value.pointer("/spec/selector")).unwrap_or_default(),
                    allowed: value.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0),
                })
            })
            .collect()
    })
}

/// The selector of a Service (`is_service`), ReplicaSet or StatefulSet, as
/// default spreading reads it; `None` when it selects nothing.
fn workload_selector(is_service: bool, object: &Value) -> Option<engenho_scheduler::LabelSelector> {
    let selector = if is_service {
        // A Service's selector is a map; an empty one selects nothing here.
        object
            .pointer("/spec/selector")
            .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
            .and_then(|s| view::label_selector(Some(&json!({"matchLabels": s}))))
    } else {
        view::label_selector(object.pointer("/spec/selector"))
    };
    selector.filter(|s| !s.is_empty())
}

/// Keeps the profiles the scheduler runs in line with the SchedulerProfile
/// and Plugin objects, and reports each profile's state on its status
/// (including the versions the scheduler gave up on).
struct ProfileFollower {
    state: Arc<ApiState>,
    status: ApiClient,
    loader: ProfileLoader,
    /// Held through a reconcile: the loop's and those the scheduler's
    /// reports ask for take turns.
    reconciling: tokio::sync::Mutex<()>,
    profiles: watch::Sender<Profiles>,
    failed: watch::Receiver<FailedProfiles>,
}

impl ProfileFollower {
    async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let registry = self.state.registry();
        let Some(profiles_type) = registry.find_plural(GROUP, PROFILES_PLURAL) else { return };
        let Some(mut informers) = plugins::plugin_informers(&self.state) else { return };
        informers.push(super::loops::informer_of(&self.state.informers, profiles_type));
        let this = self.clone();
        let reconciler = Whole::new(informers, move || {
            let this = this.clone();
            async move {
                this.reconcile().await;
                Action::Done
            }
        });
        let settings = ("scheduler-profiles", 1, super::loops::SERVING_RESYNC);
        let follow = super::loops::run_loop(&self.state, Arc::new(reconciler), settings, everywhere(), stop.clone());
        tokio::join!(follow, self.follow_failures(stop));
    }

    /// Reconciles again whenever the scheduler gives up on a version, so
    /// that its profile's status says so at once.
    async fn follow_failures(&self, mut stop: watch::Receiver<bool>) {
        let mut failed = self.failed.clone();
        loop {
            tokio::select! {
                changed = failed.changed() => if changed.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
            self.reconcile().await;
        }
    }

    async fn reconcile(&self) {
        let _turn = self.reconciling.lock().await;
        let registry = self.state.registry();
        let (Some(profiles_type), Some(plugins_type)) =
            (registry.find_plural(GROUP, PROFILES_PLURAL), registry.find_plural(GROUP, "plugins"))
        else {
            return;
        };
        let Ok(listed) = self.state.objects.list_at(profiles_type, None, 0) else { return };
        let trust = TrustRoot::read(&self.state.objects, &registry);
        let mut running = self.profiles.borrow().clone();
        // Scheduler names by the profile that has them (the first by name).
        let mut present: HashMap<String, String> = HashMap::new();
        let mut users: HashMap<String, Vec<String>> = HashMap::new();
        let mut conditions = Vec::with_capacity(listed.items.len());
        for object in &listed.items {
            let spec: ProfileObject =
                object.get("spec").cloned().and_then(|s| serde_json::from_value(s).ok()).unwrap_or_default();
            let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            if let Some(holder) = present.get(&spec.scheduler_name) {
                let message = format!("the scheduler name {:?} is profile {holder:?}'s", spec.scheduler_name);
                conditions.push((object, ("False", "Refused", message)));
                continue;
            }
            present.insert(spec.scheduler_name.clone(), name.to_owned());
            for plugin in &spec.plugins {
                users.entry(plugin.name.clone()).or_default().push(name.to_owned());
            }
            let failed = self.failed.borrow().get(&spec.scheduler_name).cloned();
            let condition = match (self.loader.settle(&self.state, &spec, plugins_type, &trust).await, failed) {
                (Ok(profile), Some(failed)) if same_profile(&failed.failed, &profile) => match failed.restored {
                    Some(restored) => {
                        running.insert(spec.scheduler_name.clone(), restored);
                        let message =
                            format!("this version failed and the one before it runs again: {}", failed.reason);
                        ("False", "RolledBack", message)
                    }
                    None => ("False", "Failed", format!("this version could not start: {}", failed.reason)),
                },
                (Ok(profile), _) => {
                    let same = running.get(&spec.scheduler_name).is_some_and(|r| same_profile(r, &profile));
                    if !same {
                        running.insert(spec.scheduler_name.clone(), Arc::new(profile));
                    }
                    ("True", "Active", format!("scheduling the pods of {:?}", spec.scheduler_name))
                }
                (Err(error), _) => ("False", "Refused", error.to_string()),
            };
            conditions.push((object, condition));
        }
        running.retain(|name, _| present.contains_key(name));
        // The scheduler has a profile before its status says it is active.
        self.profiles.send_if_modified(|current| {
            let changed = current.len() != running.len()
                || current.iter().any(|(name, spec)| running.get(name).is_none_or(|r| !Arc::ptr_eq(r, spec)));
            if changed {
                *current = running;
            }
            changed
        });
        for (object, condition) in conditions {
            report(&self.status, profiles_type, object, condition).await;
        }
        self.report_plugins(plugins_type, &trust, &users).await;
    }

    /// Writes the Ready condition of every scheduler-world Plugin: whether
    /// it loads with its own configuration, and which profiles use it.
    async fn report_plugins(
        &self,
        plugins_type: &super::resources::ResourceType,
        trust: &TrustRoot,
        users: &HashMap<String, Vec<String>>,
    ) {
        let Ok(listed) = self.state.objects.list_at(plugins_type, None, 0) else { return };
        for object in &listed.items {
            let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            let spec: PluginSpec =
                object.get("spec").cloned().and_then(|s| serde_json::from_value(s).ok()).unwrap_or_default();
            if spec.world != SCHEDULER_WORLD {
                continue;
            }
            let condition = match self.loader.check(&self.state, name, &spec, trust).await {
                Err(error) => ("False", "Refused", error),
                Ok(()) => match users.get(name) {
                    Some(profiles) => ("True", "Loaded", format!("used by the profiles {}", profiles.join(", "))),
                    None => ("True", "Loaded", "used by no profile".to_owned()),
                },
            };
            report(&self.status, plugins_type, object, condition).await;
        }
    }
}

/// Why a profile cannot run.
#[derive(Debug, thiserror::Error)]
enum ProfileRefused {
    /// The trusted signers cannot be read, so no signature can be checked.
    #[error("the trusted plugin signers cannot be read: {0}")]
    SignersUnknown(String),
    /// The profile names no plugins.
    #[error("the profile names no plugins")]
    NoPlugins,
    /// A plugin of the profile cannot be loaded; the message names it.
    #[error("{message}")]
    Plugin {
        /// Its position in `spec.plugins`.
        index: usize,
        /// Its name.
        name: String,
        /// Why, naming the plugin.
        message: String,
    },
}

/// Loads the plugins of profiles as the scheduler runs them (signature
/// checked against the trusted signers, component by digest, the profile's
/// config or the Plugin's own), keeping what it loaded to reuse for the
/// same digest and config.
#[derive(Default)]
struct ProfileLoader {
    loaded: Mutex<HashMap<String, Loaded>>,
}

impl ProfileLoader {
    /// The profile `spec` asks for, its plugins loaded.
    async fn settle(
        &self,
        state: &ApiState,
        spec: &ProfileObject,
        plugins_type: &super::resources::ResourceType,
        trust: &TrustRoot,
    ) -> Result<ProfileSpec, ProfileRefused> {
        let signers = match trust {
            TrustRoot::Known(signers) => signers,
            TrustRoot::Unknown(reason) => return Err(ProfileRefused::SignersUnknown(reason.clone())),
        };
        if spec.plugins.is_empty() {
            return Err(ProfileRefused::NoPlugins);
        }
        let mut plugins = Vec::with_capacity(spec.plugins.len());
        for (index, entry) in spec.plugins.iter().enumerate() {
            let refused = |message: String| ProfileRefused::Plugin { index, name: entry.name.clone(), message };
            if spec.plugins[..index].iter().any(|earlier| earlier.name == entry.name) {
                return Err(refused(format!("plugin {:?} is named twice", entry.name)));
            }
            let object = state
                .objects
                .get(plugins_type, None, &entry.name)
                .await
                .map_err(|_| refused(format!("plugin {:?}: no such Plugin", entry.name)))?;
            let plugin: PluginSpec =
                object.get("spec").cloned().and_then(|s| serde_json::from_value(s).ok()).unwrap_or_default();
            if plugin.world != SCHEDULER_WORLD {
                let world = &plugin.world;
                return Err(refused(format!("plugin {:?}: its world is {world:?}, not {SCHEDULER_WORLD}", entry.name)));
            }
            plugins::verify_signature(&entry.name, &plugin, signers)
                .map_err(|error| refused(format!("plugin {:?}: {error}", entry.name)))?;
            let config = entry.config.as_ref().map_or_else(|| plugin.config_json(), Value::to_string);
            let loaded = self.load(state, &entry.name, &plugin, &config).await.map_err(refused)?;
            plugins.push(ProfilePlugin { name: entry.name.clone(), weight: entry.weight.unwrap_or(1), plugin: loaded });
        }
        Ok(ProfileSpec { plugins, percentage_of_nodes_to_score: spec.percentage_of_nodes_to_score.filter(|p| *p > 0) })
    }

    /// Whether Plugin `name` (`spec`) is trusted and loads with its own
    /// configuration; why not.
    async fn check(&self, state: &ApiState, name: &str, spec: &PluginSpec, trust: &TrustRoot) -> Result<(), String> {
        let signers = match trust {
            TrustRoot::Known(signers) => signers,
            TrustRoot::Unknown(reason) => return Err(ProfileRefused::SignersUnknown(reason.clone()).to_string()),
        };
        plugins::verify_signature(name, spec, signers)?;
        self.load(state, name, spec, &spec.config_json()).await.map(|_| ())
    }

    async fn load(
        &self,
        state: &ApiState,
        name: &str,
        spec: &PluginSpec,
        config: &str,
    ) -> Result<Arc<SchedulerPlugin>, String> {
        let key = format!("{name}\0{config}");
        if let Some(loaded) = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key)
            && loaded.digest == spec.digest
            && loaded.config == config
        {
            return Ok(loaded.plugin.clone());
        }
        let bytes = plugins::load_component(&state.objects, &spec.digest)
            .map_err(|e| e.message)?
            .ok_or_else(|| format!("plugin {name:?}: no component with digest {} has been pushed", spec.digest))?;
        let plugin = SchedulerPlugin::load(&state.plugin_host, name, &spec.digest, &bytes, config, spec.call_limits())
            .await
            .map_err(|e| e.to_string())?;
        let plugin = Arc::new(plugin);
        let loaded = Loaded { digest: spec.digest.clone(), config: config.to_owned(), plugin: plugin.clone() };
        self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, loaded);
        Ok(plugin)
    }
}

/// Whether two profiles run the same plugins, alike.
fn same_profile(a: &ProfileSpec, b: &ProfileSpec) -> bool {
    a.percentage_of_nodes_to_score == b.percentage_of_nodes_to_score
        && a.plugins.len() == b.plugins.len()
        && a.plugins
            .iter()
            .zip(&b.plugins)
            .all(|(x, y)| x.name == y.name && x.weight == y.weight && Arc::ptr_eq(&x.plugin, &y.plugin))
}

/// Writes `condition` as the Ready condition of profile `object`, unless it
/// says so already.
async fn report(
    client: &ApiClient,
    profiles_type: &super::resources::ResourceType,
    object: &Value,
    condition: plugins::Condition,
) {
    let Some(patch) = plugins::ready_patch(object, condition) else { return };
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let patch = (PatchType::Merge, patch.to_string().into_bytes());
    if let Err(refused) = client.patch(profiles_type, None, name, Some("status"), patch).await {
        tracing::debug!(profile = name, %refused, "the profile's status will be written again");
    }
}

/// The scheduler's writes, through the API server as `kube-scheduler`.
struct ApiBinder {
    client: ApiClient,
    events: EventRecorder,
    registry: super::resources::SharedRegistry,
}

impl ApiBinder {
    /// Records through `events` an Event about `pod`.
    fn record(events: &EventRecorder, pod: &PodRef, warning: bool, reason: &str, message: String) {
        events.record(Event {
            regarding: Regarding {
                group: String::new(),
                version: "v1".into(),
                plural: "pods".into(),
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                uid: pod.uid.clone(),
            },
            warning,
            reason: reason.into(),
            message,
        });
    }
}

impl Binder for ApiBinder {
    fn bind(&self, pod: PodRef, node: String) -> Pending<Result<(), String>> {
        let client = self.client.clone();
        let pods = self.registry.current().find("", "v1", "pods").cloned();
        let events = self.events.clone();
        Box::pin(async move {
            let pods = pods.ok_or("pods are not served")?;
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            let path = super::client::object_path(&pods, Some(&pod.namespace), &pod.name, Some("binding"));
            client
                .send(http::Method::POST, &path, "application/json", binding.to_string().into_bytes())
                .await
                .map_err(|refused| refused.to_string())?;
            let message = format!("Successfully assigned {}/{} to {node}", pod.namespace, pod.name);
            ApiBinder::record(&events, &pod, false, "Scheduled", message);
            Ok(())
        })
    }

    fn unschedulable(
        &self,
        pod: PodRef,
        reason: &'static str,
        message: String,
        nominated: Option<String>,
    ) -> Pending<()> {
        let client = self.client.clone();
        let pods = self.registry.current().find("", "v1", "pods").cloned();
        ApiBinder::record(&self.events, &pod, true, "FailedScheduling", message.clone());
        Box::pin(async move {
            let Some(pods) = pods else { return };
            let Some(object) = read_pod(&client, &pods, &pod).await else { return };
            let mut status = with_condition(object.get("status"), "PodScheduled", "False", reason, &message);
            if let Some(node) = nominated {
                status["nominatedNodeName"] = json!(node);
            }
            if let Err(refused) = client.update_status_as_read(&pods, Some(&pod.namespace), object, status).await {
                tracing::debug!(pod = %pod.name, %refused, "a pod's PodScheduled condition was not written");
            }
        })
    }

    fn preempt(&self, pod: PodRef, node: String, victims: Vec<PodRef>, displaced: Vec<PodRef>) -> Pending<()> {
        let client = self.client.clone();
        let pods = self.registry.current().find("", "v1", "pods").cloned();
        let events = self.events.clone();
        Box::pin(async move {
            let Some(pods) = pods else { return };
            for victim in victims {
                let Some(object) = read_pod(&client, &pods, &victim).await else { continue };
                // Marked first, so that whoever watches it knows why it goes.
                let message = format!("{NAME}: preempting to accommodate a higher priority pod");
                let status =
                    with_condition(object.get("status"), "DisruptionTarget", "True", "PreemptionByScheduler", &message);
                if let Err(refused) = client.update_status_as_read(&pods, Some(&victim.namespace), object, status).await
                {
                    tracing::debug!(pod = %victim.name, %refused, "a victim's DisruptionTarget condition was not written");
                }
                let options = json!({"kind": "DeleteOptions", "apiVersion": "v1",
                    "preconditions": {"uid": victim.uid}});
                match client.delete(&pods, Some(&victim.namespace), &victim.name, &options).await {
                    Ok(_) => {
                        let message = format!("Preempted by pod {} on node {node}", pod.uid);
                        ApiBinder::record(&events, &victim, false, "Preempted", message);
                    }
                    Err(refused) => tracing::info!(pod = %victim.name, %refused, "a victim was not deleted"),
                }
            }
            for other in displaced {
                let Some(object) = read_pod(&client, &pods, &other).await else { continue };
                let mut status = object.get("status").cloned().unwrap_or_else(|| json!({}));
                if let Some(status) = status.as_object_mut() {
                    status.remove("nominatedNodeName");
                }
                if let Err(refused) = client.update_status_as_read(&pods, Some(&other.namespace), object, status).await
                {
                    tracing::debug!(pod = %other.name, %refused, "a displaced nomination was not cleared");
                }
            }
        })
    }
}

/// Pod `pod` as stored, unless it is gone (or another pod took its name).
async fn read_pod(client: &ApiClient, pods: &super::resources::ResourceType, pod: &PodRef) -> Option<Value> {
    let path = super::client::object_path(pods, Some(&pod.namespace), &pod.name, None);
    let read = client.send(http::Method::GET, &path, "application/json", Vec::new()).await.ok()?;
    let object = serde_json::from_slice::<Value>(&read).ok()?;
    (object.pointer("/metadata/uid").and_then(Value::as_str) == Some(pod.uid.as_str())).then_some(object)
}

/// `status` with condition `kind` set to `state`, `reason` and `message`
/// (left out when empty): its transition time kept while its state stays.
pub(super) fn with_condition(status: Option<&Value>, kind: &str, state: &str, reason: &str, message: &str) -> Value {
    let mut status = status.cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    let mut conditions: Vec<Value> = status.get("conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let position = conditions.iter().position(|c| c.get("type").and_then(Value::as_str) == Some(kind));
    let transition = position
        .and_then(|i| conditions[i].get("status").and_then(Value::as_str).filter(|s| *s == state).map(|_| i))
        .and_then(|i| conditions[i].get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(super::objects::now()));
    let mut condition = json!({"type": kind, "status": state, "lastProbeTime": null, "lastTransitionTime": transition});
    for (field, text) in [("reason", reason), ("message", message)] {
        if !text.is_empty() {
            condition[field] = json!(text);
        }
    }
    match position {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
    status["conditions"] = Value::Array(conditions);
    status
}
