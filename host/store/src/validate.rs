//! The checks every command passes before it is proposed, and again when
//! it is applied.
//!
//! They depend on the command alone, never on the store, so every replica
//! reaches the same verdict: a command refused here before proposing never
//! enters the log, and one that enters the log anyway (proposed by an older
//! or hostile node) is refused the same way on every replica when applied.

use std::collections::BTreeSet;

use crate::error::StoreError;
use crate::mvcc::LEASE_TTL_MAX;
use crate::range_set::RangeSet;
use crate::{Command, MAX_REQUEST_BYTES, MAX_TXN_OPS, Operation, PutRequest, TxnRequest};

/// Deepest nesting of transactions inside a transaction. The etcd facade's
/// protobuf decoder stops at 100 nested messages (about 50 transactions),
/// so no request it decodes is refused for its depth.
pub const TXN_NESTING_MAX: usize = 64;

/// Checks `command` the way etcd checks a client's request before
/// proposing it: its encoded size, its lease id and time to live, the
/// operation count and nesting of its transactions, and the keys of every
/// operation. A batch is checked command by command and may not hold
/// another batch.
///
/// Call it on every command before it is proposed, whoever sent it.
///
/// # Errors
/// The refusal etcd would answer: [`StoreError::RequestTooLarge`],
/// [`StoreError::InvalidLeaseId`], [`StoreError::LeaseTtlTooLarge`],
/// [`StoreError::TooManyOperations`], [`StoreError::TxnTooDeep`],
/// [`StoreError::EmptyKey`], [`StoreError::ValueProvided`],
/// [`StoreError::LeaseProvided`], [`StoreError::DuplicateKey`] or
/// [`StoreError::NestedBatch`].
pub fn validate_command(command: &Command) -> Result<(), StoreError> {
    match command {
        Command::Batch(commands) => commands.iter().try_for_each(validate_single),
        single => validate_single(single),
    }
}

/// Checks one command that is not a batch; a batch is refused.
pub(crate) fn validate_single(command: &Command) -> Result<(), StoreError> {
    if let Command::Batch(_) = command {
        return Err(StoreError::NestedBatch);
    }
    // The size next: it bounds the work of every other check.
    let size = bincode::serialized_size(command).map_or(usize::MAX, |size| usize::try_from(size).unwrap_or(usize::MAX));
    if size > MAX_REQUEST_BYTES {
        return Err(StoreError::RequestTooLarge { size });
    }
    match command {
        Command::Put(put) => validate_put(put)?,
        Command::Delete(delete) => delete.range.validate()?,
        Command::Txn(txn) => {
            validate_txn(txn, 0)?;
            // After every transaction's count is checked, as etcd does.
            written_by(&txn.success)?;
            written_by(&txn.failure)?;
        }
        Command::LeaseGrant { id, ttl } => validate_lease_grant(*id, *ttl)?,
        Command::Compact { .. } | Command::LeaseRevoke { .. } | Command::Batch(_) => {}
    }
    Ok(())
}

fn validate_lease_grant(id: i64, ttl: i64) -> Result<(), StoreError> {
    if id <= 0 {
        return Err(StoreError::InvalidLeaseId { id });
    }
    if ttl > LEASE_TTL_MAX {
        return Err(StoreError::LeaseTtlTooLarge { ttl });
    }
    Ok(())
}

fn validate_put(put: &PutRequest) -> Result<(), StoreError> {
    if put.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    if put.ignore_value && !put.value.is_empty() {
        return Err(StoreError::ValueProvided);
    }
    if put.ignore_lease && put.lease != 0 {
        return Err(StoreError::LeaseProvided);
    }
    Ok(())
}

/// Checks a transaction nested `depth` levels inside the command's own.
fn validate_txn(txn: &TxnRequest, depth: usize) -> Result<(), StoreError> {
    if depth > TXN_NESTING_MAX {
        return Err(StoreError::TxnTooDeep { depth });
    }
    let count = txn.compare.len().max(txn.success.len()).max(txn.failure.len());
    if count > MAX_TXN_OPS {
        return Err(StoreError::TooManyOperations { count });
    }
    txn.compare.iter().try_for_each(|compare| compare.range.validate())?;
    txn.success.iter().chain(&txn.failure).try_for_each(|operation| match operation {
        Operation::Range(range) => range.range.validate(),
        Operation::Put(put) => validate_put(put),
        Operation::Delete(delete) => delete.range.validate(),
        Operation::Txn(nested) => validate_txn(nested, depth + 1),
    })
}

/// The keys a list of operations puts and the ranges it deletes, those of
/// nested transactions included.
#[derive(Default)]
struct Written<'a> {
    puts: BTreeSet<&'a [u8]>,
    deletes: RangeSet,
}

impl Written<'_> {
    fn deletes(&self, key: &[u8]) -> bool {
        self.deletes.contains(key)
    }
}

/// What `operations` write, refusing a key written twice, as etcd's
/// `checkIntervals` does: no key may be put twice or both put and deleted,
/// in one list or through the transactions nested in it; the two branches
/// of a nested transaction may put the same key, as only one runs.
fn written_by(operations: &[Operation]) -> Result<Written<'_>, StoreError> {
    let mut written = Written::default();
    for operation in operations {
        if let Operation::Delete(delete) = operation {
            written.deletes.insert(&delete.range);
        }
    }
    for operation in operations {
        let Operation::Txn(nested) = operation else { continue };
        let success = written_by(&nested.success)?;
        let failure = written_by(&nested.failure)?;
        for key in &success.puts {
            if written.puts.contains(key) || written.deletes(key) {
                return Err(StoreError::DuplicateKey);
            }
        }
        written.puts.extend(&success.puts);
        for key in &failure.puts {
            let both_branches = success.puts.contains(key);
            if (written.puts.contains(key) && !both_branches) || written.deletes(key) {
                return Err(StoreError::DuplicateKey);
            }
        }
        written.puts.extend(failure.puts);
        written.deletes.extend(success.deletes);
        written.deletes.extend(failure.deletes);
    }
    for operation in operations {
        let Operation::Put(put) = operation else { continue };
        if written.deletes(&put.key) || !written.puts.insert(&put.key) {
            return Err(StoreError::DuplicateKey);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeleteRequest, KeyRange, RangeRequest};

    fn put(key: &str) -> Operation {
        Operation::Put(PutRequest { key: key.into(), value: b"v".to_vec(), ..PutRequest::default() })
    }

    /// A transaction with `levels` transactions nested inside it.
    fn nested(levels: usize) -> TxnRequest {
        let mut txn = TxnRequest { success: vec![put("k")], ..TxnRequest::default() };
        for _ in 0..levels {
            txn = TxnRequest { success: vec![Operation::Txn(txn)], ..TxnRequest::default() };
        }
        txn
    }

    #[test]
    fn lease_grants_need_a_positive_id_and_a_bounded_ttl() {
        for id in [0, -1, i64::MIN] {
            let refused = validate_command(&Command::LeaseGrant { id, ttl: 60 });
            assert_eq!(refused, Err(StoreError::InvalidLeaseId { id }));
        }
        let too_long = validate_command(&Command::LeaseGrant { id: 1, ttl: LEASE_TTL_MAX + 1 });
        assert_eq!(too_long, Err(StoreError::LeaseTtlTooLarge { ttl: LEASE_TTL_MAX + 1 }));
        assert_eq!(validate_command(&Command::LeaseGrant { id: 7, ttl: LEASE_TTL_MAX }), Ok(()));
    }

    #[test]
    fn requests_over_etcds_limit_are_refused() {
        let value = vec![b'x'; MAX_REQUEST_BYTES];
        let big = Command::Put(PutRequest { key: b"k".to_vec(), value, ..PutRequest::default() });
        assert!(
            matches!(validate_command(&big), Err(StoreError::RequestTooLarge { size }) if size > MAX_REQUEST_BYTES)
        );
        let fits = Command::Put(PutRequest {
            key: b"k".to_vec(),
            value: vec![b'x'; MAX_REQUEST_BYTES - 1024],
            ..PutRequest::default()
        });
        assert_eq!(validate_command(&fits), Ok(()));
    }

    #[test]
    fn every_transaction_counts_its_operations_nested_ones_too() {
        let wide = TxnRequest { failure: (0..=MAX_TXN_OPS).map(|i| put(&i.to_string())).collect(), ..nested(0) };
        let count = MAX_TXN_OPS + 1;
        assert_eq!(validate_command(&Command::Txn(wide.clone())), Err(StoreError::TooManyOperations { count }));
        let inside = TxnRequest { success: vec![Operation::Txn(wide)], ..TxnRequest::default() };
        assert_eq!(validate_command(&Command::Txn(inside)), Err(StoreError::TooManyOperations { count }));
        let full = TxnRequest { success: (0..MAX_TXN_OPS).map(|i| put(&i.to_string())).collect(), ..nested(0) };
        assert_eq!(validate_command(&Command::Txn(full)), Ok(()));
    }

    #[test]
    fn transactions_nest_up_to_the_limit() {
        assert_eq!(validate_command(&Command::Txn(nested(TXN_NESTING_MAX))), Ok(()));
        let deep = Command::Txn(nested(TXN_NESTING_MAX + 1));
        assert_eq!(validate_command(&deep), Err(StoreError::TxnTooDeep { depth: TXN_NESTING_MAX + 1 }));
    }

    #[test]
    fn operations_in_either_branch_are_checked_whichever_runs() {
        let empty_key = TxnRequest { failure: vec![put("")], ..nested(0) };
        assert_eq!(validate_command(&Command::Txn(empty_key)), Err(StoreError::EmptyKey));
        let empty_range = Operation::Range(RangeRequest { range: KeyRange::single(""), ..RangeRequest::default() });
        let read = TxnRequest { failure: vec![empty_range], ..nested(0) };
        assert_eq!(validate_command(&Command::Txn(read)), Err(StoreError::EmptyKey));
        let keep_value =
            PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ignore_value: true, ..PutRequest::default() };
        assert_eq!(validate_command(&Command::Put(keep_value)), Err(StoreError::ValueProvided));
        let keep_lease = PutRequest { key: b"k".to_vec(), lease: 5, ignore_lease: true, ..PutRequest::default() };
        assert_eq!(validate_command(&Command::Put(keep_lease)), Err(StoreError::LeaseProvided));
        let everything = DeleteRequest { range: KeyRange { key: Vec::new(), end: vec![0] }, prev_kv: false };
        assert_eq!(validate_command(&Command::Delete(everything)), Ok(()));
    }

    fn delete(key: &str, end: &str) -> Operation {
        let range = KeyRange { key: key.into(), end: end.into() };
        Operation::Delete(DeleteRequest { range, prev_kv: false })
    }

    fn txn(success: Vec<Operation>, failure: Vec<Operation>) -> Command {
        Command::Txn(TxnRequest { compare: Vec::new(), success, failure })
    }

    fn nested_txn(success: Vec<Operation>, failure: Vec<Operation>) -> Operation {
        Operation::Txn(TxnRequest { compare: Vec::new(), success, failure })
    }

    #[test]
    fn a_key_written_twice_is_refused_in_either_branch_as_etcd_does() {
        let duplicate = Err(StoreError::DuplicateKey);
        assert_eq!(validate_command(&txn(vec![], vec![put("a"), put("a")])), duplicate);
        assert_eq!(validate_command(&txn(vec![delete("a", "c"), put("b")], vec![])), duplicate);
        assert_eq!(validate_command(&txn(vec![put("b"), nested_txn(vec![put("b")], vec![])], vec![])), duplicate);
        assert_eq!(
            validate_command(&txn(vec![delete("a", "c"), nested_txn(vec![], vec![put("b")])], vec![])),
            duplicate
        );
        let deleted_inside = txn(vec![nested_txn(vec![delete("a", "c")], vec![]), put("b")], vec![]);
        assert_eq!(validate_command(&deleted_inside), duplicate);
        assert_eq!(validate_command(&txn(vec![put("a")], vec![put("a")])), Ok(()), "one branch runs");
        let either = txn(vec![nested_txn(vec![put("a")], vec![put("a")])], vec![]);
        assert_eq!(validate_command(&either), Ok(()), "one nested branch runs");
        let twice = txn(vec![nested_txn(vec![put("a")], vec![]), nested_txn(vec![], vec![put("a")])], vec![]);
        assert_eq!(validate_command(&twice), duplicate);
        assert_eq!(validate_command(&txn(vec![delete("a", ""), delete("a", "c"), put("c")], vec![])), Ok(()));
    }

    #[test]
    fn batches_are_checked_command_by_command_and_never_nest() {
        let good = Command::LeaseGrant { id: 1, ttl: 10 };
        assert_eq!(validate_command(&Command::Batch(vec![good.clone(), good.clone()])), Ok(()));
        let bad = Command::Batch(vec![good.clone(), Command::LeaseGrant { id: 0, ttl: 10 }]);
        assert_eq!(validate_command(&bad), Err(StoreError::InvalidLeaseId { id: 0 }));
        let nested = Command::Batch(vec![good.clone(), Command::Batch(vec![good])]);
        assert_eq!(validate_command(&nested), Err(StoreError::NestedBatch));
    }
}
