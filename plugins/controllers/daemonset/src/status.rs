//! The status a DaemonSet reports, counted per node as Kubernetes'
//! `updateDaemonSetStatus` counts it: each node's oldest pod decides.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::model::{DaemonSet, Pod, Status};
use crate::placement::Fit;

/// The status of `set` with `pods_by_node` and `fits` (per node), at
/// revision `hash`.
pub fn status(
    set: &DaemonSet,
    fits: &BTreeMap<&str, Fit>,
    pods_by_node: &BTreeMap<&str, Vec<&Pod>>,
    hash: &str,
    now: DateTime<Utc>,
) -> Status {
    let mut status = Status {
        observed_generation: set.metadata.generation,
        collision_count: set.status.collision_count,
        ..Status::default()
    };
    for (node, fit) in fits {
        let oldest = pods_by_node.get(node).and_then(|pods| pods.first());
        if !fit.should_run {
            if oldest.is_some() {
                status.number_misscheduled += 1;
            }
            continue;
        }
        status.desired_number_scheduled += 1;
        let Some(pod) = oldest else { continue };
        status.current_number_scheduled += 1;
        if pod.is_ready() {
            status.number_ready += 1;
            if pod.is_available(set.spec.min_ready_seconds, now) {
                status.number_available += 1;
            }
        }
        if pod.revision() == hash {
            status.updated_number_scheduled += 1;
        }
    }
    status.number_unavailable = status.desired_number_scheduled - status.number_available;
    status
}
