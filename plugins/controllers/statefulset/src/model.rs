//! The objects the controller reads: StatefulSets and claims, as far as it
//! reads them (unknown fields are skipped), and what it reads from a pod
//! beyond the SDK's view; pods and revisions are the SDK's.

use chrono::{DateTime, Duration, Utc};
use engenho_controller::kinds::STATEFUL_SETS;
use engenho_controller::meta::ObjectMeta;
use engenho_controller::pods::Pod;
use engenho_controller::selector::LabelSelector;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The pod label holding the pod's name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The pod label holding the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// A StatefulSet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatefulSet {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// What it asks for.
    pub spec: Spec,
    /// What was last reported.
    pub status: Status,
}

/// A StatefulSet's spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Spec {
    /// How many pods (default 1).
    pub replicas: Option<i32>,
    /// Which pods it owns.
    pub selector: LabelSelector,
    /// The pod template, as the API stores it.
    pub template: Value,
    /// The governing Service, the pods' subdomain.
    pub service_name: String,
    /// `OrderedReady` (default) or `Parallel`.
    pub pod_management_policy: String,
    /// How pods move to a new revision.
    pub update_strategy: UpdateStrategy,
    /// How many old revisions are kept (default 10).
    pub revision_history_limit: Option<i32>,
    /// How long a pod is ready before it counts as available.
    pub min_ready_seconds: i32,
    /// Where ordinals start.
    pub ordinals: Ordinals,
    /// The claims each pod gets.
    pub volume_claim_templates: Vec<Value>,
    /// What becomes of the claims when pods go.
    pub persistent_volume_claim_retention_policy: RetentionPolicy,
}

/// `spec.updateStrategy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpdateStrategy {
    /// `RollingUpdate` (default) or `OnDelete`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The rolling update's parameters.
    pub rolling_update: Option<RollingUpdate>,
}

/// `spec.updateStrategy.rollingUpdate`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RollingUpdate {
    /// Pods with an ordinal index below it keep the current revision.
    pub partition: Option<i32>,
}

/// `spec.ordinals`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Ordinals {
    /// The first ordinal.
    pub start: i32,
}

/// `spec.persistentVolumeClaimRetentionPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RetentionPolicy {
    /// `Retain` (default) or `Delete`: claims go with the set.
    pub when_deleted: String,
    /// `Retain` (default) or `Delete`: claims go with scaled-down pods.
    pub when_scaled: String,
}

/// A StatefulSet's status, as this controller writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    /// The generation this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods that exist.
    pub replicas: i32,
    /// Pods that are running and ready.
    pub ready_replicas: i32,
    /// Ready pods past `minReadySeconds`.
    pub available_replicas: i32,
    /// Pods of the current revision.
    pub current_replicas: i32,
    /// Pods of the update revision.
    pub updated_replicas: i32,
    /// The revision the set's pods were at before the update.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub current_revision: String,
    /// The revision of the set's template.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub update_revision: String,
    /// Hash collisions met naming revisions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}

impl StatefulSet {
    /// The desired number of pods.
    pub fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1).max(0)
    }

    /// Whether pods are made and removed one at a time, in order.
    pub fn is_ordered(&self) -> bool {
        self.spec.pod_management_policy != "Parallel"
    }

    /// Whether pods roll to a new revision on their own.
    pub fn is_rolling(&self) -> bool {
        self.spec.update_strategy.type_ != "OnDelete"
    }

    /// The rolling update's partition, if one is set.
    pub fn partition(&self) -> Option<i32> {
        self.spec.update_strategy.rolling_update.as_ref().map(|r| r.partition.unwrap_or(0).max(0))
    }

    /// The ordinals the set's pods have: `start..start+replicas`.
    pub fn ordinals(&self) -> std::ops::Range<i32> {
        let start = self.spec.ordinals.start.max(0);
        start..start.saturating_add(self.replicas())
    }

    /// The pod name of `ordinal`.
    pub fn pod_name(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.metadata.name)
    }

    /// The ordinal of the pod named `name`, if it is one of the set's names.
    pub fn ordinal_of(&self, name: &str) -> Option<i32> {
        let rest = name.strip_prefix(&self.metadata.name)?.strip_prefix('-')?;
        let ordinal: i32 = rest.parse().ok()?;
        (ordinal >= 0 && ordinal.to_string() == rest).then_some(ordinal)
    }

    /// The names of the claim templates.
    pub fn claim_template_names(&self) -> Vec<String> {
        self.spec
            .volume_claim_templates
            .iter()
            .filter_map(|t| t["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// The claim of `template` for the pod of `ordinal`.
    pub fn claim_name(&self, template: &str, ordinal: i32) -> String {
        format!("{template}-{}", self.pod_name(ordinal))
    }
}

/// A PersistentVolumeClaim, as far as the controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Claim {
    /// Its metadata.
    pub metadata: ObjectMeta,
}

engenho_controller::impl_revisions_owner!(StatefulSet, STATEFUL_SETS, "StatefulSet");

/// What the statefulset controller reads from a pod beyond the SDK's view.
pub trait StatefulPod {
    /// Whether it is running, ready, and not being deleted.
    fn is_healthy(&self) -> bool;

    /// How long until it has been ready `min_ready_seconds` (zero: it is
    /// available now); `None` when it is not running and ready.
    fn time_to_available(&self, min_ready_seconds: i32, now: DateTime<Utc>) -> Option<Duration>;

    /// Whether it has been ready `min_ready_seconds`.
    fn is_available(&self, min_ready_seconds: i32, now: DateTime<Utc>) -> bool;
}

impl StatefulPod for Pod {
    fn is_healthy(&self) -> bool {
        self.is_running_and_ready() && !self.metadata.is_deleting()
    }

    fn time_to_available(&self, min_ready_seconds: i32, now: DateTime<Utc>) -> Option<Duration> {
        if !self.is_running_and_ready() {
            return None;
        }
        if min_ready_seconds <= 0 {
            return Some(Duration::zero());
        }
        let since = self.ready_since().flatten().unwrap_or(now);
        let due = since + Duration::seconds(i64::from(min_ready_seconds));
        Some((due - now).max(Duration::zero()))
    }

    fn is_available(&self, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
        self.time_to_available(min_ready_seconds, now).is_some_and(|left| left.is_zero())
    }
}
