//! The parts of CronJobs and Jobs the controller reads and writes. Unknown
//! status fields are kept, so a status write never drops what others set.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use engenho_controller::meta::{Condition, ObjectMeta, parse_time};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The annotation on a Job with the time it was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// A CronJob.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CronJob {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// When and what it runs.
    pub spec: CronJobSpec,
    /// What it has run.
    pub status: CronJobStatus,
}

/// A CronJob's spec, as far as the controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CronJobSpec {
    /// The cron schedule.
    pub schedule: String,
    /// The schedule's time zone; only UTC is supported.
    pub time_zone: Option<String>,
    /// How late a run may start, in seconds.
    pub starting_deadline_seconds: Option<i64>,
    /// `Allow` (default), `Forbid` or `Replace`.
    pub concurrency_policy: Option<String>,
    /// Whether runs are suspended.
    pub suspend: Option<bool>,
    /// The Job to make (its `metadata` and `spec`).
    pub job_template: Value,
    /// How many succeeded Jobs to keep (absent: all).
    pub successful_jobs_history_limit: Option<i32>,
    /// How many failed Jobs to keep (absent: all).
    pub failed_jobs_history_limit: Option<i32>,
}

impl CronJobSpec {
    /// The concurrency policy, as defaulted by the API.
    pub fn concurrency_policy(&self) -> &str {
        self.concurrency_policy.as_deref().unwrap_or("Allow")
    }
}

/// A CronJob's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CronJobStatus {
    /// The Jobs running.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<JobReference>,
    /// The time the latest Job was scheduled for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// When the latest successful Job completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// Fields the controller does not manage, kept as they are.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A reference to a Job (a core `ObjectReference`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobReference {
    /// `batch/v1`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `Job`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Its namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The version it was seen at.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
}

/// A Job, as far as the CronJob controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Job {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Status.
    pub status: JobStatus,
}

/// A Job's status, as far as the CronJob controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobStatus {
    /// Conditions, `Complete` and `Failed` among them.
    pub conditions: Vec<Condition>,
    /// When it started.
    pub start_time: Option<String>,
    /// When it completed.
    pub completion_time: Option<String>,
}

impl Job {
    /// `Complete` or `Failed`, if the Job finished.
    pub fn finished(&self) -> Option<&'static str> {
        let is = |t: &str| self.status.conditions.iter().any(|c| c.type_ == t && c.status == "True");
        if is("Complete") {
            Some("Complete")
        } else if is("Failed") {
            Some("Failed")
        } else {
            None
        }
    }

    /// When it completed successfully, if it did.
    pub fn completed_at(&self) -> Option<DateTime<Utc>> {
        if self.finished() != Some("Complete") {
            return None;
        }
        self.status.completion_time.as_deref().and_then(parse_time)
    }

    /// A reference to it.
    pub fn reference(&self) -> JobReference {
        JobReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            namespace: self.metadata.namespace.clone(),
            name: self.metadata.name.clone(),
            uid: self.metadata.uid.clone(),
            resource_version: self.metadata.resource_version.clone(),
        }
    }
}
