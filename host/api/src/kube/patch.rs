//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
//! strategic merge patch (merge keys of the built-in kinds).

use serde_json::{Map, Value};

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

/// Applies `patch` (already decoded) of `kind` to `target`.
///
/// # Errors
/// A description of why the patch does not apply.
pub fn apply(kind: PatchKind, target: Value, patch: &Value) -> Result<Value, String> {
    match kind {
        PatchKind::Merge => Ok(merge(target, patch)),
        PatchKind::Json => json_patch(target, patch),
        PatchKind::Strategic => strategic(target, patch, ""),
    }
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

/// RFC 6902 operations, in order; any failure leaves nothing applied.
fn json_patch(mut target: Value, patch: &Value) -> Result<Value, String> {
    let operations = patch.as_array().ok_or("a JSON patch must be an array of operations")?;
    for (index, operation) in operations.iter().enumerate() {
        let field = |name: &str| operation.get(name).ok_or_else(|| format!("operation {index}: missing \"{name}\""));
        let op = field("op")?.as_str().ok_or_else(|| format!("operation {index}: \"op\" must be a string"))?;
        let path = field("path")?.as_str().ok_or_else(|| format!("operation {index}: \"path\" must be a string"))?;
        let failed = |why: String| format!("operation {index} ({op} {path}): {why}");
        match op {
            "add" => add(&mut target, path, field("value")?.clone()).map_err(failed)?,
            "remove" => {
                remove(&mut target, path).map_err(failed)?;
            }
            "replace" => {
                remove(&mut target, path).map_err(failed)?;
                add(&mut target, path, field("value")?.clone()).map_err(failed)?;
            }
            "move" | "copy" => {
                let from = field("from")?.as_str().ok_or_else(|| failed("\"from\" must be a string".into()))?;
                let value = if op == "move" {
                    remove(&mut target, from).map_err(failed)?
                } else {
                    target.pointer(from).cloned().ok_or_else(|| failed(format!("{from} does not exist")))?
                };
                add(&mut target, path, value).map_err(failed)?;
            }
            "test" => {
                if target.pointer(path) != Some(field("value")?) {
                    return Err(failed("the value differs".into()));
                }
            }
            other => return Err(format!("operation {index}: unknown op {other:?}")),
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
        | "resourceClaims" => &["name"],
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
