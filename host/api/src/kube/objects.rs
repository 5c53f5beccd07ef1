//! Kubernetes objects in the replicated store: one JSON value per key, its
//! `resourceVersion` the store revision that last wrote it.

use engenho_mesh::Node;
use engenho_store::{
    Command, Compare, CompareResult, CompareTarget, DeleteRequest, KeyRange, KeyValue, Operation, Outcome, PutRequest,
    RangeRequest, TxnRequest,
};
use serde_json::{Map, Value, json};

use super::resources::ResourceType;
use super::status::{ApiError, Cause};

/// Reads and writes objects of every kind through one node.
#[derive(Clone)]
pub struct ObjectStore {
    node: Node,
}

/// A list of objects and the store revision it was read at.
pub struct Listed {
    /// The objects, in key order.
    pub items: Vec<Value>,
    /// The revision of the read: the list's `resourceVersion`.
    pub revision: i64,
}

impl ObjectStore {
    /// Objects kept through `node`.
    pub fn new(node: Node) -> Self {
        Self { node }
    }

    /// The current object `name`.
    ///
    /// # Errors
    /// 404 when absent; store failures.
    pub async fn get(&self, t: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.node.linearize().await?;
        self.get_local(t, namespace, name)?.ok_or_else(|| ApiError::not_found(t.group, t.plural, name))
    }

    fn get_local(&self, t: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Option<Value>, ApiError> {
        let request = RangeRequest { range: KeyRange::single(t.key(namespace, name)), ..RangeRequest::default() };
        let (_, found) = self.node.store().range(&request)?;
        found.kvs.first().map(decode).transpose()
    }

    /// Every object of the kind (in `namespace`, when given), now.
    ///
    /// # Errors
    /// Store failures.
    pub async fn list(&self, t: &ResourceType, namespace: Option<&str>) -> Result<Listed, ApiError> {
        self.node.linearize().await?;
        self.list_at(t, namespace, 0)
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
        let items = found.kvs.iter().map(decode).collect::<Result<_, _>>()?;
        Ok(Listed { items, revision: if revision > 0 { revision } else { current } })
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
        mut object: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if let Some(namespace) = namespace.filter(|_| t.namespaced) {
            self.require_namespace(namespace).await?;
        }
        let name = assign_name(t, &mut object)?;
        let metadata = metadata_mut(&mut object);
        metadata.insert("uid".into(), json!(new_uid()));
        metadata.insert("creationTimestamp".into(), json!(now()));
        metadata.remove("resourceVersion");
        metadata.remove("deletionTimestamp");
        if object.get("spec").is_some() {
            metadata_mut(&mut object).insert("generation".into(), json!(1));
        }
        let key = t.key(namespace, &name);
        if dry_run {
            if self.get_local(t, namespace, &name)?.is_some() {
                return Err(ApiError::already_exists(t.group, t.plural, &name));
            }
            return Ok(object);
        }
        let absent = Compare {
            range: KeyRange::single(key.clone()),
            result: CompareResult::Equal,
            target: CompareTarget::Create(0),
        };
        let revision = self
            .guarded_put(absent, key, &object)
            .await?
            .ok_or_else(|| ApiError::already_exists(t.group, t.plural, &name))?;
        set_resource_version(&mut object, revision);
        Ok(object)
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
        mut object: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
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
        if dry_run {
            set_resource_version(&mut object, current_version);
            return Ok(object);
        }
        let unchanged = Compare {
            range: KeyRange::single(t.key(namespace, name)),
            result: CompareResult::Equal,
            target: CompareTarget::Mod(expected),
        };
        let revision = self
            .guarded_put(unchanged, t.key(namespace, name), &object)
            .await?
            .ok_or_else(|| ApiError::conflict(t.group, t.plural, name))?;
        set_resource_version(&mut object, revision);
        Ok(object)
    }

    /// Deletes object `name`; answers it as it was.
    ///
    /// # Errors
    /// 404 when absent.
    pub async fn delete(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get(t, namespace, name).await?;
        if dry_run {
            return Ok(current);
        }
        let key = t.key(namespace, name);
        let unchanged = Compare {
            range: KeyRange::single(key.clone()),
            result: CompareResult::Equal,
            target: CompareTarget::Mod(resource_version(&current)?),
        };
        let txn = TxnRequest {
            compare: vec![unchanged],
            success: vec![Operation::Delete(DeleteRequest { range: KeyRange::single(key), prev_kv: false })],
            failure: Vec::new(),
        };
        if self.run(txn).await?.is_none() {
            return Err(ApiError::conflict(t.group, t.plural, name));
        }
        Ok(current)
    }

    /// 404 unless `namespace` exists.
    async fn require_namespace(&self, namespace: &str) -> Result<(), ApiError> {
        let request =
            RangeRequest { range: KeyRange::single(namespace_key(namespace)), count_only: true, ..Default::default() };
        let (_, found) = self.node.store().range(&request)?;
        if found.count == 0 {
            return Err(ApiError::not_found("", "namespaces", namespace));
        }
        Ok(())
    }

    /// Puts `object` under `key` if `guard` holds; the revision written, or
    /// `None` when the guard failed.
    async fn guarded_put(&self, guard: Compare, key: String, object: &Value) -> Result<Option<i64>, ApiError> {
        let value = serde_json::to_vec(object).map_err(|e| ApiError::internal(e.to_string()))?;
        let put = PutRequest { key: key.into_bytes(), value, ..PutRequest::default() };
        self.run(TxnRequest { compare: vec![guard], success: vec![Operation::Put(put)], failure: Vec::new() }).await
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

/// The store key of namespace `name`.
pub fn namespace_key(name: &str) -> String {
    format!("/registry/core/namespaces/{name}")
}

/// An object as stored, with its `resourceVersion` set from the store.
fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::internal(format!("stored object {} is not JSON: {e}", String::from_utf8_lossy(&kv.key)))
    })?;
    set_resource_version(&mut object, kv.mod_revision);
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
    for field in ["uid", "creationTimestamp"] {
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

/// The object's name, generated from `generateName` when it has none.
fn assign_name(t: &ResourceType, object: &mut Value) -> Result<String, ApiError> {
    let metadata = metadata_mut(object);
    let name = metadata.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let name = if name.is_empty() {
        let Some(prefix) = metadata.get("generateName").and_then(Value::as_str).filter(|p| !p.is_empty()) else {
            let cause = Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: name or generateName is required".into(),
                field: "metadata.name".into(),
            };
            return Err(ApiError::invalid(t.group, t.kind, "", vec![cause]));
        };
        let generated = format!("{prefix}{}", random_suffix());
        metadata.insert("name".into(), json!(generated));
        generated
    } else {
        name
    };
    if let Err(message) = validate_name(t, &name) {
        let cause =
            Cause { reason: "FieldValueInvalid".into(), message: message.clone(), field: "metadata.name".into() };
        let mut error = ApiError::invalid(t.group, t.kind, &name, vec![cause]);
        error.message =
            format!("{} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": {message}", t.kind);
        return Err(error);
    }
    Ok(name)
}

/// Checks a name: an RFC 1123 label for namespaces, a subdomain otherwise.
pub fn validate_name(t: &ResourceType, name: &str) -> Result<(), String> {
    let label_only = t.plural == "namespaces";
    let max = if label_only { 63 } else { 253 };
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let parts_ok = |part: &str| {
        !part.is_empty()
            && part.starts_with(alphanumeric)
            && part.ends_with(alphanumeric)
            && part.chars().all(|c| alphanumeric(c) || c == '-')
    };
    let valid = name.len() <= max && if label_only { parts_ok(name) } else { name.split('.').all(parts_ok) };
    if valid {
        return Ok(());
    }
    Err(if label_only {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and \
         end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            .into()
    } else {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must \
         start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            .into()
    })
}

/// Five characters as Kubernetes appends to a `generateName`.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

/// A random (version 4) UUID.
fn new_uid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
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
    fn uids_are_version_4() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
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
