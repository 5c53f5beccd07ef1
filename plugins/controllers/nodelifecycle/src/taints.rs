//! The taints a node's conditions call for, as kube-controller-manager's
//! node lifecycle controller sets them: `not-ready` while `Ready` reports
//! `False`, `unreachable` while it is `Unknown`, each with effects
//! `NoSchedule` and `NoExecute`; and `NoSchedule` taints for each pressure
//! the node reports (`memory-pressure`, `disk-pressure`, `pid-pressure`,
//! Kubernetes' TaintNodesByCondition). None of them while the node is
//! ready and unpressed.

use chrono::{DateTime, Utc};
use engenho_controller::meta::{Condition, condition, format_time};
use engenho_controller::nodes::Taint;

/// The taint of a node whose `Ready` condition is `False`.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose `Ready` condition is `Unknown`.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The effect that evicts pods that do not tolerate it.
pub const NO_EXECUTE: &str = "NoExecute";
/// The effect that keeps new pods away.
pub const NO_SCHEDULE: &str = "NoSchedule";

/// Each pressure condition and the `NoSchedule` taint it calls for while
/// `True`.
pub const PRESSURE_TAINTS: [(&str, &str); 3] = [
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
];

/// The key of the taints a `Ready` status calls for, if any.
fn key_for(ready: Option<&str>) -> Option<&'static str> {
    match ready {
        Some("False") => Some(NOT_READY),
        Some("Unknown") => Some(UNREACHABLE),
        _ => None,
    }
}

/// Whether this controller sets `taint` (and so removes it when no
/// condition calls for it).
fn ours(taint: &Taint) -> bool {
    ((taint.key == NOT_READY || taint.key == UNREACHABLE)
        && (taint.effect == NO_EXECUTE || taint.effect == NO_SCHEDULE))
        || (taint.effect == NO_SCHEDULE && PRESSURE_TAINTS.iter().any(|(_, key)| taint.key == *key))
}

/// The (key, effect) pairs `conditions` call for.
fn wanted(conditions: &[Condition]) -> Vec<(&'static str, &'static str)> {
    let ready = condition(conditions, "Ready").map(|c| c.status.as_str());
    let mut wanted: Vec<(&str, &str)> =
        key_for(ready).into_iter().flat_map(|key| [(key, NO_SCHEDULE), (key, NO_EXECUTE)]).collect();
    for (kind, key) in PRESSURE_TAINTS {
        if condition(conditions, kind).is_some_and(|c| c.status == "True") {
            wanted.push((key, NO_SCHEDULE));
        }
    }
    wanted
}

/// `current` with the taints `conditions` call for, added at `now` (kept
/// as they are when present) and the others of this controller removed;
/// `None` when `current` is that already. Taints of others stay.
pub fn desired(current: &[Taint], conditions: &[Condition], now: DateTime<Utc>) -> Option<Vec<Taint>> {
    let wanted = wanted(conditions);
    let mut taints: Vec<Taint> =
        current.iter().filter(|t| !ours(t) || wanted.contains(&(t.key.as_str(), t.effect.as_str()))).cloned().collect();
    for (key, effect) in wanted {
        if !taints.iter().any(|t| t.key == key && t.effect == effect) {
            let time_added = (effect == NO_EXECUTE).then(|| format_time(now));
            taints.push(Taint { key: key.into(), value: String::new(), effect: effect.into(), time_added });
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

    fn conditions(pairs: &[(&str, &str)]) -> Vec<Condition> {
        pairs
            .iter()
            .map(|(kind, status)| Condition { type_: (*kind).into(), status: (*status).into(), ..Condition::default() })
            .collect()
    }

    fn ready(status: Option<&str>) -> Vec<Condition> {
        status.map(|status| conditions(&[("Ready", status)])).unwrap_or_default()
    }

    fn keys(taints: &[Taint]) -> Vec<(String, String)> {
        taints.iter().map(|t| (t.key.clone(), t.effect.clone())).collect()
    }

    #[test]
    fn an_unknown_node_is_unreachable_and_a_failing_one_not_ready() {
        let unreachable = desired(&[], &ready(Some("Unknown")), now()).expect("tainted");
        assert_eq!(
            keys(&unreachable),
            [(UNREACHABLE.into(), NO_SCHEDULE.into()), (UNREACHABLE.into(), NO_EXECUTE.into())]
        );
        assert_eq!(unreachable[1].time_added.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(unreachable[0].time_added, None);
        assert!(desired(&unreachable, &ready(Some("Unknown")), now()).is_none(), "tainting twice changes nothing");
        let not_ready = desired(&unreachable, &ready(Some("False")), now()).expect("swapped");
        assert_eq!(keys(&not_ready), [(NOT_READY.into(), NO_SCHEDULE.into()), (NOT_READY.into(), NO_EXECUTE.into())]);
    }

    #[test]
    fn each_pressure_keeps_new_pods_away_while_it_lasts() {
        // Goal: kube's TaintNodesByCondition: a pressure condition `True`
        // taints the node NoSchedule with its key; the taint goes with the
        // pressure, and a silent node's `Unknown` pressures taint nothing.
        let pressed = conditions(&[
            ("Ready", "True"),
            ("MemoryPressure", "False"),
            ("DiskPressure", "True"),
            ("PIDPressure", "True"),
        ]);
        let tainted = desired(&[], &pressed, now()).expect("tainted");
        assert_eq!(
            keys(&tainted),
            [
                ("node.kubernetes.io/disk-pressure".into(), NO_SCHEDULE.into()),
                ("node.kubernetes.io/pid-pressure".into(), NO_SCHEDULE.into())
            ]
        );
        assert!(desired(&tainted, &pressed, now()).is_none());
        let relieved = conditions(&[("Ready", "True"), ("DiskPressure", "False"), ("PIDPressure", "False")]);
        assert_eq!(desired(&tainted, &relieved, now()), Some(Vec::new()));
        let silent = conditions(&[("Ready", "Unknown"), ("DiskPressure", "Unknown")]);
        let unreachable = desired(&tainted, &silent, now()).expect("unreachable");
        assert!(unreachable.iter().all(|t| t.key == UNREACHABLE), "{unreachable:?}");
    }

    #[test]
    fn a_ready_node_loses_these_taints_and_keeps_others() {
        let other =
            Taint { key: "dedicated".into(), value: "gpu".into(), effect: NO_SCHEDULE.into(), time_added: None };
        let mut current = desired(&[], &ready(Some("Unknown")), now()).expect("tainted");
        current.insert(0, other.clone());
        assert_eq!(desired(&current, &ready(Some("True")), now()), Some(vec![other.clone()]));
        assert!(desired(std::slice::from_ref(&other), &ready(Some("True")), now()).is_none());
        assert!(desired(&[other], &ready(None), now()).is_none());
    }

    fn taint() -> impl proptest::strategy::Strategy<Value = Taint> {
        use proptest::prelude::*;
        let key =
            prop::sample::select(vec![NOT_READY, UNREACHABLE, "node.kubernetes.io/disk-pressure", "dedicated", "gpu"]);
        let effect = prop::sample::select(vec![NO_SCHEDULE, NO_EXECUTE, "PreferNoSchedule"]);
        (key, effect).prop_map(|(key, effect)| Taint {
            key: key.into(),
            value: String::new(),
            effect: effect.into(),
            time_added: None,
        })
    }

    proptest::proptest! {
        /// Whatever a node's taints, `Ready` and `DiskPressure` statuses:
        /// the result has exactly the taints the statuses call for among
        /// this controller's, keeps every other taint, and a second pass
        /// changes nothing.
        #[test]
        fn taints_follow_the_status_and_leave_others(
            current in proptest::collection::vec(taint(), 0..6),
            status in proptest::sample::select(vec![None, Some("True"), Some("False"), Some("Unknown")]),
            disk in proptest::sample::select(vec!["True", "False", "Unknown"]),
        ) {
            let mut conditions = ready(status);
            conditions.push(Condition { type_: "DiskPressure".into(), status: disk.into(), ..Condition::default() });
            let result = desired(&current, &conditions, now()).unwrap_or_else(|| current.clone());
            let others = |taints: &[Taint]| taints.iter().filter(|t| !ours(t)).cloned().collect::<Vec<_>>();
            proptest::prop_assert_eq!(others(&result), others(&current));
            for key in [NOT_READY, UNREACHABLE] {
                let wanted = key_for(status) == Some(key);
                for effect in [NO_SCHEDULE, NO_EXECUTE] {
                    let present = result.iter().any(|t| t.key == key && t.effect == effect);
                    proptest::prop_assert_eq!(present, wanted, "{} {}", key, effect);
                }
            }
            let pressed = result.iter().any(|t| t.key == "node.kubernetes.io/disk-pressure" && t.effect == NO_SCHEDULE);
            proptest::prop_assert_eq!(pressed, disk == "True");
            proptest::prop_assert!(desired(&result, &conditions, now()).is_none());
        }
    }
}
