//! Goal: a watcher never loses or reorders an event, whether it starts in
//! the past, follows live, or falls further behind than the live channel
//! holds. Method: apply writes through the real store and read them back
//! through `Watcher`.

use engenho_store::*;

fn put(store: &Mvcc, key: &str, value: &str) {
    let mut applier = store.applier();
    let command = Command::Put(PutRequest { key: key.into(), value: value.into(), ..PutRequest::default() });
    applier.apply(&command).expect("apply").outcome.expect("put accepted");
    applier.commit(None, None).expect("commit");
}

async fn collect(watcher: &mut Watcher, count: usize) -> Vec<Event> {
    let mut events = Vec::new();
    while events.len() < count {
        let batches = tokio::time::timeout(std::time::Duration::from_secs(10), watcher.next())
            .await
            .expect("events arrive")
            .expect("no error");
        events.extend(batches.into_iter().flat_map(|b| b.events));
    }
    events
}

#[tokio::test]
async fn a_lagging_watcher_catches_up_from_history_in_order() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let storage = open_database(dir.path()).expect("open");
    let store = Mvcc::open(&storage).expect("open store");
    put(&store, "before", "x");
    let mut watcher = Watcher::new(store.clone(), KeyRange::prefix("w/"), 0);
    let total = WATCH_CHANNEL_REVISIONS + 500;
    for i in 0..total {
        put(&store, &format!("w/{}", i % 7), &i.to_string());
        put(&store, "other", &i.to_string());
    }
    let events = collect(&mut watcher, total).await;
    assert_eq!(events.len(), total, "every event, none twice");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.kv.value, i.to_string().into_bytes(), "event {i} in order");
        assert_eq!(event.kv.key, format!("w/{}", i % 7).into_bytes());
    }
    put(&store, "w/live", "after");
    let live = collect(&mut watcher, 1).await;
    assert_eq!(live[0].kv.key, b"w/live".to_vec());
}

#[tokio::test]
async fn a_watcher_from_the_past_replays_then_follows() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let storage = open_database(dir.path()).expect("open");
    let store = Mvcc::open(&storage).expect("open store");
    for i in 0..10 {
        put(&store, "k", &i.to_string());
    }
    let mut watcher = Watcher::new(store.clone(), KeyRange::single("k"), 4);
    let replayed = collect(&mut watcher, 7).await;
    let values: Vec<_> = replayed.iter().map(|e| String::from_utf8(e.kv.value.clone()).expect("utf-8")).collect();
    assert_eq!(values, ["3", "4", "5", "6", "7", "8", "9"]);
    assert_eq!(replayed[0].prev_kv.as_ref().map(|p| p.value.clone()), Some(b"2".to_vec()));
    put(&store, "k", "10");
    assert_eq!(collect(&mut watcher, 1).await[0].kv.value, b"10".to_vec());

    let mut applier = store.applier();
    applier.apply(&Command::Compact { revision: 8 }).expect("apply").outcome.expect("compacted");
    applier.commit(None, None).expect("commit");
    let mut stale = Watcher::new(store.clone(), KeyRange::single("k"), 2);
    let refused = stale.next().await;
    assert!(matches!(refused, Err(StoreError::Compacted { compacted: 8, .. })), "{refused:?}");
}

#[tokio::test]
async fn an_idle_watcher_reports_progress_past_writes_to_other_keys() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let storage = open_database(dir.path()).expect("open");
    let store = Mvcc::open(&storage).expect("open store");
    let mut watcher = Watcher::new(store.clone(), KeyRange::prefix("quiet/"), 0);
    let progress = watcher.progress();
    for i in 0..(WATCH_CHANNEL_REVISIONS + 10) {
        put(&store, "busy", &i.to_string());
    }
    let current = store.revision();
    assert_eq!(watcher.next_revision(), current + 1, "nothing of its range is pending");
    assert_eq!(progress.next_revision(), current + 1, "the same from another task");

    put(&store, "quiet/one", "1");
    assert_eq!(progress.next_revision(), current + 1, "the event of its range waits to be taken");
    let taken = collect(&mut watcher, 1).await;
    assert_eq!(taken[0].kv.key, b"quiet/one".to_vec());
    assert_eq!(progress.next_revision(), store.revision() + 1);

    drop(watcher);
    put(&store, "busy", "after");
    assert_eq!(progress.next_revision(), store.revision() + 1, "a watcher that is gone holds nothing back");
}

/// A step of the routing property: a write to one of a few keys, or a new
/// watcher on one of a few ranges from a revision at or before now.
#[derive(Debug, Clone)]
enum Step {
    Put { key: usize },
    Watch { range: usize, back: i64 },
}

const KEYS: [&str; 4] = ["a/1", "a/2", "b/1", "c"];

fn range_of(index: usize) -> KeyRange {
    match index {
        0 => KeyRange::prefix("a/"),
        1 => KeyRange::single("b/1"),
        2 => KeyRange::prefix("b/"),
        _ => KeyRange::prefix(""),
    }
}

fn routing_step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0..KEYS.len()).prop_map(|key| Step::Put { key }),
        1 => (0usize..4, 0i64..3).prop_map(|(range, back)| Step::Watch { range, back }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]
    /// Every watcher gets exactly the writes of its range from its start
    /// revision on, in order, however writes and new watchers interleave.
    #[test]
    fn watchers_get_exactly_their_ranges_writes(steps in proptest::collection::vec(routing_step(), 1..60)) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let storage = open_database(dir.path()).expect("open");
        let store = Mvcc::open(&storage).expect("open store");
        let mut written: Vec<(i64, &str)> = Vec::new();
        let mut watchers: Vec<(KeyRange, i64, Watcher)> = Vec::new();
        for step in steps {
            match step {
                Step::Put { key } => {
                    put(&store, KEYS[key], "v");
                    written.push((store.revision(), KEYS[key]));
                }
                Step::Watch { range, back } => {
                    let start = (store.revision() + 1 - back).max(1);
                    let range = range_of(range);
                    watchers.push((range.clone(), start, Watcher::new(store.clone(), range, start)));
                }
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        for (range, start, mut watcher) in watchers {
            let expected: Vec<(i64, Vec<u8>)> = written
                .iter()
                .filter(|(revision, key)| *revision >= start && range.contains(key.as_bytes()))
                .map(|(revision, key)| (*revision, key.as_bytes().to_vec()))
                .collect();
            let events = runtime.block_on(collect(&mut watcher, expected.len()));
            let got: Vec<(i64, Vec<u8>)> = events.iter().map(|e| (e.kv.mod_revision, e.kv.key.clone())).collect();
            proptest::prop_assert_eq!(got, expected);
            let quiet = std::time::Duration::from_millis(20);
            let extra = runtime.block_on(async { tokio::time::timeout(quiet, watcher.next()).await });
            proptest::prop_assert!(extra.is_err(), "nothing more arrives: {:?}", extra);
            proptest::prop_assert_eq!(watcher.next_revision(), store.revision() + 1, "caught up");
        }
    }
}
