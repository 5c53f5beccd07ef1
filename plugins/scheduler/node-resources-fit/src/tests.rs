//! The plugin's filter, scores and configuration.

use engenho_scheduler::testsuite::{requesting_pod, sized_node};
use engenho_scheduler::{Change, ExtendedResource, Instance, Judge, Node, Pod};

use super::*;

const GIB: u64 = 1 << 30;

fn instance(config: &str, nodes: Vec<Node>, placed: Vec<(u32, Pod)>) -> Instance<NodeResourcesFit> {
    let (mut instance, abilities) = Instance::<NodeResourcesFit>::configure(config).expect("configures");
    assert_eq!(abilities, Abilities { filters: true, scores: true, reads_pods: true, pod_parts: crate::POD_PARTS });
    let mut changes: Vec<Change> =
        nodes.into_iter().zip(0..).map(|(node, index)| Change::NodeSet(index, node)).collect();
    changes.extend(placed.into_iter().map(|(index, pod)| Change::PodPlaced(index, pod)));
    instance.apply(changes);
    instance
}

fn with_gpu(mut node: Node, amount: u64) -> Node {
    node.allocatable.extended = vec![ExtendedResource { name: "example.com/gpu".into(), amount }];
    node.allocatable.ephemeral_storage = 10 * GIB;
    node
}

fn asking_gpus(uid: &str, amount: u64) -> Pod {
    let mut pod = requesting_pod(uid, 0, 0);
    pod.requests.extended = vec![ExtendedResource { name: "example.com/gpu".into(), amount }];
    pod
}

#[test]
fn pods_fit_where_there_is_room() {
    // Goal: requests within allocatable less requested fit; every short
    // resource is named, in kube's order, as unfit.
    let mut instance = instance(
        "{}",
        vec![sized_node("a", 4000, 8 * GIB, 110), with_gpu(sized_node("b", 1000, GIB, 2), 1)],
        vec![(1, requesting_pod("placed", 500, GIB / 2)), (1, asking_gpus("gpu-user", 1))],
    );
    let mut big = requesting_pod("p", 1000, GIB);
    big.requests.ephemeral_storage = 20 * GIB;
    big.requests.extended = vec![ExtendedResource { name: "example.com/gpu".into(), amount: 1 }];
    let verdicts = instance.filter(&big, &[0, 1], &Assumptions::default());
    assert_eq!(
        verdicts[0],
        Verdict::Unfit(vec!["Insufficient ephemeral-storage".into(), "Insufficient example.com/gpu".into()])
    );
    assert_eq!(
        verdicts[1],
        Verdict::Unfit(vec![
            "Too many pods".into(),
            "Insufficient cpu".into(),
            "Insufficient memory".into(),
            "Insufficient ephemeral-storage".into(),
            "Insufficient example.com/gpu".into(),
        ])
    );
    let small = requesting_pod("s", 1000, GIB);
    assert_eq!(instance.filter(&small, &[0], &Assumptions::default()), vec![Verdict::Fits]);
}

#[test]
fn a_pod_asking_nothing_needs_only_a_pod_slot() {
    // Goal: with no requests only the pod count matters (and an
    // overcommitted node still takes it).
    let mut instance = instance(
        "{}",
        vec![sized_node("full", 100, 100, 1), sized_node("over", 100, 100, 5)],
        vec![(0, requesting_pod("x", 0, 0)), (1, requesting_pod("y", 500, 500))],
    );
    let verdicts = instance.filter(&requesting_pod("p", 0, 0), &[0, 1], &Assumptions::default());
    assert_eq!(verdicts, vec![Verdict::Unfit(vec!["Too many pods".into()]), Verdict::Fits]);
}

#[test]
fn assumptions_change_what_fits() {
    // Goal: pods assumed gone free their requests, assumed pods take
    // theirs.
    let mut instance = instance("{}", vec![sized_node("a", 1000, GIB, 110)], vec![(0, requesting_pod("big", 800, 0))]);
    let pod = requesting_pod("p", 500, 0);
    assert_eq!(
        instance.filter(&pod, &[0], &Assumptions::default()),
        vec![Verdict::Unfit(vec!["Insufficient cpu".into()])]
    );
    let without = Assumptions { without: vec!["big".into()], extra: Vec::new() };
    assert_eq!(instance.filter(&pod, &[0], &without), vec![Verdict::Fits]);
    let crowded = Assumptions { without: vec!["big".into()], extra: vec![(0, requesting_pod("nominated", 600, 0))] };
    assert_eq!(instance.filter(&pod, &[0], &crowded), vec![Verdict::Unfit(vec!["Insufficient cpu".into()])]);
}

#[test]
fn ignored_extended_resources_are_not_checked() {
    // Goal: ignoredResources and ignoredResourceGroups skip extended
    // resources only.
    let nodes = || vec![with_gpu(sized_node("a", 1000, GIB, 110), 0)];
    let pod = asking_gpus("p", 1);
    let mut checked = instance("{}", nodes(), Vec::new());
    assert_eq!(
        checked.filter(&pod, &[0], &Assumptions::default()),
        vec![Verdict::Unfit(vec!["Insufficient example.com/gpu".into()])]
    );
    let mut by_name = instance(r#"{"ignoredResources": ["example.com/gpu"]}"#, nodes(), Vec::new());
    assert_eq!(by_name.filter(&pod, &[0], &Assumptions::default()), vec![Verdict::Fits]);
    let mut by_group = instance(r#"{"ignoredResourceGroups": ["example.com"]}"#, nodes(), Vec::new());
    assert_eq!(by_group.filter(&pod, &[0], &Assumptions::default()), vec![Verdict::Fits]);
}

#[test]
fn least_allocated_scores_with_non_zero_defaults() {
    // Goal: the default strategy scores free room, counting pods without
    // requests as 100m CPU and 200Mi memory, placed or incoming.
    let mut instance = instance(
        "{}",
        vec![sized_node("a", 1000, 1000 << 20, 110), sized_node("b", 1000, 1000 << 20, 110)],
        vec![(1, requesting_pod("placed", 0, 0))],
    );
    // a: cpu (1000-100)/1000 → 90, memory (1000-200)/1000 → 80: 85.
    // b: cpu 800/1000 → 80, memory 600/1000 → 60: 70.
    assert_eq!(instance.score(&requesting_pod("p", 0, 0), &[0, 1]), vec![85, 70]);
}

#[test]
fn most_allocated_and_ratio_strategies_score() {
    // Goal: the configured strategy and weights are used.
    let nodes = || vec![sized_node("a", 1000, GIB, 110)];
    let pod = requesting_pod("p", 500, GIB / 4);
    let mut most = instance(
        r#"{"scoringStrategy": {"type": "MostAllocated", "resources": [{"name": "cpu", "weight": 3}, {"name": "memory"}]}}"#,
        nodes(),
        Vec::new(),
    );
    assert_eq!(most.score(&pod, &[0]), vec![(50 * 3 + 25) / 4]);
    let mut ratio = instance(
        r#"{"scoringStrategy": {"type": "RequestedToCapacityRatio", "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]}}}"#,
        nodes(),
        Vec::new(),
    );
    // cpu 50% → 50, memory 25% → 75: 62.5 rounds to 63.
    assert_eq!(ratio.score(&pod, &[0]), vec![63]);
}

#[test]
fn bad_configuration_names_the_field() {
    // Goal: each invalid setting is refused, naming the field.
    let refused = |config: &str| Instance::<NodeResourcesFit>::configure(config).err().expect("refused");
    assert!(refused(r#"{"scoringStrategy": {"resources": []}}"#).contains("scoringStrategy.type"));
    assert!(refused(r#"{"scoringStrategy": {"type": "Fancy"}}"#).contains("Fancy"));
    assert!(
        refused(r#"{"scoringStrategy": {"type": "LeastAllocated", "resources": [{"name": "cpu", "weight": 101}]}}"#)
            .contains("scoringStrategy.resources[0].weight")
    );
    assert!(
        refused(r#"{"scoringStrategy": {"type": "LeastAllocated", "resources": [{"name": "cpu"}, {"name": "cpu"}]}}"#)
            .contains("scoringStrategy.resources[1].name")
    );
    assert!(
        refused(r#"{"scoringStrategy": {"type": "RequestedToCapacityRatio"}}"#).contains("requestedToCapacityRatio")
    );
    let shape = |points: &str| {
        format!(
            r#"{{"scoringStrategy": {{"type": "RequestedToCapacityRatio", "requestedToCapacityRatio": {{"shape": {points}}}}}}}"#
        )
    };
    assert!(refused(&shape("[]")).contains("shape: must have at least one point"));
    assert!(
        refused(&shape(r#"[{"utilization": 50, "score": 1}, {"utilization": 50, "score": 2}]"#))
            .contains("shape[1].utilization")
    );
    assert!(refused(&shape(r#"[{"utilization": 50, "score": 11}]"#)).contains("shape[0].score"));
    assert!(refused(&shape(r#"[{"utilization": 101, "score": 1}]"#)).contains("shape[0].utilization"));
    assert!(refused(r#"{"ignoredResourceGroups": ["a/b"]}"#).contains("ignoredResourceGroups[0]"));
    assert!(
        refused(r#"{"scoringStrategy": {"type": "LeastAllocated"}, "extra": 1}"#).contains("unknown field `extra`")
    );
}

#[test]
fn answers_are_well_formed_for_any_input() {
    // Goal: over drawn tables, pods and assumptions (huge amounts, unknown
    // indexes, invalid terms included), one verdict per candidate and one
    // score within 0..=100 per node, and no panic.
    engenho_scheduler::testsuite::assert_well_formed::<NodeResourcesFit>(r#"{}"#);
    engenho_scheduler::testsuite::assert_well_formed::<NodeResourcesFit>(
        r#"{"scoringStrategy": {"type": "MostAllocated", "resources": [{"name": "cpu"}, {"name": "example.com/gpu", "weight": 5}]}}"#,
    );
    engenho_scheduler::testsuite::assert_well_formed::<NodeResourcesFit>(
        r#"{"scoringStrategy": {"type": "RequestedToCapacityRatio", "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}}"#,
    );
}
