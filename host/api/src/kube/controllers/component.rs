//! One controller component as a control loop: its interests become
//! informer subscriptions whose changes queue keys by the interests'
//! triggers; each key is reconciled by a call into the component, whose
//! reads are answered from the informer caches and whose writes go through
//! the API server as the controller's service account.
//!
//! The next reconcile of a key waits (a bounded time) until the caches hold
//! what the previous reconcile of that key wrote, so a controller never
//! acts twice on a stale view of its own work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use engenho_control::{Action, Cached, Change, Filter, Informer, LabelSelector, Reconciler, Subscription, WorkQueue};
use engenho_wasm::controller_types::{
    ApiError as WitError, EventType, Interest, KindRef, ObjectKey, ObjectRef, Outcome, Propagation, Selector, Trigger,
    Write,
};
use engenho_wasm::{Applied, ClusterAccess, ControllerPlugin, PluginError};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::client::{ApiClient, PatchType, Refused};
use super::super::handlers::ApiState;
use super::super::resources::ResourceType;
use super::events::{Event, EventRecorder, Regarding};

/// Longest a reconcile waits for the caches to hold what the previous
/// reconcile of its key wrote.
const EXPECTATION_WAIT: Duration = Duration::from_secs(10);

/// Writes of one `apply` call made at once, at most.
const WRITES_IN_FLIGHT_MAX: usize = 64;

/// Writes one `apply` call may ask for, at most.
const WRITES_PER_CALL_MAX: usize = 1000;

/// Calls a new version of a controller gets before it is trusted: one that
/// traps or runs past its deadline on any of them is rolled back to the
/// version before it.
pub const PROBATION_CALLS: u32 = 3;

/// A kind the controller reads: its served type and its informer.
pub struct Watched {
    /// The kind as the controller names it.
    pub kind: KindRef,
    /// The served type.
    pub t: ResourceType,
    /// Its cache.
    pub informer: Arc<Informer>,
    /// The fields (JSON pointers) whose change queues keys; empty: any
    /// change does.
    pub changes: Vec<String>,
    /// The same fields as a tree, to read only them of an object.
    fields: Fields,
}

/// Fields an interest may name, at most.
const CHANGES_MAX: usize = 32;

/// Bytes of one field's pointer, at most.
const CHANGE_POINTER_BYTES_MAX: usize = 256;

impl Watched {
    /// Whether `change` queues keys: an object appearing or going always
    /// does; an update does when it changes one of the fields named (any,
    /// when none is), or when either side cannot be read.
    fn matters(&self, change: &Change) -> bool {
        let (Some(old), Some(new)) = (&change.old, &change.new) else { return true };
        if self.changes.is_empty() {
            return true;
        }
        match (self.fields.read(&old.json), self.fields.read(&new.json)) {
            (Ok(old), Ok(new)) => changed(&old, &new, &self.changes),
            _ => true,
        }
    }
}

/// Named fields as a tree of object keys: reading an object through it
/// keeps those fields (whole lists, where a field is under one) and skips
/// the rest unparsed into values.
#[derive(Debug, Default)]
struct Fields {
    /// This field is named whole.
    whole: bool,
    /// Named fields below it, by key.
    below: HashMap<String, Fields>,
}

impl Fields {
    /// The tree of `pointers` (JSON pointers).
    fn of(pointers: &[String]) -> Self {
        let mut root = Self::default();
        for pointer in pointers {
            let mut at = &mut root;
            for segment in pointer.split('/').skip(1) {
                at = at.below.entry(unescape(segment).into_owned()).or_default();
            }
            at.whole = true;
        }
        root
    }

    /// `json` with only these fields (and whatever lists they lie in).
    fn read(&self, json: &str) -> Result<Value, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let picked = serde::de::DeserializeSeed::deserialize(Pick(self), &mut deserializer)?;
        deserializer.end()?;
        Ok(picked)
    }
}

/// Reads a JSON value keeping the fields of a [`Fields`] tree.
struct Pick<'a>(&'a Fields);

impl<'de> serde::de::DeserializeSeed<'de> for Pick<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Pick<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut picked = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match self.0.below.get(&key) {
                Some(fields) if fields.whole => {
                    picked.insert(key, map.next_value::<Value>()?);
                }
                Some(fields) => {
                    picked.insert(key, map.next_value_seed(Pick(fields))?);
                }
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(picked))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// Whether one of the fields at `pointers` differs between `old` and `new`.
fn changed(old: &Value, new: &Value, pointers: &[String]) -> bool {
    pointers.iter().any(|pointer| field(old, pointer) != field(new, pointer))
}

/// Refuses fields an interest may not name: more than [`CHANGES_MAX`],
/// one longer than [`CHANGE_POINTER_BYTES_MAX`], one that is not a JSON
/// pointer below the root.
fn check_changes(changes: &[String]) -> Result<(), String> {
    if changes.len() > CHANGES_MAX {
        return Err(format!("it names {} changed fields; at most {CHANGES_MAX} are allowed", changes.len()));
    }
    for pointer in changes {
        if pointer.len() > CHANGE_POINTER_BYTES_MAX {
            return Err(format!("a changed field is longer than {CHANGE_POINTER_BYTES_MAX} bytes"));
        }
        if !pointer.starts_with('/') {
            return Err(format!("changed field {pointer:?} is not a JSON pointer (it must start with \"/\")"));
        }
    }
    Ok(())
}

/// A JSON pointer's segment as the key it names (`~1` is `/`, `~0` is `~`).
fn unescape(segment: &str) -> std::borrow::Cow<'_, str> {
    if segment.contains('~') { segment.replace("~1", "/").replace("~0", "~").into() } else { segment.into() }
}

/// The value at `pointer` in `value` (RFC 6901), where under a list of
/// objects a segment that is not an index picks the element whose `type`
/// is that segment (Kubernetes' conditions, a list keyed by type).
fn field<'a>(value: &'a Value, pointer: &str) -> Option<&'a Value> {
    pointer.split('/').skip(1).try_fold(value, |at, segment| {
        let segment = unescape(segment);
        match at {
            Value::Object(fields) => fields.get(segment.as_ref()),
            Value::Array(items) => match segment.parse::<usize>() {
                Ok(index) => items.get(index),
                Err(_) => items.iter().find(|item| item.get("type").and_then(Value::as_str) == Some(segment.as_ref())),
            },
            _ => None,
        }
    })
}

/// Where a change of a watched kind sends keys.
#[derive(Debug, Clone)]
enum Route {
    Itself,
    Owners(usize),
    Selecting(usize),
    Every(usize),
    SameName(usize),
    Namespace(usize),
}

/// A key of one controller: a watched kind (by index), namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    kind: usize,
    namespace: String,
    name: String,
}

/// What a write made that the caches must show before its key's next
/// reconcile.
enum Expectation {
    /// An object written at this revision.
    Applied { informer: Arc<Informer>, revision: i64 },
    /// An object deleted: gone from the cache, replaced, or marked.
    Gone { informer: Arc<Informer>, key: String, uid: String, revision: i64 },
}

impl Expectation {
    fn informer(&self) -> &Arc<Informer> {
        match self {
            Self::Applied { informer, .. } | Self::Gone { informer, .. } => informer,
        }
    }

    fn met(&self, informer: &Informer) -> bool {
        match self {
            Self::Applied { revision, .. } => informer.applied() >= *revision,
            Self::Gone { key, uid, revision, .. } => informer
                .get_by_key(key)
                .is_none_or(|cached| cached.uid != *uid || (cached.deleting && cached.revision >= *revision)),
        }
    }
}

/// The versions of a controller's component: the one running, and the one
/// before it while the running one is on probation.
struct Versions {
    running: Arc<ControllerPlugin>,
    previous: Option<Arc<ControllerPlugin>>,
    probation_left: u32,
}

/// A version rolled back, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The digest of the version that failed.
    pub digest: String,
    /// Its failure.
    pub reason: String,
}

/// A controller component's loop.
pub struct ComponentLoop {
    name: String,
    state: Arc<ApiState>,
    versions: RwLock<Versions>,
    rolled_back: Mutex<Option<RolledBack>>,
    watched: Vec<Watched>,
    routes: Vec<(usize, Route)>,
    events: EventRecorder,
    access: AccessOwner,
    pending: Mutex<HashMap<Key, Vec<Expectation>>>,
}

impl ComponentLoop {
    /// The loop of controller `name` running `plugin`: its interests
    /// resolved against the served kinds and their informers started.
    ///
    /// # Errors
    /// An interest names a kind not served, or a trigger a kind that is
    /// not among the interests.
    pub fn new(
        name: &str,
        state: Arc<ApiState>,
        plugin: Arc<ControllerPlugin>,
        client: ApiClient,
        events: EventRecorder,
    ) -> Result<Self, String> {
        let registry = state.registry();
        let interests = plugin.interests().to_vec();
        let mut watched: Vec<Watched> = Vec::new();
        for interest in &interests {
            let kind = &interest.kind;
            let t = registry
                .find(&kind.group, &kind.version, &kind.plural)
                .ok_or_else(|| format!("it reads {}, which this cluster does not serve", describe(kind)))?
                .clone();
            if watched.iter().any(|w| same_kind(&w.kind, kind)) {
                return Err(format!("it names {} twice among its interests", describe(kind)));
            }
            let informer = super::super::loops::informer_of(&state.informers, &t);
            check_changes(&interest.changes).map_err(|e| format!("its interest in {}: {e}", describe(kind)))?;
            let (changes, fields) = (interest.changes.clone(), Fields::of(&interest.changes));
            watched.push(Watched { kind: kind.clone(), t, informer, changes, fields });
        }
        let index_of = |kind: &KindRef| {
            watched
                .iter()
                .position(|w| same_kind(&w.kind, kind))
                .ok_or_else(|| format!("a trigger names {}, which is not among its interests", describe(kind)))
        };
        let mut routes = Vec::new();
        for (source, interest) in interests.iter().enumerate() {
            for trigger in &interest.triggers {
                let route = match trigger {
                    Trigger::Itself => Route::Itself,
                    Trigger::Owners(kind) => Route::Owners(index_of(kind)?),
                    Trigger::Selecting(kind) => Route::Selecting(index_of(kind)?),
                    Trigger::Every(kind) => Route::Every(index_of(kind)?),
                    Trigger::SameName(kind) => Route::SameName(index_of(kind)?),
                    Trigger::Namespace => {
                        let namespaces =
                            KindRef { group: String::new(), version: "v1".into(), plural: "namespaces".into() };
                        Route::Namespace(index_of(&namespaces)?)
                    }
                };
                routes.push((source, route));
            }
        }
        let access = AccessOwner {
            state: state.clone(),
            watched: Arc::new(watched.iter().map(|w| (w.kind.clone(), w.t.clone(), w.informer.clone())).collect()),
            client,
            events: events.clone(),
        };
        Ok(Self {
            name: name.to_owned(),
            state,
            versions: RwLock::new(Versions { running: plugin, previous: None, probation_left: 0 }),
            rolled_back: Mutex::default(),
            watched,
            routes,
            events,
            access,
            pending: Mutex::default(),
        })
    }

    /// The component running now.
    pub fn running(&self) -> Arc<ControllerPlugin> {
        self.versions.read().unwrap_or_else(std::sync::PoisonError::into_inner).running.clone()
    }

    /// Runs `plugin` from the next reconcile on; reconciles in flight finish
    /// on the version they started with. The version it replaces comes back
    /// if `plugin` fails any of its first [`PROBATION_CALLS`] calls.
    pub fn swap(&self, plugin: Arc<ControllerPlugin>) {
        let mut versions = self.versions.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = std::mem::replace(&mut versions.running, plugin);
        versions.previous = Some(previous);
        versions.probation_left = PROBATION_CALLS;
    }

    /// The last version rolled back, if any (taken: reported once).
    pub fn take_rolled_back(&self) -> Option<RolledBack> {
        self.rolled_back.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Whether `interests` are the ones this loop watches.
    pub fn watches(&self, interests: &[Interest]) -> bool {
        let running = self.running();
        running.interests() == interests
    }

    /// Keys a change of a `source` object queues.
    fn route(&self, source: usize, object: &Cached, keys: &mut Vec<Key>) {
        for (from, route) in &self.routes {
            if *from != source {
                continue;
            }
            match route {
                Route::Itself => {
                    keys.push(Key { kind: source, namespace: object.namespace.clone(), name: object.name.clone() })
                }
                Route::Owners(target) => {
                    let target_t = &self.watched[*target].t;
                    for owner in &object.owners {
                        let group = owner.api_version.rsplit_once('/').map_or("", |(group, _)| group);
                        if owner.kind == target_t.kind && group == target_t.group {
                            let namespace = if target_t.namespaced { object.namespace.clone() } else { String::new() };
                            keys.push(Key { kind: *target, namespace, name: owner.name.clone() });
                        }
                    }
                }
                Route::Selecting(target) => {
                    let filter = Filter { namespace: Some(&object.namespace), ..Filter::default() };
                    for candidate in self.watched[*target].informer.list(&filter) {
                        let selects = candidate
                            .selector
                            .as_ref()
                            .is_some_and(|s| !s.is_empty() && s.matches(|k| object.labels.get(k).map(String::as_str)));
                        if selects {
                            keys.push(Key {
                                kind: *target,
                                namespace: candidate.namespace.clone(),
                                name: candidate.name.clone(),
                            });
                        }
                    }
                }
                Route::Every(target) => {
                    for candidate in self.watched[*target].informer.list(&Filter::default()) {
                        keys.push(Key {
                            kind: *target,
                            namespace: candidate.namespace.clone(),
                            name: candidate.name.clone(),
                        });
                    }
                }
                Route::SameName(target) => {
                    let namespace =
                        if self.watched[*target].t.namespaced { object.namespace.clone() } else { String::new() };
                    keys.push(Key { kind: *target, namespace, name: object.name.clone() });
                }
                Route::Namespace(target) => {
                    if !object.namespace.is_empty() {
                        keys.push(Key { kind: *target, namespace: String::new(), name: object.namespace.clone() });
                    }
                }
            }
        }
    }

    /// Waits until the caches hold what the last reconcile of `key` wrote.
    async fn wait_for_own_writes(&self, key: &Key) {
        let expectations =
            self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key).unwrap_or_default();
        for expectation in expectations {
            let informer = expectation.informer().clone();
            if !informer.wait_until(|informer| expectation.met(informer), EXPECTATION_WAIT).await {
                tracing::debug!(controller = self.name, ?key, "the caches did not show a write in time; going on");
            }
        }
    }

    /// Records a warning about the object of `key` (if cached).
    fn warn(&self, key: &Key, reason: &str, message: String) {
        let watched = &self.watched[key.kind];
        let Some(object) = watched.informer.get(&key.namespace, &key.name) else { return };
        self.events.record(Event {
            regarding: regarding(&watched.kind, &object.namespace, &object.name, &object.uid),
            warning: true,
            reason: reason.to_owned(),
            message,
        });
    }

    /// The version to call now, and whether it is on probation (with the
    /// version to go back to).
    fn version_for_call(&self) -> (Arc<ControllerPlugin>, bool) {
        let versions = self.versions.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        (versions.running.clone(), versions.probation_left > 0 && versions.previous.is_some())
    }

    /// Settles the probation of `called` after a call that `failed` (with
    /// the error) or succeeded.
    fn settle_probation(&self, called: &Arc<ControllerPlugin>, failed: Option<&PluginError>) {
        let mut versions = self.versions.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !Arc::ptr_eq(&versions.running, called) || versions.probation_left == 0 {
            return;
        }
        match (failed, versions.previous.clone()) {
            (Some(error), Some(previous)) => {
                tracing::warn!(controller = self.name, digest = called.digest(), %error, "a new version failed; rolled back");
                *self.rolled_back.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(RolledBack { digest: called.digest().to_owned(), reason: error.to_string() });
                versions.running = previous;
                versions.previous = None;
                versions.probation_left = 0;
            }
            _ => {
                versions.probation_left -= 1;
                if versions.probation_left == 0 {
                    versions.previous = None;
                }
            }
        }
    }
}

impl Reconciler for ComponentLoop {
    type Key = Key;

    fn watch(self: &Arc<Self>, queue: &Arc<WorkQueue<Key>>) -> Vec<Subscription> {
        let sources: Vec<usize> = self.routes.iter().map(|(source, _)| *source).collect();
        let mut subscriptions = Vec::new();
        for (source, watched) in self.watched.iter().enumerate() {
            if !sources.contains(&source) {
                continue;
            }
            let (controller, queue) = (Arc::downgrade(self), queue.clone());
            subscriptions.push(watched.informer.subscribe(move |change: &Change| {
                let Some(controller) = controller.upgrade() else { return };
                let mut keys = Vec::new();
                for object in [&change.old, &change.new].into_iter().flatten() {
                    controller.route(source, object, &mut keys);
                }
                // Routed first: most changes queue no key at all, and
                // weighing the fields reads both objects whole.
                if keys.is_empty() || !controller.watched[source].matters(change) {
                    return;
                }
                for key in keys {
                    queue.add(key);
                }
            }));
        }
        subscriptions
    }

    fn resync(&self) -> Vec<Key> {
        let mut keys = Vec::new();
        for (source, route) in &self.routes {
            if matches!(route, Route::Itself) {
                for object in self.watched[*source].informer.list(&Filter::default()) {
                    keys.push(Key { kind: *source, namespace: object.namespace.clone(), name: object.name.clone() });
                }
            }
        }
        keys
    }

    async fn reconcile(&self, key: &Key) -> Action {
        self.wait_for_own_writes(key).await;
        let object_key = ObjectKey {
            kind: self.watched[key.kind].kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        };
        let access = Arc::new(Access { owner: self.access.clone(), expectations: Arc::default() });
        let (plugin, on_probation) = self.version_for_call();
        let answer = plugin.reconcile(&self.state.plugin_host, &object_key, access.clone()).await;
        let expectations = std::mem::take(&mut *lock(&access.expectations));
        if !expectations.is_empty() {
            self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key.clone(), expectations);
        }
        if on_probation {
            let failed = answer.as_ref().err().filter(|e| !matches!(e, PluginError::Busy { .. }));
            self.settle_probation(&plugin, failed);
        }
        match answer {
            Ok(Outcome::Done) => Action::Done,
            Ok(Outcome::RequeueAfter(millis)) => Action::RequeueAfter(Duration::from_millis(u64::from(millis))),
            Ok(Outcome::Failed(reason)) => {
                self.warn(key, "ReconcileFailed", format!("controller {}: {reason}", self.name));
                Action::Retry(reason)
            }
            Err(error) => {
                self.warn(key, "ReconcileError", format!("controller {}: {error}", self.name));
                Action::Retry(error.to_string())
            }
        }
    }
}

/// What one reconcile's [`Access`] needs of its loop, shared without the
/// loop's lifetime.
#[derive(Clone)]
struct AccessOwner {
    state: Arc<ApiState>,
    watched: Arc<Vec<(KindRef, ResourceType, Arc<Informer>)>>,
    client: ApiClient,
    events: EventRecorder,
}

impl AccessOwner {
    fn informer(&self, kind: &KindRef) -> Result<&Arc<Informer>, WitError> {
        self.watched.iter().find(|(k, _, _)| same_kind(k, kind)).map(|(_, _, i)| i).ok_or_else(|| WitError {
            code: 403,
            reason: "Forbidden".into(),
            message: format!("{} is not among the controller's interests", describe(kind)),
        })
    }

    /// The informer holding objects of `t`, if the controller watches it.
    fn informer_of_type(&self, t: &ResourceType) -> Option<Arc<Informer>> {
        let prefix = t.key_prefix(None);
        self.watched.iter().find(|(_, w, _)| w.key_prefix(None) == prefix).map(|(_, _, i)| i.clone())
    }
}

/// One reconcile's reads and writes, and what its writes must show in the
/// caches before the key's next reconcile.
struct Access {
    owner: AccessOwner,
    expectations: Arc<Mutex<Vec<Expectation>>>,
}

impl ClusterAccess for Access {
    fn get(&self, kind: &KindRef, namespace: &str, name: &str) -> Result<Option<String>, WitError> {
        Ok(self.owner.informer(kind)?.get(namespace, name).map(|cached| cached.json.to_string()))
    }

    fn get_version(&self, kind: &KindRef, namespace: &str, name: &str) -> Result<Option<u64>, WitError> {
        Ok(self.owner.informer(kind)?.get(namespace, name).map(|cached| cached.version))
    }

    fn list(&self, kind: &KindRef, selector: &Selector) -> Result<Vec<String>, WitError> {
        Ok(self.listed(kind, selector)?.iter().map(|cached| cached.json.to_string()).collect())
    }

    fn list_versions(&self, kind: &KindRef, selector: &Selector) -> Result<Vec<u64>, WitError> {
        Ok(self.listed(kind, selector)?.iter().map(|cached| cached.version).collect())
    }

    fn fetch(&self, kind: &KindRef, versions: &[u64]) -> Result<Vec<Option<String>>, WitError> {
        let informer = self.owner.informer(kind)?;
        Ok(versions.iter().map(|v| informer.get_by_version(*v).map(|cached| cached.json.to_string())).collect())
    }

    fn apply(&self, writes: Vec<Write>) -> Applied {
        let (owner, expectations) = (self.owner.clone(), self.expectations.clone());
        Box::pin(async move {
            if writes.len() > WRITES_PER_CALL_MAX {
                let refused = WitError {
                    code: 413,
                    reason: "RequestEntityTooLarge".into(),
                    message: format!("one apply may ask for {WRITES_PER_CALL_MAX} writes at most"),
                };
                return writes.iter().map(|_| Err(refused.clone())).collect();
            }
            futures::stream::iter(writes)
                .map(|write| {
                    let (owner, expectations) = (&owner, &expectations);
                    async move { make(owner, expectations, write).await }
                })
                .buffered(WRITES_IN_FLIGHT_MAX)
                .collect()
                .await
        })
    }

    fn emit(&self, object: ObjectRef, event_type: EventType, reason: String, message: String) {
        self.owner.events.record(Event {
            regarding: regarding(&object.kind, &object.namespace, &object.name, &object.uid),
            warning: matches!(event_type, EventType::Warning),
            reason,
            message,
        });
    }
}

impl Access {
    /// The cached objects of `kind` that `selector` picks.
    fn listed(&self, kind: &KindRef, selector: &Selector) -> Result<Vec<Arc<Cached>>, WitError> {
        let informer = self.owner.informer(kind)?;
        let labels = LabelSelector::parse_unless_empty(&selector.labels).map_err(|e| WitError {
            code: 400,
            reason: "BadRequest".into(),
            message: format!("unable to parse requirement: {e}"),
        })?;
        let filter = Filter::given(&selector.namespace, &selector.owner_uid, &selector.node_name, labels.as_ref());
        Ok(informer.list(&filter))
    }
}

/// The head of an object an answer carries.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Answered {
    metadata: AnsweredMetadata,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct AnsweredMetadata {
    name: String,
    uid: String,
    resource_version: String,
    deletion_timestamp: Option<Value>,
}

/// Makes one write; records what the caches must show of it.
async fn make(owner: &AccessOwner, expectations: &Mutex<Vec<Expectation>>, write: Write) -> Result<String, WitError> {
    let registry = owner.state.registry();
    let resolve = |kind: &KindRef| {
        registry.find(&kind.group, &kind.version, &kind.plural).cloned().ok_or_else(|| WitError {
            code: 404,
            reason: "NotFound".into(),
            message: format!("the server could not find the requested resource ({})", describe(kind)),
        })
    };
    let namespace_of =
        |t: &ResourceType, namespace: &str| (t.namespaced && !namespace.is_empty()).then(|| namespace.to_owned());
    let client = &owner.client;
    let (t, answer) = match write {
        Write::Create(write) => {
            let t = resolve(&write.kind)?;
            let namespace = namespace_of(&t, &write.namespace);
            let answer = client.create(&t, namespace.as_deref(), write.object.into_bytes()).await;
            (t, answer)
        }
        Write::Update(write) => {
            let t = resolve(&write.kind)?;
            let name = object_name(&write.object)?;
            let namespace = namespace_of(&t, &write.namespace);
            let answer = client.update(&t, namespace.as_deref(), &name, None, write.object.into_bytes()).await;
            (t, answer)
        }
        Write::UpdateStatus(write) => {
            let t = resolve(&write.kind)?;
            let name = object_name(&write.object)?;
            let namespace = namespace_of(&t, &write.namespace);
            let answer =
                client.update(&t, namespace.as_deref(), &name, Some("status"), write.object.into_bytes()).await;
            (t, answer)
        }
        Write::Patch(write) => {
            let t = resolve(&write.kind)?;
            let namespace = namespace_of(&t, &write.namespace);
            let subresource = (!write.subresource.is_empty()).then_some(write.subresource.as_str());
            let patch = (PatchType::Merge, write.patch.into_bytes());
            let answer = client.patch(&t, namespace.as_deref(), &write.name, subresource, patch).await;
            (t, answer)
        }
        Write::Delete(deletion) => {
            let t = resolve(&deletion.kind)?;
            let namespace = namespace_of(&t, &deletion.namespace);
            let propagation = match deletion.propagation {
                Propagation::Background => "Background",
                Propagation::Foreground => "Foreground",
                Propagation::Orphan => "Orphan",
            };
            let mut options = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation});
            if !deletion.uid.is_empty() {
                options["preconditions"] = json!({"uid": deletion.uid});
            }
            let answer = client.delete(&t, namespace.as_deref(), &deletion.name, &options).await;
            let body = answer.map_err(refused)?;
            let answered: Answered = serde_json::from_slice(&body).unwrap_or_default();
            let revision = answered.metadata.resource_version.parse().unwrap_or(0);
            let marked = answered.metadata.deletion_timestamp.is_some_and(|t| !t.is_null());
            if let Some(informer) = owner.informer_of_type(&t) {
                let key = t.key(namespace.as_deref(), &deletion.name);
                let uid = answered.metadata.uid;
                lock(expectations).push(Expectation::Gone { informer, key, uid, revision });
            }
            return Ok(if marked { String::from_utf8_lossy(&body).into_owned() } else { String::new() });
        }
    };
    let body = answer.map_err(refused)?;
    let answered: Answered = serde_json::from_slice(&body).unwrap_or_default();
    if let (Some(informer), Ok(revision)) = (owner.informer_of_type(&t), answered.metadata.resource_version.parse()) {
        lock(expectations).push(Expectation::Applied { informer, revision });
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The name of `object` (JSON), which an update needs.
fn object_name(object: &str) -> Result<String, WitError> {
    #[derive(Deserialize)]
    struct Named {
        metadata: AnsweredMetadata,
    }
    serde_json::from_str::<Named>(object).ok().map(|n| n.metadata.name).filter(|name| !name.is_empty()).ok_or_else(
        || WitError {
            code: 400,
            reason: "BadRequest".into(),
            message: "an update names no object: metadata.name is missing".into(),
        },
    )
}

fn refused(refused: Refused) -> WitError {
    WitError { code: refused.code, reason: refused.reason, message: refused.message }
}

fn same_kind(a: &KindRef, b: &KindRef) -> bool {
    a.group == b.group && a.version == b.version && a.plural == b.plural
}

fn describe(kind: &KindRef) -> String {
    if kind.group.is_empty() {
        format!("{}/{}", kind.version, kind.plural)
    } else {
        format!("{}/{}/{}", kind.group, kind.version, kind.plural)
    }
}

fn regarding(kind: &KindRef, namespace: &str, name: &str, uid: &str) -> Regarding {
    Regarding {
        group: kind.group.clone(),
        version: kind.version.clone(),
        plural: kind.plural.clone(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(fields: &[&str]) -> Vec<String> {
        fields.iter().map(|f| (*f).to_owned()).collect()
    }

    #[test]
    fn fields_are_read_by_pointer_and_conditions_by_type() {
        let pod = json!({"metadata": {"labels": {"app/name": "web"}},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
                "podIPs": [{"ip": "10.0.0.1"}]}});
        assert_eq!(field(&pod, "/metadata/labels/app~1name"), Some(&json!("web")));
        assert_eq!(field(&pod, "/status/conditions/Ready/status"), Some(&json!("False")));
        assert_eq!(field(&pod, "/status/podIPs/0/ip"), Some(&json!("10.0.0.1")));
        assert_eq!(field(&pod, "/status/conditions/Initialized"), None);
        assert_eq!(field(&pod, "/spec/nodeName"), None);
    }

    #[test]
    fn an_update_matters_only_when_a_named_field_changes() {
        // Goal: a binding (node name, PodScheduled) changes nothing an
        // endpoint reads; readiness and addresses do.
        let fields = pointers(&["/metadata/labels", "/status/podIP", "/status/conditions/Ready"]);
        let pending = json!({"metadata": {"labels": {"app": "web"}}, "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        let mut bound = pending.clone();
        bound["spec"]["nodeName"] = json!("n1");
        bound["status"]["conditions"] =
            json!([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]);
        assert!(!changed(&pending, &bound, &fields));
        let mut running = bound.clone();
        running["status"]["podIP"] = json!("10.0.0.1");
        assert!(changed(&bound, &running, &fields));
        let mut ready = bound.clone();
        ready["status"]["conditions"][1]["status"] = json!("True");
        assert!(changed(&bound, &ready, &fields));
        let mut relabeled = bound.clone();
        relabeled["metadata"]["labels"]["tier"] = json!("front");
        assert!(changed(&bound, &relabeled, &fields));
    }

    #[test]
    fn reading_the_named_fields_alone_decides_as_the_whole_objects_do() {
        // Goal: the tree read keeps what the pointers reach and nothing
        // else, so weighing a change reads no more than it needs.
        let fields = pointers(&["/metadata/labels", "/status/podIP", "/status/conditions/Ready", "/spec/a~1b"]);
        let tree = Fields::of(&fields);
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}],
            "a/b": 1.5}, "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}});
        let read = tree.read(&pod.to_string()).expect("reads");
        assert_eq!(
            read,
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"a/b": 1.5},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]}})
        );
        let edits: [(&str, Value); 4] = [
            ("/spec/containers", json!([])),
            ("/status/podIP", json!("10.0.0.1")),
            ("/status/phase", json!("Running")),
            ("/metadata/labels", json!({"app": "api"})),
        ];
        for (pointer, value) in edits {
            let mut edited = pod.clone();
            let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
            edited.pointer_mut(parent).expect("parent")[key] = value;
            let whole = changed(&pod, &edited, &fields);
            let picked = changed(&read, &tree.read(&edited.to_string()).expect("reads"), &fields);
            assert_eq!(whole, picked, "{pointer}");
        }
        assert!(tree.read("{\"metadata\": ").is_err(), "a broken object is an error, so the change counts");
    }

    #[test]
    fn changed_fields_must_be_few_short_pointers() {
        assert!(check_changes(&pointers(&["/status/podIP", "/metadata/labels"])).is_ok());
        let relative = check_changes(&pointers(&["status/podIP"])).expect_err("not a pointer");
        assert!(relative.contains("not a JSON pointer"), "{relative}");
        assert!(check_changes(&vec!["/a".to_owned(); CHANGES_MAX + 1]).is_err());
        assert!(check_changes(&[format!("/{}", "x".repeat(CHANGE_POINTER_BYTES_MAX))]).is_err());
    }
}
