//! The score: matching pods per domain of the scored nodes, weighted by
//! how many domains there are, inverted and normalized.

use std::collections::HashMap;

use engenho_scheduler::normalization::mul_div;
use engenho_scheduler::{ByNumber, MAX_NODE_SCORE, Pod, Table, Topology, UnsatisfiableAction};

use crate::constraints::{Constraint, has_every_key};
use crate::{HOSTNAME_KEY, PodTopologySpread};

/// What the score of one call is worked out from.
struct Spread<'a> {
    /// The pod's `ScheduleAnyway` constraints.
    constraints: Vec<Constraint<'a>>,
    /// Per constraint: the domains of its key.
    topologies: Vec<Topology<'a>>,
    /// Whether scored nodes lacking a constraint's key are left out.
    require_every_key: bool,
    /// Per constraint (but hostname's): matching pods per domain of the
    /// scored nodes, by domain number (`None`: no scored node is in it).
    /// Nodes without the key count in the domain of the empty value, as
    /// kube reads a missing label: its number, or the last entry.
    domains: Vec<Vec<Option<i64>>>,
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
    spread.sum_domains(table, pod);
    let raw: Vec<Option<i64>> = nodes.iter().map(|&index| spread.raw(table, index)).collect();
    normalize(&raw)
}

/// The entry of the node at `index` in a constraint's per-domain counts:
/// its domain's, or the empty value's when it lacks the key.
fn slot(topology: &Topology<'_>, index: u32) -> usize {
    let domain = topology.domain(index).or_else(|| topology.domain_of(""));
    domain.map_or(topology.span(), |domain| domain as usize)
}

impl<'a> Spread<'a> {
    /// The domains of the scored `nodes`, and the constraints' weights.
    fn new(constraints: Vec<Constraint<'a>>, table: &'a Table, nodes: &[u32], require_every_key: bool) -> Self {
        let topologies: Vec<Topology<'a>> =
            constraints.iter().map(|constraint| table.topology(constraint.topology_key)).collect();
        let by_domain = |topology: &Topology<'_>, constraint: &Constraint<'_>| {
            if constraint.topology_key == HOSTNAME_KEY { Vec::new() } else { vec![None; topology.span() + 1] }
        };
        let mut domains: Vec<Vec<Option<i64>>> =
            topologies.iter().zip(&constraints).map(|(topology, constraint)| by_domain(topology, constraint)).collect();
        let mut sizes = vec![0usize; constraints.len()];
        let mut ignored = 0;
        for &index in nodes {
            if !table.has_node(index) {
                continue;
            }
            if require_every_key && !has_every_key(&topologies, index) {
                ignored += 1;
                continue;
            }
            for ((topology, domains), size) in topologies.iter().zip(&mut domains).zip(&mut sizes) {
                if let Some(count @ None) = domains.get_mut(slot(topology, index)) {
                    *count = Some(0);
                    *size += 1;
                }
            }
        }
        let weights = constraints
            .iter()
            .zip(&sizes)
            .map(|(constraint, &size)| {
                let hostname = constraint.topology_key == HOSTNAME_KEY;
                let size = if hostname { nodes.len().saturating_sub(ignored) } else { size };
                ((size + 2) as f64).ln()
            })
            .collect();
        let per_node = vec![HashMap::default(); constraints.len()];
        Self { constraints, topologies, require_every_key, domains, weights, per_node }
    }

    /// Counts each constraint's matching pods per node, through the label
    /// index; constraints of one selector (the system defaults share the
    /// pod's) count the same pods, counted once.
    fn count_matching(&mut self, table: &Table, pod: &Pod) {
        let view = table.current();
        for at in 0..self.constraints.len() {
            let constraint = &self.constraints[at];
            let earlier = &self.constraints[..at];
            if let Some(same) = earlier.iter().position(|earlier| earlier.selector == constraint.selector) {
                self.per_node[at] = self.per_node[same].clone();
                continue;
            }
            let per_node = &mut self.per_node[at];
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
    fn sum_domains(&mut self, table: &Table, pod: &Pod) {
        let each = self.constraints.iter().zip(&self.topologies).zip(&mut self.domains).zip(&self.per_node);
        for (((constraint, topology), domains), per_node) in each {
            if domains.is_empty() {
                continue;
            }
            let narrows = constraint.narrows_nodes(pod);
            for (&index, &count) in per_node {
                let Some(node) = table.node(index).map(|entry| entry.node()) else { continue };
                if (self.require_every_key && !has_every_key(&self.topologies, index))
                    || (narrows && !constraint.includes(pod, node))
                {
                    continue;
                }
                if let Some(Some(sum)) = domains.get_mut(slot(topology, index)) {
                    *sum = sum.saturating_add(count);
                }
            }
        }
    }

    /// The raw score of the node at `index` (`None`: ignored).
    fn raw(&self, table: &Table, index: u32) -> Option<i64> {
        if !table.has_node(index) || (self.require_every_key && !has_every_key(&self.topologies, index)) {
            return None;
        }
        let mut score = 0.0;
        let each = self.constraints.iter().zip(&self.topologies).zip(&self.domains).zip(&self.weights);
        for ((((constraint, topology), domains), weight), per_node) in each.zip(&self.per_node) {
            let Some(domain) = topology.domain(index) else { continue };
            let count = if constraint.topology_key == HOSTNAME_KEY {
                per_node.get(&index).copied().unwrap_or(0)
            } else {
                domains.get(domain as usize).copied().flatten().unwrap_or(0)
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
