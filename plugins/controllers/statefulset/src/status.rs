//! The status a StatefulSet reports, counted from its pods as Kubernetes'
//! `computeReplicaStatus` and `completeRollingUpdate` count them.

use chrono::{DateTime, Utc};
use engenho_controller::pods::Pod;

use crate::model::{StatefulPod, StatefulSet, Status};

/// The status of `set` with `pods`, at revisions `current` and `update`.
pub fn status(set: &StatefulSet, pods: &[Pod], current: &str, update: &str, now: DateTime<Utc>) -> Status {
    let mut status = Status {
        observed_generation: set.metadata.generation,
        current_revision: current.to_owned(),
        update_revision: update.to_owned(),
        collision_count: set.status.collision_count,
        ..Status::default()
    };
    for pod in pods.iter().filter(|p| set.ordinal_of(&p.metadata.name).is_some()) {
        status.replicas += 1;
        if pod.is_running_and_ready() {
            status.ready_replicas += 1;
            if pod.is_available(set.spec.min_ready_seconds, now) {
                status.available_replicas += 1;
            }
        }
        if !pod.metadata.is_deleting() {
            if pod.revision() == current {
                status.current_replicas += 1;
            }
            if pod.revision() == update {
                status.updated_replicas += 1;
            }
        }
    }
    if set.is_rolling() && status.updated_replicas == status.replicas && status.ready_replicas == status.replicas {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use engenho_controller::meta::parse_time;
    use engenho_controller::revisions::REVISION_LABEL;
    use serde_json::json;

    fn set(strategy: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 4},
            "spec": {"replicas": 3, "minReadySeconds": 60, "updateStrategy": {"type": strategy}},
            "status": {"collisionCount": 1},
        }))
        .expect("a set")
    }

    fn pod(name: &str, revision: &str, ready_since: Option<&str>) -> Pod {
        let conditions = ready_since
            .map_or_else(Vec::new, |t| vec![json!({"type": "Ready", "status": "True", "lastTransitionTime": t})]);
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {REVISION_LABEL: revision}},
            "status": {"phase": "Running", "conditions": conditions},
        }))
        .expect("a pod")
    }

    #[test]
    fn counts_pods_by_readiness_availability_and_revision() {
        let now = parse_time("2026-12-05T04:00:00Z").expect("a time");
        let pods = [
            pod("web-0", "r1", Some("2026-12-05T03:00:00Z")),
            pod("web-1", "r1", Some("2026-12-05T03:59:30Z")),
            pod("web-2", "r2", None),
            pod("other-0", "r2", None),
        ];
        let status = status(&set("RollingUpdate"), &pods, "r1", "r2", now);
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!((status.replicas, status.ready_replicas, status.available_replicas), (3, 2, 1));
        assert_eq!((status.current_replicas, status.updated_replicas), (2, 1));
        assert_eq!((status.current_revision.as_str(), status.update_revision.as_str()), ("r1", "r2"));
        assert_eq!(status.collision_count, Some(1));
    }

    #[test]
    fn a_rolling_update_completes_when_every_pod_is_updated_and_ready() {
        let now = parse_time("2026-12-05T04:00:00Z").expect("a time");
        let pods = [pod("web-0", "r2", Some("2026-12-05T03:00:00Z")), pod("web-1", "r2", Some("2026-12-05T03:00:00Z"))];
        let status = status(&set("RollingUpdate"), &pods, "r1", "r2", now);
        assert_eq!((status.current_revision.as_str(), status.current_replicas), ("r2", 2));
        let on_delete = super::status(&set("OnDelete"), &pods, "r1", "r2", now);
        assert_eq!((on_delete.current_revision.as_str(), on_delete.current_replicas), ("r1", 0));
    }
}
