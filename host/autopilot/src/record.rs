//! Role records: the last assignment of each member, kept in the
//! replicated store so that every leader (and `engenho mesh status`, and
//! the shift-rate guardrail) sees the same history.

use serde::{Deserialize, Serialize};

use crate::Action;

/// Prefix of the store keys of role records.
pub const ROLE_RECORDS_PREFIX: &str = "/engenho/mesh/roles/";

/// The store key of member `id`'s role record.
pub fn role_record_key(id: u64) -> String {
    format!("{ROLE_RECORDS_PREFIX}{id:016x}")
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Votes: the control plane.
    Voter,
    /// A full replica that does not vote: warm standby.
    Learner,
    /// No longer a member.
    Removed,
}

impl Role {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Voter => "voter",
            Self::Learner => "learner",
            Self::Removed => "removed",
        }
    }
}

/// A member's last assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRecord {
    /// Raft node id, in decimal.
    #[serde(with = "decimal")]
    pub id: u64,
    /// Node name.
    pub name: String,
    /// Its role after the assignment.
    pub role: Role,
    /// What the assignment did.
    pub action: Action,
    /// Why.
    pub reason: String,
    /// Whether it is quarantined (kept from promotion).
    pub quarantined: bool,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// When its membership last changed (promoted, demoted), in
    /// milliseconds since the Unix epoch; joining is not a shift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shifted_at_ms: Option<u64>,
    /// The raft term of the leader that decided it.
    pub term: u64,
}

impl RoleRecord {
    /// Decodes a stored record.
    ///
    /// # Errors
    /// The bytes are not a role record.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Encodes it for the store.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a role record serializes")
    }
}

/// u64 as a decimal string, which JSON readers keep exact.
mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A worker's raise to standby, kept in the store (under the key the mesh
/// names) until the worker has joined as a learner or the raise timed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaiseRecord {
    /// The worker's name.
    pub name: String,
    /// Why.
    pub reason: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The raft term of the leader that decided it.
    pub term: u64,
}

impl RaiseRecord {
    /// Decodes a stored record.
    ///
    /// # Errors
    /// The bytes are not a raise record.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Encodes it for the store.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a raise record serializes")
    }
}
