//! Kubernetes objects in the replicated store: one JSON value per key, its
//! `resourceVersion` the store revision that last wrote it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use engenho_mesh::Node;
use engenho_store::{
    Command, Compare, CompareResult, CompareTarget, DeleteRequest, KeyRange, KeyValue, Operation, Outcome, PutRequest,
    RangeRequest, TxnRequest,
};
use serde_json::{Map, Value, json};

use super::apply;
use super::resources::ResourceType;
use super::services::{self, ServiceNetwork};
use super::status::{ApiError, Cause};

/// Reads and writes objects of every kind through one node.
#[derive(Clone)]
pub struct ObjectStore {
    node: Node,
    /// Namespace heads decoded before (every namespaced write reads its
    /// namespace's head).
    heads: Arc<Mutex<NamespaceHeads>>,
    /// The cluster's service network, once settled at start.
    service_network: Arc<std::sync::OnceLock<ServiceNetwork>>,
}

/// Decoded namespace heads by name, each with the revision that wrote it.
type NamespaceHeads = HashMap<String, (i64, Arc<NamespaceHead>)>;

/// The largest object kept, encoded as stored: the store's limit for one
/// request (as etcd's 1.5 MiB, which bounds Kubernetes objects), less room
/// for the key and the transaction around the value.
pub const OBJECT_BYTES_MAX: usize = engenho_store::MAX_REQUEST_BYTES - 4096;

/// Namespace heads [`ObjectStore`] keeps decoded; past this many it starts
/// again from none.
const NAMESPACE_HEADS_MAX: usize = 4096;

/// A list of objects and the store revision it was read at.
pub struct Listed {
    /// The objects, in key order.
    pub items: Vec<Value>,
    /// The revision of the read: the list's `resourceVersion`.
    pub revision: i64,
}

/// Objects a list reads from the store at once, at most.
pub const LIST_CHUNK_KEYS: usize = 500;

/// Stored bytes past which a list's read from the store ends early.
pub const LIST_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// One bounded read of a listing.
pub struct Chunk {
    /// Each object with its store key and stored size, in key order.
    pub items: Vec<(String, Value, usize)>,
    /// The revision of the read.
    pub revision: i64,
    /// The store key of the last object read.
    pub last_key: Option<String>,
    /// Whether more objects follow.
    pub more: bool,
}

impl ObjectStore {
    /// Objects kept through `node`.
    pub fn new(node: Node) -> Self {
        Self { node, heads: Arc::default(), service_network: Arc::default() }
    }

    /// Sets the cluster's service network, which Service writes allocate
    /// from; the first setting holds.
    pub fn set_service_network(&self, network: ServiceNetwork) {
        let kept = *self.service_network.get_or_init(|| network);
        assert_eq!(kept, network, "a node has one service network");
    }

    /// The cluster's service network.
    ///
    /// # Errors
    /// 503 before it is settled at start.
    pub fn service_network(&self) -> Result<ServiceNetwork, ApiError> {
        self.service_network
            .get()
            .copied()
            .ok_or_else(|| ApiError::unavailable("the service network is not settled yet"))
    }

    /// The current object `name`.
    ///
    /// # Errors
    /// 404 when absent; store failures.
    pub async fn get(&self, t: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.node.linearize().await?;
        self.get_local(t, namespace, name)?.ok_or_else(|| ApiError::not_found(t.group, t.plural, name))
    }

    /// Object `name` as this node has it, without waiting for the leader.
    ///
    /// # Errors
    /// Store failures.
    pub fn get_local(&self, t: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Option<Value>, ApiError> {
        let request = RangeRequest { range: KeyRange::single(t.key(namespace, name)), ..RangeRequest::default() };
        let (_, found) = self.node.store().range(&request)?;
        found.kvs.first().map(|kv| decode(t, kv)).transpose()
    }

    /// Every object of the kind (in `namespace`, when given) as of store
    /// `revision` (0: the newest this node has).
    ///
    /// # Errors
    /// 410 when `revision` was compacted away; store failures.
    pub fn list_at(&self, t: &ResourceType, namespace: Option<&str>, revision: i64) -> Result<Listed, ApiError> {
        let request =
            RangeRequest { range: KeyRange::prefix(t.key_prefix(namespace)), revision, ..RangeRequest::default() };
        let (current, found) = self.node.store().range(&request)?;
        let items = found.kvs.iter().map(|kv| decode(t, kv)).collect::<Result<_, _>>()?;
        Ok(Listed { items, revision: if revision > 0 { revision } else { current } })
    }

    /// Waits until this node has every write acknowledged before now, so
    /// that reads of its own replica see them.
    ///
    /// # Errors
    /// The cluster has no leader to confirm with.
    pub async fn read_barrier(&self) -> Result<(), ApiError> {
        self.node.linearize().await?;
        Ok(())
    }

    /// The objects of the kind (in `namespace`, when given) after store key
    /// `after` (from the first when `None`), as of store `revision` (0: the
    /// newest this node has): at most [`LIST_CHUNK_KEYS`], fewer once they
    /// reach [`LIST_CHUNK_BYTES`].
    ///
    /// # Errors
    /// 410 when `revision` was compacted away; store failures.
    pub fn list_chunk(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        revision: i64,
        after: Option<&str>,
    ) -> Result<Chunk, ApiError> {
        let mut range = KeyRange::prefix(t.key_prefix(namespace));
        if let Some(after) = after {
            debug_assert!(after.as_bytes() >= range.key.as_slice());
            range.key = [after.as_bytes(), b"\0"].concat();
        }
        let (current, kvs, more) = self.node.store().range_page(&range, revision, LIST_CHUNK_KEYS, LIST_CHUNK_BYTES)?;
        let last_key = kvs.last().map(|kv| String::from_utf8_lossy(&kv.key).into_owned());
        let items = kvs
            .iter()
            .map(|kv| Ok((String::from_utf8_lossy(&kv.key).into_owned(), decode(t, kv)?, kv.value.len())))
            .collect::<Result<_, ApiError>>()?;
        Ok(Chunk { items, revision: if revision > 0 { revision } else { current }, last_key, more })
    }

    /// The bytes under `key` as this node has them, if any.
    ///
    /// # Errors
    /// Store failures.
    pub fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, ApiError> {
        let request = RangeRequest { range: KeyRange::single(key.to_owned()), ..RangeRequest::default() };
        Ok(self.node.store().range(&request)?.1.kvs.into_iter().next().map(|kv| kv.value))
    }

    /// The keys under `prefix` as this node has them, in order (no values
    /// read).
    ///
    /// # Errors
    /// Store failures.
    pub fn raw_keys(&self, prefix: &str) -> Result<Vec<String>, ApiError> {
        let request = RangeRequest { range: KeyRange::prefix(prefix), keys_only: true, ..RangeRequest::default() };
        let (_, found) = self.node.store().range(&request)?;
        Ok(found.kvs.into_iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect())
    }

    /// Writes `value` under `key`.
    ///
    /// # Errors
    /// Store failures; values over the store's limit.
    pub async fn put_raw(&self, key: &str, value: Vec<u8>) -> Result<(), ApiError> {
        let put = PutRequest { key: key.as_bytes().to_vec(), value, ..PutRequest::default() };
        self.run(TxnRequest { compare: Vec::new(), success: vec![Operation::Put(put)], failure: Vec::new() }).await?;
        Ok(())
    }

    /// The bytes under `key`, first writing `make()` there if nothing is
    /// (the first writer wins when several race).
    ///
    /// # Errors
    /// Store failures.
    pub async fn get_or_create_raw(&self, key: &str, make: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>, ApiError> {
        let read = |store: &engenho_store::Mvcc| -> Result<Option<Vec<u8>>, ApiError> {
            let request = RangeRequest { range: KeyRange::single(key.to_owned()), ..RangeRequest::default() };
            Ok(store.range(&request)?.1.kvs.into_iter().next().map(|kv| kv.value))
        };
        self.node.linearize().await?;
        if let Some(value) = read(self.node.store())? {
            return Ok(value);
        }
        let absent = Compare {
            range: KeyRange::single(key.to_owned()),
            result: CompareResult::Equal,
            target: CompareTarget::Create(0),
        };
        let put = PutRequest { key: key.as_bytes().to_vec(), value: make(), ..PutRequest::default() };
        self.run(TxnRequest { compare: vec![absent], success: vec![Operation::Put(put)], failure: Vec::new() }).await?;
        self.node.linearize().await?;
        read(self.node.store())?.ok_or_else(|| ApiError::internal(format!("{key} vanished after it was written")))
    }

    /// The node the objects are kept through.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The store, for watches.
    pub fn store(&self) -> std::sync::Arc<engenho_store::Mvcc> {
        self.node.store().clone()
    }

    /// Creates `object`, filling in what the server owns (uid, creation
    /// time, generation, a generated name); answers it as stored.
    ///
    /// # Errors
    /// 409 when the name is taken; 404 when the namespace does not exist.
    pub async fn create(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        object: Value,
        write: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let dry_run = write.dry_run;
        let mut object = t.pruned(object);
        if let Some(namespace) = namespace.filter(|_| t.namespaced) {
            self.require_namespace(t, namespace).await?;
        }
        let (mut name, generated_from) = assign_name(t, &mut object)?;
        match (t.group, t.plural) {
            ("", "namespaces") => prepare_namespace(&mut object, &name),
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                super::custom::prepare_definition(&mut object, &name)?;
            }
            ("", "resourcequotas") | ("policy", "poddisruptionbudgets") => {
                // Their status is the server's to count.
                if let Some(fields) = object.as_object_mut() {
                    fields.remove("status");
                }
            }
            _ => {}
        }
        super::defaults::apply(t, &mut object);
        let uid = new_uid();
        if (t.group, t.plural) == ("batch", "jobs") {
            super::defaults::job_selector(&mut object, &uid);
        }
        super::validation::validate(t, &object)?;
        let metadata = metadata_mut(&mut object);
        metadata.insert("uid".into(), json!(uid));
        metadata.insert("creationTimestamp".into(), json!(now()));
        metadata.remove("resourceVersion");
        metadata.remove("deletionTimestamp");
        if object.get("spec").is_some() {
            metadata_mut(&mut object).insert("generation".into(), json!(1));
        }
        if let Some(manager) = &write.manager {
            let existing_entries = object.pointer("/metadata/managedFields").is_some();
            if !existing_entries {
                apply::record_update(None, &mut object, manager, t.api_version, &now());
            }
        }
        let mut attempt = 1;
        loop {
            let error = match self.create_named(t, namespace, &name, &mut object, dry_run).await {
                Err(error) => error,
                created => return created,
            };
            let Some(next) = name_after(&error, generated_from.as_deref(), attempt) else { return Err(error) };
            attempt += 1;
            name = next;
            metadata_mut(&mut object).insert("name".into(), json!(name));
            if (t.group, t.plural) == ("", "namespaces") {
                // Its `kubernetes.io/metadata.name` label follows the name.
                prepare_namespace(&mut object, &name);
            }
        }
    }

    /// Stores `object`, prepared by [`ObjectStore::create`], as `name`; answers
    /// it as stored (taken out of `object`). On an error `object` stays.
    ///
    /// # Errors
    /// 409 when the name is taken.
    async fn create_named(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        object: &mut Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if is_service(t) {
            return self.create_service(t, namespace, name, object, dry_run).await;
        }
        let key = t.key(namespace, name);
        if dry_run {
            if self.get_local(t, namespace, name)?.is_some() {
                return Err(ApiError::already_exists(t.group, t.plural, name));
            }
            return Ok(std::mem::take(object));
        }
        let revision = self
            .guarded_put(t, absent(&key), key, object)
            .await?
            .ok_or_else(|| ApiError::already_exists(t.group, t.plural, name))?;
        set_resource_version(object, revision);
        Ok(std::mem::take(object))
    }

    /// Replaces object `name` with `object`. A `resourceVersion` in it must
    /// match the stored one.
    ///
    /// # Errors
    /// 404 when absent; 409 on a stale `resourceVersion`.
    pub async fn update(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        object: Value,
        write: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let dry_run = write.dry_run;
        let mut object = t.pruned(object);
        let current = self.get(t, namespace, name).await?;
        let current_version = resource_version(&current)?;
        let expected = match object.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
            Some(text) if !text.is_empty() => {
                let expected: i64 = text
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("metadata.resourceVersion: Invalid value: {text:?}")))?;
                if expected != current_version {
                    return Err(ApiError::conflict(t.group, t.plural, name));
                }
                expected
            }
            _ => current_version,
        };
        carry_server_fields(&current, &mut object);
        super::defaults::apply(t, &mut object);
        super::validation::validate(t, &object)?;
        super::validation::validate_update(t, &current, &object)?;
        if (t.group, t.plural) == ("apiextensions.k8s.io", "customresourcedefinitions") {
            super::custom::check_group(&object, name)?;
        }
        let plan = match is_service(t) {
            true => self.settle_service(t, name, Some(&current), &mut object)?,
            false => services::Plan::default(),
        };
        if let Some(manager) = &write.manager {
            apply::record_update(Some(&current), &mut object, manager, t.api_version, &now());
        }
        if dry_run {
            set_resource_version(&mut object, current_version);
            return Ok(object);
        }
        if finalized(t, &object) {
            if !self.delete_at(t, namespace, name, expected, &held_keys(t, &current)).await? {
                return Err(ApiError::conflict(t.group, t.plural, name));
            }
            set_resource_version(&mut object, expected);
            return Ok(object);
        }
        let unchanged = Compare {
            range: KeyRange::single(t.key(namespace, name)),
            result: CompareResult::Equal,
            target: CompareTarget::Mod(expected),
        };
        let mut guards = vec![unchanged];
        let mut changes = Vec::new();
        claim_and_release(&t.key(namespace, name), &plan, &mut guards, &mut changes);
        let revision = self
            .guarded_write(t, guards, t.key(namespace, name), &object, changes)
            .await?
            .ok_or_else(|| ApiError::conflict(t.group, t.plural, name))?;
        set_resource_version(&mut object, revision);
        Ok(object)
    }

    /// Deletes object `name` as `options` ask. An object with finalizers
    /// (or, with `Foreground`/`Orphan` propagation, the finalizer that asks
    /// for it) is only marked: `deletionTimestamp` is set, and it goes when
    /// its last finalizer is removed. A pod bound to a node is marked with
    /// its grace period, for the node to finish.
    ///
    /// # Errors
    /// 404 when absent; 409 when a precondition fails.
    pub async fn delete(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        for attempt in 1..=WRITE_ATTEMPTS {
            let current = self.get(t, namespace, name).await?;
            options.check_preconditions(t, name, &current)?;
            let version = resource_version(&current)?;
            let mut marked = current.clone();
            let finalizers = metadata_mut(&mut marked)
                .entry("finalizers")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            let mut finalizers: Vec<Value> = finalizers;
            if let Some(finalizer) = options.propagation.finalizer()
                && !finalizers.iter().any(|f| f == finalizer)
            {
                finalizers.push(json!(finalizer));
            }
            let grace = pod_grace_period(t, &current, options.grace_period_seconds);
            let holds_contents = has_namespace_finalizers(t, &current);
            if finalizers.is_empty() && grace == 0 && !holds_contents {
                if dry_run {
                    return Ok(current);
                }
                match self.delete_at(t, namespace, name, version, &held_keys(t, &current)).await? {
                    true => return Ok(current),
                    false if attempt < WRITE_ATTEMPTS => continue,
                    false => return Err(ApiError::conflict(t.group, t.plural, name)),
                }
            }
            if current.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
                && current.pointer("/metadata/finalizers").cloned().unwrap_or_else(|| json!([])) == json!(finalizers)
            {
                return Ok(current);
            }
            let metadata = metadata_mut(&mut marked);
            if finalizers.is_empty() {
                metadata.remove("finalizers");
            } else {
                metadata.insert("finalizers".into(), json!(finalizers));
            }
            if holds_contents {
                marked["status"]["phase"] = json!("Terminating");
            }
            let metadata = metadata_mut(&mut marked);
            if metadata.get("deletionTimestamp").is_none_or(Value::is_null) {
                let when = k8s_openapi::chrono::Utc::now() + k8s_openapi::chrono::Duration::seconds(grace);
                let when = when.to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Secs, true);
                metadata.insert("deletionTimestamp".into(), json!(when));
                metadata.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            if dry_run {
                return Ok(marked);
            }
            match self.write_at(t, namespace, name, version, &marked).await? {
                Some(revision) => {
                    set_resource_version(&mut marked, revision);
                    return Ok(marked);
                }
                None if attempt < WRITE_ATTEMPTS => continue,
                None => return Err(ApiError::conflict(t.group, t.plural, name)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Deletes `name` if it is still at `version`, and with it the
    /// allocation keys `held` (what the object at `version` holds);
    /// whether it was.
    async fn delete_at(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        version: i64,
        held: &std::collections::BTreeSet<String>,
    ) -> Result<bool, ApiError> {
        let key = t.key(namespace, name);
        let unchanged = Compare {
            range: KeyRange::single(key.clone()),
            result: CompareResult::Equal,
            target: CompareTarget::Mod(version),
        };
        let mut success = vec![Operation::Delete(DeleteRequest { range: KeyRange::single(key), prev_kv: false })];
        success.extend(held.iter().map(|released| {
            Operation::Delete(DeleteRequest { range: KeyRange::single(released.clone()), prev_kv: false })
        }));
        let txn = TxnRequest { compare: vec![unchanged], success, failure: Vec::new() };
        Ok(self.run(txn).await?.is_some())
    }

    /// Writes `object` as `name` if it is still at `version`; the new
    /// revision, or `None` if it changed meanwhile.
    async fn write_at(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        version: i64,
        object: &Value,
    ) -> Result<Option<i64>, ApiError> {
        let key = t.key(namespace, name);
        let unchanged = Compare {
            range: KeyRange::single(key.clone()),
            result: CompareResult::Equal,
            target: CompareTarget::Mod(version),
        };
        self.guarded_put(t, unchanged, key, object).await
    }

    /// The labels and deletion state of namespace `name` as this node has
    /// it, read without decoding the rest of the object; decoded once per
    /// stored version.
    ///
    /// # Errors
    /// Store failures; a stored namespace that is not one.
    pub fn namespace_head(&self, name: &str) -> Result<Option<Arc<NamespaceHead>>, ApiError> {
        let request = RangeRequest { range: KeyRange::single(namespace_key(name)), ..Default::default() };
        let (_, found) = self.node.store().range(&request)?;
        let Some(found) = found.kvs.first() else { return Ok(None) };
        let cached = self.heads.lock().expect("namespace heads lock").get(name).cloned();
        if let Some((revision, head)) = cached
            && revision == found.mod_revision
        {
            return Ok(Some(head));
        }
        let stored: StoredNamespace = serde_json::from_slice(&found.value)
            .map_err(|e| ApiError::internal(format!("stored namespace {name} is not one: {e}")))?;
        let head = Arc::new(NamespaceHead {
            labels: stored.metadata.labels.unwrap_or_default(),
            terminating: stored.metadata.deletion_timestamp.is_some(),
        });
        let mut heads = self.heads.lock().expect("namespace heads lock");
        if heads.len() >= NAMESPACE_HEADS_MAX {
            heads.clear();
        }
        heads.insert(name.to_owned(), (found.mod_revision, head.clone()));
        Ok(Some(head))
    }

    /// 404 unless `namespace` exists; 403 while it is being deleted.
    async fn require_namespace(&self, t: &ResourceType, namespace: &str) -> Result<(), ApiError> {
        let head = self.namespace_head(namespace)?.ok_or_else(|| ApiError::not_found("", "namespaces", namespace))?;
        if head.terminating {
            return Err(ApiError::forbidden_on(
                format!(
                    "{} is forbidden: unable to create new content in namespace {namespace} because it is being \
                     terminated",
                    t.plural
                ),
                t.group,
                t.plural,
                "",
            ));
        }
        Ok(())
    }

    /// Changes object `name` with `change` (which says whether it changed
    /// anything), retrying when the object moves underneath; `false` if it
    /// is gone or `change` left it alone.
    ///
    /// # Errors
    /// Store failures, or a conflict that outlasts the retries.
    pub async fn modify(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        mut change: impl FnMut(&mut Value) -> bool,
    ) -> Result<bool, ApiError> {
        for attempt in 1..=WRITE_ATTEMPTS {
            let mut object = match self.get(t, namespace, name).await {
                Ok(object) => object,
                Err(error) if error.code == 404 => return Ok(false),
                Err(error) => return Err(error),
            };
            if !change(&mut object) {
                return Ok(false);
            }
            match self.update(t, namespace, name, object, &WriteOptions::default()).await {
                Ok(_) => return Ok(true),
                Err(error) if error.code == 404 => return Ok(false),
                Err(error) if error.reason == "Conflict" && attempt < WRITE_ATTEMPTS => continue,
                Err(error) => return Err(error),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Removes `finalizer` from object `name`; the object goes if it was
    /// being deleted and this was its last finalizer.
    ///
    /// # Errors
    /// As [`ObjectStore::modify`].
    pub async fn remove_finalizer(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        finalizer: &str,
    ) -> Result<(), ApiError> {
        self.modify(t, namespace, name, |object| {
            let Some(finalizers) = object.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) else {
                return false;
            };
            let before = finalizers.len();
            finalizers.retain(|f| f.as_str() != Some(finalizer));
            finalizers.len() != before
        })
        .await
        .map(|_| ())
    }

    /// Whether the cluster has a leader this node knows of: whether the
    /// store can take writes.
    pub fn has_leader(&self) -> bool {
        self.node.raft_status().leader.is_some()
    }

    /// Whether this node leads the cluster now.
    pub fn is_leader(&self) -> bool {
        let status = self.node.raft_status();
        status.leader == Some(status.id)
    }

    /// Puts `object` under `key` if `guard` holds; the revision written, or
    /// `None` when the guard failed.
    async fn guarded_put(
        &self,
        t: &ResourceType,
        guard: Compare,
        key: String,
        object: &Value,
    ) -> Result<Option<i64>, ApiError> {
        self.guarded_write(t, vec![guard], key, object, Vec::new()).await
    }

    /// Puts `object` under `key`, and makes `changes` in the same
    /// transaction, if every guard holds; the revision written, or `None`
    /// when a guard failed.
    async fn guarded_write(
        &self,
        t: &ResourceType,
        guards: Vec<Compare>,
        key: String,
        object: &Value,
        changes: Vec<Operation>,
    ) -> Result<Option<i64>, ApiError> {
        let value = t.stored_bytes(object).map_err(|e| ApiError::internal(e.to_string()))?;
        if value.len() > OBJECT_BYTES_MAX {
            let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            return Err(ApiError::object_too_large(t.group, t.kind, name));
        }
        let put = PutRequest { key: key.into_bytes(), value, ..PutRequest::default() };
        let mut success = vec![Operation::Put(put)];
        success.extend(changes);
        self.run(TxnRequest { compare: guards, success, failure: Vec::new() }).await
    }

    /// Settles a Service written over `old` (see [`services::settle`]).
    fn settle_service(
        &self,
        t: &ResourceType,
        name: &str,
        old: Option<&Value>,
        service: &mut Value,
    ) -> Result<services::Plan, ApiError> {
        let network = self.service_network()?;
        let taken = |key: &str| self.get_raw(key).map_or(true, |found| found.is_some());
        services::settle(&network, old, service, &mut rand::rng(), taken).map_err(|refusal| match refusal {
            services::Refusal::Invalid(causes) => ApiError::invalid(t.group, t.kind, name, causes),
            services::Refusal::RangeFull(what) => {
                ApiError::internal(format!("failed to allocate a {what}: range is full"))
            }
            services::Refusal::Internal(message) => ApiError::internal(message),
        })
    }

    /// Creates a Service and claims its cluster IP and node ports in the
    /// same transaction; a pick that another write took meanwhile is made
    /// again, up to [`ALLOCATION_ATTEMPTS`] times.
    async fn create_service(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        object: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = t.key(namespace, name);
        for _ in 0..ALLOCATION_ATTEMPTS {
            let mut service = object.clone();
            let plan = self.settle_service(t, name, None, &mut service)?;
            if dry_run {
                if self.get_local(t, namespace, name)?.is_some() {
                    return Err(ApiError::already_exists(t.group, t.plural, name));
                }
                return Ok(service);
            }
            let mut guards = vec![absent(&key)];
            let mut changes = Vec::new();
            claim_and_release(&key, &plan, &mut guards, &mut changes);
            if let Some(revision) = self.guarded_write(t, guards, key.clone(), &service, changes).await? {
                set_resource_version(&mut service, revision);
                return Ok(service);
            }
            self.node.linearize().await?;
            if self.get_raw(&key)?.is_some() {
                return Err(ApiError::already_exists(t.group, t.plural, name));
            }
        }
        Err(ApiError::conflict(t.group, t.plural, name))
    }

    /// Runs a transaction; its revision if the guards held.
    async fn run(&self, txn: TxnRequest) -> Result<Option<i64>, ApiError> {
        let applied = self.node.write(Command::Txn(txn)).await?;
        match applied.outcome {
            Ok(Outcome::Txn(result)) if result.succeeded => Ok(Some(applied.revision)),
            Ok(Outcome::Txn(_)) => Ok(None),
            Ok(other) => Err(ApiError::internal(format!("unexpected store answer {other:?}"))),
            Err(refused) => Err(ApiError::bad_request(refused.to_string())),
        }
    }
}

/// What writes into a namespace need to know of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceHead {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Whether it is being deleted.
    pub terminating: bool,
}

/// The fields of a stored namespace [`NamespaceHead`] reads.
#[derive(serde::Deserialize)]
struct StoredNamespace {
    #[serde(default)]
    metadata: StoredNamespaceMetadata,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct StoredNamespaceMetadata {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    deletion_timestamp: Option<serde::de::IgnoredAny>,
}

/// How a write is made: for real or not, and by which field manager.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// `dryRun=All`: check and answer, store nothing.
    pub dry_run: bool,
    /// The field manager that owns what the write changes; `None` leaves
    /// `managedFields` as the object carries them.
    pub manager: Option<String>,
    /// Who writes, for the checks that depend on it.
    pub author: Option<super::auth::UserInfo>,
}

/// Times a delete is retried when the object changes under it.
const WRITE_ATTEMPTS: usize = 5;

/// Times a Service create picks its addresses and ports again after a
/// concurrent write took one of them.
const ALLOCATION_ATTEMPTS: usize = 16;

/// Whether `t` is the Service kind, whose writes allocate.
fn is_service(t: &ResourceType) -> bool {
    (t.group, t.plural) == ("", "services")
}

/// The allocation keys `object` holds (none unless it is a Service).
fn held_keys(t: &ResourceType, object: &Value) -> std::collections::BTreeSet<String> {
    if is_service(t) { services::held(object) } else { std::collections::BTreeSet::new() }
}

/// A guard that `key` does not exist.
fn absent(key: &str) -> Compare {
    Compare { range: KeyRange::single(key.to_owned()), result: CompareResult::Equal, target: CompareTarget::Create(0) }
}

/// Adds to a write of the object under `owner` the claims of `plan`
/// (each guarded on being free) and its releases.
fn claim_and_release(owner: &str, plan: &services::Plan, guards: &mut Vec<Compare>, changes: &mut Vec<Operation>) {
    let value = serde_json::to_vec(&json!({"owner": owner})).expect("JSON encodes");
    for claim in &plan.claims {
        guards.push(absent(claim));
        let put = PutRequest { key: claim.as_bytes().to_vec(), value: value.clone(), ..PutRequest::default() };
        changes.push(Operation::Put(put));
    }
    for released in &plan.releases {
        changes.push(Operation::Delete(DeleteRequest { range: KeyRange::single(released.clone()), prev_kv: false }));
    }
}

/// How an object's dependents go with it (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// The object goes now; its dependents after it.
    #[default]
    Background,
    /// The object stays (finalizer `foregroundDeletion`) until its
    /// blocking dependents are gone.
    Foreground,
    /// The object stays (finalizer `orphan`) until its dependents are freed
    /// of their owner references.
    Orphan,
}

impl Propagation {
    fn finalizer(self) -> Option<&'static str> {
        match self {
            Self::Background => None,
            Self::Foreground => Some("foregroundDeletion"),
            Self::Orphan => Some("orphan"),
        }
    }
}

/// What a DELETE asks (`DeleteOptions`, from the body and the query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// How dependents go.
    pub propagation: Propagation,
    /// Seconds a pod gets to stop; `None`: its own setting.
    pub grace_period_seconds: Option<i64>,
    /// The object must have this uid.
    pub precondition_uid: Option<String>,
    /// The object must be at this resource version.
    pub precondition_resource_version: Option<String>,
}

impl DeleteOptions {
    /// Reads a `DeleteOptions` body (may be empty) and the query's
    /// `propagationPolicy`, `gracePeriodSeconds` and `orphanDependents`.
    ///
    /// # Errors
    /// 400 for a malformed body or an unknown policy.
    pub fn parse(body: &[u8], query: &std::collections::HashMap<String, String>) -> Result<Self, ApiError> {
        let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("the DeleteOptions could not be decoded: {e}")))?
        };
        let policy = query
            .get("propagationPolicy")
            .map(String::as_str)
            .or_else(|| body.get("propagationPolicy").and_then(Value::as_str));
        let orphan = query
            .get("orphanDependents")
            .map(|v| v == "true")
            .or_else(|| body.get("orphanDependents").and_then(Value::as_bool));
        let propagation = match (policy, orphan) {
            (Some("Background"), _) | (None, None | Some(false)) => Propagation::Background,
            (Some("Foreground"), _) => Propagation::Foreground,
            (Some("Orphan"), _) | (None, Some(true)) => Propagation::Orphan,
            (Some(other), _) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        };
        let grace_period_seconds = match query.get("gracePeriodSeconds") {
            Some(text) => {
                Some(text.parse().map_err(|_| ApiError::bad_request("gracePeriodSeconds must be an integer"))?)
            }
            None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
        };
        let preconditions = body.get("preconditions");
        let text = |field: &str| preconditions.and_then(|p| p.get(field)).and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            propagation,
            grace_period_seconds,
            precondition_uid: text("uid"),
            precondition_resource_version: text("resourceVersion"),
        })
    }

    fn check_preconditions(&self, t: &ResourceType, name: &str, object: &Value) -> Result<(), ApiError> {
        for (field, expected) in
            [("uid", &self.precondition_uid), ("resourceVersion", &self.precondition_resource_version)]
        {
            let Some(expected) = expected else { continue };
            let actual = object.pointer(&format!("/metadata/{field}")).and_then(Value::as_str).unwrap_or_default();
            if actual != expected {
                let mut error = ApiError::conflict(t.group, t.plural, name);
                error.message = format!(
                    "Precondition failed: {} in precondition: {expected}, {} in object meta: {actual}",
                    if field == "uid" { "UID" } else { "ResourceVersion" },
                    if field == "uid" { "UID" } else { "ResourceVersion" }
                );
                return Err(error);
            }
        }
        Ok(())
    }
}

/// Seconds a pod bound to a node gets to stop when deleted; 0 for every
/// other object (and for pods no node runs yet).
fn pod_grace_period(t: &ResourceType, object: &Value, requested: Option<i64>) -> i64 {
    let bound = object.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    if (t.group, t.plural) != ("", "pods") || !bound {
        return 0;
    }
    let own = object.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
    requested.unwrap_or(own).max(0)
}

/// Whether an update leaves an object that is being deleted with nothing
/// to wait for, so that it must go.
fn finalized(t: &ResourceType, object: &Value) -> bool {
    let deleting = object.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
    let finalizers = object.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    let grace = object.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
    deleting
        && !finalizers
        && !has_namespace_finalizers(t, object)
        && (grace == 0 || (t.group, t.plural) != ("", "pods"))
}

/// Whether `object` is a namespace whose contents must go before it
/// (`spec.finalizers`).
fn has_namespace_finalizers(t: &ResourceType, object: &Value) -> bool {
    (t.group, t.plural) == ("", "namespaces")
        && object.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty())
}

/// The strings of the array at `pointer` in `value` (none if it is absent
/// or not an array; items that are not strings are skipped).
pub fn strings_at(value: &Value, pointer: &str) -> Vec<String> {
    let items = value.pointer(pointer).and_then(Value::as_array).into_iter().flatten();
    items.filter_map(Value::as_str).map(str::to_owned).collect()
}

/// The store key of namespace `name`.
pub fn namespace_key(name: &str) -> String {
    format!("/registry/core/namespaces/{name}")
}

/// An object of kind `t` as stored, with its `resourceVersion` set from the
/// store, at the version `t` serves.
pub(super) fn decode(t: &ResourceType, kv: &KeyValue) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::internal(format!("stored object {} is not JSON: {e}", String::from_utf8_lossy(&kv.key)))
    })?;
    set_resource_version(&mut object, kv.mod_revision);
    t.present(&mut object);
    Ok(object)
}

fn set_resource_version(object: &mut Value, revision: i64) {
    metadata_mut(object).insert("resourceVersion".into(), json!(revision.to_string()));
}

/// The stored `resourceVersion` of an object read from the store.
fn resource_version(object: &Value) -> Result<i64, ApiError> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| ApiError::internal("stored object without resourceVersion"))
}

/// The object's `metadata` map, created if missing.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"].as_object_mut().expect("metadata was just made an object")
}

/// Keeps what only the server sets (uid, creation time) and advances the
/// generation when the spec changed.
fn carry_server_fields(current: &Value, object: &mut Value) {
    let spec_changed = current.get("spec") != object.get("spec");
    let generation = current.pointer("/metadata/generation").and_then(Value::as_i64);
    let metadata = metadata_mut(object);
    for field in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        match current.pointer(&format!("/metadata/{field}")) {
            Some(value) => metadata.insert(field.into(), value.clone()),
            None => metadata.remove(field),
        };
    }
    metadata.remove("resourceVersion");
    if let Some(generation) = generation {
        metadata.insert("generation".into(), json!(if spec_changed { generation + 1 } else { generation }));
    }
}

/// What every new namespace has: its name as a label, the `kubernetes`
/// finalizer (its contents go before it), phase Active.
fn prepare_namespace(object: &mut Value, name: &str) {
    let labels = metadata_mut(object).entry("labels").or_insert_with(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    let spec = object.as_object_mut().map(|o| o.entry("spec").or_insert_with(|| json!({})));
    if let Some(spec) = spec.and_then(Value::as_object_mut) {
        let finalizers = spec.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(finalizers) = finalizers.as_array_mut()
            && !finalizers.iter().any(|f| f == "kubernetes")
        {
            finalizers.push(json!("kubernetes"));
        }
    }
    object["status"] = json!({"phase": "Active"});
}

/// Attempts at creating an object whose name is generated: the first
/// name and up to seven more when one is taken, as Kubernetes makes them.
const GENERATED_NAME_ATTEMPTS: u32 = 8;

/// The longest part of a `generateName` kept: a generated name stays
/// within 63 characters, as Kubernetes' name generator keeps it.
const GENERATED_PREFIX_MAX: usize = 58;

/// The object's name, generated from `generateName` when it has none, and
/// the prefix it was generated from, if it was.
fn assign_name(t: &ResourceType, object: &mut Value) -> Result<(String, Option<String>), ApiError> {
    let metadata = metadata_mut(object);
    let name = metadata.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let (name, generated_from) = if name.is_empty() {
        let Some(prefix) = metadata.get("generateName").and_then(Value::as_str).filter(|p| !p.is_empty()) else {
            let cause = Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: name or generateName is required".into(),
                field: "metadata.name".into(),
            };
            return Err(ApiError::invalid(t.group, t.kind, "", vec![cause]));
        };
        let prefix = prefix.to_owned();
        let generated = generated_name(&prefix);
        metadata.insert("name".into(), json!(generated));
        (generated, Some(prefix))
    } else {
        (name, None)
    };
    if let Err(message) = validate_name(t, &name) {
        let cause =
            Cause { reason: "FieldValueInvalid".into(), message: message.clone(), field: "metadata.name".into() };
        let mut error = ApiError::invalid(t.group, t.kind, &name, vec![cause]);
        error.message =
            format!("{} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": {message}", t.kind);
        return Err(error);
    }
    Ok((name, generated_from))
}

/// The name to try next after creating an object failed with `error` at
/// attempt `attempt`: a newly generated one when the name taken was
/// generated from `generated_from` and attempts are left (Kubernetes'
/// `RetryGenerateName`), else none.
fn name_after(error: &ApiError, generated_from: Option<&str>, attempt: u32) -> Option<String> {
    let prefix = generated_from?;
    (error.reason == "AlreadyExists" && attempt < GENERATED_NAME_ATTEMPTS).then(|| generated_name(prefix))
}

/// A name generated from `prefix` (its first [`GENERATED_PREFIX_MAX`]
/// bytes, cut at a character boundary) and five random characters.
fn generated_name(prefix: &str) -> String {
    let mut end = prefix.len().min(GENERATED_PREFIX_MAX);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &prefix[..end], random_suffix())
}

/// Checks a name: an RFC 1123 label for namespaces, a path segment for RBAC
/// kinds (`system:discovery`) and APIServices, a subdomain otherwise.
pub fn validate_name(t: &ResourceType, name: &str) -> Result<(), String> {
    // RBAC objects and APIServices (`v1.` names the core group's) need only
    // be path segments.
    if matches!(t.group, "rbac.authorization.k8s.io" | "apiregistration.k8s.io") {
        return match name {
            "" | "." | ".." => Err(format!("may not be '{name}'")),
            _ if name.contains(['/', '%']) => Err(format!("may not contain '/' or '%' ({name})")),
            _ => Ok(()),
        };
    }
    if t.plural != "namespaces" {
        return subdomain(name);
    }
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(alphanumeric)
        && name.ends_with(alphanumeric)
        && name.chars().all(|c| alphanumeric(c) || c == '-');
    if valid {
        return Ok(());
    }
    Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and \
         end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        .into())
}

/// Checks a lowercase RFC 1123 subdomain (`example.com`), as Kubernetes
/// words the refusal.
pub fn subdomain(name: &str) -> Result<(), String> {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let parts_ok = |part: &str| {
        !part.is_empty()
            && part.starts_with(alphanumeric)
            && part.ends_with(alphanumeric)
            && part.chars().all(|c| alphanumeric(c) || c == '-')
    };
    if name.len() <= 253 && name.split('.').all(parts_ok) {
        return Ok(());
    }
    Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must \
         start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        .into())
}

/// Five characters as Kubernetes appends to a `generateName`.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

/// A random (version 4) UUID.
fn new_uid() -> String {
    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut uid = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            uid.push('-');
        }
        uid.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        uid.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    uid
}

/// The current time as Kubernetes writes it (RFC 3339, seconds, UTC).
pub fn now() -> String {
    k8s_openapi::chrono::Utc::now().to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resources::Registry;

    #[test]
    fn names_follow_rfc_1123() {
        let registry = Registry::built_in();
        let pods = registry.find("", "v1", "pods").expect("pods");
        let namespaces = registry.find("", "v1", "namespaces").expect("namespaces");
        for good in ["a", "web-1", "a.b.c", "0abc"] {
            assert!(validate_name(pods, good).is_ok(), "{good}");
        }
        for bad in ["", "Web", "-a", "a-", "a..b", "a_b", &"x".repeat(254)] {
            assert!(validate_name(pods, bad).is_err(), "{bad}");
        }
        assert!(validate_name(namespaces, "a.b").is_err());
        assert!(validate_name(namespaces, &"x".repeat(64)).is_err());
    }

    #[test]
    fn generated_names_keep_within_63_characters() {
        // Goal: as Kubernetes' generator, a long prefix is cut to 58 bytes
        // (at a character boundary) before the five random characters.
        let name = generated_name("web-");
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert!(name[4..].bytes().all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)), "{name}");
        let long = generated_name(&"a".repeat(70));
        assert_eq!((long.len(), &long[..58]), (63, "a".repeat(58).as_str()));
        let wide = generated_name(&format!("{}é", "a".repeat(57)));
        assert!(wide.starts_with(&"a".repeat(57)) && wide.len() == 62, "{wide}");
    }

    #[test]
    fn a_taken_generated_name_is_generated_anew_up_to_eight_attempts() {
        // Goal: Kubernetes' RetryGenerateName: only an AlreadyExists on a
        // name the server generated is retried, with a new name, and the
        // eighth attempt's refusal is the answer.
        let taken = ApiError::already_exists("", "pods", "web-bbbbb");
        let next = name_after(&taken, Some("web-"), 1).expect("a new name");
        assert!(next.starts_with("web-") && next.len() == 9, "{next}");
        assert!(name_after(&taken, Some("web-"), GENERATED_NAME_ATTEMPTS - 1).is_some());
        assert_eq!(name_after(&taken, Some("web-"), GENERATED_NAME_ATTEMPTS), None);
        assert_eq!(name_after(&taken, None, 1), None, "a name the client gave is not changed");
        let refused = ApiError::conflict("", "pods", "web-bbbbb");
        assert_eq!(name_after(&refused, Some("web-"), 1), None);
    }

    #[test]
    fn uids_are_version_4() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert!(matches!(&uid[19..20], "8" | "9" | "a" | "b"), "{uid}");
        let groups: Vec<usize> = uid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(uid.chars().all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)), "{uid}");
        assert_ne!(uid, new_uid());
    }

    #[test]
    fn updates_keep_server_fields_and_count_spec_generations() {
        let current = json!({"metadata": {"uid": "u", "creationTimestamp": "t", "generation": 2, "resourceVersion": "9"}, "spec": {"a": 1}});
        let mut same = json!({"metadata": {"uid": "forged", "resourceVersion": "9"}, "spec": {"a": 1}});
        carry_server_fields(&current, &mut same);
        assert_eq!(same["metadata"], json!({"uid": "u", "creationTimestamp": "t", "generation": 2}));
        let mut changed = json!({"metadata": {}, "spec": {"a": 2}});
        carry_server_fields(&current, &mut changed);
        assert_eq!(changed["metadata"]["generation"], 3);
    }
}
