//! Scheduler plugin: balanced resource use, as kube-scheduler's
//! NodeResourcesBalancedAllocation plugin (Kubernetes 1.32). It scores
//! each node by how evenly the configured resources would be used once the
//! pod is placed: `(1 − σ) × 100`, σ the standard deviation of each
//! resource's requested share of allocatable (each share capped at 1; with
//! two resources σ is half their difference). Requests count as given (no
//! defaults for pods that request nothing). It does not filter.
//!
//! Configuration (kube's `NodeResourcesBalancedAllocationArgs`, optional):
//! `{"resources": [{"name": "cpu", "weight": 1}, {"name": "memory",
//! "weight": 1}]}` (the default); weights must be 1.

use engenho_scheduler::resources::{ResourceName, allocation, score_requests};
use engenho_scheduler::{
    Abilities, Assumptions, Plugin, Pod, PodParts, Quantity, Table, Verdicts, export_scheduler, parse_config,
};
use serde::Deserialize;

/// The parts of pods the plugin reads: requests.
pub(crate) const POD_PARTS: PodParts = PodParts { requests: true, ..PodParts::NONE };

/// `NodeResourcesBalancedAllocationArgs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    resources: Vec<ResourceSpec>,
}

/// `ResourceSpec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceSpec {
    name: String,
    #[serde(default)]
    weight: i64,
}

/// Scores nodes by how evenly their resources would be used.
pub struct BalancedAllocation {
    /// The resources weighed, by name.
    resources: Vec<String>,
}

impl Plugin for BalancedAllocation {
    fn configure(config: &str) -> Result<(Self, Abilities), String> {
        let args: Args = parse_config(config)?;
        let mut resources: Vec<String> = Vec::with_capacity(args.resources.len());
        for (i, spec) in args.resources.into_iter().enumerate() {
            if spec.name.is_empty() {
                return Err(format!("invalid configuration: resources[{i}].name: required"));
            }
            if resources.contains(&spec.name) {
                return Err(format!("invalid configuration: resources[{i}].name: {:?} is listed twice", spec.name));
            }
            // A weight left out (0) defaults to 1; kube accepts no other.
            if spec.weight != 0 && spec.weight != 1 {
                return Err(format!("invalid configuration: resources[{i}].weight: {} must be 1", spec.weight));
            }
            resources.push(spec.name);
        }
        if resources.is_empty() {
            resources = vec!["cpu".into(), "memory".into()];
        }
        Ok((Self { resources }, Abilities { filters: false, scores: true, reads_pods: true, pod_parts: POD_PARTS }))
    }

    fn filter(&self, _: &Table, _: &Pod, candidates: &[u32], _: &Assumptions) -> Verdicts {
        Verdicts::all_fit(candidates.len())
    }

    fn score(&self, table: &Table, pod: &Pod, nodes: &[u32]) -> Vec<u32> {
        let pod_requests = score_requests(pod, self.resources.iter().map(String::as_str), true);
        let names: Vec<ResourceName<'_>> = self.resources.iter().map(|name| ResourceName::of(name)).collect();
        let mut allocations: Vec<(Quantity, Quantity)> = Vec::with_capacity(names.len());
        nodes
            .iter()
            .map(|&index| {
                table.node(index).map_or(0, |entry| {
                    allocations.clear();
                    allocations.extend(
                        names.iter().zip(&pod_requests).map(|(&name, &asked)| allocation(entry, name, asked, true)),
                    );
                    balance(&allocations)
                })
            })
            .collect()
    }
}

/// `(1 − σ) × 100`, truncated, over the shares of the resources with
/// something allocatable.
fn balance(allocations: &[(Quantity, Quantity)]) -> u32 {
    let shares = || {
        allocations
            .iter()
            .filter(|(_, allocatable)| *allocatable > 0)
            .map(|&(requested, allocatable)| (requested as f64 / allocatable as f64).min(1.0))
    };
    let mut first_three = shares();
    let deviation = match (first_three.next(), first_three.next(), first_three.next()) {
        (Some(first), Some(second), None) => ((first - second) / 2.0).abs(),
        (Some(_), Some(_), Some(_)) => {
            let count = shares().count() as f64;
            let mean = shares().sum::<f64>() / count;
            (shares().map(|share| (share - mean) * (share - mean)).sum::<f64>() / count).sqrt()
        }
        _ => 0.0,
    };
    ((1.0 - deviation) * 100.0).clamp(0.0, 100.0) as u32
}

export_scheduler!(BalancedAllocation);

#[cfg(test)]
mod tests {
    use engenho_scheduler::testsuite::{requesting_pod, sized_node};
    use engenho_scheduler::{Change, ExtendedResource, Instance, Judge};

    use super::*;
    use engenho_scheduler::Verdict;

    const MIB: u64 = 1 << 20;

    fn instance(config: &str) -> Instance<BalancedAllocation> {
        let (mut instance, abilities) = Instance::<BalancedAllocation>::configure(config).expect("configures");
        assert_eq!(abilities, Abilities { filters: false, scores: true, reads_pods: true, pod_parts: POD_PARTS });
        let mut gpu_node = sized_node("c", 4000, 4000 * MIB, 110);
        gpu_node.allocatable.extended = vec![ExtendedResource { name: "example.com/gpu".into(), amount: 4 }];
        instance.apply([
            Change::NodeSet(0, sized_node("a", 4000, 4000 * MIB, 110)),
            Change::NodeSet(1, sized_node("b", 4000, 4000 * MIB, 110)),
            Change::NodeSet(2, gpu_node),
            Change::PodPlaced(1, requesting_pod("placed", 2000, 0)),
        ]);
        instance
    }

    #[test]
    fn even_use_scores_highest() {
        // Goal: (1 − |cpu share − memory share| / 2) × 100, requests as
        // given (a pod asking nothing adds nothing).
        let mut instance = instance("{}");
        let pod = requesting_pod("p", 1000, 1000 * MIB);
        // a: 0.25 and 0.25 → 100. b: 0.75 and 0.25 → 75.
        assert_eq!(instance.score(&pod, &[0, 1]), vec![100, 75]);
        // Nothing asked: a is empty (100), b is 0.5 against 0 (75).
        assert_eq!(instance.score(&requesting_pod("q", 0, 0), &[0, 1]), vec![100, 75]);
        assert!(instance.filter(&pod, &[0, 1], &Assumptions::default()).iter().all(|v| *v == Verdict::Fits));
    }

    #[test]
    fn three_resources_use_the_standard_deviation() {
        // Goal: past two resources, the population standard deviation of
        // the shares; a scalar resource the pod does not ask for is left
        // out.
        let mut instance = instance(
            r#"{"resources": [{"name": "cpu"}, {"name": "memory", "weight": 1}, {"name": "example.com/gpu"}]}"#,
        );
        let mut pod = requesting_pod("p", 2000, 1000 * MIB);
        pod.requests.extended = vec![ExtendedResource { name: "example.com/gpu".into(), amount: 4 }];
        // Shares 0.5, 0.25, 1: mean 7/12, σ ≈ 0.3118 → 68.
        assert_eq!(instance.score(&pod, &[2]), vec![68]);
        // Node a has no GPUs: cpu and memory only, 0.5 and 0.25 → 87.
        assert_eq!(instance.score(&pod, &[0]), vec![87]);
        pod.requests.extended.clear();
        assert_eq!(instance.score(&pod, &[2]), vec![87]);
    }

    #[test]
    fn bad_configuration_names_the_field() {
        // Goal: weights other than 1, duplicates and unknown fields are
        // refused, naming the field.
        let refused = |config: &str| Instance::<BalancedAllocation>::configure(config).err().expect("refused");
        assert!(refused(r#"{"resources": [{"name": "cpu", "weight": 2}]}"#).contains("resources[0].weight"));
        assert!(refused(r#"{"resources": [{"name": "cpu"}, {"name": "cpu"}]}"#).contains("resources[1].name"));
        assert!(refused(r#"{"resources": [{"weight": 1}]}"#).contains("missing field `name`"));
        assert!(refused(r#"{"scoringStrategy": {}}"#).contains("unknown field `scoringStrategy`"));
    }

    #[test]
    fn answers_are_well_formed_for_any_input() {
        // Goal: over drawn tables, pods and assumptions (huge amounts, unknown
        // indexes, invalid terms included), one verdict per candidate and one
        // score within 0..=100 per node, and no panic.
        engenho_scheduler::testsuite::assert_well_formed::<BalancedAllocation>(r#"{}"#);
        engenho_scheduler::testsuite::assert_well_formed::<BalancedAllocation>(
            r#"{"resources": [{"name": "cpu"}, {"name": "memory"}, {"name": "example.com/gpu"}, {"name": "ephemeral-storage"}]}"#,
        );
    }
}
