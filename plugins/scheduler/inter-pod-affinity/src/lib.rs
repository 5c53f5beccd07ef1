//! Scheduler plugin: inter-pod affinity and anti-affinity, as
//! kube-scheduler's InterPodAffinity plugin (Kubernetes 1.32).
//!
//! The filter refuses a node when
//! - the pod's required affinity is not met there: some term's topology
//!   key is missing from the node, or no placed pod matching every term is
//!   in the node's domain of some term (unresolvable, `node(s) didn't
//!   match pod affinity rules`) — unless no placed pod anywhere matches
//!   every term and the pod matches its own terms, so that the first pod
//!   of a group that wants itself can go anywhere with the keys;
//! - a placed pod matching one of the pod's required anti-affinity terms is
//!   in the node's domain of that term (unfit, `node(s) didn't match pod
//!   anti-affinity rules`);
//! - a placed pod's required anti-affinity term matches the pod and the
//!   node shares that pod's domain (unfit, `node(s) didn't satisfy
//!   existing pods anti-affinity rules`).
//!
//! The score sums, per topology domain, the weights of the pod's preferred
//! affinity terms (less those of its preferred anti-affinity terms) that
//! placed pods there match, and, the other way round, the weights of
//! placed pods' preferred terms that match the pod and
//! `hardPodAffinityWeight` for each of their required affinity terms that
//! does; nodes score the sum of their domains, normalized between the
//! lowest (0) and the highest (100).
//!
//! Configuration (kube's `InterPodAffinityArgs`, optional):
//! `{"hardPodAffinityWeight": 1, "ignorePreferredTermsOfExistingPods": false}`.

mod filtering;
mod scoring;

use engenho_scheduler::matching::term_of_namespace_matches;
use engenho_scheduler::{
    Abilities, Assumptions, Plan, Plugin, Pod, PodParts, Table, TermUse, Verdicts, export_scheduler, parse_config,
};
use serde::Deserialize;

/// The parts of pods the plugin reads: labels (its own namespace's too) and affinity terms.
pub(crate) const POD_PARTS: PodParts = PodParts { labels: true, affinities: true, ..PodParts::NONE };

/// Why a node fails the pod's required affinity (unresolvable).
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// Why a node fails the pod's required anti-affinity (unfit).
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// Why a node fails placed pods' required anti-affinity (unfit).
pub const REASON_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// `InterPodAffinityArgs`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Args {
    #[serde(default = "default_hard_pod_affinity_weight")]
    hard_pod_affinity_weight: i32,
    #[serde(default)]
    ignore_preferred_terms_of_existing_pods: bool,
}

fn default_hard_pod_affinity_weight() -> i32 {
    1
}

/// Filters and scores nodes by pod affinity and anti-affinity.
pub struct InterPodAffinity {
    /// What a placed pod's required affinity term that matches the pod
    /// weighs in the score.
    hard_pod_affinity_weight: i64,
    /// Whether placed pods' terms are left out of the score when the pod
    /// has no preferred terms of its own.
    ignore_preferred_terms_of_existing_pods: bool,
}

impl Plugin for InterPodAffinity {
    fn configure(config: &str) -> Result<(Self, Abilities), String> {
        let args: Args = parse_config(config)?;
        if !(0..=100).contains(&args.hard_pod_affinity_weight) {
            return Err(format!(
                "invalid configuration: hardPodAffinityWeight: {} is not in 0..=100",
                args.hard_pod_affinity_weight
            ));
        }
        let plugin = Self {
            hard_pod_affinity_weight: i64::from(args.hard_pod_affinity_weight),
            ignore_preferred_terms_of_existing_pods: args.ignore_preferred_terms_of_existing_pods,
        };
        Ok((plugin, Abilities { filters: true, scores: true, reads_pods: true, pod_parts: POD_PARTS }))
    }

    /// As kube's PreFilter and PreScore: filter when the pod has required
    /// terms or a placed pod's required anti-affinity term is about it;
    /// score when the pod has preferred terms or a placed pod's term that
    /// weighs is about it.
    fn plan(&self, table: &Table, pod: &Pod) -> Plan {
        let required = !pod.pod_affinity.required.is_empty() || !pod.pod_anti_affinity.required.is_empty();
        let repelled =
            || table.repelling_terms().any(|(namespace, term, _)| term_of_namespace_matches(term, namespace, pod));
        let preferred = !pod.pod_affinity.preferred.is_empty() || !pod.pod_anti_affinity.preferred.is_empty();
        let weighed = || {
            !self.ignore_preferred_terms_of_existing_pods
                && table.placed_terms().any(|(namespace, term_use, term, _)| {
                    self.weight(term_use) != 0 && term_of_namespace_matches(term, namespace, pod)
                })
        };
        Plan { filter: required || repelled(), score: preferred || weighed() }
    }

    fn filter(&self, table: &Table, pod: &Pod, candidates: &[u32], assumptions: &Assumptions) -> Verdicts {
        let view = table.assuming(assumptions);
        let counts = filtering::Counts::of(&view, pod);
        candidates.iter().map(|&index| counts.verdict(&view, pod, index)).collect()
    }

    fn score(&self, table: &Table, pod: &Pod, nodes: &[u32]) -> Vec<u32> {
        scoring::score(self, table, pod, nodes)
    }
}

impl InterPodAffinity {
    /// What a placed pod's term of `term_use` that is about the pod weighs
    /// in the score.
    fn weight(&self, term_use: TermUse) -> i64 {
        match term_use {
            TermUse::RequiredAffinity => self.hard_pod_affinity_weight,
            TermUse::PreferredAffinity(weight) => i64::from(weight),
            TermUse::PreferredAntiAffinity(weight) => -i64::from(weight),
            TermUse::RequiredAntiAffinity => 0,
        }
    }
}

export_scheduler!(InterPodAffinity);

#[cfg(test)]
mod tests;
