//! The score: weights summed per topology domain, as kube-scheduler's
//! PreScore gathers them, then per node, normalized.

use std::collections::HashMap;

use engenho_scheduler::matching::{label_value, placed_term_matches, term_of_namespace_matches};
use engenho_scheduler::normalization::{min_max_normalize, saturating_mul};
use engenho_scheduler::{Label, Pod, PodAffinityTerm, Table};

use crate::InterPodAffinity;

/// Weights by topology key, then by the key's value.
type DomainWeights<'a> = HashMap<&'a str, HashMap<&'a str, i64>>;

/// Adds `weight` to the domain of `term` on a node with `labels`, when
/// `term` (a term of `owner`) matches `pod`.
fn add<'a>(
    weights: &mut DomainWeights<'a>,
    term: &'a PodAffinityTerm,
    owner: &Pod,
    pod: &Pod,
    labels: &'a [Label],
    weight: i64,
) {
    if let Some(value) = label_value(labels, &term.topology_key)
        && placed_term_matches(term, owner, pod)
    {
        let sum = weights.entry(&term.topology_key).or_default().entry(value).or_default();
        *sum = sum.saturating_add(weight);
    }
}

/// One score per node of `nodes`.
pub fn score(plugin: &InterPodAffinity, table: &Table, pod: &Pod, nodes: &[u32]) -> Vec<u32> {
    let has_preferred = !pod.pod_affinity.preferred.is_empty() || !pod.pod_anti_affinity.preferred.is_empty();
    if plugin.ignore_preferred_terms_of_existing_pods && !has_preferred {
        return vec![0; nodes.len()];
    }
    let mut weights: DomainWeights<'_> = HashMap::new();
    let view = table.current();
    let labels_of = |index: u32| table.node(index).map_or(&[][..], |entry| &entry.node().labels);
    // The pod's preferred terms, over the pods their selectors can pick.
    let preferred = pod.pod_affinity.preferred.iter().map(|weighted| (weighted, 1));
    let unwanted = pod.pod_anti_affinity.preferred.iter().map(|weighted| (weighted, -1));
    for (weighted, sign) in preferred.chain(unwanted) {
        let weight = sign * i64::from(weighted.weight);
        for (index, placed) in view.pods_maybe_selected(weighted.term.selector.as_ref()) {
            add(&mut weights, &weighted.term, pod, placed, labels_of(index), weight);
        }
    }
    // Placed pods' terms, each distinct term asked once.
    for (namespace, term_use, term, owners) in table.placed_terms() {
        let weight = plugin.weight(term_use);
        if weight == 0 || !term_of_namespace_matches(term, namespace, pod) {
            continue;
        }
        for (&index, &count) in owners {
            if let Some(value) = label_value(labels_of(index), &term.topology_key) {
                let sum = weights.entry(&term.topology_key).or_default().entry(value).or_default();
                *sum = sum.saturating_add(saturating_mul(weight, i64::from(count)));
            }
        }
    }
    if weights.is_empty() {
        return vec![0; nodes.len()];
    }
    let sums: Vec<i64> = nodes
        .iter()
        .map(|&index| {
            let labels = table.node(index).map_or(&[][..], |entry| &entry.node().labels);
            weights
                .iter()
                .filter_map(|(key, values)| label_value(labels, key).and_then(|value| values.get(value)))
                .fold(0i64, |sum, weight| sum.saturating_add(*weight))
        })
        .collect();
    min_max_normalize(&sums)
}
