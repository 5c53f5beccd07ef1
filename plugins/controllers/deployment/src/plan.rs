//! What a Deployment's reconcile does, decided from what it read (the
//! Deployment, the namespace's ReplicaSets, the pods its selector picks,
//! the time): the writes, the events, when to look again. It follows
//! Kubernetes' `syncDeployment` step by step on copies of the objects, and
//! then turns the changed copies into writes.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use engenho_controller::kinds::{DEPLOYMENTS, REPLICA_SETS};
use engenho_controller::meta::{OwnerReference, format_time};
use engenho_controller::{EventType, Propagation, Write};
use serde_json::{Value, json};

use crate::hash::{POD_TEMPLATE_HASH, equal_ignore_hash, template_hash};
use crate::model::{Deployment, Pod, ReplicaSet};
use crate::revision::{self, REVISION};
use crate::rollout::{self, by_creation, max_surge};
use crate::status::{self, FOUND_NEW_REPLICA_SET, NEW_REPLICA_SET_CREATED, PROGRESSING};

/// How often a Recreate rollout looks again while old pods still run.
pub const OLD_PODS_POLL: Duration = Duration::from_secs(2);

/// An event about the Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Normal or warning.
    pub event_type: EventType,
    /// The reason, e.g. `ScalingReplicaSet`.
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

/// A write, and the event to record once it succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The write.
    pub write: Write,
    /// The event it earns.
    pub event_opt: Option<Event>,
}

/// What one reconcile of a Deployment does, in order.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Adoptions and releases of ReplicaSets; when there are any, nothing
    /// else is done until the next reconcile sees them.
    pub ownership: Vec<Write>,
    /// The new ReplicaSet to create first.
    pub create_opt: Option<Step>,
    /// Resizes and deletions of existing ReplicaSets.
    pub changes: Vec<Step>,
    /// The Deployment's revision annotation, then its status.
    pub deployment: Vec<Step>,
    /// Events to record whatever the writes answer.
    pub events: Vec<Event>,
    /// When to reconcile again.
    pub requeue_opt: Option<Duration>,
    /// Why the reconcile fails once the writes are made (a name collision).
    pub failure_opt: Option<String>,
}

/// Plans the reconcile of `deployment` given the namespace's ReplicaSets
/// `sets` and the pods its selector picks, at `now`.
pub fn plan(deployment: &Deployment, sets: &[ReplicaSet], pods: &[Pod], now: DateTime<Utc>) -> Plan {
    let mut work = Work::new(deployment, sets, now);
    if deployment.spec.selector.is_empty() {
        work.events.push(Event {
            event_type: EventType::Warning,
            reason: "SelectingAll",
            message: "This deployment is selecting all pods. A non-empty selector is required.".into(),
        });
        let generation = deployment.metadata.generation.unwrap_or(0);
        work.deployment.status.observed_generation = work.deployment.status.observed_generation.max(generation);
        return work.finish();
    }
    let ownership = claims(deployment, sets);
    if !ownership.is_empty() {
        return Plan { ownership, ..Plan::default() };
    }
    if deployment.metadata.is_deleting() {
        let new_opt = work.new_set(false);
        work.sync_status(new_opt);
        return work.finish();
    }
    if let Some(paused) = status::paused_condition(&work.deployment, now) {
        status::set_condition(&mut work.deployment.status.conditions, paused);
    }
    if deployment.spec.paused || work.is_scaling_event() {
        work.sync();
    } else if deployment.spec.strategy.is_rolling() {
        work.rolling();
    } else {
        work.recreate(pods);
    }
    work.finish()
}

/// The adoptions of orphan ReplicaSets `deployment` selects and releases of
/// those it controls but no longer selects, as Kubernetes' `ClaimReplicaSets`.
fn claims(deployment: &Deployment, sets: &[ReplicaSet]) -> Vec<Write> {
    let uid = &deployment.metadata.uid;
    let mut writes = Vec::new();
    for set in sets {
        let selected = deployment.spec.selector.matches(&set.metadata.labels);
        let owners = &set.metadata.owner_references;
        let owners_opt = match set.metadata.controller() {
            Some(owner) if owner.uid == *uid && !selected && !set.metadata.is_deleting() => {
                let kept: Vec<&OwnerReference> = owners.iter().filter(|o| o.uid != *uid).collect();
                Some(if kept.is_empty() { Value::Null } else { json!(kept) })
            }
            None if selected && !set.metadata.is_deleting() && !deployment.metadata.is_deleting() => {
                let mut all = owners.clone();
                all.push(OwnerReference::controlled_by(&DEPLOYMENTS, "Deployment", &deployment.metadata));
                Some(json!(all))
            }
            _ => None,
        };
        if let Some(owners) = owners_opt {
            writes.push(Write::Patch {
                kind: REPLICA_SETS,
                namespace: set.metadata.namespace.clone(),
                name: set.metadata.name.clone(),
                subresource: String::new(),
                patch: json!({"metadata": {"ownerReferences": owners, "resourceVersion": set.metadata.resource_version}}),
            });
        }
    }
    writes
}

/// One resize of a ReplicaSet.
struct Resize {
    /// Which of the work's ReplicaSets.
    set: usize,
    /// `up` or `down`.
    direction: &'static str,
    /// Its size before.
    from: i64,
    /// Its size after.
    to: i64,
}

/// The Deployment and its ReplicaSets as a reconcile changes them.
struct Work<'a> {
    /// The Deployment as read.
    read: &'a Deployment,
    /// The Deployment as changed.
    deployment: Deployment,
    /// Its ReplicaSets (those it controls), as changed; a created one last.
    sets: Vec<ReplicaSet>,
    /// The other ReplicaSets of the namespace (for name collisions).
    others: Vec<&'a ReplicaSet>,
    /// Which of `sets` changed.
    changed: BTreeSet<usize>,
    /// Which of `sets` is to be created.
    created_opt: Option<usize>,
    /// Which of `sets` are to be deleted.
    deleted: BTreeSet<usize>,
    /// The resizes made, in order.
    resizes: Vec<Resize>,
    /// Events not tied to a write.
    events: Vec<Event>,
    requeue_opt: Option<Duration>,
    failure_opt: Option<String>,
    now: DateTime<Utc>,
}

impl<'a> Work<'a> {
    fn new(deployment: &'a Deployment, all: &'a [ReplicaSet], now: DateTime<Utc>) -> Self {
        let uid = &deployment.metadata.uid;
        let (mine, others): (Vec<&ReplicaSet>, Vec<&ReplicaSet>) =
            all.iter().partition(|set| set.metadata.is_controlled_by(uid) && !uid.is_empty());
        let mut sets: Vec<ReplicaSet> = mine.into_iter().cloned().collect();
        sets.sort_by(by_creation);
        Self {
            read: deployment,
            deployment: deployment.clone(),
            sets,
            others,
            changed: BTreeSet::new(),
            created_opt: None,
            deleted: BTreeSet::new(),
            resizes: Vec::new(),
            events: Vec::new(),
            requeue_opt: None,
            failure_opt: None,
            now,
        }
    }

    /// The new ReplicaSet (the oldest whose template is the Deployment's),
    /// its annotations and the Deployment's revision brought up to date;
    /// created when `create` and there is none (Kubernetes'
    /// `getAllReplicaSetsAndSyncRevision`). `None` also after a name
    /// collision, which bumps `collisionCount` and fails the reconcile.
    fn new_set(&mut self, create: bool) -> Option<usize> {
        let template = &self.deployment.spec.template;
        let found_opt = self.sets.iter().position(|set| equal_ignore_hash(&set.spec.template, template));
        let max_old = self
            .sets
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != found_opt)
            .map(|(_, set)| set.revision())
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        if let Some(i) = found_opt {
            let annotations = &self.deployment.metadata.annotations;
            let set = &mut self.sets[i];
            let mut changed = revision::copy_annotations(annotations, &mut set.metadata.annotations);
            changed |= revision::set_revision(&mut set.metadata.annotations, new_revision);
            if set.spec.min_ready_seconds != self.deployment.spec.min_ready_seconds {
                set.spec.min_ready_seconds = self.deployment.spec.min_ready_seconds;
                changed = true;
            }
            if changed {
                self.changed.insert(i);
            }
            let set_revision = set.metadata.annotations.get(REVISION).cloned().unwrap_or_default();
            self.deployment.metadata.annotations.insert(REVISION.into(), set_revision);
            let name = set.metadata.name.clone();
            if self.deployment.spec.progress_deadline().is_some()
                && status::find(&self.deployment.status, PROGRESSING).is_none()
            {
                let found = status::condition(
                    PROGRESSING,
                    "True",
                    FOUND_NEW_REPLICA_SET,
                    format!("Found new replica set \"{name}\""),
                    self.now,
                );
                status::set_condition(&mut self.deployment.status.conditions, found);
            }
            return Some(i);
        }
        if !create {
            return None;
        }
        let set = self.template_set(new_revision);
        let name = set.metadata.name.clone();
        if self.sets.iter().chain(self.others.iter().copied()).any(|other| other.metadata.name == name) {
            let count = self.deployment.status.collision_count.unwrap_or(0) + 1;
            self.deployment.status.collision_count = Some(count);
            self.failure_opt =
                Some(format!("replica set \"{name}\" exists with another template: collision count now {count}"));
            return None;
        }
        let replicas = set.replicas();
        self.sets.push(set);
        let i = self.sets.len() - 1;
        self.created_opt = Some(i);
        self.resizes.push(Resize { set: i, direction: "up", from: 0, to: replicas });
        self.deployment.metadata.annotations.insert(REVISION.into(), new_revision.to_string());
        if self.deployment.spec.progress_deadline().is_some() {
            let created = status::condition(
                PROGRESSING,
                "True",
                NEW_REPLICA_SET_CREATED,
                format!("Created new replica set \"{name}\""),
                self.now,
            );
            status::set_condition(&mut self.deployment.status.conditions, created);
        }
        Some(i)
    }

    /// A ReplicaSet for the Deployment's template at `revision`, sized as
    /// far as the rollout allows.
    fn template_set(&self, revision: i64) -> ReplicaSet {
        let d = &self.deployment;
        let hash = template_hash(&d.spec.template, d.status.collision_count);
        let mut template = d.spec.template.clone();
        if !template["metadata"].is_object() {
            template["metadata"] = json!({});
        }
        if !template["metadata"]["labels"].is_object() {
            template["metadata"]["labels"] = json!({});
        }
        template["metadata"]["labels"][POD_TEMPLATE_HASH] = json!(hash);
        let mut labels: std::collections::BTreeMap<String, String> = template["metadata"]["labels"]
            .as_object()
            .map(|map| map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
            .unwrap_or_default();
        labels.insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = d.spec.selector.clone();
        selector.match_labels.insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut set = ReplicaSet::default();
        set.metadata.name = format!("{}-{hash}", d.metadata.name);
        set.metadata.namespace = d.metadata.namespace.clone();
        set.metadata.labels = labels;
        set.metadata.creation_timestamp = Some(format_time(self.now));
        set.metadata.owner_references = vec![OwnerReference::controlled_by(&DEPLOYMENTS, "Deployment", &d.metadata)];
        set.spec.replicas = Some(0);
        set.spec.min_ready_seconds = d.spec.min_ready_seconds;
        set.spec.selector = selector;
        set.spec.template = template;
        let others: Vec<&ReplicaSet> = self.sets.iter().chain(std::iter::once(&set)).collect();
        let replicas = rollout::new_replicas(d, &others, &set);
        set.spec.replicas = Some(replicas);
        revision::copy_annotations(&d.metadata.annotations, &mut set.metadata.annotations);
        revision::set_revision(&mut set.metadata.annotations, revision);
        revision::set_replicas(&mut set.metadata.annotations, d.spec.desired(), d.spec.desired() + max_surge(d));
        set
    }

    /// The indexes of the old ReplicaSets (all but `new_opt`).
    fn old(&self, new_opt: Option<usize>) -> Vec<usize> {
        (0..self.sets.len()).filter(|i| Some(*i) != new_opt).collect()
    }

    /// Whether the Deployment's count changed since its active ReplicaSets
    /// were sized (their `desired-replicas` annotation differs).
    fn is_scaling_event(&mut self) -> bool {
        self.new_set(false);
        let desired = self.deployment.spec.desired().to_string();
        self.sets.iter().any(|set| {
            set.replicas() > 0
                && set.metadata.annotations.get(revision::DESIRED_REPLICAS).is_some_and(|d| *d != desired)
        })
    }

    /// Resizes ReplicaSet `i` to `size` (and records the counts it is
    /// sized for); whether its size changed (Kubernetes'
    /// `scaleReplicaSetAndRecordEvent`).
    fn scale(&mut self, i: usize, size: i64) -> bool {
        let from = self.sets[i].replicas();
        if from == size {
            return false;
        }
        self.resize(i, size, if from < size { "up" } else { "down" });
        true
    }

    /// Sets ReplicaSet `i`'s size and count annotations (Kubernetes'
    /// `scaleReplicaSet`).
    fn resize(&mut self, i: usize, size: i64, direction: &'static str) {
        let desired = self.deployment.spec.desired();
        let most = desired + max_surge(&self.deployment);
        let set = &mut self.sets[i];
        let from = set.replicas();
        let annotated = revision::set_replicas(&mut set.metadata.annotations, desired, most);
        if from != size || annotated {
            set.spec.replicas = Some(size);
            self.changed.insert(i);
        }
        if from != size {
            self.resizes.push(Resize { set: i, direction, from, to: size });
        }
    }

    /// Scaling and status only, no rollout progress: paused, or the count
    /// changed (Kubernetes' `sync`).
    fn sync(&mut self) {
        let new_opt = self.new_set(false);
        self.scale_all(new_opt);
        if self.deployment.spec.paused {
            self.cleanup(new_opt);
        }
        self.sync_status(new_opt);
    }

    /// Brings the ReplicaSets to the Deployment's count (Kubernetes'
    /// `scale`): the only active one (or the newest) takes it all; a
    /// saturated new one leaves the old ones none; otherwise a rolling
    /// Deployment spreads the change proportionally.
    fn scale_all(&mut self, new_opt: Option<usize>) {
        let desired = self.deployment.spec.desired();
        let active: Vec<usize> = (0..self.sets.len()).filter(|i| self.sets[*i].replicas() > 0).collect();
        if active.len() <= 1 {
            let target_opt = active.first().copied().or(new_opt).or_else(|| {
                let old = self.old(new_opt);
                old.into_iter().max_by(|a, b| by_creation(&self.sets[*a], &self.sets[*b]))
            });
            if let Some(target) = target_opt {
                self.scale(target, desired);
            }
            return;
        }
        if let Some(new) = new_opt {
            let set = &self.sets[new];
            let saturated = set.metadata.annotations.get(revision::DESIRED_REPLICAS) == Some(&desired.to_string())
                && set.replicas() == desired
                && set.status.available_replicas == desired;
            if saturated {
                for i in self.old(new_opt) {
                    if self.sets[i].replicas() > 0 {
                        self.scale(i, 0);
                    }
                }
                return;
            }
        }
        if !self.deployment.spec.strategy.is_rolling() {
            return;
        }
        let sizes = {
            let sets: Vec<&ReplicaSet> = active.iter().map(|i| &self.sets[*i]).collect();
            rollout::proportional(&self.deployment, &sets)
        };
        let before: i64 = active.iter().map(|i| self.sets[*i].replicas()).sum();
        let after: i64 = sizes.iter().sum();
        let direction = if after >= before { "up" } else { "down" };
        for (i, size) in active.into_iter().zip(sizes) {
            self.resize(i, size, direction);
        }
    }

    /// A rolling update (Kubernetes' `rolloutRolling`).
    fn rolling(&mut self) {
        let Some(new) = self.new_set(true) else {
            return;
        };
        let desired = self.deployment.spec.desired();
        let new_size = if self.sets[new].replicas() > desired {
            desired
        } else {
            let all: Vec<&ReplicaSet> = self.sets.iter().collect();
            rollout::new_replicas(&self.deployment, &all, &self.sets[new])
        };
        if self.scale(new, new_size) {
            return self.rollout_status(Some(new));
        }
        let active_old: Vec<usize> = self.old(Some(new)).into_iter().filter(|i| self.sets[*i].replicas() > 0).collect();
        let sizes = {
            let old: Vec<&ReplicaSet> = active_old.iter().map(|i| &self.sets[*i]).collect();
            rollout::shrink_old(&self.deployment, &old, &self.sets[new])
        };
        let mut scaled_down = false;
        for (i, size) in active_old.into_iter().zip(sizes) {
            scaled_down |= self.scale(i, size);
        }
        if !scaled_down && status::is_complete(&self.deployment, &self.deployment.status) {
            self.cleanup(Some(new));
        }
        self.rollout_status(Some(new));
    }

    /// A Recreate rollout (Kubernetes' `rolloutRecreate`): old ReplicaSets
    /// to zero, then, once no old pod runs, the new one to the count.
    fn recreate(&mut self, pods: &[Pod]) {
        let mut new_opt = self.new_set(false);
        let mut scaled_down = false;
        for i in self.old(new_opt) {
            if self.sets[i].replicas() > 0 {
                scaled_down |= self.scale(i, 0);
            }
        }
        if scaled_down {
            return self.rollout_status(new_opt);
        }
        if self.old_pods_running(new_opt, pods) {
            self.requeue_opt = Some(OLD_PODS_POLL);
            return self.rollout_status(new_opt);
        }
        if new_opt.is_none() {
            new_opt = self.new_set(true);
        }
        let Some(new) = new_opt else {
            return;
        };
        self.scale(new, self.deployment.spec.desired());
        if status::is_complete(&self.deployment, &self.deployment.status) {
            self.cleanup(new_opt);
        }
        self.rollout_status(new_opt);
    }

    /// Whether pods of old ReplicaSets still run or may (Kubernetes'
    /// `oldPodsRunning`).
    fn old_pods_running(&self, new_opt: Option<usize>, pods: &[Pod]) -> bool {
        let old = self.old(new_opt);
        if old.iter().any(|i| self.sets[*i].status.replicas > 0) {
            return true;
        }
        let old_uids: BTreeSet<&str> = old.iter().map(|i| self.sets[*i].metadata.uid.as_str()).collect();
        pods.iter().any(|pod| {
            pod.metadata.controller().is_some_and(|owner| old_uids.contains(owner.uid.as_str()))
                && pod.status.phase != "Failed"
                && pod.status.phase != "Succeeded"
        })
    }

    /// Deletes the oldest revisions beyond `revisionHistoryLimit`, only
    /// those with no pods, wanted or running (Kubernetes'
    /// `cleanupDeployment`).
    fn cleanup(&mut self, new_opt: Option<usize>) {
        let Some(limit) = self.deployment.spec.revision_history_limit else {
            return;
        };
        let mut cleanable: Vec<usize> =
            self.old(new_opt).into_iter().filter(|i| !self.sets[*i].metadata.is_deleting()).collect();
        let excess = i64::try_from(cleanable.len()).unwrap_or(i64::MAX) - limit.max(0);
        if excess <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| {
            let (a, b) = (&self.sets[*a], &self.sets[*b]);
            a.revision().cmp(&b.revision()).then_with(|| by_creation(a, b))
        });
        for i in cleanable.into_iter().take(usize::try_from(excess).unwrap_or(0)) {
            let set = &self.sets[i];
            let idle = set.status.replicas == 0
                && set.replicas() == 0
                && set.metadata.generation.unwrap_or(0) <= set.status.observed_generation;
            if idle && Some(i) != self.created_opt {
                self.deleted.insert(i);
            }
        }
    }

    /// The status from the ReplicaSets as they are now, no progress
    /// estimated (Kubernetes' `syncDeploymentStatus`).
    fn sync_status(&mut self, new_opt: Option<usize>) {
        let all: Vec<&ReplicaSet> = self.sets.iter().collect();
        let new = new_opt.map(|i| &self.sets[i]);
        self.deployment.status = status::calculate(&self.deployment, &all, new, self.now);
    }

    /// The status of a rollout, and when to check its deadline (Kubernetes'
    /// `syncRolloutStatus` and `requeueStuckDeployment`).
    fn rollout_status(&mut self, new_opt: Option<usize>) {
        let all: Vec<&ReplicaSet> = self.sets.iter().collect();
        let new = new_opt.map(|i| &self.sets[i]);
        let status = status::rollout(&self.deployment, &all, new, self.now);
        if let Some(deadline) = status::deadline_requeue(&self.deployment, &status, self.now) {
            self.requeue_opt = Some(self.requeue_opt.map_or(deadline, |other| other.min(deadline)));
        }
        self.deployment.status = status;
    }

    /// The writes and events of the changes made.
    fn finish(self) -> Plan {
        let mut plan = Plan {
            events: self.events,
            requeue_opt: self.requeue_opt,
            failure_opt: self.failure_opt,
            ..Plan::default()
        };
        let event_of = |i: usize| -> Option<Event> {
            // Several resizes in one reconcile read as one, from the first
            // size to the last.
            let mut resizes = self.resizes.iter().filter(|resize| resize.set == i);
            let first = resizes.next()?;
            let last = resizes.last().unwrap_or(first);
            (first.from != last.to)
                .then(|| scaling_event(last.direction, &self.sets[i].metadata.name, first.from, last.to))
        };
        let namespace = &self.deployment.metadata.namespace;
        for (i, set) in self.sets.iter().enumerate() {
            if Some(i) == self.created_opt {
                plan.create_opt = Some(Step {
                    write: Write::Create { kind: REPLICA_SETS, namespace: namespace.clone(), object: set_object(set) },
                    event_opt: event_of(i),
                });
            } else if self.deleted.contains(&i) {
                plan.changes.push(Step {
                    write: Write::Delete {
                        kind: REPLICA_SETS,
                        namespace: namespace.clone(),
                        name: set.metadata.name.clone(),
                        uid: set.metadata.uid.clone(),
                        propagation: Propagation::Background,
                    },
                    event_opt: None,
                });
            } else if self.changed.contains(&i) {
                plan.changes.push(Step {
                    write: Write::Patch {
                        kind: REPLICA_SETS,
                        namespace: namespace.clone(),
                        name: set.metadata.name.clone(),
                        subresource: String::new(),
                        patch: json!({
                            "metadata": {"annotations": set.metadata.annotations},
                            "spec": {"replicas": set.replicas(), "minReadySeconds": set.spec.min_ready_seconds},
                        }),
                    },
                    event_opt: event_of(i),
                });
            }
        }
        let name = &self.deployment.metadata.name;
        let revision_opt = self.deployment.metadata.annotations.get(REVISION);
        if revision_opt != self.read.metadata.annotations.get(REVISION) {
            plan.deployment.push(Step {
                write: Write::Patch {
                    kind: DEPLOYMENTS,
                    namespace: namespace.clone(),
                    name: name.clone(),
                    subresource: String::new(),
                    patch: json!({"metadata": {"annotations": {REVISION: revision_opt}}}),
                },
                event_opt: None,
            });
        }
        if self.deployment.status != self.read.status {
            plan.deployment.push(Step {
                write: Write::Patch {
                    kind: DEPLOYMENTS,
                    namespace: namespace.clone(),
                    name: name.clone(),
                    subresource: "status".into(),
                    patch: json!({"status": self.deployment.status}),
                },
                event_opt: None,
            });
        }
        plan
    }
}

/// The `ScalingReplicaSet` event of resizing `name` from `from` to `to`.
fn scaling_event(direction: &str, name: &str, from: i64, to: i64) -> Event {
    Event {
        event_type: EventType::Normal,
        reason: "ScalingReplicaSet",
        message: format!("Scaled {direction} replica set {name} from {from} to {to}"),
    }
}

/// The object to create for a new ReplicaSet.
fn set_object(set: &ReplicaSet) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": set.metadata.name,
            "namespace": set.metadata.namespace,
            "labels": set.metadata.labels,
            "annotations": set.metadata.annotations,
            "ownerReferences": set.metadata.owner_references,
        },
        "spec": {
            "replicas": set.replicas(),
            "minReadySeconds": set.spec.min_ready_seconds,
            "selector": set.spec.selector,
            "template": set.spec.template,
        },
    })
}

/// The status after the new ReplicaSet `name` could not be created
/// (`Progressing` false, `ReplicaSetCreateError`), and its event.
pub fn create_failed(deployment: &Deployment, name: &str, message: &str, now: DateTime<Utc>) -> (Option<Value>, Event) {
    let text = format!("Failed to create new replica set \"{name}\": {message}");
    let mut updated = deployment.status.clone();
    if deployment.spec.progress_deadline().is_some() {
        let failed = status::condition(PROGRESSING, "False", status::REPLICA_SET_CREATE_ERROR, text.clone(), now);
        status::set_condition(&mut updated.conditions, failed);
    }
    let patch_opt = (updated != deployment.status).then(|| json!({"status": updated}));
    (patch_opt, Event { event_type: EventType::Warning, reason: status::REPLICA_SET_CREATE_ERROR, message: text })
}
