//! The MVCC key-value state machine on fjall.
//!
//! As in etcd, versions are stored by revision and the key index is held in
//! memory: for every key, its newest live version and where each of its
//! stored versions lies. The index is rebuilt from `revisions` on open.
//!
//! Keyspaces:
//! - `revisions`: revision ++ event index → [`Version`], every version
//!   written since the compacted revision (and the newest one at or below
//!   it of each live key): reads in the past and watch replay. A write
//!   appends one record at the end of the keyspace;
//! - `leases`: lease id → granted time to live;
//! - `meta`: revision, compacted revision, last applied raft log id and
//!   membership.
//!
//! One [`Applier`] at a time writes, through one fjall batch per raft
//! `apply` call, then updates the key index. Reads at the current revision
//! take the index briefly; reads in the past find their versions in it and
//! read them from a fjall snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, Readable, Snapshot};
use openraft::{LogId, StoredMembership};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, decode_bounded, encode, version_key, version_position};
use crate::corruption::{database_error, undecodable};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::range_set::{RangeSet, holds_any};
use crate::validate::validate_single;
use crate::watch::{WatchBatch, WatchHub};
use crate::{NodeInfo, Storage, WriteFailures};

/// Largest lease time to live, in seconds (etcd's `MaxLeaseTTL`).
pub const LEASE_TTL_MAX: i64 = 9_000_000_000;

const REVISION_KEY: &[u8] = b"revision";
const COMPACTED_KEY: &[u8] = b"compacted";
const APPLIED_KEY: &[u8] = b"applied";
const MEMBERSHIP_KEY: &[u8] = b"membership";

/// Keyspace of the versions, by revision.
const REVISIONS_KEYSPACE: &str = "revisions";

/// Keyspace in which an earlier format kept versions by key.
const KEY_ORDERED_HISTORY_KEYSPACE: &str = "history";

/// The raft membership as stored with the state machine.
pub type Membership = StoredMembership<u64, NodeInfo>;

/// One stored version of a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Version {
    deleted: bool,
    kv: KeyValue,
}

/// A [`Version`] as written: the same encoding, borrowing the key-value.
#[derive(Serialize)]
struct VersionRef<'a> {
    deleted: bool,
    kv: &'a KeyValue,
}

#[derive(Debug, Default)]
struct Lease {
    ttl: i64,
    keys: BTreeSet<Vec<u8>>,
}

/// Size and position of the store, for status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Current revision.
    pub revision: i64,
    /// Compacted revision.
    pub compacted: i64,
    /// Bytes the database takes on disk.
    pub disk_bytes: u64,
}

/// Where one stored version of a key lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    revision: i64,
    /// Index of the event among its revision's.
    sub: u32,
    /// Whether the version is a deletion.
    deleted: bool,
}

impl Position {
    fn key(self) -> [u8; 12] {
        version_key(self.revision, self.sub)
    }
}

/// What the index knows of one key.
#[derive(Debug, Default)]
struct KeyState {
    /// The newest version, unless the key is deleted.
    newest: Option<KeyValue>,
    /// Every stored version, oldest first.
    versions: Vec<Position>,
}

impl KeyState {
    /// The newest stored version at or below `revision`.
    fn at(&self, revision: i64) -> Option<Position> {
        let newer = self.versions.partition_point(|p| p.revision <= revision);
        newer.checked_sub(1).map(|index| self.versions[index])
    }

    /// How many of the oldest versions neither a read at or after `target`
    /// nor a watch from `target` can see: those below `target`, except the
    /// newest of them when it is a live version that is still the key's
    /// version at `target`.
    fn obsolete(&self, target: i64) -> usize {
        let below = self.versions.partition_point(|p| p.revision < target);
        let written_at_target = self.versions.get(below).is_some_and(|p| p.revision == target);
        match below.checked_sub(1).map(|index| self.versions[index]) {
            Some(newest) if !newest.deleted && !written_at_target => below - 1,
            _ => below,
        }
    }
}

/// The key index: every key with a live or stored version, at one revision.
#[derive(Debug, Default)]
struct Live {
    keys: BTreeMap<Vec<u8>, KeyState>,
    revision: i64,
    compacted: i64,
}

impl Live {
    /// Records the version `kv` stored at `position` (a deletion when the
    /// position says so).
    fn record(&mut self, position: Position, kv: KeyValue) {
        if let Some(state) = self.keys.get_mut(&kv.key) {
            state.newest = (!position.deleted).then_some(kv);
            state.versions.push(position);
            return;
        }
        let (key, newest) = if position.deleted { (kv.key, None) } else { (kv.key.clone(), Some(kv)) };
        self.keys.insert(key, KeyState { newest, versions: vec![position] });
    }

    /// The states of the keys in `range`.
    fn states<'a>(&'a self, range: &KeyRange) -> Box<dyn Iterator<Item = &'a KeyState> + 'a> {
        if range.is_single() {
            return Box::new(self.keys.get(&range.key).into_iter());
        }
        if range.is_open_ended() {
            return Box::new(self.keys.range(range.key.clone()..).map(|(_, state)| state));
        }
        if range.end <= range.key {
            return Box::new(std::iter::empty());
        }
        Box::new(self.keys.range(range.key.clone()..range.end.clone()).map(|(_, state)| state))
    }

    /// The live keys of `range`.
    fn scan(&self, range: &KeyRange) -> Vec<KeyValue> {
        self.states(range).filter_map(|state| state.newest.clone()).collect()
    }

    /// Forgets the versions of `keys` that compacting to `target` removed,
    /// and those keys left with neither a live nor a stored version.
    fn compact(&mut self, target: i64, keys: &BTreeSet<Vec<u8>>) {
        for key in keys {
            let Some(state) = self.keys.get_mut(key) else { continue };
            state.versions.drain(..state.obsolete(target));
            if state.newest.is_none() && state.versions.is_empty() {
                self.keys.remove(key);
            }
        }
        self.compacted = target;
    }
}

/// The MVCC store: etcd's data model on fjall.
pub struct Mvcc {
    db: Database,
    live: RwLock<Live>,
    revisions: Keyspace,
    leases_keyspace: Keyspace,
    meta: Keyspace,
    leases: Mutex<BTreeMap<i64, Lease>>,
    writer: Mutex<()>,
    hub: WatchHub,
    failures: WriteFailures,
}

impl std::fmt::Debug for Mvcc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mvcc").finish_non_exhaustive()
    }
}

/// A consistent read view: a fjall snapshot with its revision.
struct View {
    snapshot: Snapshot,
    revision: i64,
    compacted: i64,
}

impl Mvcc {
    /// Opens the store's keyspaces in `db` and loads leases into memory.
    ///
    /// # Errors
    /// Any fjall error or a corrupt record.
    pub fn open(storage: &Storage) -> Result<Arc<Self>> {
        let db = &storage.db;
        if db.keyspace_exists(KEY_ORDERED_HISTORY_KEYSPACE) {
            return Err(StoreError::Storage(
                "the data directory holds versions in an earlier format (by key); it cannot be read by this \
                 version"
                    .into(),
            ));
        }
        let open = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        let store = Self {
            db: db.clone(),
            live: RwLock::new(Live::default()),
            revisions: open(REVISIONS_KEYSPACE)?,
            leases_keyspace: open("leases")?,
            meta: open("meta")?,
            leases: Mutex::new(BTreeMap::new()),
            writer: Mutex::new(()),
            hub: WatchHub::new(0),
            failures: storage.failures.clone(),
        };
        store.load()?;
        Ok(Arc::new(store))
    }

    /// Rebuilds the key index and the lease table from disk.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a record that fails its checksum or does
    /// not decode.
    fn load(&self) -> Result<()> {
        let view = self.view()?;
        let mut live = Live { keys: BTreeMap::new(), revision: view.revision, compacted: view.compacted };
        for guard in view.snapshot.iter(&self.revisions) {
            let (key, value) = guard.into_inner().map_err(|e| self.read_failed(&e))?;
            let (revision, sub) = version_position(&key).ok_or_else(|| self.malformed("a version key"))?;
            let version: Version = self.decode_stored("a version", &value)?;
            live.record(Position { revision, sub, deleted: version.deleted }, version.kv);
        }
        let mut leases = BTreeMap::new();
        for guard in view.snapshot.iter(&self.leases_keyspace) {
            let (key, value) = guard.into_inner().map_err(|e| self.read_failed(&e))?;
            let id = i64::from_be_bytes(key.as_ref().try_into().map_err(|_| self.malformed("a lease id"))?);
            leases.insert(id, Lease { ttl: self.decode_stored("a lease", &value)?, keys: BTreeSet::new() });
        }
        for kv in live.keys.values().filter_map(|state| state.newest.as_ref()).filter(|kv| kv.lease != 0) {
            leases.entry(kv.lease).or_default().keys.insert(kv.key.clone());
        }
        let revision = live.revision;
        *self.live.write().expect("live key space lock poisoned by a panic") = live;
        *self.lock_leases() = leases;
        self.hub.reset(revision);
        Ok(())
    }

    /// The error for a failed read of the database.
    fn read_failed(&self, error: &fjall::Error) -> StoreError {
        database_error(&self.failures.path, error)
    }

    /// The error for a stored record that makes no sense.
    fn malformed(&self, what: &str) -> StoreError {
        StoreError::Corrupt { file: self.failures.path.display().to_string(), detail: format!("{what} is malformed") }
    }

    /// Decodes a stored record, naming the database when it is corrupt.
    fn decode_stored<T: serde::de::DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T> {
        decode_bounded(bytes).map_err(|e| undecodable(&self.failures.path, what, &e))
    }

    fn read_live(&self) -> RwLockReadGuard<'_, Live> {
        self.live.read().expect("live key space lock poisoned by a panic")
    }

    fn lock_leases(&self) -> MutexGuard<'_, BTreeMap<i64, Lease>> {
        self.leases.lock().expect("lease table lock poisoned by a panic")
    }

    /// The hub that publishes committed revisions.
    pub fn hub(&self) -> &WatchHub {
        &self.hub
    }

    /// A snapshot of the database with the revisions it holds; a revision
    /// never written is 0.
    fn view(&self) -> Result<View> {
        let snapshot = self.db.snapshot();
        let read = |key: &[u8]| -> Result<i64> {
            let bytes = snapshot.get(&self.meta, key).map_err(|e| self.read_failed(&e))?;
            bytes.map_or(Ok(0), |bytes| self.decode_stored("a revision", &bytes))
        };
        let revision = read(REVISION_KEY)?;
        let compacted = read(COMPACTED_KEY)?;
        Ok(View { snapshot, revision, compacted })
    }

    /// The newest committed revision (as published to watchers); cheap.
    pub fn revision(&self) -> i64 {
        self.hub.current_revision()
    }

    /// Current and compacted revision and disk use.
    pub fn status(&self) -> Status {
        let (revision, compacted) = {
            let live = self.read_live();
            (live.revision, live.compacted)
        };
        Status { revision, compacted, disk_bytes: self.db.disk_space().unwrap_or(0) }
    }

    /// Reads a range, as etcd's `Range`. Returns the store revision the read
    /// was served at and the result.
    ///
    /// # Errors
    /// Invalid range, compacted or future revision, storage failure.
    pub fn range(&self, request: &RangeRequest) -> Result<(i64, RangeResult)> {
        request.range.validate()?;
        let at = request.revision;
        let (revision, found) = {
            let live = self.read_live();
            let found = if at <= 0 || at == live.revision {
                Found::Live(live.scan(&request.range))
            } else {
                Found::Stored(self.locate(&live, &request.range, at, usize::MAX)?)
            };
            (live.revision, found)
        };
        let kvs = match found {
            Found::Live(kvs) => kvs,
            Found::Stored(located) => self.read_located(located)?,
        };
        Ok((revision, finish_range(kvs, request)))
    }

    /// The first live keys of `range` at `revision` (0 or less: the newest),
    /// in key order: at most `keys_max`, and no more once their values reach
    /// `bytes_max` (at least one); with the revision read at and whether
    /// more keys follow. Only the keys returned (and one more) are read, so
    /// paging through a large range costs each page its own size.
    ///
    /// # Errors
    /// Invalid range, compacted or future revision, storage failure.
    pub fn range_page(
        &self,
        range: &KeyRange,
        revision: i64,
        keys_max: usize,
        bytes_max: usize,
    ) -> Result<(i64, Vec<KeyValue>, bool)> {
        assert!(keys_max > 0, "a page holds at least one key");
        range.validate()?;
        let (current, found) = {
            let live = self.read_live();
            let found = if revision <= 0 || revision == live.revision {
                Found::Live(live.states(range).filter_map(|state| state.newest.clone()).take(keys_max + 1).collect())
            } else {
                Found::Stored(self.locate(&live, range, revision, keys_max + 1)?)
            };
            (live.revision, found)
        };
        let mut kvs = match found {
            Found::Live(kvs) => kvs,
            Found::Stored(located) => self.read_located(located)?,
        };
        let mut bytes = 0;
        let within = kvs
            .iter()
            .position(|kv| {
                bytes += kv.value.len();
                bytes >= bytes_max
            })
            .map_or(keys_max, |last| (last + 1).min(keys_max));
        let more = kvs.len() > within;
        kvs.truncate(within);
        Ok((current, kvs, more))
    }

    /// Where the live versions of `range` at revision `at` are stored (the
    /// first `keys_max` of them), with a snapshot that holds them; `live` is
    /// the index at its revision.
    fn locate(&self, live: &Live, range: &KeyRange, at: i64, keys_max: usize) -> Result<Located> {
        if at > live.revision {
            return Err(StoreError::FutureRevision { requested: at, current: live.revision });
        }
        if at < live.compacted {
            return Err(StoreError::Compacted { requested: at, compacted: live.compacted });
        }
        let positions = live
            .states(range)
            .filter_map(|state| state.at(at))
            .filter(|position| !position.deleted)
            .take(keys_max)
            .collect();
        // Taken while the index is held: the index changes only after the
        // batch behind it is committed, so the snapshot has every version
        // the index points to, unless a compaction committed meanwhile.
        Ok(Located { at, positions, snapshot: self.db.snapshot() })
    }

    /// Reads versions located by [`Mvcc::locate`].
    fn read_located(&self, located: Located) -> Result<Vec<KeyValue>> {
        let Located { at, positions, snapshot } = located;
        let mut kvs = Vec::with_capacity(positions.len());
        for position in positions {
            let Some(bytes) = snapshot.get(&self.revisions, position.key())? else {
                // A compaction passed `at` between the index and the snapshot.
                return Err(StoreError::Compacted { requested: at, compacted: self.read_live().compacted });
            };
            kvs.push(decode::<Version>(&bytes)?.kv);
        }
        Ok(kvs)
    }

    /// The events of `range` from revision `from` on, whole revisions only,
    /// stopping after the revision that reaches `events_max`.
    ///
    /// # Errors
    /// [`StoreError::Compacted`] when `from` is below the compacted revision.
    pub fn events_since(&self, range: &KeyRange, from: i64, events_max: usize) -> Result<Vec<WatchBatch>> {
        // The snapshot is taken while the index is held: it has every
        // version up to the index's revision (and maybe a batch beyond it,
        // which is left for the next call).
        let (snapshot, indexed, compacted) = {
            let live = self.read_live();
            (self.db.snapshot(), live.revision, live.compacted)
        };
        if from < compacted {
            return Err(StoreError::Compacted { requested: from, compacted });
        }
        let mut batches: Vec<WatchBatch> = Vec::new();
        let mut count = 0;
        for guard in snapshot.range(&self.revisions, version_key(from.max(1), 0)..) {
            let (key, value) = guard.into_inner()?;
            let (revision, _) = version_position(&key).ok_or_else(|| corrupt("version key"))?;
            if revision > indexed {
                break;
            }
            if count >= events_max && batches.last().is_some_and(|b| b.revision != revision) {
                break;
            }
            let version: Version = decode(&value)?;
            if !range.contains(&version.kv.key) {
                continue;
            }
            let event = self.replay(&snapshot, version, revision)?;
            count += 1;
            match batches.last_mut() {
                Some(batch) if batch.revision == revision => batch.events.push(event),
                _ => batches.push(WatchBatch { revision, events: vec![event] }),
            }
        }
        Ok(batches)
    }

    /// Granted time to live and attached keys of a lease.
    pub fn lease(&self, id: i64) -> Option<LeaseInfo> {
        let leases = self.lock_leases();
        let lease = leases.get(&id)?;
        Some(LeaseInfo { id, ttl: lease.ttl, keys: lease.keys.iter().cloned().collect() })
    }

    /// Ids and granted times to live of every lease.
    pub fn leases(&self) -> Vec<(i64, i64)> {
        self.lock_leases().iter().map(|(&id, lease)| (id, lease.ttl)).collect()
    }

    /// The last applied raft log id and membership, as recorded with the data.
    ///
    /// # Errors
    /// Storage failure or a corrupt record.
    pub fn applied_state(&self) -> Result<(Option<LogId<u64>>, Membership)> {
        let read = |key: &[u8]| self.meta.get(key).map_err(|e| self.read_failed(&e));
        let applied: Option<Option<LogId<u64>>> =
            read(APPLIED_KEY)?.map(|b| self.decode_stored("the applied log id", &b)).transpose()?;
        let membership = read(MEMBERSHIP_KEY)?.map(|b| self.decode_stored("the membership", &b)).transpose()?;
        Ok((applied.flatten(), membership.unwrap_or_default()))
    }

    /// Starts applying a batch of raft entries. Only one applier exists at a
    /// time; the batch becomes visible at [`Applier::commit`].
    pub fn applier(&self) -> Applier<'_> {
        let guard = self.writer.lock().expect("writer lock poisoned by a panic");
        let (revision, compacted) = {
            let live = self.read_live();
            (live.revision, live.compacted)
        };
        Applier {
            store: self,
            _guard: guard,
            batch: self.db.batch(),
            overlay: BTreeMap::new(),
            revision,
            compacted,
            published: Vec::new(),
            compacted_keys: BTreeSet::new(),
        }
    }

    /// Serializes the whole store, consistently, with the raft position it
    /// reflects.
    ///
    /// # Errors
    /// Storage failure.
    pub fn export(&self) -> Result<(Option<LogId<u64>>, Membership, Vec<u8>)> {
        let snapshot = self.db.snapshot();
        let mut image = Image::default();
        for (name, keyspace) in self.keyspaces() {
            let mut pairs = Vec::new();
            for guard in snapshot.iter(keyspace) {
                let (key, value) = guard.into_inner()?;
                pairs.push((serde_bytes::ByteBuf::from(key.to_vec()), serde_bytes::ByteBuf::from(value.to_vec())));
            }
            image.keyspaces.push(KeyspaceImage { name: name.to_owned(), pairs });
        }
        let applied =
            snapshot.get(&self.meta, APPLIED_KEY)?.map(|b| decode::<Option<LogId<u64>>>(&b)).transpose()?.flatten();
        let membership = snapshot.get(&self.meta, MEMBERSHIP_KEY)?.map(|b| decode(&b)).transpose()?;
        Ok((applied, membership.unwrap_or_default(), encode(&image)))
    }

    /// Replaces the whole store with an image made by [`Mvcc::export`].
    ///
    /// # Errors
    /// A corrupt image or storage failure; the store is unchanged then.
    pub fn import(&self, bytes: &[u8]) -> Result<()> {
        let image: Image = decode(bytes)?;
        let _guard = self.writer.lock().expect("writer lock poisoned by a panic");
        let mut batch = self.db.batch();
        for (name, keyspace) in self.keyspaces() {
            for guard in keyspace.iter() {
                batch.remove(keyspace, guard.key()?);
            }
            let pairs = image.keyspaces.iter().find(|k| k.name == name).map(|k| &k.pairs);
            for (key, value) in pairs.into_iter().flatten() {
                batch.insert(keyspace, key.as_slice(), value.as_slice());
            }
        }
        batch.commit().map_err(|e| StoreError::Storage(self.failures.describe(&e)))?;
        self.load()
    }

    /// The event that wrote `version` at `revision` (at most the index's
    /// revision), with the version before it where one is still stored.
    fn replay(&self, snapshot: &Snapshot, version: Version, revision: i64) -> Result<Event> {
        let previous = {
            let live = self.read_live();
            live.keys.get(&version.kv.key).and_then(|state| state.at(revision - 1))
        };
        let prev_kv = match previous.filter(|position| !position.deleted) {
            Some(position) => snapshot
                .get(&self.revisions, position.key())?
                .map(|bytes| decode::<Version>(&bytes))
                .transpose()?
                .map(|version| version.kv),
            None => None,
        };
        let kind = if version.deleted { EventKind::Delete } else { EventKind::Put };
        Ok(Event { kind, kv: version.kv, prev_kv })
    }

    fn keyspaces(&self) -> [(&'static str, &Keyspace); 3] {
        [(REVISIONS_KEYSPACE, &self.revisions), ("leases", &self.leases_keyspace), ("meta", &self.meta)]
    }
}

/// What a range read found: live versions, or where past ones are stored.
enum Found {
    Live(Vec<KeyValue>),
    Stored(Located),
}

/// Stored versions of a read in the past, and the snapshot to read them from.
struct Located {
    at: i64,
    positions: Vec<Position>,
    snapshot: Snapshot,
}

/// The serialized form of a whole store.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Image {
    keyspaces: Vec<KeyspaceImage>,
}

/// Every key and value of one keyspace.
#[derive(Debug, Serialize, Deserialize)]
struct KeyspaceImage {
    name: String,
    pairs: Vec<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)>,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Storage(format!("corrupt {what}"))
}

/// Applies filters, sorting, counting and the limit of a range request.
fn finish_range(mut kvs: Vec<KeyValue>, request: &RangeRequest) -> RangeResult {
    let keep = |kv: &KeyValue| {
        (request.min_mod_revision == 0 || kv.mod_revision >= request.min_mod_revision)
            && (request.max_mod_revision == 0 || kv.mod_revision <= request.max_mod_revision)
            && (request.min_create_revision == 0 || kv.create_revision >= request.min_create_revision)
            && (request.max_create_revision == 0 || kv.create_revision <= request.max_create_revision)
    };
    let count = i64::try_from(kvs.len()).expect("key count fits i64");
    kvs.retain(keep);
    let order = match (request.sort_order, request.sort_target) {
        (SortOrder::None, SortTarget::Key) => SortOrder::Ascend,
        (order, _) => order,
    };
    if order != SortOrder::None {
        let target = request.sort_target;
        kvs.sort_by(|a, b| {
            let ordering = match target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            };
            if order == SortOrder::Descend { ordering.reverse() } else { ordering }
        });
    }
    let mut more = false;
    if request.limit > 0 {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        more = kvs.len() > limit;
        kvs.truncate(limit);
    }
    if request.count_only {
        kvs.clear();
    }
    if request.keys_only {
        kvs.iter_mut().for_each(|kv| kv.value.clear());
    }
    RangeResult { kvs, more, count }
}

/// Writes of one command, kept apart until the command succeeds so that a
/// refused command changes nothing.
#[derive(Default)]
struct Scope {
    overlay: BTreeMap<Vec<u8>, Option<KeyValue>>,
    events: Vec<Event>,
    granted: Vec<(i64, i64)>,
    revoked: Vec<i64>,
    put_keys: BTreeSet<Vec<u8>>,
    deleted_ranges: RangeSet,
    compact: Option<i64>,
}

/// Applies raft entries to the store, one fjall batch per raft `apply` call.
pub struct Applier<'a> {
    store: &'a Mvcc,
    _guard: MutexGuard<'a, ()>,
    batch: OwnedWriteBatch,
    overlay: BTreeMap<Vec<u8>, Option<KeyValue>>,
    revision: i64,
    compacted: i64,
    published: Vec<WatchBatch>,
    /// Keys whose versions a compaction of this batch removes.
    compacted_keys: BTreeSet<Vec<u8>>,
}

impl Applier<'_> {
    /// The revision after the commands applied so far.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Applies one command. A refused command leaves the store unchanged and
    /// its refusal is the outcome; so does a command that fails
    /// [`crate::validate_command`], whoever proposed it. A batch applies
    /// its commands in order, each with its own outcome.
    ///
    /// # Errors
    /// Only storage failures, which must stop the node: the batch is then
    /// incomplete.
    pub fn apply(&mut self, command: &Command) -> Result<Applied> {
        if let Command::Batch(commands) = command {
            let outcomes = commands.iter().map(|command| self.apply_single(command)).collect::<Result<Vec<_>>>()?;
            return Ok(Applied { revision: self.revision, outcome: Ok(Outcome::Batch(outcomes)) });
        }
        self.apply_single(command)
    }

    /// Applies a command that should not be a batch; a batch is refused.
    fn apply_single(&mut self, command: &Command) -> Result<Applied> {
        if let Err(refusal) = validate_single(command) {
            return Ok(Applied { revision: self.revision, outcome: Err(refusal) });
        }
        let mut scope = Scope::default();
        let outcome = match self.execute(&mut scope, command) {
            Ok(outcome) => outcome,
            Err(StoreError::Storage(message)) => return Err(StoreError::Storage(message)),
            Err(refusal) => return Ok(Applied { revision: self.revision, outcome: Err(refusal) }),
        };
        self.merge(scope);
        Ok(Applied { revision: self.revision, outcome: Ok(outcome) })
    }

    fn execute(&self, scope: &mut Scope, command: &Command) -> Result<Outcome> {
        let revision = self.revision + 1;
        match command {
            Command::Put(put) => self.put(scope, put, revision).map(Outcome::Put),
            Command::Delete(delete) => self.delete(scope, delete, revision).map(Outcome::Delete),
            Command::Txn(txn) => self.txn(scope, txn, revision).map(Outcome::Txn),
            Command::Compact { revision: target } => {
                if *target > self.revision {
                    return Err(StoreError::FutureRevision { requested: *target, current: self.revision });
                }
                if *target <= self.compacted {
                    return Err(StoreError::Compacted { requested: *target, compacted: self.compacted });
                }
                scope.compact = Some(*target);
                Ok(Outcome::Compacted)
            }
            Command::LeaseGrant { id, ttl } => {
                if self.store.lock_leases().contains_key(id) {
                    return Err(StoreError::LeaseExists { id: *id });
                }
                scope.granted.push((*id, *ttl));
                Ok(Outcome::LeaseGranted { id: *id, ttl: *ttl })
            }
            Command::LeaseRevoke { id } => {
                let keys = match self.store.lock_leases().get(id) {
                    Some(lease) => lease.keys.clone(),
                    None => return Err(StoreError::LeaseNotFound { id: *id }),
                };
                for key in keys {
                    let prev = self.get(scope, &key).ok_or_else(|| corrupt("lease key index"))?;
                    record_delete(scope, prev, revision);
                }
                scope.revoked.push(*id);
                Ok(Outcome::LeaseRevoked)
            }
            Command::Batch(_) => Err(StoreError::NestedBatch),
        }
    }

    fn get(&self, scope: &Scope, key: &[u8]) -> Option<KeyValue> {
        if let Some(kv) = scope.overlay.get(key).or_else(|| self.overlay.get(key)) {
            return kv.clone();
        }
        self.store.read_live().keys.get(key).and_then(|state| state.newest.clone())
    }

    fn scan(&self, scope: &Scope, range: &KeyRange) -> Vec<KeyValue> {
        if range.is_single() {
            return self.get(scope, &range.key).into_iter().collect();
        }
        let mut found: BTreeMap<Vec<u8>, KeyValue> =
            self.store.read_live().scan(range).into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        for overlay in [&self.overlay, &scope.overlay] {
            for (key, kv) in overlay.iter().filter(|(key, _)| range.contains(key)) {
                match kv {
                    Some(kv) => found.insert(key.clone(), kv.clone()),
                    None => found.remove(key),
                };
            }
        }
        found.into_values().collect()
    }

    fn lease_exists(&self, scope: &Scope, id: i64) -> bool {
        if scope.revoked.contains(&id) {
            return false;
        }
        scope.granted.iter().any(|(granted, _)| *granted == id) || self.store.lock_leases().contains_key(&id)
    }

    fn put(&self, scope: &mut Scope, put: &PutRequest, revision: i64) -> Result<PutResult> {
        if scope.put_keys.contains(&put.key) || scope.deleted_ranges.contains(&put.key) {
            return Err(StoreError::DuplicateKey);
        }
        let prev = self.get(scope, &put.key);
        if (put.ignore_value || put.ignore_lease) && prev.is_none() {
            return Err(StoreError::KeyNotFound);
        }
        let lease = match &prev {
            Some(prev) if put.ignore_lease => prev.lease,
            _ => put.lease,
        };
        if lease != 0 && !self.lease_exists(scope, lease) {
            return Err(StoreError::LeaseNotFound { id: lease });
        }
        let value = match &prev {
            Some(prev) if put.ignore_value => prev.value.clone(),
            _ => put.value.clone(),
        };
        let kv = KeyValue {
            key: put.key.clone(),
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value,
            lease,
        };
        scope.put_keys.insert(put.key.clone());
        scope.overlay.insert(put.key.clone(), Some(kv.clone()));
        scope.events.push(Event { kind: EventKind::Put, kv, prev_kv: prev.clone() });
        Ok(PutResult { prev_kv: prev.filter(|_| put.prev_kv) })
    }

    fn delete(&self, scope: &mut Scope, delete: &DeleteRequest, revision: i64) -> Result<DeleteResult> {
        if holds_any(&scope.put_keys, &delete.range) {
            return Err(StoreError::DuplicateKey);
        }
        let found = self.scan(scope, &delete.range);
        scope.deleted_ranges.insert(&delete.range);
        let deleted = i64::try_from(found.len()).expect("key count fits i64");
        let mut prev_kvs = Vec::new();
        for prev in found {
            if delete.prev_kv {
                prev_kvs.push(prev.clone());
            }
            record_delete(scope, prev, revision);
        }
        Ok(DeleteResult { deleted, prev_kvs })
    }

    fn txn(&self, scope: &mut Scope, txn: &TxnRequest, revision: i64) -> Result<TxnResult> {
        let mut succeeded = true;
        for compare in &txn.compare {
            compare.range.validate()?;
            let found = self.scan(scope, &compare.range);
            if !compare_holds(compare, &found) {
                succeeded = false;
                break;
            }
        }
        let operations = if succeeded { &txn.success } else { &txn.failure };
        let mut responses = Vec::with_capacity(operations.len());
        for operation in operations {
            responses.push(match operation {
                Operation::Range(range) => OperationResult::Range(self.txn_range(scope, range)?),
                Operation::Put(put) => OperationResult::Put(self.put(scope, put, revision)?),
                Operation::Delete(delete) => OperationResult::Delete(self.delete(scope, delete, revision)?),
                Operation::Txn(nested) => OperationResult::Txn(self.txn(scope, nested, revision)?),
            });
        }
        Ok(TxnResult { succeeded, responses })
    }

    fn txn_range(&self, scope: &Scope, request: &RangeRequest) -> Result<RangeResult> {
        if request.revision > 0 && request.revision != self.revision {
            // Reads in the past see committed history only.
            let store = self.store;
            let located = store.locate(&store.read_live(), &request.range, request.revision, usize::MAX)?;
            return Ok(finish_range(store.read_located(located)?, request));
        }
        Ok(finish_range(self.scan(scope, &request.range), request))
    }

    /// Moves a successful command's writes into the batch.
    fn merge(&mut self, scope: Scope) {
        let store = self.store;
        let mut leases = store.lock_leases();
        for (id, ttl) in scope.granted {
            self.batch.insert(&store.leases_keyspace, id.to_be_bytes(), encode(&ttl));
            leases.insert(id, Lease { ttl, keys: BTreeSet::new() });
        }
        if !scope.events.is_empty() {
            self.revision += 1;
            let revision = self.revision;
            for (sub, event) in scope.events.iter().enumerate() {
                let sub = u32::try_from(sub).expect("events per revision fit u32");
                self.write_event(&mut leases, revision, sub, event);
            }
            self.published.push(WatchBatch { revision, events: scope.events });
        }
        for id in scope.revoked {
            let lease = leases.remove(&id);
            assert!(lease.is_none_or(|l| l.keys.is_empty()), "a revoked lease keeps no keys");
            self.batch.remove(&store.leases_keyspace, id.to_be_bytes());
        }
        drop(leases);
        self.overlay.extend(scope.overlay);
        if let Some(target) = scope.compact {
            self.compact(target);
        }
    }

    fn write_event(&mut self, leases: &mut BTreeMap<i64, Lease>, revision: i64, sub: u32, event: &Event) {
        let store = self.store;
        let key = &event.kv.key;
        if let Some(lease) = event.prev_kv.as_ref().and_then(|prev| leases.get_mut(&prev.lease)) {
            lease.keys.remove(key);
        }
        let deleted = event.kind == EventKind::Delete;
        if !deleted && event.kv.lease != 0 {
            leases.entry(event.kv.lease).or_default().keys.insert(key.clone());
        }
        let version = encode(&VersionRef { deleted, kv: &event.kv });
        self.batch.insert(&store.revisions, version_key(revision, sub), version);
    }

    /// Drops the versions no read at or after `target` can see; the index
    /// forgets them at commit.
    fn compact(&mut self, target: i64) {
        let store = self.store;
        // Versions written earlier in this batch are not in the index yet.
        let mut pending: BTreeMap<&[u8], KeyState> = BTreeMap::new();
        for (position, event) in written(&self.published) {
            pending.entry(&event.kv.key).or_default().versions.push(position);
        }
        let mut obsolete = Vec::new();
        let mut compacted_keys = Vec::new();
        {
            let live = store.read_live();
            for (key, state) in &live.keys {
                match pending.get_mut(key.as_slice()) {
                    Some(written) => {
                        written.versions.splice(0..0, state.versions.iter().copied());
                    }
                    None => {
                        let versions = &state.versions[..state.obsolete(target)];
                        if !versions.is_empty() {
                            obsolete.extend_from_slice(versions);
                            compacted_keys.push(key.clone());
                        }
                    }
                }
            }
        }
        for (key, state) in &pending {
            let versions = &state.versions[..state.obsolete(target)];
            if !versions.is_empty() {
                obsolete.extend_from_slice(versions);
                compacted_keys.push(key.to_vec());
            }
        }
        for position in obsolete {
            self.batch.remove(&store.revisions, position.key());
        }
        self.compacted_keys.extend(compacted_keys);
        self.compacted = target;
        self.batch.insert(&store.meta, COMPACTED_KEY, encode(&target));
    }

    /// Commits the batch with the raft position it reaches, then publishes
    /// its revisions to watchers.
    ///
    /// # Errors
    /// Storage failure; nothing of the batch is visible then.
    pub fn commit(mut self, applied: Option<LogId<u64>>, membership: Option<&Membership>) -> Result<()> {
        let store = self.store;
        if !self.published.is_empty() {
            self.batch.insert(&store.meta, REVISION_KEY, encode(&self.revision));
        }
        self.batch.insert(&store.meta, APPLIED_KEY, encode(&applied));
        if let Some(membership) = membership {
            self.batch.insert(&store.meta, MEMBERSHIP_KEY, encode(membership));
        }
        self.batch.commit().map_err(|e| StoreError::Storage(store.failures.describe(&e)))?;
        {
            let mut live = store.live.write().expect("live key space lock poisoned by a panic");
            for (position, event) in written(&self.published) {
                live.record(position, event.kv.clone());
            }
            assert!(self.revision >= live.revision, "revisions never go back");
            live.revision = self.revision;
            if self.compacted != live.compacted {
                live.compact(self.compacted, &self.compacted_keys);
            }
        }
        store.hub.publish(std::mem::take(&mut self.published));
        Ok(())
    }
}

/// Each event of `batches` with where its version is stored.
fn written(batches: &[WatchBatch]) -> impl Iterator<Item = (Position, &Event)> {
    batches.iter().flat_map(|batch| {
        batch.events.iter().enumerate().map(|(sub, event)| {
            let sub = u32::try_from(sub).expect("events per revision fit u32");
            (Position { revision: batch.revision, sub, deleted: event.kind == EventKind::Delete }, event)
        })
    })
}

fn record_delete(scope: &mut Scope, prev: KeyValue, revision: i64) {
    let kv = KeyValue { key: prev.key.clone(), mod_revision: revision, ..KeyValue::default() };
    scope.overlay.insert(prev.key.clone(), None);
    scope.events.push(Event { kind: EventKind::Delete, kv, prev_kv: Some(prev) });
}

/// Whether every key in `found` satisfies `compare`; for a single key that
/// does not exist, etcd compares against zero values (and a value compare
/// fails).
fn compare_holds(compare: &Compare, found: &[KeyValue]) -> bool {
    if found.is_empty() {
        if !compare.range.is_single() {
            return true;
        }
        if matches!(compare.target, CompareTarget::Value(_)) {
            return false;
        }
        return compare_one(compare, &KeyValue::default());
    }
    found.iter().all(|kv| compare_one(compare, kv))
}

fn compare_one(compare: &Compare, kv: &KeyValue) -> bool {
    let ordering = match &compare.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::Create(v) => kv.create_revision.cmp(v),
        CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
    };
    match compare.result {
        CompareResult::Equal => ordering.is_eq(),
        CompareResult::Greater => ordering.is_gt(),
        CompareResult::Less => ordering.is_lt(),
        CompareResult::NotEqual => ordering.is_ne(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn put(key: &str, value: &str) -> Command {
        Command::Put(PutRequest { key: key.into(), value: value.into(), ..PutRequest::default() })
    }

    fn delete(key: &str) -> Command {
        Command::Delete(DeleteRequest { range: KeyRange::single(key.as_bytes().to_vec()), ..DeleteRequest::default() })
    }

    fn stored_revisions(store: &Mvcc) -> Vec<(i64, u32)> {
        store
            .revisions
            .iter()
            .map(|guard| version_position(&guard.key().expect("key")).expect("a version key"))
            .collect()
    }

    #[test]
    fn versions_below_the_target_go_except_each_live_keys_version_at_it() {
        let position = |revision, deleted| Position { revision, sub: 0, deleted };
        let state = |versions: Vec<Position>| KeyState { newest: None, versions };
        let live = state(vec![position(1, false), position(3, false), position(6, false)]);
        assert_eq!(live.obsolete(5), 1, "the version at 3 is the key's at 5");
        assert_eq!(live.obsolete(6), 2, "the version at 6 is the key's at 6");
        assert_eq!(live.obsolete(1), 0);
        assert_eq!(live.at(5), Some(position(3, false)));
        assert_eq!(live.at(0), None);
        let gone = state(vec![position(1, false), position(2, true)]);
        assert_eq!(gone.obsolete(4), 2, "nothing is left to read at 4");
        assert_eq!(gone.obsolete(2), 1, "a watch from 2 still sees the deletion");
    }

    #[test]
    fn compaction_removes_what_no_read_can_see_even_within_one_batch() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let storage = crate::open_database(dir.path()).expect("open");
        let store = Mvcc::open(&storage).expect("open store");
        for command in [put("a", "1"), put("b", "1"), put("a", "2"), delete("b")] {
            let mut applier = store.applier();
            applier.apply(&command).expect("applied");
            applier.commit(None, None).expect("committed");
        }
        // One batch: a write, then a compaction up to it, then a write.
        let mut applier = store.applier();
        for command in [put("a", "3"), Command::Compact { revision: 5 }, put("c", "1")] {
            applier.apply(&command).expect("applied").outcome.expect("accepted");
        }
        applier.commit(None, None).expect("committed");
        assert_eq!(stored_revisions(&store), [(5, 0), (6, 0)], "a at 5 and c at 6 are all that is left");
        assert!(!store.read_live().keys.contains_key(b"b".as_slice()), "the deleted key is forgotten");
        let indexed: BTreeSet<(i64, u32)> = store
            .read_live()
            .keys
            .values()
            .flat_map(|state| state.versions.iter().map(|p| (p.revision, p.sub)))
            .collect();
        assert_eq!(indexed, stored_revisions(&store).into_iter().collect(), "the index lists what is stored");
        let at =
            |revision| RangeRequest { range: KeyRange::single(b"a".to_vec()), revision, ..RangeRequest::default() };
        assert_eq!(store.range(&at(5)).expect("read at 5").1.kvs[0].value, b"3");
        assert!(matches!(store.range(&at(4)), Err(StoreError::Compacted { requested: 4, compacted: 5 })));
        drop(store);
        let store = Mvcc::open(&storage).expect("reopen store");
        assert_eq!(store.range(&at(0)).expect("read").1.kvs[0].value, b"3");
        assert_eq!(store.read_live().keys.len(), 2);
    }

    #[test]
    fn a_flipped_byte_in_a_table_fails_the_open_naming_the_database() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("db");
        {
            let storage = crate::open_database(&path).expect("open");
            let store = Mvcc::open(&storage).expect("open store");
            let mut applier = store.applier();
            for index in 0..64 {
                applier.apply(&put(&format!("key-{index}"), "a value long enough to fill a block")).expect("applied");
            }
            applier.commit(None, None).expect("committed");
            store.revisions.rotate_memtable_and_wait().expect("flushed to a table");
        }
        let mut tables: Vec<_> =
            walk(&path).into_iter().filter(|file| file.to_string_lossy().contains("tables")).collect();
        tables.sort_by_key(|file| std::fs::metadata(file).map(|m| m.len()).unwrap_or(0));
        let table = tables.pop().expect("a table file");
        let mut bytes = std::fs::read(&table).expect("read");
        let middle = bytes.len() / 4;
        bytes[middle] ^= 0x01;
        std::fs::write(&table, bytes).expect("write");
        let error =
            crate::open_database(&path).and_then(|storage| Mvcc::open(&storage).map(|_| ())).expect_err("corrupt");
        let message = error.to_string();
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
        assert!(message.contains(&format!("{} is corrupt (table checksum mismatch)", path.display())), "{message}");
        assert!(message.contains(crate::CORRUPT_REMEDY), "{message}");
    }

    /// Every file under `dir`.
    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(current) = pending.pop() {
            for entry in std::fs::read_dir(&current).expect("list") {
                let path = entry.expect("entry").path();
                if path.is_dir() { pending.push(path) } else { found.push(path) }
            }
        }
        found
    }

    #[test]
    fn pages_hold_their_own_keys_now_and_in_the_past() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let storage = crate::open_database(dir.path()).expect("open");
        let store = Mvcc::open(&storage).expect("open store");
        for command in [put("k/1", "aa"), put("k/2", "bb"), put("k/3", "cc"), put("k/4", "dd"), put("l/1", "x")] {
            let mut applier = store.applier();
            applier.apply(&command).expect("applied");
            applier.commit(None, None).expect("committed");
        }
        let keys =
            |kvs: &[KeyValue]| kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect::<Vec<_>>();
        let all = KeyRange::prefix(b"k/".to_vec());
        let (revision, page, more) = store.range_page(&all, 0, 2, usize::MAX).expect("a page");
        assert_eq!((revision, keys(&page), more), (5, vec!["k/1".to_owned(), "k/2".to_owned()], true));
        let after = KeyRange { key: b"k/2\0".to_vec(), end: all.end.clone() };
        let (_, page, more) = store.range_page(&after, 0, 2, usize::MAX).expect("the next page");
        assert_eq!((keys(&page), more), (vec!["k/3".to_owned(), "k/4".to_owned()], false));
        let (_, page, more) = store.range_page(&all, 0, 10, 3).expect("a page cut by bytes");
        assert_eq!((keys(&page), more), (vec!["k/1".to_owned(), "k/2".to_owned()], true));

        let mut applier = store.applier();
        applier.apply(&put("k/1", "changed")).expect("applied");
        applier.commit(None, None).expect("committed");
        let (_, page, more) = store.range_page(&all, 3, 10, usize::MAX).expect("a page in the past");
        assert_eq!((keys(&page), more), (vec!["k/1".to_owned(), "k/2".to_owned(), "k/3".to_owned()], false));
        assert_eq!(page[0].value, b"aa");
    }

    proptest! {
        #[test]
        fn borrowed_records_encode_as_the_stored_ones(
            key in proptest::collection::vec(any::<u8>(), 1..16),
            value in proptest::collection::vec(any::<u8>(), 0..64),
            revisions in (1i64..1000, 1i64..1000, 1i64..1000),
            lease in any::<i64>(),
            deleted in any::<bool>(),
        ) {
            let kv = KeyValue {
                key: key.clone(),
                create_revision: revisions.0,
                mod_revision: revisions.1,
                version: revisions.2,
                value,
                lease,
            };
            let version: Version = decode(&encode(&VersionRef { deleted, kv: &kv })).expect("decodes");
            prop_assert_eq!(version.deleted, deleted);
            prop_assert_eq!(&version.kv, &kv);
            prop_assert_eq!(encode(&VersionRef { deleted, kv: &kv }), encode(&Version { deleted, kv: kv.clone() }));
        }
    }
}
