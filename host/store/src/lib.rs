//! The replicated datastore of an engenho cluster.
//!
//! An etcd-compatible MVCC key-value store ([`Mvcc`]) kept on fjall, used as
//! the state machine of one openraft group. The raft log and vote live in the
//! same fjall database ([`LogStore`]), so that one journal orders every write
//! and a crash always recovers a consistent prefix. Changes fan out to
//! watchers through the [`WatchHub`].

#![expect(clippy::result_large_err, reason = "openraft's storage traits fix StorageError as the error type")]

mod codec;
mod corruption;
mod data_dir;
mod error;
mod hintless;
mod log_store;
mod model;
mod mvcc;
mod nesting;
mod range_set;
mod recent;
mod state_machine;
mod validate;
mod watch;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

pub use codec::{DecodeError, decode_bounded};
pub use data_dir::{DATA_DIR_ENTRIES_MAX, DataDirError, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, secure_data_dir};
pub use error::{CORRUPT_REMEDY, Result, StoreError};
pub use log_store::LogStore;
pub use model::*;
pub use mvcc::{Mvcc, Status};
pub use nesting::DECODE_NESTING_MAX;
pub use state_machine::StateMachineStore;
pub use validate::{TXN_NESTING_MAX, validate_command};
pub use watch::{WATCH_CHANNEL_REVISIONS, WatchBatch, WatchHub, WatchProgress, Watcher};

/// A node of the cluster as raft knows it: its name and where to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Human-readable node name.
    pub name: String,
    /// Address of the peer (raft) endpoint, `host:port`.
    pub peer_addr: String,
    /// Address of the etcd v3 client endpoint, `host:port`.
    pub client_addr: String,
}

openraft::declare_raft_types!(
    /// The openraft type configuration of the engenho datastore.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The raft handle of the datastore.
pub type Raft = openraft::Raft<TypeConfig>;

/// The fjall database that holds the raft log and the state machine, with
/// the record of its first write failure.
#[derive(Clone)]
pub struct Storage {
    db: fjall::Database,
    failures: WriteFailures,
}

/// The first write failure of a database. fjall refuses every write after
/// a failed one ("poisoned"); the first failure is the cause to report.
#[derive(Clone)]
pub(crate) struct WriteFailures {
    first: std::sync::Arc<std::sync::OnceLock<String>>,
    path: std::path::PathBuf,
}

impl WriteFailures {
    /// Records `error` if it is the first failure, and describes it with
    /// the first failure as its cause. A database poisoned by its own
    /// background work (a failed memtable flush) reports the free space
    /// left, the usual culprit.
    pub(crate) fn describe(&self, error: &impl std::fmt::Display) -> String {
        let mut text = error.to_string();
        if text.ends_with("Poisoned") && self.first.get().is_none() {
            let free = rustix::fs::statvfs(&self.path).map(|s| s.f_bavail.saturating_mul(s.f_frsize));
            text = match free {
                Ok(bytes) => {
                    format!("{text}: a background write failed; {bytes} bytes free on {}", self.path.display())
                }
                Err(e) => format!("{text}: a background write failed; free space unknown: {e}"),
            };
        }
        let first = self.first.get_or_init(|| text.clone());
        if *first == text { text } else { format!("{text}, after an earlier write failure: {first}") }
    }
}

impl Storage {
    /// The first write failure of the database, if one happened: the cause
    /// to report when writes stop.
    pub fn first_failure(&self) -> Option<String> {
        self.failures.first.get().cloned()
    }
}

/// Opens the fjall database at `path` with the settings the store relies on.
/// The directory is created private if missing, and every file the
/// process creates from then on is private (umask 077), the database's
/// own among them.
///
/// # Errors
/// [`StoreError::Corrupt`] when a journal or table of the database fails
/// its checksum or does not decode; any other I/O error of fjall.
pub fn open_database(path: &std::path::Path) -> Result<Storage> {
    data_dir::create_private_dir(path).map_err(|e| StoreError::Storage(e.to_string()))?;
    let failures = WriteFailures { first: std::sync::Arc::default(), path: path.to_owned() };
    // One background worker for flushes and compactions: a node shares a
    // few cores with its peers and its clients, and more threads measured
    // slower (context switches) without speeding up the write path.
    let db =
        fjall::Database::builder(path).worker_threads(1).open().map_err(|e| corruption::database_error(path, &e))?;
    Ok(Storage { db, failures })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Every entry under `dir` with its permission bits.
    fn modes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u32)> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(current) = pending.pop() {
            for entry in std::fs::read_dir(&current).expect("list") {
                let path = entry.expect("entry").path();
                let metadata = std::fs::symlink_metadata(&path).expect("metadata");
                if metadata.is_dir() {
                    pending.push(path.clone());
                }
                found.push((path, metadata.permissions().mode() & 0o777));
            }
        }
        found
    }

    /// Opens the database at `path`, writes `value` under a key and closes it.
    fn write_and_close(path: &std::path::Path, value: &[u8]) {
        let storage = open_database(path).expect("open");
        let store = Mvcc::open(&storage).expect("open store");
        let mut applier = store.applier();
        let put = PutRequest { key: b"k".to_vec(), value: value.to_vec(), ..PutRequest::default() };
        applier.apply(&Command::Put(put)).expect("applied");
        applier.commit(None, None).expect("committed");
        storage.db.persist(fjall::PersistMode::SyncAll).expect("persisted");
    }

    #[test]
    fn a_flipped_byte_in_the_journal_fails_the_open_naming_the_database() {
        let root = tempfile::tempdir().expect("temporary directory");
        let path = root.path().join("db");
        let marker = b"flip-a-byte-of-this-value";
        write_and_close(&path, marker);
        let (journal, at) = modes(&path)
            .into_iter()
            .filter(|(file, _)| file.is_file())
            .find_map(|(file, _)| {
                let bytes = std::fs::read(&file).expect("read");
                bytes.windows(marker.len()).position(|w| w == marker).map(|at| (file, at))
            })
            .expect("the value is in a journal file");
        let mut bytes = std::fs::read(&journal).expect("read");
        bytes[at] ^= 0x01;
        std::fs::write(&journal, bytes).expect("write");
        let error = open_database(&path).and_then(|storage| Mvcc::open(&storage).map(|_| ())).expect_err("corrupt");
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&format!("{} is corrupt (journal checksum mismatch)", path.display())), "{message}");
        assert!(message.contains(CORRUPT_REMEDY), "{message}");
    }

    #[test]
    fn the_database_creates_its_files_private() {
        let _umask = data_dir::UMASK_TESTS.lock().expect("umask lock");
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        let root = tempfile::tempdir().expect("temporary directory");
        let path = root.path().join("db");
        {
            let storage = open_database(&path).expect("open");
            let store = Mvcc::open(&storage).expect("open store");
            let mut applier = store.applier();
            let put = PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..PutRequest::default() };
            applier.apply(&Command::Put(put)).expect("applied");
            applier.commit(None, None).expect("committed");
            storage.db.persist(fjall::PersistMode::SyncAll).expect("persisted");
        }
        let entries = modes(&path);
        assert!(entries.iter().any(|(_, mode)| *mode == PRIVATE_FILE_MODE), "the database wrote files");
        for (entry, mode) in entries {
            let expected = if entry.is_dir() { PRIVATE_DIR_MODE } else { PRIVATE_FILE_MODE };
            assert_eq!(mode, expected, "{}", entry.display());
        }
        let dir_mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(dir_mode, PRIVATE_DIR_MODE);
    }
}
