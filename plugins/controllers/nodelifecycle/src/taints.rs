//! The taints a node's `Ready` condition calls for: `not-ready` while it
//! reports `False`, `unreachable` while it is `Unknown`, each with
//! effects `NoSchedule` and `NoExecute`; none of them while `True`.

use chrono::{DateTime, Utc};
use engenho_controller::meta::format_time;
use engenho_controller::nodes::Taint;

/// The taint of a node whose `Ready` condition is `False`.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose `Ready` condition is `Unknown`.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The effect that evicts pods that do not tolerate it.
pub const NO_EXECUTE: &str = "NoExecute";
/// The effect that keeps new pods away.
pub const NO_SCHEDULE: &str = "NoSchedule";

/// The key of the taints a `Ready` status calls for, if any.
fn key_for(ready: Option<&str>) -> Option<&'static str> {
    match ready {
        Some("False") => Some(NOT_READY),
        Some("Unknown") => Some(UNREACHABLE),
        _ => None,
    }
}

/// `current` with the taints a `ready` status calls for, added at `now`
/// (kept as they are when present) and the others of this controller
/// removed; `None` when `current` is that already. Taints of others stay.
pub fn desired(current: &[Taint], ready: Option<&str>, now: DateTime<Utc>) -> Option<Vec<Taint>> {
    let wanted = key_for(ready);
    let ours = |taint: &Taint| {
        (taint.key == NOT_READY || taint.key == UNREACHABLE)
            && (taint.effect == NO_EXECUTE || taint.effect == NO_SCHEDULE)
    };
    let mut taints: Vec<Taint> =
        current.iter().filter(|t| !ours(t) || Some(t.key.as_str()) == wanted).cloned().collect();
    if let Some(key) = wanted {
        for effect in [NO_SCHEDULE, NO_EXECUTE] {
            if !taints.iter().any(|t| t.key == key && t.effect == effect) {
                let time_added = (effect == NO_EXECUTE).then(|| format_time(now));
                taints.push(Taint { key: key.into(), value: String::new(), effect: effect.into(), time_added });
            }
        }
    }
    (taints != current).then_some(taints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use engenho_controller::meta::parse_time;

    fn now() -> DateTime<Utc> {
        parse_time("2026-01-01T00:00:00Z").expect("a time")
    }

    fn keys(taints: &[Taint]) -> Vec<(String, String)> {
        taints.iter().map(|t| (t.key.clone(), t.effect.clone())).collect()
    }

    #[test]
    fn an_unknown_node_is_unreachable_and_a_failing_one_not_ready() {
        let unreachable = desired(&[], Some("Unknown"), now()).expect("tainted");
        assert_eq!(
            keys(&unreachable),
            [(UNREACHABLE.into(), NO_SCHEDULE.into()), (UNREACHABLE.into(), NO_EXECUTE.into())]
        );
        assert_eq!(unreachable[1].time_added.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(unreachable[0].time_added, None);
        assert!(desired(&unreachable, Some("Unknown"), now()).is_none(), "tainting twice changes nothing");
        let not_ready = desired(&unreachable, Some("False"), now()).expect("swapped");
        assert_eq!(keys(&not_ready), [(NOT_READY.into(), NO_SCHEDULE.into()), (NOT_READY.into(), NO_EXECUTE.into())]);
    }

    #[test]
    fn a_ready_node_loses_these_taints_and_keeps_others() {
        let other =
            Taint { key: "dedicated".into(), value: "gpu".into(), effect: NO_SCHEDULE.into(), time_added: None };
        let mut current = desired(&[], Some("Unknown"), now()).expect("tainted");
        current.insert(0, other.clone());
        assert_eq!(desired(&current, Some("True"), now()), Some(vec![other.clone()]));
        assert!(desired(std::slice::from_ref(&other), Some("True"), now()).is_none());
        assert!(desired(&[other], None, now()).is_none());
    }

    fn taint() -> impl proptest::strategy::Strategy<Value = Taint> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec![NOT_READY, UNREACHABLE, "dedicated", "gpu"]);
        let effect = prop::sample::select(vec![NO_SCHEDULE, NO_EXECUTE, "PreferNoSchedule"]);
        (key, effect).prop_map(|(key, effect)| Taint {
            key: key.into(),
            value: String::new(),
            effect: effect.into(),
            time_added: None,
        })
    }

    proptest::proptest! {
        /// Whatever a node's taints and `Ready` status: the result has
        /// exactly the taints the status calls for among this
        /// controller's, keeps every other taint, and a second pass
        /// changes nothing.
        #[test]
        fn taints_follow_the_status_and_leave_others(
            current in proptest::collection::vec(taint(), 0..6),
            ready in proptest::sample::select(vec![None, Some("True"), Some("False"), Some("Unknown")]),
        ) {
            let result = desired(&current, ready, now()).unwrap_or_else(|| current.clone());
            let ours = |t: &Taint| (t.key == NOT_READY || t.key == UNREACHABLE) && t.effect != "PreferNoSchedule";
            let others = |taints: &[Taint]| taints.iter().filter(|t| !ours(t)).cloned().collect::<Vec<_>>();
            proptest::prop_assert_eq!(others(&result), others(&current));
            for key in [NOT_READY, UNREACHABLE] {
                let wanted = key_for(ready) == Some(key);
                for effect in [NO_SCHEDULE, NO_EXECUTE] {
                    let present = result.iter().any(|t| t.key == key && t.effect == effect);
                    proptest::prop_assert_eq!(present, wanted, "{} {}", key, effect);
                }
            }
            proptest::prop_assert!(desired(&result, ready, now()).is_none());
        }
    }
}
