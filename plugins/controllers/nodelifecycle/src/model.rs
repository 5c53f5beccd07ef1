//! The Leases the controller reads, as far as it reads them; nodes and
//! pods are the SDK's.

use serde::Deserialize;

/// A node's Lease in `kube-node-lease`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Lease {
    /// Its spec.
    pub spec: LeaseSpec,
}

/// A Lease's spec, as far as the controller reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LeaseSpec {
    /// When its holder last renewed it (a MicroTime).
    pub renew_time: Option<String>,
}
