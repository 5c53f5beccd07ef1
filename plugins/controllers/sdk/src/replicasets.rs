//! ReplicaSets as the ReplicaSet and Deployment controllers read them, and
//! the status the ReplicaSet controller writes. Unknown fields are skipped
//! when reading.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::meta::{Condition, ObjectMeta};
use crate::selector::LabelSelector;

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

impl ReplicaSet {
    /// The number of pods it asks for, as the API defaults it (absent: 1).
    pub fn replicas(&self) -> i64 {
        self.spec.replicas.unwrap_or(1)
    }

    /// When it was created (the epoch when unknown).
    pub fn created(&self) -> DateTime<Utc> {
        self.metadata.created().unwrap_or_default()
    }
}
