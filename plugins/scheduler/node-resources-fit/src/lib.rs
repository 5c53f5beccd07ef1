//! Scheduler plugin: resource fit, as kube-scheduler's NodeResourcesFit
//! plugin (Kubernetes 1.32).
//!
//! It filters out nodes where the pod's requests do not fit in what is
//! allocatable less what the placed pods request, the pod count included
//! (every failing resource is named: `Too many pods`, `Insufficient cpu`,
//! `Insufficient memory`, `Insufficient ephemeral-storage`,
//! `Insufficient <extended resource>`; evicting pods could make room, so
//! the verdict is unfit, not unresolvable). It scores nodes by the
//! configured strategy over the configured resources: `LeastAllocated`
//! (emptier is better), `MostAllocated` (fuller is better), or
//! `RequestedToCapacityRatio` (a broken-line function of utilization).
//! Scoring counts a pod that requests no CPU or memory as requesting 100m
//! CPU and 200Mi memory, as kube does.
//!
//! Configuration (kube's `NodeResourcesFitArgs`, optional):
//! `{"ignoredResources": [], "ignoredResourceGroups": [], "scoringStrategy":
//! {"type": "LeastAllocated", "resources": [{"name": "cpu", "weight": 1},
//! {"name": "memory", "weight": 1}], "requestedToCapacityRatio": {"shape":
//! [{"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]}}}`.

mod config;
mod scoring;

use engenho_scheduler::resources::{ResourceName, allocation, extended_amount, is_extended, score_requests};
use engenho_scheduler::{
    Abilities, Assumptions, NODE_NOT_FOUND, Plugin, Pod, PodParts, Quantity, Table, Verdict, Verdicts,
    export_scheduler, parse_config,
};

/// The parts of pods the plugin reads: requests.
pub(crate) const POD_PARTS: PodParts = PodParts { requests: true, ..PodParts::NONE };

pub use scoring::{ShapePoint, Strategy};

/// The reason given when the node has no room for one more pod.
pub const TOO_MANY_PODS: &str = "Too many pods";

/// A resource scored, and its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its name: `cpu`, `memory`, `ephemeral-storage` or an extended
    /// resource.
    pub name: String,
    /// Its weight, 1 to 100.
    pub weight: i64,
}

/// Filters nodes by free resources and scores them by a strategy.
pub struct NodeResourcesFit {
    ignored_resources: Vec<String>,
    ignored_resource_groups: Vec<String>,
    strategy: Strategy,
    resources: Vec<Resource>,
}

impl Plugin for NodeResourcesFit {
    fn configure(config: &str) -> Result<(Self, Abilities), String> {
        let args: config::Args = parse_config(config)?;
        let checked = args.check()?;
        let plugin = Self {
            ignored_resources: checked.ignored_resources,
            ignored_resource_groups: checked.ignored_resource_groups,
            strategy: checked.strategy,
            resources: checked.resources,
        };
        Ok((plugin, Abilities { filters: true, scores: true, reads_pods: true, pod_parts: POD_PARTS }))
    }

    fn filter(&self, table: &Table, pod: &Pod, candidates: &[u32], assumptions: &Assumptions) -> Verdicts {
        let view = table.assuming(assumptions);
        candidates
            .iter()
            .map(|&index| {
                let Some(node) = view.node(index) else { return Verdict::Unresolvable(vec![NODE_NOT_FOUND.into()]) };
                let requested = view.requested_on(index);
                let reasons = self.insufficient(pod, &node.allocatable, &requested.total);
                if reasons.is_empty() { Verdict::Fits } else { Verdict::Unfit(reasons) }
            })
            .collect()
    }

    fn score(&self, table: &Table, pod: &Pod, nodes: &[u32]) -> Vec<u32> {
        let pod_requests = score_requests(pod, self.resources.iter().map(|resource| resource.name.as_str()), false);
        let names: Vec<ResourceName<'_>> =
            self.resources.iter().map(|resource| ResourceName::of(&resource.name)).collect();
        let mut allocations: Vec<(Quantity, Quantity)> = Vec::with_capacity(names.len());
        nodes
            .iter()
            .map(|&index| {
                table.node(index).map_or(0, |entry| {
                    allocations.clear();
                    allocations.extend(
                        names.iter().zip(&pod_requests).map(|(&name, &asked)| allocation(entry, name, asked, false)),
                    );
                    let score = self.strategy.score(&self.resources, &allocations);
                    u32::try_from(score.clamp(0, 100)).unwrap_or(0)
                })
            })
            .collect()
    }
}

impl NodeResourcesFit {
    /// Whether the filter skips the extended resource `name`.
    fn ignores(&self, name: &str) -> bool {
        if !is_extended(name) {
            return false;
        }
        let group = name.split('/').next().unwrap_or(name);
        self.ignored_resources.iter().any(|ignored| ignored == name)
            || self.ignored_resource_groups.iter().any(|ignored| ignored == group)
    }

    /// Why `pod` does not fit on a node that can give `allocatable` and
    /// whose pods request `requested`: kube's reasons, in its order.
    fn insufficient(
        &self,
        pod: &Pod,
        allocatable: &engenho_scheduler::Resources,
        requested: &engenho_scheduler::Resources,
    ) -> Vec<String> {
        let mut reasons = Vec::new();
        if requested.pods.saturating_add(1) > allocatable.pods {
            reasons.push(TOO_MANY_PODS.to_owned());
        }
        let asks = &pod.requests;
        let short = |asked: Quantity, used: Quantity, allocatable: Quantity| {
            asked > 0 && u128::from(asked) + u128::from(used) > u128::from(allocatable)
        };
        if short(asks.milli_cpu, requested.milli_cpu, allocatable.milli_cpu) {
            reasons.push("Insufficient cpu".to_owned());
        }
        if short(asks.memory, requested.memory, allocatable.memory) {
            reasons.push("Insufficient memory".to_owned());
        }
        if short(asks.ephemeral_storage, requested.ephemeral_storage, allocatable.ephemeral_storage) {
            reasons.push("Insufficient ephemeral-storage".to_owned());
        }
        for resource in &asks.extended {
            if resource.amount == 0 || self.ignores(&resource.name) {
                continue;
            }
            let used = extended_amount(&requested.extended, &resource.name);
            if short(resource.amount, used, extended_amount(&allocatable.extended, &resource.name)) {
                reasons.push(format!("Insufficient {}", resource.name));
            }
        }
        reasons
    }
}

export_scheduler!(NodeResourcesFit);

#[cfg(test)]
mod tests;
