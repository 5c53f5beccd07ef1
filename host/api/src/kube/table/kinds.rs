//! The columns kube-apiserver prints for each built-in kind, by API group.

mod cells;
mod cluster;
mod core;
mod descriptions;
mod networking;
mod storage;
mod workloads;

use super::Column;

/// The columns of the built-in kind `group`/`plural`; `None` for a kind
/// this module does not describe.
pub(super) fn columns(group: &str, plural: &str) -> Option<Vec<Column>> {
    match group {
        "" | "events.k8s.io" => core::columns(group, plural),
        "apps" | "batch" | "autoscaling" => workloads::columns(plural),
        "networking.k8s.io" | "discovery.k8s.io" => networking::columns(plural),
        "storage.k8s.io" => storage::columns(plural),
        _ => cluster::columns(group, plural),
    }
}

#[cfg(test)]
mod tests;
