//! Preemption, as kube-scheduler's DefaultPreemption does it: for a pod
//! that fits nowhere, find nodes where evicting pods of lower priority would
//! make room, keep on each as few of them as possible (putting back the
//! most important first, those a PodDisruptionBudget protects before the
//! others), and pick the node whose evictions hurt least.

use std::collections::BTreeMap;
use std::sync::Arc;

use engenho_scheduler as sdk;
use engenho_wasm::PluginHost;

use super::cycle::{Cycle, CycleError, FitError, nodes_available};
use super::table::Table;
use super::view;

/// Share of the nodes on which evictions are tried, at least (kube-scheduler's
/// `minCandidateNodesPercentage`).
const CANDIDATES_PERCENTAGE: usize = 10;

/// Nodes on which evictions are tried, at least (kube-scheduler's
/// `minCandidateNodesAbsolute`).
const CANDIDATES_MIN: usize = 100;

/// What a node without victims says (kube-scheduler's words).
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// What a node where evictions cannot help says (kube-scheduler's words).
const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// A PodDisruptionBudget as preemption weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Its namespace.
    pub namespace: String,
    /// The pods it covers.
    pub selector: sdk::LabelSelector,
    /// The disruptions it still allows (`status.disruptionsAllowed`).
    pub allowed: i64,
}

/// Where preemption would make room.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The node's index.
    pub node: u32,
    /// The pods to evict, most important first.
    pub victims: Vec<Arc<sdk::Pod>>,
    /// How many of them a PodDisruptionBudget protects.
    pub violations: usize,
}

/// What preemption decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Preemption {
    /// Evict the candidate's victims and nominate its node.
    Evict(Candidate),
    /// Nothing to evict helps; why, in kube-scheduler's words.
    Futile(String),
}

/// Looks for room for `pod`, which fits nowhere (`fit_error`), among the
/// nodes `cycle` can judge in `table`, starting from node `offset`; pods
/// under `assumptions` count (nominated pods), `budgets` protect pods. The
/// cycle's plugins must have been given `pod` (the cycle that found no
/// node for it did).
///
/// # Errors
/// A plugin failed.
pub async fn preempt(
    (cycle, host, table): (&mut Cycle, &PluginHost, &Table),
    pod: &sdk::Pod,
    fit_error: &FitError,
    assumptions: &sdk::Assumptions,
    budgets: &[Budget],
    offset: usize,
) -> Result<Preemption, CycleError> {
    let nodes: Vec<u32> = table.real_nodes().collect();
    let wanted = (nodes.len() * CANDIDATES_PERCENTAGE / 100).max(CANDIDATES_MIN).min(nodes.len());
    let mut candidates = Vec::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..nodes.len() {
        if candidates.len() >= wanted {
            break;
        }
        let node = nodes[(offset + i) % nodes.len()];
        if fit_error.unresolvable.contains(&node) {
            *reasons.entry(NOT_HELPFUL.into()).or_default() += 1;
            continue;
        }
        match victims_on(cycle, host, table, pod, node, assumptions, budgets).await? {
            Some(candidate) => candidates.push(candidate),
            None => *reasons.entry(NO_VICTIMS.into()).or_default() += 1,
        }
    }
    Ok(match pick(candidates) {
        Some(candidate) => Preemption::Evict(candidate),
        None => Preemption::Futile(format!("preemption: {}", nodes_available(nodes.len(), &reasons))),
    })
}

/// The fewest pods of lower priority than `pod` on `node` whose eviction
/// lets it fit, if any do.
async fn victims_on(
    cycle: &mut Cycle,
    host: &PluginHost,
    table: &Table,
    pod: &sdk::Pod,
    node: u32,
    assumptions: &sdk::Assumptions,
    budgets: &[Budget],
) -> Result<Option<Candidate>, CycleError> {
    let Some(entry) = table.node(node) else { return Ok(None) };
    let mut lower: Vec<Arc<sdk::Pod>> = entry
        .pods
        .iter()
        .filter_map(|uid| table.placed(uid))
        .filter(|placed| placed.pod.priority < pod.priority)
        .map(|placed| placed.pod.clone())
        .collect();
    if lower.is_empty() {
        return Ok(None);
    }
    let mut trial = assumptions.clone();
    trial.without.extend(lower.iter().map(|p| p.uid.clone()));
    if !cycle.fits(host, pod, node, &trial).await? {
        return Ok(None);
    }
    // The most important first, so that they are the first put back.
    lower.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.uid.cmp(&b.uid)));
    let (protected, unprotected) = split_by_budgets(lower, budgets);
    let mut victims = Vec::new();
    let mut violations = 0;
    for (victim, is_protected) in
        protected.into_iter().map(|p| (p, true)).chain(unprotected.into_iter().map(|p| (p, false)))
    {
        trial.without.retain(|uid| *uid != victim.uid);
        if cycle.fits(host, pod, node, &trial).await? {
            continue;
        }
        trial.without.push(victim.uid.clone());
        violations += usize::from(is_protected);
        victims.push(victim);
    }
    Ok(Some(Candidate { node, victims, violations }))
}

/// The pods whose eviction a budget forbids (it would go below zero
/// counting the ones before), and the others, each in the order given.
fn split_by_budgets(pods: Vec<Arc<sdk::Pod>>, budgets: &[Budget]) -> (Vec<Arc<sdk::Pod>>, Vec<Arc<sdk::Pod>>) {
    let mut allowed: Vec<i64> = budgets.iter().map(|b| b.allowed).collect();
    let mut protected = Vec::new();
    let mut unprotected = Vec::new();
    for pod in pods {
        let labels: BTreeMap<String, String> = pod.labels.iter().map(|l| (l.key.clone(), l.value.clone())).collect();
        let mut violates = false;
        for (budget, left) in budgets.iter().zip(allowed.iter_mut()) {
            // An empty selector protects nothing here, as kube-scheduler's
            // preemption reads budgets.
            if budget.namespace != pod.namespace
                || budget.selector.is_empty()
                || !view::selects(&budget.selector, &labels)
            {
                continue;
            }
            *left -= 1;
            violates |= *left < 0;
        }
        if violates {
            protected.push(pod);
        } else {
            unprotected.push(pod);
        }
    }
    (protected, unprotected)
}

/// The candidate whose evictions hurt least, as kube-scheduler picks: the
/// fewest budget violations, then the lowest highest victim priority, the
/// lowest sum of priorities, the fewest victims; the first of equals.
fn pick(candidates: Vec<Candidate>) -> Option<Candidate> {
    let cost = |c: &Candidate| {
        let highest = c.victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN);
        // Priorities shifted to be positive, as kube-scheduler sums them.
        let sum: i64 = c.victims.iter().map(|v| i64::from(v.priority) - i64::from(i32::MIN) + 1).sum();
        (c.violations, highest, sum, c.victims.len())
    };
    candidates.into_iter().enumerate().min_by_key(|(i, c)| (cost(c), *i)).map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, priority: i32, app: &str) -> Arc<sdk::Pod> {
        Arc::new(sdk::Pod {
            uid: uid.into(),
            namespace: "default".into(),
            name: uid.into(),
            labels: vec![sdk::Label { key: "app".into(), value: app.into() }],
            priority,
            ..sdk::Pod::default()
        })
    }

    fn budget(app: &str, allowed: i64) -> Budget {
        Budget {
            namespace: "default".into(),
            selector: vec![sdk::SelectorRequirement {
                key: "app".into(),
                operator: sdk::SelectorOperator::In,
                values: vec![app.into()],
            }],
            allowed,
        }
    }

    #[test]
    fn budgets_protect_the_pods_beyond_what_they_allow() {
        let pods = vec![pod("a1", 5, "a"), pod("a2", 4, "a"), pod("b1", 3, "b"), pod("c1", 2, "c")];
        let (protected, unprotected) = split_by_budgets(pods, &[budget("a", 1), budget("b", 0)]);
        let uids = |pods: &[Arc<sdk::Pod>]| pods.iter().map(|p| p.uid.clone()).collect::<Vec<_>>();
        assert_eq!(uids(&protected), ["a2", "b1"]);
        assert_eq!(uids(&unprotected), ["a1", "c1"]);
    }

    #[test]
    fn the_cheapest_candidate_is_picked() {
        let candidate = |node, victims: Vec<Arc<sdk::Pod>>, violations| Candidate { node, victims, violations };
        let picked = pick(vec![
            candidate(0, vec![pod("x", 1, "x")], 1),
            candidate(1, vec![pod("y", 9, "y")], 0),
            candidate(2, vec![pod("z1", 1, "z"), pod("z2", 1, "z")], 0),
            candidate(3, vec![pod("w1", 1, "w")], 0),
            candidate(4, vec![pod("v1", 1, "v")], 0),
        ]);
        // No violations first; then the lowest highest priority (1); then the
        // lowest sum (one victim beats two); then the first.
        assert_eq!(picked.map(|c| c.node), Some(3));
        assert_eq!(pick(Vec::new()), None);
    }
}
