//! The etcd data model: keys, revisions, operations and their results.
//!
//! These types are what crosses the raft log (as [`Command`]) and what the
//! state machine answers (as [`Applied`]). They use `i64` revisions and lease
//! ids because that is what etcd's wire protocol carries.

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Largest request etcd accepts by default (`--max-request-bytes`, 1.5 MiB).
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// Largest number of operations in one transaction (etcd's `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// A key with its value and MVCC metadata, as etcd's `mvccpb.KeyValue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeyValue {
    /// The key; never empty.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Revision of the last creation of this key.
    pub create_revision: i64,
    /// Revision of the last modification of this key.
    pub mod_revision: i64,
    /// Number of modifications since creation; a deletion resets it to zero.
    pub version: i64,
    /// The value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Lease the key is attached to, or 0.
    pub lease: i64,
}

/// Whether an event stored or removed a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The key was created or modified.
    Put,
    /// The key was deleted (explicitly or by lease expiry).
    Delete,
}

/// One change to one key, as etcd's `mvccpb.Event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; for deletes, the key with `mod_revision`
    /// set to the deleting revision and an empty value.
    pub kv: KeyValue,
    /// The key before the change, if it existed.
    pub prev_kv: Option<KeyValue>,
}

/// A key range in etcd's convention: `end` empty means the single key,
/// `end == [0]` means every key `>= key`, otherwise the half-open `[key, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeyRange {
    /// First key of the range.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// End of the range (see the type's documentation).
    #[serde(with = "serde_bytes")]
    pub end: Vec<u8>,
}

impl KeyRange {
    /// The range holding exactly `key`.
    pub fn single(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into(), end: Vec::new() }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key = prefix.into();
        let end = prefix_end(&key);
        Self { key, end }
    }

    /// Whether the range names one key only.
    pub fn is_single(&self) -> bool {
        self.end.is_empty()
    }

    /// Whether `candidate` falls in the range.
    pub fn contains(&self, candidate: &[u8]) -> bool {
        if self.is_single() {
            return candidate == self.key.as_slice();
        }
        if candidate < self.key.as_slice() {
            return false;
        }
        self.end == [0] || candidate < self.end.as_slice()
    }

    /// Whether the range is unbounded above (`end == [0]`).
    pub fn is_open_ended(&self) -> bool {
        self.end == [0]
    }

    /// Checks the range the way etcd does before serving it.
    ///
    /// # Errors
    /// [`StoreError::EmptyKey`] when the key is empty and the range is not
    /// the "all keys" range (`key = [0]` or empty with `end = [0]`).
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.key.is_empty() && !self.is_open_ended() {
            return Err(StoreError::EmptyKey);
        }
        Ok(())
    }
}

/// The smallest key greater than every key with `prefix`; `[0]` when there
/// is none (the prefix is all `0xff`), meaning "no upper bound".
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Order of the results of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SortOrder {
    /// Key order, ascending (the natural order).
    #[default]
    None,
    /// Lowest target first.
    Ascend,
    /// Highest target first.
    Descend,
}

/// Field a range is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value.
    Value,
}

/// A read of a key range, as etcd's `RangeRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RangeRequest {
    /// The keys to read.
    pub range: KeyRange,
    /// At most this many keys; 0 means no limit.
    pub limit: i64,
    /// Read as of this revision; 0 or less means the newest.
    pub revision: i64,
    /// Sort order of the results.
    pub sort_order: SortOrder,
    /// Field the results are sorted by.
    pub sort_target: SortTarget,
    /// Leave values out.
    pub keys_only: bool,
    /// Only count the keys.
    pub count_only: bool,
    /// Drop keys whose mod revision is below this (0: no bound).
    pub min_mod_revision: i64,
    /// Drop keys whose mod revision is above this (0: no bound).
    pub max_mod_revision: i64,
    /// Drop keys whose create revision is below this (0: no bound).
    pub min_create_revision: i64,
    /// Drop keys whose create revision is above this (0: no bound).
    pub max_create_revision: i64,
}

/// The answer to a [`RangeRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RangeResult {
    /// The keys found (empty when only counting).
    pub kvs: Vec<KeyValue>,
    /// Whether the limit cut off further keys.
    pub more: bool,
    /// Number of keys in the range, unaffected by the limit.
    pub count: i64,
}

/// A write of one key, as etcd's `PutRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PutRequest {
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The new value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Lease to attach, or 0.
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist).
    pub ignore_lease: bool,
}

/// The answer to a [`PutRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PutResult {
    /// The previous key-value, when asked for and present.
    pub prev_kv: Option<KeyValue>,
}

/// A deletion of a key range, as etcd's `DeleteRangeRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeleteRequest {
    /// The keys to delete.
    pub range: KeyRange,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

/// The answer to a [`DeleteRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeleteResult {
    /// Number of keys deleted.
    pub deleted: i64,
    /// The deleted key-values, when asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// How a [`Compare`] relates the key's field to the given operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    /// Field equals the operand.
    Equal,
    /// Field is greater than the operand.
    Greater,
    /// Field is less than the operand.
    Less,
    /// Field differs from the operand.
    NotEqual,
}

/// The field a [`Compare`] inspects, with the operand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The key's version (0 when absent).
    Version(i64),
    /// The key's create revision (0 when absent).
    Create(i64),
    /// The key's mod revision (0 when absent).
    Mod(i64),
    /// The key's value (an absent key never compares true).
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The key's lease (0 when absent or unleased).
    Lease(i64),
}

/// One guard of a transaction, as etcd's `Compare`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The key or keys inspected; every key in a range must satisfy it.
    pub range: KeyRange,
    /// The relation that must hold.
    pub result: CompareResult,
    /// The field and operand.
    pub target: CompareTarget,
}

/// One operation inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// A read.
    Range(RangeRequest),
    /// A write.
    Put(PutRequest),
    /// A deletion.
    Delete(DeleteRequest),
    /// A nested transaction.
    Txn(#[serde(deserialize_with = "crate::nesting::nested")] TxnRequest),
}

/// The answer to one [`Operation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationResult {
    /// Answer to a read.
    Range(RangeResult),
    /// Answer to a write.
    Put(PutResult),
    /// Answer to a deletion.
    Delete(DeleteResult),
    /// Answer to a nested transaction.
    Txn(#[serde(deserialize_with = "crate::nesting::nested")] TxnResult),
}

/// A guarded, atomic batch of operations, as etcd's `TxnRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TxnRequest {
    /// Guards; all must hold for `success` to run.
    pub compare: Vec<Compare>,
    /// Operations run when every guard holds.
    pub success: Vec<Operation>,
    /// Operations run otherwise.
    pub failure: Vec<Operation>,
}

/// The answer to a [`TxnRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TxnResult {
    /// Whether the guards held.
    pub succeeded: bool,
    /// One answer per operation that ran.
    pub responses: Vec<OperationResult>,
}

/// A state change proposed through raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Write one key.
    Put(PutRequest),
    /// Delete a range.
    Delete(DeleteRequest),
    /// Run a transaction.
    Txn(TxnRequest),
    /// Drop history older than `revision`.
    Compact {
        /// The new compacted revision.
        revision: i64,
    },
    /// Create a lease.
    LeaseGrant {
        /// Id chosen by the proposer (never 0).
        id: i64,
        /// Time to live in seconds.
        ttl: i64,
    },
    /// Delete a lease and every key attached to it.
    LeaseRevoke {
        /// The lease.
        id: i64,
    },
    /// Several independent commands in one raft entry, applied in order,
    /// each at its own revision and with its own outcome (group commit).
    Batch(#[serde(deserialize_with = "crate::nesting::nested")] Vec<Command>),
}

impl Command {
    /// Bytes of keys and values the command carries: an estimate of its
    /// size in the raft log.
    pub fn payload_bytes(&self) -> usize {
        fn range(range: &KeyRange) -> usize {
            range.key.len() + range.end.len()
        }
        fn operation(operation: &Operation) -> usize {
            match operation {
                Operation::Range(read) => range(&read.range),
                Operation::Put(put) => put.key.len() + put.value.len(),
                Operation::Delete(delete) => range(&delete.range),
                Operation::Txn(txn) => txn_bytes(txn),
            }
        }
        fn txn_bytes(txn: &TxnRequest) -> usize {
            let compares: usize = txn
                .compare
                .iter()
                .map(|c| range(&c.range) + if let CompareTarget::Value(v) = &c.target { v.len() } else { 8 })
                .sum();
            compares + txn.success.iter().chain(&txn.failure).map(operation).sum::<usize>()
        }
        let payload = match self {
            Self::Put(put) => put.key.len() + put.value.len(),
            Self::Delete(delete) => range(&delete.range),
            Self::Txn(txn) => txn_bytes(txn),
            Self::Compact { .. } | Self::LeaseGrant { .. } | Self::LeaseRevoke { .. } => 0,
            Self::Batch(commands) => commands.iter().map(Self::payload_bytes).sum(),
        };
        payload + 16
    }

    /// Whether applying the command costs time in proportion to its own
    /// size: puts, single-key deletes and reads, lease grants, and
    /// transactions of those. Range deletes and reads, lease revocations and
    /// compactions cost in proportion to the store instead.
    pub fn is_bounded(&self) -> bool {
        fn operation(operation: &Operation) -> bool {
            match operation {
                Operation::Range(read) => read.range.is_single(),
                Operation::Put(_) => true,
                Operation::Delete(delete) => delete.range.is_single(),
                Operation::Txn(txn) => txn_bounded(txn),
            }
        }
        fn txn_bounded(txn: &TxnRequest) -> bool {
            txn.compare.iter().all(|c| c.range.is_single()) && txn.success.iter().chain(&txn.failure).all(operation)
        }
        match self {
            Self::Put(_) | Self::LeaseGrant { .. } => true,
            Self::Delete(delete) => delete.range.is_single(),
            Self::Txn(txn) => txn_bounded(txn),
            Self::Compact { .. } | Self::LeaseRevoke { .. } => false,
            Self::Batch(commands) => commands.iter().all(Self::is_bounded),
        }
    }

    /// Commands the command carries: those of a batch, otherwise one.
    pub fn count(&self) -> usize {
        match self {
            Self::Batch(commands) => commands.len(),
            _ => 1,
        }
    }
}

/// The answer of the state machine to one [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Answer to [`Command::Put`].
    Put(PutResult),
    /// Answer to [`Command::Delete`].
    Delete(DeleteResult),
    /// Answer to [`Command::Txn`].
    Txn(TxnResult),
    /// Answer to [`Command::Compact`].
    Compacted,
    /// Answer to [`Command::LeaseGrant`].
    LeaseGranted {
        /// The lease id.
        id: i64,
        /// The granted time to live in seconds.
        ttl: i64,
    },
    /// Answer to [`Command::LeaseRevoke`].
    LeaseRevoked,
    /// Answer to [`Command::Batch`]: one answer per command, in order.
    Batch(#[serde(deserialize_with = "crate::nesting::nested")] Vec<Applied>),
    /// A raft entry that carried no command (blank or membership).
    Nothing,
}

/// What applying one raft entry produced: the store revision after it and
/// the outcome, or the refusal that left the store unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Store revision after the entry.
    pub revision: i64,
    /// The outcome, or why the command changed nothing.
    pub outcome: Result<Outcome, StoreError>,
}

/// A lease as reported by time-to-live queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// The lease id.
    pub id: i64,
    /// Granted time to live in seconds.
    pub ttl: i64,
    /// Keys attached to the lease.
    pub keys: Vec<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_ff() {
        assert_eq!(prefix_end(b"abc"), b"abd".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn ranges_contain_what_etcd_says() {
        let single = KeyRange::single("a");
        assert!(single.contains(b"a"));
        assert!(!single.contains(b"ab"));
        let prefix = KeyRange::prefix("a");
        assert!(prefix.contains(b"a"));
        assert!(prefix.contains(b"azz"));
        assert!(!prefix.contains(b"b"));
        let open = KeyRange { key: b"m".to_vec(), end: vec![0] };
        assert!(open.contains(b"zzz"));
        assert!(!open.contains(b"a"));
    }
}
