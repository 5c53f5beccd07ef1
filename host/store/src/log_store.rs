//! The raft log and vote, persisted in fjall.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};

use crate::codec::{decode_bounded, encode};
use crate::corruption::{database_error, undecodable};
use crate::recent::RecentEntries;
use crate::{Storage, StoreError, TypeConfig, WriteFailures};

type Entry = openraft::Entry<TypeConfig>;
type StorageResult<T> = Result<T, StorageError<u64>>;

const VOTE_KEY: &[u8] = b"vote";
const LAST_PURGED_KEY: &[u8] = b"last_purged";

/// Appends waiting for the flusher before appenders are held back.
pub const FLUSH_QUEUE_APPENDS_MAX: usize = 4096;

/// The raft log storage: entries by index, plus vote and last-purged
/// markers.
///
/// A leader's own appends are written to fjall's journal at once and
/// acknowledged to raft only after a flusher thread has synced the journal:
/// one sync covers every append that arrived while the previous one ran
/// (group commit), and the leader replicates meanwhile. Entries replicated
/// from another node's leadership are synced before `append` returns: a
/// follower's raft waits for that sync before it answers, and receives one
/// batch at a time, so a hand-off to the flusher would only add two thread
/// wake-ups to every write's round trip. Votes are synced before they are
/// acknowledged. The log shares fjall's journal with the state machine, so
/// a crash recovers both as one consistent prefix. The newest entries are
/// also kept decoded in memory ([`RecentEntries`]), so the leader sends and
/// applies what it just appended without reading it back.
///
/// The commit index is not saved: in the shared journal an entry's
/// application closely follows its commit, so a saved index would let a
/// restart apply only the entries whose application was in flight at the
/// crash (the leader's next commit brings them too), and saving it would
/// cost every write a journal write on every node.
#[derive(Clone)]
pub struct LogStore {
    /// This node's raft id: entries proposed by another node are synced inline.
    node: u64,
    db: Database,
    entries: Keyspace,
    marks: Keyspace,
    flusher: tokio::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
    appended: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// Shared by every clone, the log readers included.
    recent: std::sync::Arc<std::sync::Mutex<RecentEntries<Entry>>>,
    failures: WriteFailures,
}

impl LogStore {
    /// Opens (or creates) the log keyspaces in `db` for the node with raft
    /// id `node`.
    ///
    /// # Errors
    /// Any fjall error.
    pub fn open(storage: &Storage, node: u64) -> crate::Result<Self> {
        let db = &storage.db;
        let entries = db.keyspace("raft_log", KeyspaceCreateOptions::default)?;
        let marks = db.keyspace("raft_marks", KeyspaceCreateOptions::default)?;
        let (flusher, pending) = tokio::sync::mpsc::channel(FLUSH_QUEUE_APPENDS_MAX);
        let synced = db.clone();
        let failures = storage.failures.clone();
        let recorded = failures.clone();
        std::thread::Builder::new()
            .name("raft-log-flusher".into())
            .spawn(move || flush_appends(&synced, pending, &recorded))
            .map_err(|e| crate::StoreError::Storage(format!("starting the log flusher: {e}")))?;
        let appended = std::sync::Arc::new(tokio::sync::watch::Sender::new(0));
        let recent = std::sync::Arc::default();
        Ok(Self { node, db: db.clone(), entries, marks, flusher, appended, recent, failures })
    }

    /// Follows the index of the newest entry written to the log (not yet
    /// necessarily synced): a proposer learns from it that raft has taken
    /// its entry in.
    pub fn appended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, RecentEntries<Entry>> {
        self.recent.lock().expect("recent entries lock")
    }

    fn failed(&self, error: &fjall::Error) -> String {
        self.failures.describe(error)
    }

    fn read_mark<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> StorageResult<Option<T>> {
        let bytes = self.marks.get(key).map_err(|e| self.read_failed(ErrorSubject::Store, &e))?;
        bytes.map(|bytes| self.decode_stored(ErrorSubject::Store, "a raft mark", &bytes)).transpose()
    }

    /// The error for a failed read: corruption names the database.
    fn read_failed(&self, subject: ErrorSubject<u64>, error: &fjall::Error) -> StorageError<u64> {
        io_error(subject, ErrorVerb::Read, database_error(&self.failures.path, error))
    }

    /// Decodes a stored record, naming the database when it is corrupt.
    fn decode_stored<T: serde::de::DeserializeOwned>(
        &self,
        subject: ErrorSubject<u64>,
        what: &str,
        bytes: &[u8],
    ) -> StorageResult<T> {
        decode_bounded(bytes)
            .map_err(|e| io_error(subject, ErrorVerb::Read, undecodable(&self.failures.path, what, &e)))
    }

    fn write_mark<T: serde::Serialize>(&self, subject: ErrorSubject<u64>, key: &[u8], value: &T) -> StorageResult<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.insert(&self.marks, key, encode(value));
        batch.commit().map_err(|e| io_error(subject, ErrorVerb::Write, self.failed(&e)))
    }

    fn last_entry_id(&self) -> StorageResult<Option<LogId<u64>>> {
        let Some(guard) = self.entries.last_key_value() else {
            return Ok(None);
        };
        let (_, value) = guard.into_inner().map_err(|e| self.read_failed(ErrorSubject::Logs, &e))?;
        let entry: Entry = self.decode_stored(ErrorSubject::Logs, "the last raft log entry", &value)?;
        Ok(Some(entry.log_id))
    }

    /// Deletes every entry whose index falls in `range` in one synced batch.
    fn remove_range(&self, range: impl RangeBounds<[u8; 8]>, subject: ErrorSubject<u64>) -> StorageResult<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        for guard in self.entries.range(range) {
            let key = guard.key().map_err(|e| io_error(subject.clone(), ErrorVerb::Read, e))?;
            batch.remove(&self.entries, key);
        }
        batch.commit().map_err(|e| io_error(subject, ErrorVerb::Delete, self.failed(&e)))
    }
}

/// Syncs the journal for every batch of appends that queued up meanwhile,
/// then acknowledges them in order. Runs until every [`LogStore`] is gone.
fn flush_appends(
    db: &Database,
    mut pending: tokio::sync::mpsc::Receiver<LogFlushed<TypeConfig>>,
    failures: &WriteFailures,
) {
    let mut waiting = Vec::new();
    while let Some(first) = pending.blocking_recv() {
        waiting.push(first);
        while let Ok(next) = pending.try_recv() {
            waiting.push(next);
        }
        tracing::trace!(appends = waiting.len(), "sync");
        let synced = db.persist(PersistMode::SyncData).map_err(|e| failures.describe(&e));
        for callback in waiting.drain(..) {
            callback.log_io_completed(synced.clone().map_err(io::Error::other));
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn io_error(subject: ErrorSubject<u64>, verb: ErrorVerb, error: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::new(subject, verb, AnyError::error(error.to_string())).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry>> {
        let start = match range.start_bound() {
            std::ops::Bound::Included(&i) => i,
            std::ops::Bound::Excluded(&i) => i + 1,
            std::ops::Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            std::ops::Bound::Included(&i) => i.checked_add(1),
            std::ops::Bound::Excluded(&i) => Some(i),
            std::ops::Bound::Unbounded => None,
        };
        if let Some(kept) = end.and_then(|end| self.recent().get(start, end)) {
            return Ok(kept);
        }
        let mut out = Vec::new();
        for guard in self.entries.range(index_key(start)..) {
            let (key, value) = guard.into_inner().map_err(|e| self.read_failed(ErrorSubject::Logs, &e))?;
            let index = u64::from_be_bytes(
                key.as_ref()
                    .try_into()
                    .map_err(|_| io_error(ErrorSubject::Logs, ErrorVerb::Read, "log key is not 8 bytes"))?,
            );
            if !range.contains(&index) {
                break;
            }
            let entry: Entry = self.decode_stored(ErrorSubject::LogIndex(index), "a raft log entry", &value)?;
            if entry.log_id.index != index {
                let file = self.failures.path.display().to_string();
                let detail = format!("the raft log entry at {index} holds index {}", entry.log_id.index);
                return Err(io_error(
                    ErrorSubject::LogIndex(index),
                    ErrorVerb::Read,
                    StoreError::Corrupt { file, detail },
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<u64>> = self.read_mark(LAST_PURGED_KEY)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StorageResult<()> {
        self.write_mark(ErrorSubject::Vote, VOTE_KEY, vote)
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<u64>>> {
        self.read_mark(VOTE_KEY)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = self.db.batch();
        let mut appending = Vec::new();
        let mut replicated = false;
        for entry in entries {
            let encoded = encode(&entry);
            let size = encoded.len();
            batch.insert(&self.entries, index_key(entry.log_id.index), encoded);
            replicated |= entry.log_id.leader_id.node_id != self.node;
            appending.push((size, entry));
        }
        let last = appending.last().map(|(_, entry)| entry.log_id.index);
        tracing::trace!(entries = batch.len(), replicated, "append");
        let written =
            batch.commit().and_then(|()| if replicated { self.db.persist(PersistMode::SyncData) } else { Ok(()) });
        if let Err(e) = written {
            let failure = self.failed(&e);
            callback.log_io_completed(Err(io::Error::other(failure.clone())));
            return Err(io_error(ErrorSubject::Logs, ErrorVerb::Write, failure));
        }
        {
            let mut recent = self.recent();
            for (size, entry) in appending {
                recent.push(entry.log_id.index, size, entry);
            }
        }
        if let Some(last) = last {
            self.appended.send_replace(last);
        }
        if replicated {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        self.flusher
            .send(callback)
            .await
            .map_err(|_| io_error(ErrorSubject::Logs, ErrorVerb::Write, "the log flusher stopped"))
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        self.recent().truncate_from(log_id.index);
        self.remove_range(index_key(log_id.index).., ErrorSubject::Logs)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        // Mark first: a crash between the two writes leaves extra entries,
        // never a hole below the first entry.
        self.write_mark(ErrorSubject::Logs, LAST_PURGED_KEY, &log_id)?;
        self.recent().purge_to(log_id.index);
        self.remove_range(..=index_key(log_id.index), ErrorSubject::Logs)?;
        tracing::info!(index = log_id.index, "purged the raft log");
        Ok(())
    }
}
