//! The openraft state machine over [`Mvcc`], with its snapshots.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::mvcc::{Membership, Mvcc};
use crate::{Applied, NodeInfo, Outcome, TypeConfig, decode_bounded};

type Entry = openraft::Entry<TypeConfig>;
type StorageResult<T> = Result<T, StorageError<u64>>;

/// The snapshot as kept on disk: raft metadata and the store image.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, NodeInfo>,
    data: Vec<u8>,
}

/// The raft state machine: applies committed commands to the MVCC store and
/// builds, stores and installs snapshots of it.
#[derive(Clone)]
pub struct StateMachineStore {
    store: Arc<Mvcc>,
    snapshot_path: PathBuf,
}

impl StateMachineStore {
    /// A state machine over `store` keeping its latest snapshot in `dir`.
    pub fn new(store: Arc<Mvcc>, dir: &Path) -> Self {
        Self { store, snapshot_path: dir.join("raft-snapshot.bin") }
    }

    /// The store this state machine applies to.
    pub fn store(&self) -> &Arc<Mvcc> {
        &self.store
    }

    fn save_snapshot(&self, snapshot: &StoredSnapshot) -> StorageResult<()> {
        let signature = Some(snapshot.meta.signature());
        let fail = |e: std::io::Error| snapshot_error(signature.clone(), ErrorVerb::Write, e);
        let temporary = self.snapshot_path.with_extension("tmp");
        let bytes = bincode::serialize(snapshot).map_err(|e| snapshot_error(None, ErrorVerb::Write, e))?;
        {
            use std::io::Write;
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(crate::PRIVATE_FILE_MODE)
                .open(&temporary)
                .map_err(fail)?;
            // A file left by an interrupted save keeps the mode it had.
            file.set_permissions(std::fs::Permissions::from_mode(crate::PRIVATE_FILE_MODE)).map_err(fail)?;
            file.write_all(&bytes).map_err(fail)?;
            file.sync_all().map_err(fail)?;
        }
        std::fs::rename(&temporary, &self.snapshot_path).map_err(fail)?;
        if let Some(dir) = self.snapshot_path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
        }
        Ok(())
    }

    fn load_snapshot(&self) -> StorageResult<Option<StoredSnapshot>> {
        let bytes = match std::fs::read(&self.snapshot_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(snapshot_error(None, ErrorVerb::Read, e)),
        };
        let snapshot = decode_bounded(&bytes).map_err(|e| snapshot_error(None, ErrorVerb::Read, e))?;
        Ok(Some(snapshot))
    }
}

fn snapshot_error(
    signature: Option<openraft::storage::SnapshotSignature<u64>>,
    verb: ErrorVerb,
    error: impl std::fmt::Display,
) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::Snapshot(signature), verb, AnyError::error(error.to_string())).into()
}

fn state_machine_error(verb: ErrorVerb, error: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::error(error.to_string())).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let store = self.store.clone();
        let (applied, membership, data) = tokio::task::spawn_blocking(move || store.export())
            .await
            .map_err(|e| state_machine_error(ErrorVerb::Read, e))?
            .map_err(|e| state_machine_error(ErrorVerb::Read, e))?;
        let snapshot_id = match applied {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id, log_id.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta { last_log_id: applied, last_membership: membership, snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), data };
        self.save_snapshot(&stored)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<u64>>, StoredMembership<u64, NodeInfo>)> {
        self.store.applied_state().map_err(|e| state_machine_error(ErrorVerb::Read, e))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Applied>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        tracing::trace!(entries = entries.len(), "apply");
        if applies_quickly(&entries) {
            // A hand-off to a blocking thread would cost more than the work.
            return apply_entries(&self.store, entries);
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || apply_entries(&store, entries))
            .await
            .map_err(|e| state_machine_error(ErrorVerb::Write, e))?
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, NodeInfo>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let stored = StoredSnapshot { meta: meta.clone(), data: snapshot.into_inner() };
        let store = self.store.clone();
        let data = stored.data.clone();
        let signature = Some(meta.signature());
        tokio::task::spawn_blocking(move || store.import(&data))
            .await
            .map_err(|e| snapshot_error(signature.clone(), ErrorVerb::Write, e))?
            .map_err(|e| snapshot_error(signature, ErrorVerb::Write, e))?;
        let (applied, _) = self.store.applied_state().map_err(|e| state_machine_error(ErrorVerb::Read, e))?;
        assert_eq!(applied, meta.last_log_id, "installed image carries the snapshot's log id");
        self.save_snapshot(&stored)?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = stored.data.len(), "installed a raft snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        Ok(self
            .load_snapshot()?
            .map(|stored| Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) }))
    }
}

/// Commands a batch of raft entries may hold and still be applied on the
/// state machine's own task (given each costs in proportion to its size).
const INLINE_APPLY_COMMANDS_MAX: usize = 64;

/// Whether `entries` are few and cheap enough to apply without leaving the
/// async task: a handful of bounded commands takes tens of microseconds.
fn applies_quickly(entries: &[Entry]) -> bool {
    let mut commands = 0;
    for entry in entries {
        if let EntryPayload::Normal(command) = &entry.payload {
            if !command.is_bounded() {
                return false;
            }
            commands += command.count();
        }
    }
    commands <= INLINE_APPLY_COMMANDS_MAX
}

/// Applies entries in one batch; storage failures abort the whole batch.
fn apply_entries(store: &Mvcc, entries: Vec<Entry>) -> StorageResult<Vec<Applied>> {
    let mut applier = store.applier();
    let mut results = Vec::with_capacity(entries.len());
    let mut last_applied = None;
    let mut membership: Option<Membership> = None;
    for entry in entries {
        let applied = match &entry.payload {
            EntryPayload::Blank => Applied { revision: applier.revision(), outcome: Ok(Outcome::Nothing) },
            EntryPayload::Normal(command) => applier.apply(command).map_err(|e| {
                StorageIOError::new(ErrorSubject::Apply(entry.log_id), ErrorVerb::Write, AnyError::new(&e))
            })?,
            EntryPayload::Membership(config) => {
                membership = Some(StoredMembership::new(Some(entry.log_id), config.clone()));
                Applied { revision: applier.revision(), outcome: Ok(Outcome::Nothing) }
            }
        };
        last_applied = Some(entry.log_id);
        results.push(applied);
    }
    applier.commit(last_applied, membership.as_ref()).map_err(|e| state_machine_error(ErrorVerb::Write, e))?;
    Ok(results)
}
