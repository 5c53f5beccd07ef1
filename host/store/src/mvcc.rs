//! The MVCC key-value state machine on fjall.
//!
//! The live key space (the newest version of every key) is held in memory,
//! as etcd holds its key index; it is rebuilt from `history` on open.
//!
//! Keyspaces:
//! - `history`: escaped key ++ revision → [`Version`], every version since
//!   the compacted revision, for reads in the past;
//! - `events`: revision ++ sub-index → [`EventRecord`] (kind and key; the
//!   values are read from `history` when an event is replayed), for watches;
//! - `leases`: lease id → granted time to live;
//! - `meta`: revision, compacted revision, last applied raft log id and
//!   membership.
//!
//! One [`Applier`] at a time writes, through one fjall batch per raft
//! `apply` call, then updates the live key space. Reads at the current
//! revision take the live key space briefly; reads in the past use fjall
//! snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, Readable, Snapshot};
use openraft::{LogId, StoredMembership};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode, escape_bound, event_key, event_revision, split_versioned, versioned_key};
use crate::error::{Result, StoreError};
use crate::model::*;
use crate::watch::{WatchBatch, WatchHub};
use crate::{NodeInfo, Storage, WriteFailures};

/// Largest lease time to live, in seconds (etcd's `MaxLeaseTTL`).
pub const LEASE_TTL_MAX: i64 = 9_000_000_000;

const REVISION_KEY: &[u8] = b"revision";
const COMPACTED_KEY: &[u8] = b"compacted";
const APPLIED_KEY: &[u8] = b"applied";
const MEMBERSHIP_KEY: &[u8] = b"membership";

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

/// What the `events` keyspace keeps of an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventRecord {
    kind: EventKind,
    #[serde(with = "serde_bytes")]
    key: Vec<u8>,
}

/// An [`EventRecord`] as written: the same encoding, borrowing the key.
#[derive(Serialize)]
struct EventRecordRef<'a> {
    kind: EventKind,
    #[serde(with = "serde_bytes")]
    key: &'a [u8],
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

/// The newest version of every live key, at one revision.
#[derive(Debug, Default)]
struct Live {
    keys: BTreeMap<Vec<u8>, KeyValue>,
    revision: i64,
    compacted: i64,
}

impl Live {
    /// Takes the newest version of a key found in history, if it is live.
    fn insert_newest(&mut self, newest: Option<Version>) {
        if let Some(version) = newest.filter(|v| !v.deleted) {
            self.keys.insert(version.kv.key.clone(), version.kv);
        }
    }

    fn scan(&self, range: &KeyRange) -> Vec<KeyValue> {
        if range.is_single() {
            return self.keys.get(&range.key).cloned().into_iter().collect();
        }
        if range.is_open_ended() {
            return self.keys.range(range.key.clone()..).map(|(_, kv)| kv.clone()).collect();
        }
        if range.end <= range.key {
            return Vec::new();
        }
        self.keys.range(range.key.clone()..range.end.clone()).map(|(_, kv)| kv.clone()).collect()
    }
}

/// The MVCC store: etcd's data model on fjall.
pub struct Mvcc {
    db: Database,
    live: RwLock<Live>,
    history: Keyspace,
    events: Keyspace,
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
struct View<'a> {
    store: &'a Mvcc,
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
        let open = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        let store = Self {
            db: db.clone(),
            live: RwLock::new(Live::default()),
            history: open("history")?,
            events: open("events")?,
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

    /// Rebuilds the live key space and the lease table from disk.
    fn load(&self) -> Result<()> {
        let view = self.view();
        let mut live = Live { keys: BTreeMap::new(), revision: view.revision, compacted: view.compacted };
        let mut newest: Option<Version> = None;
        for guard in view.snapshot.iter(&self.history) {
            let (_, value) = guard.into_inner()?;
            let version: Version = decode(&value)?;
            if newest.as_ref().is_some_and(|v| v.kv.key != version.kv.key) {
                live.insert_newest(newest.take());
            }
            newest = Some(version);
        }
        live.insert_newest(newest);
        let mut leases = BTreeMap::new();
        for guard in view.snapshot.iter(&self.leases_keyspace) {
            let (key, value) = guard.into_inner()?;
            let id = i64::from_be_bytes(key.as_ref().try_into().map_err(|_| corrupt("lease id"))?);
            leases.insert(id, Lease { ttl: decode(&value)?, keys: BTreeSet::new() });
        }
        for kv in live.keys.values().filter(|kv| kv.lease != 0) {
            leases.entry(kv.lease).or_default().keys.insert(kv.key.clone());
        }
        let revision = live.revision;
        *self.live.write().expect("live key space lock poisoned by a panic") = live;
        *self.lock_leases() = leases;
        self.hub.reset(revision);
        Ok(())
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

    fn view(&self) -> View<'_> {
        let snapshot = self.db.snapshot();
        let read = |key: &[u8]| -> i64 {
            snapshot.get(&self.meta, key).ok().flatten().and_then(|bytes| decode(&bytes).ok()).unwrap_or(0)
        };
        let revision = read(REVISION_KEY);
        let compacted = read(COMPACTED_KEY);
        View { store: self, snapshot, revision, compacted }
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
        let (revision, kvs) = {
            let live = self.read_live();
            if at > live.revision {
                return Err(StoreError::FutureRevision { requested: at, current: live.revision });
            }
            if at > 0 && at < live.compacted {
                return Err(StoreError::Compacted { requested: at, compacted: live.compacted });
            }
            let kvs = (at <= 0 || at == live.revision).then(|| live.scan(&request.range));
            (live.revision, kvs)
        };
        // Disk holds every revision the live key space has reached.
        let kvs = match kvs {
            Some(kvs) => kvs,
            None => self.view().scan_at(&request.range, at)?,
        };
        Ok((revision, finish_range(kvs, request)))
    }

    /// The events of `range` from revision `from` on, whole revisions only,
    /// stopping after the revision that reaches `events_max`.
    ///
    /// # Errors
    /// [`StoreError::Compacted`] when `from` is below the compacted revision.
    pub fn events_since(&self, range: &KeyRange, from: i64, events_max: usize) -> Result<Vec<WatchBatch>> {
        let view = self.view();
        if from < view.compacted {
            return Err(StoreError::Compacted { requested: from, compacted: view.compacted });
        }
        let mut batches: Vec<WatchBatch> = Vec::new();
        let mut count = 0;
        for guard in view.snapshot.range(&self.events, event_key(from.max(1), 0)..) {
            let (key, value) = guard.into_inner()?;
            let revision = event_revision(&key).ok_or_else(|| corrupt("event key"))?;
            if count >= events_max && batches.last().is_some_and(|b| b.revision != revision) {
                break;
            }
            let record: EventRecord = decode(&value)?;
            if !range.contains(&record.key) {
                continue;
            }
            let event = view.replay(record, revision)?;
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
        let applied = self.meta.get(APPLIED_KEY)?.map(|b| decode::<Option<LogId<u64>>>(&b)).transpose()?.flatten();
        let membership = self.meta.get(MEMBERSHIP_KEY)?.map(|b| decode(&b)).transpose()?;
        Ok((applied, membership.unwrap_or_default()))
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

    fn keyspaces(&self) -> [(&'static str, &Keyspace); 4] {
        [("history", &self.history), ("events", &self.events), ("leases", &self.leases_keyspace), ("meta", &self.meta)]
    }
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

impl View<'_> {
    /// Rebuilds an event from its record and the versions in `history`.
    fn replay(&self, record: EventRecord, revision: i64) -> Result<Event> {
        let kv = match record.kind {
            EventKind::Put => match self.version_at_or_below(&record.key, revision)? {
                Some((at, version)) if at == revision => version.kv,
                _ => return Err(corrupt("history of a replayed put")),
            },
            EventKind::Delete => KeyValue { key: record.key.clone(), mod_revision: revision, ..KeyValue::default() },
        };
        let prev_kv = match self.version_at_or_below(&record.key, revision - 1)? {
            Some((_, version)) if !version.deleted => Some(version.kv),
            _ => None,
        };
        Ok(Event { kind: record.kind, kv, prev_kv })
    }

    /// The newest stored version of `key` at or below `revision`.
    fn version_at_or_below(&self, key: &[u8], revision: i64) -> Result<Option<(i64, Version)>> {
        if revision < 1 {
            return Ok(None);
        }
        let versions = self.snapshot.range(&self.store.history, escape_bound(key)..=versioned_key(key, revision));
        let Some(guard) = versions.last() else { return Ok(None) };
        let (stored, value) = guard.into_inner()?;
        let (user_key, at) = split_versioned(&stored).ok_or_else(|| corrupt("history key"))?;
        if user_key != key {
            return Ok(None);
        }
        Ok(Some((at, decode(&value)?)))
    }

    /// The keys of `range` as they were at `revision`.
    fn scan_at(&self, range: &KeyRange, revision: i64) -> Result<Vec<KeyValue>> {
        let lower = escape_bound(&range.key);
        let iter = if range.is_single() {
            let mut upper = crate::codec::escape_key(&range.key);
            upper.extend_from_slice(&i64::MAX.to_be_bytes());
            self.snapshot.range(&self.store.history, lower..=upper)
        } else if range.is_open_ended() {
            self.snapshot.range(&self.store.history, lower..)
        } else {
            if range.end <= range.key {
                return Ok(Vec::new());
            }
            self.snapshot.range(&self.store.history, lower..escape_bound(&range.end))
        };
        let mut out: Vec<KeyValue> = Vec::new();
        let mut newest: Option<Version> = None;
        for guard in iter {
            let (key, value) = guard.into_inner()?;
            let (user_key, version_revision) = split_versioned(&key).ok_or_else(|| corrupt("history key"))?;
            if newest.as_ref().is_some_and(|v| v.kv.key != user_key) {
                out.extend(newest.take().filter(|v| !v.deleted).map(|v| v.kv));
            }
            if version_revision <= revision {
                newest = Some(decode(&value)?);
            }
        }
        out.extend(newest.filter(|v| !v.deleted).map(|v| v.kv));
        Ok(out)
    }
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
    deleted_ranges: Vec<KeyRange>,
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
}

impl Applier<'_> {
    /// The revision after the commands applied so far.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Applies one command. A refused command leaves the store unchanged and
    /// its refusal is the outcome.
    ///
    /// # Errors
    /// Only storage failures, which must stop the node: the batch is then
    /// incomplete.
    pub fn apply(&mut self, command: &Command) -> Result<Applied> {
        if let Command::Batch(commands) = command {
            let outcomes = commands.iter().map(|command| self.apply(command)).collect::<Result<Vec<_>>>()?;
            return Ok(Applied { revision: self.revision, outcome: Ok(Outcome::Batch(outcomes)) });
        }
        let mut scope = Scope::default();
        let outcome = match self.execute(&mut scope, command) {
            Ok(outcome) => outcome,
            Err(StoreError::Storage(message)) => return Err(StoreError::Storage(message)),
            Err(refusal) => return Ok(Applied { revision: self.revision, outcome: Err(refusal) }),
        };
        self.merge(scope)?;
        Ok(Applied { revision: self.revision, outcome: Ok(outcome) })
    }

    fn execute(&self, scope: &mut Scope, command: &Command) -> Result<Outcome> {
        let revision = self.revision + 1;
        match command {
            Command::Put(put) => self.put(scope, put, revision).map(Outcome::Put),
            Command::Delete(delete) => self.delete(scope, delete, revision).map(Outcome::Delete),
            Command::Txn(txn) => {
                check_txn_size(txn)?;
                self.txn(scope, txn, revision).map(Outcome::Txn)
            }
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
                if *ttl > LEASE_TTL_MAX {
                    return Err(StoreError::LeaseTtlTooLarge { ttl: *ttl });
                }
                assert_ne!(*id, 0, "lease ids are chosen before proposing");
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
            Command::Batch(_) => unreachable!("batches are unpacked by Applier::apply"),
        }
    }

    fn get(&self, scope: &Scope, key: &[u8]) -> Option<KeyValue> {
        if let Some(kv) = scope.overlay.get(key).or_else(|| self.overlay.get(key)) {
            return kv.clone();
        }
        self.store.read_live().keys.get(key).cloned()
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
        if put.key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
        if scope.put_keys.contains(&put.key) || scope.deleted_ranges.iter().any(|r| r.contains(&put.key)) {
            return Err(StoreError::DuplicateKey);
        }
        let prev = self.get(scope, &put.key);
        if (put.ignore_value || put.ignore_lease) && prev.is_none() {
            return Err(StoreError::KeyNotFound);
        }
        if put.ignore_value && !put.value.is_empty() {
            return Err(StoreError::ValueProvided);
        }
        if put.ignore_lease && put.lease != 0 {
            return Err(StoreError::LeaseProvided);
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
        delete.range.validate()?;
        if scope.put_keys.iter().any(|key| delete.range.contains(key)) {
            return Err(StoreError::DuplicateKey);
        }
        let found = self.scan(scope, &delete.range);
        scope.deleted_ranges.push(delete.range.clone());
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
        request.range.validate()?;
        if request.revision > 0 && request.revision != self.revision {
            // Reads in the past see committed history only.
            let view = self.store.view();
            if request.revision > view.revision {
                return Err(StoreError::FutureRevision { requested: request.revision, current: view.revision });
            }
            if request.revision < view.compacted {
                return Err(StoreError::Compacted { requested: request.revision, compacted: view.compacted });
            }
            return Ok(finish_range(view.scan_at(&request.range, request.revision)?, request));
        }
        Ok(finish_range(self.scan(scope, &request.range), request))
    }

    /// Moves a successful command's writes into the batch.
    fn merge(&mut self, scope: Scope) -> Result<()> {
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
            self.compact(target)?;
        }
        Ok(())
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
        self.batch.insert(&store.history, versioned_key(key, revision), version);
        let record = EventRecordRef { kind: event.kind, key };
        self.batch.insert(&store.events, event_key(revision, sub), encode(&record));
    }

    /// Drops history that no read at or after `target` can see.
    fn compact(&mut self, target: i64) -> Result<()> {
        let store = self.store;
        let mut pending: Option<(Vec<u8>, Vec<u8>, bool)> = None;
        for guard in store.history.iter() {
            let (key, value) = guard.into_inner()?;
            let (user_key, revision) = split_versioned(&key).ok_or_else(|| corrupt("history key"))?;
            if revision > target {
                continue;
            }
            let deleted = decode::<Version>(&value)?.deleted;
            if let Some((previous_key, previous_user_key, previous_deleted)) = pending.take() {
                // A newer version at or below the target hides the older one.
                if previous_user_key == user_key || previous_deleted {
                    self.batch.remove(&store.history, previous_key);
                }
            }
            pending = Some((key.to_vec(), user_key, deleted));
        }
        if let Some((key, _, true)) = pending {
            self.batch.remove(&store.history, key);
        }
        for guard in store.events.range(..event_key(target, 0)) {
            self.batch.remove(&store.events, guard.key()?);
        }
        self.compacted = target;
        self.batch.insert(&store.meta, COMPACTED_KEY, encode(&target));
        Ok(())
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
            for (key, kv) in std::mem::take(&mut self.overlay) {
                match kv {
                    Some(kv) => live.keys.insert(key, kv),
                    None => live.keys.remove(&key),
                };
            }
            assert!(self.revision >= live.revision, "revisions never go back");
            live.revision = self.revision;
            live.compacted = self.compacted;
        }
        store.hub.publish(std::mem::take(&mut self.published));
        Ok(())
    }
}

fn record_delete(scope: &mut Scope, prev: KeyValue, revision: i64) {
    let kv = KeyValue { key: prev.key.clone(), mod_revision: revision, ..KeyValue::default() };
    scope.overlay.insert(prev.key.clone(), None);
    scope.events.push(Event { kind: EventKind::Delete, kv, prev_kv: Some(prev) });
}

fn check_txn_size(txn: &TxnRequest) -> Result<()> {
    let count = txn.success.len().max(txn.failure.len()).max(txn.compare.len());
    if count > MAX_TXN_OPS {
        return Err(StoreError::TooManyOperations { count });
    }
    Ok(())
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
            let kind = if deleted { EventKind::Delete } else { EventKind::Put };
            let record = EventRecordRef { kind, key: &key };
            prop_assert_eq!(encode(&record), encode(&EventRecord { kind, key: key.clone() }));
        }
    }
}
