//! Resource amounts as kube-scheduler counts them.

use crate::{ExtendedResource, NodeEntry, Pod, Quantity, Resources};

/// The CPU (millicores) a pod that requests none counts as requesting when
/// nodes are scored, as kube-scheduler's `DefaultMilliCPURequest`.
pub const DEFAULT_MILLI_CPU_REQUEST: Quantity = 100;

/// The memory (bytes) a pod that requests none counts as requesting when
/// nodes are scored, as kube-scheduler's `DefaultMemoryRequest` (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: Quantity = 200 * 1024 * 1024;

/// The resource name of CPU.
pub const CPU: &str = "cpu";
/// The resource name of memory.
pub const MEMORY: &str = "memory";
/// The resource name of ephemeral storage.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// The resource name of the pod count.
pub const PODS: &str = "pods";

/// The CPU `requests` asks, or the default when it asks none.
///
/// The host sends a pod's requests summed over its containers, so a pod
/// counts as asking none only when no container asks any.
pub fn non_zero_milli_cpu(requests: &Resources) -> Quantity {
    if requests.milli_cpu == 0 { DEFAULT_MILLI_CPU_REQUEST } else { requests.milli_cpu }
}

/// The memory `requests` asks, or the default when it asks none.
pub fn non_zero_memory(requests: &Resources) -> Quantity {
    if requests.memory == 0 { DEFAULT_MEMORY_REQUEST } else { requests.memory }
}

/// The amount of the extended resource `name` in `resources` (0 when
/// absent).
pub fn extended_amount(resources: &[ExtendedResource], name: &str) -> Quantity {
    resources.iter().find(|r| r.name == name).map_or(0, |r| r.amount)
}

/// The amount of the resource `name` (`cpu`, `memory`,
/// `ephemeral-storage`, `pods` or an extended resource) in `resources`.
pub fn amount(resources: &Resources, name: &str) -> Quantity {
    match name {
        CPU => resources.milli_cpu,
        MEMORY => resources.memory,
        EPHEMERAL_STORAGE => resources.ephemeral_storage,
        PODS => resources.pods,
        other => extended_amount(&resources.extended, other),
    }
}

/// Whether `name` is a scalar resource in Kubernetes' sense: anything but
/// CPU, memory, ephemeral storage and the pod count (extended resources,
/// hugepages, attachable volumes).
pub fn is_scalar(name: &str) -> bool {
    !matches!(name, CPU | MEMORY | EPHEMERAL_STORAGE | PODS)
}

/// Whether `name` is an extended resource: a name with a domain outside
/// `kubernetes.io/` and no `requests.` prefix (e.g. `example.com/gpu`).
pub fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// What `pod` requests of each resource of `names`, as kube-scheduler's
/// resource scorers count it: with `use_requested`, the requests as given;
/// without, CPU and memory that are 0 count as the defaults
/// ([`DEFAULT_MILLI_CPU_REQUEST`], [`DEFAULT_MEMORY_REQUEST`]).
pub fn score_requests<'a>(pod: &Pod, names: impl Iterator<Item = &'a str>, use_requested: bool) -> Vec<Quantity> {
    names
        .map(|name| match name {
            CPU if !use_requested => non_zero_milli_cpu(&pod.requests),
            MEMORY if !use_requested => non_zero_memory(&pod.requests),
            PODS => 0,
            other => amount(&pod.requests, other),
        })
        .collect()
}

/// A resource's name, told apart once rather than at every node a plugin
/// weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceName<'a> {
    /// [`CPU`].
    Cpu,
    /// [`MEMORY`].
    Memory,
    /// [`EPHEMERAL_STORAGE`].
    EphemeralStorage,
    /// [`PODS`].
    Pods,
    /// Any other: a scalar resource by its name.
    Scalar(&'a str),
}

impl<'a> ResourceName<'a> {
    /// The resource called `name`.
    pub fn of(name: &'a str) -> Self {
        match name {
            CPU => Self::Cpu,
            MEMORY => Self::Memory,
            EPHEMERAL_STORAGE => Self::EphemeralStorage,
            PODS => Self::Pods,
            other => Self::Scalar(other),
        }
    }
}

/// The resource `name` on the node of `entry` once a pod asking
/// `pod_request` of it is placed there: (requested, allocatable), as
/// kube-scheduler's `calculateResourceAllocatableRequest` counts them. CPU
/// and memory count the placed pods' non-zero requests unless
/// `use_requested`; a scalar resource the pod does not ask for, and a
/// resource the node does not have, come out (0, 0): not scored.
pub fn allocation(
    entry: &NodeEntry,
    name: ResourceName<'_>,
    pod_request: Quantity,
    use_requested: bool,
) -> (Quantity, Quantity) {
    let requested = entry.requested();
    let allocatable = &entry.node().allocatable;
    match name {
        ResourceName::Cpu => {
            let placed = if use_requested { requested.total.milli_cpu } else { requested.non_zero_milli_cpu };
            (placed.saturating_add(pod_request), allocatable.milli_cpu)
        }
        ResourceName::Memory => {
            let placed = if use_requested { requested.total.memory } else { requested.non_zero_memory };
            (placed.saturating_add(pod_request), allocatable.memory)
        }
        ResourceName::EphemeralStorage => {
            (requested.total.ephemeral_storage.saturating_add(pod_request), allocatable.ephemeral_storage)
        }
        ResourceName::Pods => (0, 0),
        ResourceName::Scalar(_) if pod_request == 0 => (0, 0),
        ResourceName::Scalar(scalar) => match allocatable.extended.iter().find(|resource| resource.name == scalar) {
            Some(resource) => (requested.extended(scalar).saturating_add(pod_request), resource.amount),
            None => (0, 0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_that_ask_nothing_count_the_defaults() {
        // Goal: the non-zero defaults apply only to a zero request.
        let mut requests = Resources::default();
        assert_eq!(non_zero_milli_cpu(&requests), 100);
        assert_eq!(non_zero_memory(&requests), 209_715_200);
        requests.milli_cpu = 5;
        requests.memory = 7;
        assert_eq!(non_zero_milli_cpu(&requests), 5);
        assert_eq!(non_zero_memory(&requests), 7);
    }

    #[test]
    fn amounts_are_read_by_name() {
        // Goal: native names read their fields, anything else the extended
        // list, absent ones 0.
        let resources = Resources {
            milli_cpu: 1,
            memory: 2,
            ephemeral_storage: 3,
            pods: 4,
            extended: vec![ExtendedResource { name: "example.com/gpu".into(), amount: 5 }],
        };
        let read: Vec<Quantity> = ["cpu", "memory", "ephemeral-storage", "pods", "example.com/gpu", "example.com/fpga"]
            .iter()
            .map(|name| amount(&resources, name))
            .collect();
        assert_eq!(read, vec![1, 2, 3, 4, 5, 0]);
        assert!(is_scalar("hugepages-2Mi") && is_scalar("example.com/gpu") && !is_scalar("cpu"));
        assert!(is_extended("example.com/gpu"));
        assert!(!is_extended("hugepages-2Mi") && !is_extended("kubernetes.io/foo") && !is_extended("cpu"));
    }

    #[test]
    fn allocations_count_as_kube_scorers_do() {
        // Goal: non-zero defaults for CPU and memory unless the scorer
        // uses requests as given; scalar resources the pod does not ask
        // for, and ones the node lacks, are left out as (0, 0).
        let mut table = crate::Table::new();
        let mut worker = crate::testsuite::sized_node("w", 4000, 8 << 30, 110);
        worker.allocatable.extended = vec![ExtendedResource { name: "example.com/gpu".into(), amount: 4 }];
        table.apply(crate::Change::NodeSet(0, worker));
        let mut placed = crate::testsuite::requesting_pod("placed", 0, 1 << 30);
        placed.requests.extended = vec![ExtendedResource { name: "example.com/gpu".into(), amount: 1 }];
        table.apply(crate::Change::PodPlaced(0, placed));
        let entry = table.node(0).expect("node 0");
        let mut incoming = crate::testsuite::requesting_pod("p", 0, 0);
        incoming.requests.extended = vec![ExtendedResource { name: "example.com/gpu".into(), amount: 2 }];
        let names = ["cpu", "memory", "example.com/gpu", "example.com/fpga", "pods"];
        let defaulted = score_requests(&incoming, names.iter().copied(), false);
        assert_eq!(defaulted, vec![100, 200 << 20, 2, 0, 0]);
        assert_eq!(score_requests(&incoming, names.iter().copied(), true), vec![0, 0, 2, 0, 0]);
        let of = ResourceName::of;
        assert_eq!(allocation(entry, of("cpu"), 100, false), (200, 4000));
        assert_eq!(allocation(entry, of("cpu"), 0, true), (0, 4000));
        assert_eq!(allocation(entry, of("memory"), 0, true), (1 << 30, 8 << 30));
        assert_eq!(allocation(entry, of("example.com/gpu"), 2, true), (3, 4));
        assert_eq!(allocation(entry, of("example.com/gpu"), 0, true), (0, 0));
        assert_eq!(allocation(entry, of("example.com/fpga"), 1, true), (0, 0));
        assert_eq!(allocation(entry, of("pods"), 1, true), (0, 0));
        assert_eq!(of("ephemeral-storage"), ResourceName::EphemeralStorage);
    }
}
