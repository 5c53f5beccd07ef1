//! What a ReplicaSet's pods count as, and which go first when it shrinks.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use engenho_controller::pods::Pod;

/// Whether `pod` is available at `now`: ready, and for more than
/// `min_ready_seconds` (Kubernetes' `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i64, now: DateTime<Utc>) -> bool {
    available_in(pod, min_ready_seconds, now) == Some(Duration::ZERO)
}

/// How long until `pod`, ready, becomes available: zero when it is; `None`
/// when it is not ready, or has no time it became ready while
/// `min_ready_seconds` asks for one.
pub fn available_in(pod: &Pod, min_ready_seconds: i64, now: DateTime<Utc>) -> Option<Duration> {
    let since_opt = pod.ready_since()?;
    if min_ready_seconds <= 0 {
        return Some(Duration::ZERO);
    }
    let available_at = since_opt? + chrono::Duration::seconds(min_ready_seconds);
    if available_at < now {
        return Some(Duration::ZERO);
    }
    // Available once strictly past the mark: the remaining time and a second.
    (available_at - now).to_std().ok().map(|left| left + Duration::from_secs(1))
}

/// Where a phase ranks when choosing pods to delete: pending first.
fn phase_rank(phase: &str) -> u8 {
    match phase {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

/// The annotation that makes a pod cheaper (lower) or dearer to delete.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// `count` of `pods` to delete at `now`, in the order Kubernetes'
/// `getPodsToDelete` ranks them: unassigned before assigned, pending before
/// unknown before running, not ready before ready, lower
/// `pod-deletion-cost` first, pods sharing a node with more of the set's
/// active pods first, ready for less time first, more restarts first, newer
/// first; times compared on a logarithmic scale (durations within the same
/// power of two rank alike), as Kubernetes' `LogarithmicScaleDown` does.
pub fn to_delete(pods: &[Pod], count: usize, now: DateTime<Utc>) -> Vec<&Pod> {
    let mut on_node: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in pods.iter().filter(|pod| pod.is_active()) {
        *on_node.entry(pod.spec.node_name.as_str()).or_default() += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> =
        pods.iter().map(|pod| (pod, on_node.get(pod.spec.node_name.as_str()).copied().unwrap_or(0))).collect();
    ranked.sort_by(|(a, rank_a), (b, rank_b)| deletion_order(a, b, *rank_a, *rank_b, now));
    ranked.into_iter().take(count).map(|(pod, _)| pod).collect()
}

/// Whether `a` goes before `b` when deleting (`Less`: `a` first).
fn deletion_order(a: &Pod, b: &Pod, rank_a: usize, rank_b: usize, now: DateTime<Utc>) -> Ordering {
    let assigned = |pod: &Pod| !pod.spec.node_name.is_empty();
    let cost = |pod: &Pod| pod.metadata.annotations.get(DELETION_COST).and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
    let ready_time = |pod: &Pod| pod.ready_since().flatten();
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(&a.status.phase).cmp(&phase_rank(&b.status.phase)))
        .then_with(|| a.is_ready().cmp(&b.is_ready()))
        .then_with(|| cost(a).cmp(&cost(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| {
            if a.is_ready() && b.is_ready() && ready_time(a) != ready_time(b) {
                newer_first(ready_time(a), ready_time(b), now)
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| b.max_container_restarts().cmp(&a.max_container_restarts()))
        .then_with(|| newer_first(a.metadata.created(), b.metadata.created(), now))
        .then_with(|| a.metadata.uid.cmp(&b.metadata.uid))
}

/// Later times first, on a logarithmic scale of their age at `now`; an
/// unknown time first.
fn newer_first(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Ordering {
    let bucket = |time: Option<DateTime<Utc>>| -> i64 {
        time.and_then(|t| (now - t).num_nanoseconds())
            .filter(|nanos| *nanos > 0)
            .map_or(-1, |nanos| i64::from(63 - nanos.leading_zeros()))
    };
    bucket(a).cmp(&bucket(b))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use engenho_controller::meta::{Condition, ObjectMeta, parse_time};
    use engenho_controller::pods::{ContainerStatus, PodSpec, PodStatus};

    /// A pod named `name`, on `node` (or none), in `phase`, ready since
    /// `ready` (or not), created at `created`.
    pub(crate) fn pod(name: &str, node: &str, phase: &str, ready: Option<&str>, created: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: name.into(),
                uid: format!("uid-{name}"),
                creation_timestamp: Some(created.into()),
                ..ObjectMeta::default()
            },
            spec: PodSpec { node_name: node.into(), ..PodSpec::default() },
            status: PodStatus {
                phase: phase.into(),
                conditions: ready
                    .map(|since| Condition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(since.into()),
                        ..Condition::default()
                    })
                    .into_iter()
                    .collect(),
                ..PodStatus::default()
            },
        }
    }

    fn names(pods: Vec<&Pod>) -> Vec<&str> {
        pods.into_iter().map(|p| p.metadata.name.as_str()).collect()
    }

    #[test]
    fn deletion_takes_the_least_useful_pods_first() {
        // Goal: each rule of Kubernetes' ranking decides over the later ones.
        let t = "2026-01-01T00:00:00Z";
        let mut restarting = pod("restarting", "n2", "Running", Some(t), t);
        restarting.status.container_statuses = vec![ContainerStatus { restart_count: 4, ..ContainerStatus::default() }];
        let pods = vec![
            pod("ready-old", "n1", "Running", Some(t), t),
            pod("ready-new", "n3", "Running", Some(t), "2026-01-02T00:00:00Z"),
            restarting,
            pod("unready", "n1", "Running", None, t),
            pod("pending", "n1", "Pending", None, t),
            pod("unassigned", "", "Pending", None, t),
            pod("ready-later", "n4", "Running", Some("2026-01-03T00:00:00Z"), t),
        ];
        let now = parse_time("2026-01-04T00:00:00Z").expect("time");
        let order = names(to_delete(&pods, 7, now));
        // ready-old shares n1 with two others: it ranks before the pods
        // alone on their nodes.
        assert_eq!(order, ["unassigned", "pending", "unready", "ready-old", "ready-later", "restarting", "ready-new"]);
        assert_eq!(names(to_delete(&pods, 2, now)), ["unassigned", "pending"]);
    }

    #[test]
    fn deletion_cost_and_coarse_ages_decide_among_alike_pods() {
        // Goal: a lower pod-deletion-cost goes first whatever the age; ages
        // within the same power of two rank alike, so more restarts decide.
        let t = "2026-01-01T00:00:00Z";
        let now = parse_time("2026-01-01T01:00:00Z").expect("time");
        let mut cheap = pod("cheap", "n1", "Running", Some(t), t);
        cheap.metadata.annotations.insert(DELETION_COST.into(), "-5".into());
        let young = pod("young", "n2", "Running", Some(t), "2026-01-01T00:00:10Z");
        let mut restarting = pod("restarting", "n3", "Running", Some(t), "2026-01-01T00:00:00Z");
        restarting.status.container_statuses = vec![ContainerStatus { restart_count: 1, ..ContainerStatus::default() }];
        let pods = vec![young, restarting, cheap];
        assert_eq!(names(to_delete(&pods, 3, now)), ["cheap", "restarting", "young"]);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        // Goal: a pod ready for 10s is available with minReadySeconds 5, not
        // with 30 (and says when it will be), never when not ready.
        let now = parse_time("2026-01-01T00:00:10Z").expect("time");
        let ready = pod("a", "n", "Running", Some("2026-01-01T00:00:00Z"), "2026-01-01T00:00:00Z");
        assert!(is_available(&ready, 0, now));
        assert!(is_available(&ready, 5, now));
        assert!(!is_available(&ready, 30, now));
        assert_eq!(available_in(&ready, 30, now), Some(Duration::from_secs(21)));
        let unready = pod("b", "n", "Running", None, "2026-01-01T00:00:00Z");
        assert_eq!(available_in(&unready, 0, now), None);
    }
}
