//! The plugin's filter, scores and configuration.

use engenho_scheduler::testsuite::{Draws, labelled_node, labelled_pod, labels, match_labels, taint};
use engenho_scheduler::{
    Change, InclusionPolicy, Instance, Judge, LabelSelector, Node, SpreadConstraint, TaintEffect, UnsatisfiableAction,
};

use super::*;
use engenho_scheduler::Verdict;

fn zoned(name: &str, zone: Option<&str>) -> Node {
    match zone {
        Some(zone) => labelled_node(name, &[(ZONE_KEY, zone), (HOSTNAME_KEY, name)]),
        None => labelled_node(name, &[(HOSTNAME_KEY, name)]),
    }
}

/// Nodes a and b in zone 1, c in zone 2, d without a zone, and `placed`.
fn instance(config: &str, nodes: Vec<Node>, placed: Vec<(u32, Pod)>) -> Instance<PodTopologySpread> {
    let (mut instance, abilities) = Instance::<PodTopologySpread>::configure(config).expect("configures");
    assert_eq!(abilities, Abilities { filters: true, scores: true, reads_pods: true, pod_parts: crate::POD_PARTS });
    let mut changes: Vec<Change> =
        nodes.into_iter().zip(0..).map(|(node, index)| Change::NodeSet(index, node)).collect();
    changes.extend(placed.into_iter().map(|(index, pod)| Change::PodPlaced(index, pod)));
    instance.apply(changes);
    instance
}

fn zones() -> Vec<Node> {
    vec![zoned("a", Some("1")), zoned("b", Some("1")), zoned("c", Some("2")), zoned("d", None)]
}

fn web(uid: &str) -> Pod {
    labelled_pod(uid, &[("app", "web")])
}

fn constraint(
    key: &str,
    max_skew: u32,
    action: UnsatisfiableAction,
    selector: Option<LabelSelector>,
) -> SpreadConstraint {
    SpreadConstraint {
        max_skew,
        topology_key: key.into(),
        when_unsatisfiable: action,
        selector,
        min_domains: 0,
        node_affinity_policy: InclusionPolicy::Honor,
        node_taints_policy: InclusionPolicy::Ignore,
    }
}

fn spreading(uid: &str, constraints: Vec<SpreadConstraint>) -> Pod {
    let mut pod = web(uid);
    pod.spread_constraints = constraints;
    pod
}

fn by_zone(max_skew: u32) -> SpreadConstraint {
    constraint(ZONE_KEY, max_skew, UnsatisfiableAction::DoNotSchedule, Some(match_labels(&[("app", "web")])))
}

fn unfit() -> Verdict {
    Verdict::Unfit(vec!["node(s) didn't match pod topology spread constraints".into()])
}

fn missing_label() -> Verdict {
    Verdict::Unresolvable(vec!["node(s) didn't match pod topology spread constraints (missing required label)".into()])
}

const ALL: [u32; 4] = [0, 1, 2, 3];

#[test]
fn skew_past_the_bound_is_unfit_and_missing_keys_unresolvable() {
    // Goal: zone 1 holds two matching pods, zone 2 none: the pod fits
    // only zone 2; the node without a zone is refused unresolvably.
    let mut instance = instance("{}", zones(), vec![(0, web("w0")), (1, web("w1"))]);
    let pod = spreading("p", vec![by_zone(1)]);
    assert_eq!(
        instance.filter(&pod, &ALL, &Assumptions::default()),
        vec![unfit(), unfit(), Verdict::Fits, missing_label()]
    );
    let lenient = spreading("p", vec![by_zone(3)]);
    assert_eq!(
        instance.filter(&lenient, &ALL, &Assumptions::default()),
        vec![Verdict::Fits, Verdict::Fits, Verdict::Fits, missing_label()]
    );
}

#[test]
fn min_domains_treats_the_minimum_as_zero() {
    // Goal: with fewer domains than minDomains the global minimum is 0.
    let mut instance = instance("{}", zones(), vec![(0, web("w0")), (2, web("w1"))]);
    let pod = spreading("p", vec![by_zone(1)]);
    assert_eq!(instance.filter(&pod, &[0, 2], &Assumptions::default()), vec![Verdict::Fits, Verdict::Fits]);
    let mut wanting_three = by_zone(1);
    wanting_three.min_domains = 3;
    let pod = spreading("p", vec![wanting_three]);
    assert_eq!(instance.filter(&pod, &[0, 2], &Assumptions::default()), vec![unfit(), unfit()]);
}

#[test]
fn inclusion_policies_narrow_the_domains_counted() {
    // Goal: with nodeAffinityPolicy Honor, zones the pod's node selector
    // rules out are not domains; with nodeTaintsPolicy Honor, neither are
    // nodes with untolerated taints; Ignore counts them.
    let mut nodes = zones();
    for node in &mut nodes[..2] {
        node.labels.extend(labels(&[("disk", "ssd")]));
    }
    let mut instance = instance("{}", nodes, vec![(0, web("w0"))]);
    let mut pod = spreading("p", vec![by_zone(1)]);
    pod.node_selector = labels(&[("disk", "ssd")]);
    assert_eq!(instance.filter(&pod, &[0], &Assumptions::default()), vec![Verdict::Fits]);
    pod.spread_constraints[0].node_affinity_policy = InclusionPolicy::Ignore;
    assert_eq!(instance.filter(&pod, &[0], &Assumptions::default()), vec![unfit()]);

    let mut tainted = zoned("c", Some("2"));
    tainted.taints = vec![taint("dedicated", "x", TaintEffect::NoSchedule)];
    instance.apply([Change::NodeSet(2, tainted)]);
    let mut pod = spreading("p", vec![by_zone(1)]);
    assert_eq!(instance.filter(&pod, &[0], &Assumptions::default()), vec![unfit()]);
    pod.spread_constraints[0].node_taints_policy = InclusionPolicy::Honor;
    assert_eq!(instance.filter(&pod, &[0], &Assumptions::default()), vec![Verdict::Fits]);
}

#[test]
fn selectors_and_namespaces_decide_what_counts() {
    // Goal: only pods of the pod's namespace count; a constraint without
    // a selector counts nothing, not even the pod; an empty selector
    // counts no placed pod but the pod itself.
    let mut elsewhere = web("other");
    elsewhere.namespace = "other".into();
    let mut instance = instance("{}", zones(), vec![(0, elsewhere.clone()), (0, elsewhere)]);
    let pod = spreading("p", vec![by_zone(1)]);
    assert_eq!(instance.filter(&pod, &[0], &Assumptions::default()), vec![Verdict::Fits]);
    instance.apply([Change::PodPlaced(0, web("w0"))]);
    let blind = spreading("p", vec![constraint(ZONE_KEY, 1, UnsatisfiableAction::DoNotSchedule, None)]);
    assert_eq!(instance.filter(&blind, &[0], &Assumptions::default()), vec![Verdict::Fits]);
    let everything =
        spreading("p", vec![constraint(ZONE_KEY, 0, UnsatisfiableAction::DoNotSchedule, Some(Vec::new()))]);
    assert_eq!(instance.filter(&everything, &[0], &Assumptions::default()), vec![unfit()]);
}

#[test]
fn assumptions_count_in_the_filter() {
    // Goal: assumed pods count in their domain, pods assumed gone do not.
    let mut instance = instance("{}", zones(), vec![(0, web("w0"))]);
    let pod = spreading("p", vec![by_zone(1)]);
    assert_eq!(instance.filter(&pod, &[0, 2], &Assumptions::default()), vec![unfit(), Verdict::Fits]);
    let without = Assumptions { without: vec!["w0".into()], extra: Vec::new() };
    assert_eq!(instance.filter(&pod, &[0, 2], &without), vec![Verdict::Fits, Verdict::Fits]);
    let nominated = Assumptions { without: Vec::new(), extra: vec![(2, web("n")), (2, web("m"))] };
    assert_eq!(instance.filter(&pod, &[0, 2], &nominated), vec![Verdict::Fits, unfit()]);
}

#[test]
fn listed_default_constraints_apply_to_pods_without_their_own() {
    // Goal: with defaultingType List, a pod without constraints gets the
    // defaults with its services' and controllers' selector; without such
    // a selector, none.
    let config = r#"{"defaultingType": "List", "defaultConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}]}"#;
    let mut instance = instance(config, zones(), vec![(0, web("w0")), (1, web("w1"))]);
    let mut pod = web("p");
    assert!(instance.filter(&pod, &ALL, &Assumptions::default()).iter().all(|verdict| *verdict == Verdict::Fits));
    pod.default_spread_selector = Some(match_labels(&[("app", "web")]));
    assert_eq!(
        instance.filter(&pod, &ALL, &Assumptions::default()),
        vec![unfit(), unfit(), Verdict::Fits, missing_label()]
    );
    // The system defaults only prefer, so they never filter.
    let mut system = self::instance("{}", zones(), vec![(0, web("w0")), (1, web("w1"))]);
    assert!(system.filter(&pod, &ALL, &Assumptions::default()).iter().all(|verdict| *verdict == Verdict::Fits));
}

#[test]
fn schedule_anyway_scores_the_least_crowded_highest() {
    // Goal: a hostname constraint: counts × ln(nodes + 2), inverted and
    // normalized (2 pods → 0, 1 pod → 33, none → 100).
    let mut instance = instance("{}", zones(), vec![(0, web("w0")), (0, web("w1")), (1, web("w2"))]);
    let by_host =
        constraint(HOSTNAME_KEY, 1, UnsatisfiableAction::ScheduleAnyway, Some(match_labels(&[("app", "web")])));
    let pod = spreading("p", vec![by_host]);
    assert_eq!(instance.score(&pod, &[0, 1, 2]), vec![0, 33, 100]);
    // A node without a constraint's key scores 0.
    let pod = spreading(
        "p",
        vec![constraint(ZONE_KEY, 1, UnsatisfiableAction::ScheduleAnyway, Some(match_labels(&[("app", "web")])))],
    );
    assert_eq!(instance.score(&pod, &ALL), vec![0, 0, 100, 0]);
    assert_eq!(instance.score(&web("plain"), &ALL), vec![0, 0, 0, 0]);
}

#[test]
fn pods_skip_the_calls_their_constraints_do_not_need() {
    // Goal: as kube's PreFilter and PreScore, hard constraints ask for the
    // filter, soft ones (the system defaults among them) for the score, a
    // pod with neither for nothing.
    let mut instance = instance("{}", zones(), Vec::new());
    assert_eq!(instance.prepare(&[], &web("plain")), Plan { filter: false, score: false });
    assert_eq!(instance.prepare(&[], &spreading("hard", vec![by_zone(1)])), Plan { filter: true, score: false });
    let mut defaulted = web("defaulted");
    defaulted.default_spread_selector = Some(match_labels(&[("app", "web")]));
    assert_eq!(instance.prepare(&[], &defaulted), Plan { filter: false, score: true });
}

#[test]
fn system_defaults_spread_by_host_and_zone() {
    // Goal: the built-in constraints (hostname 3, zone 5) with the pod's
    // default selector; a node without a zone is still scored by host.
    let mut instance = instance("{}", zones(), vec![(0, web("w0"))]);
    let mut pod = web("p");
    pod.default_spread_selector = Some(match_labels(&[("app", "web")]));
    // Raw: a 9, b 8, c 6, d 2 → inverted between 2 and 9.
    assert_eq!(instance.score(&pod, &ALL), vec![22, 33, 55, 100]);
}

#[test]
fn bad_configuration_names_the_field() {
    // Goal: each invalid setting is refused, naming the field.
    let refused = |config: &str| Instance::<PodTopologySpread>::configure(config).err().expect("refused");
    let listed = r#"[{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]"#;
    assert!(refused(&format!(r#"{{"defaultConstraints": {listed}}}"#)).contains("defaultConstraints: must be empty"));
    assert!(
        refused(r#"{"defaultingType": "List", "defaultConstraints": [{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}"#)
            .contains("defaultConstraints[0].maxSkew")
    );
    assert!(
        refused(r#"{"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "topologyKey": "", "whenUnsatisfiable": "DoNotSchedule"}]}"#)
            .contains("defaultConstraints[0].topologyKey")
    );
    assert!(
        refused(r#"{"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Maybe"}]}"#)
            .contains("Maybe")
    );
    let twice = r#"{"defaultingType": "List", "defaultConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
        {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}"#;
    assert!(refused(twice).contains("defaultConstraints[1]"));
    assert!(refused(r#"{"defaultingType": "Cluster"}"#).contains("Cluster"));
    assert!(Instance::<PodTopologySpread>::configure(r#"{"defaultingType": "List"}"#).is_ok());
}

#[test]
fn answers_are_well_formed_for_any_input() {
    // Goal: over drawn tables, pods and assumptions (huge amounts, unknown
    // indexes, invalid terms included), one verdict per candidate and one
    // score within 0..=100 per node, and no panic.
    engenho_scheduler::testsuite::assert_well_formed::<PodTopologySpread>(r#"{}"#);
    engenho_scheduler::testsuite::assert_well_formed::<PodTopologySpread>(
        r#"{"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}, {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}]}"#,
    );
}

#[test]
fn domains_from_the_label_index_decide_as_domains_from_the_nodes() {
    // Goal: the filter's shortcut for one constraint that narrows no nodes
    // (its domains from the table's label index) decides as the per-node
    // count does: the same constraint given twice takes the per-node path
    // and must give the same verdicts, over varied clusters.
    // Method: 300 clusters of 1–10 nodes (a fifth without a zone), up to
    // 20 placed pods of two apps, skews 1–2 and minDomains 0–3.
    for seed in 0..300 {
        let mut draws = Draws::new(seed);
        let count = 1 + u32::try_from(draws.below(10)).unwrap_or(0);
        let nodes: Vec<Node> = (0..count)
            .map(|i| {
                let zone = (draws.below(5) != 0).then(|| draws.pick(&["1", "2", "3"]));
                zoned(&format!("n{i}"), zone)
            })
            .collect();
        let placed: Vec<(u32, Pod)> = (0..draws.below(20))
            .map(|i| {
                let node = u32::try_from(draws.below(u64::from(count))).unwrap_or(0);
                (node, labelled_pod(&format!("p{i}"), &[("app", draws.pick(&["web", "db"]))]))
            })
            .collect();
        let mut once = by_zone(1 + u32::try_from(draws.below(2)).unwrap_or(0));
        once.min_domains = u32::try_from(draws.below(4)).unwrap_or(0);
        let mut instance = instance("{}", nodes, placed);
        let candidates: Vec<u32> = (0..count).collect();
        let single = spreading("new", vec![once.clone()]);
        let twice = spreading("new", vec![once.clone(), once]);
        assert_eq!(
            instance.filter(&single, &candidates, &Assumptions::default()),
            instance.filter(&twice, &candidates, &Assumptions::default()),
            "seed {seed}"
        );
    }
}

#[test]
fn an_empty_zone_and_a_missing_one_are_one_domain() {
    // Goal: as kube reads a missing label as the empty value, a node whose
    // zone is "" and a node without a zone count in one domain for the
    // domain sums, while the node without the key adds no zone term.
    // a (zone 1), b (zone ""), c (no zone); w0 on b, w1 on c; system
    // defaults. Raw: a 0·ln5+2 + 0·ln4+4 = 6; b 1·ln5+2 + 2·ln4+4 ≈ 10;
    // c 1·ln5+2 ≈ 4 → inverted between 4 and 10.
    let nodes = vec![zoned("a", Some("1")), zoned("b", Some("")), zoned("c", None)];
    let mut instance = instance("{}", nodes, vec![(1, web("w0")), (2, web("w1"))]);
    let mut pod = web("p");
    pod.default_spread_selector = Some(match_labels(&[("app", "web")]));
    assert_eq!(instance.score(&pod, &[0, 1, 2]), vec![80, 40, 100]);
}

#[test]
fn a_table_changed_node_by_node_answers_as_one_built_at_once() {
    // Goal: the topology domains the table keeps as nodes are relabelled,
    // removed and added (domain numbers freed and reused) give the same
    // verdicts and scores as a table given the final nodes at once.
    // Method: 200 clusters of 2–8 nodes, each node relabelled or removed
    // and re-added at random (zones 1–3, "" or none), 15 placed pods;
    // filters and scores for a zone constraint, a hostname one and the
    // system defaults.
    let zone = |draws: &mut Draws| match draws.below(5) {
        0 => None,
        1 => Some(""),
        _ => Some(draws.pick(&["1", "2", "3"])),
    };
    for seed in 0..200 {
        let mut draws = Draws::new(seed);
        let count = 2 + u32::try_from(draws.below(7)).unwrap_or(0);
        let mut changes = Vec::new();
        let mut last: Vec<Option<Node>> = vec![None; count as usize];
        for _ in 0..3 * count {
            let index = u32::try_from(draws.below(u64::from(count))).unwrap_or(0);
            if draws.below(4) == 0 {
                changes.push(Change::NodeRemoved(index));
                last[index as usize] = None;
            } else {
                let node = zoned(&format!("n{index}"), zone(&mut draws));
                changes.push(Change::NodeSet(index, node.clone()));
                last[index as usize] = Some(node);
            }
        }
        let present: Vec<u32> = (0..count).filter(|&index| last[index as usize].is_some()).collect();
        let placed: Vec<(u32, Pod)> = (0..15)
            .filter_map(|i| {
                let node = *present.get(usize::try_from(draws.below(present.len().max(1) as u64)).ok()?)?;
                Some((node, labelled_pod(&format!("p{i}"), &[("app", draws.pick(&["web", "db"]))])))
            })
            .collect();
        let (mut changed, _) = Instance::<PodTopologySpread>::configure("{}").expect("configures");
        changed.apply(changes);
        changed.apply(placed.iter().cloned().map(|(index, pod)| Change::PodPlaced(index, pod)).collect::<Vec<_>>());
        let (mut built, _) = Instance::<PodTopologySpread>::configure("{}").expect("configures");
        let mut at_once: Vec<Change> =
            present.iter().filter_map(|&index| Some(Change::NodeSet(index, last[index as usize].clone()?))).collect();
        at_once.extend(placed.into_iter().map(|(index, pod)| Change::PodPlaced(index, pod)));
        built.apply(at_once);

        let candidates: Vec<u32> = (0..count).collect();
        let selector = || Some(match_labels(&[("app", "web")]));
        let mut defaulted = web("defaulted");
        defaulted.default_spread_selector = selector();
        let pods = [
            spreading("hard", vec![by_zone(1)]),
            spreading("soft", vec![constraint(ZONE_KEY, 2, UnsatisfiableAction::ScheduleAnyway, selector())]),
            spreading("host", vec![constraint(HOSTNAME_KEY, 1, UnsatisfiableAction::DoNotSchedule, selector())]),
            defaulted,
        ];
        for pod in &pods {
            let none = Assumptions::default();
            assert_eq!(changed.filter(pod, &candidates, &none), built.filter(pod, &candidates, &none), "seed {seed}");
            assert_eq!(changed.score(pod, &present), built.score(pod, &present), "seed {seed}");
        }
    }
}
