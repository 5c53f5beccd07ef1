//! The score: matching pods per domain of the scored nodes, weighted by
//! how many domains there are, inverted and normalized.

use std::collections::{HashMap, HashSet};

use engenho_scheduler::matching::label_value;
use engenho_scheduler::{MAX_NODE_SCORE, Pod, Table, UnsatisfiableAction};

use crate::constraints::has_every_key;
use crate::{HOSTNAME_KEY, PodTopologySpread};

/// One score per node of `nodes`.
pub fn score(plugin: &PodTopologySpread, table: &Table, pod: &Pod, nodes: &[u32]) -> Vec<u32> {
    let constraints = plugin.constraints(pod, UnsatisfiableAction::ScheduleAnyway);
    if constraints.is_empty() || nodes.is_empty() {
        return vec![0; nodes.len()];
    }
    // With the system defaults, nodes without a zone still spread by
    // hostname.
    let require_every_key = !pod.spread_constraints.is_empty() || !plugin.system_defaulted;
    let mut ignored: HashSet<u32> = HashSet::new();
    let mut counts: Vec<HashMap<&str, i64>> = vec![HashMap::new(); constraints.len()];
    for &index in nodes {
        let Some(entry) = table.node(index) else { continue };
        let node = entry.node();
        if require_every_key && !has_every_key(node, &constraints) {
            ignored.insert(index);
            continue;
        }
        for (constraint, domains) in constraints.iter().zip(&mut counts) {
            if constraint.topology_key != HOSTNAME_KEY {
                domains.entry(label_value(&node.labels, constraint.topology_key).unwrap_or("")).or_default();
            }
        }
    }
    let weights: Vec<f64> = constraints
        .iter()
        .zip(&counts)
        .map(|(constraint, domains)| {
            let size =
                if constraint.topology_key == HOSTNAME_KEY { nodes.len() - ignored.len() } else { domains.len() };
            ((size + 2) as f64).ln()
        })
        .collect();
    // Per constraint: matching pods per node, through the label index.
    let view = table.current();
    let per_node: Vec<HashMap<u32, i64>> = constraints
        .iter()
        .map(|constraint| {
            let mut per_node: HashMap<u32, i64> = HashMap::new();
            for (index, placed) in constraint.pods_counted(&view) {
                if constraint.counts(pod, placed) {
                    *per_node.entry(index).or_default() += 1;
                }
            }
            per_node
        })
        .collect();
    for (index, entry) in table.nodes() {
        let node = entry.node();
        if require_every_key && !has_every_key(node, &constraints) {
            continue;
        }
        for ((constraint, domains), matching) in constraints.iter().zip(&mut counts).zip(&per_node) {
            if !constraint.includes(pod, node) {
                continue;
            }
            let value = label_value(&node.labels, constraint.topology_key).unwrap_or("");
            if let Some(sum) = domains.get_mut(value) {
                *sum = sum.saturating_add(matching.get(&index).copied().unwrap_or(0));
            }
        }
    }
    let raw: Vec<Option<i64>> = nodes
        .iter()
        .map(|&index| {
            if ignored.contains(&index) {
                return None;
            }
            let entry = table.node(index)?;
            let mut score = 0.0;
            let each = constraints.iter().zip(&counts).zip(&weights).zip(&per_node);
            for (((constraint, domains), weight), matching) in each {
                let Some(value) = label_value(&entry.node().labels, constraint.topology_key) else { continue };
                let count = if constraint.topology_key == HOSTNAME_KEY {
                    matching.get(&index).copied().unwrap_or(0) as f64
                } else {
                    domains.get(value).copied().unwrap_or(0) as f64
                };
                score += count * weight + (constraint.max_skew - 1) as f64;
            }
            Some(score.round() as i64)
        })
        .collect();
    normalize(&raw)
}

/// kube's inversion: ignored nodes (`None`) score 0; the others
/// `100 × (max + min − score) / max`, or 100 each when the highest is 0.
fn normalize(raw: &[Option<i64>]) -> Vec<u32> {
    let scored = || raw.iter().flatten().copied();
    let lowest = i128::from(scored().min().unwrap_or(0));
    let highest = i128::from(scored().max().unwrap_or(0).max(0));
    raw.iter()
        .map(|score| match score {
            None => 0,
            Some(_) if highest == 0 => MAX_NODE_SCORE,
            Some(score) => {
                let inverted = i128::from(MAX_NODE_SCORE) * (highest + lowest - i128::from(*score)) / highest;
                u32::try_from(inverted.clamp(0, i128::from(MAX_NODE_SCORE))).unwrap_or(0)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_inverts_between_the_extremes() {
        // Goal: kube's NormalizeScore: ignored nodes 0, the lowest raw
        // score 100, all 100 when every raw score is 0.
        assert_eq!(normalize(&[Some(2), Some(4), None]), vec![100, 50, 0]);
        assert_eq!(normalize(&[Some(0), Some(0)]), vec![100, 100]);
        assert_eq!(normalize(&[Some(3), Some(3)]), vec![100, 100]);
        assert_eq!(normalize(&[None]), vec![0]);
        assert!(normalize(&[]).is_empty());
    }
}
