//! The score: weights summed per topology domain, as kube-scheduler's
//! PreScore gathers them, then per node, normalized.

use std::collections::HashMap;

use engenho_scheduler::matching::{placed_term_matches, term_of_namespace_matches};
use engenho_scheduler::normalization::{min_max_normalize, saturating_mul};
use engenho_scheduler::{ByNumber, Pod, Table, Topology};

use crate::InterPodAffinity;

/// Weights summed per domain of one topology key.
struct KeyWeights<'a> {
    /// The key.
    key: &'a str,
    /// Its domains.
    topology: Topology<'a>,
    /// Weights by domain number.
    by_domain: HashMap<u32, i64, ByNumber>,
}

/// Weights by topology key, each key once, then by domain.
#[derive(Default)]
struct DomainWeights<'a> {
    keys: Vec<KeyWeights<'a>>,
}

impl<'a> DomainWeights<'a> {
    /// Adds `weight` to the domain of the node at `index` by `key`, if the
    /// node has the key.
    fn add(&mut self, table: &'a Table, key: &'a str, index: u32, weight: i64) {
        let at = match self.keys.iter().position(|known| known.key == key) {
            Some(at) => at,
            None => {
                let topology = table.topology(key);
                self.keys.push(KeyWeights { key, topology, by_domain: HashMap::default() });
                self.keys.len() - 1
            }
        };
        let weights = &mut self.keys[at];
        if let Some(domain) = weights.topology.domain(index) {
            let sum = weights.by_domain.entry(domain).or_default();
            *sum = sum.saturating_add(weight);
        }
    }

    /// What the node at `index` sums over its domains.
    fn of_node(&self, index: u32) -> i64 {
        self.keys
            .iter()
            .filter_map(|weights| weights.by_domain.get(&weights.topology.domain(index)?))
            .fold(0i64, |sum, weight| sum.saturating_add(*weight))
    }
}

/// One score per node of `nodes`.
pub fn score(plugin: &InterPodAffinity, table: &Table, pod: &Pod, nodes: &[u32]) -> Vec<u32> {
    let has_preferred = !pod.pod_affinity.preferred.is_empty() || !pod.pod_anti_affinity.preferred.is_empty();
    if plugin.ignore_preferred_terms_of_existing_pods && !has_preferred {
        return vec![0; nodes.len()];
    }
    let mut weights = DomainWeights::default();
    let view = table.current();
    // The pod's preferred terms, over the pods their selectors can pick.
    let preferred = pod.pod_affinity.preferred.iter().map(|weighted| (weighted, 1));
    let unwanted = pod.pod_anti_affinity.preferred.iter().map(|weighted| (weighted, -1));
    for (weighted, sign) in preferred.chain(unwanted) {
        let weight = sign * i64::from(weighted.weight);
        let term = &weighted.term;
        for (index, placed) in view.pods_maybe_selected(term.selector.as_ref()) {
            if placed_term_matches(term, pod, placed) {
                weights.add(table, &term.topology_key, index, weight);
            }
        }
    }
    // Placed pods' terms, each distinct term asked once.
    for (namespace, term_use, term, owners) in table.placed_terms() {
        let weight = plugin.weight(term_use);
        if weight == 0 || !term_of_namespace_matches(term, namespace, pod) {
            continue;
        }
        for (&index, &count) in owners {
            weights.add(table, &term.topology_key, index, saturating_mul(weight, i64::from(count)));
        }
    }
    if weights.keys.iter().all(|key| key.by_domain.is_empty()) {
        return vec![0; nodes.len()];
    }
    let sums: Vec<i64> = nodes.iter().map(|&index| weights.of_node(index)).collect();
    min_max_normalize(&sums)
}
