//! Goal: the MVCC store answers like etcd's data model. Method: proptest
//! drives random puts, deletes, transactions, lease grants and revokes and
//! compactions through the real store on fjall and through a plain model
//! that keeps a full copy of the key space per revision; every range, at
//! every retained revision, must agree, and reopening the database must not
//! change any answer.

use std::collections::BTreeMap;

use engenho_store::*;
use proptest::prelude::*;

const KEYS: &[&str] = &["a", "ab", "b", "b/1", "b/2", "c"];

#[derive(Debug, Clone)]
enum Step {
    Put { key: usize, value: u8, lease: Option<usize> },
    Delete { key: usize, prefix: bool },
    Txn { key: usize, expect_version: i64, value: u8 },
    Grant,
    Revoke { lease: usize },
    Compact { back: i64 },
}

fn step() -> impl Strategy<Value = Step> {
    let key = 0..KEYS.len();
    prop_oneof![
        4 => (key.clone(), any::<u8>(), proptest::option::of(0usize..3))
            .prop_map(|(key, value, lease)| Step::Put { key, value, lease }),
        2 => (key.clone(), any::<bool>()).prop_map(|(key, prefix)| Step::Delete { key, prefix }),
        2 => (key, 0i64..3, any::<u8>()).prop_map(|(key, expect_version, value)| Step::Txn { key, expect_version, value }),
        1 => Just(Step::Grant),
        1 => (0usize..3).prop_map(|lease| Step::Revoke { lease }),
        1 => (0i64..6).prop_map(|back| Step::Compact { back }),
    ]
}

/// A change to one key in the model: the new value and lease, or deletion.
type Change = (Vec<u8>, Option<(Vec<u8>, i64)>);

/// The model: the whole key space after every revision, and the leases.
#[derive(Default)]
struct Model {
    states: Vec<BTreeMap<Vec<u8>, KeyValue>>,
    leases: std::collections::BTreeSet<i64>,
    compacted: i64,
}

impl Model {
    fn new() -> Self {
        Self { states: vec![BTreeMap::new()], ..Self::default() }
    }
    fn revision(&self) -> i64 {
        i64::try_from(self.states.len()).expect("small") - 1
    }
    fn now(&self) -> &BTreeMap<Vec<u8>, KeyValue> {
        self.states.last().expect("revision 0 exists")
    }
    /// Applies a set of changes as one new revision (if there are any).
    fn commit(&mut self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let revision = self.revision() + 1;
        let mut next = self.now().clone();
        for (key, change) in changes {
            match change {
                Some((value, lease)) => {
                    let prev = next.get(&key);
                    let kv = KeyValue {
                        key: key.clone(),
                        create_revision: prev.map_or(revision, |p| p.create_revision),
                        mod_revision: revision,
                        version: prev.map_or(1, |p| p.version + 1),
                        value,
                        lease,
                    };
                    next.insert(key, kv);
                }
                None => {
                    next.remove(&key);
                }
            }
        }
        self.states.push(next);
    }
    fn range(&self, range: &KeyRange, revision: i64) -> Vec<KeyValue> {
        let at = if revision <= 0 { self.revision() } else { revision };
        let state = &self.states[usize::try_from(at).expect("non-negative")];
        state.values().filter(|kv| range.contains(&kv.key)).cloned().collect()
    }
}

fn apply(store: &Mvcc, command: Command) -> Applied {
    let mut applier = store.applier();
    let applied = applier.apply(&command).expect("no storage failure");
    applier.commit(None, None).expect("commit");
    applied
}

fn lease_id(index: usize) -> i64 {
    i64::try_from(index).expect("small") + 100
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut model = Model::new();
    let mut granted = 0usize;
    {
        let db = open_database(dir.path()).expect("open");
        let store = Mvcc::open(&db).expect("open store");
        for step in steps {
            run_step(&store, &mut model, &mut granted, step)?;
            check_all(&store, &model)?;
        }
    }
    let db = open_database(dir.path()).expect("reopen");
    let store = Mvcc::open(&db).expect("reopen store");
    check_all(&store, &model)
}

fn run_step(store: &Mvcc, model: &mut Model, granted: &mut usize, step: Step) -> Result<(), TestCaseError> {
    match step {
        Step::Put { key, value, lease } => {
            let lease = lease.map_or(0, lease_id);
            let applied = apply(
                store,
                Command::Put(PutRequest { key: KEYS[key].into(), value: vec![value], lease, ..PutRequest::default() }),
            );
            if lease != 0 && !model.leases.contains(&lease) {
                prop_assert_eq!(applied.outcome, Err(StoreError::LeaseNotFound { id: lease }));
            } else {
                prop_assert!(applied.outcome.is_ok());
                model.commit(vec![(KEYS[key].into(), Some((vec![value], lease)))]);
            }
        }
        Step::Delete { key, prefix } => {
            let range = if prefix { KeyRange::prefix(KEYS[key]) } else { KeyRange::single(KEYS[key]) };
            let doomed = model.range(&range, 0);
            let applied = apply(store, Command::Delete(DeleteRequest { range, prev_kv: true }));
            let Ok(Outcome::Delete(result)) = applied.outcome else { panic!("delete refused") };
            prop_assert_eq!(&result.prev_kvs, &doomed);
            model.commit(doomed.into_iter().map(|kv| (kv.key, None)).collect());
        }
        Step::Txn { key, expect_version, value } => {
            let holds = model.now().get(KEYS[key].as_bytes()).map_or(0, |kv| kv.version) == expect_version;
            let applied = apply(
                store,
                Command::Txn(TxnRequest {
                    compare: vec![Compare {
                        range: KeyRange::single(KEYS[key]),
                        result: CompareResult::Equal,
                        target: CompareTarget::Version(expect_version),
                    }],
                    success: vec![Operation::Put(PutRequest {
                        key: KEYS[key].into(),
                        value: vec![value],
                        ..PutRequest::default()
                    })],
                    failure: vec![Operation::Range(RangeRequest {
                        range: KeyRange::single(KEYS[key]),
                        ..RangeRequest::default()
                    })],
                }),
            );
            let Ok(Outcome::Txn(result)) = applied.outcome else { panic!("txn refused") };
            prop_assert_eq!(result.succeeded, holds);
            if holds {
                model.commit(vec![(KEYS[key].into(), Some((vec![value], 0)))]);
            }
        }
        Step::Grant => {
            let id = lease_id(*granted % 3);
            *granted += 1;
            let applied = apply(store, Command::LeaseGrant { id, ttl: 60 });
            if model.leases.insert(id) {
                prop_assert!(applied.outcome.is_ok());
            } else {
                prop_assert_eq!(applied.outcome, Err(StoreError::LeaseExists { id }));
            }
        }
        Step::Revoke { lease } => {
            let id = lease_id(lease);
            let applied = apply(store, Command::LeaseRevoke { id });
            if model.leases.remove(&id) {
                prop_assert!(applied.outcome.is_ok());
                let doomed: Vec<_> =
                    model.now().values().filter(|kv| kv.lease == id).map(|kv| (kv.key.clone(), None)).collect();
                model.commit(doomed);
            } else {
                prop_assert_eq!(applied.outcome, Err(StoreError::LeaseNotFound { id }));
            }
        }
        Step::Compact { back } => {
            let target = model.revision() - back;
            let applied = apply(store, Command::Compact { revision: target });
            if target > model.compacted {
                prop_assert_eq!(applied.outcome, Ok(Outcome::Compacted));
                model.compacted = target;
            } else {
                prop_assert!(applied.outcome.is_err());
            }
        }
    }
    prop_assert_eq!(store.status().revision, model.revision());
    Ok(())
}

fn check_all(store: &Mvcc, model: &Model) -> Result<(), TestCaseError> {
    let ranges = [
        KeyRange::prefix(""),
        KeyRange::prefix("b"),
        KeyRange::single("ab"),
        KeyRange { key: b"ab".to_vec(), end: b"b/2".to_vec() },
    ];
    let ranges = ranges.into_iter().map(|mut r| {
        if r.key.is_empty() {
            r = KeyRange { key: vec![0], end: vec![0] };
        }
        r
    });
    for range in ranges {
        for revision in model.compacted.max(1)..=model.revision() {
            let request = RangeRequest { range: range.clone(), revision, ..RangeRequest::default() };
            let (at, result) = store.range(&request).expect("range");
            prop_assert_eq!(at, model.revision());
            prop_assert_eq!(&result.kvs, &model.range(&range, revision), "range {:?} at {}", range, revision);
        }
        if model.compacted > 1 {
            let stale = RangeRequest { range: range.clone(), revision: model.compacted - 1, ..RangeRequest::default() };
            let compacted = matches!(store.range(&stale), Err(StoreError::Compacted { .. }));
            prop_assert!(compacted, "reads below the compacted revision fail");
        }
    }
    let from = model.compacted.max(1);
    let replayed = store.events_since(&KeyRange { key: vec![0], end: vec![0] }, from, usize::MAX).expect("replay");
    let mut expected = Vec::new();
    for revision in from..=model.revision() {
        let at = usize::try_from(revision).expect("non-negative");
        let (before, after) = (&model.states[at - 1], &model.states[at]);
        let mut events = Vec::new();
        for key in before.keys().chain(after.keys()).collect::<std::collections::BTreeSet<_>>() {
            let prev_kv = before.get(key).cloned().filter(|_| revision > model.compacted);
            match after.get(key) {
                Some(kv) if before.get(key) != Some(kv) => {
                    events.push(Event { kind: EventKind::Put, kv: kv.clone(), prev_kv })
                }
                None if before.contains_key(key) => events.push(Event {
                    kind: EventKind::Delete,
                    kv: KeyValue { key: key.clone(), mod_revision: revision, ..KeyValue::default() },
                    prev_kv,
                }),
                _ => {}
            }
        }
        expected.push(WatchBatch { revision, events });
    }
    let mut replayed = replayed;
    replayed.iter_mut().for_each(|batch| batch.events.sort_by(|a, b| a.kv.key.cmp(&b.kv.key)));
    prop_assert_eq!(replayed, expected, "watch replay from {}", from);
    for &id in &model.leases {
        let keys: Vec<Vec<u8>> = model.now().values().filter(|kv| kv.lease == id).map(|kv| kv.key.clone()).collect();
        prop_assert_eq!(store.lease(id).map(|l| l.keys), Some(keys));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn store_agrees_with_the_model(steps in proptest::collection::vec(step(), 1..40)) {
        run(steps)?;
    }
}

#[test]
fn txn_reads_see_earlier_writes_and_refusals_change_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = open_database(dir.path()).expect("open");
    let store = Mvcc::open(&db).expect("open store");
    let put = |key: &str| Operation::Put(PutRequest { key: key.into(), value: b"v".to_vec(), ..PutRequest::default() });
    let applied = apply(
        &store,
        Command::Txn(TxnRequest {
            compare: vec![],
            success: vec![
                put("x"),
                Operation::Range(RangeRequest { range: KeyRange::single("x"), ..RangeRequest::default() }),
            ],
            failure: vec![],
        }),
    );
    let Ok(Outcome::Txn(result)) = applied.outcome else { panic!("txn refused") };
    let OperationResult::Range(read) = &result.responses[1] else { panic!("not a range") };
    assert_eq!(read.kvs.len(), 1, "the read sees the put before it");
    assert_eq!(applied.revision, 1);

    let refused =
        apply(&store, Command::Txn(TxnRequest { compare: vec![], success: vec![put("y"), put("y")], failure: vec![] }));
    assert_eq!(refused.outcome, Err(StoreError::DuplicateKey));
    assert_eq!(refused.revision, 1, "a refused txn does not advance the revision");
    let (_, y) = store.range(&RangeRequest { range: KeyRange::single("y"), ..RangeRequest::default() }).expect("range");
    assert!(y.kvs.is_empty(), "a refused txn writes nothing");
}
