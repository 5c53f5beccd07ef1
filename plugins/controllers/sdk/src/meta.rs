//! The parts of objects every controller reads: metadata, owner
//! references, conditions. Unknown fields are skipped when reading.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::Kind;

/// An object's metadata, as far as controllers read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    /// Name.
    pub name: String,
    /// Namespace, or empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Unique id the server assigned.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The store revision that last wrote the object.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// The spec's generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// When the object was created (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// When its deletion was asked for, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Owners.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// Finalizers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

impl ObjectMeta {
    /// Whether the object is being deleted.
    pub fn is_deleting(&self) -> bool {
        self.deletion_timestamp.is_some()
    }

    /// Its controlling owner, if it has one.
    pub fn controller(&self) -> Option<&OwnerReference> {
        self.owner_references.iter().find(|owner| owner.controller == Some(true))
    }

    /// Whether the owner with `uid` controls it.
    pub fn is_controlled_by(&self, uid: &str) -> bool {
        self.controller().is_some_and(|owner| owner.uid == uid)
    }

    /// Its creation time, if it parses.
    pub fn created(&self) -> Option<DateTime<Utc>> {
        self.creation_timestamp.as_deref().and_then(parse_time)
    }
}

/// A reference from a dependent to its owner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OwnerReference {
    /// The owner's `apiVersion`.
    pub api_version: String,
    /// The owner's kind, e.g. `ReplicaSet`.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's uid.
    pub uid: String,
    /// Whether the owner manages the dependent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// Whether the owner's foreground deletion waits for the dependent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

impl OwnerReference {
    /// The controlling reference to the object of `kind` (named `kind_name`,
    /// e.g. `ReplicaSet`) that `owner` describes, as Kubernetes' controllers
    /// set it: `controller` and `blockOwnerDeletion` true.
    pub fn controlled_by(kind: &Kind, kind_name: &str, owner: &ObjectMeta) -> Self {
        Self {
            api_version: kind.api_version(),
            kind: kind_name.to_owned(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

/// A status condition (`type`, `status` and why).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    /// The condition's type, e.g. `Available`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A machine-readable reason.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the status last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// When the condition was last written (Deployments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    /// When the condition was last probed (Jobs, Nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<String>,
    /// When the node last reported it (Nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<String>,
}

/// The condition of `type_` among `conditions`.
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Sets `new` among `conditions`: its transition time stays when the status
/// did not change, as Kubernetes keeps it.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            if existing.status == new.status {
                new.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = new;
        }
        None => conditions.push(new),
    }
}

/// `time` as Kubernetes writes timestamps (RFC 3339, seconds, `Z`).
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `time` as Kubernetes writes micro-timestamps (Leases, events.k8s.io).
pub fn format_micro_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A timestamp as Kubernetes writes it, if it parses.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let mut conditions = vec![Condition {
            type_: "Available".into(),
            status: "True".into(),
            last_transition_time: Some("2026-01-01T00:00:00Z".into()),
            ..Condition::default()
        }];
        let now = Some("2026-02-02T00:00:00Z".to_owned());
        let same = Condition {
            type_: "Available".into(),
            status: "True".into(),
            last_transition_time: now.clone(),
            ..Default::default()
        };
        set_condition(&mut conditions, same);
        assert_eq!(conditions[0].last_transition_time.as_deref(), Some("2026-01-01T00:00:00Z"));
        let flipped = Condition {
            type_: "Available".into(),
            status: "False".into(),
            last_transition_time: now.clone(),
            ..Default::default()
        };
        set_condition(&mut conditions, flipped);
        assert_eq!(conditions[0].last_transition_time, now);
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn times_round_trip_in_kubernetes_form() {
        let time = parse_time("2026-12-05T04:00:00Z").expect("parses");
        assert_eq!(format_time(time), "2026-12-05T04:00:00Z");
        assert_eq!(format_micro_time(time), "2026-12-05T04:00:00.000000Z");
        assert!(parse_time("yesterday").is_none());
    }
}
