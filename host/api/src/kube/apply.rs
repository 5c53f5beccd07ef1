//! Field ownership (`metadata.managedFields`, FieldsV1) and server-side
//! apply: each manager owns the fields it set; an apply that would change a
//! field another manager owns is a conflict unless forced.
//!
//! A field set is a FieldsV1 tree: `f:<name>` for object fields, `k:<json>`
//! for list items with merge keys, `v:<json>` for items of primitive sets,
//! `.` for an item itself; an empty object is a leaf.

use serde_json::{Map, Value, json};

use super::patch::{self, merge_keys};

/// One path through a field set, e.g. `["f:spec", "f:replicas"]`.
pub type FieldPath = Vec<String>;

/// Fields no manager owns: identity and server-kept metadata.
const UNOWNED_METADATA: [&str; 8] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
];

/// The fields `object` sets, as a FieldsV1 tree.
pub fn field_set(object: &Value) -> Value {
    let mut set = Map::new();
    if let Value::Object(fields) = object {
        for (name, value) in fields {
            if name == "apiVersion" || name == "kind" {
                continue;
            }
            if name == "metadata" {
                let mut metadata = Map::new();
                if let Value::Object(meta) = value {
                    for (field, value) in meta {
                        if !UNOWNED_METADATA.contains(&field.as_str()) {
                            metadata.insert(format!("f:{field}"), fields_of(field, value));
                        }
                    }
                }
                if !metadata.is_empty() {
                    set.insert("f:metadata".into(), Value::Object(metadata));
                }
                continue;
            }
            set.insert(format!("f:{name}"), fields_of(name, value));
        }
    }
    Value::Object(set)
}

fn fields_of(name: &str, value: &Value) -> Value {
    match value {
        Value::Object(fields) => {
            let set: Map<String, Value> =
                fields.iter().map(|(field, value)| (format!("f:{field}"), fields_of(field, value))).collect();
            Value::Object(set)
        }
        Value::Array(items) => {
            let keys = merge_keys(name);
            let keyed: Option<Map<String, Value>> = items
                .iter()
                .map(|item| {
                    let key = keys.iter().find(|k| item.get(**k).is_some())?;
                    let id = json!({ *key: item[*key] });
                    let mut inner = match fields_of("", item) {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    };
                    inner.insert(".".into(), json!({}));
                    Some((format!("k:{id}"), Value::Object(inner)))
                })
                .collect();
            match keyed {
                Some(set) if !keys.is_empty() => Value::Object(set),
                // Lists without merge keys are atomic: owned as a whole.
                _ => json!({}),
            }
        }
        _ => json!({}),
    }
}

/// Every leaf path of a field set (an item's `.` makes the item a leaf).
pub fn leaves(set: &Value) -> Vec<FieldPath> {
    fn walk(set: &Value, path: &mut FieldPath, out: &mut Vec<FieldPath>) {
        let Value::Object(children) = set else { return };
        if children.is_empty() || children.contains_key(".") {
            out.push(path.clone());
        }
        for (key, child) in children {
            if key == "." {
                continue;
            }
            path.push(key.clone());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    if let Value::Object(children) = set {
        for (key, child) in children {
            walk(child, &mut vec![key.clone()], &mut out);
        }
    }
    out
}

/// Whether `set` holds `path` as a leaf (or as an item with `.`).
pub fn contains(set: &Value, path: &[String]) -> bool {
    let mut node = set;
    for key in path {
        match node.get(key) {
            Some(child) => node = child,
            None => return false,
        }
    }
    node.as_object().is_some_and(|children| children.is_empty() || children.contains_key("."))
}

/// `set` with `path` removed, and parents left empty by it pruned.
pub fn remove(set: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else { return };
    let Some(children) = set.as_object_mut() else { return };
    if rest.is_empty() {
        children.remove(first);
        return;
    }
    if let Some(child) = children.get_mut(first) {
        remove(child, rest);
        if child.as_object().is_some_and(Map::is_empty) {
            children.remove(first);
        }
    }
}

/// `set` with `path` added.
pub fn insert(set: &mut Value, path: &[String]) {
    let mut node = set;
    for key in path {
        if !node.is_object() {
            *node = json!({});
        }
        node = node.as_object_mut().expect("made an object").entry(key.clone()).or_insert_with(|| json!({}));
    }
}

/// The value at `path` in `object`, if present.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut node = object;
    for key in path {
        node = if let Some(field) = key.strip_prefix("f:") {
            node.get(field)?
        } else if let Some(id) = key.strip_prefix("k:") {
            let id: Map<String, Value> = serde_json::from_str(id).ok()?;
            node.as_array()?.iter().find(|item| id.iter().all(|(k, v)| item.get(k) == Some(v)))?
        } else if let Some(value) = key.strip_prefix("v:") {
            let value: Value = serde_json::from_str(value).ok()?;
            node.as_array()?.iter().find(|item| **item == value)?
        } else {
            return None;
        };
    }
    Some(node)
}

/// Removes the value at `path` from `object`, if present, and the maps
/// left empty by that on the way up.
fn remove_value(object: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else { return };
    if let Some(field) = first.strip_prefix("f:") {
        let Some(map) = object.as_object_mut() else { return };
        if rest.is_empty() {
            map.remove(field);
            return;
        }
        if let Some(child) = map.get_mut(field) {
            remove_value(child, rest);
            if child.as_object().is_some_and(Map::is_empty) {
                map.remove(field);
            }
        }
    } else if let Some(id) = first.strip_prefix("k:") {
        let Ok(id) = serde_json::from_str::<Map<String, Value>>(id) else { return };
        let Some(items) = object.as_array_mut() else { return };
        let matches = |item: &Value| id.iter().all(|(k, v)| item.get(k) == Some(v));
        if rest.is_empty() {
            items.retain(|item| !matches(item));
        } else if let Some(item) = items.iter_mut().find(|item| matches(item)) {
            remove_value(item, rest);
        }
    }
}

/// One manager's entry in `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq)]
pub struct Managed {
    /// Who.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The API version the fields were set through.
    pub api_version: String,
    /// When.
    pub time: String,
    /// The fields, FieldsV1.
    pub fields: Value,
}

/// The managed-fields entries of `object`.
pub fn managed_of(object: &Value) -> Vec<Managed> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            Some(Managed {
                manager: entry.get("manager")?.as_str()?.to_owned(),
                operation: entry.get("operation").and_then(Value::as_str).unwrap_or("Update").to_owned(),
                api_version: entry.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned(),
                time: entry.get("time").and_then(Value::as_str).unwrap_or_default().to_owned(),
                fields: entry.get("fieldsV1").cloned().unwrap_or_else(|| json!({})),
            })
        })
        .collect()
}

/// Writes `entries` (dropping empty ones) into `object`.
fn set_managed(object: &mut Value, entries: Vec<Managed>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|entry| entry.fields.as_object().is_some_and(|f| !f.is_empty()))
        .map(|entry| {
            json!({
                "manager": entry.manager,
                "operation": entry.operation,
                "apiVersion": entry.api_version,
                "time": entry.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": entry.fields,
            })
        })
        .collect();
    let metadata = super::objects::metadata_mut(object);
    if list.is_empty() {
        metadata.remove("managedFields");
    } else {
        metadata.insert("managedFields".into(), Value::Array(list));
    }
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The API version it used.
    pub api_version: String,
    /// The field, as kubectl prints it (`.spec.replicas`).
    pub field: String,
}

/// Applies `config` as `manager` to `current` (`None`: the object does not
/// exist yet); the new object, or the conflicts when not `force`d.
/// `defaulted` is `config` with its kind's defaults filled in: an applied
/// value is compared with the stored one as the server would store it, so
/// a default inside an atomic list is no change.
///
/// # Errors
/// The conflicts, when other managers own fields the apply would change.
pub fn apply(
    current: Option<&Value>,
    (config, defaulted): (&Value, &Value),
    manager: &str,
    api_version: &str,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let applied = field_set(config);
    let Some(current) = current else {
        let mut created = config.clone();
        set_managed(&mut created, vec![owned(manager, "Apply", api_version, now, applied)]);
        return Ok(created);
    };
    let mut entries = managed_of(current);
    let previous = entries
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply")
        .map(|e| e.fields.clone())
        .unwrap_or_else(|| json!({}));
    let mut conflicts = Vec::new();
    for path in leaves(&applied) {
        if value_at(current, &path) == value_at(defaulted, &path) {
            continue;
        }
        for entry in entries.iter_mut().filter(|e| e.manager != manager) {
            if contains(&entry.fields, &path) {
                if force {
                    remove(&mut entry.fields, &path);
                } else {
                    conflicts.push(Conflict {
                        manager: entry.manager.clone(),
                        api_version: entry.api_version.clone(),
                        field: display_path(&path),
                    });
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let mut merged =
        patch::apply(patch::PatchKind::Strategic, current.clone(), config).unwrap_or_else(|_| config.clone());
    // Fields this manager applied before, applies no more, and nobody else
    // owns, go away.
    for path in leaves(&previous) {
        let kept = contains(&applied, &path)
            || entries.iter().any(|e| !(e.manager == manager && e.operation == "Apply") && contains(&e.fields, &path));
        if !kept {
            remove_value(&mut merged, &path);
        }
    }
    entries.retain(|e| !(e.manager == manager && e.operation == "Apply"));
    entries.push(owned(manager, "Apply", api_version, now, applied));
    set_managed(&mut merged, entries);
    Ok(merged)
}

/// Records an ordinary write (create, update, patch) by `manager`: the
/// fields it changed become its own and no one else's.
pub fn record_update(previous: Option<&Value>, updated: &mut Value, manager: &str, api_version: &str, now: &str) {
    let mut entries = previous.map(managed_of).unwrap_or_default();
    let new_fields = field_set(updated);
    let changed: Vec<FieldPath> = leaves(&new_fields)
        .into_iter()
        .filter(|path| previous.is_none_or(|p| value_at(p, path) != value_at(updated, path)))
        .collect();
    let removed: Vec<FieldPath> = previous
        .map(|p| leaves(&field_set(p)).into_iter().filter(|path| value_at(updated, path).is_none()).collect())
        .unwrap_or_default();
    for entry in &mut entries {
        for path in changed.iter().chain(&removed) {
            if entry.manager != manager || entry.operation != "Update" {
                remove(&mut entry.fields, path);
            }
        }
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| e.manager == manager && e.operation == "Update") {
            Some(entry) => {
                for path in &changed {
                    insert(&mut entry.fields, path);
                }
                entry.time = now.to_owned();
            }
            None => {
                let mut fields = json!({});
                for path in &changed {
                    insert(&mut fields, path);
                }
                entries.push(owned(manager, "Update", api_version, now, fields));
            }
        }
    }
    for path in &removed {
        for entry in &mut entries {
            remove(&mut entry.fields, path);
        }
    }
    set_managed(updated, entries);
}

fn owned(manager: &str, operation: &str, api_version: &str, now: &str, fields: Value) -> Managed {
    Managed {
        manager: manager.to_owned(),
        operation: operation.to_owned(),
        api_version: api_version.to_owned(),
        time: now.to_owned(),
        fields,
    }
}

/// `.spec.containers[name="app"].image`, as the API server prints paths.
fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for key in path {
        if let Some(field) = key.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(id) = key.strip_prefix("k:") {
            let id: Map<String, Value> = serde_json::from_str(id).unwrap_or_default();
            let terms: Vec<String> = id.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", terms.join(",")));
        } else if let Some(value) = key.strip_prefix("v:") {
            out.push_str(&format!("[{value}]"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `apply` of a config whose kind has no defaults.
    fn apply_alike(
        current: Option<&Value>,
        config: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, Vec<Conflict>> {
        apply(current, (config, config), manager, "apps/v1", force, "t")
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
        })
    }

    #[test]
    fn field_sets_key_lists_by_merge_key() {
        let set = field_set(&deployment(2, "a:1"));
        assert_eq!(
            set,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}
            })
        );
        let path: Vec<String> = ["f:spec", "f:template", "f:spec", "f:containers", "k:{\"name\":\"app\"}", "f:image"]
            .map(String::from)
            .to_vec();
        assert!(contains(&set, &path));
        assert_eq!(value_at(&deployment(2, "a:1"), &path), Some(&json!("a:1")));
        assert_eq!(display_path(&path), ".spec.template.spec.containers[name=\"app\"].image");
    }

    #[test]
    fn applies_conflict_unless_forced_and_share_equal_values() {
        let created = apply_alike(None, &deployment(2, "a:1"), "alice", false).expect("create");
        let same = apply_alike(Some(&created), &deployment(2, "a:1"), "bob", false).expect("shared");
        assert_eq!(managed_of(&same).len(), 2);
        let conflicts = apply_alike(Some(&same), &deployment(3, "a:1"), "bob", false).expect_err("conflict");
        assert_eq!(conflicts.len(), 1);
        assert_eq!((conflicts[0].manager.as_str(), conflicts[0].field.as_str()), ("alice", ".spec.replicas"));
        let forced = apply_alike(Some(&same), &deployment(3, "a:1"), "bob", true).expect("forced");
        assert_eq!(forced["spec"]["replicas"], 3);
        let alice = managed_of(&forced).into_iter().find(|m| m.manager == "alice").expect("alice");
        assert!(!contains(&alice.fields, &["f:spec".to_owned(), "f:replicas".to_owned()]));
    }

    #[test]
    fn fields_a_manager_stops_applying_are_removed() {
        let created = apply_alike(None, &deployment(2, "a:1"), "alice", false).expect("create");
        let mut smaller = deployment(2, "a:1");
        smaller["metadata"]["labels"] = json!({});
        smaller["metadata"].as_object_mut().expect("metadata").remove("labels");
        let applied = apply_alike(Some(&created), &smaller, "alice", false).expect("apply");
        assert!(applied.pointer("/metadata/labels/app").is_none(), "{applied}");
    }

    #[test]
    fn updates_take_over_the_fields_they_change() {
        let created = apply_alike(None, &deployment(2, "a:1"), "alice", false).expect("create");
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(4);
        record_update(Some(&created), &mut scaled, "kubectl-scale", "apps/v1", "t");
        let entries = managed_of(&scaled);
        let replicas = ["f:spec".to_owned(), "f:replicas".to_owned()];
        assert!(contains(&entries.iter().find(|e| e.manager == "kubectl-scale").expect("scale").fields, &replicas));
        assert!(!contains(&entries.iter().find(|e| e.manager == "alice").expect("alice").fields, &replicas));
        let conflicts = apply_alike(Some(&scaled), &deployment(2, "a:1"), "alice", false).expect_err("c");
        assert_eq!(conflicts[0].manager, "kubectl-scale");
    }
}
