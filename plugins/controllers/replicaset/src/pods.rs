//! What a ReplicaSet's pods count as, and which go first when it shrinks.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::Pod;

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

/// `count` of `pods` to delete, in the order Kubernetes' `getPodsToDelete`
/// ranks them: unassigned before assigned, pending before unknown before
/// running, not ready before ready, pods sharing a node with more of the
/// set's pods first, ready for less time first, more restarts first,
/// newer first.
pub fn to_delete(pods: &[Pod], count: usize) -> Vec<&Pod> {
    let mut on_node: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in pods.iter().filter(|pod| !pod.spec.node_name.is_empty()) {
        *on_node.entry(pod.spec.node_name.as_str()).or_default() += 1;
    }
    let rank = |pod: &Pod| {
        if pod.spec.node_name.is_empty() { 0 } else { on_node.get(pod.spec.node_name.as_str()).copied().unwrap_or(0) }
    };
    let mut ranked: Vec<&Pod> = pods.iter().collect();
    ranked.sort_by(|a, b| deletion_order(a, b, rank(a), rank(b)));
    ranked.truncate(count);
    ranked
}

/// Whether `a` goes before `b` when deleting (`Less`: `a` first).
fn deletion_order(a: &Pod, b: &Pod, rank_a: usize, rank_b: usize) -> Ordering {
    let assigned = |pod: &Pod| !pod.spec.node_name.is_empty();
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(&a.status.phase).cmp(&phase_rank(&b.status.phase)))
        .then_with(|| a.is_ready().cmp(&b.is_ready()))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| newer_first(a.ready_since().flatten(), b.ready_since().flatten()))
        .then_with(|| b.restarts().cmp(&a.restarts()))
        .then_with(|| newer_first(a.metadata.created(), b.metadata.created()))
}

/// Later times first; an unknown time before any known one.
fn newer_first(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{ContainerStatus, PodSpec, PodStatus};
    use engenho_controller::meta::{Condition, ObjectMeta, parse_time};

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
            spec: PodSpec { node_name: node.into() },
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
                container_statuses: vec![],
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
        restarting.status.container_statuses = vec![ContainerStatus { restart_count: 4 }];
        let pods = vec![
            pod("ready-old", "n1", "Running", Some(t), t),
            pod("ready-new", "n3", "Running", Some(t), "2026-01-02T00:00:00Z"),
            restarting,
            pod("unready", "n1", "Running", None, t),
            pod("pending", "n1", "Pending", None, t),
            pod("unassigned", "", "Pending", None, t),
            pod("ready-later", "n4", "Running", Some("2026-01-03T00:00:00Z"), t),
        ];
        let order = names(to_delete(&pods, 7));
        // ready-old shares n1 with two others: it ranks before the pods
        // alone on their nodes.
        assert_eq!(order, ["unassigned", "pending", "unready", "ready-old", "ready-later", "restarting", "ready-new"]);
        assert_eq!(names(to_delete(&pods, 2)), ["unassigned", "pending"]);
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
