//! The status a StatefulSet reports, counted from its pods as Kubernetes'
//! `computeReplicaStatus` and `completeRollingUpdate` count them.

use chrono::{DateTime, Utc};

use crate::model::{Pod, StatefulSet, Status};

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
        if !pod.is_terminating() {
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
