//! The filter: matching pods counted per domain once per call, then each
//! node's skew. A pod whose one constraint every node with the key admits
//! takes the domains from the table's topology instead of visiting every
//! node.

use engenho_scheduler::{Assumptions, Pod, Table, Topology, UnsatisfiableAction, Verdict, Verdicts, View};

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
    let topologies: Vec<Topology<'_>> =
        constraints.iter().map(|constraint| table.topology(constraint.topology_key)).collect();
    let counts: Vec<DomainCounts> = constraints
        .iter()
        .zip(&topologies)
        .map(|(constraint, topology)| DomainCounts::of(constraint, topology, &topologies, &view, pod))
        .collect();
    candidates
        .iter()
        .map(|&index| {
            for ((constraint, topology), counts) in constraints.iter().zip(&topologies).zip(&counts) {
                let Some(domain) = topology.domain(index).filter(|_| table.has_node(index)) else {
                    return Verdict::Unresolvable(vec![REASON_MISSING_LABEL.into()]);
                };
                if counts.skew(domain) > constraint.max_skew {
                    return Verdict::Unfit(vec![REASON_CONSTRAINTS.into()]);
                }
            }
            Verdict::Fits
        })
        .collect()
}

/// One constraint's matching pods per domain, over the nodes that have
/// every constraint's key and that the inclusion policies admit.
struct DomainCounts {
    /// Matching pods by domain number (`None`: no counted node is in it).
    by_domain: Vec<Option<i64>>,
    /// What the skew is measured from: the smallest count (0 while there
    /// are fewer domains than `minDomains`; with no domain at all, kube's
    /// `MaxInt32`).
    minimum: i64,
    /// 1 when the pod matches the constraint itself (adds itself to a
    /// domain), else 0.
    itself: i64,
}

impl DomainCounts {
    fn of(
        constraint: &Constraint<'_>,
        topology: &Topology<'_>,
        topologies: &[Topology<'_>],
        view: &View<'_>,
        pod: &Pod,
    ) -> Self {
        let narrows = constraint.narrows_nodes(pod);
        let eligible = |index: u32| {
            has_every_key(topologies, index)
                && (!narrows || view.node(index).is_some_and(|node| constraint.includes(pod, node)))
        };
        let mut by_domain: Vec<Option<i64>> = vec![None; topology.span()];
        if topologies.len() == 1 && !narrows {
            // Every node with the key counts: its domains, from the
            // table's topology, without visiting the nodes.
            for (domain, _) in topology.domains() {
                by_domain[domain as usize] = Some(0);
            }
        } else {
            for (index, _) in view.nodes() {
                if let Some(domain) = topology.domain(index).filter(|_| eligible(index)) {
                    by_domain[domain as usize] = Some(0);
                }
            }
        }
        for (index, placed) in constraint.pods_counted(view) {
            if constraint.counts(pod, placed)
                && view.node(index).is_some()
                && eligible(index)
                && let Some(Some(sum)) = topology.domain(index).and_then(|domain| by_domain.get_mut(domain as usize))
            {
                *sum = sum.saturating_add(1);
            }
        }
        let domains = by_domain.iter().flatten().count();
        let minimum = if (domains as u64) < constraint.min_domains {
            0
        } else {
            by_domain.iter().flatten().copied().min().unwrap_or(i64::from(i32::MAX))
        };
        Self { by_domain, minimum, itself: i64::from(constraint.selects_itself(pod)) }
    }

    /// The skew placing the pod in `domain` would make: the domain's count,
    /// plus one if the pod matches itself, less the minimum.
    fn skew(&self, domain: u32) -> i64 {
        let here = self.by_domain.get(domain as usize).copied().flatten().unwrap_or(0);
        here.saturating_add(self.itself).saturating_sub(self.minimum)
    }
}
