//! What a ReplicaSet's reconcile does, decided from what it read: which
//! pods it claims and releases, how many it creates or deletes, the pods it
//! creates, and the status it reports.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use engenho_controller::kinds::REPLICA_SETS;
use engenho_controller::meta::{Condition, OwnerReference, format_time};
use engenho_controller::pods::Pod;
use engenho_controller::replicasets::{ReplicaSet, ReplicaSetStatus};
use serde_json::{Value, json};

use crate::pods::{available_in, is_available};

/// The condition a ReplicaSet carries while it cannot create or delete
/// pods.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Which pods a ReplicaSet owns after claiming, and the changes of
/// ownership claiming makes.
#[derive(Debug, Default)]
pub struct Claims<'a> {
    /// Pods it controls and selects.
    pub owned: Vec<&'a Pod>,
    /// Orphans it selects, to adopt.
    pub adopt: Vec<&'a Pod>,
    /// Pods it controls but no longer selects, to release.
    pub release: Vec<&'a Pod>,
}

/// Sorts `pods` (those the ReplicaSet selects and those it controls, each
/// with whether its selector picks it) as Kubernetes' `ClaimPods` does: it
/// keeps the pods it controls and selects, adopts selected orphans that are
/// not being deleted (unless it is being deleted itself), releases the pods
/// it controls and no longer selects, and leaves pods other controllers
/// control.
pub fn claims<'a>(rs: &ReplicaSet, pods: impl IntoIterator<Item = (&'a Pod, bool)>) -> Claims<'a> {
    let mut claims = Claims::default();
    for (pod, selected) in pods {
        match pod.metadata.controller() {
            Some(owner) if owner.uid == rs.metadata.uid => {
                if selected {
                    claims.owned.push(pod);
                } else if !pod.metadata.is_deleting() {
                    claims.release.push(pod);
                }
            }
            Some(_) => {}
            None if selected && !pod.metadata.is_deleting() && !rs.metadata.is_deleting() => claims.adopt.push(pod),
            None => {}
        }
    }
    claims
}

/// The merge patch that makes the ReplicaSet `rs` the controller of
/// `pod`, guarded by the pod's resourceVersion.
pub fn adoption_patch(rs: &ReplicaSet, pod: &Pod) -> Value {
    let mut owners = pod.metadata.owner_references.clone();
    owners.push(OwnerReference::controlled_by(&REPLICA_SETS, "ReplicaSet", &rs.metadata));
    json!({"metadata": {"ownerReferences": owners, "resourceVersion": pod.metadata.resource_version}})
}

/// The merge patch that drops the ReplicaSet `rs`'s reference from `pod`,
/// guarded by the pod's resourceVersion.
pub fn release_patch(rs: &ReplicaSet, pod: &Pod) -> Value {
    let owners: Vec<&OwnerReference> =
        pod.metadata.owner_references.iter().filter(|owner| owner.uid != rs.metadata.uid).collect();
    let owners = if owners.is_empty() { Value::Null } else { json!(owners) };
    json!({"metadata": {"ownerReferences": owners, "resourceVersion": pod.metadata.resource_version}})
}

/// What to do about the number of pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// The count is right.
    Hold,
    /// Create this many.
    Create(usize),
    /// Delete this many.
    Delete(usize),
}

/// How to go from `active` pods to `desired`, at most `burst` at once.
pub fn scale(desired: i64, active: usize, burst: usize) -> Scale {
    let active = i64::try_from(active).unwrap_or(i64::MAX);
    let diff = usize::try_from(desired.abs_diff(active)).unwrap_or(usize::MAX).min(burst);
    match desired.cmp(&active) {
        std::cmp::Ordering::Equal => Scale::Hold,
        std::cmp::Ordering::Greater => Scale::Create(diff),
        std::cmp::Ordering::Less => Scale::Delete(diff),
    }
}

/// Runs `total` creations in slow-start batches (1, 2, 4, …) through
/// `run`, which makes a batch and answers how many succeeded; stops after
/// a batch with a failure. Answers how many succeeded in all.
pub fn slow_start(total: usize, mut run: impl FnMut(usize) -> usize) -> usize {
    let mut done = 0;
    let mut batch = 1;
    while done < total {
        let size = batch.min(total - done);
        let succeeded = run(size);
        done += succeeded;
        if succeeded < size {
            break;
        }
        batch = size * 2;
    }
    done
}

/// A pod of `rs`'s template, as Kubernetes' `GetPodFromTemplate` makes it:
/// named `<rs>-` and five random characters by the server, with the
/// template's labels, annotations and finalizers, and `rs` as controller.
pub fn pod_from_template(rs: &ReplicaSet) -> Value {
    let template = &rs.spec.template;
    let mut metadata = json!({
        "generateName": format!("{}-", rs.metadata.name),
        "namespace": rs.metadata.namespace,
        "ownerReferences": [OwnerReference::controlled_by(&REPLICA_SETS, "ReplicaSet", &rs.metadata)],
    });
    for field in ["labels", "annotations", "finalizers"] {
        if let Some(value) = template["metadata"].get(field) {
            metadata[field] = value.clone();
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

/// Why creating or deleting pods failed, for the `ReplicaFailure`
/// condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageFailure {
    /// `FailedCreate` or `FailedDelete`.
    pub reason: &'static str,
    /// The API's message.
    pub message: String,
}

/// The status of `rs` owning the active pods `active` (each picked by its
/// selector, as claiming leaves them) at `now`, after `failure_opt`, as
/// Kubernetes' `calculateStatus` makes it: the `ReplicaFailure` condition
/// is set when a failure happens and none is set, and removed once pods are
/// managed without one.
pub fn status(
    rs: &ReplicaSet,
    active: &[&Pod],
    now: DateTime<Utc>,
    failure_opt: Option<&ManageFailure>,
) -> ReplicaSetStatus {
    let template_labels = rs.spec.template["metadata"]["labels"].as_object();
    let has_labels = |labels: &BTreeMap<String, String>| {
        template_labels
            .is_none_or(|template| template.iter().all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str()))
    };
    // When the selector requires every template label, a pod it picks
    // carries them all: no pod's labels need to be read.
    let fully_labeled = if has_labels(&rs.spec.selector.match_labels) {
        active.len()
    } else {
        active.iter().filter(|pod| has_labels(&pod.metadata.labels)).count()
    };
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let mut conditions = rs.status.conditions.clone();
    let has_failure = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match failure_opt {
        Some(failure) if !has_failure => conditions.push(Condition {
            type_: REPLICA_FAILURE.into(),
            status: "True".into(),
            reason: failure.reason.into(),
            message: failure.message.clone(),
            last_transition_time: Some(format_time(now)),
            ..Condition::default()
        }),
        None if has_failure => conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    // Only a ready pod can be available: one pass counts both.
    let (mut ready, mut available) = (0, 0);
    for pod in active.iter().filter(|pod| pod.is_ready()) {
        ready += 1;
        if is_available(pod, rs.spec.min_ready_seconds, now) {
            available += 1;
        }
    }
    ReplicaSetStatus {
        replicas: count(active.len()),
        fully_labeled_replicas: count(fully_labeled),
        ready_replicas: count(ready),
        available_replicas: count(available),
        observed_generation: rs.metadata.generation.unwrap_or(0),
        conditions,
    }
}

/// When to look again for a ready pod of `active` to become available, if
/// one is waiting for `minReadySeconds`.
pub fn availability_requeue(rs: &ReplicaSet, active: &[&Pod], now: DateTime<Utc>) -> Option<Duration> {
    if rs.spec.min_ready_seconds <= 0 {
        // A ready pod is available at once.
        return None;
    }
    active
        .iter()
        .filter_map(|pod| available_in(pod, rs.spec.min_ready_seconds, now))
        .filter(|left| !left.is_zero())
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::tests::pod;
    use engenho_controller::meta::parse_time;

    fn replica_set() -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "rs-uid", "generation": 3},
            "spec": {
                "replicas": 3,
                "minReadySeconds": 10,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "tier": "front"}, "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }))
        .expect("a replica set")
    }

    fn labeled(mut pod: Pod, labels: &[(&str, &str)], owner: Option<&str>) -> Pod {
        pod.metadata.labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        pod.metadata.owner_references = owner
            .map(|uid| OwnerReference { uid: uid.into(), controller: Some(true), ..OwnerReference::default() })
            .into_iter()
            .collect();
        pod
    }

    #[test]
    fn claiming_adopts_selected_orphans_and_releases_unselected_pods() {
        // Goal: ClaimPods' four cases, and no adoption by a ReplicaSet
        // being deleted.
        let t = "2026-01-01T00:00:00Z";
        let pods = [
            labeled(pod("mine", "", "Running", None, t), &[("app", "web")], Some("rs-uid")),
            labeled(pod("orphan", "", "Running", None, t), &[("app", "web")], None),
            labeled(pod("relabeled", "", "Running", None, t), &[("app", "other")], Some("rs-uid")),
            labeled(pod("theirs", "", "Running", None, t), &[("app", "web")], Some("other-uid")),
        ];
        let mut rs = replica_set();
        let picked = |rs: &ReplicaSet| -> Vec<(&Pod, bool)> {
            pods.iter().map(|pod| (pod, rs.spec.selector.matches(&pod.metadata.labels))).collect()
        };
        let claims = claims(&rs, picked(&rs));
        let names = |pods: &[&Pod]| pods.iter().map(|p| p.metadata.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&claims.owned), ["mine"]);
        assert_eq!(names(&claims.adopt), ["orphan"]);
        assert_eq!(names(&claims.release), ["relabeled"]);
        rs.metadata.deletion_timestamp = Some(t.into());
        assert!(super::claims(&rs, picked(&rs)).adopt.is_empty());
    }

    #[test]
    fn ownership_patches_add_and_drop_the_controller_reference() {
        let rs = replica_set();
        let mut orphan = pod("p", "", "Running", None, "2026-01-01T00:00:00Z");
        orphan.metadata.resource_version = "9".into();
        let adopt = adoption_patch(&rs, &orphan);
        assert_eq!(adopt["metadata"]["ownerReferences"][0]["uid"], "rs-uid");
        assert_eq!(adopt["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(adopt["metadata"]["resourceVersion"], "9");
        let owned = labeled(orphan, &[], Some("rs-uid"));
        assert_eq!(release_patch(&rs, &owned)["metadata"]["ownerReferences"], Value::Null);
    }

    #[test]
    fn scaling_is_bounded_by_the_burst() {
        assert_eq!(scale(3, 3, 500), Scale::Hold);
        assert_eq!(scale(3, 1, 500), Scale::Create(2));
        assert_eq!(scale(1000, 0, 500), Scale::Create(500));
        assert_eq!(scale(0, 4, 500), Scale::Delete(4));
    }

    #[test]
    fn slow_start_doubles_batches_and_stops_after_a_failure() {
        // Goal: batches of 1, 2, 4, … capped by what is left; a batch with
        // a failure ends the run.
        let mut batches = Vec::new();
        assert_eq!(
            slow_start(10, |n| {
                batches.push(n);
                n
            }),
            10
        );
        assert_eq!(batches, [1, 2, 4, 3]);
        let mut batches = Vec::new();
        assert_eq!(
            slow_start(10, |n| {
                batches.push(n);
                if n == 4 { 2 } else { n }
            }),
            5
        );
        assert_eq!(batches, [1, 2, 4]);
        assert_eq!(slow_start(0, |_| 0), 0);
    }

    #[test]
    fn pods_are_made_from_the_template() {
        let pod = pod_from_template(&replica_set());
        assert_eq!(pod["metadata"]["generateName"], "web-");
        assert_eq!(pod["metadata"]["labels"]["tier"], "front");
        assert_eq!(pod["metadata"]["annotations"]["a"], "b");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["apiVersion"], "apps/v1");
        assert_eq!(pod["spec"]["containers"][0]["image"], "nginx");
    }

    #[test]
    fn status_counts_labeled_ready_and_available_pods() {
        // Goal: of three active pods, two carry all template labels, two
        // are ready, one for longer than minReadySeconds (10s).
        let now = parse_time("2026-01-01T00:01:00Z").expect("time");
        let rs = replica_set();
        let full = [("app", "web"), ("tier", "front")];
        let old = labeled(pod("a", "n", "Running", Some("2026-01-01T00:00:00Z"), "2026-01-01T00:00:00Z"), &full, None);
        let new = labeled(pod("b", "n", "Running", Some("2026-01-01T00:00:55Z"), "2026-01-01T00:00:00Z"), &full, None);
        let unready = labeled(pod("c", "n", "Pending", None, "2026-01-01T00:00:00Z"), &[("app", "web")], None);
        let active = [&old, &new, &unready];
        let status = status(&rs, &active, now, None);
        assert_eq!(
            (status.replicas, status.fully_labeled_replicas, status.ready_replicas, status.available_replicas),
            (3, 2, 2, 1)
        );
        assert_eq!(status.observed_generation, 3);
        assert_eq!(availability_requeue(&rs, &active, now), Some(Duration::from_secs(6)));
    }

    #[test]
    fn a_selector_requiring_every_template_label_makes_its_pods_fully_labeled() {
        // Goal: the count holds without reading pods' labels when the
        // selector implies the template's, and only then.
        let now = parse_time("2026-01-01T00:01:00Z").expect("time");
        let mut rs = replica_set();
        rs.spec.selector.match_labels.insert("tier".into(), "front".into());
        let full = [("app", "web"), ("tier", "front"), ("extra", "x")];
        let a = labeled(pod("a", "n", "Running", None, "2026-01-01T00:00:00Z"), &full, None);
        let b = labeled(pod("b", "n", "Running", None, "2026-01-01T00:00:00Z"), &full, None);
        assert_eq!(status(&rs, &[&a, &b], now, None).fully_labeled_replicas, 2);
        let rs = replica_set();
        let picked = labeled(pod("c", "n", "Running", None, "2026-01-01T00:00:00Z"), &[("app", "web")], None);
        assert_eq!(status(&rs, &[&a, &picked], now, None).fully_labeled_replicas, 1);
    }

    #[test]
    fn the_failure_condition_is_set_once_and_cleared_on_success() {
        let now = parse_time("2026-01-01T00:01:00Z").expect("time");
        let mut rs = replica_set();
        let failure = ManageFailure { reason: "FailedCreate", message: "pods \"web-x\" is forbidden: quota".into() };
        let failed = status(&rs, &[], now, Some(&failure));
        assert_eq!(failed.conditions.len(), 1);
        assert_eq!(failed.conditions[0].reason, "FailedCreate");
        assert_eq!(failed.conditions[0].message, failure.message);
        rs.status = failed.clone();
        let later = ManageFailure { reason: "FailedCreate", message: "other".into() };
        assert_eq!(status(&rs, &[], now, Some(&later)).conditions, failed.conditions);
        assert!(status(&rs, &[], now, None).conditions.is_empty());
    }
}
