//! The objects the controller reads, as far as it reads them.

use engenho_controller::meta::{Condition, ObjectMeta};
use serde::{Deserialize, Serialize};

/// A Node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Node {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// Its spec.
    pub spec: NodeSpec,
    /// Its status.
    pub status: NodeStatus,
}

/// A Node's spec, as far as the controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NodeSpec {
    /// Its taints.
    pub taints: Vec<Taint>,
}

/// A Node's status, as far as the controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    /// Its conditions (`Ready`, `MemoryPressure`, …).
    pub conditions: Vec<Condition>,
}

/// A taint of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Taint {
    /// Its key.
    pub key: String,
    /// Its value, if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
    /// When it was added (`NoExecute` taints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_added: Option<String>,
}

/// A node's Lease in `kube-node-lease`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Lease {
    /// Its spec.
    pub spec: LeaseSpec,
}

/// A Lease's spec, as far as the controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LeaseSpec {
    /// When its holder last renewed it (a MicroTime).
    pub renew_time: Option<String>,
}

/// A pod.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Pod {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// Its spec.
    pub spec: PodSpec,
    /// Its status.
    pub status: PodStatus,
}

/// A pod's spec, as far as the controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    /// The node it is bound to.
    pub node_name: String,
    /// The taints it tolerates.
    pub tolerations: Vec<Toleration>,
}

/// A pod's status, as far as the controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PodStatus {
    /// Its conditions.
    pub conditions: Vec<Condition>,
}

/// A toleration of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Toleration {
    /// The taint key it tolerates; empty: every key (with `Exists`).
    pub key: String,
    /// `Equal` (the default) or `Exists`.
    pub operator: String,
    /// The value `Equal` compares with.
    pub value: String,
    /// The effect it tolerates; empty: every effect.
    pub effect: String,
    /// How long a `NoExecute` taint is tolerated; none: for ever.
    pub toleration_seconds: Option<i64>,
}

impl Toleration {
    /// Whether it tolerates `taint`, as Kubernetes matches them.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator.as_str() {
            "" | "Equal" => self.value == taint.value,
            "Exists" => true,
            _ => false,
        }
    }
}
