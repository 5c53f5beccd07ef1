//! The garbage collector: dependents follow their owners as the owner's
//! deletion asked (`ownerReferences` with propagation Background,
//! Foreground or Orphan), and a deleted namespace's contents go before it.
//!
//! Every API server keeps an index of owners and namespace members from a
//! store watch; only the raft leader acts on it, so one node does the work.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use engenho_store::{EventKind, KeyRange, RangeRequest, Watcher};
use serde::Deserialize;
use serde_json::Value;

use super::objects::{DeleteOptions, ObjectStore, Propagation};
use super::resources::{Registry, SharedRegistry};
use super::status::ApiError;

/// How often everything that may need work is looked at again (leadership
/// changes, retries after failures).
const RESYNC_INTERVAL: Duration = Duration::from_secs(5);

/// The prefix of every object's key.
const OBJECTS_PREFIX: &str = "/registry/";

/// What the collector knows of one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Entry {
    uid: String,
    /// Owner uids, each with whether it blocks the owner's foreground
    /// deletion.
    owners: Vec<(String, bool)>,
    deleting: bool,
    finalizers: Vec<String>,
    /// A namespace whose contents must go first (`spec.finalizers`).
    holds_contents: bool,
}

/// The fields of a stored object the collector reads; the rest of the
/// object is skipped unparsed, and a `null` reads as absent.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Stored<'a> {
    #[serde(borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(deserialize_with = "null_as_default")]
    metadata: StoredMetadata,
    #[serde(deserialize_with = "null_as_default")]
    spec: StoredSpec,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct StoredMetadata {
    #[serde(deserialize_with = "null_as_default")]
    uid: String,
    #[serde(deserialize_with = "null_as_default")]
    owner_references: Vec<StoredOwner>,
    deletion_timestamp: Option<serde::de::IgnoredAny>,
    #[serde(deserialize_with = "null_as_default")]
    finalizers: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct StoredOwner {
    #[serde(deserialize_with = "null_as_default")]
    uid: String,
    block_owner_deletion: Option<bool>,
}

fn null_as_default<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Default>(
    deserializer: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StoredSpec {
    finalizers: Option<Vec<serde::de::IgnoredAny>>,
}

impl Entry {
    /// What the collector keeps of a stored object (nothing of bytes that
    /// are not one).
    fn parse(bytes: &[u8]) -> Self {
        let Ok(stored) = serde_json::from_slice::<Stored<'_>>(bytes) else { return Self::default() };
        let metadata = stored.metadata;
        Self {
            uid: metadata.uid,
            owners: metadata
                .owner_references
                .into_iter()
                .filter(|owner| !owner.uid.is_empty())
                .map(|owner| (owner.uid, owner.block_owner_deletion.unwrap_or(false)))
                .collect(),
            deleting: metadata.deletion_timestamp.is_some(),
            finalizers: metadata.finalizers,
            holds_contents: stored.spec.finalizers.is_some_and(|f| !f.is_empty())
                && stored.kind.as_deref() == Some("Namespace"),
        }
    }

    fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }
}

/// Hash maps of the index: keyed by store keys and uids of every object,
/// hashed with foldhash (randomly seeded per process; a fraction of
/// SipHash's cost on keys of 40 to 100 bytes).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Owners, dependents and namespace members of every object.
#[derive(Debug, Default)]
struct Index {
    by_key: HashMap<String, Entry>,
    by_uid: HashMap<String, String>,
    dependents: HashMap<String, BTreeSet<String>>,
    /// The keys of each namespace's objects (hashed: a namespace may hold
    /// many thousands, their keys sharing a long prefix).
    members: HashMap<String, HashSet<String>>,
}

impl Index {
    /// Records `key` as `entry` (or as gone); the keys that may now need
    /// work.
    fn record(&mut self, registry: &Registry, key: &str, entry: Option<Entry>) -> Vec<String> {
        let mut affected = Vec::new();
        let namespace = registry.locate(key).and_then(|(_, namespace, _)| namespace);
        if let Some(old) = self.by_key.remove(key) {
            self.by_uid.remove(&old.uid);
            for (owner, _) in &old.owners {
                if let Some(set) = self.dependents.get_mut(owner) {
                    set.remove(key);
                    if set.is_empty() {
                        self.dependents.remove(owner);
                    }
                }
            }
            if entry.is_none() {
                // Its dependents may be garbage now; its owners (waiting in
                // the foreground) or its namespace may be done.
                affected.extend(self.dependents.get(&old.uid).into_iter().flatten().cloned());
                affected.extend(old.owners.iter().filter_map(|(uid, _)| self.by_uid.get(uid).cloned()));
                if let Some(namespace) = namespace {
                    affected.push(super::objects::namespace_key(namespace));
                }
                let namespaces =
                    |(t, ..): &(&super::resources::ResourceType, _, _)| (t.group, t.plural) == ("", "namespaces");
                if let Some((_, None, name)) = registry.locate(key).filter(namespaces) {
                    affected.extend(self.members.get(name).into_iter().flatten().cloned());
                }
            }
        }
        if let Some(namespace) = namespace {
            let members = self.members.entry(namespace.to_owned()).or_default();
            if entry.is_some() {
                members.insert(key.to_owned());
            } else {
                members.remove(key);
                if members.is_empty() {
                    self.members.remove(namespace);
                }
            }
        }
        if let Some(entry) = entry {
            self.by_uid.insert(entry.uid.clone(), key.to_owned());
            for (owner, _) in &entry.owners {
                self.dependents.entry(owner.clone()).or_default().insert(key.to_owned());
            }
            let homeless = namespace.is_some_and(|n| !self.by_key.contains_key(&super::objects::namespace_key(n)));
            if entry.deleting || !entry.owners.is_empty() || homeless {
                affected.push(key.to_owned());
            }
            self.by_key.insert(key.to_owned(), entry);
        }
        affected
    }

    /// Every key that may need work.
    fn pending(&self) -> Vec<String> {
        self.by_key.iter().filter(|(_, e)| e.deleting || !e.owners.is_empty()).map(|(k, _)| k.clone()).collect()
    }
}

/// Keys waiting for work, each once.
#[derive(Debug, Default)]
struct Queue {
    order: VecDeque<String>,
    queued: BTreeSet<String>,
}

impl Queue {
    fn push(&mut self, key: String) {
        if self.queued.insert(key.clone()) {
            self.order.push_back(key);
        }
    }

    fn pop(&mut self) -> Option<String> {
        let key = self.order.pop_front()?;
        self.queued.remove(&key);
        Some(key)
    }
}

/// The collector of one API server.
pub struct Collector {
    objects: ObjectStore,
    registry: SharedRegistry,
    index: Index,
    queue: Queue,
}

impl Collector {
    /// A collector over `objects` of the kinds in `registry`.
    pub fn new(objects: ObjectStore, registry: SharedRegistry) -> Self {
        Self { objects, registry, index: Index::default(), queue: Queue::default() }
    }

    /// Collects until `stop` turns true.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let mut watcher = match self.load() {
                Ok(watcher) => watcher,
                Err(error) => {
                    tracing::warn!(%error, "the garbage collector could not read the store");
                    tokio::select! {
                        () = tokio::time::sleep(RESYNC_INTERVAL) => continue,
                        _ = stop.wait_for(|stopped| *stopped) => return,
                    }
                }
            };
            let mut resync = tokio::time::interval(RESYNC_INTERVAL);
            loop {
                tokio::select! {
                    batches = watcher.next() => match batches {
                        Ok(batches) => {
                            for event in batches.iter().flat_map(|b| &b.events) {
                                let key = String::from_utf8_lossy(&event.kv.key).into_owned();
                                let entry = match event.kind {
                                    EventKind::Put => Some(Entry::parse(&event.kv.value)),
                                    EventKind::Delete => None,
                                };
                                for key in self.index.record(&self.registry.current(), &key, entry) {
                                    self.queue.push(key);
                                }
                            }
                        }
                        Err(error) => {
                            tracing::info!(%error, "the garbage collector reloads the store");
                            break;
                        }
                    },
                    _ = resync.tick() => {
                        for key in self.index.pending() {
                            self.queue.push(key);
                        }
                    }
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
                if !self.objects.is_leader() {
                    self.queue = Queue::default();
                    continue;
                }
                while let Some(key) = self.queue.pop() {
                    if let Err(error) = self.collect(&key).await {
                        tracing::debug!(key, %error, "garbage collection will retry");
                    }
                }
            }
        }
    }

    /// Indexes every object now; a watcher for what comes after.
    fn load(&mut self) -> Result<Watcher, ApiError> {
        let store = self.objects.store();
        let request = RangeRequest { range: KeyRange::prefix(OBJECTS_PREFIX.to_owned()), ..RangeRequest::default() };
        let (revision, found) = store.range(&request)?;
        self.index = Index::default();
        self.queue = Queue::default();
        for kv in &found.kvs {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            for key in self.index.record(&self.registry.current(), &key, Some(Entry::parse(&kv.value))) {
                self.queue.push(key);
            }
        }
        Ok(Watcher::new(store, KeyRange::prefix(OBJECTS_PREFIX.to_owned()), revision + 1))
    }

    /// Does what object `key` needs: finishing its deletion, or deleting
    /// or freeing it when its owners are gone.
    async fn collect(&self, key: &str) -> Result<(), ApiError> {
        let Some(entry) = self.index.by_key.get(key).cloned() else { return Ok(()) };
        let registry = self.registry.current();
        let Some((t, namespace, name)) = registry.locate(key) else { return Ok(()) };
        let dependents: Vec<String> = self.index.dependents.get(&entry.uid).into_iter().flatten().cloned().collect();
        if entry.deleting && entry.has_finalizer("orphan") {
            for dependent in &dependents {
                self.disown(dependent, &entry.uid).await?;
            }
            self.remove_finalizer(key, "orphan").await?;
        }
        if entry.deleting && entry.has_finalizer("foregroundDeletion") {
            let mut blocked = false;
            for dependent in &dependents {
                let Some(of_it) = self.index.by_key.get(dependent) else { continue };
                blocked |= of_it.owners.iter().any(|(uid, block)| *uid == entry.uid && *block);
                if !of_it.deleting {
                    let cascades = self.index.dependents.contains_key(&of_it.uid);
                    let propagation = if cascades { Propagation::Foreground } else { Propagation::Background };
                    self.delete(dependent, &of_it.uid, propagation).await?;
                }
            }
            if !blocked {
                self.remove_finalizer(key, "foregroundDeletion").await?;
            }
        }
        if entry.deleting && entry.holds_contents {
            let members: Vec<String> = self.index.members.get(name).into_iter().flatten().cloned().collect();
            for member in &members {
                if let Some(of_it) = self.index.by_key.get(member).filter(|e| !e.deleting) {
                    self.delete(member, &of_it.uid, Propagation::Background).await?;
                }
            }
            if members.is_empty() {
                self.objects
                    .modify(t, namespace, name, |object| {
                        object["spec"].as_object_mut().and_then(|spec| spec.remove("finalizers")).is_some()
                    })
                    .await?;
            }
        }
        let homeless = namespace.is_some_and(|n| !self.index.by_key.contains_key(&super::objects::namespace_key(n)));
        if homeless && !entry.deleting {
            return self.delete(key, &entry.uid, Propagation::Background).await;
        }
        if !entry.deleting && !entry.owners.is_empty() {
            let absent: Vec<&str> = entry
                .owners
                .iter()
                .map(|(uid, _)| uid.as_str())
                .filter(|uid| !self.index.by_uid.contains_key(*uid))
                .collect();
            if absent.len() == entry.owners.len() {
                self.delete(key, &entry.uid, Propagation::Background).await?;
            } else {
                for uid in absent {
                    self.disown(key, uid).await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes `key` if it is still the object `uid`.
    async fn delete(&self, key: &str, uid: &str, propagation: Propagation) -> Result<(), ApiError> {
        let registry = self.registry.current();
        let Some((t, namespace, name)) = registry.locate(key) else { return Ok(()) };
        let options = DeleteOptions { propagation, precondition_uid: Some(uid.to_owned()), ..DeleteOptions::default() };
        match self.objects.delete(t, namespace, name, &options, false).await {
            Ok(_) => {
                tracing::debug!(key, "garbage collected");
                Ok(())
            }
            Err(error) if matches!(error.code, 404 | 409) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Removes owner `owner_uid` from the owner references of `key`.
    async fn disown(&self, key: &str, owner_uid: &str) -> Result<(), ApiError> {
        let registry = self.registry.current();
        let Some((t, namespace, name)) = registry.locate(key) else { return Ok(()) };
        self.objects
            .modify(t, namespace, name, |object| {
                let Some(owners) = object.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) else {
                    return false;
                };
                let before = owners.len();
                owners.retain(|o| o.get("uid").and_then(Value::as_str) != Some(owner_uid));
                let changed = owners.len() != before;
                if owners.is_empty() {
                    super::objects::metadata_mut(object).remove("ownerReferences");
                }
                changed
            })
            .await?;
        Ok(())
    }

    /// Removes `finalizer` from the object at `key`; the object goes if it
    /// was the last.
    async fn remove_finalizer(&self, key: &str, finalizer: &str) -> Result<(), ApiError> {
        let registry = self.registry.current();
        let Some((t, namespace, name)) = registry.locate(key) else { return Ok(()) };
        self.objects.remove_finalizer(t, namespace, name, finalizer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(uid: &str, owners: &[&str], deleting: bool) -> Entry {
        let references: Vec<Value> = owners.iter().map(|o| json!({"uid": o, "blockOwnerDeletion": true})).collect();
        let mut value = json!({"metadata": {"uid": uid, "ownerReferences": references}});
        if deleting {
            value["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            value["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
        }
        entry(value)
    }

    fn entry(value: Value) -> Entry {
        Entry::parse(&serde_json::to_vec(&value).expect("json"))
    }

    #[test]
    fn the_index_follows_owners_dependents_and_members() {
        let registry = Registry::built_in();
        let mut index = Index::default();
        let deployment = "/registry/apps/deployments/team/web";
        let replicaset = "/registry/apps/replicasets/team/web-1";
        let pod = "/registry/core/pods/team/web-1-a";
        let team = "/registry/core/namespaces/team";
        index.record(&registry, team, Some(object("t", &[], false)));
        assert!(index.record(&registry, deployment, Some(object("d", &[], false))).is_empty());
        assert_eq!(index.record(&registry, replicaset, Some(object("r", &["d"], false))), [replicaset]);
        index.record(&registry, pod, Some(object("p", &["r"], false)));
        assert_eq!(index.dependents["d"].iter().collect::<Vec<_>>(), [replicaset]);
        assert_eq!(index.members["team"].len(), 3);

        let mut affected = index.record(&registry, deployment, None);
        affected.sort();
        assert_eq!(affected, [replicaset, "/registry/core/namespaces/team"], "the orphan and the namespace");
        assert!(!index.by_uid.contains_key("d"));

        index.record(&registry, replicaset, Some(object("r", &[], true)));
        let affected = index.record(&registry, pod, None);
        assert!(affected.contains(&replicaset.to_owned()), "an owner waiting in the foreground hears of it");
        assert_eq!(index.pending(), [replicaset]);
        assert_eq!(index.record(&registry, team, None), [replicaset], "a namespace's members hear of its end");
    }

    #[test]
    fn entries_read_finalizers_and_namespace_contents() {
        let namespace = entry(json!({"kind": "Namespace", "metadata": {"uid": "n",
            "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"finalizers": ["kubernetes"]}}));
        assert!(namespace.deleting && namespace.holds_contents);
        let orphaning = entry(json!({"metadata": {"uid": "o", "finalizers": ["orphan"]}}));
        assert!(orphaning.has_finalizer("orphan") && !orphaning.holds_contents);
        let nulls = entry(json!({"metadata": {"uid": "x", "ownerReferences": null, "finalizers": null,
            "deletionTimestamp": null}, "spec": null}));
        assert_eq!((nulls.uid.as_str(), nulls.owners.len(), nulls.deleting), ("x", 0, false));
        assert_eq!(Entry::parse(b"not json"), Entry::default());
    }
}
