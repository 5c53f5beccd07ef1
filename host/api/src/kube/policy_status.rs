//! The loop that keeps the status of ResourceQuotas and
//! PodDisruptionBudgets current, as Kubernetes' quota and disruption
//! controllers do: a quota is recounted when it is new or its limits
//! changed, and when objects in its namespace are deleted or pods finish;
//! a budget when pods or the controllers that scale them (Deployments,
//! ReplicaSets, ReplicationControllers, StatefulSets) change in its
//! namespace, or its spec does. Every API
//! server watches the store; only the raft leader writes. A full recount
//! every [`RESYNC_INTERVAL`] mends what a charge left behind when its
//! create then failed.

use std::collections::BTreeSet;
use std::time::Duration;

use engenho_store::{EventKind, KeyRange, RangeRequest, Watcher};
use serde_json::Value;

use super::objects::ObjectStore;
use super::resources::SharedRegistry;
use super::status::ApiError;

/// How often every quota and budget is recounted.
const RESYNC_INTERVAL: Duration = Duration::from_secs(30);

/// Namespaces waiting for a recount, at most; past it the next resync
/// recounts every namespace.
const DIRTY_NAMESPACES_MAX: usize = 10_000;

/// The prefix of every object's key.
const OBJECTS_PREFIX: &str = "/registry/";

/// Namespaces whose quotas or budgets need a recount.
#[derive(Debug, Default)]
struct Dirty {
    quotas: BTreeSet<String>,
    budgets: BTreeSet<String>,
}

impl Dirty {
    fn mark(set: &mut BTreeSet<String>, namespace: &str) {
        if set.len() < DIRTY_NAMESPACES_MAX {
            set.insert(namespace.to_owned());
        }
    }
}

/// The status loop of one API server.
pub struct PolicyStatus {
    objects: ObjectStore,
    registry: SharedRegistry,
    dirty: Dirty,
}

impl PolicyStatus {
    /// A loop over `objects` of the kinds in `registry`.
    pub fn new(objects: ObjectStore, registry: SharedRegistry) -> Self {
        Self { objects, registry, dirty: Dirty::default() }
    }

    /// Keeps status current until `stop` turns true.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let mut watcher = match self.load() {
                Ok(watcher) => watcher,
                Err(error) => {
                    tracing::warn!(%error, "the quota and budget loop could not read the store");
                    tokio::select! {
                        () = tokio::time::sleep(RESYNC_INTERVAL) => continue,
                        _ = stop.wait_for(|stopped| *stopped) => return,
                    }
                }
            };
            let mut resync = tokio::time::interval(RESYNC_INTERVAL);
            resync.tick().await;
            loop {
                tokio::select! {
                    batches = watcher.next() => match batches {
                        Ok(batches) => {
                            for event in batches.iter().flat_map(|b| &b.events) {
                                let key = String::from_utf8_lossy(&event.kv.key);
                                let value = (event.kind == EventKind::Put).then_some(event.kv.value.as_slice());
                                self.record(&key, value);
                            }
                        }
                        Err(error) => {
                            tracing::info!(%error, "the quota and budget loop reloads the store");
                            break;
                        }
                    },
                    _ = resync.tick() => {
                        if let Err(error) = self.mark_all() {
                            tracing::debug!(%error, "the quota and budget resync will retry");
                        }
                    }
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
                if !self.objects.is_leader() {
                    self.dirty = Dirty::default();
                    continue;
                }
                self.recount().await;
            }
        }
    }

    /// Marks every namespace with quotas or budgets; a watcher from now.
    fn load(&mut self) -> Result<Watcher, ApiError> {
        let store = self.objects.store();
        let probe = RangeRequest { range: KeyRange::single(OBJECTS_PREFIX.to_owned()), ..RangeRequest::default() };
        let (revision, _) = store.range(&probe)?;
        self.mark_all()?;
        Ok(Watcher::new(store, KeyRange::prefix(OBJECTS_PREFIX.to_owned()), revision + 1))
    }

    /// Marks every namespace that has a quota or a budget.
    fn mark_all(&mut self) -> Result<(), ApiError> {
        let registry = self.registry.current();
        for (group, plural) in [("", "resourcequotas"), ("policy", "poddisruptionbudgets")] {
            let t = registry.find_plural(group, plural).expect("built in");
            for object in self.objects.list_at(t, None, 0)?.items {
                let Some(namespace) = object.pointer("/metadata/namespace").and_then(Value::as_str) else { continue };
                let set = if plural == "resourcequotas" { &mut self.dirty.quotas } else { &mut self.dirty.budgets };
                Dirty::mark(set, namespace);
            }
        }
        Ok(())
    }

    /// Notes what a change of `key` (to `value`, or deleted) may make stale.
    fn record(&mut self, key: &str, value: Option<&[u8]>) {
        let registry = self.registry.current();
        let Some((t, Some(namespace), _)) = registry.locate(key) else { return };
        let parsed = || value.and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok()).unwrap_or(Value::Null);
        match ((t.group, t.plural), value) {
            (_, None) => {
                Dirty::mark(&mut self.dirty.quotas, namespace);
                let scaled = matches!(
                    (t.group, t.plural),
                    ("", "pods" | "replicationcontrollers") | ("apps", "deployments" | "replicasets" | "statefulsets")
                );
                if scaled {
                    Dirty::mark(&mut self.dirty.budgets, namespace);
                }
            }
            (("", "resourcequotas"), Some(_)) if super::resource_quota::needs_recount(&parsed()) => {
                Dirty::mark(&mut self.dirty.quotas, namespace);
            }
            (("", "pods"), Some(_)) => {
                Dirty::mark(&mut self.dirty.budgets, namespace);
                let phase = parsed().pointer("/status/phase").and_then(Value::as_str).map(str::to_owned);
                if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
                    Dirty::mark(&mut self.dirty.quotas, namespace);
                }
            }
            (("apps", "deployments" | "replicasets" | "statefulsets") | ("", "replicationcontrollers"), Some(_)) => {
                Dirty::mark(&mut self.dirty.budgets, namespace);
            }
            // A Service may have changed type and given back node ports
            // or its load balancer; only a recount lowers the usage.
            (("", "services"), Some(_)) => Dirty::mark(&mut self.dirty.quotas, namespace),
            (("policy", "poddisruptionbudgets"), Some(_)) => {
                let budget = parsed();
                let generation = budget.pointer("/metadata/generation").and_then(Value::as_i64);
                let observed = budget.pointer("/status/observedGeneration").and_then(Value::as_i64);
                if observed != generation {
                    Dirty::mark(&mut self.dirty.budgets, namespace);
                }
            }
            _ => {}
        }
    }

    /// Recounts the marked namespaces.
    async fn recount(&mut self) {
        let registry = self.registry.current();
        for namespace in std::mem::take(&mut self.dirty.quotas) {
            if let Err(error) = super::resource_quota::recount(&self.objects, &registry, &namespace).await {
                tracing::debug!(namespace, %error, "a quota recount will retry");
            }
        }
        for namespace in std::mem::take(&mut self.dirty.budgets) {
            if let Err(error) = super::disruption::recount(&self.objects, &registry, &namespace).await {
                tracing::debug!(namespace, %error, "a budget recount will retry");
            }
        }
    }
}
