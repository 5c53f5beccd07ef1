//! The kinds the API server serves: one table, built from the k8s-openapi
//! types, drives routing, discovery, validation and storage keys.

use std::any::TypeId;

use k8s_openapi::api::{
    admissionregistration, apps, authentication, authorization, autoscaling, batch, certificates, coordination, core,
    discovery, events, flowcontrol, networking, node, policy, rbac, scheduling, storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration;
use k8s_openapi::schemars::JsonSchema;
use k8s_openapi::schemars::r#gen::SchemaGenerator;
use k8s_openapi::{ListableResource, NamespaceResourceScope, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Verbs every stored kind supports.
pub const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// Where an object departs from the shape of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError {
    /// The field path, e.g. `spec.replicas`.
    pub field: String,
    /// What is wrong there.
    pub message: String,
}

/// One kind served by the API server.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// `group/version`, or `version` for the core group.
    pub api_version: &'static str,
    /// The kind, e.g. `Pod`.
    pub kind: &'static str,
    /// The kind of its lists, e.g. `PodList`.
    pub list_kind: &'static str,
    /// The plural resource name used in paths, e.g. `pods`.
    pub plural: &'static str,
    /// The singular resource name, e.g. `pod`.
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names kubectl accepts, e.g. `po`.
    pub short_names: Vec<&'static str>,
    /// Whether `kubectl get all` includes the kind.
    pub in_category_all: bool,
    /// Whether the kind has a `status` subresource.
    pub has_status: bool,
    /// Whether the kind has a `scale` subresource (`spec.replicas`).
    pub has_scale: bool,
    /// Extra columns `kubectl get` prints (custom kinds).
    pub printer_columns: Vec<PrinterColumn>,
    /// The `apiVersion` the kind's objects are stored with, when it is not
    /// the one served: a custom kind's storage version, a built-in kind's
    /// storage version (autoscaling/v2 for v1 HorizontalPodAutoscalers),
    /// whichever version wrote them.
    pub storage_api_version: Option<&'static str>,
    /// The group whose store keys hold the objects: the kind's own, or core
    /// for events.k8s.io Events, which are core Events.
    storage_group: &'static str,
    /// Converts an object between the served and the stored version (to
    /// the `apiVersion` given); `None` renames only (custom kinds).
    convert: Option<fn(&mut Value, &str)>,
    /// The verbs the kind serves.
    pub verbs: &'static [&'static str],
    /// How objects of the kind are checked and described.
    shape: Shape,
}

/// A column of a custom kind's table (`additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column name.
    pub name: String,
    /// OpenAPI type of the cells.
    pub kind: String,
    /// Simple JSONPath of the cell in the object, e.g. `.spec.size`.
    pub json_path: String,
    /// What the column shows.
    pub description: String,
    /// 0 for the default view, more for `-o wide`.
    pub priority: u32,
}

/// How objects of a kind are checked and described.
#[derive(Clone)]
enum Shape {
    /// A built-in kind: its k8s-openapi type.
    Typed {
        /// Checks an object by decoding it as the type.
        check: fn(&Value) -> Result<(), ShapeError>,
        /// The fields of an object the type does not declare, found while
        /// decoding it (fails where `check` does).
        unknown: fn(&Value) -> Result<Vec<String>, ShapeError>,
        /// Adds the kind's schema (and those it refers to) to a generator.
        schema: fn(&mut SchemaGenerator),
        /// The name of the kind's schema, e.g. `io.k8s.api.core.v1.Pod`.
        schema_name: fn() -> String,
    },
    /// A custom kind: the structural schema of its definition.
    Custom {
        /// The schema's name in OpenAPI documents.
        name: String,
        /// The version's `openAPIV3Schema`.
        schema: std::sync::Arc<Value>,
    },
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Typed { schema_name, .. } => write!(f, "Typed({})", schema_name()),
            Self::Custom { name, .. } => write!(f, "Custom({name})"),
        }
    }
}

impl ResourceType {
    /// Whether two kinds are served alike (custom kinds compared by their
    /// names, features and schema).
    fn same_as(&self, other: &Self) -> bool {
        let schema = |t: &Self| match &t.shape {
            Shape::Custom { schema, .. } => Some(schema.clone()),
            Shape::Typed { .. } => None,
        };
        (self.api_version, self.kind, self.plural, self.namespaced, self.has_status, self.has_scale)
            == (other.api_version, other.kind, other.plural, other.namespaced, other.has_status, other.has_scale)
            && self.short_names == other.short_names
            && self.printer_columns == other.printer_columns
            && schema(self) == schema(other)
    }

    fn of<T>(short_names: &[&'static str], in_category_all: bool, has_status: bool) -> Self
    where
        T: Resource + ListableResource + DeserializeOwned + serde::Serialize + JsonSchema + 'static,
    {
        Self {
            list_kind: T::LIST_KIND,
            short_names: short_names.to_vec(),
            in_category_all,
            has_status,
            has_scale: matches!(
                T::URL_PATH_SEGMENT,
                "deployments" | "replicasets" | "statefulsets" | "replicationcontrollers"
            ),
            ..Self::typed::<T>()
        }
    }

    /// A kind that is only created and answered at once, never stored or
    /// listed (SubjectAccessReview, TokenReview and their kin; Binding,
    /// which binds the pod it names).
    fn review<T>() -> Self
    where
        T: Resource + DeserializeOwned + serde::Serialize + JsonSchema + 'static,
    {
        Self::typed::<T>().serving(&["create"])
    }

    /// The built-in kind of type `T`, with no list, short names or
    /// subresources.
    fn typed<T>() -> Self
    where
        T: Resource + DeserializeOwned + serde::Serialize + JsonSchema + 'static,
    {
        Self {
            group: T::GROUP,
            version: T::VERSION,
            api_version: T::API_VERSION,
            kind: T::KIND,
            list_kind: "",
            plural: T::URL_PATH_SEGMENT,
            singular: T::KIND.to_lowercase(),
            namespaced: TypeId::of::<T::Scope>() == TypeId::of::<NamespaceResourceScope>(),
            short_names: Vec::new(),
            in_category_all: false,
            has_status: false,
            has_scale: false,
            printer_columns: Vec::new(),
            storage_api_version: None,
            storage_group: T::GROUP,
            convert: None,
            verbs: &VERBS,
            shape: Shape::Typed {
                check: |value| decode_typed::<T>(value).map(drop),
                unknown: unknown_typed::<T>,
                schema: |generator| {
                    generator.subschema_for::<T>();
                },
                schema_name: T::schema_name,
            },
        }
    }

    /// A custom kind (from a CustomResourceDefinition version) checked
    /// against `schema`, its structural `openAPIV3Schema`.
    pub fn custom(names: CustomNames, schema: Value) -> Self {
        let CustomNames {
            group,
            version,
            kind,
            list_kind,
            plural,
            singular,
            namespaced,
            short_names,
            in_category_all,
            has_status,
            has_scale,
            printer_columns,
            storage_version,
        } = names;
        let (group, version, kind, plural) = (intern(&group), intern(&version), intern(&kind), intern(&plural));
        let storage_api_version = Some(intern(&format!("{group}/{storage_version}")));
        let reversed: Vec<&str> = group.split('.').rev().collect();
        Self {
            group,
            version,
            api_version: intern(&format!("{group}/{version}")),
            kind,
            list_kind: intern(&list_kind),
            plural,
            singular,
            namespaced,
            short_names: short_names.iter().map(|n| intern(n)).collect(),
            in_category_all,
            has_status,
            has_scale,
            printer_columns,
            storage_api_version,
            storage_group: group,
            convert: None,
            verbs: &VERBS,
            shape: Shape::Custom {
                name: format!("{}.{version}.{kind}", reversed.join(".")),
                schema: std::sync::Arc::new(schema),
            },
        }
    }

    /// The kind stored at `storage_api_version` under `storage_group`'s
    /// keys, converted by `convert` in both directions.
    fn stored_as(
        mut self,
        storage_api_version: &'static str,
        storage_group: &'static str,
        convert: fn(&mut Value, &str),
    ) -> Self {
        self.storage_api_version = Some(storage_api_version);
        self.storage_group = storage_group;
        self.convert = Some(convert);
        self
    }

    /// The kind, serving only `verbs`.
    fn serving(mut self, verbs: &'static [&'static str]) -> Self {
        self.verbs = verbs;
        self
    }

    /// Gives `object`, read from the store, this version's shape: a
    /// built-in kind's conversion, or a custom kind's rename (its versions
    /// differ in name only, the `None` conversion strategy).
    pub fn present(&self, object: &mut Value) {
        if self.storage_api_version.is_some()
            && object.get("apiVersion").and_then(Value::as_str) != Some(self.api_version)
        {
            self.convert_to(object, self.api_version);
        }
    }

    /// The bytes stored for `object`, converted to the storage version.
    pub fn stored_bytes(&self, object: &Value) -> serde_json::Result<Vec<u8>> {
        match self.storage_api_version {
            Some(storage) if object.get("apiVersion").and_then(Value::as_str) != Some(storage) => {
                let mut stored = object.clone();
                self.convert_to(&mut stored, storage);
                serde_json::to_vec(&stored)
            }
            _ => serde_json::to_vec(object),
        }
    }

    /// `object` at `api_version`.
    fn convert_to(&self, object: &mut Value, api_version: &str) {
        match self.convert {
            Some(convert) => convert(object, api_version),
            None => object["apiVersion"] = Value::from(api_version),
        }
    }

    /// Adds the kind's schema, and every schema it refers to, to `generator`.
    pub fn register_schema(&self, generator: &mut SchemaGenerator) {
        match &self.shape {
            Shape::Typed { schema, .. } => schema(generator),
            Shape::Custom { .. } => {
                generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
            }
        }
    }

    /// The name of the kind's schema, e.g. `io.k8s.api.core.v1.Pod`.
    pub fn schema_name(&self) -> String {
        match &self.shape {
            Shape::Typed { schema_name, .. } => schema_name(),
            Shape::Custom { name, .. } => name.clone(),
        }
    }

    /// A custom kind's schema as an OpenAPI document carries it (with
    /// `apiVersion`, `kind` and `metadata`); `None` for built-in kinds.
    pub fn custom_schema(&self) -> Option<Value> {
        let Shape::Custom { schema, .. } = &self.shape else { return None };
        Some(super::custom::document_schema(schema))
    }

    /// Checks that `object` has the shape of the kind (field types, required
    /// fields of the typed model).
    ///
    /// # Errors
    /// The first mismatch: where and what.
    pub fn validate(&self, object: &Value) -> Result<(), ShapeError> {
        match &self.shape {
            Shape::Typed { check, .. } => check(object),
            Shape::Custom { schema, .. } => super::custom::validate(schema, object).map(drop),
        }
    }

    /// The fields of `object` the kind does not declare, as paths
    /// (`spec.replicass`), as a strict decoder reports them (an undeclared
    /// field given as null too).
    ///
    /// # Errors
    /// As [`ResourceType::validate`].
    pub fn unknown_fields(&self, object: &Value) -> Result<Vec<String>, ShapeError> {
        match &self.shape {
            Shape::Typed { unknown, .. } => unknown(object),
            Shape::Custom { schema, .. } => {
                let known = super::custom::validate(schema, object)?;
                let mut unknown = Vec::new();
                collect_unknown(object, &known, String::new(), &mut unknown);
                Ok(unknown)
            }
        }
    }

    /// `object` without the fields a custom kind's schema does not know (as
    /// kube-apiserver prunes custom objects); built-in kinds keep theirs.
    pub fn pruned(&self, object: Value) -> Value {
        let Shape::Custom { schema, .. } = &self.shape else { return object };
        match super::custom::validate(schema, &object) {
            Ok(mut known) => {
                known["metadata"] = object.get("metadata").cloned().unwrap_or(Value::Null);
                known
            }
            Err(_) => object,
        }
    }

    /// The store key prefix of every object of the kind, or of those in
    /// `namespace`.
    pub fn key_prefix(&self, namespace: Option<&str>) -> String {
        let group = if self.storage_group.is_empty() { "core" } else { self.storage_group };
        match namespace {
            Some(namespace) if self.namespaced => format!("/registry/{group}/{}/{namespace}/", self.plural),
            _ => format!("/registry/{group}/{}/", self.plural),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.key_prefix(namespace))
    }
}

/// `value` decoded as the built-in type `T`; where and why not. The
/// decoding runs untracked, as it nearly always succeeds; a failed one runs
/// again tracking its path, to say where it fails.
fn decode_typed<T: DeserializeOwned>(value: &Value) -> Result<T, ShapeError> {
    T::deserialize(value).or_else(|_| serde_path_to_error::deserialize::<_, T>(value).map_err(shape_error))
}

/// Decodes `value` as `T`, collecting the paths of the fields `T` skips
/// (`spec.containers[0].imagePullPolicyy`) as it goes: one pass reads the
/// object and finds what it does not declare; a failed one runs once more
/// tracking its path, to say where it fails.
fn unknown_typed<T: DeserializeOwned>(value: &Value) -> Result<Vec<String>, ShapeError> {
    let mut unknown = Vec::new();
    let mut skipped = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
    match T::deserialize(serde_ignored::Deserializer::new(value, &mut skipped)) {
        Ok(_) => Ok(unknown),
        Err(error) => Err(serde_path_to_error::deserialize::<_, T>(value)
            .err()
            .map_or_else(|| ShapeError { field: String::new(), message: error.to_string() }, shape_error)),
    }
}

/// A failed typed decoding as a shape error: where and why.
fn shape_error(error: serde_path_to_error::Error<serde_json::Error>) -> ShapeError {
    ShapeError { field: error.path().to_string(), message: error.into_inner().to_string() }
}

/// A decoder's path as Kubernetes writes field paths: `a.b[2].c`.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// Paths present (and not null) in `given` but absent from `known`, a
/// custom kind's schema's reading of it.
fn collect_unknown(given: &Value, known: &Value, path: String, unknown: &mut Vec<String>) {
    match (given, known) {
        (Value::Object(given), Value::Object(known)) => {
            for (field, value) in given {
                let here = if path.is_empty() { field.clone() } else { format!("{path}.{field}") };
                match known.get(field) {
                    _ if value.is_null() || here == "metadata.managedFields" => {}
                    Some(known) => collect_unknown(value, known, here, unknown),
                    None => unknown.push(here),
                }
            }
        }
        (Value::Array(given), Value::Array(known)) => {
            for (index, (value, known)) in given.iter().zip(known).enumerate() {
                collect_unknown(value, known, format!("{path}[{index}]"), unknown);
            }
        }
        _ => {}
    }
}

/// The names and features of a custom kind.
#[derive(Debug, Clone, Default)]
pub struct CustomNames {
    /// API group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Kind of lists.
    pub list_kind: String,
    /// Plural resource name.
    pub plural: String,
    /// Singular resource name.
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names.
    pub short_names: Vec<String>,
    /// Whether `kubectl get all` includes the kind.
    pub in_category_all: bool,
    /// Whether the kind has a `status` subresource.
    pub has_status: bool,
    /// Whether the kind has a `scale` subresource.
    pub has_scale: bool,
    /// Extra table columns.
    pub printer_columns: Vec<PrinterColumn>,
    /// The version objects are stored at (`storage: true`).
    pub storage_version: String,
}

/// `text` with a `'static` lifetime, each distinct text stored once, so
/// that custom kinds share the built-in kinds' `&'static str` names. Only
/// the names of custom kinds are interned: a handful per definition.
fn intern(text: &str) -> &'static str {
    static INTERNED: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut interned = INTERNED.lock().expect("interned names lock");
    if let Some(existing) = interned.get(text) {
        return existing;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    interned.insert(leaked);
    leaked
}

/// Every kind the server knows, in discovery order.
#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
    /// Positions in `types` of the kinds of each plural name (every
    /// request looks its kind up).
    by_plural: std::collections::HashMap<&'static str, Vec<usize>>,
    /// Changes whenever the set of kinds does.
    generation: u64,
}

/// The registry of an API server, replaced as custom kinds come and go.
#[derive(Debug, Clone, Default)]
pub struct SharedRegistry(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Registry>>>);

impl SharedRegistry {
    /// The registry now.
    pub fn current(&self) -> std::sync::Arc<Registry> {
        self.0.read().expect("registry lock").clone()
    }

    /// The built-in kinds and `custom` ones, if they differ from now.
    pub fn set_custom(&self, custom: Vec<ResourceType>) {
        let mut current = self.0.write().expect("registry lock");
        let built_in = Registry::built_in();
        let unchanged = current.types.len() == built_in.types.len() + custom.len()
            && current.types[built_in.types.len()..].iter().zip(&custom).all(|(a, b)| a.same_as(b));
        if unchanged {
            return;
        }
        let mut types = built_in.types;
        types.extend(custom);
        *current = std::sync::Arc::new(Registry::new(types, current.generation + 1));
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::built_in()
    }
}

impl Registry {
    /// The built-in kinds.
    pub fn built_in() -> Self {
        let types = vec![
            ResourceType::of::<core::v1::Namespace>(&["ns"], false, true),
            ResourceType::of::<core::v1::Pod>(&["po"], true, true),
            ResourceType::of::<core::v1::Node>(&["no"], false, true),
            ResourceType::of::<core::v1::Service>(&["svc"], true, true),
            ResourceType::of::<core::v1::Endpoints>(&["ep"], false, false),
            ResourceType::of::<core::v1::ConfigMap>(&["cm"], false, false),
            ResourceType::of::<core::v1::Secret>(&[], false, false),
            ResourceType::of::<core::v1::Event>(&["ev"], false, false),
            ResourceType::of::<core::v1::ServiceAccount>(&["sa"], false, false),
            ResourceType::of::<apps::v1::Deployment>(&["deploy"], true, true),
            ResourceType::of::<apps::v1::ReplicaSet>(&["rs"], true, true),
            ResourceType::of::<apps::v1::DaemonSet>(&["ds"], true, true),
            ResourceType::of::<apps::v1::StatefulSet>(&["sts"], true, true),
            ResourceType::of::<batch::v1::Job>(&[], true, true),
            ResourceType::of::<batch::v1::CronJob>(&["cj"], true, true),
            ResourceType::of::<coordination::v1::Lease>(&[], false, false),
            ResourceType::of::<node::v1::RuntimeClass>(&[], false, false),
            ResourceType::of::<discovery::v1::EndpointSlice>(&[], false, false),
            ResourceType::of::<rbac::v1::Role>(&[], false, false),
            ResourceType::of::<rbac::v1::RoleBinding>(&[], false, false),
            ResourceType::of::<rbac::v1::ClusterRole>(&[], false, false),
            ResourceType::of::<rbac::v1::ClusterRoleBinding>(&[], false, false),
            ResourceType::of::<apiextensions::v1::CustomResourceDefinition>(&["crd", "crds"], false, true),
            ResourceType::of::<core::v1::PersistentVolume>(&["pv"], false, true),
            ResourceType::of::<core::v1::PersistentVolumeClaim>(&["pvc"], false, true),
            ResourceType::of::<core::v1::PodTemplate>(&[], false, false),
            ResourceType::of::<core::v1::ReplicationController>(&["rc"], true, true),
            ResourceType::of::<core::v1::ComponentStatus>(&["cs"], false, false).serving(&["get", "list"]),
            ResourceType::of::<apps::v1::ControllerRevision>(&[], false, false),
            ResourceType::of::<autoscaling::v2::HorizontalPodAutoscaler>(&["hpa"], true, true),
            ResourceType::of::<autoscaling::v1::HorizontalPodAutoscaler>(&["hpa"], true, true).stored_as(
                autoscaling::v2::HorizontalPodAutoscaler::API_VERSION,
                "autoscaling",
                super::conversion::horizontal_pod_autoscaler,
            ),
            ResourceType::of::<networking::v1::Ingress>(&["ing"], false, true),
            ResourceType::of::<networking::v1::IngressClass>(&[], false, false),
            ResourceType::of::<networking::v1::NetworkPolicy>(&["netpol"], false, false),
            ResourceType::of::<scheduling::v1::PriorityClass>(&["pc"], false, false),
            ResourceType::of::<storage::v1::StorageClass>(&["sc"], false, false),
            ResourceType::of::<storage::v1::CSIDriver>(&[], false, false),
            ResourceType::of::<storage::v1::CSINode>(&[], false, false),
            ResourceType::of::<storage::v1::CSIStorageCapacity>(&[], false, false),
            ResourceType::of::<storage::v1::VolumeAttachment>(&[], false, true),
            ResourceType::of::<certificates::v1::CertificateSigningRequest>(&["csr"], false, true),
            ResourceType::of::<admissionregistration::v1::MutatingWebhookConfiguration>(&[], false, false),
            ResourceType::of::<admissionregistration::v1::ValidatingWebhookConfiguration>(&[], false, false),
            ResourceType::of::<admissionregistration::v1::ValidatingAdmissionPolicy>(&[], false, true),
            ResourceType::of::<admissionregistration::v1::ValidatingAdmissionPolicyBinding>(&[], false, false),
            ResourceType::of::<events::v1::Event>(&["ev"], false, false).stored_as(
                core::v1::Event::API_VERSION,
                "",
                super::conversion::event,
            ),
            ResourceType::of::<apiregistration::v1::APIService>(&[], false, true),
            ResourceType::of::<flowcontrol::v1::FlowSchema>(&[], false, true),
            ResourceType::of::<flowcontrol::v1::PriorityLevelConfiguration>(&[], false, true),
            ResourceType::review::<core::v1::Binding>(),
            ResourceType::review::<authentication::v1::TokenReview>(),
            ResourceType::review::<authentication::v1::SelfSubjectReview>(),
            ResourceType::review::<authorization::v1::LocalSubjectAccessReview>(),
            ResourceType::review::<authorization::v1::SelfSubjectAccessReview>(),
            ResourceType::review::<authorization::v1::SelfSubjectRulesReview>(),
            ResourceType::review::<authorization::v1::SubjectAccessReview>(),
            ResourceType::of::<core::v1::ResourceQuota>(&["quota"], false, true),
            ResourceType::of::<core::v1::LimitRange>(&["limits"], false, false),
            ResourceType::of::<policy::v1::PodDisruptionBudget>(&["pdb"], false, true),
        ];
        Self::new(types, 0)
    }

    fn new(types: Vec<ResourceType>, generation: u64) -> Self {
        let mut by_plural: std::collections::HashMap<&'static str, Vec<usize>> = std::collections::HashMap::new();
        for (index, t) in types.iter().enumerate() {
            by_plural.entry(t.plural).or_default().push(index);
        }
        Self { types, by_plural, generation }
    }

    /// The kinds named `plural`, in any group or version.
    fn named<'a>(&'a self, plural: &str) -> impl Iterator<Item = &'a ResourceType> {
        self.by_plural.get(plural).into_iter().flatten().map(|&index| &self.types[index])
    }

    /// Changes whenever the set of kinds does.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The built-in kind or a custom kind that has `group` and `plural`.
    pub fn find_plural(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.named(plural).find(|t| t.group == group)
    }

    /// The kind served at `group`/`version` under `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.named(plural).find(|t| t.group == group && t.version == version)
    }

    /// The kind, namespace and name a store key holds.
    pub fn locate<'k>(&self, key: &'k str) -> Option<(&ResourceType, Option<&'k str>, &'k str)> {
        let (group, rest) = key.strip_prefix("/registry/")?.split_once('/')?;
        let (plural, rest) = rest.split_once('/')?;
        let group = if group == "core" { "" } else { group };
        self.named(plural).filter(|t| t.group == group).find_map(|t| match rest.split_once('/') {
            Some((namespace, name)) if t.namespaced && !name.contains('/') => Some((t, Some(namespace), name)),
            None if !t.namespaced => Some((t, None, rest)),
            _ => None,
        })
    }

    /// The groups, each with its versions, in discovery order (core first).
    pub fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for t in &self.types {
            match groups.iter_mut().find(|(group, _)| *group == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => versions.push(t.version),
                Some(_) => {}
                None => groups.push((t.group, vec![t.version])),
            }
        }
        groups
    }

    /// The kinds of one group version.
    pub fn in_group_version<'a>(&'a self, group: &'a str, version: &'a str) -> impl Iterator<Item = &'a ResourceType> {
        self.types.iter().filter(move |t| t.group == group && t.version == version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_names_and_scopes_from_the_types() {
        let registry = Registry::built_in();
        let pods = registry.find("", "v1", "pods").expect("pods");
        assert_eq!((pods.kind, pods.list_kind, pods.api_version, pods.namespaced), ("Pod", "PodList", "v1", true));
        assert_eq!(pods.key(Some("default"), "web"), "/registry/core/pods/default/web");
        let nodes = registry.find("", "v1", "nodes").expect("nodes");
        assert!(!nodes.namespaced);
        assert_eq!(nodes.key(Some("ignored"), "n1"), "/registry/core/nodes/n1");
        let deployments = registry.find("apps", "v1", "deployments").expect("deployments");
        assert_eq!(deployments.api_version, "apps/v1");
        assert_eq!(registry.groups()[0], ("", vec!["v1"]));
        let (t, namespace, name) = registry.locate("/registry/apps/deployments/team/web").expect("a deployment");
        assert_eq!((t.kind, namespace, name), ("Deployment", Some("team"), "web"));
        let (t, namespace, name) = registry.locate("/registry/core/nodes/n1").expect("a node");
        assert_eq!((t.kind, namespace, name), ("Node", None, "n1"));
        assert!(registry.locate("/registry/core/pods/no-name").is_none());
        assert!(registry.locate("/engenho/serviceaccounts/signing-key").is_none());
    }

    #[test]
    fn validation_uses_the_typed_model() {
        let registry = Registry::built_in();
        let configmaps = registry.find("", "v1", "configmaps").expect("configmaps");
        let good =
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        assert!(configmaps.validate(&good).is_ok());
        let bad =
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": 1}});
        let error = configmaps.validate(&bad).expect_err("a number is no string");
        assert_eq!(error.field, "data.k");
        let error = configmaps.unknown_fields(&bad).expect_err("a number is no string");
        assert_eq!(error.field, "data.k", "the unknown-field reading tells where, too");
        let deployments = registry.find("apps", "v1", "deployments").expect("deployments");
        let typo = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "labelz": {}},
            "spec": {"replicass": 2, "selector": {}, "template": {"spec": {"containers": [{"name": "c", "imagee": "x"}]}}}});
        assert_eq!(
            deployments.unknown_fields(&typo).expect("decodes"),
            ["metadata.labelz", "spec.replicass", "spec.template.spec.containers[0].imagee"]
        );
    }

    #[test]
    fn known_fields_given_as_null_and_free_form_fields_are_not_unknown() {
        let registry = Registry::built_in();
        let pods = registry.find("", "v1", "pods").expect("pods");
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "creationTimestamp": null, "labels": {"x": "y"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}}}}}}]},
            "spec": {"nodeName": null, "containers": [{"name": "c", "image": "x",
                "resources": {"limits": {"cpu": "1"}}, "ports": [{"containerPort": 80}]}]},
            "status": {}});
        assert_eq!(pods.unknown_fields(&pod).expect("decodes"), Vec::<String>::new());
        let unknown_null = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c"}, {"name": "d", "sidecar": null}]}});
        assert_eq!(pods.unknown_fields(&unknown_null).expect("decodes"), ["spec.containers[1].sidecar"]);
    }
}
