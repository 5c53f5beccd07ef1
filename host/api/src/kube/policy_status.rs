//! The loop that keeps the status of ResourceQuotas and
//! PodDisruptionBudgets current, as Kubernetes' quota and disruption
//! controllers do: a quota is recounted when it is new or its limits
//! changed, and when objects in its namespace are deleted or pods finish;
//! a budget when pods or the controllers that scale them (Deployments,
//! ReplicaSets, ReplicationControllers, StatefulSets) change in its
//! namespace, or its spec does. A loop on the
//! controller runtime, on the raft leader, writing status through the API
//! as Kubernetes' `resourcequota-controller` and `disruption-controller`
//! service accounts. A full recount
//! every [`RESYNC_INTERVAL`] mends what a charge left behind when its
//! create then failed.

use std::sync::Arc;
use std::time::Duration;

use engenho_control::{Action, Change, Informer, Reconciler, Subscription, WorkQueue};
use serde_json::Value;

use super::client::ApiClient;
use super::objects::ObjectStore;
use super::resources::SharedRegistry;

/// How often every quota and budget is recounted.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(30);

/// What a recount concerns: the quotas or the budgets of one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recount {
    /// The ResourceQuotas of a namespace.
    Quotas(String),
    /// The PodDisruptionBudgets of a namespace.
    Budgets(String),
}

/// The identity a quota's recounted status is written under.
pub const QUOTA_WRITER: &str = "resourcequota-controller";

/// The identity a budget's recounted status is written under.
pub const BUDGET_WRITER: &str = "disruption-controller";

/// The status loop: a loop on the controller runtime, on the raft leader,
/// over the heads of every object (deletions, which free quota) and the
/// objects whose content decides a recount. Quotas' status is written as
/// [`QUOTA_WRITER`], budgets' as [`BUDGET_WRITER`].
pub struct PolicyStatus {
    objects: ObjectStore,
    registry: SharedRegistry,
    quota_client: ApiClient,
    budget_client: ApiClient,
    everything: Arc<Informer>,
    watched: Vec<Arc<Informer>>,
}

/// The kinds whose changes (not only deletions) may make a count stale.
const WATCHED: [(&str, &str); 8] = [
    ("", "resourcequotas"),
    ("policy", "poddisruptionbudgets"),
    ("", "pods"),
    ("", "services"),
    ("", "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
];

impl PolicyStatus {
    /// A loop over `objects` of the kinds in `registry`, following
    /// `everything` (the heads of every object) and the informers of
    /// `informers`, writing through `router`.
    pub fn new(
        objects: ObjectStore,
        registry: SharedRegistry,
        everything: Arc<Informer>,
        informers: &engenho_control::Informers,
        router: &axum::Router,
    ) -> Self {
        let client = |name| ApiClient::new(router.clone(), super::controllers::identity(name), name);
        let current = registry.current();
        let watched = WATCHED
            .iter()
            .filter_map(|(group, plural)| current.find_plural(group, plural))
            .map(|t| super::loops::informer_of(informers, t))
            .collect();
        Self {
            objects,
            registry,
            quota_client: client(QUOTA_WRITER),
            budget_client: client(BUDGET_WRITER),
            everything,
            watched,
        }
    }

    /// What a change of `object` (or its deletion) may make stale.
    fn record(&self, change: &Change, recounts: &mut Vec<Recount>) {
        let registry = self.registry.current();
        let Some(object) = change.new.as_ref().or(change.old.as_ref()) else { return };
        let Some((t, Some(namespace), _)) = registry.locate(&object.key) else { return };
        let namespace = namespace.to_owned();
        let scaled = matches!(
            (t.group, t.plural),
            ("", "pods" | "replicationcontrollers") | ("apps", "deployments" | "replicasets" | "statefulsets")
        );
        let Some(new) = &change.new else {
            if scaled {
                recounts.push(Recount::Budgets(namespace.clone()));
            }
            recounts.push(Recount::Quotas(namespace));
            return;
        };
        let parsed = || new.value().unwrap_or(Value::Null);
        match (t.group, t.plural) {
            ("", "resourcequotas") if super::resource_quota::needs_recount(&parsed()) => {
                recounts.push(Recount::Quotas(namespace));
            }
            ("", "pods") => {
                let phase = parsed().pointer("/status/phase").and_then(Value::as_str).map(str::to_owned);
                if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
                    recounts.push(Recount::Quotas(namespace.clone()));
                }
                recounts.push(Recount::Budgets(namespace));
            }
            _ if scaled => recounts.push(Recount::Budgets(namespace)),
            // A Service may have changed type and given back node ports
            // or its load balancer; only a recount lowers the usage.
            ("", "services") => recounts.push(Recount::Quotas(namespace)),
            ("policy", "poddisruptionbudgets") => {
                let budget = parsed();
                let generation = budget.pointer("/metadata/generation").and_then(Value::as_i64);
                let observed = budget.pointer("/status/observedGeneration").and_then(Value::as_i64);
                if observed != generation {
                    recounts.push(Recount::Budgets(namespace));
                }
            }
            _ => {}
        }
    }
}

impl Reconciler for PolicyStatus {
    type Key = Recount;

    fn watch(self: &Arc<Self>, queue: &Arc<WorkQueue<Recount>>) -> Vec<Subscription> {
        let subscribe = |informer: &Arc<Informer>, deletions_only: bool| {
            let (this, queue) = (Arc::downgrade(self), queue.clone());
            informer.subscribe(move |change: &Change| {
                let Some(this) = this.upgrade() else { return };
                if deletions_only != change.new.is_none() {
                    return;
                }
                let mut recounts = Vec::new();
                this.record(change, &mut recounts);
                for recount in recounts {
                    queue.add(recount);
                }
            })
        };
        let mut subscriptions = vec![subscribe(&self.everything, true)];
        subscriptions.extend(self.watched.iter().map(|informer| subscribe(informer, false)));
        subscriptions
    }

    fn resync(&self) -> Vec<Recount> {
        let registry = self.registry.current();
        let mut recounts = Vec::new();
        for (group, plural) in [("", "resourcequotas"), ("policy", "poddisruptionbudgets")] {
            let Some(t) = registry.find_plural(group, plural) else { continue };
            let Ok(listed) = self.objects.list_at(t, None, 0) else { continue };
            for object in listed.items {
                let Some(namespace) = object.pointer("/metadata/namespace").and_then(Value::as_str) else { continue };
                recounts.push(match plural {
                    "resourcequotas" => Recount::Quotas(namespace.to_owned()),
                    _ => Recount::Budgets(namespace.to_owned()),
                });
            }
        }
        recounts
    }

    async fn reconcile(&self, recount: &Recount) -> Action {
        let registry = self.registry.current();
        let counted = match recount {
            Recount::Quotas(namespace) => {
                super::resource_quota::recount(&self.objects, &registry, &self.quota_client, namespace).await
            }
            Recount::Budgets(namespace) => {
                super::disruption::recount(&self.objects, &registry, &self.budget_client, namespace).await
            }
        };
        counted.map_or_else(|error| Action::Retry(error.to_string()), |()| Action::Done)
    }
}
