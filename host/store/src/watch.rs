//! Fan-out of committed changes to watchers.
//!
//! Every watcher registers a mailbox for its key range with the
//! [`WatchHub`]. Each committed revision is published once: the hub puts it
//! in the mailboxes whose range it touches and wakes only those watchers,
//! so a write wakes nobody who does not watch its key. A [`Watcher`] first
//! replays history from the store, then follows its mailbox; if it falls more
//! than a mailbox holds behind, it goes back to history instead of losing
//! events.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::Notify;

use crate::error::Result;
use crate::model::{Event, KeyRange};
use crate::mvcc::Mvcc;

/// Revisions a watcher's mailbox holds before a slow watcher must replay
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

/// Publishes committed revisions to the watchers of their keys.
#[derive(Debug)]
pub struct WatchHub {
    mailboxes: Mutex<Vec<Weak<Mailbox>>>,
    revision: AtomicI64,
}

impl WatchHub {
    /// A hub whose current revision is `revision`.
    pub fn new(revision: i64) -> Self {
        Self { mailboxes: Mutex::new(Vec::new()), revision: AtomicI64::new(revision) }
    }

    fn mailboxes(&self) -> MutexGuard<'_, Vec<Weak<Mailbox>>> {
        self.mailboxes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes committed batches, in revision order.
    pub(crate) fn publish(&self, batches: Vec<WatchBatch>) {
        let Some(newest) = batches.last().map(|batch| batch.revision) else { return };
        assert!(batches[0].revision > self.current_revision(), "revisions are published in order");
        let batches: Vec<Arc<WatchBatch>> = batches.into_iter().map(Arc::new).collect();
        let mut mailboxes = self.mailboxes();
        mailboxes.retain(|mailbox| match mailbox.upgrade() {
            Some(mailbox) => {
                mailbox.deliver(&batches);
                true
            }
            None => false,
        });
        // Stored while the mailboxes are held: a watcher registering now
        // sees either the batches or the revision that covers them.
        self.revision.store(newest, Ordering::Release);
    }

    /// Announces a revision reached without publishing events (after a
    /// snapshot install): every watcher replays what it missed from history.
    pub(crate) fn reset(&self, revision: i64) {
        let mailboxes = self.mailboxes();
        for mailbox in mailboxes.iter().filter_map(Weak::upgrade) {
            mailbox.overflow();
        }
        self.revision.store(revision, Ordering::Release);
    }

    /// The newest revision published to watchers.
    pub fn current_revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Registers a mailbox for `range` from `start_revision` on (0 or
    /// less: from the next revision); history covers what came before.
    fn register(&self, range: KeyRange, start_revision: i64) -> Arc<Mailbox> {
        let mut mailboxes = self.mailboxes();
        // Watchers gone since the last publish leave with the newcomer, so
        // the list stays as long as the live watchers even with no writes.
        mailboxes.retain(|mailbox| mailbox.strong_count() > 0);
        let current = self.current_revision();
        let next_revision = if start_revision > 0 { start_revision } else { current + 1 };
        let mailbox = Arc::new(Mailbox {
            range,
            pending: Mutex::new(Pending::default()),
            ready: Notify::new(),
            next_revision: AtomicI64::new(next_revision),
            replaying: AtomicBool::new(next_revision <= current),
        });
        mailboxes.push(Arc::downgrade(&mailbox));
        mailbox
    }
}

/// Batches published for one watcher and not yet taken.
#[derive(Debug, Default)]
struct Pending {
    batches: VecDeque<Arc<WatchBatch>>,
    /// More arrived than the mailbox holds (or history changed under the
    /// watcher): it must replay from history.
    overflowed: bool,
}

/// One watcher's share of the hub.
#[derive(Debug)]
struct Mailbox {
    range: KeyRange,
    pending: Mutex<Pending>,
    ready: Notify,
    /// The watcher's next revision to deliver, for [`WatchProgress`].
    next_revision: AtomicI64,
    /// Whether the watcher is reading history rather than its mailbox.
    replaying: AtomicBool,
}

impl Mailbox {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps the batches that touch this mailbox's range; wakes the watcher
    /// if there was one.
    fn deliver(&self, batches: &[Arc<WatchBatch>]) {
        let mut touched = false;
        let mut pending = self.pending();
        for batch in batches.iter().filter(|batch| batch.events.iter().any(|e| self.range.contains(&e.kv.key))) {
            touched = true;
            if pending.overflowed {
                break;
            }
            if pending.batches.len() >= WATCH_CHANNEL_REVISIONS {
                pending.batches.clear();
                pending.overflowed = true;
                break;
            }
            pending.batches.push_back(batch.clone());
        }
        drop(pending);
        if touched {
            self.ready.notify_one();
        }
    }

    fn overflow(&self) {
        let mut pending = self.pending();
        pending.batches.clear();
        pending.overflowed = true;
        drop(pending);
        self.ready.notify_one();
    }

    /// The revision of the next event the watcher may deliver: its first
    /// pending batch, or above every published revision once it has taken
    /// them all.
    fn next_revision(&self, hub: &WatchHub) -> i64 {
        let current = hub.current_revision();
        let taken = self.next_revision.load(Ordering::Acquire);
        if self.replaying.load(Ordering::Acquire) {
            return taken;
        }
        let pending = self.pending();
        if pending.overflowed {
            return taken;
        }
        match pending.batches.front() {
            Some(first) => taken.max(first.revision),
            None => taken.max(current + 1),
        }
    }
}

/// What a mailbox hands its watcher.
enum Taken {
    Batch(Arc<WatchBatch>),
    Overflowed,
    Nothing,
}

/// A stream of events on a key range from a start revision on.
///
/// Its position (the next revision to deliver, and whether it reads
/// history) lives in its mailbox, where [`WatchProgress`] reads it too; the
/// watcher is the only one that writes it.
pub struct Watcher {
    store: Arc<Mvcc>,
    mailbox: Arc<Mailbox>,
}

impl Watcher {
    /// Watches `range` from `start_revision` (0 or less: from the next
    /// revision).
    pub fn new(store: Arc<Mvcc>, range: KeyRange, start_revision: i64) -> Self {
        let mailbox = store.hub().register(range, start_revision);
        Self { store, mailbox }
    }

    /// The revision of the next event this watcher may deliver.
    pub fn next_revision(&self) -> i64 {
        self.mailbox.next_revision(self.store.hub())
    }

    /// A handle that tells this watcher's progress from another task.
    pub fn progress(&self) -> WatchProgress {
        WatchProgress { store: self.store.clone(), mailbox: Arc::downgrade(&self.mailbox) }
    }

    /// The revision after the last one taken.
    fn taken(&self) -> i64 {
        self.mailbox.next_revision.load(Ordering::Acquire)
    }

    fn advance(&self, next_revision: i64) {
        self.mailbox.next_revision.store(next_revision, Ordering::Release);
    }

    fn replaying(&self) -> bool {
        self.mailbox.replaying.load(Ordering::Acquire)
    }

    fn set_replaying(&self, replaying: bool) {
        self.mailbox.replaying.store(replaying, Ordering::Release);
    }

    fn take(&self) -> Taken {
        let mut pending = self.mailbox.pending();
        if pending.overflowed {
            pending.overflowed = false;
            pending.batches.clear();
            return Taken::Overflowed;
        }
        pending.batches.pop_front().map_or(Taken::Nothing, Taken::Batch)
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
            if self.replaying() {
                let current = self.store.hub().current_revision();
                if self.taken() > current {
                    self.set_replaying(false);
                    continue;
                }
                let batches = self.store.events_since(&self.mailbox.range, self.taken(), WATCH_REPLAY_EVENTS_MAX)?;
                self.advance(match batches.last() {
                    Some(last) => last.revision + 1,
                    None => current + 1,
                });
                if !batches.is_empty() {
                    return Ok(batches);
                }
                continue;
            }
            match self.take() {
                Taken::Batch(batch) if batch.revision < self.taken() => continue,
                Taken::Batch(batch) => {
                    self.advance(batch.revision + 1);
                    let events: Vec<Event> =
                        batch.events.iter().filter(|e| self.mailbox.range.contains(&e.kv.key)).cloned().collect();
                    if !events.is_empty() {
                        return Ok(vec![WatchBatch { revision: batch.revision, events }]);
                    }
                }
                Taken::Overflowed => self.set_replaying(true),
                Taken::Nothing => self.mailbox.ready.notified().await,
            }
        }
    }
}

/// Tells how far a [`Watcher`] has come, from another task.
#[derive(Debug, Clone)]
pub struct WatchProgress {
    store: Arc<Mvcc>,
    mailbox: Weak<Mailbox>,
}

impl WatchProgress {
    /// The revision of the next event the watcher may deliver (above every
    /// published revision once the watcher is gone).
    pub fn next_revision(&self) -> i64 {
        let hub = self.store.hub();
        match self.mailbox.upgrade() {
            Some(mailbox) => mailbox.next_revision(hub),
            None => hub.current_revision() + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchers_that_come_and_go_without_writes_leave_nothing_behind() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let storage = crate::open_database(dir.path()).expect("open");
        let store = Mvcc::open(&storage).expect("open store");
        for _ in 0..10_000 {
            drop(Watcher::new(store.clone(), KeyRange::prefix("x/"), 0));
        }
        assert_eq!(store.hub().mailboxes().len(), 1, "only the newest registration is kept until the next one");
        let kept = Watcher::new(store.clone(), KeyRange::prefix("x/"), 0);
        assert_eq!(store.hub().mailboxes().len(), 1);
        drop(kept);
    }
}
