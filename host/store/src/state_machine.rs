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
use crate::{Applied, NodeInfo, Outcome, StoreError, TypeConfig, decode_bounded};

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
        let bytes = seal(snapshot).map_err(|e| snapshot_error(None, ErrorVerb::Write, e))?;
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
        let snapshot = unseal(&self.snapshot_path, &bytes).map_err(|e| snapshot_error(None, ErrorVerb::Read, e))?;
        Ok(Some(snapshot))
    }
}

/// First bytes of a snapshot file: its format and version.
const SNAPSHOT_MAGIC: &[u8; 8] = b"engsnap1";

/// Bytes of the checksum (BLAKE3) that follows the magic and covers the
/// rest of the file.
const SNAPSHOT_CHECKSUM_BYTES: usize = 32;

/// The snapshot file's bytes: magic, checksum, then the snapshot.
fn seal(snapshot: &StoredSnapshot) -> bincode::Result<Vec<u8>> {
    let header = SNAPSHOT_MAGIC.len() + SNAPSHOT_CHECKSUM_BYTES;
    let size = usize::try_from(bincode::serialized_size(snapshot)?).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(header.saturating_add(size));
    bytes.extend_from_slice(SNAPSHOT_MAGIC);
    bytes.resize(header, 0);
    bincode::serialize_into(&mut bytes, snapshot)?;
    let checksum = blake3::hash(&bytes[header..]);
    bytes[SNAPSHOT_MAGIC.len()..header].copy_from_slice(checksum.as_bytes());
    Ok(bytes)
}

/// The snapshot in a file's bytes, if its checksum holds.
///
/// # Errors
/// [`StoreError::Corrupt`], naming `path`, for a file without the magic,
/// with a checksum mismatch, or that does not decode.
fn unseal(path: &Path, bytes: &[u8]) -> Result<StoredSnapshot, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { file: path.display().to_string(), detail };
    let sealed = bytes.strip_prefix(SNAPSHOT_MAGIC).ok_or_else(|| corrupt("not an engenho raft snapshot".into()))?;
    if sealed.len() < SNAPSHOT_CHECKSUM_BYTES {
        return Err(corrupt("truncated".into()));
    }
    let (checksum, body) = sealed.split_at(SNAPSHOT_CHECKSUM_BYTES);
    if blake3::hash(body).as_bytes() != checksum {
        return Err(corrupt("checksum mismatch".into()));
    }
    decode_bounded(body).map_err(|e| corrupt(format!("does not decode: {e}")))
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
        if applied != meta.last_log_id {
            let mismatch = format!("the image holds log id {applied:?}, its metadata {:?}", meta.last_log_id);
            return Err(snapshot_error(Some(meta.signature()), ErrorVerb::Write, mismatch));
        }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::{Command, PutRequest};

    async fn snapshotted_store(dir: &Path) -> StateMachineStore {
        let storage = crate::open_database(&dir.join("db")).expect("open");
        let store = Mvcc::open(&storage).expect("open store");
        let mut applier = store.applier();
        let put = PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..PutRequest::default() };
        applier.apply(&Command::Put(put)).expect("applied");
        applier.commit(None, None).expect("committed");
        let mut machine = StateMachineStore::new(store, dir);
        machine.build_snapshot().await.expect("snapshot built");
        machine
    }

    fn flip_byte(path: &Path, at: usize) {
        let mut bytes = std::fs::read(path).expect("read");
        bytes[at] ^= 0x01;
        std::fs::write(path, bytes).expect("write");
    }

    #[tokio::test]
    async fn a_snapshot_reads_back_and_is_private() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut machine = snapshotted_store(dir.path()).await;
        let snapshot = machine.get_current_snapshot().await.expect("read").expect("a snapshot");
        assert!(!snapshot.snapshot.into_inner().is_empty());
        let mode = std::fs::metadata(&machine.snapshot_path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, crate::PRIVATE_FILE_MODE);
    }

    #[tokio::test]
    async fn a_flipped_byte_in_the_snapshot_is_a_checksum_mismatch_naming_the_file() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut machine = snapshotted_store(dir.path()).await;
        let size = std::fs::metadata(&machine.snapshot_path).expect("metadata").len();
        flip_byte(&machine.snapshot_path, usize::try_from(size / 2).expect("small"));
        let error = machine.get_current_snapshot().await.expect_err("corrupt").to_string();
        let file = machine.snapshot_path.display().to_string();
        assert!(error.contains(&format!("{file} is corrupt (checksum mismatch)")), "{error}");
        assert!(error.contains(crate::CORRUPT_REMEDY), "{error}");
    }

    #[tokio::test]
    async fn a_snapshot_without_its_header_is_refused() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut machine = snapshotted_store(dir.path()).await;
        flip_byte(&machine.snapshot_path, 0);
        let error = machine.get_current_snapshot().await.expect_err("corrupt").to_string();
        assert!(error.contains("is corrupt (not an engenho raft snapshot)"), "{error}");
        std::fs::write(&machine.snapshot_path, &SNAPSHOT_MAGIC[..]).expect("write");
        let error = machine.get_current_snapshot().await.expect_err("corrupt").to_string();
        assert!(error.contains("is corrupt (truncated)"), "{error}");
    }
}
