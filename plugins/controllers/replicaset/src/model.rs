//! ReplicaSets and pods, as far as this controller reads them.

use engenho_controller::meta::{Condition, ObjectMeta, parse_time};
use engenho_controller::selector::LabelSelector;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A ReplicaSet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaSet {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// What it asks for.
    pub spec: ReplicaSetSpec,
    /// What it last reported.
    pub status: ReplicaSetStatus,
}

/// What a ReplicaSet asks for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaSetSpec {
    /// How many pods (absent: 1).
    pub replicas: Option<i64>,
    /// How long a pod is ready before it counts as available.
    pub min_ready_seconds: i64,
    /// Which pods it owns.
    pub selector: LabelSelector,
    /// The pods it creates: `metadata` and `spec`.
    pub template: Value,
}

impl ReplicaSetSpec {
    /// The number of pods asked for.
    pub fn desired(&self) -> i64 {
        self.replicas.unwrap_or(1).max(0)
    }
}

/// What a ReplicaSet reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaSetStatus {
    /// Active pods it owns.
    pub replicas: i64,
    /// Of those, the ones carrying every label of the template.
    pub fully_labeled_replicas: i64,
    /// Of those, the ready ones.
    pub ready_replicas: i64,
    /// Of those, the ones ready for at least `minReadySeconds`.
    pub available_replicas: i64,
    /// The generation this status describes.
    pub observed_generation: i64,
    /// `ReplicaFailure`, while pods cannot be created or deleted.
    pub conditions: Vec<Condition>,
}

/// A pod.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// Where it is to run.
    pub spec: PodSpec,
    /// How it runs.
    pub status: PodStatus,
}

/// The part of a pod's spec this controller reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    /// The node it is bound to, or empty.
    pub node_name: String,
}

/// The part of a pod's status this controller reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    pub phase: String,
    /// Its conditions, among them `Ready`.
    pub conditions: Vec<Condition>,
    /// Its containers' states.
    pub container_statuses: Vec<ContainerStatus>,
}

/// The part of a container's status this controller reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStatus {
    /// How often it restarted.
    pub restart_count: i64,
}

impl Pod {
    /// Whether it still runs or will: not Succeeded, not Failed, not being
    /// deleted (Kubernetes' `FilterActivePods`).
    pub fn is_active(&self) -> bool {
        self.status.phase != "Succeeded" && self.status.phase != "Failed" && !self.metadata.is_deleting()
    }

    /// Since when it is ready (condition `Ready` true), if it is.
    pub fn ready_since(&self) -> Option<Option<chrono::DateTime<chrono::Utc>>> {
        let ready = self.status.conditions.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
        Some(ready.last_transition_time.as_deref().and_then(parse_time))
    }

    /// Whether it is ready.
    pub fn is_ready(&self) -> bool {
        self.ready_since().is_some()
    }

    /// The most restarts of any of its containers.
    pub fn restarts(&self) -> i64 {
        self.status.container_statuses.iter().map(|c| c.restart_count).max().unwrap_or(0)
    }
}
