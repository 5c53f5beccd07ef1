//! Fan-out of committed changes to watchers.
//!
//! Every committed revision is published once as a [`WatchBatch`] on a
//! bounded broadcast channel. A [`Watcher`] first replays history from the
//! store, then follows the channel; if it falls more than the channel's
//! capacity behind, it goes back to history instead of losing events.

use std::sync::Arc;

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::broadcast;

use crate::error::Result;
use crate::model::{Event, KeyRange};
use crate::mvcc::Mvcc;

/// Revisions buffered for live watchers before a slow one must replay
/// from history.
pub const WATCH_CHANNEL_REVISIONS: usize = 4096;

/// Events replayed from history per step of a catching-up watcher.
pub const WATCH_REPLAY_EVENTS_MAX: usize = 1000;

/// All events of one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchBatch {
    /// The revision.
    pub revision: i64,
    /// Its events, in order.
    pub events: Vec<Event>,
}

/// Publishes committed revisions to watchers.
#[derive(Debug)]
pub struct WatchHub {
    batches: broadcast::Sender<Arc<WatchBatch>>,
    revision: AtomicI64,
}

impl WatchHub {
    /// A hub whose current revision is `revision`.
    pub fn new(revision: i64) -> Self {
        let (batches, _) = broadcast::channel(WATCH_CHANNEL_REVISIONS);
        Self { batches, revision: AtomicI64::new(revision) }
    }

    /// Publishes committed batches, in revision order.
    pub(crate) fn publish(&self, batches: Vec<WatchBatch>) {
        for batch in batches {
            let revision = batch.revision;
            assert!(revision > self.current_revision(), "revisions are published in order");
            // No receivers is fine: nobody is watching.
            let _ = self.batches.send(Arc::new(batch));
            self.revision.store(revision, Ordering::Release);
        }
    }

    /// Announces a revision reached without publishing events (after a
    /// snapshot install).
    pub(crate) fn reset(&self, revision: i64) {
        self.revision.store(revision, Ordering::Release);
    }

    /// The newest revision published to watchers.
    pub fn current_revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<WatchBatch>> {
        self.batches.subscribe()
    }
}

/// A stream of events on a key range from a start revision on.
pub struct Watcher {
    store: Arc<Mvcc>,
    range: KeyRange,
    next_revision: i64,
    live: broadcast::Receiver<Arc<WatchBatch>>,
    replaying: bool,
}

impl Watcher {
    /// Watches `range` from `start_revision` (0 or less: from the next
    /// revision).
    pub fn new(store: Arc<Mvcc>, range: KeyRange, start_revision: i64) -> Self {
        let live = store.hub().subscribe();
        let current = store.hub().current_revision();
        let next_revision = if start_revision > 0 { start_revision } else { current + 1 };
        Self { store, range, next_revision, live, replaying: true }
    }

    /// The revision of the next event this watcher may deliver.
    pub fn next_revision(&self) -> i64 {
        self.next_revision
    }

    /// The next events of the range, grouped by revision and in order.
    ///
    /// Waits until at least one event is available.
    ///
    /// # Errors
    /// [`crate::StoreError::Compacted`] when the revisions still to deliver were
    /// compacted away; storage errors when history cannot be read.
    pub async fn next(&mut self) -> Result<Vec<WatchBatch>> {
        loop {
            if self.replaying {
                let current = self.store.hub().current_revision();
                if self.next_revision > current {
                    self.replaying = false;
                    continue;
                }
                let batches = self.store.events_since(&self.range, self.next_revision, WATCH_REPLAY_EVENTS_MAX)?;
                self.next_revision = match batches.last() {
                    Some(last) => last.revision + 1,
                    None => current + 1,
                };
                if !batches.is_empty() {
                    return Ok(batches);
                }
                continue;
            }
            match self.live.recv().await {
                Ok(batch) if batch.revision < self.next_revision => continue,
                Ok(batch) => {
                    if batch.revision > self.next_revision {
                        // A revision was skipped (a snapshot was installed):
                        // fill the gap from history.
                        self.replaying = true;
                        continue;
                    }
                    self.next_revision = batch.revision + 1;
                    let events: Vec<Event> =
                        batch.events.iter().filter(|e| self.range.contains(&e.kv.key)).cloned().collect();
                    if !events.is_empty() {
                        return Ok(vec![WatchBatch { revision: batch.revision, events }]);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.replaying = true,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}
