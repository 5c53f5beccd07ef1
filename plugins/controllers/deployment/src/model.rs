//! Deployments, as far as this controller reads them; ReplicaSets and pods
//! are the SDK's.

use engenho_controller::meta::{Condition, ObjectMeta};
use engenho_controller::selector::LabelSelector;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Deployment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Deployment {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// What it asks for.
    pub spec: DeploymentSpec,
    /// What it last reported.
    pub status: DeploymentStatus,
}

/// What a Deployment asks for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentSpec {
    /// How many pods (absent: 1).
    pub replicas: Option<i64>,
    /// Which pods and ReplicaSets it owns.
    pub selector: LabelSelector,
    /// The pods it runs: `metadata` and `spec`.
    pub template: Value,
    /// How it replaces old pods with new ones.
    pub strategy: Strategy,
    /// How long a pod is ready before it counts as available.
    pub min_ready_seconds: i64,
    /// How many old ReplicaSets it keeps (absent: all).
    pub revision_history_limit: Option<i64>,
    /// Whether its rollout is paused.
    pub paused: bool,
    /// How long a rollout may go without progress (absent: no deadline).
    pub progress_deadline_seconds: Option<i64>,
}

impl DeploymentSpec {
    /// The number of pods asked for.
    pub fn desired(&self) -> i64 {
        self.replicas.unwrap_or(1).max(0)
    }

    /// The progress deadline in seconds, if it has one (Kubernetes takes
    /// `MaxInt32` for none).
    pub fn progress_deadline(&self) -> Option<i64> {
        self.progress_deadline_seconds.filter(|seconds| *seconds != i64::from(i32::MAX))
    }
}

/// How a Deployment replaces old pods.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Strategy {
    /// `RollingUpdate` (the default) or `Recreate`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The bounds of a rolling update.
    pub rolling_update: Option<RollingUpdate>,
}

impl Strategy {
    /// Whether old pods go only once new ones are there (not `Recreate`).
    pub fn is_rolling(&self) -> bool {
        self.type_ != "Recreate"
    }
}

/// The bounds of a rolling update.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RollingUpdate {
    /// How many pods above the count it may run (absent: 25%).
    pub max_surge: Option<IntOrPercent>,
    /// How many pods below the count may be unavailable (absent: 25%).
    pub max_unavailable: Option<IntOrPercent>,
}

/// A count, or a percentage of the desired count (`"25%"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    /// An absolute count.
    Int(i64),
    /// A percentage, as written (`"25%"`).
    Text(String),
}

/// What a Deployment reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentStatus {
    /// The generation this status describes.
    pub observed_generation: i64,
    /// Pods of all its ReplicaSets.
    pub replicas: i64,
    /// Pods of its new ReplicaSet.
    pub updated_replicas: i64,
    /// Ready pods.
    pub ready_replicas: i64,
    /// Available pods.
    pub available_replicas: i64,
    /// Pods still missing or not available.
    pub unavailable_replicas: i64,
    /// `Available`, `Progressing`, `ReplicaFailure`.
    pub conditions: Vec<Condition>,
    /// How often a new ReplicaSet's name collided (salts the hash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i64>,
}
