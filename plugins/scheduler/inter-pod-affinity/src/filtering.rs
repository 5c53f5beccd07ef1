//! The filter: what kube-scheduler's PreFilter counts once per call, and
//! the verdict for each node.

use std::collections::HashMap;

use engenho_scheduler::matching::{placed_term_matches, term_of_namespace_matches};
use engenho_scheduler::{ByNumber, Pod, PodAffinityTerm, Topology, Verdict, View};

use crate::{REASON_AFFINITY, REASON_ANTI_AFFINITY, REASON_EXISTING_ANTI_AFFINITY};

/// Placed pods counted per domain of one topology key.
struct DomainCounts<'a> {
    /// The key's domains.
    topology: Topology<'a>,
    /// Pods by domain number.
    pods: HashMap<u32, u64, ByNumber>,
}

impl<'a> DomainCounts<'a> {
    fn new(topology: Topology<'a>) -> Self {
        Self { topology, pods: HashMap::default() }
    }

    /// Adds `pods` to the domain of the node at `index`, if it has the key.
    fn add(&mut self, index: u32, pods: u64) {
        if let Some(domain) = self.topology.domain(index) {
            *self.pods.entry(domain).or_default() += pods;
        }
    }

    /// Whether the domain of the node at `index` holds a counted pod
    /// (`None`: the node lacks the key).
    fn holds_any(&self, index: u32) -> Option<bool> {
        let domain = self.topology.domain(index)?;
        Some(self.pods.get(&domain).is_some_and(|&pods| pods > 0))
    }
}

/// Placed pods counted by topology domain, for one pod.
pub struct Counts<'a> {
    /// Per required affinity term of the pod: placed pods matching every
    /// such term, per domain of the term's key.
    affinity: Vec<DomainCounts<'a>>,
    /// Per required anti-affinity term of the pod: placed pods matching
    /// it, per domain of its key.
    anti_affinity: Vec<DomainCounts<'a>>,
    /// Required anti-affinity terms of placed pods that match the pod, per
    /// topology key (each once), per domain of the placed pod.
    existing_anti_affinity: Vec<(&'a str, DomainCounts<'a>)>,
}

/// Whether `pod` matches every term of `terms` (and there is one), each
/// read as a term of `owner`.
fn matches_all(terms: &[PodAffinityTerm], owner: &Pod, pod: &Pod) -> bool {
    !terms.is_empty() && terms.iter().all(|term| placed_term_matches(term, owner, pod))
}

impl<'a> Counts<'a> {
    /// Counts the placed pods of `view` that matter to `pod`: placed pods'
    /// anti-affinity only on the nodes that hold pods with some, and the
    /// pod's own terms only over the pods their selectors can pick (through
    /// the table's label index).
    pub fn of(view: &View<'a>, pod: &'a Pod) -> Self {
        let table = view.table();
        let by_term = |terms: &'a [PodAffinityTerm]| -> Vec<DomainCounts<'a>> {
            terms.iter().map(|term| DomainCounts::new(table.topology(&term.topology_key))).collect()
        };
        let mut counts = Self {
            affinity: by_term(&pod.pod_affinity.required),
            anti_affinity: by_term(&pod.pod_anti_affinity.required),
            existing_anti_affinity: Vec::new(),
        };
        let repel = |counts: &mut Self, key: &'a str, index: u32, owners: u64| {
            let existing = &mut counts.existing_anti_affinity;
            let at = match existing.iter().position(|(known, _)| *known == key) {
                Some(at) => at,
                None => {
                    existing.push((key, DomainCounts::new(table.topology(key))));
                    existing.len() - 1
                }
            };
            existing[at].1.add(index, owners);
        };
        if view.assumes_anything() {
            // Pods taken away or added: each placed pod's terms, as it counts.
            for index in view.nodes_maybe_with_required_anti_affinity() {
                for placed in view.pods_on(index) {
                    for term in placed.pod_anti_affinity.required.iter().filter(|t| placed_term_matches(t, placed, pod))
                    {
                        repel(&mut counts, &term.topology_key, index, 1);
                    }
                }
            }
        } else {
            // The table's terms, grouped: each distinct term asked once.
            for (namespace, term, owners) in table.repelling_terms() {
                if term_of_namespace_matches(term, namespace, pod) {
                    for (&index, &count) in owners {
                        repel(&mut counts, &term.topology_key, index, u64::from(count));
                    }
                }
            }
        }
        let affinity_terms = &pod.pod_affinity.required;
        if let Some(first) = affinity_terms.first() {
            for (index, placed) in view.pods_maybe_selected(first.selector.as_ref()) {
                if matches_all(affinity_terms, pod, placed) {
                    for term_counts in &mut counts.affinity {
                        term_counts.add(index, 1);
                    }
                }
            }
        }
        for (term, term_counts) in pod.pod_anti_affinity.required.iter().zip(&mut counts.anti_affinity) {
            for (index, placed) in view.pods_maybe_selected(term.selector.as_ref()) {
                if placed_term_matches(term, pod, placed) {
                    term_counts.add(index, 1);
                }
            }
        }
        counts
    }

    /// The verdict for the node at `index`.
    pub fn verdict(&self, view: &View<'a>, pod: &Pod, index: u32) -> Verdict {
        if !view.table().has_node(index) || !self.satisfies_affinity(pod, index) {
            return Verdict::Unresolvable(vec![REASON_AFFINITY.into()]);
        }
        if self.anti_affinity.iter().any(|counts| counts.holds_any(index) == Some(true)) {
            return Verdict::Unfit(vec![REASON_ANTI_AFFINITY.into()]);
        }
        if self.existing_anti_affinity.iter().any(|(_, counts)| counts.holds_any(index) == Some(true)) {
            return Verdict::Unfit(vec![REASON_EXISTING_ANTI_AFFINITY.into()]);
        }
        Verdict::Fits
    }

    /// Whether the node at `index` meets the pod's required affinity.
    fn satisfies_affinity(&self, pod: &Pod, index: u32) -> bool {
        let mut pods_in_every_domain = true;
        for counts in &self.affinity {
            match counts.holds_any(index) {
                None => return false,
                Some(false) => pods_in_every_domain = false,
                Some(true) => {}
            }
        }
        // The first pod of a group whose terms select itself may go to any
        // node with the keys while no placed pod matches.
        let none_placed = self.affinity.iter().all(|counts| counts.pods.is_empty());
        pods_in_every_domain || (none_placed && matches_all(&pod.pod_affinity.required, pod, pod))
    }
}
