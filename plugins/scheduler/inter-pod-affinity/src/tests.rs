//! The plugin's filter, scores and configuration.

use engenho_scheduler::testsuite::{labelled_node, labelled_pod, labels, match_labels, requirement};
use engenho_scheduler::{Change, Instance, Judge, Node, PodAffinityTerm, SelectorOperator, WeightedPodAffinityTerm};

use super::*;
use engenho_scheduler::Verdict;

const ZONE: &str = "topology.kubernetes.io/zone";
const HOST: &str = "kubernetes.io/hostname";

fn zoned(name: &str, zone: Option<&str>) -> Node {
    match zone {
        Some(zone) => labelled_node(name, &[(ZONE, zone), (HOST, name)]),
        None => labelled_node(name, &[(HOST, name)]),
    }
}

/// Nodes a and b in zone 1, c in zone 2, d without a zone.
fn instance(config: &str, placed: Vec<(u32, Pod)>) -> Instance<InterPodAffinity> {
    let (mut instance, abilities) = Instance::<InterPodAffinity>::configure(config).expect("configures");
    assert_eq!(abilities, Abilities { filters: true, scores: true, reads_pods: true, pod_parts: crate::POD_PARTS });
    let mut changes = vec![
        Change::NodeSet(0, zoned("a", Some("1"))),
        Change::NodeSet(1, zoned("b", Some("1"))),
        Change::NodeSet(2, zoned("c", Some("2"))),
        Change::NodeSet(3, zoned("d", None)),
    ];
    changes.extend(placed.into_iter().map(|(index, pod)| Change::PodPlaced(index, pod)));
    instance.apply(changes);
    instance
}

fn term(app: &str, topology_key: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        selector: Some(match_labels(&[("app", app)])),
        namespaces: vec!["default".into()],
        namespace_selector: None,
        topology_key: topology_key.into(),
    }
}

fn weighted(weight: i32, term: PodAffinityTerm) -> WeightedPodAffinityTerm {
    WeightedPodAffinityTerm { weight, term }
}

fn affinity() -> Verdict {
    Verdict::Unresolvable(vec!["node(s) didn't match pod affinity rules".into()])
}

fn anti_affinity() -> Verdict {
    Verdict::Unfit(vec!["node(s) didn't match pod anti-affinity rules".into()])
}

fn existing_anti_affinity() -> Verdict {
    Verdict::Unfit(vec!["node(s) didn't satisfy existing pods anti-affinity rules".into()])
}

const ALL: [u32; 4] = [0, 1, 2, 3];

#[test]
fn required_affinity_wants_a_matching_pod_in_the_domain() {
    // Goal: nodes sharing the zone of a matching pod fit; others, and
    // nodes without the key, are refused unresolvably.
    let mut instance = instance("{}", vec![(0, labelled_pod("db", &[("app", "db")]))]);
    let mut web = labelled_pod("web", &[("app", "web")]);
    web.pod_affinity.required = vec![term("db", ZONE)];
    let verdicts = instance.filter(&web, &ALL, &Assumptions::default());
    assert_eq!(verdicts, vec![Verdict::Fits, Verdict::Fits, affinity(), affinity()]);
}

#[test]
fn the_first_pod_of_a_self_affine_group_goes_anywhere_with_the_keys() {
    // Goal: with no matching pod anywhere, a pod matching its own terms
    // fits every node that has the keys; one that does not match itself
    // fits nowhere.
    let mut instance = instance("{}", Vec::new());
    let mut first = labelled_pod("web-0", &[("app", "web")]);
    first.pod_affinity.required = vec![term("web", ZONE)];
    let verdicts = instance.filter(&first, &ALL, &Assumptions::default());
    assert_eq!(verdicts, vec![Verdict::Fits, Verdict::Fits, Verdict::Fits, affinity()]);
    let mut stranger = labelled_pod("other", &[("app", "other")]);
    stranger.pod_affinity.required = vec![term("web", ZONE)];
    let verdicts = instance.filter(&stranger, &ALL, &Assumptions::default());
    assert!(verdicts.iter().all(|verdict| *verdict == affinity()));
}

#[test]
fn required_anti_affinity_keeps_the_pod_out_of_matching_domains() {
    // Goal: domains with a matching pod are unfit; nodes without the key
    // are not refused.
    let mut instance = instance("{}", vec![(0, labelled_pod("web-0", &[("app", "web")]))]);
    let mut web = labelled_pod("web-1", &[("app", "web")]);
    web.pod_anti_affinity.required = vec![term("web", ZONE)];
    let verdicts = instance.filter(&web, &ALL, &Assumptions::default());
    assert_eq!(verdicts, vec![anti_affinity(), anti_affinity(), Verdict::Fits, Verdict::Fits]);
    web.pod_anti_affinity.required = vec![term("web", HOST)];
    let verdicts = instance.filter(&web, &ALL, &Assumptions::default());
    assert_eq!(verdicts, vec![anti_affinity(), Verdict::Fits, Verdict::Fits, Verdict::Fits]);
}

#[test]
fn placed_pods_anti_affinity_is_symmetric() {
    // Goal: a placed pod's required anti-affinity against the pod keeps
    // the pod out of the placed pod's domain.
    let mut loner = labelled_pod("loner", &[("app", "loner")]);
    loner.pod_anti_affinity.required = vec![term("web", ZONE)];
    let mut instance = instance("{}", vec![(2, loner)]);
    let web = labelled_pod("web", &[("app", "web")]);
    let verdicts = instance.filter(&web, &ALL, &Assumptions::default());
    assert_eq!(verdicts, vec![Verdict::Fits, Verdict::Fits, existing_anti_affinity(), Verdict::Fits]);
    let other = labelled_pod("other", &[("app", "db")]);
    assert!(instance.filter(&other, &ALL, &Assumptions::default()).iter().all(|verdict| *verdict == Verdict::Fits));
}

#[test]
fn placed_pods_terms_read_namespaces_as_kubernetes_defaults_them() {
    // Goal: a placed pod's term without namespaces is about its own
    // namespace; a namespace selector is matched against the incoming
    // pod's namespace labels.
    let mut loner = labelled_pod("loner", &[("app", "loner")]);
    let mut own_namespace = term("web", HOST);
    own_namespace.namespaces.clear();
    loner.pod_anti_affinity.required = vec![own_namespace.clone()];
    let mut instance = instance("{}", vec![(0, loner.clone())]);
    let mut web = labelled_pod("web", &[("app", "web")]);
    web.namespace = "shop".into();
    web.namespace_labels = labels(&[("team", "shop")]);
    assert_eq!(instance.filter(&web, &[0], &Assumptions::default()), vec![Verdict::Fits]);
    web.namespace = "default".into();
    assert_eq!(instance.filter(&web, &[0], &Assumptions::default()), vec![existing_anti_affinity()]);

    let mut by_team = own_namespace;
    by_team.namespace_selector = Some(vec![requirement("team", SelectorOperator::In, &["shop"])]);
    loner.pod_anti_affinity.required = vec![by_team];
    instance.apply([Change::PodPlaced(0, loner)]);
    web.namespace = "shop".into();
    assert_eq!(instance.filter(&web, &[0], &Assumptions::default()), vec![existing_anti_affinity()]);
    web.namespace_labels = labels(&[("team", "other")]);
    assert_eq!(instance.filter(&web, &[0], &Assumptions::default()), vec![Verdict::Fits]);
}

#[test]
fn assumptions_count_in_the_filter() {
    // Goal: a pod assumed gone no longer repels, an assumed pod does.
    let mut instance = instance("{}", vec![(0, labelled_pod("web-0", &[("app", "web")]))]);
    let mut web = labelled_pod("web-1", &[("app", "web")]);
    web.pod_anti_affinity.required = vec![term("web", ZONE)];
    let without = Assumptions { without: vec!["web-0".into()], extra: Vec::new() };
    assert!(instance.filter(&web, &[0, 1, 2], &without).iter().all(|verdict| *verdict == Verdict::Fits));
    let moved = Assumptions { without: Vec::new(), extra: vec![(2, labelled_pod("web-0", &[("app", "web")]))] };
    assert_eq!(instance.filter(&web, &[0, 1, 2], &moved), vec![Verdict::Fits, Verdict::Fits, anti_affinity()]);
}

#[test]
fn preferred_terms_score_by_domain_normalized() {
    // Goal: the pod's preferred affinity adds, its preferred
    // anti-affinity subtracts, per domain of the matching placed pods;
    // scores run from the lowest (0) to the highest (100).
    let mut instance = instance(
        "{}",
        vec![(0, labelled_pod("db", &[("app", "db")])), (2, labelled_pod("cache", &[("app", "cache")]))],
    );
    let mut web = labelled_pod("web", &[("app", "web")]);
    web.pod_affinity.preferred = vec![weighted(80, term("db", ZONE))];
    web.pod_anti_affinity.preferred = vec![weighted(20, term("cache", HOST))];
    // a, b: +80 (zone 1); c: -20 (host c); d: 0.
    assert_eq!(instance.score(&web, &ALL), vec![100, 100, 0, 20]);
    assert_eq!(instance.score(&labelled_pod("plain", &[]), &ALL), vec![0, 0, 0, 0]);
}

#[test]
fn placed_pods_terms_weigh_in_unless_ignored() {
    // Goal: a placed pod's required affinity matching the pod adds
    // hardPodAffinityWeight, its preferred terms their weights; with
    // ignorePreferredTermsOfExistingPods and no preferred terms of the
    // pod's own, nothing counts.
    let mut friendly = labelled_pod("friendly", &[("app", "friendly")]);
    friendly.pod_affinity.required = vec![term("web", ZONE)];
    friendly.pod_affinity.preferred = vec![weighted(3, term("web", HOST))];
    let web = labelled_pod("web", &[("app", "web")]);
    let mut default = instance("{}", vec![(2, friendly.clone())]);
    // c: 1 (zone 2) + 3 (host c) = 4; others 0.
    assert_eq!(default.score(&web, &ALL), vec![0, 0, 100, 0]);
    let mut heavy = instance(r#"{"hardPodAffinityWeight": 9}"#, vec![(0, friendly.clone())]);
    // a: 9 + 3 = 12; b: 9; c, d: 0.
    assert_eq!(heavy.score(&web, &ALL), vec![100, 75, 0, 0]);
    let mut ignoring = instance(r#"{"ignorePreferredTermsOfExistingPods": true}"#, vec![(2, friendly)]);
    assert_eq!(ignoring.score(&web, &ALL), vec![0, 0, 0, 0]);
}

#[test]
fn pods_skip_the_calls_no_term_is_about() {
    // Goal: as kube's PreFilter and PreScore, a pod without terms of its
    // own skips the filter unless a placed pod's required anti-affinity is
    // about it, and skips the score unless a placed pod's weighing term
    // is about it (with ignorePreferredTermsOfExistingPods, only its own).
    let web = labelled_pod("web", &[("app", "web")]);
    let mut quiet = instance("{}", vec![(0, labelled_pod("db", &[("app", "db")]))]);
    assert_eq!(quiet.prepare(&[], &web), Plan { filter: false, score: false });
    let mut loner = labelled_pod("loner", &[("app", "loner")]);
    loner.pod_anti_affinity.required = vec![term("web", ZONE)];
    let mut repelling = instance("{}", vec![(2, loner)]);
    assert_eq!(repelling.prepare(&[], &web), Plan { filter: true, score: false });
    assert_eq!(repelling.prepare(&[], &labelled_pod("db", &[("app", "db")])), Plan { filter: false, score: false });
    let mut friendly = labelled_pod("friendly", &[("app", "friendly")]);
    friendly.pod_affinity.preferred = vec![weighted(3, term("web", HOST))];
    let mut attracting = instance("{}", vec![(2, friendly.clone())]);
    assert_eq!(attracting.prepare(&[], &web), Plan { filter: false, score: true });
    let mut ignoring = instance(r#"{"ignorePreferredTermsOfExistingPods": true}"#, vec![(2, friendly)]);
    assert_eq!(ignoring.prepare(&[], &web), Plan { filter: false, score: false });
    let mut wanting = web.clone();
    wanting.pod_affinity.required = vec![term("db", ZONE)];
    assert_eq!(quiet.prepare(&[], &wanting), Plan { filter: true, score: false });
}

#[test]
fn bad_configuration_names_the_field() {
    // Goal: out-of-range weights and unknown fields are refused by name.
    let refused = |config: &str| Instance::<InterPodAffinity>::configure(config).err().expect("refused");
    assert!(refused(r#"{"hardPodAffinityWeight": 101}"#).contains("hardPodAffinityWeight: 101 is not in 0..=100"));
    assert!(refused(r#"{"hardPodAffinityWeight": -1}"#).contains("hardPodAffinityWeight"));
    assert!(refused(r#"{"hardPodAffinityWeight": "1"}"#).contains("invalid type"));
    assert!(refused(r#"{"hardPodAntiAffinityWeight": 1}"#).contains("unknown field `hardPodAntiAffinityWeight`"));
    assert!(Instance::<InterPodAffinity>::configure(r#"{"hardPodAffinityWeight": 0}"#).is_ok());
}

#[test]
fn answers_are_well_formed_for_any_input() {
    // Goal: over drawn tables, pods and assumptions (huge amounts, unknown
    // indexes, invalid terms included), one verdict per candidate and one
    // score within 0..=100 per node, and no panic.
    engenho_scheduler::testsuite::assert_well_formed::<InterPodAffinity>(r#"{}"#);
    engenho_scheduler::testsuite::assert_well_formed::<InterPodAffinity>(
        r#"{"hardPodAffinityWeight": 100, "ignorePreferredTermsOfExistingPods": true}"#,
    );
}
