//! The filter: what kube-scheduler's PreFilter counts once per call, and
//! the verdict for each node.

use std::collections::HashMap;

use engenho_scheduler::matching::{label_value, placed_term_matches, term_of_namespace_matches};
use engenho_scheduler::{Pod, PodAffinityTerm, Verdict, View};

use crate::{REASON_AFFINITY, REASON_ANTI_AFFINITY, REASON_EXISTING_ANTI_AFFINITY};

/// A topology domain: a node label's key and value.
type Domain<'a> = (&'a str, &'a str);

/// Placed pods counted by topology domain, for one pod.
pub struct Counts<'a> {
    /// Placed pods matching every required affinity term of the pod, per
    /// domain of each term.
    affinity: HashMap<Domain<'a>, u64>,
    /// Placed pods matching a required anti-affinity term of the pod, per
    /// domain of that term.
    anti_affinity: HashMap<Domain<'a>, u64>,
    /// Required anti-affinity terms of placed pods that match the pod, per
    /// domain of the placed pod.
    existing_anti_affinity: HashMap<Domain<'a>, u64>,
    /// The topology keys of `existing_anti_affinity`, each once.
    existing_keys: Vec<&'a str>,
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
        let mut counts = Self {
            affinity: HashMap::new(),
            anti_affinity: HashMap::new(),
            existing_anti_affinity: HashMap::new(),
            existing_keys: Vec::new(),
        };
        let domain = |index: u32, key: &'a str| {
            view.node(index).and_then(|node| label_value(&node.labels, key)).map(|value| (key, value))
        };
        let repel = |counts: &mut Self, domain: Option<Domain<'a>>, owners: u64| {
            if let Some(domain) = domain {
                *counts.existing_anti_affinity.entry(domain).or_default() += owners;
                if !counts.existing_keys.contains(&domain.0) {
                    counts.existing_keys.push(domain.0);
                }
            }
        };
        if view.assumes_anything() {
            // Pods taken away or added: each placed pod's terms, as it counts.
            for index in view.nodes_maybe_with_required_anti_affinity() {
                for placed in view.pods_on(index) {
                    for term in placed.pod_anti_affinity.required.iter().filter(|t| placed_term_matches(t, placed, pod))
                    {
                        repel(&mut counts, domain(index, &term.topology_key), 1);
                    }
                }
            }
        } else {
            // The table's terms, grouped: each distinct term asked once.
            for (namespace, term, owners) in view.table().repelling_terms() {
                if term_of_namespace_matches(term, namespace, pod) {
                    for (&index, &count) in owners {
                        repel(&mut counts, domain(index, &term.topology_key), u64::from(count));
                    }
                }
            }
        }
        let affinity_terms = &pod.pod_affinity.required;
        if let Some(first) = affinity_terms.first() {
            for (index, placed) in view.pods_maybe_selected(first.selector.as_ref()) {
                if matches_all(affinity_terms, pod, placed) {
                    for domain in affinity_terms.iter().filter_map(|term| domain(index, &term.topology_key)) {
                        *counts.affinity.entry(domain).or_default() += 1;
                    }
                }
            }
        }
        for term in &pod.pod_anti_affinity.required {
            for (index, placed) in view.pods_maybe_selected(term.selector.as_ref()) {
                if let Some(domain) = domain(index, &term.topology_key)
                    && placed_term_matches(term, pod, placed)
                {
                    *counts.anti_affinity.entry(domain).or_default() += 1;
                }
            }
        }
        counts
    }

    /// The verdict for the node at `index`.
    pub fn verdict(&self, view: &View<'a>, pod: &Pod, index: u32) -> Verdict {
        let Some(node) = view.node(index) else { return Verdict::Unresolvable(vec![REASON_AFFINITY.into()]) };
        if !self.satisfies_affinity(pod, &node.labels) {
            return Verdict::Unresolvable(vec![REASON_AFFINITY.into()]);
        }
        let in_domain = |counts: &HashMap<Domain<'_>, u64>, key: &str, value: &str| {
            counts.get(&(key, value)).is_some_and(|&count| count > 0)
        };
        let repelled = pod.pod_anti_affinity.required.iter().any(|term| {
            label_value(&node.labels, &term.topology_key)
                .is_some_and(|value| in_domain(&self.anti_affinity, &term.topology_key, value))
        });
        if repelled {
            return Verdict::Unfit(vec![REASON_ANTI_AFFINITY.into()]);
        }
        let repels = |key: &&str| {
            label_value(&node.labels, key).is_some_and(|value| in_domain(&self.existing_anti_affinity, key, value))
        };
        if self.existing_keys.iter().any(repels) {
            return Verdict::Unfit(vec![REASON_EXISTING_ANTI_AFFINITY.into()]);
        }
        Verdict::Fits
    }

    /// Whether a node with `labels` meets the pod's required affinity.
    fn satisfies_affinity(&self, pod: &Pod, labels: &[engenho_scheduler::Label]) -> bool {
        let terms = &pod.pod_affinity.required;
        let mut pods_in_every_domain = true;
        for term in terms {
            let Some(value) = label_value(labels, &term.topology_key) else { return false };
            if self.affinity.get(&(term.topology_key.as_str(), value)).is_none_or(|&count| count == 0) {
                pods_in_every_domain = false;
            }
        }
        // The first pod of a group whose terms select itself may go to any
        // node with the keys while no placed pod matches.
        pods_in_every_domain || (self.affinity.is_empty() && matches_all(terms, pod, pod))
    }
}
