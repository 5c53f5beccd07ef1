//! Scheduler plugin: a pod whose `spec.nodeName` names a node may go only
//! to that node, as kube-scheduler's NodeName plugin (Kubernetes 1.32)
//! filters. It does not score.
//!
//! Configuration: none (`{}`).

use engenho_scheduler::{
    Abilities, Assumptions, Plan, Plugin, Pod, PodParts, Table, Verdict, Verdicts, export_scheduler, parse_no_config,
};

/// The parts of pods the plugin reads: none beyond `nodeName`.
pub(crate) const POD_PARTS: PodParts = PodParts::NONE;

/// The reason a node other than the one the pod names is refused
/// (unresolvable).
pub const REASON: &str = "node(s) didn't match the requested node name";

/// Keeps pods that name a node to that node.
pub struct NodeName;

impl Plugin for NodeName {
    fn configure(config: &str) -> Result<(Self, Abilities), String> {
        parse_no_config(config)?;
        Ok((Self, Abilities { filters: true, scores: false, reads_pods: false, pod_parts: POD_PARTS }))
    }

    /// A pod that names no node fits every node: nothing to filter.
    fn plan(&self, _: &Table, pod: &Pod) -> Plan {
        Plan { filter: !pod.node_name.is_empty(), score: false }
    }

    fn filter(&self, table: &Table, pod: &Pod, candidates: &[u32], _: &Assumptions) -> Verdicts {
        if pod.node_name.is_empty() {
            return Verdicts::all_fit(candidates.len());
        }
        candidates
            .iter()
            .map(|&index| match table.node(index) {
                Some(entry) if pod.node_name.is_empty() || pod.node_name == entry.node().name => Verdict::Fits,
                _ => Verdict::Unresolvable(vec![REASON.into()]),
            })
            .collect()
    }

    fn score(&self, _: &Table, _: &Pod, nodes: &[u32]) -> Vec<u32> {
        vec![0; nodes.len()]
    }
}

export_scheduler!(NodeName);

#[cfg(test)]
mod tests {
    use engenho_scheduler::testsuite::{node, pod};
    use engenho_scheduler::{Change, Instance, Judge};

    use super::*;

    fn instance() -> Instance<NodeName> {
        let (mut instance, abilities) = Instance::<NodeName>::configure("{}").expect("configures");
        assert_eq!(abilities, Abilities { filters: true, scores: false, reads_pods: false, pod_parts: POD_PARTS });
        instance.apply([Change::NodeSet(0, node("a")), Change::NodeSet(1, node("b"))]);
        instance
    }

    #[test]
    fn a_pod_naming_no_node_fits_everywhere() {
        // Goal: an empty nodeName leaves every node in, and the plugin
        // asks to be left out of such a pod's cycle.
        let mut instance = instance();
        let verdicts = instance.filter(&pod("p"), &[0, 1], &Assumptions::default());
        assert_eq!(verdicts, vec![Verdict::Fits, Verdict::Fits]);
        assert_eq!(instance.prepare(&[], &pod("p")), Plan { filter: false, score: false });
        let mut named = pod("q");
        named.node_name = "a".into();
        assert_eq!(instance.prepare(&[], &named), Plan { filter: true, score: false });
    }

    #[test]
    fn a_pod_naming_a_node_fits_only_there() {
        // Goal: other nodes are refused, unresolvably, in kube's words.
        let mut named = pod("p");
        named.node_name = "b".into();
        let verdicts = instance().filter(&named, &[0, 1], &Assumptions::default());
        assert_eq!(
            verdicts,
            vec![Verdict::Unresolvable(vec!["node(s) didn't match the requested node name".into()]), Verdict::Fits]
        );
        named.node_name = "nowhere".into();
        let verdicts = instance().filter(&named, &[0, 1], &Assumptions::default());
        assert!(verdicts.iter().all(|verdict| matches!(verdict, Verdict::Unresolvable(_))));
    }

    #[test]
    fn configuration_takes_nothing() {
        // Goal: empty or `{}` configures; any field is refused by name.
        assert!(Instance::<NodeName>::configure("").is_ok());
        let error = Instance::<NodeName>::configure(r#"{"nodeName": "a"}"#).err().expect("refused");
        assert!(error.contains("unknown field `nodeName`"), "{error}");
    }

    #[test]
    fn answers_are_well_formed_for_any_input() {
        // Goal: over drawn tables, pods and assumptions (huge amounts, unknown
        // indexes, invalid terms included), one verdict per candidate and one
        // score within 0..=100 per node, and no panic.
        engenho_scheduler::testsuite::assert_well_formed::<NodeName>(r#"{}"#);
    }
}
