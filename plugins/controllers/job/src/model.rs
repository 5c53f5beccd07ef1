//! The parts of Jobs the controller reads and writes, and what it reads
//! from a pod beyond the SDK's view. Unknown Job status fields are kept,
//! so a status write never drops what others set.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use engenho_controller::meta::{Condition, ObjectMeta, parse_time};
use engenho_controller::pods::Pod;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The finalizer that keeps a finished pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// The annotation and label holding an Indexed Job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// The label the API server sets on a Job's pod template: the Job's name.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// A Job.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Job {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// What the Job runs.
    pub spec: JobSpec,
    /// What it has done.
    pub status: JobStatus,
}

/// A Job's spec, as far as the controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobSpec {
    /// How many pods run at once (default 1).
    pub parallelism: Option<i32>,
    /// How many pods must succeed; absent: any one success completes.
    pub completions: Option<i32>,
    /// `NonIndexed` (default) or `Indexed`.
    pub completion_mode: Option<String>,
    /// Failures tolerated before the Job fails (default 6).
    pub backoff_limit: Option<i32>,
    /// How long the Job may be active, in seconds.
    pub active_deadline_seconds: Option<i64>,
    /// Whether the Job is suspended.
    pub suspend: Option<bool>,
    /// How long after finishing the Job is deleted, in seconds.
    pub ttl_seconds_after_finished: Option<i64>,
    /// `TerminatingOrFailed` (default) or `Failed`: when a replacement pod is made.
    pub pod_replacement_policy: Option<String>,
    /// The pod template.
    pub template: Value,
}

impl JobSpec {
    /// Whether pods carry completion indexes.
    pub fn is_indexed(&self) -> bool {
        self.completion_mode.as_deref() == Some("Indexed")
    }

    /// Whether the Job is suspended.
    pub fn is_suspended(&self) -> bool {
        self.suspend == Some(true)
    }

    /// The failures tolerated, as defaulted by the API.
    pub fn backoff_limit(&self) -> i32 {
        self.backoff_limit.unwrap_or(6)
    }

    /// Whether a terminating pod is replaced only once it has failed.
    pub fn replaces_only_failed(&self) -> bool {
        self.pod_replacement_policy.as_deref() == Some("Failed")
    }

    /// The pod template's restart policy.
    pub fn restart_policy(&self) -> &str {
        self.template["spec"]["restartPolicy"].as_str().unwrap_or("Never")
    }
}

/// A Job's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobStatus {
    /// Conditions: `SuccessCriteriaMet`, `FailureTarget`, `Complete`, `Failed`, `Suspended`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the Job started (or was last resumed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the Job completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Pods running or pending.
    #[serde(skip_serializing_if = "is_zero")]
    pub active: i32,
    /// Active pods that are ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<i32>,
    /// Pods counted as succeeded.
    #[serde(skip_serializing_if = "is_zero")]
    pub succeeded: i32,
    /// Pods counted as failed.
    #[serde(skip_serializing_if = "is_zero")]
    pub failed: i32,
    /// Pods being deleted that have not finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminating: Option<i32>,
    /// Succeeded indexes of an Indexed Job, in interval form (`0-2,4`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub completed_indexes: String,
    /// Finished pods recorded but not yet in the counters.
    pub uncounted_terminated_pods: UncountedTerminatedPods,
    /// Fields the controller does not manage, kept as they are.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

/// The uids of finished pods whose tracking finalizer is being removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UncountedTerminatedPods {
    /// Succeeded pods.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub succeeded: Vec<String>,
    /// Failed pods.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

impl UncountedTerminatedPods {
    /// How many pods are uncounted.
    pub fn len(&self) -> usize {
        self.succeeded.len() + self.failed.len()
    }

    /// Whether no pod is uncounted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl JobStatus {
    /// Whether the condition `type_` is `True`.
    pub fn has(&self, type_: &str) -> bool {
        self.condition(type_).is_some()
    }

    /// The condition `type_`, if it is `True`.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_ && c.status == "True")
    }

    /// Whether the Job finished (`Complete` or `Failed`).
    pub fn is_finished(&self) -> bool {
        self.has("Complete") || self.has("Failed")
    }

    /// When the Job finished, if it did.
    pub fn finished_at(&self) -> Option<DateTime<Utc>> {
        ["Complete", "Failed"]
            .iter()
            .filter_map(|t| self.condition(t))
            .find_map(|c| c.last_transition_time.as_deref().and_then(parse_time))
            .or_else(|| self.completion_time.as_deref().and_then(parse_time))
    }
}

/// What the job controller reads from a pod beyond the SDK's view.
pub trait JobPod {
    /// Whether the pod carries the tracking finalizer.
    fn is_tracked(&self) -> bool;

    /// The completion index it carries, if it is a valid one.
    fn completion_index(&self) -> Option<i32>;

    /// When the pod finished: its containers' last exit, else when it
    /// stopped being ready, else when its deletion was asked for.
    fn finished_at(&self) -> Option<DateTime<Utc>>;
}

impl JobPod for Pod {
    fn is_tracked(&self) -> bool {
        self.metadata.finalizers.iter().any(|f| f == TRACKING_FINALIZER)
    }

    fn completion_index(&self) -> Option<i32> {
        let text = self.metadata.annotations.get(COMPLETION_INDEX)?;
        text.parse::<i32>().ok().filter(|i| *i >= 0 && i.to_string() == *text)
    }

    fn finished_at(&self) -> Option<DateTime<Utc>> {
        let exits = self
            .status
            .container_statuses
            .iter()
            .filter_map(|c| c.state.terminated.as_ref()?.finished_at.as_deref().and_then(parse_time));
        exits
            .max()
            .or_else(|| {
                let ready = self.status.conditions.iter().find(|c| c.type_ == "Ready");
                ready.and_then(|c| c.last_transition_time.as_deref()).and_then(parse_time)
            })
            .or_else(|| self.metadata.deletion_timestamp.as_deref().and_then(parse_time))
    }
}
