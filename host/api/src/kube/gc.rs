//! The garbage collector: dependents follow their owners as the owner's
//! deletion asked (`ownerReferences` with propagation Background,
//! Foreground or Orphan), and a deleted namespace's contents go before it.
//!
//! A loop on the controller runtime, on the raft leader: an informer keeps
//! the heads of every object (uid, owners, finalizers, deletion), indexed
//! by owner uid, uid and namespace; each change queues the objects it may
//! concern. Its writes go through the API server as
//! `system:serviceaccount:kube-system:generic-garbage-collector`.

use std::sync::Arc;
use std::time::Duration;

use engenho_control::{Action, Cached, Change, Filter, Informer, Reconciler, Subscription, WorkQueue};
use serde_json::{Value, json};

use super::client::{ApiClient, PatchType, Refused};
use super::objects::namespace_key;
use super::resources::SharedRegistry;

/// The name the collector runs and writes as.
pub const NAME: &str = "generic-garbage-collector";

/// How often every object that may need work is looked at again.
pub const RESYNC_PERIOD: Duration = Duration::from_secs(30);

/// The prefix of every object's key.
const OBJECTS_PREFIX: &str = "/registry/";

/// The finalizer that asks for dependents to be orphaned.
const ORPHAN: &str = "orphan";

/// The finalizer that asks for blocking dependents to go first.
const FOREGROUND: &str = "foregroundDeletion";

/// The informer the collector reads: the heads of every object.
pub fn informer(informers: &engenho_control::Informers) -> Arc<Informer> {
    informers.head_informer("all objects", OBJECTS_PREFIX, || {
        Arc::new(|kv| serde_json::from_slice(&kv.value).map_err(|e| format!("not JSON: {e}")))
    })
}

/// The collector.
pub struct Collector {
    objects: Arc<Informer>,
    registry: SharedRegistry,
    client: ApiClient,
}

impl Collector {
    /// A collector reading `objects` (see [`informer`]) of the kinds in
    /// `registry`, writing through `client`.
    pub fn new(objects: Arc<Informer>, registry: SharedRegistry, client: ApiClient) -> Self {
        Self { objects, registry, client }
    }

    /// The keys a change may concern: the object itself when it waits for
    /// something; when it is gone, its dependents, its owners (waiting in
    /// the foreground), its namespace, and (for a namespace) its members.
    fn affected(&self, change: &Change) -> Vec<String> {
        let mut keys = Vec::new();
        if let Some(new) = &change.new
            && (new.deleting || !new.owners.is_empty() || self.homeless(new))
        {
            keys.push(new.key.clone());
        }
        if let (Some(old), None) = (&change.old, &change.new) {
            let dependents = self.objects.list(&Filter { owner_uid: Some(&old.uid), ..Filter::default() });
            keys.extend(dependents.iter().map(|d| d.key.clone()));
            keys.extend(old.owners.iter().filter_map(|o| self.objects.get_by_uid(&o.uid)).map(|o| o.key.clone()));
            if !old.namespace.is_empty() {
                keys.push(namespace_key(&old.namespace));
            }
            if self.is_namespace(old) {
                let members = self.objects.list(&Filter { namespace: Some(&old.name), ..Filter::default() });
                keys.extend(members.iter().map(|m| m.key.clone()));
            }
        }
        keys
    }

    fn is_namespace(&self, object: &Cached) -> bool {
        object.key == namespace_key(&object.name) && object.namespace.is_empty()
    }

    /// Whether `object` is in a namespace that does not exist.
    fn homeless(&self, object: &Cached) -> bool {
        !object.namespace.is_empty() && self.objects.get_by_key(&namespace_key(&object.namespace)).is_none()
    }

    /// Does what `object` needs: finishing its deletion, or deleting or
    /// freeing it when its owners are gone.
    async fn collect(&self, object: &Cached) -> Result<(), Refused> {
        let dependents = self.objects.list(&Filter { owner_uid: Some(&object.uid), ..Filter::default() });
        let has = |finalizer: &str| object.finalizers.iter().any(|f| f == finalizer);
        if object.deleting && has(ORPHAN) {
            for dependent in &dependents {
                self.disown(dependent, &object.uid).await?;
            }
            return self.remove_finalizer(object, ORPHAN).await;
        }
        if object.deleting && has(FOREGROUND) {
            let mut blocked = false;
            for dependent in &dependents {
                blocked |= dependent.owners.iter().any(|o| o.uid == object.uid && o.blocks_deletion);
                if !dependent.deleting {
                    let cascades =
                        !self.objects.list(&Filter { owner_uid: Some(&dependent.uid), ..Filter::default() }).is_empty();
                    let propagation = if cascades { "Foreground" } else { "Background" };
                    self.delete(dependent, propagation).await?;
                }
            }
            if !blocked {
                self.remove_finalizer(object, FOREGROUND).await?;
            }
            return Ok(());
        }
        if object.deleting && self.is_namespace(object) && !object.spec_finalizers.is_empty() {
            let members = self.objects.list(&Filter { namespace: Some(&object.name), ..Filter::default() });
            for member in members.iter().filter(|m| !m.deleting) {
                self.delete(member, "Background").await?;
            }
            if members.is_empty() {
                let patch =
                    json!({"metadata": {"resourceVersion": object.revision.to_string()}, "spec": {"finalizers": null}});
                self.patch(object, &patch).await?;
            }
            return Ok(());
        }
        if self.homeless(object) && !object.deleting {
            return self.delete(object, "Background").await;
        }
        if !object.deleting && !object.owners.is_empty() {
            let absent: Vec<&str> = object
                .owners
                .iter()
                .map(|o| o.uid.as_str())
                .filter(|uid| self.objects.get_by_uid(uid).is_none())
                .collect();
            if absent.len() == object.owners.len() {
                return self.delete(object, "Background").await;
            }
            for uid in absent {
                self.disown(object, uid).await?;
            }
        }
        Ok(())
    }

    /// Deletes `object` if it is still the one with its uid.
    async fn delete(&self, object: &Cached, propagation: &str) -> Result<(), Refused> {
        let registry = self.registry.current();
        let Some((t, namespace, name)) = registry.locate(&object.key) else { return Ok(()) };
        let options = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation,
            "preconditions": {"uid": object.uid}});
        match self.client.delete(t, namespace, name, &options).await {
            Ok(_) => {
                tracing::debug!(key = object.key, "garbage collected");
                Ok(())
            }
            Err(refused) if matches!(refused.code, 404 | 409) => Ok(()),
            Err(refused) => Err(refused),
        }
    }

    /// Merge-patches `object` (the patch names the revision it was read
    /// at, so a change meanwhile is a conflict, retried).
    async fn patch(&self, object: &Cached, patch: &Value) -> Result<(), Refused> {
        let registry = self.registry.current();
        let Some((t, namespace, name)) = registry.locate(&object.key) else { return Ok(()) };
        match self.client.patch(t, namespace, name, None, (PatchType::Merge, patch.to_string().into_bytes())).await {
            Ok(_) | Err(Refused { code: 404, .. }) => Ok(()),
            Err(refused) => Err(refused),
        }
    }

    /// Removes owner `owner_uid` from `object`'s owner references.
    async fn disown(&self, object: &Cached, owner_uid: &str) -> Result<(), Refused> {
        let kept: Vec<Value> = object
            .owners
            .iter()
            .filter(|o| o.uid != owner_uid)
            .map(|o| {
                let mut owner = json!({"apiVersion": o.api_version, "kind": o.kind, "name": o.name, "uid": o.uid});
                if o.controller {
                    owner["controller"] = json!(true);
                }
                if o.blocks_deletion {
                    owner["blockOwnerDeletion"] = json!(true);
                }
                owner
            })
            .collect();
        let owners = if kept.is_empty() { Value::Null } else { json!(kept) };
        let patch = json!({"metadata": {"resourceVersion": object.revision.to_string(), "ownerReferences": owners}});
        self.patch(object, &patch).await
    }

    /// Removes `finalizer` from `object`; it goes if that was the last.
    async fn remove_finalizer(&self, object: &Cached, finalizer: &str) -> Result<(), Refused> {
        let kept: Vec<&String> = object.finalizers.iter().filter(|f| *f != finalizer).collect();
        let finalizers = if kept.is_empty() { Value::Null } else { json!(kept) };
        let patch = json!({"metadata": {"resourceVersion": object.revision.to_string(), "finalizers": finalizers}});
        self.patch(object, &patch).await
    }
}

impl Reconciler for Collector {
    type Key = String;

    fn watch(self: &Arc<Self>, queue: &Arc<WorkQueue<String>>) -> Vec<Subscription> {
        let (collector, queue) = (Arc::downgrade(self), queue.clone());
        vec![self.objects.subscribe(move |change| {
            let Some(collector) = collector.upgrade() else { return };
            for key in collector.affected(change) {
                queue.add(key);
            }
        })]
    }

    fn resync(&self) -> Vec<String> {
        self.objects
            .list(&Filter::default())
            .iter()
            .filter(|o| o.deleting || !o.owners.is_empty() || self.homeless(o))
            .map(|o| o.key.clone())
            .collect()
    }

    async fn reconcile(&self, key: &String) -> Action {
        let Some(object) = self.objects.get_by_key(key) else { return Action::Done };
        match self.collect(&object).await {
            Ok(()) => Action::Done,
            Err(refused) => Action::Retry(refused.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engenho_control::informer::Owner;

    fn cached(key: &str, namespace: &str, uid: &str, owners: &[&str], deleting: bool) -> Arc<Cached> {
        Arc::new(Cached {
            key: key.into(),
            namespace: namespace.into(),
            name: key.rsplit('/').next().unwrap_or_default().into(),
            uid: uid.into(),
            revision: 1,
            version: 1,
            labels: Default::default(),
            owners: owners
                .iter()
                .map(|o| Owner {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "rs".into(),
                    uid: (*o).into(),
                    controller: true,
                    blocks_deletion: true,
                })
                .collect(),
            finalizers: Vec::new(),
            deleting,
            node_name: String::new(),
            spec_finalizers: Vec::new(),
            selector: None,
            json: Arc::from(""),
        })
    }

    #[test]
    fn changes_concern_waiting_objects_and_the_dependents_of_what_went() {
        let store = tempfile::tempdir().expect("temporary directory");
        let storage = engenho_store::open_database(&store.path().join("db")).expect("open");
        let informer = Informer::new(
            "all",
            engenho_store::Mvcc::open(&storage).expect("store"),
            OBJECTS_PREFIX.into(),
            Arc::new(|_| Err("unused".into())),
            false,
        );
        let client = ApiClient::new(axum::Router::new(), super::super::controllers::identity(NAME), NAME);
        let collector = Collector::new(informer, SharedRegistry::default(), client);
        let pod = cached("/registry/core/pods/team/p", "team", "p", &["r"], false);
        let replicaset = cached("/registry/apps/replicasets/team/r", "team", "r", &[], false);
        let owned = collector.affected(&Change { old: None, new: Some(pod.clone()) });
        assert!(owned.contains(&pod.key), "an owned object is looked at");
        let free = collector.affected(&Change { old: None, new: Some(replicaset.clone()) });
        assert_eq!(free, std::slice::from_ref(&replicaset.key), "its namespace is not known, so it is homeless");
        let gone = collector.affected(&Change { old: Some(replicaset.clone()), new: None });
        assert!(gone.contains(&namespace_key("team")), "a namespace waiting for its contents hears of it");
    }
}
