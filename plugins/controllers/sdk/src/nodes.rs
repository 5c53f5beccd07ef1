//! Nodes as controllers read them: their taints, whether they take new
//! pods, their conditions. Unknown fields are skipped when reading.

use serde::{Deserialize, Serialize};

use crate::meta::{Condition, ObjectMeta};

/// A Node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Node {
    /// Its metadata (its labels carry its zone and roles).
    pub metadata: ObjectMeta,
    /// Its spec.
    pub spec: NodeSpec,
    /// Its status.
    pub status: NodeStatus,
}

/// A Node's spec, as far as controllers read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSpec {
    /// Its taints.
    pub taints: Vec<Taint>,
    /// Whether it takes no new pods (daemon pods tolerate this).
    pub unschedulable: bool,
}

/// A Node's status, as far as controllers read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
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
