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
use engenho_controller::pods::Pod;
use engenho_controller::replicasets::ReplicaSet;
use engenho_controller::{EventType, Propagation, Write};
use serde_json::{Value, json};

use crate::hash::{POD_TEMPLATE_HASH, equal_ignore_hash, template_hash};
use crate::model::Deployment;
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
    if !deployment.spec.template.is_object() {
        return Plan { failure_opt: Some("spec.template is not an object".into()), ..Plan::default() };
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
    /// When to reconcile again, if sooner than a change would.
    requeue_opt: Option<Duration>,
    /// Why the reconcile fails once its writes are made.
    failure_opt: Option<String>,
    /// The time of the reconcile.
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
            .map(|(_, set)| revision::of(set))
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
            pod.metadata.controller().is_some_and(|owner| old_uids.contains(owner.uid.as_str())) && !pod.is_terminal()
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
            revision::of(a).cmp(&revision::of(b)).then_with(|| by_creation(a, b))
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
            let last = resizes.next_back().unwrap_or(first);
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
                write: Write::status_patch(DEPLOYMENTS, &self.deployment.metadata, json!(self.deployment.status)),
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

/// The status write after the new ReplicaSet `name` could not be created
/// (`Progressing` false, `ReplicaSetCreateError`), if the status changes,
/// and its event.
pub fn create_failed(deployment: &Deployment, name: &str, message: &str, now: DateTime<Utc>) -> (Option<Write>, Event) {
    let text = format!("Failed to create new replica set \"{name}\": {message}");
    let mut updated = deployment.status.clone();
    if deployment.spec.progress_deadline().is_some() {
        let failed = status::condition(PROGRESSING, "False", status::REPLICA_SET_CREATE_ERROR, text.clone(), now);
        status::set_condition(&mut updated.conditions, failed);
    }
    let write_opt =
        (updated != deployment.status).then(|| Write::status_patch(DEPLOYMENTS, &deployment.metadata, json!(updated)));
    (write_opt, Event { event_type: EventType::Warning, reason: status::REPLICA_SET_CREATE_ERROR, message: text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::tests::deployment;
    use crate::status::{DEPLOYMENT_PAUSED, NEW_REPLICA_SET_AVAILABLE, find};
    use engenho_controller::meta::parse_time;
    use proptest::prelude::*;

    /// A Deployment and its ReplicaSets, changed by the writes of plans as
    /// the API server would store them; pods appear (unavailable) as soon as
    /// a ReplicaSet asks for them, and go as soon as it asks for fewer,
    /// available ones first (the worst case for availability).
    struct World {
        deployment: Deployment,
        sets: Vec<ReplicaSet>,
        pods: Vec<Pod>,
        seconds: i64,
    }

    impl World {
        fn new(deployment: Deployment) -> Self {
            Self { deployment, sets: Vec::new(), pods: Vec::new(), seconds: 0 }
        }

        fn now(&self) -> DateTime<Utc> {
            parse_time("2026-01-01T00:00:00Z").expect("time") + chrono::Duration::seconds(self.seconds)
        }

        /// Plans a reconcile at the next second and stores its writes.
        fn reconcile(&mut self) -> Plan {
            self.seconds += 1;
            let plan = plan(&self.deployment, &self.sets, &self.pods, self.now());
            let steps = plan.create_opt.iter().chain(&plan.changes).chain(&plan.deployment);
            for step in steps.cloned().collect::<Vec<_>>() {
                self.store(step.write);
            }
            plan
        }

        fn store(&mut self, write: Write) {
            match write {
                Write::Create { object, .. } => {
                    let mut set: ReplicaSet = serde_json::from_value(object).expect("a replica set");
                    set.metadata.uid = format!("uid-{}", set.metadata.name);
                    set.metadata.creation_timestamp = Some(format_time(self.now()));
                    set.metadata.generation = Some(1);
                    self.sets.push(set);
                }
                Write::Patch { kind, name, subresource, patch, .. } if kind == REPLICA_SETS => {
                    let set = self.sets.iter_mut().find(|s| s.metadata.name == name).expect("the patched set");
                    assert!(subresource.is_empty());
                    set.spec.replicas = patch["spec"]["replicas"].as_i64();
                    set.metadata.annotations =
                        serde_json::from_value(patch["metadata"]["annotations"].clone()).expect("annotations");
                }
                Write::Patch { subresource, patch, .. } if subresource == "status" => {
                    self.deployment.status = serde_json::from_value(patch["status"].clone()).expect("a status");
                }
                Write::Patch { patch, .. } => {
                    let revision = patch["metadata"]["annotations"][REVISION].as_str().expect("a revision");
                    self.deployment.metadata.annotations.insert(REVISION.into(), revision.into());
                }
                Write::Delete { name, .. } => self.sets.retain(|s| s.metadata.name != name),
                other => panic!("unexpected write {other:?}"),
            }
        }

        /// The ReplicaSet controller's work: pods to each set's size, the
        /// available ones kept last.
        fn settle(&mut self) {
            for set in &mut self.sets {
                set.status.replicas = set.replicas();
                set.status.available_replicas = set.status.available_replicas.min(set.replicas());
                set.status.ready_replicas = set.status.available_replicas;
                set.status.observed_generation = set.metadata.generation.unwrap_or(0);
            }
        }

        /// Makes up to `count` unavailable pods of the `index`-th set
        /// available.
        fn make_available(&mut self, index: usize, count: i64) {
            if self.sets.is_empty() {
                return;
            }
            let len = self.sets.len();
            let set = &mut self.sets[index % len];
            set.status.available_replicas = (set.status.available_replicas + count).min(set.status.replicas);
            set.status.ready_replicas = set.status.available_replicas;
        }

        fn make_all_available(&mut self) {
            for set in &mut self.sets {
                set.status.available_replicas = set.status.replicas;
                set.status.ready_replicas = set.status.replicas;
            }
        }

        fn change_template(&mut self, image: &str) {
            self.deployment.spec.template["spec"]["containers"][0]["image"] = json!(image);
            self.deployment.metadata.generation = Some(self.deployment.metadata.generation.unwrap_or(0) + 1);
        }

        fn total(&self) -> i64 {
            self.sets.iter().map(ReplicaSet::replicas).sum()
        }

        fn available(&self) -> i64 {
            self.sets.iter().map(|s| s.status.available_replicas).sum()
        }

        /// Reconciles and settles until nothing changes.
        fn converge(&mut self) {
            for _ in 0..50 {
                self.settle();
                self.make_all_available();
                let plan = self.reconcile();
                if plan.create_opt.is_none() && plan.changes.is_empty() && plan.deployment.is_empty() {
                    return;
                }
            }
            panic!("no convergence");
        }
    }

    fn rolling(replicas: i64) -> Deployment {
        let mut d = deployment(replicas, json!("25%"), json!("25%"));
        d.spec.progress_deadline_seconds = Some(600);
        d.spec.revision_history_limit = Some(10);
        d
    }

    #[test]
    fn a_new_deployment_creates_its_first_replica_set() {
        // Goal: the first reconcile creates `web-<hash>` at full size, with
        // the hash in its labels, selector and template, revision 1, the
        // counts it was sized for, and says so in events and conditions.
        let mut world = World::new(rolling(3));
        let plan = world.reconcile();
        let create = plan.create_opt.expect("a created replica set");
        let Write::Create { object, .. } = &create.write else { panic!("a create") };
        let hash = object["metadata"]["labels"][POD_TEMPLATE_HASH].as_str().expect("a hash");
        let name = format!("web-{hash}");
        assert_eq!(object["metadata"]["name"], name);
        assert_eq!(object["spec"]["selector"]["matchLabels"][POD_TEMPLATE_HASH], hash);
        assert_eq!(object["spec"]["template"]["metadata"]["labels"][POD_TEMPLATE_HASH], hash);
        assert_eq!(object["spec"]["replicas"], 3);
        assert_eq!(object["metadata"]["annotations"][REVISION], "1");
        assert_eq!(object["metadata"]["annotations"][revision::DESIRED_REPLICAS], "3");
        assert_eq!(object["metadata"]["annotations"][revision::MAX_REPLICAS], "4");
        assert_eq!(object["metadata"]["ownerReferences"][0]["kind"], "Deployment");
        assert_eq!(create.event_opt.expect("an event").message, format!("Scaled up replica set {name} from 0 to 3"));
        assert_eq!(world.deployment.metadata.annotations[REVISION], "1");
        let progressing = find(&world.deployment.status, PROGRESSING).expect("Progressing");
        assert_eq!(progressing.reason, NEW_REPLICA_SET_CREATED);
        assert_eq!(progressing.message, format!("Created new replica set \"{name}\""));
        world.settle();
        world.make_all_available();
        world.converge();
        let status = &world.deployment.status;
        assert_eq!(
            (status.replicas, status.updated_replicas, status.available_replicas, status.observed_generation),
            (3, 3, 3, 1)
        );
        let progressing = find(status, PROGRESSING).expect("Progressing");
        assert_eq!(progressing.reason, NEW_REPLICA_SET_AVAILABLE);
        assert_eq!(progressing.message, format!("ReplicaSet \"{name}\" has successfully progressed."));
    }

    #[test]
    fn a_template_change_rolls_over_and_a_rollback_reuses_the_old_replica_set() {
        // Goal: v1 → v2 makes a second ReplicaSet (revision 2) that ends
        // with every pod; back to v1 reuses the first as revision 3 with
        // "1" in its history.
        let mut world = World::new(rolling(4));
        world.converge();
        world.change_template("v2");
        let plan = world.reconcile();
        let Some(Step { write: Write::Create { object, .. }, .. }) = plan.create_opt else {
            panic!("a second replica set")
        };
        // 25% of 4: one more pod, none fewer.
        assert_eq!(object["spec"]["replicas"], 1);
        assert_eq!(object["metadata"]["annotations"][REVISION], "2");
        world.settle();
        world.converge();
        assert_eq!(world.sets.len(), 2);
        assert_eq!(world.sets[0].replicas(), 0);
        assert_eq!(world.sets[1].replicas(), 4);
        assert_eq!(world.deployment.metadata.annotations[REVISION], "2");
        world.change_template("v1");
        world.converge();
        assert_eq!(world.sets.len(), 2);
        assert_eq!(world.sets[0].replicas(), 4);
        assert_eq!(world.sets[0].metadata.annotations[REVISION], "3");
        assert_eq!(world.sets[0].metadata.annotations[revision::REVISION_HISTORY], "1");
        assert_eq!(world.deployment.metadata.annotations[REVISION], "3");
    }

    #[test]
    fn a_restart_annotation_on_the_template_makes_a_new_replica_set() {
        // Goal: `kubectl rollout restart` (an annotation on the template)
        // rolls every pod over to a second ReplicaSet, the change cause
        // copied onto it.
        let mut world = World::new(rolling(2));
        world.converge();
        world.deployment.spec.template["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"});
        world.deployment.metadata.annotations.insert("kubernetes.io/change-cause".into(), "restart".into());
        world.deployment.metadata.generation = Some(2);
        world.converge();
        assert_eq!(world.sets.len(), 2);
        assert_eq!((world.sets[0].replicas(), world.sets[1].replicas()), (0, 2));
        assert_eq!(world.sets[1].metadata.annotations["kubernetes.io/change-cause"], "restart");
        assert_eq!(world.deployment.status.observed_generation, 2);
    }

    #[test]
    fn recreate_waits_for_old_pods_before_creating_the_new_replica_set() {
        let mut d = rolling(2);
        d.spec.strategy.type_ = "Recreate".into();
        let mut world = World::new(d);
        world.converge();
        world.change_template("v2");
        let plan = world.reconcile();
        assert!(plan.create_opt.is_none());
        assert_eq!(world.sets[0].replicas(), 0);
        // Scaled down, but a pod still terminates.
        world.sets[0].status.replicas = 0;
        let mut pod = Pod::default();
        pod.metadata.owner_references = vec![OwnerReference {
            uid: world.sets[0].metadata.uid.clone(),
            controller: Some(true),
            ..OwnerReference::default()
        }];
        pod.status.phase = "Running".into();
        world.pods.push(pod);
        let plan = world.reconcile();
        assert!(plan.create_opt.is_none());
        assert_eq!(plan.requeue_opt, Some(OLD_PODS_POLL));
        world.pods.clear();
        let plan = world.reconcile();
        let Some(Step { write: Write::Create { object, .. }, .. }) = plan.create_opt else {
            panic!("the new replica set")
        };
        assert_eq!(object["spec"]["replicas"], 2);
    }

    #[test]
    fn a_paused_deployment_scales_but_does_not_roll_out() {
        let mut world = World::new(rolling(2));
        world.converge();
        world.deployment.spec.paused = true;
        world.change_template("v2");
        world.deployment.spec.replicas = Some(5);
        let plan = world.reconcile();
        assert!(plan.create_opt.is_none());
        assert_eq!(world.sets.len(), 1);
        assert_eq!(world.sets[0].replicas(), 5);
        assert_eq!(
            plan.changes[0].event_opt.as_ref().expect("an event").message,
            format!("Scaled up replica set {} from 2 to 5", world.sets[0].metadata.name)
        );
        assert_eq!(find(&world.deployment.status, PROGRESSING).expect("Progressing").reason, DEPLOYMENT_PAUSED);
        world.deployment.spec.paused = false;
        world.settle();
        world.make_all_available();
        world.converge();
        assert_eq!(world.sets.len(), 2);
        assert_eq!(world.sets[1].replicas(), 5);
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        // Goal: 10 pods, surge 3, stuck half-way (8 old, 5 new unavailable);
        // scaled to 15, the old set grows by 3 and the new by 2.
        let mut world = World::new(deployment(10, json!(3), json!(2)));
        world.converge();
        world.change_template("v2");
        world.reconcile();
        world.settle();
        world.reconcile();
        world.settle();
        assert_eq!((world.sets[0].replicas(), world.sets[1].replicas()), (8, 5));
        world.deployment.spec.replicas = Some(15);
        world.reconcile();
        assert_eq!((world.sets[0].replicas(), world.sets[1].replicas()), (11, 7));
    }

    #[test]
    fn old_revisions_beyond_the_limit_are_deleted() {
        let mut d = rolling(1);
        d.spec.revision_history_limit = Some(1);
        let mut world = World::new(d);
        for image in ["v1", "v2", "v3", "v4"] {
            world.change_template(image);
            world.converge();
        }
        let revisions: Vec<i64> = world.sets.iter().map(revision::of).collect();
        assert_eq!(revisions, [3, 4]);
    }

    #[test]
    fn a_name_taken_by_another_template_bumps_the_collision_count() {
        let mut world = World::new(rolling(1));
        let plan = world.reconcile();
        let Some(Step { write: Write::Create { object, .. }, .. }) = plan.create_opt else { panic!("a create") };
        let mut squatter: ReplicaSet = serde_json::from_value(object).expect("a replica set");
        squatter.metadata.owner_references.clear();
        squatter.metadata.labels.clear();
        squatter.spec.template["spec"] = json!({"other": true});
        let mut world = World::new(rolling(1));
        world.sets.push(squatter);
        let plan = world.reconcile();
        assert!(plan.create_opt.is_none());
        assert!(plan.failure_opt.is_some());
        assert_eq!(world.deployment.status.collision_count, Some(1));
        let plan = world.reconcile();
        assert!(plan.create_opt.is_some(), "a salted hash names another replica set");
    }

    #[test]
    fn a_malformed_template_fails_without_writes() {
        let mut d = rolling(1);
        d.spec.template = json!("not a template");
        let plan = plan(&d, &[], &[], parse_time("2026-01-01T00:00:00Z").expect("time"));
        assert!(plan.create_opt.is_none() && plan.deployment.is_empty());
        assert!(plan.failure_opt.is_some());
    }

    #[test]
    fn orphans_are_adopted_before_anything_else() {
        let mut orphan = ReplicaSet::default();
        orphan.metadata.name = "web-old".into();
        orphan.metadata.labels = [("app".to_owned(), "web".to_owned())].into();
        let plan = plan(&rolling(1), &[orphan], &[], parse_time("2026-01-01T00:00:00Z").expect("time"));
        assert_eq!(plan.ownership.len(), 1);
        assert!(plan.create_opt.is_none());
    }

    proptest! {
        /// Goal: over rollouts of random sizes and bounds, with template
        /// changes and pods becoming available at random, a rolling update
        /// never asks for more than the count plus maxSurge and never
        /// leaves fewer available than the count less maxUnavailable.
        #[test]
        fn rolling_updates_stay_within_their_bounds(
            replicas in 1i64..12,
            surge in prop_oneof![(0i64..4).prop_map(|n| json!(n)), (0u32..101).prop_map(|p| json!(format!("{p}%")))],
            unavailable in prop_oneof![(0i64..4).prop_map(|n| json!(n)), (0u32..101).prop_map(|p| json!(format!("{p}%")))],
            events in proptest::collection::vec((0usize..4, 0i64..4, 0u8..10), 1..60),
        ) {
            let d = deployment(replicas, surge, unavailable);
            let most = replicas + max_surge(&d);
            let least = replicas - rollout::max_unavailable(&d);
            let mut world = World::new(d);
            world.converge();
            let mut version = 1;
            for (set, count, roll) in events {
                if roll == 0 {
                    version += 1;
                    world.change_template(&format!("v{version}"));
                }
                world.reconcile();
                prop_assert!(world.total() <= most, "{} pods asked for, at most {most}", world.total());
                world.settle();
                prop_assert!(world.available() >= least, "{} available, at least {least}", world.available());
                world.make_available(set, count);
            }
            world.converge();
            let status = &world.deployment.status;
            prop_assert_eq!((status.replicas, status.updated_replicas, status.available_replicas), (replicas, replicas, replicas));
        }
    }
}
