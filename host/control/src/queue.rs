//! A rate-limited work queue, as client-go's: a key waits at most once
//! however often it is added, is never handed to two workers at once (a key
//! added while it is worked on is handed out again once it is done), and a
//! failing key comes back after an exponentially growing delay.

use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::QueueMetrics;

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// The first retry delay of a failing key.
pub const BACKOFF_BASE: Duration = Duration::from_millis(5);

/// The longest retry delay of a failing key.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Where a key stands.
#[derive(Debug, Default)]
struct State<K> {
    /// Keys ready to hand out, in order.
    ready: VecDeque<K>,
    /// Keys in `ready`, or waiting for their worker to finish.
    queued: HashSet<K>,
    /// Keys a worker has now.
    working: HashSet<K>,
    /// Keys added later, by when.
    delayed: BTreeMap<(Instant, u64), K>,
    /// The earliest time each delayed key is due.
    due: HashMap<K, (Instant, u64)>,
    /// Failures in a row of each failing key.
    failures: HashMap<K, u32>,
    /// Numbers delayed entries apart.
    sequence: u64,
    shut_down: bool,
}

/// A work queue of keys `K`.
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    wake: Notify,
    capacity: usize,
    metrics: Arc<QueueMetrics>,
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// A queue of at most `capacity` distinct waiting keys, reporting to
    /// `metrics`.
    pub fn new(capacity: usize, metrics: Arc<QueueMetrics>) -> Self {
        Self {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                queued: HashSet::default(),
                working: HashSet::default(),
                delayed: BTreeMap::new(),
                due: HashMap::default(),
                failures: HashMap::default(),
                sequence: 0,
                shut_down: false,
            }),
            wake: Notify::new(),
            capacity,
            metrics,
        }
    }

    fn state(&self) -> MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `key` now. Whether it was taken: a full queue refuses new
    /// keys (the periodic resync brings them back).
    pub fn add(&self, key: K) -> bool {
        let mut state = self.state();
        if state.shut_down {
            return false;
        }
        self.metrics.adds.inc();
        if state.queued.contains(&key) {
            return true;
        }
        if state.queued.len() >= self.capacity {
            self.metrics.dropped.inc();
            return false;
        }
        state.queued.insert(key.clone());
        if let Some(slot) = state.due.remove(&key) {
            state.delayed.remove(&slot);
        }
        if !state.working.contains(&key) {
            state.ready.push_back(key);
            self.metrics.depth.set(state.ready.len());
            drop(state);
            self.wake.notify_one();
        }
        true
    }

    /// Queues `key` once `delay` has passed (sooner if it is added or due
    /// earlier meanwhile).
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let mut state = self.state();
        if state.shut_down || state.queued.contains(&key) {
            return;
        }
        let when = Instant::now() + delay;
        if state.due.get(&key).is_some_and(|(due, _)| *due <= when) {
            return;
        }
        if let Some(slot) = state.due.remove(&key) {
            state.delayed.remove(&slot);
        }
        state.sequence += 1;
        let slot = (when, state.sequence);
        state.delayed.insert(slot, key.clone());
        state.due.insert(key, slot);
        drop(state);
        self.wake.notify_one();
    }

    /// Queues a key that failed, after its backoff: [`BACKOFF_BASE`]
    /// doubling with each failure in a row, at most [`BACKOFF_MAX`].
    pub fn add_rate_limited(&self, key: K) {
        let failures = {
            let mut state = self.state();
            let failures = state.failures.entry(key.clone()).or_insert(0);
            *failures = failures.saturating_add(1);
            *failures
        };
        self.metrics.retries.inc();
        self.add_after(key, backoff(failures));
    }

    /// Forgets `key`'s failures: its next failure waits [`BACKOFF_BASE`].
    pub fn forget(&self, key: &K) {
        self.state().failures.remove(key);
    }

    /// Failures in a row of `key`.
    pub fn failures(&self, key: &K) -> u32 {
        self.state().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to work on; `None` once the queue is shut down. The
    /// caller calls [`WorkQueue::done`] when it has finished with it.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.wake.notified();
            let wait_until = {
                let mut state = self.state();
                let now = Instant::now();
                while let Some(entry) = state.delayed.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let key = entry.remove();
                    state.due.remove(&key);
                    if state.queued.insert(key.clone()) && !state.working.contains(&key) {
                        state.ready.push_back(key);
                    }
                }
                if let Some(key) = state.ready.pop_front() {
                    state.working.insert(key.clone());
                    state.queued.remove(&key);
                    self.metrics.depth.set(state.ready.len());
                    self.metrics.working.set(state.working.len());
                    return Some(key);
                }
                if state.shut_down {
                    return None;
                }
                state.delayed.first_key_value().map(|((when, _), _)| *when)
            };
            match wait_until {
                Some(when) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(when) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `key` finished; if it was added meanwhile, it is ready again.
    pub fn done(&self, key: &K) {
        let mut state = self.state();
        state.working.remove(key);
        self.metrics.working.set(state.working.len());
        if state.queued.contains(key) {
            state.ready.push_back(key.clone());
            self.metrics.depth.set(state.ready.len());
            drop(state);
            self.wake.notify_one();
        }
    }

    /// Keys waiting to be handed out now.
    pub fn len(&self) -> usize {
        self.state().ready.len()
    }

    /// Whether no key waits to be handed out now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops handing out keys: [`WorkQueue::next`] answers `None` from now
    /// on, and everything waiting is dropped.
    pub fn shut_down(&self) {
        let mut state = self.state();
        state.shut_down = true;
        state.ready.clear();
        state.queued.clear();
        state.delayed.clear();
        state.due.clear();
        self.metrics.depth.set(0);
        drop(state);
        self.wake.notify_waiters();
    }
}

/// The delay before the retry that follows `failures` failures in a row.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(32);
    BACKOFF_BASE.saturating_mul(1u32 << exponent.min(31)).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new(100, Arc::default())
    }

    #[tokio::test]
    async fn a_key_added_twice_waits_once() {
        let queue = queue();
        assert!(queue.add("a"));
        assert!(queue.add("b"));
        assert!(queue.add("a"));
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.next().await, Some("a"));
        assert_eq!(queue.next().await, Some("b"));
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn a_key_is_never_worked_on_twice_at_once() {
        let queue = queue();
        queue.add("a");
        assert_eq!(queue.next().await, Some("a"));
        queue.add("a");
        assert!(queue.is_empty(), "a key being worked on is not handed out again");
        queue.done(&"a");
        assert_eq!(queue.next().await, Some("a"), "a key added while worked on comes back once done");
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_come_when_due_and_sooner_adds_win() {
        let queue = queue();
        queue.add_after("late", Duration::from_secs(10));
        queue.add_after("soon", Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(queue.next().await, Some("soon"));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        queue.add("late");
        assert_eq!(queue.next().await, Some("late"));
        assert!(start.elapsed() < Duration::from_secs(2), "adding a delayed key now makes it ready now");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_new_keys_and_shut_down_ends_waiting() {
        let queue = WorkQueue::new(1, Arc::default());
        assert!(queue.add(1));
        assert!(!queue.add(2));
        assert!(queue.add(1), "a waiting key is not a new one");
        queue.shut_down();
        assert_eq!(queue.next().await, None);
        assert!(!queue.add(3));
    }

    proptest! {
        #[test]
        fn backoff_doubles_up_to_its_cap(failures in 1u32..200) {
            let delay = backoff(failures);
            prop_assert!(delay >= BACKOFF_BASE && delay <= BACKOFF_MAX);
            prop_assert!(backoff(failures + 1) >= delay);
            if delay < BACKOFF_MAX / 2 {
                prop_assert_eq!(backoff(failures + 1), delay * 2);
            }
        }
    }
}
