//! A pod's spread constraints for one action, as kube-scheduler reads
//! them: its own, or the defaults with its services' and controllers'
//! selector.

use engenho_scheduler::matching::{
    blocks_scheduling, first_untolerated_taint, required_node_affinity_matches, selector_matches,
};
use engenho_scheduler::{InclusionPolicy, LabelSelector, Node, Pod, Topology, UnsatisfiableAction, View};

use crate::PodTopologySpread;

/// One constraint, its defaults filled in.
pub struct Constraint<'a> {
    /// The most the counts may differ between domains.
    pub max_skew: i64,
    /// The node label whose value is the domain.
    pub topology_key: &'a str,
    /// Which pods count (`None`: none).
    pub selector: Option<&'a LabelSelector>,
    /// The fewest domains assumed to exist.
    pub min_domains: u64,
    /// Whether the pod's node affinity narrows the nodes counted.
    pub node_affinity_policy: InclusionPolicy,
    /// Whether the nodes' taints narrow the nodes counted.
    pub node_taints_policy: InclusionPolicy,
}

impl<'a> Constraint<'a> {
    /// Whether the placed pod `placed` counts toward this constraint for
    /// `pod`: of its namespace, selected (an empty selector counts no pod,
    /// as kube counts).
    pub fn counts(&self, pod: &Pod, placed: &Pod) -> bool {
        placed.namespace == pod.namespace
            && self.selector.is_some_and(|selector| !selector.is_empty() && selector_matches(selector, &placed.labels))
    }

    /// The placed pods of `view` this constraint may count, with their
    /// node's index: none when its selector is absent or empty (it counts
    /// no pod), else those the table's label index offers for it.
    pub fn pods_counted<'s>(&'s self, view: &'s View<'a>) -> Box<dyn Iterator<Item = (u32, &'a Pod)> + 's> {
        match self.selector {
            Some(selector) if !selector.is_empty() => view.pods_maybe_selected(Some(selector)),
            _ => Box::new(std::iter::empty()),
        }
    }

    /// Whether `pod` matches its own constraint (adds itself to a domain).
    pub fn selects_itself(&self, pod: &Pod) -> bool {
        self.selector.is_some_and(|selector| selector_matches(selector, &pod.labels))
    }

    /// Whether the node inclusion policies can leave out a node with the
    /// key for `pod` (its node selector or required node affinity, when
    /// honoured; taints, when honoured).
    pub fn narrows_nodes(&self, pod: &Pod) -> bool {
        let affinity = !pod.node_selector.is_empty()
            || pod.node_affinity.as_ref().is_some_and(|affinity| affinity.required.is_some());
        (self.node_affinity_policy == InclusionPolicy::Honor && affinity)
            || self.node_taints_policy == InclusionPolicy::Honor
    }

    /// Whether the node inclusion policies let `node` count for `pod`.
    pub fn includes(&self, pod: &Pod, node: &Node) -> bool {
        if self.node_affinity_policy == InclusionPolicy::Honor && !required_node_affinity_matches(pod, node) {
            return false;
        }
        !(self.node_taints_policy == InclusionPolicy::Honor
            && first_untolerated_taint(&node.taints, &pod.tolerations, blocks_scheduling).is_some())
    }
}

impl PodTopologySpread {
    /// `pod`'s constraints for `action`.
    pub fn constraints<'a>(&'a self, pod: &'a Pod, action: UnsatisfiableAction) -> Vec<Constraint<'a>> {
        if !pod.spread_constraints.is_empty() {
            return pod
                .spread_constraints
                .iter()
                .filter(|constraint| constraint.when_unsatisfiable == action)
                .map(|constraint| Constraint {
                    max_skew: i64::from(constraint.max_skew),
                    topology_key: &constraint.topology_key,
                    selector: constraint.selector.as_ref(),
                    min_domains: u64::from(constraint.min_domains.max(1)),
                    node_affinity_policy: constraint.node_affinity_policy,
                    node_taints_policy: constraint.node_taints_policy,
                })
                .collect();
        }
        let Some(selector) = pod.default_spread_selector.as_ref().filter(|selector| !selector.is_empty()) else {
            return Vec::new();
        };
        self.defaults
            .iter()
            .filter(|constraint| constraint.when_unsatisfiable == action)
            .map(|constraint| Constraint {
                max_skew: i64::from(constraint.max_skew),
                topology_key: &constraint.topology_key,
                selector: Some(selector),
                min_domains: 1,
                node_affinity_policy: InclusionPolicy::Honor,
                node_taints_policy: InclusionPolicy::Ignore,
            })
            .collect()
    }
}

/// Whether the node at `index` has every key of `topologies` (the
/// constraints').
pub fn has_every_key(topologies: &[Topology<'_>], index: u32) -> bool {
    topologies.iter().all(|topology| topology.domain(index).is_some())
}
