//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
//! strategic merge patch (merge keys of the built-in kinds).

use serde_json::{Map, Value};

use super::objects::OBJECT_BYTES_MAX;
use super::status::ApiError;

/// The patch formats the server takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
}

impl PatchKind {
    /// The format of a `Content-Type`, if it is one of the patch types.
    pub fn from_media_type(media: &str) -> Option<Self> {
        match media.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            _ => None,
        }
    }
}

/// Operations one JSON patch may hold (as kube-apiserver allows).
pub const JSON_PATCH_OPERATIONS_MAX: usize = 10_000;

/// Bytes the `copy` operations of one JSON patch may add up to, encoded
/// (as kube-apiserver's JSON patch copy limit): copying a field onto itself
/// doubles it, so without this bound a few hundred operations would fill
/// memory.
pub const JSON_PATCH_COPY_BYTES_MAX: usize = 3 * 1024 * 1024;

/// Element comparisons one strategic merge of a keyed list may take (each
/// patch element is looked up among the list's elements), so that a patch
/// cannot spend minutes of CPU merging two long lists.
pub const LIST_MERGE_COMPARISONS_MAX: usize = 10_000_000;

/// Why a patch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch does not apply to the object (a missing path, a failed
    /// `test`, a malformed operation).
    #[error("{0}")]
    NotApplicable(String),
    /// A JSON patch with more than [`JSON_PATCH_OPERATIONS_MAX`] operations.
    #[error("The allowed maximum operations in a JSON patch is {JSON_PATCH_OPERATIONS_MAX}, got {count}")]
    TooManyOperations {
        /// The operations the patch holds.
        count: usize,
    },
    /// The `copy` operations would add more than
    /// [`JSON_PATCH_COPY_BYTES_MAX`].
    #[error(
        "Unable to complete the copy, the accumulated size increase of copy is {size}, exceeding the limit {JSON_PATCH_COPY_BYTES_MAX}"
    )]
    CopiedTooMuch {
        /// The bytes the copies would have added.
        size: usize,
    },
    /// The patched object would exceed [`OBJECT_BYTES_MAX`]; found while
    /// the patch applies, before the object grows past the bound.
    #[error("Too long: may not be more than {OBJECT_BYTES_MAX} bytes")]
    ResultTooLarge,
}

impl From<String> for PatchError {
    fn from(message: String) -> Self {
        Self::NotApplicable(message)
    }
}

impl PatchError {
    /// The Status for this refusal of a patch to `kind` object `name`:
    /// 413 for too many operations, 422 otherwise.
    pub fn status(&self, group: &str, kind: &str, name: &str) -> ApiError {
        match self {
            Self::TooManyOperations { .. } => ApiError::entity_too_large(self.to_string()),
            Self::ResultTooLarge => ApiError::object_too_large(group, kind, name),
            Self::CopiedTooMuch { .. } => ApiError::unprocessable(self.to_string()),
            Self::NotApplicable(message) => {
                ApiError::unprocessable(format!("{kind} \"{name}\" is invalid: the patch does not apply: {message}"))
            }
        }
    }
}

/// Applies `patch` (already decoded) of `kind` to `target`; the result is
/// at most [`OBJECT_BYTES_MAX`] encoded.
///
/// # Errors
/// Why the patch does not apply, or that its result would be too large.
pub fn apply(kind: PatchKind, target: Value, patch: &Value) -> Result<Value, PatchError> {
    let patched = match kind {
        PatchKind::Merge => merge(target, patch),
        PatchKind::Json => json_patch(target, patch)?,
        PatchKind::Strategic => strategic(target, patch, "")?,
    };
    check_object_size(&patched)?;
    Ok(patched)
}

/// Refuses `object` if it encodes to more than [`OBJECT_BYTES_MAX`].
///
/// # Errors
/// [`PatchError::ResultTooLarge`].
pub fn check_object_size(object: &Value) -> Result<(), PatchError> {
    encoded_len_within(object, OBJECT_BYTES_MAX).map(|_| ()).ok_or(PatchError::ResultTooLarge)
}

/// The length of `value` encoded as JSON, if it is at most `limit`;
/// counting stops past `limit`, so this costs at most `limit` bytes of work
/// and no memory.
pub fn encoded_len_within(value: &Value, limit: usize) -> Option<usize> {
    struct Counter {
        count: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.count += bytes.len();
            if self.count > self.limit { Err(std::io::Error::other("over the limit")) } else { Ok(bytes.len()) }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { count: 0, limit };
    serde_json::to_writer(&mut counter, value).ok()?;
    debug_assert!(counter.count <= limit);
    Some(counter.count)
}

/// RFC 7386: objects merge key by key, `null` deletes, anything else replaces.
fn merge(target: Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else { return patch.clone() };
    let mut target = match target {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            let current = target.remove(key).unwrap_or(Value::Null);
            target.insert(key.clone(), merge(current, value));
        }
    }
    Value::Object(target)
}

/// The encoded size of a document while a JSON patch changes it: an upper
/// bound kept per operation, so that a patch whose result would be too
/// large stops before it is built.
struct SizeBudget {
    size: usize,
    copied: usize,
}

impl SizeBudget {
    fn new(target: &Value) -> Result<Self, PatchError> {
        let size = encoded_len_within(target, OBJECT_BYTES_MAX).ok_or(PatchError::ResultTooLarge)?;
        Ok(Self { size, copied: 0 })
    }

    /// Counts `value` (and its key) going in.
    fn grow(&mut self, path: &str, value: &Value) -> Result<(), PatchError> {
        let room = OBJECT_BYTES_MAX.saturating_sub(self.size);
        let added = encoded_len_within(value, room).ok_or(PatchError::ResultTooLarge)?;
        self.size += added + path.len() + 4;
        if self.size > OBJECT_BYTES_MAX {
            return Err(PatchError::ResultTooLarge);
        }
        Ok(())
    }

    /// Counts `value` being copied, against the copy bound and the size.
    fn copy(&mut self, path: &str, value: &Value) -> Result<(), PatchError> {
        let room = JSON_PATCH_COPY_BYTES_MAX - self.copied;
        let Some(copied) = encoded_len_within(value, room) else {
            let size = self.copied.saturating_add(encoded_len_within(value, usize::MAX).unwrap_or(usize::MAX));
            return Err(PatchError::CopiedTooMuch { size });
        };
        self.copied += copied;
        self.grow(path, value)
    }

    /// Counts `value` going out (at most what went in: a value still
    /// counted costs no more than the bound to measure).
    fn shrink(&mut self, value: &Value) {
        let removed = encoded_len_within(value, self.size).unwrap_or(self.size);
        self.size -= removed;
    }
}

/// RFC 6902 operations, in order; any failure leaves nothing applied.
fn json_patch(mut target: Value, patch: &Value) -> Result<Value, PatchError> {
    let operations = patch.as_array().ok_or_else(|| "a JSON patch must be an array of operations".to_owned())?;
    if operations.len() > JSON_PATCH_OPERATIONS_MAX {
        return Err(PatchError::TooManyOperations { count: operations.len() });
    }
    let mut budget = SizeBudget::new(&target)?;
    for (index, operation) in operations.iter().enumerate() {
        let field = |name: &str| operation.get(name).ok_or_else(|| format!("operation {index}: missing \"{name}\""));
        let op = field("op")?.as_str().ok_or_else(|| format!("operation {index}: \"op\" must be a string"))?;
        let path = field("path")?.as_str().ok_or_else(|| format!("operation {index}: \"path\" must be a string"))?;
        let failed = |why: String| format!("operation {index} ({op} {path}): {why}");
        match op {
            "add" => {
                let value = field("value")?;
                if let Some(replaced) = object_member(&target, path) {
                    budget.shrink(replaced);
                }
                budget.grow(path, value)?;
                add(&mut target, path, value.clone()).map_err(failed)?;
            }
            "remove" => budget.shrink(&remove(&mut target, path).map_err(failed)?),
            "replace" => {
                let value = field("value")?;
                budget.shrink(&remove(&mut target, path).map_err(failed)?);
                budget.grow(path, value)?;
                add(&mut target, path, value.clone()).map_err(failed)?;
            }
            "move" => {
                let from = field("from")?.as_str().ok_or_else(|| failed("\"from\" must be a string".into()))?;
                let value = remove(&mut target, from).map_err(failed)?;
                add(&mut target, path, value).map_err(failed)?;
            }
            "copy" => {
                let from = field("from")?.as_str().ok_or_else(|| failed("\"from\" must be a string".into()))?;
                let value = target.pointer(from).ok_or_else(|| failed(format!("{from} does not exist")))?;
                budget.copy(path, value)?;
                let value = value.clone();
                add(&mut target, path, value).map_err(failed)?;
            }
            "test" => {
                if target.pointer(path) != Some(field("value")?) {
                    return Err(failed("the value differs".into()).into());
                }
            }
            other => return Err(format!("operation {index}: unknown op {other:?}").into()),
        }
    }
    Ok(target)
}

/// Splits a JSON pointer into its parent pointer and last token (unescaped).
fn split_pointer(path: &str) -> Result<(&str, String), String> {
    if path.is_empty() {
        return Err("the whole document cannot be the target".into());
    }
    let cut = path.rfind('/').ok_or_else(|| format!("{path:?} is not a JSON pointer"))?;
    Ok((&path[..cut], path[cut + 1..].replace("~1", "/").replace("~0", "~")))
}

/// The member of an object that an `add` to `path` would replace.
fn object_member<'a>(target: &'a Value, path: &str) -> Option<&'a Value> {
    let (parent, token) = split_pointer(path).ok()?;
    target.pointer(parent)?.as_object()?.get(&token)
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (parent, token) = split_pointer(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(token, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            let index = if token == "-" { items.len() } else { array_index(&token, items.len() + 1)? };
            items.insert(index, value);
            Ok(())
        }
        Some(_) => Err(format!("{parent:?} is not an object or array")),
        None => Err(format!("{parent:?} does not exist")),
    }
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, token) = split_pointer(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&token).ok_or_else(|| format!("{path:?} does not exist")),
        Some(Value::Array(items)) => {
            let index = array_index(&token, items.len())?;
            Ok(items.remove(index))
        }
        _ => Err(format!("{path:?} does not exist")),
    }
}

fn array_index(token: &str, len: usize) -> Result<usize, String> {
    let index: usize = token.parse().map_err(|_| format!("{token:?} is not an array index"))?;
    if index < len { Ok(index) } else { Err(format!("index {index} is out of range")) }
}

/// The merge keys a list field of the built-in kinds may use, by field
/// name (the kinds' `patchMergeKey` tags; `ports` is keyed by
/// `containerPort` in containers and by `port` in services).
pub(crate) fn merge_keys(field: &str) -> &'static [&'static str] {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "webhooks"
        | "drivers" => &["name"],
        "readinessGates" => &["conditionType"],
        "ports" => &["containerPort", "port"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "hostAliases" => &["ip"],
        "topologySpreadConstraints" => &["topologyKey"],
        "conditions" => &["type"],
        "ownerReferences" => &["uid"],
        _ => &[],
    }
}

/// Strategic merge patch: as a merge patch, except that lists with a merge
/// key merge element by element, and the `$patch`, `$retainKeys`,
/// `$deleteFromPrimitiveList/` and `$setElementOrder/` directives apply.
fn strategic(target: Value, patch: &Value, field: &str) -> Result<Value, String> {
    match patch {
        Value::Object(patch) => {
            if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut replacement = patch.clone();
                replacement.remove("$patch");
                return Ok(Value::Object(replacement));
            }
            if patch.get("$patch").and_then(Value::as_str) == Some("delete") {
                return Ok(Value::Null);
            }
            let mut target = match target {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
                let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
                target.retain(|key, _| keep.contains(&key.as_str()));
            }
            for (key, value) in patch {
                if key == "$retainKeys" || key.starts_with("$setElementOrder/") || key == "$patch" {
                    continue;
                }
                if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
                    let doomed = value.as_array().cloned().unwrap_or_default();
                    if let Some(Value::Array(items)) = target.get_mut(list) {
                        items.retain(|item| !doomed.contains(item));
                    }
                    continue;
                }
                if value.is_null() {
                    target.remove(key);
                    continue;
                }
                let current = target.remove(key).unwrap_or(Value::Null);
                let merged = strategic(current, value, key)?;
                if !merged.is_null() {
                    target.insert(key.clone(), merged);
                }
            }
            Ok(Value::Object(target))
        }
        Value::Array(items) => match (merge_keys(field), target) {
            (keys, Value::Array(mut current)) if !keys.is_empty() => {
                if items.len().saturating_mul(current.len()) > LIST_MERGE_COMPARISONS_MAX {
                    return Err(format!(
                        "merging {} elements into the {} of {field} takes more than the \
                         {LIST_MERGE_COMPARISONS_MAX} comparisons one list merge may",
                        items.len(),
                        current.len()
                    ));
                }
                for item in items {
                    let Some((key, id)) = keys.iter().find_map(|key| Some((*key, item.get(*key)?.clone()))) else {
                        return Err(format!("an element of {field} lacks its merge key {}", keys.join(" or ")));
                    };
                    let position = current.iter().position(|existing| existing.get(key) == Some(&id));
                    let directive = item.get("$patch").and_then(Value::as_str);
                    match (position, directive) {
                        (Some(at), Some("delete")) => {
                            current.remove(at);
                        }
                        (None, Some("delete")) => {}
                        (Some(at), _) => {
                            let merged = strategic(current[at].take(), item, "")?;
                            current[at] = merged;
                        }
                        (None, _) => current.push(strategic(Value::Null, item, "")?),
                    }
                }
                Ok(Value::Array(current))
            }
            _ => Ok(Value::Array(items.iter().filter(|i| i.get("$patch").is_none()).cloned().collect::<Vec<_>>())),
        },
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::strategies::json_value;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let target = json!({"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]});
        let patch = json!({"a": "z", "c": {"f": null}, "list": [3]});
        assert_eq!(merge(target, &patch), json!({"a": "z", "c": {"d": "e"}, "list": [3]}));
    }

    #[test]
    fn json_patch_follows_rfc_6902() {
        let target = json!({"metadata": {"labels": {"a": "1"}}, "items": [1, 2, 3]});
        let patch = json!([
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "remove", "path": "/items/0"},
            {"op": "add", "path": "/items/-", "value": 4},
            {"op": "replace", "path": "/metadata/labels/a", "value": "9"},
            {"op": "copy", "from": "/items/0", "path": "/first"},
            {"op": "test", "path": "/first", "value": 2}
        ]);
        let patched = json_patch(target.clone(), &patch).expect("applies");
        assert_eq!(patched, json!({"metadata": {"labels": {"a": "9", "b/c": "2"}}, "items": [2, 3, 4], "first": 2}));
        let failing = json!([{"op": "test", "path": "/items/0", "value": 7}]);
        assert!(json_patch(target.clone(), &failing).is_err());
        assert!(json_patch(target, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }

    #[test]
    fn strategic_patch_merges_lists_by_key() {
        let target = json!({"spec": {"containers": [
            {"name": "app", "image": "a:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "side", "image": "s:1"}
        ], "tolerations": [{"key": "x"}]}});
        let patch = json!({"spec": {"containers": [
            {"name": "app", "image": "a:2"},
            {"name": "side", "$patch": "delete"},
            {"name": "new", "image": "n:1"}
        ], "$setElementOrder/containers": [{"name": "app"}, {"name": "new"}], "tolerations": [{"key": "y"}]}});
        let patched = strategic(target, &patch, "").expect("applies");
        assert_eq!(
            patched,
            json!({"spec": {"containers": [
                {"name": "app", "image": "a:2", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                {"name": "new", "image": "n:1"}
            ], "tolerations": [{"key": "y"}]}})
        );
        let removed = strategic(
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            "",
        )
        .expect("applies");
        assert_eq!(removed, json!({"metadata": {"finalizers": ["b"]}}));
    }

    /// A document whose `data` holds one string of `bytes` bytes.
    fn document_of(bytes: usize) -> Value {
        json!({"metadata": {"name": "big"}, "data": {"seed": "x".repeat(bytes)}})
    }

    #[test]
    fn copies_that_double_the_document_stop_at_the_object_size() {
        let doubling: Vec<Value> =
            (0..64).map(|i| json!({"op": "copy", "from": "/data", "path": format!("/data/copy{i}")})).collect();
        let refused = json_patch(document_of(1024), &Value::Array(doubling));
        assert_eq!(refused, Err(PatchError::ResultTooLarge));
    }

    #[test]
    fn copied_bytes_are_bounded_even_when_removed_again() {
        let mut operations = Vec::new();
        for _ in 0..8 {
            operations.push(json!({"op": "copy", "from": "/data/seed", "path": "/data/copy"}));
            operations.push(json!({"op": "remove", "path": "/data/copy"}));
        }
        let refused = json_patch(document_of(512 * 1024), &Value::Array(operations));
        assert!(matches!(refused, Err(PatchError::CopiedTooMuch { size }) if size > JSON_PATCH_COPY_BYTES_MAX));
    }

    #[test]
    fn json_patches_have_an_operation_limit() {
        let test = json!({"op": "test", "path": "/metadata/name", "value": "big"});
        let operations = Value::Array(vec![test; JSON_PATCH_OPERATIONS_MAX + 1]);
        let refused = json_patch(document_of(1), &operations);
        assert_eq!(refused, Err(PatchError::TooManyOperations { count: JSON_PATCH_OPERATIONS_MAX + 1 }));
        let status = PatchError::TooManyOperations { count: 10_001 }.status("", "ConfigMap", "big");
        assert_eq!((status.code, status.reason), (413, "RequestEntityTooLarge"));
    }

    #[test]
    fn replacing_a_member_many_times_is_not_counted_as_growth() {
        let value = "y".repeat(256 * 1024);
        let operations: Vec<Value> =
            (0..12).map(|_| json!({"op": "add", "path": "/data/seed", "value": value})).collect();
        let patched = json_patch(document_of(1024), &Value::Array(operations)).expect("applies");
        assert_eq!(patched["data"]["seed"].as_str().map(str::len), Some(256 * 1024));
    }

    #[test]
    fn every_kind_of_patch_refuses_a_result_over_the_object_size() {
        let big = json!({"data": {"huge": "z".repeat(OBJECT_BYTES_MAX)}});
        for (kind, patch) in [
            (PatchKind::Merge, big.clone()),
            (PatchKind::Strategic, big),
            (PatchKind::Json, json!([{"op": "add", "path": "/data/huge", "value": "z".repeat(OBJECT_BYTES_MAX)}])),
        ] {
            assert_eq!(apply(kind, document_of(1), &patch), Err(PatchError::ResultTooLarge), "{kind:?}");
        }
        let status = PatchError::ResultTooLarge.status("", "ConfigMap", "big");
        assert_eq!(status.code, 422);
        assert!(status.message.starts_with("ConfigMap \"big\" is invalid: []: Too long: may not be more than"));
    }

    #[test]
    fn merging_two_long_keyed_lists_is_refused() {
        let elements = |count: usize| -> Vec<Value> { (0..count).map(|i| json!({"name": format!("c{i}")})).collect() };
        let target = json!({"spec": {"containers": elements(4_000)}});
        let patch = json!({"spec": {"containers": elements(4_000)}});
        let refused = strategic(target.clone(), &patch, "");
        assert!(refused.is_err_and(|why| why.contains("comparisons one list merge may")));
        let small = json!({"spec": {"containers": elements(10)}});
        assert!(strategic(target, &small, "").is_ok());
    }

    proptest! {
        #[test]
        fn no_patch_input_panics(target in json_value(), patch in json_value()) {
            for kind in [PatchKind::Merge, PatchKind::Json, PatchKind::Strategic] {
                let _ = apply(kind, target.clone(), &patch);
            }
        }

        #[test]
        fn a_merge_patch_of_itself_is_idempotent(target in json_value(), patch in json_value()) {
            let once = merge(target, &patch);
            prop_assert_eq!(merge(once.clone(), &patch), once);
        }
    }
}
