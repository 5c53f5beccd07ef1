//! What one reconcile of a DaemonSet does, decided from what was read:
//! the nodes that get a pod and the pods that go, as Kubernetes' daemon
//! controller decides them in `manage` and `rollingUpdate`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use engenho_controller::nodes::Node;
use engenho_controller::pods::Pod;
use serde_json::Value;

use crate::model::{DaemonPod, DaemonSet};
use crate::placement::{self, Fit};

/// What the planner reads.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The set.
    pub set: &'a DaemonSet,
    /// Every node.
    pub nodes: &'a [Arc<Node>],
    /// The pods the set controls.
    pub pods: &'a [Pod],
    /// The hash of the set's current revision.
    pub hash: &'a str,
    /// The time now.
    pub now: DateTime<Utc>,
}

/// The writes one reconcile makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The nodes that get a new pod.
    pub create_on: Vec<String>,
    /// The pods deleted, as (name, uid).
    pub delete: Vec<(String, String)>,
}

impl Plan {
    /// Adds a deletion of `pod`, once.
    fn delete(&mut self, pod: &Pod) {
        let entry = (pod.metadata.name.clone(), pod.metadata.uid.clone());
        if !self.delete.contains(&entry) {
            self.delete.push(entry);
        }
    }

    /// Adds a pod on `node`, once.
    fn create(&mut self, node: &str) {
        if !self.create_on.iter().any(|n| n == node) {
            self.create_on.push(node.to_owned());
        }
    }
}

/// The set's pods by the node they are on or meant for, each node's oldest
/// first; finished pods being deleted are left out.
pub fn pods_by_node(pods: &[Pod]) -> BTreeMap<&str, Vec<&Pod>> {
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in pods.iter().filter(|p| !(p.is_terminal() && p.metadata.is_deleting())) {
        if let Some(node) = pod.node() {
            by_node.entry(node).or_default().push(pod);
        }
    }
    for pods in by_node.values_mut() {
        pods.sort_by_key(|p| p.age_key());
    }
    by_node
}

/// Where the set's pod fits on each node, by node name.
pub fn fits<'a>(set: &DaemonSet, nodes: &'a [Arc<Node>]) -> BTreeMap<&'a str, Fit> {
    nodes.iter().map(|n| (n.metadata.name.as_str(), placement::fit(&set.spec.template, n))).collect()
}

/// `value` (a count or a percentage of `total`, rounded up), or `default`
/// when unset; a malformed value counts as zero.
pub fn scaled(value: Option<&Value>, total: i32, default: i32) -> i32 {
    match value {
        None | Some(Value::Null) => default,
        Some(Value::Number(n)) => n.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0).max(0),
        Some(Value::String(text)) => {
            let Some(percent) = text.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else { return 0 };
            let scaled = (percent.max(0) * i64::from(total.max(0)) + 99) / 100;
            i32::try_from(scaled).unwrap_or(i32::MAX)
        }
        Some(_) => 0,
    }
}

/// The rolling update's surge: how many nodes may run two pods.
fn max_surge(set: &DaemonSet, desired: i32) -> i32 {
    if !set.is_rolling() {
        return 0;
    }
    scaled(set.spec.update_strategy.rolling_update.max_surge.as_ref(), desired, 0)
}

/// The plan for `input`.
pub fn plan(input: &Input) -> Plan {
    let mut plan = Plan::default();
    if input.set.metadata.is_deleting() {
        return plan;
    }
    let fits = fits(input.set, input.nodes);
    let by_node = pods_by_node(input.pods);
    manage(input, &fits, &by_node, &mut plan);
    if input.set.is_rolling() {
        rolling_update(input, &fits, &by_node, &mut plan);
    }
    plan
}

/// One pod on every node that should run it, none elsewhere: creates the
/// missing, deletes finished pods, extra pods, pods on nodes that should
/// not keep them and pods on nodes that are gone.
fn manage(input: &Input, fits: &BTreeMap<&str, Fit>, by_node: &BTreeMap<&str, Vec<&Pod>>, plan: &mut Plan) {
    let surging = max_surge(input.set, 1) > 0;
    for (node, fit) in fits {
        let pods = by_node.get(node).map_or(&[][..], Vec::as_slice);
        if fit.should_run && pods.is_empty() {
            plan.create(node);
        } else if fit.should_continue {
            let mut running = Vec::new();
            for pod in pods.iter().filter(|p| !p.metadata.is_deleting()) {
                if pod.is_terminal() {
                    plan.delete(pod);
                } else {
                    running.push(*pod);
                }
            }
            if surging {
                prune_surge(input, &running, plan);
            } else {
                running.iter().skip(1).for_each(|pod| plan.delete(pod));
            }
        } else {
            pods.iter().filter(|p| !p.metadata.is_deleting()).for_each(|pod| plan.delete(pod));
        }
    }
    for (node, pods) in by_node {
        if !fits.contains_key(node) {
            pods.iter().filter(|p| !p.metadata.is_deleting()).for_each(|pod| plan.delete(pod));
        }
    }
}

/// With surge, a node keeps at most its oldest new pod and its oldest old
/// pod, and the old one only while it is ready and the new one is not yet
/// available.
fn prune_surge(input: &Input, running: &[&Pod], plan: &mut Plan) {
    let mut oldest_new = None;
    let mut oldest_old = None;
    for pod in running {
        let slot = if pod.revision() == input.hash { &mut oldest_new } else { &mut oldest_old };
        if slot.is_none() {
            *slot = Some(*pod);
        } else {
            plan.delete(pod);
        }
    }
    if let (Some(new), Some(old)) = (oldest_new, oldest_old)
        && (!old.is_ready() || new.is_available(input.set.spec.min_ready_seconds, input.now))
    {
        plan.delete(old);
    }
}

/// A node's one new pod and one old pod (either may be missing), or `None`
/// when it has more than one of either (`manage` prunes those first).
fn new_and_old<'a>(pods: &[&'a Pod], hash: &str) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let mut new = None;
    let mut old = None;
    for pod in pods.iter().filter(|p| !p.metadata.is_deleting()) {
        let slot = if pod.revision() == hash { &mut new } else { &mut old };
        if slot.replace(*pod).is_some() {
            return None;
        }
    }
    Some((new, old))
}

/// Moves nodes to the new revision within `maxUnavailable` (deleting old
/// pods for `manage` to replace) or, with `maxSurge`, by starting new pods
/// beside old ones and deleting each old pod once its new one is available.
fn rolling_update(input: &Input, fits: &BTreeMap<&str, Fit>, by_node: &BTreeMap<&str, Vec<&Pod>>, plan: &mut Plan) {
    let desired = i32::try_from(fits.values().filter(|f| f.should_run).count()).unwrap_or(i32::MAX);
    let strategy = &input.set.spec.update_strategy.rolling_update;
    let surge = max_surge(input.set, desired);
    let mut unavailable = scaled(strategy.max_unavailable.as_ref(), desired, 1);
    if desired > 0 && unavailable == 0 && surge == 0 {
        unavailable = 1;
    }
    let mut wanted = by_node.clone();
    for (node, _) in fits.iter().filter(|(_, fit)| fit.should_run) {
        wanted.entry(node).or_default();
    }
    if surge == 0 {
        replace_within_unavailability(input, &wanted, unavailable, plan);
    } else {
        replace_by_surging(input, fits, &wanted, surge, desired, plan);
    }
}

/// Deletes old pods so at most `max_unavailable` nodes lack an available
/// pod; old pods that are unavailable anyway go at once (and count).
/// `by_node` has every node that should run a pod, with or without one.
fn replace_within_unavailability(
    input: &Input,
    by_node: &BTreeMap<&str, Vec<&Pod>>,
    max_unavailable: i32,
    plan: &mut Plan,
) {
    let min_ready = input.set.spec.min_ready_seconds;
    let mut unavailable = 0;
    let mut replacements = Vec::new();
    let mut candidates = Vec::new();
    for pods in by_node.values() {
        match new_and_old(pods, input.hash) {
            None | Some((None, None) | (Some(_), Some(_))) => unavailable += 1,
            Some((Some(new), None)) => {
                if !new.is_available(min_ready, input.now) {
                    unavailable += 1;
                }
            }
            Some((None, Some(old))) => {
                if !old.is_available(min_ready, input.now) {
                    replacements.push(old);
                    unavailable += 1;
                } else if unavailable < max_unavailable {
                    candidates.push(old);
                }
            }
        }
    }
    let room = usize::try_from((max_unavailable - unavailable).max(0)).unwrap_or(0);
    replacements.into_iter().chain(candidates.into_iter().take(room)).for_each(|pod| plan.delete(pod));
}

/// Starts new pods beside old ones on at most `max_surge` nodes at once (at
/// once where the old pod is unavailable), and deletes old pods whose new
/// pod is available.
fn replace_by_surging(
    input: &Input,
    fits: &BTreeMap<&str, Fit>,
    by_node: &BTreeMap<&str, Vec<&Pod>>,
    max_surge: i32,
    desired: i32,
    plan: &mut Plan,
) {
    let min_ready = input.set.spec.min_ready_seconds;
    let mut surging = 0;
    let mut available = 0;
    let mut allowed = Vec::new();
    let mut candidates = Vec::new();
    let mut unwanted = Vec::new();
    for (node, pods) in by_node {
        let Some((new, old)) = new_and_old(pods, input.hash) else {
            surging += 1;
            continue;
        };
        let old_available = old.is_some_and(|p| p.is_available(min_ready, input.now));
        let new_available = new.is_some_and(|p| p.is_available(min_ready, input.now));
        if old_available || new_available {
            available += 1;
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) if !old_available => {
                if fits.get(node).is_some_and(|f| f.should_run) {
                    allowed.push(*node);
                } else {
                    unwanted.push(old);
                }
            }
            (None, Some(_)) => {
                if surging < max_surge {
                    candidates.push(*node);
                }
            }
            (Some(_), Some(old)) => {
                if new_available {
                    plan.delete(old);
                } else {
                    surging += 1;
                }
            }
        }
    }
    let deletable = usize::try_from((available - desired).max(0)).unwrap_or(0);
    unwanted.into_iter().take(deletable).for_each(|pod| plan.delete(pod));
    let room = usize::try_from((max_surge - surging).max(0)).unwrap_or(0);
    allowed.into_iter().chain(candidates.into_iter().take(room)).for_each(|node| plan.create(node));
}

#[cfg(test)]
mod tests {
    use super::*;
    use engenho_controller::meta::parse_time;
    use engenho_controller::revisions::REVISION_LABEL;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        parse_time("2026-12-05T04:00:00Z").expect("a time")
    }

    fn set(strategy: Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "ns", "uid": "u1", "generation": 2},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"nodeSelector": {"role": "worker"}}},
                "updateStrategy": strategy,
            },
        }))
        .expect("a set")
    }

    fn rolling() -> DaemonSet {
        set(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}))
    }

    fn nodes(names: &[&str]) -> Vec<Node> {
        names
            .iter()
            .map(|n| {
                serde_json::from_value(json!({"metadata": {"name": n, "labels": {"role": "worker"}}})).expect("a node")
            })
            .collect()
    }

    /// A pod on `node` at revision `hash`, ready or not, created at `created`.
    fn pod(name: &str, node: &str, hash: &str, ready: bool, created: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": created, "labels": {REVISION_LABEL: hash}},
            "spec": {"nodeName": node},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": "2026-12-05T03:00:00Z"}],
            },
        }))
        .expect("a pod")
    }

    fn ready(name: &str, node: &str, hash: &str) -> Pod {
        pod(name, node, hash, true, "2026-12-05T01:00:00Z")
    }

    fn run(set: &DaemonSet, nodes: &[Node], pods: &[Pod]) -> Plan {
        let nodes: Vec<Arc<Node>> = nodes.iter().cloned().map(Arc::new).collect();
        plan(&Input { set, nodes: &nodes, pods, hash: "new", now: now() })
    }

    fn deleted(plan: &Plan) -> Vec<&str> {
        plan.delete.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[test]
    fn every_eligible_node_without_a_pod_gets_one() {
        let mut all = nodes(&["a", "b"]);
        all.extend(serde_json::from_value::<Node>(json!({"metadata": {"name": "c", "labels": {"role": "db"}}})));
        let plan = run(&rolling(), &all, &[ready("p-b", "b", "new")]);
        assert_eq!(plan.create_on, vec!["a"]);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn a_pod_pinned_by_affinity_but_not_yet_bound_counts_for_its_node() {
        let mut pinned = pod("p-a", "", "new", false, "2026-12-05T01:00:00Z");
        pinned.spec.affinity = placement::pinned_affinity(&Value::Null, "a");
        let plan = run(&rolling(), &nodes(&["a"]), &[pinned]);
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn extra_finished_misplaced_and_orphaned_pods_are_deleted() {
        let mut failed = ready("p-b", "b", "new");
        failed.status.phase = "Failed".into();
        let mut db: Vec<Node> = nodes(&["a", "b"]);
        db.extend(serde_json::from_value::<Node>(json!({"metadata": {"name": "c", "labels": {"role": "db"}}})));
        let pods = [
            ready("p-a1", "a", "new"),
            pod("p-a2", "a", "new", true, "2026-12-05T02:00:00Z"),
            failed,
            ready("p-c", "c", "new"),
            ready("p-gone", "gone", "new"),
        ];
        let plan = run(&rolling(), &db, &pods);
        assert_eq!(deleted(&plan), vec!["p-a2", "p-b", "p-c", "p-gone"]);
        assert!(plan.create_on.is_empty(), "the failed pod's replacement comes once it is gone");
    }

    #[test]
    fn a_rolling_update_replaces_at_most_max_unavailable_pods() {
        let all = nodes(&["a", "b", "c"]);
        let old = [ready("p-a", "a", "old"), ready("p-b", "b", "old"), ready("p-c", "c", "old")];
        assert_eq!(deleted(&run(&rolling(), &all, &old)), vec!["p-a"]);
        // One node is between pods: nothing more goes.
        let replacing = [ready("p-b", "b", "old"), ready("p-c", "c", "old")];
        let plan = run(&rolling(), &all, &replacing);
        assert!(plan.delete.is_empty());
        assert_eq!(plan.create_on, vec!["a"]);
        // A new pod that is not ready yet holds the update too.
        let waiting =
            [pod("p-a", "a", "new", false, "2026-12-05T03:00:00Z"), ready("p-b", "b", "old"), ready("p-c", "c", "old")];
        assert!(run(&rolling(), &all, &waiting).delete.is_empty());
        let wide = set(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}));
        assert_eq!(deleted(&run(&wide, &all, &old)), vec!["p-a", "p-b"]);
    }

    #[test]
    fn unavailable_old_pods_are_replaced_regardless_of_the_budget() {
        let all = nodes(&["a", "b", "c"]);
        let pods =
            [ready("p-a", "a", "old"), pod("p-b", "b", "old", false, "2026-12-05T01:00:00Z"), ready("p-c", "c", "old")];
        assert_eq!(deleted(&run(&rolling(), &all, &pods)), vec!["p-b"]);
    }

    #[test]
    fn on_delete_leaves_old_pods() {
        let on_delete = set(json!({"type": "OnDelete"}));
        let old = [ready("p-a", "a", "old"), ready("p-b", "b", "old")];
        assert_eq!(run(&on_delete, &nodes(&["a", "b"]), &old), Plan::default());
    }

    #[test]
    fn a_surging_update_starts_new_pods_beside_old_ones_then_removes_the_old() {
        let surge = set(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}));
        let all = nodes(&["a", "b"]);
        let old = [ready("p-a", "a", "old"), ready("p-b", "b", "old")];
        let start = run(&surge, &all, &old);
        assert_eq!((start.create_on.clone(), start.delete.len()), (vec!["a".to_owned()], 0));
        let starting =
            [ready("p-a", "a", "old"), pod("q-a", "a", "new", false, "2026-12-05T03:30:00Z"), ready("p-b", "b", "old")];
        assert_eq!(run(&surge, &all, &starting), Plan::default());
        let started = [ready("p-a", "a", "old"), ready("q-a", "a", "new"), ready("p-b", "b", "old")];
        let next = run(&surge, &all, &started);
        assert_eq!(deleted(&next), vec!["p-a"]);
        assert_eq!(next.create_on, vec!["b"], "node a's surge ends as its old pod goes");
    }

    #[test]
    fn a_set_being_deleted_is_left_alone() {
        let mut owner = rolling();
        owner.metadata.deletion_timestamp = Some("2026-12-05T04:00:00Z".into());
        assert_eq!(run(&owner, &nodes(&["a"]), &[]), Plan::default());
    }

    #[test]
    fn counts_and_percentages_scale_rounding_up() {
        assert_eq!(scaled(None, 10, 1), 1);
        assert_eq!(scaled(Some(&json!(3)), 10, 1), 3);
        assert_eq!(scaled(Some(&json!("25%")), 10, 1), 3);
        assert_eq!(scaled(Some(&json!("0%")), 10, 1), 0);
        assert_eq!(scaled(Some(&json!("many")), 10, 1), 0);
    }

    /// What a node has in a generated scenario.
    #[derive(Debug, Clone, Copy)]
    enum Has {
        Nothing,
        Old { available: bool },
        New { available: bool },
        Both { new_available: bool },
    }

    fn has() -> impl proptest::strategy::Strategy<Value = Has> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Has::Nothing),
            any::<bool>().prop_map(|available| Has::Old { available }),
            any::<bool>().prop_map(|available| Has::New { available }),
            any::<bool>().prop_map(|new_available| Has::Both { new_available }),
        ]
    }

    /// The pods of a scenario, one or two per node `n0`, `n1`, …
    fn scenario_pods(layout: &[Has]) -> Vec<Pod> {
        let at = |i: usize, hash: &str, available: bool| {
            pod(&format!("{hash}-{i}"), &format!("n{i}"), hash, available, "2026-12-05T01:00:00Z")
        };
        layout
            .iter()
            .enumerate()
            .flat_map(|(i, has)| match *has {
                Has::Nothing => vec![],
                Has::Old { available } => vec![at(i, "old", available)],
                Has::New { available } => vec![at(i, "new", available)],
                Has::Both { new_available } => vec![at(i, "old", true), at(i, "new", new_available)],
            })
            .collect()
    }

    fn scenario_nodes(count: usize) -> Vec<Node> {
        let names: Vec<String> = (0..count).map(|i| format!("n{i}")).collect();
        nodes(&names.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Nodes without an available pod once `plan`'s deletions are done.
    fn unavailable_after(pods: &[Pod], count: usize, plan: &Plan) -> usize {
        (0..count)
            .filter(|i| {
                let node = format!("n{i}");
                !pods.iter().any(|p| {
                    p.spec.node_name == node
                        && p.is_available(0, now())
                        && !plan.delete.iter().any(|(name, _)| *name == p.metadata.name)
                })
            })
            .count()
    }

    proptest::proptest! {
        /// Goal: without surge, an update never leaves more nodes without
        /// an available pod than maxUnavailable (or than were so already),
        /// and never deletes a new pod. Method: random nodes, each with no
        /// pod, an old or a new pod (available or not).
        #[test]
        fn an_update_stays_within_max_unavailable(
            layout in proptest::collection::vec(has(), 1..10),
            max_unavailable in 1..4_i32,
        ) {
            let layout: Vec<Has> = layout.into_iter().map(|h| if let Has::Both { .. } = h { Has::Nothing } else { h }).collect();
            let owner = set(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}}));
            let pods = scenario_pods(&layout);
            let plan = run(&owner, &scenario_nodes(layout.len()), &pods);
            let before = unavailable_after(&pods, layout.len(), &Plan::default());
            let after = unavailable_after(&pods, layout.len(), &plan);
            let bound = usize::try_from(max_unavailable).unwrap_or(0).max(before);
            proptest::prop_assert!(after <= bound, "{after} unavailable, bound {bound}: {plan:?}");
            proptest::prop_assert!(plan.delete.iter().all(|(name, _)| name.starts_with("old-")));
        }

        /// Goal: with surge, no node loses its available pod (an old pod
        /// goes only when its node's new pod is available) and at most
        /// maxSurge nodes run two pods. Method: random nodes, each with no
        /// pod, an old, a new, or both.
        #[test]
        fn a_surging_update_keeps_every_node_available_within_max_surge(
            layout in proptest::collection::vec(has(), 1..10),
            max_surge in 1..4_i32,
        ) {
            let owner = set(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": max_surge}}));
            let pods = scenario_pods(&layout);
            let plan = run(&owner, &scenario_nodes(layout.len()), &pods);
            for (i, has) in layout.iter().enumerate() {
                let node = format!("n{i}");
                let deletes_old = plan.delete.iter().any(|(name, _)| *name == format!("old-{i}"));
                match *has {
                    Has::Old { available: true } => proptest::prop_assert!(!deletes_old),
                    Has::Both { new_available } => proptest::prop_assert_eq!(deletes_old, new_available),
                    _ => {}
                }
                let creates = plan.create_on.contains(&node);
                let creatable = matches!(has, Has::Nothing | Has::Old { .. });
                proptest::prop_assert!(!creates || creatable);
            }
            let doubled = layout
                .iter()
                .enumerate()
                .filter(|(i, has)| match has {
                    Has::Both { .. } => !plan.delete.iter().any(|(name, _)| *name == format!("old-{i}")),
                    Has::Old { available: true } => plan.create_on.contains(&format!("n{i}")),
                    _ => false,
                })
                .count();
            let before = layout.iter().filter(|h| matches!(h, Has::Both { new_available: false })).count();
            let bound = usize::try_from(max_surge).unwrap_or(0).max(before);
            proptest::prop_assert!(doubled <= bound, "{doubled} doubled, bound {bound}: {plan:?}");
        }
    }
}
