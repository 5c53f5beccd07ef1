//! What one look at a node calls for: its conditions when it fell
//! silent, its taints, the pods to mark not ready and to evict, and when
//! to look again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use engenho_controller::meta::{Condition, format_time, set_condition};
use engenho_controller::nodes::{Node, Taint};
use engenho_controller::pods::Pod;

use crate::eviction::{Verdict, verdict};
use crate::health::{last_heard, ready_status, silent_conditions};
use crate::model::Lease;
use crate::taints::{self, NO_EXECUTE};

/// How often a node with `NoExecute` taints is looked at again, for pods
/// bound to it since.
pub const TAINTED_RECHECK: Duration = Duration::from_secs(10);

/// What to do about one node.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Its new conditions, when it fell silent.
    pub conditions: Option<Vec<Condition>>,
    /// Whether its `Ready` condition turns from `True` now.
    pub became_not_ready: bool,
    /// Its new taints, when they change.
    pub taints: Option<Vec<Taint>>,
    /// Pods whose `Ready` condition turns `False`, with their new
    /// conditions.
    pub mark_not_ready: Vec<(&'a Pod, Vec<Condition>)>,
    /// Pods to evict now, with their conditions marking them as such.
    pub evict: Vec<(&'a Pod, Vec<Condition>)>,
    /// When to look again.
    pub requeue: Option<Duration>,
}

/// The plan for `node` (with its `lease` and the `pods` bound to it) at
/// `now`, when a node silent for longer than `grace` is unreachable.
pub fn plan<'a>(node: &Node, lease: Option<&Lease>, pods: &'a [Pod], now: DateTime<Utc>, grace: Duration) -> Plan<'a> {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let deadline = last_heard(node, lease).and_then(|heard| heard.checked_add_signed(grace));
    let silent = deadline.is_none_or(|deadline| now > deadline);
    let conditions = if silent { silent_conditions(node, now) } else { None };
    let before = ready_status(&node.status.conditions);
    let after = conditions.as_deref().map_or(before, ready_status);
    let became_not_ready = before == Some("True") && after != Some("True");
    let taints = taints::desired(&node.spec.taints, conditions.as_deref().unwrap_or(&node.status.conditions), now);
    let current_taints = taints.as_deref().unwrap_or(&node.spec.taints);
    let mut plan = Plan { conditions: None, became_not_ready, taints: None, ..Plan::default() };
    let mut next: Vec<DateTime<Utc>> = Vec::new();
    if !silent && let Some(deadline) = deadline {
        next.push(deadline + chrono::Duration::seconds(1));
    }
    if current_taints.iter().any(|t| t.effect == NO_EXECUTE) {
        next.push(now + chrono::Duration::from_std(TAINTED_RECHECK).unwrap_or(chrono::Duration::MAX));
    }
    for pod in pods {
        let not_ready = matches!(after, Some("False" | "Unknown")).then(|| not_ready_conditions(pod, now)).flatten();
        match verdict(pod, current_taints, now) {
            Verdict::Evict => {
                let mut conditions = not_ready.unwrap_or_else(|| pod.status.conditions.clone());
                set_condition(&mut conditions, disruption_target(now));
                plan.evict.push((pod, conditions));
                continue;
            }
            Verdict::EvictAt(due) => next.push(due),
            Verdict::Stay => {}
        }
        if let Some(conditions) = not_ready {
            plan.mark_not_ready.push((pod, conditions));
        }
    }
    plan.requeue = next.into_iter().min().map(|at| (at - now).to_std().unwrap_or(Duration::from_secs(1)));
    plan.conditions = conditions;
    plan.taints = taints;
    plan
}

/// The condition of a pod the taint manager deletes.
fn disruption_target(now: DateTime<Utc>) -> Condition {
    Condition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: "DeletionByTaintManager".into(),
        message: "Taint manager: deleting due to NoExecute taint".into(),
        last_transition_time: Some(format_time(now)),
        ..Condition::default()
    }
}

/// `pod`'s conditions with `Ready` turned `False`, if it has a `Ready`
/// condition that is not `False` already.
fn not_ready_conditions(pod: &Pod, now: DateTime<Utc>) -> Option<Vec<Condition>> {
    let mut conditions = pod.status.conditions.clone();
    let ready = conditions.iter_mut().find(|c| c.type_ == "Ready" && c.status != "False")?;
    ready.status = "False".into();
    ready.last_transition_time = Some(format_time(now));
    Some(conditions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use engenho_controller::meta::parse_time;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(text).expect("a time")
    }

    const GRACE: Duration = Duration::from_secs(40);

    fn node(ready: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n2", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"taints": taints},
            "status": {"conditions": [
                {"type": "Ready", "status": ready, "lastHeartbeatTime": "2026-01-01T00:00:00Z"},
            ]},
        }))
        .expect("a node")
    }

    fn lease(renewed: &str) -> Lease {
        serde_json::from_value(json!({"spec": {"renewTime": renewed}})).expect("a lease")
    }

    fn pod(name: &str, tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": "n2", "tolerations": tolerations},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .expect("a pod")
    }

    #[test]
    fn a_reporting_node_is_looked_at_again_when_its_lease_would_expire() {
        let pods = [pod("a", json!([]))];
        let plan = plan(
            &node("True", json!([])),
            Some(&lease("2026-01-01T00:01:00.000000Z")),
            &pods,
            at("2026-01-01T00:01:10Z"),
            GRACE,
        );
        assert!(plan.conditions.is_none() && plan.taints.is_none() && plan.evict.is_empty());
        assert!(plan.mark_not_ready.is_empty() && !plan.became_not_ready);
        assert_eq!(plan.requeue, Some(Duration::from_secs(31)));
    }

    #[test]
    fn a_silent_node_turns_unknown_tainted_and_its_pods_go() {
        let pods = [
            pod("a", json!([])),
            pod(
                "b",
                json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}]),
            ),
        ];
        let now = at("2026-01-01T00:01:41Z");
        let plan = plan(&node("True", json!([])), Some(&lease("2026-01-01T00:01:00.000000Z")), &pods, now, GRACE);
        let conditions = plan.conditions.as_deref().expect("marked");
        assert_eq!(ready_status(conditions), Some("Unknown"));
        assert!(plan.became_not_ready);
        let taints = plan.taints.as_deref().expect("tainted");
        assert!(taints.iter().any(|t| t.key == taints::UNREACHABLE && t.effect == NO_EXECUTE));
        assert_eq!(plan.evict.iter().map(|(p, _)| p.metadata.name.as_str()).collect::<Vec<_>>(), ["a"]);
        let evicted = &plan.evict[0].1;
        assert_eq!(ready_status(evicted), Some("False"));
        let target = engenho_controller::meta::condition(evicted, "DisruptionTarget").expect("marked");
        assert_eq!((target.status.as_str(), target.reason.as_str()), ("True", "DeletionByTaintManager"));
        assert_eq!(plan.mark_not_ready.len(), 1, "the pod that stays is marked not ready");
        assert_eq!(plan.mark_not_ready[0].0.metadata.name, "b");
        assert_eq!(ready_status(&plan.mark_not_ready[0].1), Some("False"));
        assert_eq!(plan.requeue, Some(Duration::from_secs(10)), "tainted nodes are looked at again");
    }

    #[test]
    fn a_lease_renewed_in_time_keeps_a_node_with_an_old_heartbeat() {
        let now = at("2026-01-01T00:10:00Z");
        let fresh = plan(&node("True", json!([])), Some(&lease("2026-01-01T00:09:59.000000Z")), &[], now, GRACE);
        assert!(fresh.conditions.is_none() && fresh.taints.is_none());
        let stale = plan(&node("True", json!([])), None, &[], now, GRACE);
        assert!(stale.conditions.is_some());
    }

    #[test]
    fn a_node_ready_again_loses_its_taints() {
        let tainted = json!([
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"},
        ]);
        let now = at("2026-01-01T00:10:00Z");
        let plan = plan(&node("True", tainted), Some(&lease("2026-01-01T00:09:59.000000Z")), &[], now, GRACE);
        assert_eq!(plan.taints, Some(vec![]));
        assert!(plan.conditions.is_none());
    }

    #[test]
    fn a_node_reporting_not_ready_is_tainted_not_ready_and_its_pods_marked() {
        let pods = [pod("a", json!([{"operator": "Exists"}]))];
        let now = at("2026-01-01T00:00:10Z");
        let plan = plan(&node("False", json!([])), Some(&lease("2026-01-01T00:00:09.000000Z")), &pods, now, GRACE);
        assert!(plan.conditions.is_none());
        let taints = plan.taints.as_deref().expect("tainted");
        assert!(taints.iter().all(|t| t.key == taints::NOT_READY));
        assert!(plan.evict.is_empty(), "a pod tolerating everything stays");
        assert_eq!(plan.mark_not_ready.len(), 1);
        assert!(!plan.became_not_ready);
    }
}
