//! The filter: matching pods counted per domain once per call, then each
//! node's skew.

use std::collections::HashMap;

use engenho_scheduler::matching::label_value;
use engenho_scheduler::{Assumptions, Pod, Table, UnsatisfiableAction, Verdict};

use crate::constraints::{Constraint, has_every_key};
use crate::{PodTopologySpread, REASON_CONSTRAINTS, REASON_MISSING_LABEL};

/// One verdict per candidate.
pub fn filter(
    plugin: &PodTopologySpread,
    table: &Table,
    pod: &Pod,
    candidates: &[u32],
    assumptions: &Assumptions,
) -> Vec<Verdict> {
    let constraints = plugin.constraints(pod, UnsatisfiableAction::DoNotSchedule);
    if constraints.is_empty() {
        return vec![Verdict::Fits; candidates.len()];
    }
    let view = table.assuming(assumptions);
    // Per constraint: matching pods per domain value, over the nodes that
    // have every key and that the inclusion policies admit.
    let counts: Vec<HashMap<&str, i64>> = constraints
        .iter()
        .map(|constraint| {
            let mut domains: HashMap<&str, i64> = HashMap::new();
            let mut node_domains: HashMap<u32, &str> = HashMap::new();
            for (index, entry) in view.nodes() {
                let node = entry.node();
                if !has_every_key(node, &constraints) || !constraint.includes(pod, node) {
                    continue;
                }
                if let Some(value) = label_value(&node.labels, constraint.topology_key) {
                    domains.entry(value).or_default();
                    node_domains.insert(index, value);
                }
            }
            for (index, placed) in constraint.pods_counted(&view) {
                if let Some(value) = node_domains.get(&index)
                    && constraint.counts(pod, placed)
                {
                    let sum = domains.entry(value).or_default();
                    *sum = sum.saturating_add(1);
                }
            }
            domains
        })
        .collect();
    candidates
        .iter()
        .map(|&index| {
            let labels = view.node(index).map_or(&[][..], |node| &node.labels);
            for (constraint, domains) in constraints.iter().zip(&counts) {
                let Some(value) = label_value(labels, constraint.topology_key) else {
                    return Verdict::Unresolvable(vec![REASON_MISSING_LABEL.into()]);
                };
                if skew(constraint, domains, pod, value) > constraint.max_skew {
                    return Verdict::Unfit(vec![REASON_CONSTRAINTS.into()]);
                }
            }
            Verdict::Fits
        })
        .collect()
}

/// The skew placing `pod` in the domain `value` would make: the domain's
/// count, plus one if the pod matches itself, less the global minimum (0
/// while there are fewer domains than `minDomains`; with no domain at all,
/// kube's `MaxInt32`).
fn skew(constraint: &Constraint<'_>, domains: &HashMap<&str, i64>, pod: &Pod, value: &str) -> i64 {
    let minimum = if (domains.len() as u64) < constraint.min_domains {
        0
    } else {
        domains.values().copied().min().unwrap_or(i64::from(i32::MAX))
    };
    let here = domains.get(value).copied().unwrap_or(0);
    let itself = i64::from(constraint.selects_itself(pod));
    here.saturating_add(itself).saturating_sub(minimum)
}
