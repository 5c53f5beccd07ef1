//! Scheduler plugin: a cordoned node (`spec.unschedulable`) takes only pods
//! that tolerate the `node.kubernetes.io/unschedulable:NoSchedule` taint,
//! as kube-scheduler's NodeUnschedulable plugin (Kubernetes 1.32) filters.
//! It does not score.
//!
//! Configuration: none (`{}`).

use engenho_scheduler::matching::tolerated;
use engenho_scheduler::{
    Abilities, Assumptions, Plan, Plugin, Pod, PodParts, Table, Taint, TaintEffect, Verdict, Verdicts,
    export_scheduler, parse_no_config,
};

/// The parts of pods the plugin reads: tolerations (of the cordon).
pub(crate) const POD_PARTS: PodParts = PodParts { tolerations: true, ..PodParts::NONE };

/// The reason a cordoned node is refused (unresolvable).
pub const REASON: &str = "node(s) were unschedulable";

/// The key of the taint a pod tolerates to go to cordoned nodes.
pub const UNSCHEDULABLE_TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

/// Keeps pods off cordoned nodes.
pub struct NodeUnschedulable {
    /// The taint a cordoned node counts as having.
    cordon: Taint,
}

impl Plugin for NodeUnschedulable {
    fn configure(config: &str) -> Result<(Self, Abilities), String> {
        parse_no_config(config)?;
        let cordon =
            Taint { key: UNSCHEDULABLE_TAINT_KEY.into(), value: String::new(), effect: TaintEffect::NoSchedule };
        Ok((Self { cordon }, Abilities { filters: true, scores: false, reads_pods: false, pod_parts: POD_PARTS }))
    }

    /// Nothing to filter while no node is cordoned, or for a pod that
    /// tolerates the cordon.
    fn plan(&self, table: &Table, pod: &Pod) -> Plan {
        Plan { filter: table.cordoned_nodes() > 0 && !tolerated(&pod.tolerations, &self.cordon), score: false }
    }

    fn filter(&self, table: &Table, pod: &Pod, candidates: &[u32], _: &Assumptions) -> Verdicts {
        let tolerates_cordon = tolerated(&pod.tolerations, &self.cordon);
        candidates
            .iter()
            .map(|&index| match table.node(index) {
                Some(entry) if !entry.node().unschedulable || tolerates_cordon => Verdict::Fits,
                _ => Verdict::Unresolvable(vec![REASON.into()]),
            })
            .collect()
    }

    fn score(&self, _: &Table, _: &Pod, nodes: &[u32]) -> Vec<u32> {
        vec![0; nodes.len()]
    }
}

export_scheduler!(NodeUnschedulable);

#[cfg(test)]
mod tests {
    use engenho_scheduler::testsuite::{node, pod, toleration};
    use engenho_scheduler::{Change, Instance, Judge, TolerationOperator};

    use super::*;

    fn instance() -> Instance<NodeUnschedulable> {
        let (mut instance, abilities) = Instance::<NodeUnschedulable>::configure("{}").expect("configures");
        assert!(abilities.filters && !abilities.scores && !abilities.reads_pods);
        let mut cordoned = node("cordoned");
        cordoned.unschedulable = true;
        instance.apply([Change::NodeSet(0, node("open")), Change::NodeSet(1, cordoned)]);
        instance
    }

    #[test]
    fn cordoned_nodes_refuse_pods() {
        // Goal: a cordoned node is refused unresolvably, in kube's words;
        // an open node fits.
        let verdicts = instance().filter(&pod("p"), &[0, 1], &Assumptions::default());
        assert_eq!(verdicts, vec![Verdict::Fits, Verdict::Unresolvable(vec!["node(s) were unschedulable".into()])]);
    }

    #[test]
    fn pods_skip_the_filter_while_nothing_is_cordoned_or_when_tolerating_it() {
        // Goal: the filter is asked for only while a node is cordoned, and
        // not for a pod that tolerates the cordon; the count follows nodes
        // cordoned, opened and removed.
        let mut instance = instance();
        assert_eq!(instance.prepare(&[], &pod("p")), Plan { filter: true, score: false });
        let mut tolerant = pod("t");
        tolerant.tolerations = vec![toleration("", TolerationOperator::Exists, "", None)];
        assert_eq!(instance.prepare(&[], &tolerant), Plan { filter: false, score: false });
        assert!(!instance.prepare(&[Change::NodeSet(1, node("opened"))], &pod("p")).filter);
        let mut cordoned = node("cordoned");
        cordoned.unschedulable = true;
        assert!(instance.prepare(&[Change::NodeSet(2, cordoned)], &pod("p")).filter);
        assert!(!instance.prepare(&[Change::NodeRemoved(2)], &pod("p")).filter);
    }

    #[test]
    fn tolerating_the_unschedulable_taint_lets_a_pod_in() {
        // Goal: tolerations that tolerate the NoSchedule unschedulable
        // taint (by key, or everything) let the pod in; others do not.
        let fits_with = |tolerations| {
            let mut tolerant = pod("p");
            tolerant.tolerations = tolerations;
            instance().filter(&tolerant, &[1], &Assumptions::default())[0] == Verdict::Fits
        };
        use TolerationOperator::{Equal, Exists};
        assert!(fits_with(vec![toleration(UNSCHEDULABLE_TAINT_KEY, Exists, "", Some(TaintEffect::NoSchedule))]));
        assert!(fits_with(vec![toleration(UNSCHEDULABLE_TAINT_KEY, Equal, "", None)]));
        assert!(fits_with(vec![toleration("", Exists, "", None)]));
        assert!(!fits_with(vec![toleration(UNSCHEDULABLE_TAINT_KEY, Exists, "", Some(TaintEffect::NoExecute))]));
        assert!(!fits_with(vec![toleration(UNSCHEDULABLE_TAINT_KEY, Equal, "yes", None)]));
        assert!(!fits_with(vec![toleration("other", Exists, "", None)]));
    }

    #[test]
    fn configuration_takes_nothing() {
        // Goal: `{}` configures; any field is refused by name.
        let error = Instance::<NodeUnschedulable>::configure(r#"{"x": true}"#).err().expect("refused");
        assert!(error.contains("unknown field `x`"), "{error}");
    }

    #[test]
    fn answers_are_well_formed_for_any_input() {
        // Goal: over drawn tables, pods and assumptions (huge amounts, unknown
        // indexes, invalid terms included), one verdict per candidate and one
        // score within 0..=100 per node, and no panic.
        engenho_scheduler::testsuite::assert_well_formed::<NodeUnschedulable>(r#"{}"#);
    }
}
