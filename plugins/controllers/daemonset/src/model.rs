//! The DaemonSets the controller reads, as far as it reads them (unknown
//! fields are skipped), and what it reads from a pod beyond the SDK's
//! view; nodes, pods and revisions are the SDK's.

use chrono::{DateTime, Duration, Utc};
use engenho_controller::kinds::DAEMON_SETS;
use engenho_controller::meta::ObjectMeta;
use engenho_controller::pods::Pod;
use engenho_controller::selector::LabelSelector;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

engenho_controller::impl_revisions_owner!(DaemonSet, DAEMON_SETS, "DaemonSet");

/// What the daemon controller reads from a pod beyond the SDK's view.
pub trait DaemonPod {
    /// The node it runs on or is meant for: its `nodeName`, or the one
    /// node its required affinity names by `metadata.name`.
    fn node(&self) -> Option<&str>;

    /// Whether it has been ready `min_ready_seconds`.
    fn is_available(&self, min_ready_seconds: i32, now: DateTime<Utc>) -> bool;

    /// The order Kubernetes keeps a node's daemon pods in: bound pods
    /// first, then the oldest, then by name.
    fn age_key(&self) -> (bool, Option<DateTime<Utc>>, String);
}

impl DaemonPod for Pod {
    fn node(&self) -> Option<&str> {
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

    fn is_available(&self, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
        let Some(since) = self.ready_since() else { return false };
        if min_ready_seconds <= 0 {
            return true;
        }
        since.is_some_and(|since| since + Duration::seconds(i64::from(min_ready_seconds)) <= now)
    }

    fn age_key(&self) -> (bool, Option<DateTime<Utc>>, String) {
        (self.spec.node_name.is_empty(), self.metadata.created(), self.metadata.name.clone())
    }
}
