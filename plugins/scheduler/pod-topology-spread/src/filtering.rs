//! The filter: matching pods counted per domain once per call, then each
//! node's skew. A pod whose one constraint every node with the key admits
//! takes the domains from the table's label index instead of visiting
//! every node.

use std::collections::HashMap;

use engenho_scheduler::matching::label_value;
use engenho_scheduler::{Assumptions, Node, Pod, Table, UnsatisfiableAction, Verdict, Verdicts, View};

use crate::constraints::{Constraint, has_every_key};
use crate::{PodTopologySpread, REASON_CONSTRAINTS, REASON_MISSING_LABEL};

/// One verdict per candidate.
pub fn filter(
    plugin: &PodTopologySpread,
    table: &Table,
    pod: &Pod,
    candidates: &[u32],
    assumptions: &Assumptions,
) -> Verdicts {
    let constraints = plugin.constraints(pod, UnsatisfiableAction::DoNotSchedule);
    if constraints.is_empty() {
        return Verdicts::all_fit(candidates.len());
    }
    let view = table.assuming(assumptions);
    let counts: Vec<HashMap<&str, i64>> =
        constraints.iter().map(|constraint| domain_counts(constraint, &constraints, &view, pod)).collect();
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

/// The matching pods of `constraint` per domain value, over the nodes that
/// have every constraint's key and that the inclusion policies admit.
fn domain_counts<'a>(
    constraint: &Constraint<'_>,
    constraints: &[Constraint<'_>],
    view: &View<'a>,
    pod: &Pod,
) -> HashMap<&'a str, i64> {
    let eligible = |node: &Node| has_every_key(node, constraints) && constraint.includes(pod, node);
    let mut domains: HashMap<&str, i64> = HashMap::new();
    if constraints.len() == 1 && !constraint.narrows_nodes(pod) {
        // Every node with the key counts: its domains, from the table's
        // index, without visiting the nodes.
        domains.extend(view.table().node_label_values(constraint.topology_key).map(|value| (value, 0)));
    } else {
        for (_, entry) in view.nodes() {
            let node = entry.node();
            if eligible(node)
                && let Some(value) = label_value(&node.labels, constraint.topology_key)
            {
                domains.entry(value).or_default();
            }
        }
    }
    for (index, placed) in constraint.pods_counted(view) {
        let Some(node) = view.node(index) else { continue };
        if constraint.counts(pod, placed)
            && eligible(node)
            && let Some(sum) = label_value(&node.labels, constraint.topology_key).and_then(|v| domains.get_mut(v))
        {
            *sum = sum.saturating_add(1);
        }
    }
    domains
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
