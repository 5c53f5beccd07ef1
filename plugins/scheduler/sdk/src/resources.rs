//! Resource amounts as kube-scheduler counts them.

use crate::{ExtendedResource, Quantity, Resources};

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
}
