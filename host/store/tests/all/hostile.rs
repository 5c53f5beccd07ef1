//! Goal: no command, however malformed, stops a replica, and every replica
//! answers it the same way. Method: proptest builds arbitrary commands
//! (zero and negative lease ids, oversized time to live, empty keys, nested
//! batches, transactions nested past the limit) and applies the same
//! sequence, in the same raft batches, to two stores on fjall; applying
//! must never panic or fail, and both stores must end with identical
//! outcomes and byte-identical images. A command that fails
//! `validate_command` must be refused when applied, changing nothing.

use engenho_store::*;
use proptest::prelude::*;

const KEYS: &[&[u8]] = &[b"", b"a", b"ab", b"b"];

fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::sample::select(KEYS).prop_map(<[u8]>::to_vec)
}

fn range() -> impl Strategy<Value = KeyRange> {
    (key(), prop_oneof![Just(Vec::new()), Just(vec![0]), key()]).prop_map(|(key, end)| KeyRange { key, end })
}

fn lease() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), Just(-1), Just(1), Just(2), Just(i64::MIN)]
}

fn put() -> impl Strategy<Value = PutRequest> {
    (key(), proptest::collection::vec(any::<u8>(), 0..3), lease(), any::<bool>(), any::<bool>(), any::<bool>())
        .prop_map(|(key, value, lease, prev_kv, ignore_value, ignore_lease)| PutRequest {
            key,
            value,
            lease,
            prev_kv,
            ignore_value,
            ignore_lease,
        })
}

fn compare() -> impl Strategy<Value = Compare> {
    let target = prop_oneof![
        (-1i64..3).prop_map(CompareTarget::Version),
        (-1i64..3).prop_map(CompareTarget::Mod),
        lease().prop_map(CompareTarget::Lease),
        proptest::collection::vec(any::<u8>(), 0..2).prop_map(CompareTarget::Value),
    ];
    let result = proptest::sample::select(
        &[CompareResult::Equal, CompareResult::Greater, CompareResult::Less, CompareResult::NotEqual][..],
    );
    (range(), result, target).prop_map(|(range, result, target)| Compare { range, result, target })
}

fn operation() -> impl Strategy<Value = Operation> {
    let leaf = prop_oneof![
        (range(), -1i64..4).prop_map(|(range, revision)| Operation::Range(RangeRequest {
            range,
            revision,
            ..RangeRequest::default()
        })),
        put().prop_map(Operation::Put),
        range().prop_map(|range| Operation::Delete(DeleteRequest { range, prev_kv: true })),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        let operations = proptest::collection::vec(inner, 0..3);
        (proptest::collection::vec(compare(), 0..2), operations.clone(), operations)
            .prop_map(|(compare, success, failure)| Operation::Txn(TxnRequest { compare, success, failure }))
    })
}

/// A transaction with `levels` transactions nested inside it, past the
/// limit when `levels` exceeds [`TXN_NESTING_MAX`].
fn nested_txn(levels: usize) -> TxnRequest {
    let put = PutRequest { key: b"deep".to_vec(), ..PutRequest::default() };
    let mut txn = TxnRequest { success: vec![Operation::Put(put)], ..TxnRequest::default() };
    for _ in 0..levels {
        txn = TxnRequest { success: vec![Operation::Txn(txn)], ..TxnRequest::default() };
    }
    txn
}

fn single() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => put().prop_map(Command::Put),
        2 => (range(), any::<bool>()).prop_map(|(range, prev_kv)| Command::Delete(DeleteRequest { range, prev_kv })),
        3 => (proptest::collection::vec(compare(), 0..2), proptest::collection::vec(operation(), 0..3),
              proptest::collection::vec(operation(), 0..3))
            .prop_map(|(compare, success, failure)| Command::Txn(TxnRequest { compare, success, failure })),
        1 => (TXN_NESTING_MAX - 1..TXN_NESTING_MAX + 3).prop_map(|levels| Command::Txn(nested_txn(levels))),
        1 => (-2i64..6).prop_map(|revision| Command::Compact { revision }),
        2 => (lease(), prop_oneof![Just(-5i64), Just(0), Just(60), Just(9_000_000_001)])
            .prop_map(|(id, ttl)| Command::LeaseGrant { id, ttl }),
        1 => lease().prop_map(|id| Command::LeaseRevoke { id }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    single().prop_recursive(2, 12, 4, |inner| proptest::collection::vec(inner, 0..4).prop_map(Command::Batch))
}

/// Applies `batches` (one raft apply call each) and returns every outcome.
fn apply_all(store: &Mvcc, batches: &[Vec<Command>]) -> Vec<Applied> {
    let mut outcomes = Vec::new();
    for batch in batches {
        let mut applier = store.applier();
        for command in batch {
            outcomes.push(applier.apply(command).expect("applying never fails for a bad command"));
        }
        applier.commit(None, None).expect("commit");
    }
    outcomes
}

/// Every refusal in `applied`, a batch's own included, for a command that
/// fails validation; `command` is what was applied.
fn check_refused(command: &Command, applied: &Applied) -> Result<(), TestCaseError> {
    match (command, &applied.outcome) {
        (Command::Batch(commands), Ok(Outcome::Batch(outcomes))) => {
            prop_assert_eq!(commands.len(), outcomes.len());
            for (command, applied) in commands.iter().zip(outcomes) {
                if let Command::Batch(_) = command {
                    prop_assert_eq!(&applied.outcome, &Err(StoreError::NestedBatch));
                } else {
                    check_refused(command, applied)?;
                }
            }
        }
        (Command::Batch(_), other) => prop_assert!(false, "a batch answers per command, not {other:?}"),
        (single, outcome) => {
            if let Err(refusal) = validate_command(single) {
                prop_assert_eq!(outcome, &Err(refusal));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_commands_never_stop_a_replica_and_replicas_agree(
        batches in proptest::collection::vec(proptest::collection::vec(command(), 1..4), 1..6),
    ) {
        let dirs = [tempfile::tempdir().expect("directory"), tempfile::tempdir().expect("directory")];
        let stores: Vec<_> = dirs
            .iter()
            .map(|dir| Mvcc::open(&open_database(dir.path()).expect("open")).expect("open store"))
            .collect();
        let first = apply_all(&stores[0], &batches);
        let second = apply_all(&stores[1], &batches);
        prop_assert_eq!(&first, &second);
        for (command, applied) in batches.iter().flatten().zip(&first) {
            check_refused(command, applied)?;
        }
        let images: Vec<_> = stores.iter().map(|store| store.export().expect("export").2).collect();
        prop_assert_eq!(&images[0], &images[1]);
    }
}

#[test]
fn a_lease_grant_with_id_zero_is_refused_when_applied() {
    let dir = tempfile::tempdir().expect("directory");
    let storage = open_database(dir.path()).expect("open");
    let store = Mvcc::open(&storage).expect("open store");
    let grants = [Command::LeaseGrant { id: 0, ttl: 60 }, Command::LeaseGrant { id: -3, ttl: 60 }];
    let outcomes = apply_all(&store, &[grants.to_vec()]);
    assert_eq!(outcomes[0].outcome, Err(StoreError::InvalidLeaseId { id: 0 }));
    assert_eq!(outcomes[1].outcome, Err(StoreError::InvalidLeaseId { id: -3 }));
    assert!(store.leases().is_empty(), "no lease was granted");
}

#[test]
fn a_batch_inside_a_batch_is_refused_alone() {
    let dir = tempfile::tempdir().expect("directory");
    let store = Mvcc::open(&open_database(dir.path()).expect("open")).expect("open store");
    let put = Command::Put(PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..PutRequest::default() });
    let batch = Command::Batch(vec![Command::Batch(vec![put.clone()]), put]);
    let outcomes = apply_all(&store, &[vec![batch]]);
    let Ok(Outcome::Batch(answers)) = &outcomes[0].outcome else { panic!("a batch answers per command") };
    assert_eq!(answers[0].outcome, Err(StoreError::NestedBatch));
    assert!(matches!(answers[1].outcome, Ok(Outcome::Put(_))));
    assert_eq!(store.revision(), 1, "only the put wrote");
}
