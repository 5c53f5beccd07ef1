//! Requests a node forwards to the raft leader, and their answers.

use engenho_store::{Applied, Command, NodeInfo};
use serde::{Deserialize, Serialize};

/// A leader-only request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ForwardRequest {
    /// Propose a command.
    Write(Command),
    /// Confirm leadership and return the index a linearizable read must
    /// wait for.
    ReadIndex,
    /// Renew a lease; answers its granted time to live.
    LeaseKeepAlive(i64),
    /// Remaining time to live of a lease.
    LeaseRemaining(i64),
    /// Add a node, which holds a node certificate of the cluster, as a
    /// voter.
    Join {
        /// The new node's id.
        id: u64,
        /// How to reach it.
        node: NodeInfo,
    },
}

/// The answer to a [`ForwardRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ForwardResponse {
    /// Answer to `Write`.
    Written(Applied),
    /// Answer to `ReadIndex`.
    ReadIndex(u64),
    /// Answer to lease requests: the time to live in seconds, if the lease
    /// exists.
    Lease(Option<i64>),
    /// Answer to `Join`.
    Joined,
}
