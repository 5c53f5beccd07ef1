//! The objects the controller reads: DaemonSets, nodes, pods and revisions,
//! as far as it reads them. Unknown fields are skipped.

use chrono::{DateTime, Duration, Utc};
use engenho_controller::meta::{Condition, ObjectMeta, condition, parse_time};
use engenho_controller::selector::LabelSelector;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The pod label with the hash of the revision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The pod label with the template generation a pod was made from.
pub const GENERATION_LABEL: &str = "pod-template-generation";
/// The annotation with the set's template generation, when the API keeps it.
pub const GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// A DaemonSet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DaemonSet {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// What it asks for.
    pub spec: Spec,
    /// What was last reported.
    pub status: Status,
}

/// A DaemonSet's spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Spec {
    /// Which pods it owns.
    pub selector: LabelSelector,
    /// The pod template, as the API stores it.
    pub template: Value,
    /// How pods move to a new revision.
    pub update_strategy: UpdateStrategy,
    /// How long a pod is ready before it counts as available.
    pub min_ready_seconds: i32,
    /// How many old revisions are kept (default 10).
    pub revision_history_limit: Option<i32>,
}

/// `spec.updateStrategy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateStrategy {
    /// `RollingUpdate` (default) or `OnDelete`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The rolling update's parameters.
    pub rolling_update: RollingUpdate,
}

/// `spec.updateStrategy.rollingUpdate`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RollingUpdate {
    /// How many nodes may lack an available pod during the update (a
    /// count or a percentage; default 1).
    pub max_unavailable: Option<Value>,
    /// How many nodes may run an old and a new pod at once (default 0).
    pub max_surge: Option<Value>,
}

/// A DaemonSet's status, as this controller writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    /// The generation this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Nodes that should run the pod and do.
    pub current_number_scheduled: i32,
    /// Nodes that run the pod but should not.
    pub number_misscheduled: i32,
    /// Nodes that should run the pod.
    pub desired_number_scheduled: i32,
    /// Nodes whose pod is ready.
    pub number_ready: i32,
    /// Nodes whose pod is available.
    pub number_available: i32,
    /// Nodes that should run the pod and have none available.
    pub number_unavailable: i32,
    /// Nodes whose pod is of the current template.
    pub updated_number_scheduled: i32,
    /// Hash collisions met naming revisions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}

impl DaemonSet {
    /// Whether pods roll to a new revision on their own.
    pub fn is_rolling(&self) -> bool {
        self.spec.update_strategy.type_ != "OnDelete"
    }

    /// The template generation pods are labelled with.
    pub fn template_generation(&self) -> Option<String> {
        match self.metadata.annotations.get(GENERATION_ANNOTATION) {
            Some(generation) => Some(generation.clone()),
            None => self.metadata.generation.map(|g| g.to_string()),
        }
    }
}

/// A node, as far as the controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Node {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// Its spec.
    pub spec: NodeSpec,
}

/// A node's spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSpec {
    /// Its taints.
    pub taints: Vec<Taint>,
    /// Whether it takes no new pods (daemon pods tolerate this).
    pub unschedulable: bool,
}

/// A node taint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Taint {
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

/// A pod, as far as the controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
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
    /// Its affinity, where a daemon pod names its node before binding.
    pub affinity: Value,
}

/// A pod's status.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    pub phase: String,
    /// Its conditions.
    pub conditions: Vec<Condition>,
}

impl Pod {
    /// The node it runs on or is meant for: its `nodeName`, or the one
    /// node its required affinity names by `metadata.name`.
    pub fn node(&self) -> Option<&str> {
        if !self.spec.node_name.is_empty() {
            return Some(&self.spec.node_name);
        }
        let terms =
            self.spec.affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
                .as_array()?;
        terms.iter().flat_map(|t| t["matchFields"].as_array().into_iter().flatten()).find_map(|field| {
            let values = field["values"].as_array()?;
            let named = field["key"] == "metadata.name" && field["operator"] == "In" && values.len() == 1;
            if named { values[0].as_str() } else { None }
        })
    }

    /// Whether its deletion was asked for.
    pub fn is_terminating(&self) -> bool {
        self.metadata.is_deleting()
    }

    /// Whether it ran to an end and will not run again.
    pub fn is_terminal(&self) -> bool {
        self.status.phase == "Failed" || self.status.phase == "Succeeded"
    }

    /// Whether its `Ready` condition is true.
    pub fn is_ready(&self) -> bool {
        condition(&self.status.conditions, "Ready").is_some_and(|c| c.status == "True")
    }

    /// Whether it has been ready `min_ready_seconds`.
    pub fn is_available(&self, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
        if !self.is_ready() {
            return false;
        }
        if min_ready_seconds <= 0 {
            return true;
        }
        let since = condition(&self.status.conditions, "Ready")
            .and_then(|c| c.last_transition_time.as_deref())
            .and_then(parse_time);
        since.is_some_and(|since| since + Duration::seconds(i64::from(min_ready_seconds)) <= now)
    }

    /// The hash of the revision it was made from.
    pub fn revision(&self) -> &str {
        self.metadata.labels.get(REVISION_LABEL).map_or("", String::as_str)
    }

    /// The order Kubernetes keeps a node's daemon pods in: bound pods
    /// first, then the oldest, then by name.
    pub fn age_key(&self) -> (bool, Option<DateTime<Utc>>, String) {
        (self.spec.node_name.is_empty(), self.metadata.created(), self.metadata.name.clone())
    }
}

/// A ControllerRevision.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Revision {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// The template patch it records.
    pub data: Value,
    /// Its number in the set's history.
    pub revision: i64,
}

impl Revision {
    /// The hash pods of this revision are labelled with: its label, or its
    /// name when it has none.
    pub fn hash(&self) -> &str {
        self.metadata.labels.get(REVISION_LABEL).unwrap_or(&self.metadata.name)
    }
}
