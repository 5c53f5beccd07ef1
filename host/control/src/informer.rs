//! Informer caches: each keeps every object of one kind as the store has
//! it (listed, then followed by a store watch from the list's revision,
//! listed again when the watch's history was compacted away), indexed by
//! namespace, owner uid and node name, and tells its subscribers of every
//! change.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, Weak};
use std::time::Duration;

use engenho_store::{EventKind, KeyRange, KeyValue, Mvcc, StoreError, Watcher};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::labels::LabelSelector;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Turns a stored key-value into the object a reader sees (its
/// `resourceVersion` set, converted to the served version).
pub type Decode = Arc<dyn Fn(&KeyValue) -> Result<Value, String> + Send + Sync>;

/// Objects read from the store per step of a list.
const LIST_PAGE_KEYS: usize = 500;

/// Stored bytes read per step of a list, at most.
const LIST_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// How long an informer waits before listing again after a store failure.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// One cached object: its JSON as readers get it, and the fields the
/// indexes and the runtime read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// Its store key.
    pub key: String,
    /// Namespace, or empty.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
    /// The store revision that last wrote it: its `resourceVersion`.
    pub revision: i64,
    /// This cache entry's own number, unique in the process: a changed or
    /// re-read object gets a new one, so a reader that decoded the entry
    /// once may keep what it decoded for as long as it sees this number.
    pub version: u64,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Owners.
    pub owners: Vec<Owner>,
    /// Finalizers.
    pub finalizers: Vec<String>,
    /// Whether its deletion was asked for.
    pub deleting: bool,
    /// A pod's `spec.nodeName`, or empty.
    pub node_name: String,
    /// `spec.finalizers` (a Namespace's: what must go before it does).
    pub spec_finalizers: Vec<String>,
    /// `spec.selector` (a label selector or a Service's map), if it has one
    /// that parses.
    pub selector: Option<LabelSelector>,
    /// The object as JSON, `resourceVersion` included (empty in an
    /// informer that keeps heads only).
    pub json: Arc<str>,
}

/// One ownerReference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owner's `apiVersion`.
    pub api_version: String,
    /// The owner's kind.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's uid.
    pub uid: String,
    /// Whether the owner manages this object.
    pub controller: bool,
    /// Whether the owner's foreground deletion waits for this object.
    pub blocks_deletion: bool,
}

impl Cached {
    /// The object decoded, for readers that need more than the head.
    ///
    /// # Errors
    /// Never for what the informer made; the JSON's error otherwise.
    pub fn value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.json)
    }

    /// Bytes this entry holds, roughly: its JSON, its strings and its
    /// index entries.
    pub fn footprint(&self) -> usize {
        let strings = self.key.len() + self.namespace.len() + self.name.len() + self.uid.len() + self.node_name.len();
        let finalizers: usize = self.finalizers.iter().chain(&self.spec_finalizers).map(|f| f.len() + 24).sum();
        // Each label's map entry, and its entry in the index by label.
        let labels: usize = self.labels.iter().map(|(k, v)| k.len() + v.len() + 48 + self.key.len() + 32).sum();
        let owners: usize =
            self.owners.iter().map(|o| o.api_version.len() + o.kind.len() + o.name.len() + o.uid.len() + 104).sum();
        const VERSION_INDEX_ENTRY: usize = 24;
        std::mem::size_of::<Self>() + VERSION_INDEX_ENTRY + self.json.len() + strings + labels + owners + finalizers
    }

    fn from_stored(key: String, revision: i64, object: &Value, keep_json: bool) -> Result<Self, String> {
        static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);
        let head = Head::deserialize(object).map_err(|e| format!("not an object: {e}"))?;
        let metadata = head.metadata.unwrap_or_default();
        let selector = head.spec.as_ref().and_then(|s| s.selector.as_ref()).and_then(LabelSelector::from_object);
        Ok(Self {
            key,
            namespace: metadata.namespace.unwrap_or_default(),
            name: metadata.name.unwrap_or_default(),
            uid: metadata.uid.unwrap_or_default(),
            revision,
            version: NEXT_VERSION.fetch_add(1, Ordering::Relaxed),
            labels: metadata.labels.unwrap_or_default(),
            owners: metadata
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .map(|o| Owner {
                    api_version: o.api_version.unwrap_or_default(),
                    kind: o.kind.unwrap_or_default(),
                    name: o.name.unwrap_or_default(),
                    uid: o.uid.unwrap_or_default(),
                    controller: o.controller.unwrap_or(false),
                    blocks_deletion: o.block_owner_deletion.unwrap_or(false),
                })
                .filter(|o| !o.uid.is_empty())
                .collect(),
            finalizers: metadata.finalizers.unwrap_or_default(),
            deleting: metadata.deletion_timestamp.is_some_and(|t| !t.is_null()),
            node_name: head.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
            spec_finalizers: head.spec.and_then(|s| s.finalizers).unwrap_or_default(),
            selector,
            json: if keep_json { object.to_string().into() } else { Arc::from("") },
        })
    }
}

#[derive(Deserialize)]
struct Head {
    metadata: Option<HeadMetadata>,
    spec: Option<HeadSpec>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct HeadMetadata {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<HeadOwner>>,
    finalizers: Option<Vec<String>>,
    deletion_timestamp: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeadOwner {
    api_version: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    controller: Option<bool>,
    block_owner_deletion: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeadSpec {
    node_name: Option<String>,
    selector: Option<Value>,
    finalizers: Option<Vec<String>>,
}

/// One change the informer saw: an object added (`old` none), changed, or
/// deleted (`new` none).
#[derive(Debug, Clone)]
pub struct Change {
    /// The object before.
    pub old: Option<Arc<Cached>>,
    /// The object after.
    pub new: Option<Arc<Cached>>,
}

/// Which cached objects a list returns; `None` fields do not narrow it.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    /// Only this namespace.
    pub namespace: Option<&'a str>,
    /// Only objects with an ownerReference to this uid.
    pub owner_uid: Option<&'a str>,
    /// Only objects whose `spec.nodeName` is this.
    pub node_name: Option<&'a str>,
    /// Only objects whose labels this selects.
    pub labels: Option<&'a LabelSelector>,
}

impl<'a> Filter<'a> {
    /// The filter of a selection given as text fields, as controllers give
    /// them: an empty field does not narrow; `labels` is already parsed
    /// ([`LabelSelector::parse_unless_empty`]).
    pub fn given(
        namespace: &'a str,
        owner_uid: &'a str,
        node_name: &'a str,
        labels: Option<&'a LabelSelector>,
    ) -> Self {
        let given = |text: &'a str| (!text.is_empty()).then_some(text);
        Self { namespace: given(namespace), owner_uid: given(owner_uid), node_name: given(node_name), labels }
    }

    fn admits(&self, object: &Cached) -> bool {
        self.namespace.is_none_or(|n| object.namespace == n)
            && self.owner_uid.is_none_or(|uid| object.owners.iter().any(|o| o.uid == uid))
            && self.node_name.is_none_or(|n| object.node_name == n)
            && self.labels.is_none_or(|s| s.matches(|k| object.labels.get(k).map(String::as_str)))
    }
}

/// The cached objects and their indexes.
#[derive(Default)]
struct Cache {
    by_key: HashMap<String, Arc<Cached>>,
    by_name: HashMap<(String, String), String>,
    by_namespace: HashMap<String, HashSet<String>>,
    by_owner: HashMap<String, HashSet<String>>,
    by_node: HashMap<String, HashSet<String>>,
    /// By label key, then value.
    by_label: HashMap<String, HashMap<String, HashSet<String>>>,
    by_uid: HashMap<String, String>,
    by_version: HashMap<u64, Arc<Cached>>,
    bytes: usize,
}

fn index_insert(index: &mut HashMap<String, HashSet<String>>, value: &str, key: &str) {
    if !value.is_empty() {
        index.entry(value.to_owned()).or_default().insert(key.to_owned());
    }
}

fn index_remove(index: &mut HashMap<String, HashSet<String>>, value: &str, key: &str) {
    if let Some(keys) = index.get_mut(value) {
        keys.remove(key);
        if keys.is_empty() {
            index.remove(value);
        }
    }
}

impl Cache {
    fn put(&mut self, object: Arc<Cached>) -> Option<Arc<Cached>> {
        let old = self.remove(&object.key);
        let key = object.key.clone();
        self.by_name.insert((object.namespace.clone(), object.name.clone()), key.clone());
        index_insert(&mut self.by_namespace, &object.namespace, &key);
        for owner in &object.owners {
            index_insert(&mut self.by_owner, &owner.uid, &key);
        }
        index_insert(&mut self.by_node, &object.node_name, &key);
        for (label, value) in &object.labels {
            index_insert(self.by_label.entry(label.clone()).or_default(), value, &key);
        }
        if !object.uid.is_empty() {
            self.by_uid.insert(object.uid.clone(), key.clone());
        }
        self.bytes += object.footprint();
        self.by_version.insert(object.version, object.clone());
        self.by_key.insert(key, object);
        old
    }

    fn remove(&mut self, key: &str) -> Option<Arc<Cached>> {
        let old = self.by_key.remove(key)?;
        self.by_version.remove(&old.version);
        self.by_name.remove(&(old.namespace.clone(), old.name.clone()));
        index_remove(&mut self.by_namespace, &old.namespace, key);
        for owner in &old.owners {
            index_remove(&mut self.by_owner, &owner.uid, key);
        }
        index_remove(&mut self.by_node, &old.node_name, key);
        for (label, value) in &old.labels {
            if let Some(values) = self.by_label.get_mut(label) {
                index_remove(values, value, key);
                if values.is_empty() {
                    self.by_label.remove(label);
                }
            }
        }
        if self.by_uid.get(&old.uid).is_some_and(|k| k == key) {
            self.by_uid.remove(&old.uid);
        }
        self.bytes -= old.footprint();
        Some(old)
    }
    /// The objects `filter` admits, found through the narrowest index: by
    /// owner, node, namespace, or a label the selector requires.
    fn list(&self, filter: &Filter<'_>) -> Vec<Arc<Cached>> {
        let labelled = filter.labels.into_iter().flat_map(LabelSelector::equalities);
        let candidates = [
            filter.owner_uid.map(|uid| self.by_owner.get(uid)),
            filter.node_name.map(|node| self.by_node.get(node)),
            filter.namespace.map(|namespace| self.by_namespace.get(namespace)),
        ]
        .into_iter()
        .flatten()
        .chain(labelled.map(|(label, value)| self.by_label.get(label).and_then(|values| values.get(value))))
        .min_by_key(|keys| keys.map_or(0, HashSet::len));
        match candidates {
            Some(None) => Vec::new(),
            Some(Some(keys)) => {
                keys.iter().filter_map(|k| self.by_key.get(k)).filter(|o| filter.admits(o)).cloned().collect()
            }
            None => self.by_key.values().filter(|o| filter.admits(o)).cloned().collect(),
        }
    }
}

type Handler = Arc<dyn Fn(&Change) + Send + Sync>;

/// What a list holds per key: the revision that last wrote it.
trait Revisioned {
    fn revision(&self) -> i64;
}

impl Revisioned for KeyValue {
    fn revision(&self) -> i64 {
        self.mod_revision
    }
}

impl Revisioned for Listed {
    fn revision(&self) -> i64 {
        self.revision
    }
}

/// Where an informer reads its kind from.
#[derive(Clone)]
pub enum Source {
    /// This node's replica of the store: the objects under key `prefix`,
    /// read as `decode` says.
    Store {
        /// The store.
        store: Arc<Mvcc>,
        /// The key prefix of the kind.
        prefix: String,
        /// How a stored key-value is read.
        decode: Decode,
    },
    /// A list and watch another node serves (a worker, which holds no
    /// replica, reads through a control-plane API server).
    Remote(Arc<dyn RemoteSource>),
}

/// One object a [`RemoteSource`] read.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its key, laid out as the store's (`/registry/<plural>/<ns>/<name>`).
    pub key: String,
    /// The revision that last wrote it.
    pub revision: i64,
    /// The object, `resourceVersion` set.
    pub object: Value,
}

/// What a [`RemoteSource`]'s watch saw.
#[derive(Debug, Clone)]
pub enum Seen {
    /// An object was added or changed.
    Put(Listed),
    /// An object was deleted (as it last was).
    Delete(Listed),
    /// Every change through this revision has been sent.
    Progress(i64),
}

/// Why a [`RemoteSource`]'s watch ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The revision to watch from was compacted away: list again.
    #[error("the revision to watch from was compacted")]
    Gone,
    /// The list or watch failed.
    #[error("{0}")]
    Failed(String),
}

/// A list-and-watch of one kind served by another node.
pub trait RemoteSource: Send + Sync {
    /// Every object, and the revision they were read at.
    fn list(&self) -> futures::future::BoxFuture<'_, Result<(i64, Vec<Listed>), RemoteError>>;
    /// The changes after `revision`, in order, until the watch ends.
    fn watch(&self, revision: i64) -> futures::stream::BoxStream<'_, Result<Seen, RemoteError>>;
}

/// The cache of one kind.
pub struct Informer {
    name: String,
    source: Source,
    keep_json: bool,
    cache: RwLock<Cache>,
    handlers: Mutex<Vec<(u64, Handler)>>,
    next_handler: AtomicU64,
    /// The revision through which every change is applied (0 before the
    /// first list).
    applied: watch::Sender<i64>,
}

impl Informer {
    /// An informer, not yet running, of the objects under store key
    /// `prefix`, decoded by `decode`; `name` is for logs. One that does not
    /// `keep_json` keeps only the heads of objects (for a loop that reads
    /// nothing else, over many kinds).
    pub fn new(name: &str, store: Arc<Mvcc>, prefix: String, decode: Decode, keep_json: bool) -> Arc<Self> {
        Self::of(name, Source::Store { store, prefix, decode }, keep_json)
    }

    /// An informer, not yet running, of what `source` lists and watches
    /// (see [`Informer::new`] for `keep_json`).
    pub fn of(name: &str, source: Source, keep_json: bool) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            source,
            keep_json,
            cache: RwLock::default(),
            handlers: Mutex::default(),
            next_handler: AtomicU64::new(0),
            applied: watch::Sender::new(0),
        })
    }

    fn cache(&self) -> RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The informer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lists and follows the source until `stop` turns true.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        match self.source.clone() {
            Source::Store { store, prefix, decode } => self.follow_store(&store, &prefix, &decode, stop).await,
            Source::Remote(remote) => self.follow_remote(remote.as_ref(), stop).await,
        }
    }

    async fn follow_store(&self, store: &Arc<Mvcc>, prefix: &str, decode: &Decode, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let revision = match self.relist(store, prefix, decode) {
                Ok(revision) => revision,
                Err(error) => {
                    tracing::warn!(informer = %self.name, %error, "listing failed; listing again");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_DELAY) => continue,
                        _ = stop.changed() => return,
                    }
                }
            };
            let range = KeyRange::prefix(prefix.to_owned());
            let mut watcher = Watcher::new(store.clone(), range, revision + 1);
            loop {
                tokio::select! {
                    batches = watcher.next() => match batches {
                        Ok(batches) => {
                            for batch in batches {
                                self.apply_events(batch.revision, batch.events, decode);
                            }
                        }
                        Err(StoreError::Compacted { .. }) => {
                            tracing::info!(informer = %self.name, "the watch fell behind compaction; listing again");
                            break;
                        }
                        Err(error) => {
                            tracing::warn!(informer = %self.name, %error, "the watch failed; listing again");
                            break;
                        }
                    },
                    _ = stop.changed() => return,
                }
            }
        }
    }

    /// Lists and follows a remote source, listing again when its watch
    /// ends or fails.
    async fn follow_remote(&self, remote: &dyn RemoteSource, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let listed = tokio::select! {
                listed = remote.list() => listed,
                _ = stop.changed() => return,
            };
            let mut revision = match listed {
                Ok((revision, objects)) => {
                    let objects = objects.into_iter().map(|listed| (listed.key.clone(), listed)).collect();
                    self.replace_all(revision, objects, |key, listed| {
                        self.cached(key, listed.revision, &listed.object)
                    });
                    revision
                }
                Err(error) => {
                    tracing::warn!(informer = %self.name, %error, "listing failed; listing again");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_DELAY) => continue,
                        _ = stop.changed() => return,
                    }
                }
            };
            // A watch that ends is resumed from the last revision seen; one
            // that fails is followed by a new list.
            'watching: loop {
                let mut seen = remote.watch(revision);
                loop {
                    let next = tokio::select! {
                        next = futures::StreamExt::next(&mut seen) => next,
                        _ = stop.changed() => return,
                    };
                    match next {
                        Some(Ok(Seen::Put(listed))) => {
                            revision = listed.revision;
                            let new = self.cached(listed.key.clone(), listed.revision, &listed.object);
                            self.apply(listed.revision, vec![(listed.key, new)]);
                        }
                        Some(Ok(Seen::Delete(listed))) => {
                            revision = revision.max(listed.revision);
                            self.apply(revision, vec![(listed.key, None)]);
                        }
                        Some(Ok(Seen::Progress(through))) => {
                            revision = revision.max(through);
                            self.applied.send_replace(revision);
                        }
                        None => continue 'watching,
                        Some(Err(RemoteError::Gone)) => {
                            tracing::info!(informer = %self.name, "the watch fell behind compaction; listing again");
                            break 'watching;
                        }
                        Some(Err(RemoteError::Failed(error))) => {
                            tracing::warn!(informer = %self.name, %error, "the watch failed; listing again");
                            tokio::select! {
                                () = tokio::time::sleep(RETRY_DELAY) => break 'watching,
                                _ = stop.changed() => return,
                            }
                        }
                    }
                }
            }
        }
    }

    /// Reads every object anew and tells subscribers what differs from
    /// the cache; the revision read at.
    fn relist(&self, store: &Mvcc, prefix: &str, decode: &Decode) -> Result<i64, StoreError> {
        let mut range = KeyRange::prefix(prefix.to_owned());
        let mut revision = 0;
        let mut listed: HashMap<String, KeyValue> = HashMap::default();
        loop {
            let (current, kvs, more) = store.range_page(&range, revision, LIST_PAGE_KEYS, LIST_PAGE_BYTES)?;
            revision = current;
            if let Some(last) = kvs.last() {
                range.key = [last.key.as_slice(), b"\0"].concat();
            }
            for kv in kvs {
                listed.insert(String::from_utf8_lossy(&kv.key).into_owned(), kv);
            }
            if !more {
                break;
            }
        }
        self.replace_all(revision, listed, |key, kv| self.decoded(key, kv, decode));
        Ok(revision)
    }

    /// Makes the cache hold exactly `listed` (read at `revision`, each
    /// object with the revision that last wrote it) and tells subscribers
    /// what differs.
    fn replace_all<T: Revisioned>(
        &self,
        revision: i64,
        listed: HashMap<String, T>,
        cached: impl Fn(String, &T) -> Option<Arc<Cached>>,
    ) {
        let mut changes = Vec::new();
        {
            let mut cache = self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let gone: Vec<String> = cache.by_key.keys().filter(|k| !listed.contains_key(*k)).cloned().collect();
            for key in gone {
                changes.push(Change { old: cache.remove(&key), new: None });
            }
            for (key, object) in listed {
                if cache.by_key.get(&key).is_some_and(|c| c.revision == object.revision()) {
                    continue;
                }
                match cached(key.clone(), &object) {
                    Some(new) => changes.push(Change { old: cache.put(new.clone()), new: Some(new) }),
                    None => changes.push(Change { old: cache.remove(&key), new: None }),
                }
            }
        }
        self.notify(&changes);
        self.applied.send_replace(revision);
    }

    fn decoded(&self, key: String, kv: &KeyValue, decode: &Decode) -> Option<Arc<Cached>> {
        let object = decode(kv)
            .inspect_err(|error| tracing::warn!(informer = %self.name, %key, %error, "an unreadable object is skipped"))
            .ok()?;
        self.cached(key, kv.mod_revision, &object)
    }

    fn cached(&self, key: String, revision: i64, object: &Value) -> Option<Arc<Cached>> {
        let object = Cached::from_stored(key.clone(), revision, object, self.keep_json)
            .inspect_err(|error| tracing::warn!(informer = %self.name, %key, %error, "an unreadable object is skipped"))
            .ok()?;
        Some(Arc::new(object))
    }

    /// Applies one revision's events of the store.
    fn apply_events(&self, revision: i64, events: Vec<engenho_store::Event>, decode: &Decode) {
        let changes = events
            .into_iter()
            .map(|event| {
                let key = String::from_utf8_lossy(&event.kv.key).into_owned();
                let new = match event.kind {
                    EventKind::Put => self.decoded(key.clone(), &event.kv, decode),
                    EventKind::Delete => None,
                };
                (key, new)
            })
            .collect();
        self.apply(revision, changes);
    }

    /// Puts (or, for `None`, removes) each key's object, through
    /// `revision`, and tells subscribers.
    fn apply(&self, revision: i64, objects: Vec<(String, Option<Arc<Cached>>)>) {
        let mut changes = Vec::with_capacity(objects.len());
        {
            let mut cache = self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (key, new) in objects {
                let old = match &new {
                    Some(new) => cache.put(new.clone()),
                    None => cache.remove(&key),
                };
                if old.is_some() || new.is_some() {
                    changes.push(Change { old, new });
                }
            }
        }
        self.notify(&changes);
        self.applied.send_replace(revision);
    }

    fn notify(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let handlers: Vec<Handler> = self
            .handlers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(_, h)| h.clone())
            .collect();
        for change in changes {
            for handler in &handlers {
                handler(change);
            }
        }
    }

    /// Calls `handler` with every change from now on, first with an
    /// addition for each object cached now; until the subscription drops.
    pub fn subscribe(self: &Arc<Self>, handler: impl Fn(&Change) + Send + Sync + 'static) -> Subscription {
        let handler: Handler = Arc::new(handler);
        let id = self.next_handler.fetch_add(1, Ordering::Relaxed);
        // Registered before the replay, so that no change slips between
        // them (a change seen twice only queues a key twice).
        self.handlers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((id, handler.clone()));
        let objects: Vec<Arc<Cached>> = self.cache().by_key.values().cloned().collect();
        for object in objects {
            handler(&Change { old: None, new: Some(object) });
        }
        Subscription { informer: Arc::downgrade(self), id }
    }

    /// The object `name` (in `namespace`, empty for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Cached>> {
        let cache = self.cache();
        let key = cache.by_name.get(&(namespace.to_owned(), name.to_owned()))?;
        cache.by_key.get(key).cloned()
    }

    /// The object under store key `key`.
    pub fn get_by_key(&self, key: &str) -> Option<Arc<Cached>> {
        self.cache().by_key.get(key).cloned()
    }

    /// The object with uid `uid`.
    pub fn get_by_uid(&self, uid: &str) -> Option<Arc<Cached>> {
        let cache = self.cache();
        cache.by_uid.get(uid).and_then(|key| cache.by_key.get(key)).cloned()
    }

    /// The object whose entry has `version` ([`Cached::version`]), if the
    /// cache still holds it.
    pub fn get_by_version(&self, version: u64) -> Option<Arc<Cached>> {
        self.cache().by_version.get(&version).cloned()
    }

    /// The objects `filter` admits, found through the narrowest index.
    pub fn list(&self, filter: &Filter<'_>) -> Vec<Arc<Cached>> {
        self.cache().list(filter)
    }

    /// Objects cached, and the bytes they hold (roughly).
    pub fn size(&self) -> (usize, usize) {
        let cache = self.cache();
        (cache.by_key.len(), cache.bytes)
    }

    /// The revision through which every change is applied.
    pub fn applied(&self) -> i64 {
        *self.applied.borrow()
    }

    /// Waits until the cache has applied every change through `revision`;
    /// whether it did within `timeout`.
    pub async fn wait_for_revision(&self, revision: i64, timeout: Duration) -> bool {
        self.wait_until(|informer| informer.applied() >= revision, timeout).await
    }

    /// Waits until `condition` holds of the informer (checked after each
    /// change it applies); whether it did within `timeout`.
    pub async fn wait_until(&self, condition: impl Fn(&Self) -> bool, timeout: Duration) -> bool {
        let mut applied = self.applied.subscribe();
        let waiting = async {
            loop {
                if condition(self) {
                    return;
                }
                if applied.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, waiting).await.is_ok() && condition(self)
    }

    /// Waits until the first list is in the cache.
    pub async fn synced(&self) {
        let mut applied = self.applied.subscribe();
        let _ = applied.wait_for(|revision| *revision > 0).await;
    }
}

/// A registration of a change handler; dropping it ends the calls.
pub struct Subscription {
    informer: Weak<Informer>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(informer) = self.informer.upgrade() {
            informer
                .handlers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|(id, _)| *id != self.id);
        }
    }
}

/// The informers of one node, one per kind, started on first use and
/// running until this set is dropped.
pub struct Informers {
    store: Arc<Mvcc>,
    running: Mutex<HashMap<String, Arc<Informer>>>,
    stop: watch::Sender<bool>,
}

impl Drop for Informers {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl Informers {
    /// Informers over `store`.
    pub fn new(store: Arc<Mvcc>) -> Self {
        Self { store, running: Mutex::default(), stop: watch::Sender::new(false) }
    }

    /// The informer of the objects under `prefix` (named `name`, decoded by
    /// `decode` when it is new), started if it was not.
    pub fn informer(&self, name: &str, prefix: &str, decode: impl FnOnce() -> Decode) -> Arc<Informer> {
        self.start(name, prefix, decode, true)
    }

    /// The informer keeping only the heads of the objects under `prefix`
    /// (see [`Informer::new`]), started if it was not.
    pub fn head_informer(&self, name: &str, prefix: &str, decode: impl FnOnce() -> Decode) -> Arc<Informer> {
        self.start(name, prefix, decode, false)
    }

    fn start(&self, name: &str, prefix: &str, decode: impl FnOnce() -> Decode, keep_json: bool) -> Arc<Informer> {
        let mut running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = format!("{prefix}\0{keep_json}");
        if let Some(informer) = running.get(&id) {
            return informer.clone();
        }
        let informer = Informer::new(name, self.store.clone(), prefix.to_owned(), decode(), keep_json);
        tokio::spawn(informer.clone().run(self.stop.subscribe()));
        running.insert(id, informer.clone());
        informer
    }

    /// Every running informer.
    pub fn all(&self) -> Vec<Arc<Informer>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engenho_store::{Command, DeleteRequest, PutRequest};
    use serde_json::json;

    fn write(store: &Mvcc, command: Command) {
        let mut applier = store.applier();
        applier.apply(&command).expect("applied");
        applier.commit(None, None).expect("committed");
    }

    fn put_pod(store: &Mvcc, name: &str, owner: &str, node: &str) {
        let pod = json!({
            "metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}"), "labels": {"app": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                              "uid": owner, "controller": true}]},
            "spec": {"nodeName": node},
        });
        let key = format!("/registry/pods/d/{name}").into_bytes();
        write(store, Command::Put(PutRequest { key, value: pod.to_string().into_bytes(), ..PutRequest::default() }));
    }

    fn decode() -> Decode {
        Arc::new(|kv: &KeyValue| {
            let mut object: Value = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
            object["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
            Ok(object)
        })
    }

    #[tokio::test]
    async fn an_informer_lists_follows_and_indexes_the_store() {
        let root = tempfile::tempdir().expect("temporary directory");
        let storage = engenho_store::open_database(&root.path().join("db")).expect("open");
        let store = Mvcc::open(&storage).expect("store");
        put_pod(&store, "a", "rs-1", "n1");
        put_pod(&store, "b", "rs-1", "n2");
        let informers = Informers::new(store.clone());
        let informer = informers.informer("pods", "/registry/pods/", decode);
        informer.synced().await;
        assert_eq!(informer.size().0, 2);
        let changes = Arc::new(Mutex::new(Vec::new()));
        let seen = changes.clone();
        let subscription = informer.subscribe(move |change: &Change| {
            let name = |c: &Option<Arc<Cached>>| c.as_ref().map(|c| c.name.clone());
            seen.lock().expect("lock").push((name(&change.old), name(&change.new)));
        });
        assert_eq!(changes.lock().expect("lock").len(), 2, "existing objects are replayed as additions");

        put_pod(&store, "c", "rs-2", "n1");
        write(&store, Command::Delete(DeleteRequest { range: KeyRange::single("/registry/pods/d/a"), prev_kv: false }));
        assert!(informer.wait_for_revision(store.revision(), Duration::from_secs(5)).await);
        let names = |objects: Vec<Arc<Cached>>| {
            let mut names: Vec<String> = objects.iter().map(|o| o.name.clone()).collect();
            names.sort();
            names
        };
        assert_eq!(names(informer.list(&Filter { owner_uid: Some("rs-1"), ..Filter::default() })), ["b"]);
        assert_eq!(names(informer.list(&Filter { node_name: Some("n1"), ..Filter::default() })), ["c"]);
        assert_eq!(names(informer.list(&Filter { namespace: Some("d"), ..Filter::default() })), ["b", "c"]);
        assert!(informer.list(&Filter { namespace: Some("other"), ..Filter::default() }).is_empty());
        let selector = LabelSelector::parse("app=web").expect("parse");
        assert_eq!(informer.list(&Filter { labels: Some(&selector), ..Filter::default() }).len(), 2);
        let c = informer.get("d", "c").expect("cached");
        assert_eq!(c.value().expect("json")["metadata"]["resourceVersion"], json!(c.revision.to_string()));
        assert!(informer.get("d", "a").is_none());
        let seen = changes.lock().expect("lock").clone();
        assert!(seen.contains(&(None, Some("c".into()))) && seen.contains(&(Some("a".into()), None)), "{seen:?}");

        drop(subscription);
        put_pod(&store, "d", "rs-2", "n1");
        assert!(informer.wait_for_revision(store.revision(), Duration::from_secs(5)).await);
        assert_eq!(changes.lock().expect("lock").len(), seen.len(), "a dropped subscription hears nothing");

        let b = informer.get("d", "b").expect("cached");
        assert!(Arc::ptr_eq(&informer.get_by_version(b.version).expect("found by version"), &b));
        put_pod(&store, "b", "rs-1", "n3");
        assert!(informer.wait_for_revision(store.revision(), Duration::from_secs(5)).await);
        let changed = informer.get("d", "b").expect("cached");
        assert_ne!(changed.version, b.version, "a changed object has a new version");
        assert!(informer.get_by_version(b.version).is_none(), "the old version is gone");
        assert_eq!(informer.get_by_version(changed.version).expect("found by version").node_name, "n3");
    }

    #[tokio::test]
    async fn a_relist_reports_what_changed_while_the_informer_was_not_watching() {
        let root = tempfile::tempdir().expect("temporary directory");
        let storage = engenho_store::open_database(&root.path().join("db")).expect("open");
        let store = Mvcc::open(&storage).expect("store");
        put_pod(&store, "a", "rs", "n");
        put_pod(&store, "b", "rs", "n");
        let informer = Informer::new("pods", store.clone(), "/registry/pods/".into(), decode(), true);
        let decoder = decode();
        let relist = |informer: &Informer| informer.relist(&store, "/registry/pods/", &decoder);
        relist(&informer).expect("listed");
        let changes = Arc::new(Mutex::new(Vec::new()));
        let seen = changes.clone();
        let _subscription = informer.subscribe(move |change: &Change| {
            if change.old.is_some() {
                seen.lock().expect("lock").push((change.old.clone(), change.new.clone()));
            }
        });
        write(&store, Command::Delete(DeleteRequest { range: KeyRange::single("/registry/pods/d/a"), prev_kv: false }));
        put_pod(&store, "b", "rs", "m");
        let c_version = |informer: &Informer| informer.get("d", "c").map(|c| c.version);
        put_pod(&store, "c", "rs", "n");
        relist(&informer).expect("listed");
        let unchanged = c_version(&informer).expect("c cached");
        relist(&informer).expect("listed again");
        assert_eq!(c_version(&informer), Some(unchanged), "a relist keeps the version of an unchanged object");
        let seen = changes.lock().expect("lock");
        assert_eq!(seen.len(), 2, "one deletion and one update");
        assert!(seen.iter().any(|(old, new)| old.as_ref().is_some_and(|o| o.name == "a") && new.is_none()));
        assert!(seen.iter().any(|(_, new)| new.as_ref().is_some_and(|n| n.node_name == "m")));
        assert_eq!(informer.applied(), store.revision());
    }

    /// A remote source whose lists and watches the test scripts: each
    /// list answers the next listing, each watch the next script of
    /// events (ending the watch after them).
    struct Scripted {
        lists: Mutex<Vec<(i64, Vec<Listed>)>>,
        watches: Mutex<Vec<Vec<Result<Seen, RemoteError>>>>,
        watched_from: Mutex<Vec<i64>>,
    }

    impl RemoteSource for Scripted {
        fn list(&self) -> futures::future::BoxFuture<'_, Result<(i64, Vec<Listed>), RemoteError>> {
            let next = self.lists.lock().expect("lock").pop();
            Box::pin(async move { next.ok_or_else(|| RemoteError::Failed("no more lists".into())) })
        }

        fn watch(&self, revision: i64) -> futures::stream::BoxStream<'_, Result<Seen, RemoteError>> {
            use futures::StreamExt;
            self.watched_from.lock().expect("lock").push(revision);
            let events = self.watches.lock().expect("lock").pop();
            match events {
                Some(events) => futures::stream::iter(events).boxed(),
                None => futures::stream::pending().boxed(),
            }
        }
    }

    fn listed(name: &str, node: &str, revision: i64) -> Listed {
        let object = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "d", "uid": name, "resourceVersion": revision.to_string()},
            "spec": {"nodeName": node}});
        Listed { key: format!("/registry/core/pods/d/{name}"), revision, object }
    }

    #[tokio::test]
    async fn a_remote_informer_lists_follows_resumes_and_lists_again_when_gone() {
        // Goal: a worker's informer keeps the cache a list and its watch
        // describe: puts and deletes applied, a bookmark moves the applied
        // revision, a watch that ends is resumed from the last revision
        // seen, and one whose revision was compacted is listed anew.
        let source = Arc::new(Scripted {
            // Popped from the end: the first list, then the second.
            lists: Mutex::new(vec![(40, vec![listed("b", "n2", 35)]), (10, vec![listed("a", "n1", 5)])]),
            watches: Mutex::new(vec![
                vec![Err(RemoteError::Gone)],
                vec![Ok(Seen::Delete(listed("a", "n1", 13))), Ok(Seen::Progress(20))],
                vec![Ok(Seen::Put(listed("a", "n9", 11))), Ok(Seen::Put(listed("c", "n1", 12)))],
            ]),
            watched_from: Mutex::new(Vec::new()),
        });
        let informer = Informer::of("pods", Source::Remote(source.clone()), true);
        let (stop_sender, stop) = watch::channel(false);
        let running = tokio::spawn(informer.clone().run(stop));
        assert!(informer.wait_until(|i| i.get("d", "b").is_some(), Duration::from_secs(5)).await, "listed again");
        assert!(informer.get("d", "a").is_none() && informer.get("d", "c").is_none(), "the new list is the cache");
        assert_eq!(informer.applied(), 40);
        assert_eq!(*source.watched_from.lock().expect("lock"), vec![10, 12, 20, 40], "resumed where it stood");
        stop_sender.send_replace(true);
        running.await.expect("the informer stops");
    }

    mod indexes {
        use proptest::prelude::*;

        use super::super::{Cache, Cached, Filter};
        use crate::labels::LabelSelector;

        /// An object of a few namespaces, labels, owners and nodes.
        fn object(number: usize, draws: (u8, u8, u8, u8, u8)) -> Cached {
            let (namespace, app, tier, owner, node) = draws;
            let mut labels = serde_json::Map::new();
            labels.insert("app".into(), format!("app-{}", app % 3).into());
            if tier % 3 != 0 {
                labels.insert("tier".into(), format!("tier-{}", tier % 2).into());
            }
            let object = serde_json::json!({
                "metadata": {"name": format!("o{number}"), "namespace": format!("ns-{}", namespace % 2),
                             "uid": format!("uid-{number}"), "labels": labels,
                             "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x",
                                                  "uid": format!("owner-{}", owner % 3)}]},
                "spec": {"nodeName": format!("node-{}", node % 3)},
            });
            let key = format!("/registry/x/ns-{}/o{number}", namespace % 2);
            Cached::from_stored(key, 1, &object, false).expect("an object")
        }

        const SELECTORS: [&str; 6] =
            ["app=app-1", "app=app-0,tier=tier-1", "tier", "app in (app-1,app-2)", "app=app-2,!tier", "app=none"];

        proptest! {
            #[test]
            fn lists_through_the_indexes_equal_a_scan(
                objects in proptest::collection::vec(any::<(u8, u8, u8, u8, u8)>(), 0..40),
                removed in proptest::collection::vec(any::<u8>(), 0..10),
                relabelled in proptest::collection::vec(any::<(u8, (u8, u8, u8, u8, u8))>(), 0..10),
            ) {
                // Goal: whichever index narrows a list (label, namespace,
                // owner, node), it returns what a scan of every object
                // admits, as objects come, change their labels and go.
                let mut cache = Cache::default();
                for (number, draws) in objects.iter().enumerate() {
                    cache.put(std::sync::Arc::new(object(number, *draws)));
                }
                for (number, draws) in relabelled {
                    let number = usize::from(number) % objects.len().max(1);
                    cache.put(std::sync::Arc::new(object(number, draws)));
                }
                for number in removed {
                    let key = cache.by_key.keys().nth(usize::from(number) % cache.by_key.len().max(1)).cloned();
                    if let Some(key) = key {
                        cache.remove(&key);
                    }
                }
                for text in SELECTORS {
                    let selector = LabelSelector::parse(text).expect("a selector");
                    for namespace in [None, Some("ns-1")] {
                        for owner in [None, Some("owner-2")] {
                            let filter = Filter { namespace, owner_uid: owner, labels: Some(&selector), ..Filter::default() };
                            let mut listed: Vec<String> = cache.list(&filter).iter().map(|o| o.key.clone()).collect();
                            let mut scanned: Vec<String> =
                                cache.by_key.values().filter(|o| filter.admits(o)).map(|o| o.key.clone()).collect();
                            listed.sort();
                            scanned.sort();
                            prop_assert_eq!(listed, scanned, "{} in {:?} owned by {:?}", text, namespace, owner);
                        }
                    }
                }
                let emptied = cache.by_label.values().flat_map(|values| values.values()).any(std::collections::HashSet::is_empty);
                prop_assert!(!emptied, "no empty entry is left in the label index");
            }
        }
    }
}
