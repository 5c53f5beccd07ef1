//! The score: matching pods per domain of the scored nodes, weighted by
//! how many domains there are, inverted and normalized.

use std::collections::{HashMap, HashSet};

use engenho_scheduler::matching::label_value;
use engenho_scheduler::normalization::mul_div;
use engenho_scheduler::{ByNumber, MAX_NODE_SCORE, Pod, Table, UnsatisfiableAction};

use crate::constraints::{Constraint, has_every_key};
use crate::{HOSTNAME_KEY, PodTopologySpread};

/// What the score of one call is worked out from.
struct Spread<'a> {
    /// The pod's `ScheduleAnyway` constraints.
    constraints: Vec<Constraint<'a>>,
    /// Scored nodes left out for lacking a constraint's key.
    ignored: HashSet<u32, ByNumber>,
    /// Per constraint (but hostname's): matching pods per domain of the
    /// scored nodes.
    domains: Vec<HashMap<&'a str, i64>>,
    /// Per constraint: `ln(domains + 2)`.
    weights: Vec<f64>,
    /// Per constraint: matching pods per node.
    per_node: Vec<HashMap<u32, i64, ByNumber>>,
}

/// One score per node of `nodes`.
pub fn score(plugin: &PodTopologySpread, table: &Table, pod: &Pod, nodes: &[u32]) -> Vec<u32> {
    let constraints = plugin.constraints(pod, UnsatisfiableAction::ScheduleAnyway);
    if constraints.is_empty() || nodes.is_empty() {
        return vec![0; nodes.len()];
    }
    // With the system defaults, nodes without a zone still spread by
    // hostname.
    let require_every_key = !pod.spread_constraints.is_empty() || !plugin.system_defaulted;
    let mut spread = Spread::new(constraints, table, nodes, require_every_key);
    spread.count_matching(table, pod);
    spread.sum_domains(table, pod, require_every_key);
    let raw: Vec<Option<i64>> = nodes.iter().map(|&index| spread.raw(table, index)).collect();
    normalize(&raw)
}

impl<'a> Spread<'a> {
    /// The domains of the scored `nodes`, and the constraints' weights.
    fn new(constraints: Vec<Constraint<'a>>, table: &'a Table, nodes: &[u32], require_every_key: bool) -> Self {
        let mut ignored: HashSet<u32, ByNumber> = HashSet::default();
        let mut domains: Vec<HashMap<&str, i64>> = vec![HashMap::new(); constraints.len()];
        for &index in nodes {
            let Some(entry) = table.node(index) else { continue };
            let node = entry.node();
            if require_every_key && !has_every_key(node, &constraints) {
                ignored.insert(index);
                continue;
            }
            for (constraint, domains) in constraints.iter().zip(&mut domains) {
                if constraint.topology_key != HOSTNAME_KEY {
                    domains.entry(label_value(&node.labels, constraint.topology_key).unwrap_or("")).or_default();
                }
            }
        }
        let weights = constraints
            .iter()
            .zip(&domains)
            .map(|(constraint, domains)| {
                let hostname = constraint.topology_key == HOSTNAME_KEY;
                let size = if hostname { nodes.len().saturating_sub(ignored.len()) } else { domains.len() };
                ((size + 2) as f64).ln()
            })
            .collect();
        let per_node = vec![HashMap::default(); constraints.len()];
        Self { constraints, ignored, domains, weights, per_node }
    }

    /// Counts each constraint's matching pods per node, through the label
    /// index.
    fn count_matching(&mut self, table: &Table, pod: &Pod) {
        let view = table.current();
        for (constraint, per_node) in self.constraints.iter().zip(&mut self.per_node) {
            for (index, placed) in constraint.pods_counted(&view) {
                if constraint.counts(pod, placed) {
                    *per_node.entry(index).or_default() += 1;
                }
            }
        }
    }

    /// Sums the matching pods of every node the constraints admit into
    /// the scored nodes' domains: only the nodes holding matching pods add
    /// anything, so only they are looked at.
    fn sum_domains(&mut self, table: &'a Table, pod: &Pod, require_every_key: bool) {
        let each = self.constraints.iter().zip(&mut self.domains).zip(&self.per_node);
        for ((constraint, domains), per_node) in each {
            for (&index, &count) in per_node {
                let Some(node) = table.node(index).map(|entry| entry.node()) else { continue };
                if (require_every_key && !has_every_key(node, &self.constraints)) || !constraint.includes(pod, node) {
                    continue;
                }
                let value = label_value(&node.labels, constraint.topology_key).unwrap_or("");
                if let Some(sum) = domains.get_mut(value) {
                    *sum = sum.saturating_add(count);
                }
            }
        }
    }

    /// The raw score of the node at `index` (`None`: ignored).
    fn raw(&self, table: &Table, index: u32) -> Option<i64> {
        if self.ignored.contains(&index) {
            return None;
        }
        let labels = &table.node(index)?.node().labels;
        let mut score = 0.0;
        let each = self.constraints.iter().zip(&self.domains).zip(&self.weights).zip(&self.per_node);
        for (((constraint, domains), weight), per_node) in each {
            let Some(value) = label_value(labels, constraint.topology_key) else { continue };
            let count = if constraint.topology_key == HOSTNAME_KEY {
                per_node.get(&index).copied().unwrap_or(0)
            } else {
                domains.get(value).copied().unwrap_or(0)
            };
            score += count as f64 * weight + (constraint.max_skew - 1) as f64;
        }
        Some(score.round() as i64)
    }
}

/// kube's inversion: ignored nodes (`None`) score 0; the others
/// `100 × (max + min − score) / max`, or 100 each when the highest is 0.
fn normalize(raw: &[Option<i64>]) -> Vec<u32> {
    let scored = || raw.iter().flatten().copied();
    let lowest = i128::from(scored().min().unwrap_or(0));
    let highest = scored().max().unwrap_or(0).max(0);
    raw.iter()
        .map(|score| match score {
            None => 0,
            Some(_) if highest == 0 => MAX_NODE_SCORE,
            Some(score) => {
                let above = (i128::from(highest) + lowest - i128::from(*score)).max(0);
                let above = u64::try_from(above).unwrap_or(u64::MAX);
                let inverted = mul_div(above, u64::from(MAX_NODE_SCORE), highest.unsigned_abs());
                u32::try_from(inverted.min(u64::from(MAX_NODE_SCORE))).unwrap_or(0)
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
        assert_eq!(normalize(&[Some(i64::MIN), Some(i64::MAX)]), vec![100, 0]);
        assert!(normalize(&[]).is_empty());
    }
}
