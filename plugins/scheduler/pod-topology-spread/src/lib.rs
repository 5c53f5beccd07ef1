//! Scheduler plugin: topology spread, as kube-scheduler's
//! PodTopologySpread plugin (Kubernetes 1.32).
//!
//! For each `DoNotSchedule` constraint of the pod (or, when it has no
//! constraints of its own, each default one, with the pod's services' and
//! controllers' selector), the filter counts the matching pods of the
//! pod's namespace in every domain of nodes that have all the
//! constraints' keys and that the node inclusion policies admit; a node is
//! refused when its domain's count, plus one if the pod matches itself,
//! less the smallest count (0 while fewer domains than `minDomains`
//! exist) exceeds `maxSkew` (unfit, `node(s) didn't match pod topology
//! spread constraints`), or when it lacks a constraint's key
//! (unresolvable, `node(s) didn't match pod topology spread constraints
//! (missing required label)`).
//!
//! For `ScheduleAnyway` constraints the score favours the domains with the
//! fewest matching pods: each constraint adds `count × ln(domains + 2) +
//! maxSkew − 1`, and scores are inverted and normalized so the least
//! crowded node scores 100. With the system defaults, nodes without a
//! zone still take part through the hostname constraint.
//!
//! Configuration (kube's `PodTopologySpreadArgs`, optional):
//! `{"defaultingType": "System"}` (the default: hostname maxSkew 3 and
//! zone maxSkew 5, `ScheduleAnyway`) or `{"defaultingType": "List",
//! "defaultConstraints": [{"maxSkew": 1, "topologyKey": "...",
//! "whenUnsatisfiable": "DoNotSchedule"}]}`.

mod config;
mod constraints;
mod filtering;
mod scoring;

use engenho_scheduler::{
    Abilities, Assumptions, Plan, Plugin, Pod, PodParts, Table, UnsatisfiableAction, Verdicts, export_scheduler,
    parse_config,
};

/// The parts of pods the plugin reads: labels (which pods a constraint
/// counts), spread constraints, and the node rules and tolerations that
/// narrow the domains counted.
pub(crate) const POD_PARTS: PodParts =
    PodParts { labels: true, node_rules: true, tolerations: true, spread: true, ..PodParts::NONE };

pub use config::{HOSTNAME_KEY, ZONE_KEY};

/// Why a node fails a constraint's skew (unfit).
pub const REASON_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
/// Why a node without a constraint's key is refused (unresolvable).
pub const REASON_MISSING_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";

/// Filters and scores nodes by how pods spread over topology domains.
pub struct PodTopologySpread {
    /// The constraints of pods without their own.
    defaults: Vec<config::Default>,
    /// Whether those are kube-scheduler's built-in ones.
    system_defaulted: bool,
}

impl Plugin for PodTopologySpread {
    fn configure(config: &str) -> Result<(Self, Abilities), String> {
        let args: config::Args = parse_config(config)?;
        let checked = args.check()?;
        let plugin = Self { defaults: checked.defaults, system_defaulted: checked.system_defaulted };
        Ok((plugin, Abilities { filters: true, scores: true, reads_pods: true, pod_parts: POD_PARTS }))
    }

    /// As kube's PreFilter and PreScore: filter for `DoNotSchedule`
    /// constraints, score for `ScheduleAnyway` ones (the system defaults
    /// among them); a pod without either skips that call.
    fn plan(&self, _: &Table, pod: &Pod) -> Plan {
        Plan {
            filter: !self.constraints(pod, UnsatisfiableAction::DoNotSchedule).is_empty(),
            score: !self.constraints(pod, UnsatisfiableAction::ScheduleAnyway).is_empty(),
        }
    }

    fn filter(&self, table: &Table, pod: &Pod, candidates: &[u32], assumptions: &Assumptions) -> Verdicts {
        filtering::filter(self, table, pod, candidates, assumptions)
    }

    fn score(&self, table: &Table, pod: &Pod, nodes: &[u32]) -> Vec<u32> {
        scoring::score(self, table, pod, nodes)
    }
}

export_scheduler!(PodTopologySpread);

#[cfg(test)]
mod tests;
