//! Errors of the store.

use serde::{Deserialize, Serialize};

/// What an operator does about a corrupt file in the data directory.
pub const CORRUPT_REMEDY: &str =
    "restore the data directory from a backup, or remove it and join the node to the cluster again";

/// Why the store refused or failed a request.
///
/// The messages are etcd's own, so that etcd clients print what their users
/// already know. Variants that come out of the state machine are part of the
/// replicated outcome and therefore serializable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StoreError {
    /// The request named no key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// The revision asked for was dropped by compaction.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The current compacted revision.
        compacted: i64,
    },
    /// The revision asked for is newer than the store.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision {
        /// The revision asked for.
        requested: i64,
        /// The store's current revision.
        current: i64,
    },
    /// The lease named does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound {
        /// The lease id.
        id: i64,
    },
    /// A lease with that id exists already.
    #[error("etcdserver: lease already exists")]
    LeaseExists {
        /// The lease id.
        id: i64,
    },
    /// The lease time to live is out of bounds.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge {
        /// The time to live asked for.
        ttl: i64,
    },
    /// `ignore_value`/`ignore_lease` was set on a missing key.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` was set together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` was set together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A transaction writes the same key twice.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A transaction has more operations than allowed.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOperations {
        /// Number of operations in the request.
        count: usize,
    },
    /// The request is larger than [`crate::MAX_REQUEST_BYTES`].
    #[error("etcdserver: request is too large")]
    RequestTooLarge {
        /// Size of the request in bytes.
        size: usize,
    },
    /// The disk failed under the store.
    #[error("etcdserver: storage failure: {0}")]
    Storage(String),
    /// A lease grant named an id that is not positive: 0 means "no lease"
    /// and ids are chosen before proposing.
    #[error("etcdserver: lease id must be positive")]
    InvalidLeaseId {
        /// The id asked for.
        id: i64,
    },
    /// A batch held another batch; batches are formed by the leader from
    /// single commands only.
    #[error("etcdserver: a batch of commands holds another batch")]
    NestedBatch,
    /// A file of the data directory failed its checksum or did not decode:
    /// the node cannot trust its state.
    #[error("{file} is corrupt ({detail}); {CORRUPT_REMEDY}")]
    Corrupt {
        /// The file or directory, as a path.
        file: String,
        /// What was found wrong.
        detail: String,
    },
    /// Transactions are nested more deeply than [`crate::TXN_NESTING_MAX`].
    #[error("etcdserver: transactions nested too deeply")]
    TxnTooDeep {
        /// Levels of nested transactions in the request.
        depth: usize,
    },
}

impl From<fjall::Error> for StoreError {
    fn from(error: fjall::Error) -> Self {
        Self::Storage(error.to_string())
    }
}

impl From<crate::DecodeError> for StoreError {
    fn from(error: crate::DecodeError) -> Self {
        Self::Storage(format!("corrupt record: {error}"))
    }
}

/// Result with [`StoreError`] as the default error.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
