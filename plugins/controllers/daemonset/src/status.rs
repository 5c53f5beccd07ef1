//! The status a DaemonSet reports, counted per node as Kubernetes'
//! `updateDaemonSetStatus` counts it: each node's oldest pod decides.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use engenho_controller::pods::Pod;

use crate::model::{DaemonPod, DaemonSet, Status};
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::plan::{fits, pods_by_node};
    use engenho_controller::meta::parse_time;
    use engenho_controller::nodes::Node;
    use engenho_controller::revisions::REVISION_LABEL;
    use serde_json::json;

    #[test]
    fn counts_nodes_by_their_oldest_pod() {
        let set: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "generation": 5},
            "spec": {"minReadySeconds": 600, "template": {"spec": {"nodeSelector": {"role": "worker"}}}},
        }))
        .expect("a set");
        let node = |name: &str, role: &str| -> Arc<Node> {
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name, "labels": {"role": role}}})).expect("a node"),
            )
        };
        let nodes = [node("a", "worker"), node("b", "worker"), node("c", "worker"), node("d", "db")];
        let pod = |name: &str, node: &str, hash: &str, ready_since: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {REVISION_LABEL: hash}},
                "spec": {"nodeName": node},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready_since}]},
            }))
            .expect("a pod")
        };
        let pods = [
            pod("p-a", "a", "new", "2026-12-05T03:00:00Z"),
            pod("p-b", "b", "old", "2026-12-05T03:59:00Z"),
            pod("p-d", "d", "new", "2026-12-05T03:00:00Z"),
        ];
        let now = parse_time("2026-12-05T04:00:00Z").expect("a time");
        let status = status(&set, &fits(&set, &nodes), &pods_by_node(&pods), "new", now);
        assert_eq!(status.observed_generation, Some(5));
        assert_eq!((status.desired_number_scheduled, status.current_number_scheduled), (3, 2));
        assert_eq!(status.number_misscheduled, 1);
        assert_eq!((status.number_ready, status.number_available, status.number_unavailable), (2, 1, 2));
        assert_eq!(status.updated_number_scheduled, 1);
    }
}
