//! Whether a node still reports: the last time it was heard from (its
//! Lease renewal or its `Ready` heartbeat), and the conditions it gets
//! when that is longer ago than the grace period.

use chrono::{DateTime, Utc};
use engenho_controller::meta::{Condition, format_time, parse_time};
use engenho_controller::nodes::Node;

use crate::model::Lease;

/// The conditions the kubelet reports that turn `Unknown` when it stops.
pub const REPORTED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The reason of a condition the kubelet stopped posting.
pub const STOPPED_REASON: &str = "NodeStatusUnknown";
/// The message of a condition the kubelet stopped posting.
pub const STOPPED_MESSAGE: &str = "Kubelet stopped posting node status.";
/// The reason of a condition the kubelet never posted.
pub const NEVER_REASON: &str = "NodeStatusNeverUpdated";
/// The message of a condition the kubelet never posted.
pub const NEVER_MESSAGE: &str = "Kubelet never posted node status.";

/// When `node` was last heard from: the later of its Lease's renewal and
/// its `Ready` heartbeat, or its creation when there is neither.
pub fn last_heard(node: &Node, lease: Option<&Lease>) -> Option<DateTime<Utc>> {
    let renewed = lease.and_then(|l| l.spec.renew_time.as_deref()).and_then(parse_time);
    let heartbeat = engenho_controller::meta::condition(&node.status.conditions, "Ready")
        .and_then(|c| c.last_heartbeat_time.as_deref())
        .and_then(parse_time);
    renewed.max(heartbeat).or_else(|| node.metadata.created())
}

/// The conditions of `node` once it is found silent at `now`: each of
/// [`REPORTED_CONDITIONS`] `Unknown` (added when missing); `None` when
/// they are so already.
pub fn silent_conditions(node: &Node, now: DateTime<Utc>) -> Option<Vec<Condition>> {
    let mut conditions = node.status.conditions.clone();
    let mut changed = false;
    for type_ in REPORTED_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) if existing.status == "Unknown" => {}
            Some(existing) => {
                existing.status = "Unknown".into();
                existing.reason = STOPPED_REASON.into();
                existing.message = STOPPED_MESSAGE.into();
                existing.last_transition_time = Some(format_time(now));
                changed = true;
            }
            None => {
                conditions.push(Condition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: NEVER_REASON.into(),
                    message: NEVER_MESSAGE.into(),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(format_time(now)),
                    ..Condition::default()
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// The status of the `Ready` condition among `conditions`, if any.
pub fn ready_status(conditions: &[Condition]) -> Option<&str> {
    engenho_controller::meta::condition(conditions, "Ready").map(|c| c.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(conditions: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"conditions": conditions},
        }))
        .expect("a node")
    }

    fn lease(renewed: &str) -> Lease {
        serde_json::from_value(json!({"spec": {"renewTime": renewed}})).expect("a lease")
    }

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(text).expect("a time")
    }

    #[test]
    fn a_node_is_heard_from_by_its_lease_or_heartbeat_or_creation() {
        let ready = node(json!([{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:01:00Z"}]));
        assert_eq!(last_heard(&ready, None), Some(at("2026-01-01T00:01:00Z")));
        let renewed = lease("2026-01-01T00:02:00.123456Z");
        assert_eq!(last_heard(&ready, Some(&renewed)), Some(at("2026-01-01T00:02:00.123456Z")));
        let older = lease("2026-01-01T00:00:30.000000Z");
        assert_eq!(last_heard(&ready, Some(&older)), Some(at("2026-01-01T00:01:00Z")));
        assert_eq!(last_heard(&node(json!([])), None), Some(at("2026-01-01T00:00:00Z")));
    }

    #[test]
    fn a_silent_node_has_its_reported_conditions_unknown() {
        let now = at("2026-01-01T01:00:00Z");
        let ready = node(json!([
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": "2026-01-01T00:01:00Z"},
            {"type": "MemoryPressure", "status": "False"},
            {"type": "NetworkUnavailable", "status": "False"},
        ]));
        let conditions = silent_conditions(&ready, now).expect("changed");
        assert_eq!(conditions.len(), 5);
        let ready_condition = &conditions[0];
        assert_eq!(
            (ready_condition.status.as_str(), ready_condition.reason.as_str(), ready_condition.message.as_str()),
            ("Unknown", STOPPED_REASON, STOPPED_MESSAGE)
        );
        assert_eq!(ready_condition.last_heartbeat_time.as_deref(), Some("2026-01-01T00:01:00Z"));
        assert_eq!(ready_condition.last_transition_time.as_deref(), Some("2026-01-01T01:00:00Z"));
        assert_eq!(conditions[2].status, "False", "other conditions stay");
        assert_eq!(conditions[3].reason, NEVER_REASON);
        let marked = Node { status: engenho_controller::nodes::NodeStatus { conditions }, ..ready };
        assert!(silent_conditions(&marked, now).is_none(), "marking twice changes nothing");
        assert_eq!(ready_status(&marked.status.conditions), Some("Unknown"));
    }
}
