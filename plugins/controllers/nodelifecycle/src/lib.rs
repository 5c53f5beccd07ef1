//! Controller: nodes that stop reporting are marked and tainted, and pods
//! are evicted from nodes whose `NoExecute` taints they do not tolerate,
//! as kube-controller-manager's node-lifecycle controller (with its
//! taint-eviction manager) does. A node whose Lease in `kube-node-lease`
//! and `Ready` heartbeat are both older than the grace period gets its
//! `Ready`, `MemoryPressure`, `DiskPressure` and `PIDPressure` conditions
//! `Unknown`; a node whose `Ready` is `Unknown` is tainted
//! `node.kubernetes.io/unreachable`, one whose `Ready` is `False`
//! `node.kubernetes.io/not-ready` (`NoSchedule` and `NoExecute`), and the
//! taints go when it is `Ready` again. Pods on a node that is not ready
//! get their `Ready` condition `False`.
//!
//! Configuration (JSON, optional): `{"gracePeriodSeconds": 40}`, how long
//! a node may be silent before it is unreachable.

pub mod eviction;
pub mod health;
pub mod model;
pub mod plan;
pub mod taints;

use std::time::Duration;

use engenho_controller::kinds::{LEASES, NODES, PODS};
use engenho_controller::meta::Condition;
use engenho_controller::nodes::Node;
use engenho_controller::pods::Pod;
use engenho_controller::{
    ApiError, Cluster, Controller, EventType, Interest, Key, Level, ObjectRef, Outcome, Selector, Trigger, Write,
};
use serde::Deserialize;
use serde_json::json;

use crate::model::Lease;

/// How long a node may be silent, unless configured (kube-controller-
/// manager's `--node-monitor-grace-period`).
pub const DEFAULT_GRACE_PERIOD_SECONDS: u64 = 40;

/// The namespace of the nodes' Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The controller's configuration.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// How long a node may be silent before it is unreachable.
    #[serde(default = "default_grace")]
    grace_period_seconds: u64,
}

fn default_grace() -> u64 {
    DEFAULT_GRACE_PERIOD_SECONDS
}

/// Watches over nodes and evicts pods from tainted ones.
pub struct NodeLifecycle {
    grace: Duration,
}

impl Controller for NodeLifecycle {
    fn configure(config: &str) -> Result<(Self, Vec<Interest>), String> {
        let config: Config = match config.trim() {
            "" => Config { grace_period_seconds: DEFAULT_GRACE_PERIOD_SECONDS },
            text => serde_json::from_str(text).map_err(|e| format!("invalid configuration: {e}"))?,
        };
        if !(1..=86_400).contains(&config.grace_period_seconds) {
            return Err("invalid configuration: gracePeriodSeconds must be between 1 and 86400".into());
        }
        let interests = vec![
            Interest::new(NODES, [Trigger::Itself]),
            Interest::new(LEASES, [Trigger::SameName(NODES)]),
            Interest::new(PODS, []),
        ];
        Ok((Self { grace: Duration::from_secs(config.grace_period_seconds) }, interests))
    }

    fn reconcile<C: Cluster>(&self, cluster: &C, key: &Key) -> Outcome {
        self.sync(cluster, &key.name).into()
    }
}

impl NodeLifecycle {
    fn sync<C: Cluster>(&self, cluster: &C, name: &str) -> Result<Outcome, ApiError> {
        let Some(node) = cluster.get_as::<Node>(&NODES, "", name)? else { return Ok(Outcome::Done) };
        if node.metadata.is_deleting() {
            return Ok(Outcome::Done);
        }
        let lease = cluster.get_as::<Lease>(&LEASES, NODE_LEASE_NAMESPACE, name)?;
        let pods: Vec<Pod> = cluster.list_as(&PODS, &Selector { node_name: name.to_owned(), ..Selector::default() })?;
        let now = cluster.now();
        let plan = plan::plan(&node, lease.as_ref(), &pods, now, self.grace);
        let node_ref = ObjectRef::to(&NODES, &node.metadata);

        // Taints first: the patch names the resourceVersion read.
        if let Some(taints) = &plan.taints {
            let patch =
                json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": taints}});
            cluster.write(node_patch(name, "", patch))?;
        }
        if let Some(conditions) = &plan.conditions {
            cluster.write(node_patch(name, "status", json!({"status": {"conditions": conditions}})))?;
        }
        if plan.became_not_ready {
            let message = format!("Node {name} status is now: NodeNotReady");
            cluster.emit(&node_ref, EventType::Normal, "NodeNotReady", &message);
        }

        let mut first_error = None;
        let marks: Vec<Write> = plan
            .mark_not_ready
            .iter()
            .map(|(pod, conditions)| Write::status_patch(PODS, &pod.metadata, json!({"conditions": conditions})))
            .collect();
        for ((pod, _), answer) in plan.mark_not_ready.iter().zip(cluster.apply(marks)) {
            match answer {
                Ok(_) => cluster.emit(
                    &ObjectRef::to(&PODS, &pod.metadata),
                    EventType::Warning,
                    "NodeNotReady",
                    "Node is not ready",
                ),
                Err(error) if error.is_not_found() => {}
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Err(error) = evict(cluster, &plan.evict) {
            first_error.get_or_insert(error);
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        Ok(plan.requeue.map_or(Outcome::Done, Outcome::RequeueAfter))
    }
}

/// Deletes `pods`, each first marked with its `conditions` (the
/// `DisruptionTarget` condition among them) and recorded with a
/// `TaintManagerEviction` event.
fn evict<C: Cluster>(cluster: &C, pods: &[(&Pod, Vec<Condition>)]) -> Result<(), ApiError> {
    if pods.is_empty() {
        return Ok(());
    }
    let marks: Vec<Write> = pods
        .iter()
        .map(|(pod, conditions)| Write::status_patch(PODS, &pod.metadata, json!({"conditions": conditions})))
        .collect();
    // A mark that fails (the pod went meanwhile) does not stop the eviction.
    for (pod, answer) in pods.iter().zip(cluster.apply(marks)) {
        if let Err(error) = answer {
            cluster.log(Level::Debug, &format!("marking pod {} for eviction: {error}", pod.0.metadata.name));
        }
    }
    let deletes: Vec<Write> = pods.iter().map(|(pod, _)| Write::delete(PODS, &pod.metadata)).collect();
    let mut first_error = None;
    for ((pod, _), answer) in pods.iter().zip(cluster.apply(deletes)) {
        match answer {
            Ok(_) => {
                let message = format!("Marking for deletion Pod {}/{}", pod.metadata.namespace, pod.metadata.name);
                cluster.emit(&ObjectRef::to(&PODS, &pod.metadata), EventType::Normal, "TaintManagerEviction", &message);
            }
            Err(error) if error.is_not_found() || error.is_conflict() => {}
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A merge patch of node `name` (or, with `subresource` `status`, its
/// status).
fn node_patch(name: &str, subresource: &str, patch: serde_json::Value) -> Write {
    Write::Patch {
        kind: NODES,
        namespace: String::new(),
        name: name.to_owned(),
        subresource: subresource.to_owned(),
        patch,
    }
}

engenho_controller::export_controller!(NodeLifecycle);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_sets_the_grace_period() {
        let (controller, interests) = NodeLifecycle::configure("").expect("configures");
        assert_eq!(controller.grace, Duration::from_secs(40));
        assert_eq!(interests.len(), 3);
        let (controller, _) = NodeLifecycle::configure(r#"{"gracePeriodSeconds": 5}"#).expect("configures");
        assert_eq!(controller.grace, Duration::from_secs(5));
        assert!(NodeLifecycle::configure(r#"{"gracePeriodSeconds": 0}"#).is_err());
        assert!(NodeLifecycle::configure(r#"{"other": 1}"#).is_err());
    }
}
