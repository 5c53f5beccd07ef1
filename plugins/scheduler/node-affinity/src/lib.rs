//! Scheduler plugin: node affinity, as kube-scheduler's NodeAffinity plugin
//! (Kubernetes 1.32). It filters out nodes that do not match the pod's
//! node selector and required node affinity (and the profile's added
//! required affinity, when configured), and scores nodes by the summed
//! weights of the preferred terms they match (the pod's and the added
//! ones), normalized against the highest sum.
//!
//! Configuration (kube's `NodeAffinityArgs`, optional):
//! `{"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
//! {"nodeSelectorTerms": [...]}, "preferredDuringSchedulingIgnoredDuringExecution":
//! [{"weight": 1, "preference": {...}}]}}`, terms in Kubernetes' JSON form.

mod config;

use engenho_scheduler::matching::{
    node_term_is_valid, node_term_matches, node_terms_match, required_node_affinity_matches,
};
use engenho_scheduler::normalization::default_normalize;
use engenho_scheduler::{
    Abilities, Assumptions, Node, NodeSelectorTerm, Plan, Plugin, Pod, PodParts, PreferredNodeTerm, Table, Verdict,
    Verdicts, export_scheduler, parse_config,
};

/// The parts of pods the plugin reads: node selector and node affinity.
pub(crate) const POD_PARTS: PodParts = PodParts { node_rules: true, ..PodParts::NONE };

/// The reason a node that does not match the pod's node selector or
/// required node affinity is refused (unresolvable).
pub const REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";

/// The reason a node that does not match the configured added affinity is
/// refused (unresolvable).
pub const REASON_ENFORCED: &str = "node(s) didn't match scheduler-enforced node affinity";

/// Filters and scores nodes by node affinity.
pub struct NodeAffinity {
    /// The profile's added required terms (a node must match one).
    added_required: Option<Vec<NodeSelectorTerm>>,
    /// The profile's added preferred terms.
    added_preferred: Vec<PreferredNodeTerm>,
}

impl Plugin for NodeAffinity {
    fn configure(config: &str) -> Result<(Self, Abilities), String> {
        let config: config::Args = parse_config(config)?;
        let (added_required, added_preferred) = config.added_affinity()?;
        Ok((
            Self { added_required, added_preferred },
            Abilities { filters: true, scores: true, reads_pods: false, pod_parts: POD_PARTS },
        ))
    }

    /// As kube's PreFilter and PreScore: nothing to filter without a node
    /// selector or required terms, nothing to score without preferred
    /// terms (the pod's or the profile's).
    fn plan(&self, _: &Table, pod: &Pod) -> Plan {
        let affinity = pod.node_affinity.as_ref();
        let required = !pod.node_selector.is_empty() || affinity.is_some_and(|a| a.required.is_some());
        let preferred = affinity.is_some_and(|a| !a.preferred.is_empty());
        Plan { filter: required || self.added_required.is_some(), score: preferred || !self.added_preferred.is_empty() }
    }

    fn filter(&self, table: &Table, pod: &Pod, candidates: &[u32], _: &Assumptions) -> Verdicts {
        candidates
            .iter()
            .map(|&index| {
                let Some(entry) = table.node(index) else { return Verdict::Unresolvable(vec![REASON_POD.into()]) };
                let node = entry.node();
                if self.added_required.as_ref().is_some_and(|terms| !node_terms_match(terms, node)) {
                    return Verdict::Unresolvable(vec![REASON_ENFORCED.into()]);
                }
                if !required_node_affinity_matches(pod, node) {
                    return Verdict::Unresolvable(vec![REASON_POD.into()]);
                }
                Verdict::Fits
            })
            .collect()
    }

    fn score(&self, table: &Table, pod: &Pod, nodes: &[u32]) -> Vec<u32> {
        let pod_preferred = pod.node_affinity.as_ref().map_or(&[][..], |affinity| &affinity.preferred);
        let sums: Vec<i64> = nodes
            .iter()
            .map(|&index| {
                table.node(index).map_or(0, |entry| {
                    preferred_weight(&self.added_preferred, entry.node())
                        .saturating_add(preferred_weight(pod_preferred, entry.node()))
                })
            })
            .collect();
        default_normalize(&sums, false)
    }
}

/// The summed weights of the `terms` that `node` matches. Terms of weight 0
/// and invalid terms count for nothing.
fn preferred_weight(terms: &[PreferredNodeTerm], node: &Node) -> i64 {
    terms
        .iter()
        .filter(|term| term.weight != 0 && node_term_is_valid(&term.preference))
        .filter(|term| node_term_matches(&term.preference, node))
        .map(|term| i64::from(term.weight))
        .fold(0, i64::saturating_add)
}

export_scheduler!(NodeAffinity);

#[cfg(test)]
mod tests {
    use engenho_scheduler::testsuite::{labelled_node, node_requirement, pod};
    use engenho_scheduler::{Change, Instance, Judge, NodeOperator};

    use super::*;

    fn instance(config: &str) -> Instance<NodeAffinity> {
        let (mut instance, abilities) = Instance::<NodeAffinity>::configure(config).expect("configures");
        assert!(abilities.filters && abilities.scores && !abilities.reads_pods);
        instance.apply([
            Change::NodeSet(0, labelled_node("a", &[("zone", "a"), ("disk", "ssd")])),
            Change::NodeSet(1, labelled_node("b", &[("zone", "b")])),
            Change::NodeSet(2, labelled_node("c", &[("zone", "c"), ("disk", "ssd")])),
        ]);
        instance
    }

    fn term(key: &str, operator: NodeOperator, values: &[&str]) -> NodeSelectorTerm {
        NodeSelectorTerm { match_expressions: vec![node_requirement(key, operator, values)], match_fields: Vec::new() }
    }

    fn preferring(terms: Vec<(i32, NodeSelectorTerm)>) -> Pod {
        let mut pod = pod("p");
        pod.node_affinity = Some(engenho_scheduler::NodeAffinity {
            required: None,
            preferred: terms.into_iter().map(|(weight, preference)| PreferredNodeTerm { weight, preference }).collect(),
        });
        pod
    }

    #[test]
    fn node_selector_and_required_terms_filter() {
        // Goal: both the selector and the required terms must hold; the
        // refusal is unresolvable, in kube's words.
        let mut instance = instance("{}");
        let mut wanting = pod("p");
        wanting.node_selector = engenho_scheduler::testsuite::labels(&[("disk", "ssd")]);
        wanting.node_affinity = Some(engenho_scheduler::NodeAffinity {
            required: Some(vec![term("zone", NodeOperator::In, &["a", "b"])]),
            preferred: Vec::new(),
        });
        let refused = Verdict::Unresolvable(vec!["node(s) didn't match Pod's node affinity/selector".into()]);
        let verdicts = instance.filter(&wanting, &[0, 1, 2], &Assumptions::default());
        assert_eq!(verdicts, vec![Verdict::Fits, refused.clone(), refused]);
        let free = instance.filter(&pod("q"), &[0, 1, 2], &Assumptions::default());
        assert!(free.iter().all(|verdict| *verdict == Verdict::Fits));
    }

    #[test]
    fn preferred_terms_score_their_weights_normalized() {
        // Goal: sums of matched weights, scaled so the best node scores
        // 100; weight-0 and empty terms count for nothing.
        let mut instance = instance("{}");
        let pod = preferring(vec![
            (20, term("disk", NodeOperator::In, &["ssd"])),
            (60, term("zone", NodeOperator::In, &["c"])),
            (0, term("zone", NodeOperator::In, &["a"])),
            (50, NodeSelectorTerm::default()),
        ]);
        assert_eq!(instance.score(&pod, &[0, 1, 2]), vec![25, 0, 100]);
        assert_eq!(instance.score(&preferring(Vec::new()), &[0, 1, 2]), vec![0, 0, 0]);
    }

    #[test]
    fn a_pod_without_terms_skips_what_it_does_not_need() {
        // Goal: as kube's PreFilter and PreScore, no selector or required
        // terms skips the filter, no preferred terms skips the score;
        // terms the profile adds count as the pod's.
        let mut instance = instance("{}");
        assert_eq!(instance.prepare(&[], &pod("p")), Plan { filter: false, score: false });
        let mut selecting = pod("q");
        selecting.node_selector = engenho_scheduler::testsuite::labels(&[("disk", "ssd")]);
        assert_eq!(instance.prepare(&[], &selecting), Plan { filter: true, score: false });
        let preferring = preferring(vec![(20, term("disk", NodeOperator::In, &["ssd"]))]);
        assert_eq!(instance.prepare(&[], &preferring), Plan { filter: false, score: true });
        let config = r#"{"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}]}}}"#;
        assert_eq!(super::tests::instance(config).prepare(&[], &pod("p")), Plan { filter: true, score: false });
    }

    #[test]
    fn added_affinity_is_enforced_and_preferred() {
        // Goal: the configured required terms refuse nodes with their own
        // reason, before the pod's; the configured preferred terms add to
        // the pod's.
        let config = r#"{"addedAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}
            ]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}}
            ]
        }}"#;
        let mut instance = instance(config);
        let verdicts = instance.filter(&pod("p"), &[0, 1], &Assumptions::default());
        assert_eq!(verdicts[0], Verdict::Fits);
        assert_eq!(
            verdicts[1],
            Verdict::Unresolvable(vec!["node(s) didn't match scheduler-enforced node affinity".into()])
        );
        let pod = preferring(vec![(30, term("disk", NodeOperator::Exists, &[]))]);
        assert_eq!(instance.score(&pod, &[0, 2]), vec![100, 75]);
    }

    #[test]
    fn bad_configuration_names_the_field() {
        // Goal: unknown fields, bad operators, bad weights and invalid
        // terms are refused, naming where.
        let refused = |config: &str| Instance::<NodeAffinity>::configure(config).err().expect("refused");
        assert!(refused(r#"{"addedAffinty": {}}"#).contains("unknown field `addedAffinty`"));
        let error = refused(
            r#"{"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Near"}]}]}}}"#,
        );
        assert!(error.contains("Near"), "{error}");
        let error = refused(
            r#"{"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["x"]}]}]}}}"#,
        );
        assert!(
            error.contains("addedAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"),
            "{error}"
        );
        let error = refused(
            r#"{"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}"#,
        );
        assert!(error.contains("nodeSelectorTerms: must have at least one term"), "{error}");
        let error = refused(
            r#"{"addedAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]}}"#,
        );
        assert!(error.contains("preferredDuringSchedulingIgnoredDuringExecution[0].weight"), "{error}");
    }

    #[test]
    fn answers_are_well_formed_for_any_input() {
        // Goal: over drawn tables, pods and assumptions (huge amounts, unknown
        // indexes, invalid terms included), one verdict per candidate and one
        // score within 0..=100 per node, and no panic.
        engenho_scheduler::testsuite::assert_well_formed::<NodeAffinity>(r#"{}"#);
        engenho_scheduler::testsuite::assert_well_formed::<NodeAffinity>(
            r#"{"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}, "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5, "preference": {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["3"]}]}}]}}"#,
        );
    }
}
