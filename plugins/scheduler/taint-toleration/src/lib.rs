//! Scheduler plugin: taints against a pod's tolerations, as kube-scheduler's
//! TaintToleration plugin (Kubernetes 1.32). It filters out nodes with a
//! `NoSchedule` or `NoExecute` taint the pod does not tolerate (naming the
//! first such taint), and scores nodes by how many `PreferNoSchedule`
//! taints the pod does not tolerate, counting only its tolerations whose
//! effect is `PreferNoSchedule` or unset: fewest scores 100.
//!
//! Configuration: none (`{}`).

use engenho_scheduler::matching::{blocks_scheduling, first_untolerated_taint, tolerated};
use engenho_scheduler::normalization::default_normalize;
use engenho_scheduler::{
    Abilities, Assumptions, Plan, Plugin, Pod, PodParts, Table, TaintEffect, Toleration, Verdict, Verdicts,
    export_scheduler, parse_no_config,
};

/// The parts of pods the plugin reads: tolerations.
pub(crate) const POD_PARTS: PodParts = PodParts { tolerations: true, ..PodParts::NONE };

/// The reason a node with an untolerated taint is refused (unresolvable),
/// as kube-scheduler words it: `node(s) had untolerated taint {key: value}`.
pub fn reason(key: &str, value: &str) -> String {
    format!("node(s) had untolerated taint {{{key}: {value}}}")
}

/// Keeps pods off nodes whose taints they do not tolerate.
pub struct TaintToleration;

impl Plugin for TaintToleration {
    fn configure(config: &str) -> Result<(Self, Abilities), String> {
        parse_no_config(config)?;
        Ok((Self, Abilities { filters: true, scores: true, reads_pods: false, pod_parts: POD_PARTS }))
    }

    /// Filter while some node carries a `NoSchedule` or `NoExecute` taint
    /// the pod does not tolerate, score while some node carries such a
    /// `PreferNoSchedule` taint; on a cluster without them, neither.
    fn plan(&self, table: &Table, pod: &Pod) -> Plan {
        let preferring = preferring(pod);
        Plan {
            filter: table.taints().any(|taint| blocks_scheduling(taint.effect) && !tolerated(&pod.tolerations, taint)),
            score: table
                .taints()
                .any(|taint| taint.effect == TaintEffect::PreferNoSchedule && !tolerated(&preferring, taint)),
        }
    }

    fn filter(&self, table: &Table, pod: &Pod, candidates: &[u32], _: &Assumptions) -> Verdicts {
        candidates
            .iter()
            .map(|&index| {
                let taints = table.node(index).map_or(&[][..], |entry| &entry.node().taints);
                match first_untolerated_taint(taints, &pod.tolerations, blocks_scheduling) {
                    Some(taint) => Verdict::Unresolvable(vec![reason(&taint.key, &taint.value)]),
                    None => Verdict::Fits,
                }
            })
            .collect()
    }

    fn score(&self, table: &Table, pod: &Pod, nodes: &[u32]) -> Vec<u32> {
        let preferring = preferring(pod);
        let counts: Vec<i64> = nodes
            .iter()
            .map(|&index| {
                let taints = table.node(index).map_or(&[][..], |entry| &entry.node().taints);
                let untolerated = taints
                    .iter()
                    .filter(|taint| taint.effect == TaintEffect::PreferNoSchedule && !tolerated(&preferring, taint))
                    .count();
                i64::try_from(untolerated).unwrap_or(i64::MAX)
            })
            .collect();
        default_normalize(&counts, true)
    }
}

/// The pod's tolerations that count in the score: those for
/// `PreferNoSchedule` or every effect.
fn preferring(pod: &Pod) -> Vec<Toleration> {
    pod.tolerations
        .iter()
        .filter(|toleration| toleration.effect.is_none_or(|effect| effect == TaintEffect::PreferNoSchedule))
        .cloned()
        .collect()
}

export_scheduler!(TaintToleration);

#[cfg(test)]
mod tests {
    use engenho_scheduler::testsuite::{node, pod, taint, toleration};
    use engenho_scheduler::{Change, Instance, Judge, Node, TolerationOperator};

    use super::*;

    fn instance(nodes: Vec<Node>) -> Instance<TaintToleration> {
        let (mut instance, abilities) = Instance::<TaintToleration>::configure("{}").expect("configures");
        assert!(abilities.filters && abilities.scores && !abilities.reads_pods);
        let changes: Vec<Change> =
            nodes.into_iter().zip(0..).map(|(node, index)| Change::NodeSet(index, node)).collect();
        instance.apply(changes);
        instance
    }

    fn tainted(name: &str, taints: Vec<engenho_scheduler::Taint>) -> Node {
        Node { taints, ..node(name) }
    }

    #[test]
    fn untolerated_blocking_taints_refuse_the_node() {
        // Goal: the first untolerated NoSchedule/NoExecute taint is named
        // in kube's format; PreferNoSchedule taints do not filter.
        use TaintEffect::*;
        let mut instance = instance(vec![
            tainted("a", vec![taint("soft", "x", PreferNoSchedule)]),
            tainted(
                "b",
                vec![taint("node.kubernetes.io/unreachable", "", NoExecute), taint("gpu", "true", NoSchedule)],
            ),
            tainted("c", vec![taint("gpu", "true", NoSchedule)]),
        ]);
        let verdicts = instance.filter(&pod("p"), &[0, 1, 2], &Assumptions::default());
        assert_eq!(verdicts[0], Verdict::Fits);
        assert_eq!(
            verdicts[1],
            Verdict::Unresolvable(vec!["node(s) had untolerated taint {node.kubernetes.io/unreachable: }".into()])
        );
        assert_eq!(verdicts[2], Verdict::Unresolvable(vec!["node(s) had untolerated taint {gpu: true}".into()]));
        let mut tolerant = pod("p");
        tolerant.tolerations = vec![toleration("gpu", TolerationOperator::Equal, "true", Some(NoSchedule))];
        let verdicts = instance.filter(&tolerant, &[1, 2], &Assumptions::default());
        assert_eq!(
            verdicts[0],
            Verdict::Unresolvable(vec!["node(s) had untolerated taint {node.kubernetes.io/unreachable: }".into()])
        );
        assert_eq!(verdicts[1], Verdict::Fits);
    }

    #[test]
    fn pods_skip_the_calls_no_untolerated_taint_needs() {
        // Goal: the filter is asked for only while a node carries a
        // blocking taint the pod does not tolerate, the score only while
        // one carries such a soft taint; the taints follow nodes changed
        // and removed.
        use TaintEffect::*;
        let mut instance = instance(vec![node("clean")]);
        assert_eq!(instance.prepare(&[], &pod("p")), Plan { filter: false, score: false });
        let gpu = tainted("gpu", vec![taint("gpu", "true", NoSchedule)]);
        assert_eq!(instance.prepare(&[Change::NodeSet(1, gpu)], &pod("p")), Plan { filter: true, score: false });
        let mut tolerant = pod("t");
        tolerant.tolerations = vec![toleration("gpu", TolerationOperator::Exists, "", None)];
        assert_eq!(instance.prepare(&[], &tolerant), Plan { filter: false, score: false });
        let soft = tainted("gpu", vec![taint("spot", "", PreferNoSchedule)]);
        assert_eq!(instance.prepare(&[Change::NodeSet(1, soft)], &pod("p")), Plan { filter: false, score: true });
        assert_eq!(instance.prepare(&[Change::NodeRemoved(1)], &pod("p")), Plan { filter: false, score: false });
    }

    #[test]
    fn fewer_untolerated_soft_taints_score_higher() {
        // Goal: counts of untolerated PreferNoSchedule taints, normalized
        // reversed against the most; only tolerations for
        // PreferNoSchedule or every effect count.
        use TaintEffect::*;
        let mut instance = instance(vec![
            node("clean"),
            tainted("one", vec![taint("a", "", PreferNoSchedule), taint("hard", "", NoSchedule)]),
            tainted(
                "three",
                vec![
                    taint("a", "", PreferNoSchedule),
                    taint("b", "", PreferNoSchedule),
                    taint("c", "", PreferNoSchedule),
                ],
            ),
        ]);
        assert_eq!(instance.score(&pod("p"), &[0, 1, 2]), vec![100, 67, 0]);
        let mut tolerant = pod("p");
        tolerant.tolerations = vec![
            toleration("b", TolerationOperator::Exists, "", None),
            toleration("c", TolerationOperator::Exists, "", Some(NoSchedule)),
        ];
        assert_eq!(instance.score(&tolerant, &[0, 1, 2]), vec![100, 50, 0]);
        assert_eq!(instance.score(&tolerant, &[0]), vec![100]);
        assert!(instance.score(&tolerant, &[]).is_empty());
    }

    #[test]
    fn configuration_takes_nothing() {
        // Goal: any field is refused by name.
        let error = Instance::<TaintToleration>::configure(r#"{"weight": 3}"#).err().expect("refused");
        assert!(error.contains("unknown field `weight`"), "{error}");
    }

    #[test]
    fn answers_are_well_formed_for_any_input() {
        // Goal: over drawn tables, pods and assumptions (huge amounts, unknown
        // indexes, invalid terms included), one verdict per candidate and one
        // score within 0..=100 per node, and no panic.
        engenho_scheduler::testsuite::assert_well_formed::<TaintToleration>(r#"{}"#);
    }
}
