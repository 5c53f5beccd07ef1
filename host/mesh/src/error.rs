//! Errors of the raft node.

use serde::{Deserialize, Serialize};

/// Why a request to the cluster could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MeshError {
    /// No leader is known (an election is under way or quorum is lost).
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The leader could not be reached or did not answer in time.
    #[error("etcdserver: leader unreachable: {0}")]
    LeaderUnreachable(String),
    /// The leader a write was forwarded to failed before it answered:
    /// whether the write took effect is unknown, so it is not sent again.
    #[error("etcdserver: leader lost before answering; the write may or may not have been applied: {0}")]
    LeaderLost(String),
    /// This node lost leadership while the write was in flight; whether it
    /// took effect is unknown (as etcd's `ErrLeaderChanged`).
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// The request did not complete within its deadline.
    #[error("etcdserver: request timed out")]
    TimedOut,
    /// The raft node stopped (shutdown or a storage failure).
    #[error("etcdserver: raft stopped: {0}")]
    Stopped(String),
    /// A join was refused.
    #[error("join refused: {0}")]
    JoinRefused(String),
    /// A membership change was refused: it would leave the voters raft
    /// reaches short of a quorum.
    #[error("membership change refused: {0} would leave too few reachable voters for a quorum")]
    QuorumAtRisk(String),
    /// TLS credentials were unusable.
    #[error("peer TLS: {0}")]
    Tls(String),
    /// A peer sent a message that could not be decoded.
    #[error("malformed peer message: {0}")]
    Malformed(String),
    /// The store failed to read.
    #[error(transparent)]
    Store(#[from] engenho_store::StoreError),
}

/// Result with [`MeshError`] as the default error.
pub type Result<T, E = MeshError> = std::result::Result<T, E>;
