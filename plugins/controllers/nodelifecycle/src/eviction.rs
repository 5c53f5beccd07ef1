//! Taint-based eviction: a pod on a node with `NoExecute` taints goes at
//! once when it does not tolerate them all, after the shortest
//! `tolerationSeconds` of the tolerations it uses (counted from when the
//! taint was added) when it does, and never when they tolerate it for
//! ever.

use chrono::{DateTime, Duration, Utc};
use engenho_controller::meta::parse_time;
use engenho_controller::nodes::Taint;
use engenho_controller::pods::Pod;

use crate::taints::NO_EXECUTE;

/// What becomes of a pod on a tainted node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It stays.
    Stay,
    /// It is deleted now.
    Evict,
    /// It is deleted at this time.
    EvictAt(DateTime<Utc>),
}

/// The verdict on `pod` under the node's `taints` at `now`.
pub fn verdict(pod: &Pod, taints: &[Taint], now: DateTime<Utc>) -> Verdict {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == NO_EXECUTE).collect();
    if no_execute.is_empty() || pod.metadata.is_deleting() {
        return Verdict::Stay;
    }
    let mut shortest: Option<i64> = None;
    for taint in &no_execute {
        let Some(toleration) = pod.spec.tolerations.iter().find(|t| t.tolerates(taint)) else {
            return Verdict::Evict;
        };
        if let Some(seconds) = toleration.toleration_seconds {
            shortest = Some(shortest.map_or(seconds, |s| s.min(seconds)));
        }
    }
    let Some(seconds) = shortest else { return Verdict::Stay };
    let added = no_execute.iter().filter_map(|t| t.time_added.as_deref().and_then(parse_time)).min().unwrap_or(now);
    let due = added + Duration::seconds(seconds.max(0));
    if due <= now { Verdict::Evict } else { Verdict::EvictAt(due) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(text).expect("a time")
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"tolerations": tolerations}})).expect("a pod")
    }

    fn unreachable() -> Vec<Taint> {
        vec![
            Taint { key: crate::taints::UNREACHABLE.into(), effect: "NoSchedule".into(), ..Taint::default() },
            Taint {
                key: crate::taints::UNREACHABLE.into(),
                effect: NO_EXECUTE.into(),
                time_added: Some("2026-01-01T00:00:00Z".into()),
                ..Taint::default()
            },
        ]
    }

    #[test]
    fn pods_that_do_not_tolerate_the_taint_go_at_once() {
        let now = at("2026-01-01T00:00:01Z");
        assert_eq!(verdict(&pod(json!([])), &unreachable(), now), Verdict::Evict);
        let other = pod(json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]));
        assert_eq!(verdict(&other, &unreachable(), now), Verdict::Evict);
        let schedule_only = pod(json!([{"operator": "Exists", "effect": "NoSchedule"}]));
        assert_eq!(verdict(&schedule_only, &unreachable(), now), Verdict::Evict);
        assert_eq!(verdict(&pod(json!([])), &unreachable()[..1], now), Verdict::Stay, "NoSchedule evicts nobody");
    }

    #[test]
    fn tolerating_pods_go_after_their_toleration_seconds_or_never() {
        let now = at("2026-01-01T00:00:10Z");
        let timed = pod(json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ]));
        assert_eq!(verdict(&timed, &unreachable(), now), Verdict::EvictAt(at("2026-01-01T00:05:00Z")));
        assert_eq!(verdict(&timed, &unreachable(), at("2026-01-01T00:05:00Z")), Verdict::Evict);
        let zero = pod(json!([{"operator": "Exists", "tolerationSeconds": 0}]));
        assert_eq!(verdict(&zero, &unreachable(), now), Verdict::Evict);
        let forever = pod(json!([{"operator": "Exists"}]));
        assert_eq!(verdict(&forever, &unreachable(), now), Verdict::Stay);
        let equal = pod(json!([{"key": "node.kubernetes.io/unreachable", "value": "", "effect": "NoExecute"}]));
        assert_eq!(verdict(&equal, &unreachable(), now), Verdict::Stay);
        let wrong_value = pod(json!([{"key": "node.kubernetes.io/unreachable", "value": "x"}]));
        assert_eq!(verdict(&wrong_value, &unreachable(), now), Verdict::Evict);
    }

    #[test]
    fn terminating_pods_are_left_alone() {
        let mut terminating = pod(json!([]));
        terminating.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
        assert_eq!(verdict(&terminating, &unreachable(), at("2026-01-01T00:00:01Z")), Verdict::Stay);
    }
}
