//! CustomResourceDefinitions: each definition's served versions become kinds
//! of the registry, checked against their structural schemas; a definition
//! is marked Established once served, and its objects go before it does.

use std::sync::Arc;

use engenho_control::{Action, Whole, everywhere};
use engenho_store::{KeyRange, RangeRequest};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use super::client::{ApiClient, PatchType, Refused};
use super::handlers::ApiState;
use super::objects::{ObjectStore, strings_at};
use super::resources::{CustomNames, PrinterColumn, Registry, ResourceType, ShapeError, SharedRegistry};
use super::status::{ApiError, Cause};

/// The finalizer that holds a definition until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Schemas nested deeper are refused.
const SCHEMA_DEPTH_MAX: usize = 64;

/// Checks a new definition: its name must be `<plural>.<group>` and
/// exactly one version its storage version; it gets the cleanup finalizer.
///
/// # Errors
/// 422 when the name does not match or the storage version is not one.
pub fn prepare_definition(definition: &mut Value, name: &str) -> Result<(), ApiError> {
    check_group(definition, name)?;
    let text = |pointer: &str| definition.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
    let expected = format!("{}.{}", text("/spec/names/plural"), text("/spec/group"));
    if name != expected {
        let cause = Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
            field: "metadata.name".into(),
        };
        return Err(ApiError::invalid("apiextensions.k8s.io", "CustomResourceDefinition", name, vec![cause]));
    }
    let versions = definition.pointer("/spec/versions").and_then(Value::as_array).map(Vec::as_slice);
    if let Err(why) = storage_version_of(versions.unwrap_or_default()) {
        let cause = Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {why}"),
            field: "spec.versions".into(),
        };
        return Err(ApiError::invalid("apiextensions.k8s.io", "CustomResourceDefinition", name, vec![cause]));
    }
    let finalizers = super::objects::metadata_mut(definition).entry("finalizers").or_insert_with(|| json!([]));
    if let Some(finalizers) = finalizers.as_array_mut()
        && !finalizers.iter().any(|f| f == CLEANUP_FINALIZER)
    {
        finalizers.push(json!(CLEANUP_FINALIZER));
    }
    Ok(())
}

/// Refuses a definition (named `name`) whose `spec.group` is not one a
/// custom kind may claim.
///
/// # Errors
/// 422 on `spec.group`.
pub fn check_group(definition: &Value, name: &str) -> Result<(), ApiError> {
    let group = definition.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default();
    let Some(why) = unclaimable_group(group) else { return Ok(()) };
    let cause = Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: \"{group}\": {why}"),
        field: "spec.group".into(),
    };
    Err(ApiError::invalid("apiextensions.k8s.io", "CustomResourceDefinition", name, vec![cause]))
}

/// Why custom kinds may not claim `group`, if they may not: objects are
/// stored under `/registry/<group>/<plural>/`, with `core` for the core
/// group, so `core` and the built-in groups would share the built-in kinds'
/// storage.
fn unclaimable_group(group: &str) -> Option<String> {
    if group == "core" {
        return Some("the core group's built-in kinds are stored under this name".into());
    }
    if Registry::built_in().groups().iter().any(|(built_in, _)| *built_in == group) {
        return Some("the group is served by the built-in kinds".into());
    }
    if !group.contains('.') {
        return Some("should be a domain with at least one dot".into());
    }
    None
}

/// The kinds a definition serves, one per served version; `Err` says why
/// its names are not accepted.
pub fn kinds_of(definition: &Value, taken: &Registry) -> Result<Vec<ResourceType>, String> {
    let spec = definition.get("spec").ok_or("the definition has no spec")?;
    fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
        value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
    }
    let (group, plural, kind) = (text(spec, "/group"), text(spec, "/names/plural"), text(spec, "/names/kind"));
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Err("spec.group, spec.names.plural and spec.names.kind are required".into());
    }
    if let Some(why) = unclaimable_group(group) {
        return Err(format!("spec.group {group:?}: {why}"));
    }
    if taken.find_plural(group, plural).is_some_and(|t| t.custom_schema().is_none()) {
        return Err(format!("{plural}.{group} is served by the built-in kinds"));
    }
    let singular = match text(spec, "/names/singular") {
        "" => kind.to_lowercase(),
        singular => singular.to_owned(),
    };
    let list_kind = match text(spec, "/names/listKind") {
        "" => format!("{kind}List"),
        list_kind => list_kind.to_owned(),
    };
    let versions = spec.get("versions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let storage_version = storage_version_of(versions)?;
    let mut kinds = Vec::new();
    for version in versions {
        if version.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let schema = version.pointer("/schema/openAPIV3Schema").cloned().unwrap_or_else(|| json!({"type": "object"}));
        check_depth(&schema, 0)?;
        let printer_columns = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| PrinterColumn {
                name: text(c, "/name").to_owned(),
                kind: text(c, "/type").to_owned(),
                json_path: text(c, "/jsonPath").to_owned(),
                description: text(c, "/description").to_owned(),
                priority: c.get("priority").and_then(Value::as_u64).unwrap_or(0).min(u64::from(u32::MAX)) as u32,
            })
            .collect();
        let names = CustomNames {
            group: group.to_owned(),
            version: text(version, "/name").to_owned(),
            kind: kind.to_owned(),
            list_kind: list_kind.clone(),
            plural: plural.to_owned(),
            singular: singular.clone(),
            namespaced: text(spec, "/scope") != "Cluster",
            short_names: strings_at(spec, "/names/shortNames"),
            in_category_all: strings_at(spec, "/names/categories").iter().any(|c| c == "all"),
            has_status: version.pointer("/subresources/status").is_some(),
            has_scale: version.pointer("/subresources/scale").is_some(),
            printer_columns,
            storage_version: storage_version.clone(),
        };
        kinds.push(ResourceType::custom(names, schema));
    }
    Ok(kinds)
}

/// The name of the one version marked `storage: true`.
fn storage_version_of(versions: &[Value]) -> Result<String, String> {
    let mut marked = versions.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true));
    match (marked.next(), marked.next()) {
        (Some(version), None) => version.get("name").and_then(Value::as_str).filter(|name| !name.is_empty()),
        _ => None,
    }
    .map(str::to_owned)
    .ok_or_else(|| "exactly one version must be the storage version (storage: true)".to_owned())
}

fn check_depth(schema: &Value, depth: usize) -> Result<(), String> {
    if depth > SCHEMA_DEPTH_MAX {
        return Err(format!("the schema nests deeper than {SCHEMA_DEPTH_MAX} levels"));
    }
    match schema {
        Value::Object(map) => map.values().try_for_each(|v| check_depth(v, depth + 1)),
        Value::Array(items) => items.iter().try_for_each(|v| check_depth(v, depth + 1)),
        _ => Ok(()),
    }
}

/// A custom kind's schema as OpenAPI documents carry it.
pub fn document_schema(schema: &Value) -> Value {
    let mut document = schema.clone();
    if let Some(object) = document.as_object_mut() {
        let properties = object.entry("properties").or_insert_with(|| json!({}));
        if let Some(properties) = properties.as_object_mut() {
            properties.insert(
                "apiVersion".into(),
                json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}),
            );
            properties.insert(
                "kind".into(),
                json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}),
            );
            properties.insert(
                "metadata".into(),
                json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                       "description": "Standard object's metadata."}),
            );
        }
        object.entry("type").or_insert_with(|| json!("object"));
    }
    document
}

/// Checks `object` against a custom kind's structural `schema`; the part
/// of it the schema knows (unknown fields pruned).
///
/// # Errors
/// The first place where the object departs from the schema.
pub fn validate(schema: &Value, object: &Value) -> Result<Value, ShapeError> {
    let Value::Object(fields) = object else {
        return Err(ShapeError { field: String::new(), message: "the object is not a JSON object".into() });
    };
    let mut known = Map::new();
    for field in ["apiVersion", "kind"] {
        if let Some(value) = fields.get(field) {
            known.insert(field.into(), value.clone());
        }
    }
    if let Some(metadata) = fields.get("metadata") {
        let typed = serde_path_to_error::deserialize::<_, ObjectMeta>(metadata.clone()).map_err(|error| {
            ShapeError { field: format!("metadata.{}", error.path()), message: error.into_inner().to_string() }
        })?;
        known.insert("metadata".into(), serde_json::to_value(typed).unwrap_or(Value::Null));
    }
    let rest: Map<String, Value> = fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Value::Object(checked) = check(schema, &Value::Object(rest), "")? {
        known.extend(checked);
    }
    Ok(Value::Object(known))
}

fn check(schema: &Value, value: &Value, path: &str) -> Result<Value, ShapeError> {
    let invalid = |message: String| ShapeError { field: path.to_owned(), message };
    let shown = || serde_json::to_string(value).unwrap_or_default();
    let flag = |name: &str| schema.get(name).and_then(Value::as_bool).unwrap_or(false);
    if value.is_null() {
        return Ok(Value::Null);
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let listed: Vec<String> = allowed.iter().map(|v| serde_json::to_string(v).unwrap_or_default()).collect();
        return Err(invalid(format!("{}: supported values: {}", shown(), listed.join(", "))));
    }
    if flag("x-kubernetes-int-or-string") {
        return match value {
            Value::String(_) => Ok(value.clone()),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value.clone()),
            _ => Err(invalid(format!("{}: {path} in body must be an integer or a string", shown()))),
        };
    }
    let wrong_type =
        |wanted: &str| invalid(format!("{}: {path} in body must be of type {wanted}: {}", shown(), type_name(value)));
    match schema.get("type").and_then(Value::as_str).unwrap_or_default() {
        "object" => {
            let Value::Object(fields) = value else { return Err(wrong_type("object")) };
            for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let Some(required) = required.as_str() else { continue };
                if fields.get(required).is_none_or(Value::is_null) {
                    return Err(ShapeError {
                        field: join(path, required),
                        message: format!("Required value: {} in body is required", join(path, required)),
                    });
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let mut known = Map::new();
            for (field, item) in fields {
                let here = join(path, field);
                match (properties.and_then(|p| p.get(field)), additional) {
                    (Some(property), _) => {
                        known.insert(field.clone(), check(property, item, &here)?);
                    }
                    (None, Some(extra)) if extra.is_object() => {
                        known.insert(field.clone(), check(extra, item, &here)?);
                    }
                    (None, Some(Value::Bool(true))) => {
                        known.insert(field.clone(), item.clone());
                    }
                    _ if flag("x-kubernetes-preserve-unknown-fields") => {
                        known.insert(field.clone(), item.clone());
                    }
                    _ => {}
                }
            }
            Ok(Value::Object(known))
        }
        "array" => {
            let Value::Array(items) = value else { return Err(wrong_type("array")) };
            let bound = |name: &str| schema.get(name).and_then(Value::as_u64).map(|n| n as usize);
            if bound("maxItems").is_some_and(|max| items.len() > max) {
                return Err(invalid(format!("{path} in body should have at most {:?} items", bound("maxItems"))));
            }
            let item_schema = schema.get("items").cloned().unwrap_or_else(|| json!({}));
            let checked = items
                .iter()
                .enumerate()
                .map(|(index, item)| check(&item_schema, item, &format!("{path}[{index}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Array(checked))
        }
        "string" => {
            let Value::String(text) = value else { return Err(wrong_type("string")) };
            let length = text.chars().count() as u64;
            if schema.get("maxLength").and_then(Value::as_u64).is_some_and(|max| length > max) {
                return Err(invalid(format!("{}: {path} in body is too long", shown())));
            }
            if schema.get("minLength").and_then(Value::as_u64).is_some_and(|min| length < min) {
                return Err(invalid(format!("{}: {path} in body is too short", shown())));
            }
            Ok(value.clone())
        }
        "integer" | "number" => {
            let integral = value.as_i64().is_some() || value.as_u64().is_some();
            let wanted = schema.get("type").and_then(Value::as_str).unwrap_or("number");
            if !value.is_number() || (wanted == "integer" && !integral) {
                return Err(wrong_type(wanted));
            }
            let number = value.as_f64().unwrap_or_default();
            if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
                && number < minimum
            {
                return Err(invalid(format!(
                    "{}: {path} in body should be greater than or equal to {minimum}",
                    shown()
                )));
            }
            if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
                && number > maximum
            {
                return Err(invalid(format!("{}: {path} in body should be less than or equal to {maximum}", shown())));
            }
            Ok(value.clone())
        }
        "boolean" if !value.is_boolean() => Err(wrong_type("boolean")),
        _ => Ok(value.clone()),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_owned() } else { format!("{path}.{field}") }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Serves the custom kinds of every definition: keeps the registry current
/// from a store watch and, on the leader, marks definitions Established,
/// removes the objects of deleted ones and keeps an APIService for every
/// served group version.
pub struct Definitions {
    objects: ObjectStore,
    registry: SharedRegistry,
    client: ApiClient,
    api_server: ApiClient,
}

/// The name the definitions' status loop writes as.
pub const STATUS_WRITER: &str = "apiextensions-controller";

/// The definitions `informer` holds.
fn cached_definitions(informer: &engenho_control::Informer) -> Vec<Value> {
    let cached = informer.list(&engenho_control::Filter::default());
    cached.iter().filter_map(|definition| definition.value().ok()).collect()
}

impl Definitions {
    /// Definitions kept in `objects`, served through `registry`; their
    /// status and clean-up written through `client` (as
    /// [`STATUS_WRITER`]), the APIServices of what is served through
    /// `api_server` (as the API server itself).
    pub fn new(objects: ObjectStore, registry: SharedRegistry, client: ApiClient, api_server: ApiClient) -> Self {
        Self { objects, registry, client, api_server }
    }

    /// Loads the definitions into the registry now.
    ///
    /// # Errors
    /// The store could not be read.
    pub fn load(&self) -> Result<i64, ApiError> {
        let (revision, definitions) = self.read()?;
        self.serve(&definitions);
        Ok(revision)
    }

    /// Follows the definitions until `stop` turns true: two loops on the
    /// controller runtime over the definitions' informer, one on every node
    /// (serving their kinds), one on the leader (their status, the
    /// APIServices, and the clean-up of deleted ones).
    pub async fn run(self: Arc<Self>, state: &ApiState, stop: tokio::sync::watch::Receiver<bool>) {
        let informer = super::loops::informer_of(&state.informers, &self.definitions_type());
        let serving = {
            let (this, informer) = (self.clone(), informer.clone());
            Whole::new(vec![informer.clone()], move || {
                this.serve(&cached_definitions(&informer));
                std::future::ready(Action::Done)
            })
        };
        let status = {
            let (this, informer) = (self.clone(), informer.clone());
            Whole::new(vec![informer.clone()], move || {
                let (this, definitions) = (this.clone(), cached_definitions(&informer));
                async move { this.settle(&definitions).await }
            })
        };
        let leadership = self.objects.node().leadership();
        let serving_loop = ("crd-serving", 1, super::loops::SERVING_RESYNC);
        let status_loop = ("apiextensions-controller", 1, super::loops::SERVING_RESYNC);
        tokio::join!(
            super::loops::run_loop(state, Arc::new(serving), serving_loop, everywhere(), stop.clone()),
            super::loops::run_loop(state, Arc::new(status), status_loop, leadership, stop),
        );
    }

    /// Marks `definitions` Established (or why not), cleans up deleted
    /// ones, and keeps the APIServices current.
    async fn settle(&self, definitions: &[Value]) -> Action {
        let definitions_type = self.definitions_type();
        // The APIServices follow what is served: serve what this pass sees
        // first, whichever loop heard of the change first.
        self.serve(definitions);
        let mut failed = None;
        if let Err(error) =
            super::apiservices::reconcile(&self.objects, &self.registry.current(), &self.api_server).await
        {
            failed = Some(error.to_string());
        }
        for definition in definitions {
            if let Err(error) = self.reconcile(&definitions_type, definition).await {
                failed = Some(error);
            }
        }
        failed.map_or(Action::Done, Action::Retry)
    }

    fn definitions_type(&self) -> ResourceType {
        let registry = self.registry.current();
        registry.find_plural("apiextensions.k8s.io", "customresourcedefinitions").expect("built in").clone()
    }

    fn read(&self) -> Result<(i64, Vec<Value>), ApiError> {
        let prefix = self.definitions_type().key_prefix(None);
        let (revision, found) =
            self.objects.store().range(&RangeRequest { range: KeyRange::prefix(prefix), ..RangeRequest::default() })?;
        Ok((revision, found.kvs.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect()))
    }

    /// Puts the kinds of `definitions` in the registry.
    fn serve(&self, definitions: &[Value]) {
        let built_in = Registry::built_in();
        let mut custom: Vec<ResourceType> = Vec::new();
        for definition in definitions {
            if let Ok(kinds) = kinds_of(definition, &built_in) {
                let clash = kinds.iter().any(|k| custom.iter().any(|c| (c.group, c.plural) == (k.group, k.plural)));
                if !clash {
                    custom.extend(kinds);
                }
            }
        }
        self.registry.set_custom(custom);
    }

    /// Marks `definition` Established (or why not), or finishes its deletion.
    async fn reconcile(&self, definitions_type: &ResourceType, definition: &Value) -> Result<(), String> {
        let name = definition.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let deleting = definition.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
        if deleting {
            return self.clean_up(definitions_type, definition, &name).await;
        }
        let accepted = kinds_of(definition, &Registry::built_in());
        let (status, reason, message) = match &accepted {
            Ok(_) => ("True", "InitialNamesAccepted", "the initial names have been accepted".to_owned()),
            Err(why) => ("False", "NamesConflict", why.clone()),
        };
        // Every version objects may have been stored at: the ones recorded
        // before and today's storage version.
        let mut storage: Vec<Value> =
            definition.pointer("/status/storedVersions").and_then(Value::as_array).cloned().unwrap_or_default();
        let versions = definition.pointer("/spec/versions").and_then(Value::as_array).map(Vec::as_slice);
        if let Ok(current) = storage_version_of(versions.unwrap_or_default()).map(Value::from)
            && !storage.contains(&current)
        {
            storage.push(current);
        }
        let now = super::objects::now();
        let condition = |kind: &str, status: &str, reason: &str, message: &str| json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": now});
        let established = if accepted.is_ok() {
            condition("Established", "True", "InitialNamesAccepted", "the initial names have been accepted")
        } else {
            condition("Established", "False", "NotAccepted", "not all names are accepted")
        };
        let wanted = json!({
            "conditions": [condition("NamesAccepted", status, reason, &message), established],
            "acceptedNames": definition.pointer("/spec/names").cloned().unwrap_or_else(|| json!({})),
            "storedVersions": storage,
        });
        let same = |current: &Value| {
            let strip = |status: &Value| {
                let mut status = status.clone();
                for condition in status["conditions"].as_array_mut().into_iter().flatten() {
                    if let Some(condition) = condition.as_object_mut() {
                        condition.remove("lastTransitionTime");
                    }
                }
                status
            };
            strip(current) == strip(&wanted)
        };
        if definition.get("status").is_some_and(same) {
            return Ok(());
        }
        let patch = (PatchType::Merge, json!({"status": wanted}).to_string().into_bytes());
        match self.client.patch(definitions_type, None, &name, Some("status"), patch).await {
            Ok(_) | Err(Refused { code: 404, .. }) => Ok(()),
            Err(refused) => Err(refused.to_string()),
        }
    }

    /// Deletes the objects of a deleted definition, then lets it go.
    async fn clean_up(&self, definitions_type: &ResourceType, definition: &Value, name: &str) -> Result<(), String> {
        let registry = self.registry.current();
        let group = definition.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default();
        let plural = definition.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or_default();
        if let Some(t) = registry.find_plural(group, plural).filter(|t| t.custom_schema().is_some()) {
            let listed = self.objects.list_at(t, None, 0).map_err(|e| e.to_string())?;
            for object in &listed.items {
                let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).map(str::to_owned);
                let (Some(object_name), namespace) = (text("/metadata/name"), text("/metadata/namespace")) else {
                    continue;
                };
                let options = json!({"kind": "DeleteOptions", "apiVersion": "v1",
                    "preconditions": {"uid": text("/metadata/uid")}});
                match self.client.delete(t, namespace.as_deref(), &object_name, &options).await {
                    Ok(_) | Err(Refused { code: 404 | 409, .. }) => {}
                    Err(refused) => return Err(refused.to_string()),
                }
            }
            if !self.objects.list_at(t, None, 0).map_err(|e| e.to_string())?.items.is_empty() {
                return Ok(());
            }
        }
        let finalizers: Vec<&Value> = definition
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|f| f.as_str() != Some(CLEANUP_FINALIZER))
            .collect();
        let finalizers = if finalizers.is_empty() { Value::Null } else { json!(finalizers) };
        let version = definition.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": version}});
        let patch = (PatchType::Merge, patch.to_string().into_bytes());
        match self.client.patch(definitions_type, None, name, None, patch).await {
            Ok(_) | Err(Refused { code: 404, .. }) => Ok(()),
            Err(refused) => Err(refused.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn widget_schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "colour": {"type": "string", "enum": ["red", "blue"]},
                "port": {"x-kubernetes-int-or-string": true},
                "tags": {"type": "array", "items": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            }},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        }})
    }

    fn widget(spec: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec})
    }

    #[test]
    fn schemas_check_types_bounds_enums_and_required_fields() {
        let schema = widget_schema();
        let good = widget(json!({"size": 3, "colour": "red", "port": "http", "tags": ["a"], "labels": {"k": "v"},
            "extra": {"anything": [1, {"goes": true}]}}));
        assert_eq!(validate(&schema, &good).expect("valid")["spec"], good["spec"]);
        let error = |spec: Value| validate(&schema, &widget(spec)).expect_err("invalid");
        let typed = error(json!({"size": "three"}));
        assert_eq!(typed.field, "spec.size");
        assert_eq!(typed.message, r#""three": spec.size in body must be of type integer: string"#);
        assert_eq!(error(json!({"colour": "red"})).field, "spec.size");
        assert!(error(json!({"size": 11})).message.contains("less than or equal to 10"));
        assert!(error(json!({"size": 1, "colour": "green"})).message.contains("supported values"));
        assert_eq!(error(json!({"size": 1, "tags": [1]})).field, "spec.tags[0]");
        assert_eq!(error(json!({"size": 1, "labels": {"k": 1}})).field, "spec.labels.k");
        assert_eq!(error(json!({"size": 1.5})).field, "spec.size");
    }

    #[test]
    fn unknown_fields_are_pruned_from_the_known_reading() {
        let known = validate(&widget_schema(), &widget(json!({"size": 2, "sise": 3}))).expect("valid");
        assert_eq!(known["spec"], json!({"size": 2}));
        assert_eq!(known["metadata"]["name"], "w");
    }

    #[test]
    fn definitions_become_kinds_unless_their_names_are_taken() {
        let definition = json!({"metadata": {"name": "widgets.example.com"}, "spec": {
        "group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"], "categories": ["all"]},
        "versions": [
            {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": widget_schema()},
             "subresources": {"status": {}},
             "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
            {"name": "v0", "served": false, "storage": false},
        ]}});
        let kinds = kinds_of(&definition, &Registry::built_in()).expect("accepted");
        assert_eq!(kinds.len(), 1, "only served versions");
        let widgets = &kinds[0];
        assert_eq!(
            (widgets.api_version, widgets.kind, widgets.list_kind, widgets.plural),
            ("example.com/v1", "Widget", "WidgetList", "widgets")
        );
        assert!(widgets.namespaced && widgets.has_status && !widgets.has_scale && widgets.in_category_all);
        assert_eq!(widgets.short_names, ["wd"]);
        assert_eq!(widgets.printer_columns[0].json_path, ".spec.size");
        assert_eq!(widgets.schema_name(), "com.example.v1.Widget");

        assert_eq!(widgets.storage_api_version, Some("example.com/v1"));
        let mut two_storage = definition.clone();
        two_storage["spec"]["versions"][1]["storage"] = json!(true);
        assert!(kinds_of(&two_storage, &Registry::built_in()).expect_err("two").contains("exactly one version"));

        let mut clash = definition.clone();
        clash["spec"]["group"] = json!("apps");
        clash["spec"]["names"]["plural"] = json!("deployments");
        assert!(kinds_of(&clash, &Registry::built_in()).expect_err("taken").contains("built-in"));

        let mut named = definition.clone();
        assert!(prepare_definition(&mut named, "widgets.example.com").is_ok());
        assert_eq!(named["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
        assert_eq!(prepare_definition(&mut named, "gadgets.example.com").expect_err("mismatch").code, 422);
    }

    proptest! {
        #[test]
        fn no_object_panics_the_schema_check(text in ".{0,200}") {
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                let _ = validate(&widget_schema(), &value);
            }
            let _ = validate(&widget_schema(), &widget(json!({"size": text})));
        }
    }
}
