//! Plugins in the cluster: `Plugin` objects (engenho.io/v1alpha1) name a
//! component by digest, carry its signature, configuration, match rules,
//! failure policy and limits; component bytes live in the store by digest;
//! every API server keeps the active admission policies current from a
//! store watch and swaps versions without a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use engenho_control::{Action, Whole, everywhere};
use engenho_wasm::{AdmissionPolicy, Decision, Grants, Limits, PluginHost, Review, digest_of};
use serde::Deserialize;
use serde_json::{Value, json};

mod trust;

pub(super) use trust::TrustRoot;
pub use trust::{BOOTSTRAP_SIGNER, SIGNERS_PLURAL, SigningKey, definition as signer_definition};

use super::client::{ApiClient, PatchType};
use super::handlers::ApiState;
use super::objects::ObjectStore;
use super::resources::{Registry, SharedRegistry};
use super::status::ApiError;

/// The group of engenho's own kinds.
pub const GROUP: &str = "engenho.io";

/// The world an admission policy implements.
pub const ADMISSION_WORLD: &str = "admission-policy";

/// The world a controller implements.
pub const CONTROLLER_WORLD: &str = "controller-plugin";

/// Where component bytes live: `<prefix><digest>` holds the manifest,
/// `<prefix><digest>/<n>` the chunks.
pub(super) const COMPONENTS_PREFIX: &str = "/engenho/plugins/components/";

/// Largest chunk of a component in one store value.
const CHUNK_BYTES: usize = 512 * 1024;

/// Largest component accepted.
pub const COMPONENT_BYTES_MAX: usize = 3 * 1024 * 1024;

/// The first line of every message a plugin signature signs: the version
/// of the signed terms.
const SIGNED_TERMS_VERSION: &str = "engenho-plugin-v2";

/// What a plugin's signature covers: everything that gives it power. The
/// configuration is left out on purpose: it only parameterises the signed
/// code, and changes without a new signature.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedTerms<'a> {
    name: &'a str,
    world: &'a str,
    digest: &'a str,
    mutating: bool,
    limits: &'a PluginLimits,
    grants: &'a PluginGrants,
}

impl PluginSpec {
    /// The message a signature of Plugin `name` with this spec signs:
    /// the terms as JSON (struct fields in order, maps sorted), so that
    /// signer and host derive the same bytes.
    fn signed_message(&self, name: &str) -> Vec<u8> {
        let terms = SignedTerms {
            name,
            world: &self.world,
            digest: &self.digest,
            mutating: self.admission.mutating,
            limits: &self.limits,
            grants: &self.grants,
        };
        let mut message = format!("{SIGNED_TERMS_VERSION}\n").into_bytes();
        // Serializing plain strings, numbers and maps of strings cannot fail.
        message.extend(serde_json::to_vec(&terms).unwrap_or_default());
        message
    }
}

impl SigningKey {
    /// The base64 signature of Plugin `name` with `spec` (its `spec`
    /// field, as it will be stored): over its name, world, digest,
    /// mutating flag, limits and grants.
    ///
    /// # Errors
    /// A spec that is not shaped as a Plugin's.
    pub fn sign_plugin(&self, name: &str, spec: &Value) -> Result<String, String> {
        let spec: PluginSpec = serde_json::from_value(spec.clone()).map_err(|e| format!("not a Plugin's spec: {e}"))?;
        Ok(self.sign_message(&spec.signed_message(name)))
    }
}

/// The admission policies every cluster starts with, as (name, spec
/// without digest and signature): pod security (baseline) and resource
/// defaults for pods, an image allowlist for namespaces that opt in with
/// the label `engenho.io/image-policy=enforce`, and required labels (none
/// until configured).
pub fn built_in_policies() -> Vec<(&'static str, Value)> {
    let pods = json!([{"apiGroups": [""], "resources": ["pods"], "operations": ["CREATE", "UPDATE"]}]);
    vec![
        (
            "pod-security",
            json!({"world": ADMISSION_WORLD, "failurePolicy": "Fail",
                "config": {"exemptNamespaces": ["kube-system"]},
                "admission": {"rules": pods}}),
        ),
        (
            "resource-defaults",
            json!({"world": ADMISSION_WORLD, "failurePolicy": "Fail",
                "config": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
                "admission": {"mutating": true,
                    "rules": [{"apiGroups": [""], "resources": ["pods"], "operations": ["CREATE"]}]}}),
        ),
        (
            "image-allowlist",
            json!({"world": ADMISSION_WORLD, "failurePolicy": "Fail",
                "config": {"allowedPrefixes": []},
                "admission": {"rules": pods,
                    "namespaceSelector": {"matchLabels": {"engenho.io/image-policy": "enforce"}}}}),
        ),
        (
            "required-labels",
            json!({"world": ADMISSION_WORLD, "failurePolicy": "Fail",
                "config": {"labels": []},
                "admission": {"rules": [{"apiGroups": ["", "apps", "batch"],
                    "resources": ["pods", "services", "configmaps", "deployments", "statefulsets", "daemonsets",
                        "jobs", "cronjobs"],
                    "operations": ["CREATE", "UPDATE"]}]}}),
        ),
    ]
}

/// The controllers every cluster starts with, as (Plugin name, built
/// component, spec without digest and signature); `ca_pem` is the bundle
/// the service-account controller publishes in every namespace.
pub fn built_in_controllers(ca_pem: &str) -> Vec<(&'static str, &'static str, Value)> {
    // A reconcile decodes every object it owns (a ReplicaSet of 10,000
    // pods: tens of megabytes of JSON), so controllers get more time and
    // memory than an admission call.
    let limits = json!({"deadlineMillis": 5000, "memoryBytes": 268_435_456});
    let plain = || json!({"world": CONTROLLER_WORLD, "limits": limits});
    vec![
        (
            "service-account-controller",
            "serviceaccount-controller",
            json!({"world": CONTROLLER_WORLD, "config": {"rootCA": ca_pem}, "limits": limits}),
        ),
        ("replicaset-controller", "replicaset-controller", plain()),
        ("deployment-controller", "deployment-controller", plain()),
        ("statefulset-controller", "statefulset-controller", plain()),
        ("daemon-set-controller", "daemonset-controller", plain()),
        ("job-controller", "job-controller", plain()),
        ("cronjob-controller", "cronjob-controller", plain()),
        ("endpointslice-controller", "endpointslice-controller", plain()),
        ("node-lifecycle-controller", "nodelifecycle-controller", plain()),
    ]
}

/// Makes `signer` the first trusted signer of a new cluster, and installs
/// the built-in admission policies and controllers that are not installed
/// yet, signed by it.
///
/// # Errors
/// The store refused the writes.
pub async fn install_built_ins(
    objects: &ObjectStore,
    registry: &Registry,
    signer: &SigningKey,
    ca_pem: &str,
) -> Result<(), ApiError> {
    trust::bootstrap(objects, registry, signer).await?;
    let plugin_type =
        registry.find_plural(GROUP, "plugins").ok_or_else(|| ApiError::internal("the Plugin kind is not installed"))?;
    let policies = built_in_policies().into_iter().map(|(name, spec)| (name, name, spec));
    let scheduler_plugins = super::scheduler::BUILT_IN_PLUGINS
        .iter()
        .map(|(name, _)| (*name, *name, super::scheduler::built_in_plugin_spec()));
    for (name, package, mut spec) in policies.chain(built_in_controllers(ca_pem)).chain(scheduler_plugins) {
        let bytes = engenho_plugin_artifacts::plugin(package)
            .ok_or_else(|| ApiError::internal(format!("the built-in plugin {package} was not built")))?;
        let digest = store_component(objects, bytes).await?;
        spec["digest"] = json!(digest);
        spec["signature"] = json!(signer.sign_plugin(name, &spec).map_err(ApiError::internal)?);
        let plugin =
            json!({"apiVersion": "engenho.io/v1alpha1", "kind": "Plugin", "metadata": {"name": name}, "spec": spec});
        match objects.create(plugin_type, None, plugin, &super::objects::WriteOptions::default()).await {
            Ok(_) | Err(ApiError { reason: "AlreadyExists", .. }) => {}
            Err(error) => return Err(error),
        }
    }
    super::scheduler::install_default_profile(objects, registry).await
}

/// The CustomResourceDefinition of `Plugin`.
pub fn definition() -> Value {
    let admission = json!({"type": "object", "properties": {
        "mutating": {"type": "boolean",
            "description": "Whether the policy may change objects (runs before validating ones)."},
        "order": {"type": "integer", "description": "Lower runs first."},
        "rules": {"type": "array", "items": {"type": "object", "properties": {
            "apiGroups": {"type": "array", "items": {"type": "string"}},
            "resources": {"type": "array", "items": {"type": "string"}},
            "operations": {"type": "array", "items": {"type": "string",
                "enum": ["CREATE", "UPDATE", "DELETE", "*"]}},
        }}},
        "namespaceSelector": {"type": "object", "properties": {
            "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        }},
    }});
    let spec = json!({"type": "object", "required": ["world", "digest", "signature"], "properties": {
        "world": {"type": "string", "enum": [ADMISSION_WORLD, CONTROLLER_WORLD, super::scheduler::SCHEDULER_WORLD],
            "description": "The WIT world the component implements."},
        "digest": {"type": "string", "description": "Hex BLAKE3 digest of the component."},
        "signature": {"type": "string",
            "description": "Base64 Ed25519 signature by a trusted signer over the name, world, digest, \
                mutating flag, limits and grants (not the configuration)."},
        "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "description": "The plugin's configuration, given to it as JSON."},
        "failurePolicy": {"type": "string", "enum": ["Fail", "Ignore"],
            "description": "What a failed call means: refuse the request (Fail) or go on (Ignore)."},
        "limits": {"type": "object", "properties": {
            "deadlineMillis": {"type": "integer", "minimum": 1, "maximum": 10000},
            "memoryBytes": {"type": "integer", "minimum": 1048576, "maximum": 268435456},
        }},
        "grants": {"type": "object",
            "description": "What the plugin may reach; nothing unless granted.",
            "properties": {
                "environment": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "Environment variables the plugin sees."},
                "directories": {"type": "array", "description": "Host directories the plugin may read.",
                    "items": {"type": "object", "required": ["hostPath", "path"], "properties": {
                        "hostPath": {"type": "string"}, "path": {"type": "string"}}}},
                "tcpConnect": {"type": "array", "items": {"type": "string"},
                    "description": "Addresses (ip:port) the plugin may open TCP connections to."},
            }},
        "admission": admission,
        "controller": {"type": "object", "properties": {
            "workers": {"type": "integer", "minimum": 1, "maximum": 16,
                "description": "Keys the controller reconciles at once (default 4)."},
        }},
    }});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "plugins.engenho.io"},
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {"plural": "plugins", "singular": "plugin", "kind": "Plugin", "shortNames": ["plg"]},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "World", "type": "string", "jsonPath": ".spec.world"},
                    {"name": "Digest", "type": "string", "jsonPath": ".spec.digest"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[0].status"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A WebAssembly component that carries policy, identified by its BLAKE3 digest and signed.",
                    "properties": {
                        "spec": spec,
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    })
}

/// Stores component `bytes` by their digest; the digest.
///
/// # Errors
/// Oversized bytes; store failures.
pub async fn store_component(objects: &ObjectStore, bytes: &[u8]) -> Result<String, ApiError> {
    if bytes.len() > COMPONENT_BYTES_MAX {
        return Err(ApiError::too_large(COMPONENT_BYTES_MAX));
    }
    let digest = digest_of(bytes);
    // Content-addressed: stored bytes with this digest are these bytes.
    if load_component(objects, &digest).ok().flatten().is_some() {
        return Ok(digest);
    }
    let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        objects.put_raw(&format!("{COMPONENTS_PREFIX}{digest}/{index:04}"), chunk.to_vec()).await?;
    }
    // The manifest goes last: its presence means the chunks are complete.
    let manifest = json!({"chunks": chunks.len(), "bytes": bytes.len()});
    objects.put_raw(&format!("{COMPONENTS_PREFIX}{digest}"), manifest.to_string().into_bytes()).await?;
    Ok(digest)
}

/// The stored components, as (digest, bytes), in digest order.
///
/// # Errors
/// Store failures.
pub fn list_components(objects: &ObjectStore) -> Result<Vec<(String, u64)>, ApiError> {
    let mut components = Vec::new();
    for key in objects.raw_keys(COMPONENTS_PREFIX)? {
        let Some(digest) = key.strip_prefix(COMPONENTS_PREFIX).filter(|rest| !rest.contains('/')) else { continue };
        let Some(manifest) = objects.get_raw(&key)? else { continue };
        let manifest: Value = serde_json::from_slice(&manifest).unwrap_or(Value::Null);
        components.push((digest.to_owned(), manifest.get("bytes").and_then(Value::as_u64).unwrap_or(0)));
    }
    Ok(components)
}

/// The bytes of component `digest`, if stored and intact.
///
/// # Errors
/// Store failures; chunks that do not hash to the digest.
pub fn load_component(objects: &ObjectStore, digest: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(manifest) = objects.get_raw(&format!("{COMPONENTS_PREFIX}{digest}"))? else { return Ok(None) };
    let manifest: Value = serde_json::from_slice(&manifest).unwrap_or(Value::Null);
    let chunks = manifest.get("chunks").and_then(Value::as_u64).unwrap_or(0);
    let mut bytes = Vec::new();
    for index in 0..chunks {
        let chunk = objects
            .get_raw(&format!("{COMPONENTS_PREFIX}{digest}/{index:04}"))?
            .ok_or_else(|| ApiError::internal(format!("component {digest} lacks chunk {index}")))?;
        bytes.extend_from_slice(&chunk);
    }
    if digest_of(&bytes) != digest {
        return Err(ApiError::internal(format!("the stored chunks of component {digest} do not hash to it")));
    }
    Ok(Some(bytes))
}

/// A `Plugin` object's spec, as the host reads it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct PluginSpec {
    pub(super) world: String,
    pub(super) digest: String,
    signature: String,
    config: Option<Value>,
    failure_policy: Option<String>,
    limits: PluginLimits,
    grants: PluginGrants,
    admission: AdmissionSpec,
    pub(super) controller: ControllerSpec,
}

/// How a controller runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ControllerSpec {
    /// Keys reconciled at once (default 4).
    pub(super) workers: Option<usize>,
}

impl PluginSpec {
    /// The configuration, as the component gets it (JSON).
    pub(super) fn config_json(&self) -> String {
        self.config.clone().unwrap_or_else(|| json!({})).to_string()
    }

    /// The limits of every call.
    pub(super) fn call_limits(&self) -> Limits {
        let defaults = Limits::default();
        Limits {
            deadline: self.limits.deadline_millis.map_or(defaults.deadline, Duration::from_millis),
            memory_bytes: self.limits.memory_bytes.unwrap_or(defaults.memory_bytes),
            ..defaults
        }
    }

    /// Whether a failed call refuses the request.
    fn fails_closed(&self) -> bool {
        self.failure_policy.as_deref() != Some("Ignore")
    }
}

/// What a plugin may reach: nothing unless granted.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", default)]
struct PluginGrants {
    environment: BTreeMap<String, String>,
    directories: Vec<GrantedDirectory>,
    tcp_connect: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", default)]
struct GrantedDirectory {
    host_path: String,
    path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", default)]
struct PluginLimits {
    deadline_millis: Option<u64>,
    memory_bytes: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct AdmissionSpec {
    mutating: bool,
    order: i64,
    rules: Vec<Rule>,
    namespace_selector: Option<Selector>,
}

/// Which requests a policy sees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rule {
    /// API groups (`""` core, `*` all).
    pub api_groups: Vec<String>,
    /// Resources (`pods`, `*`).
    pub resources: Vec<String>,
    /// `CREATE`, `UPDATE`, `DELETE`, `*`.
    pub operations: Vec<String>,
}

impl Rule {
    fn matches(&self, group: &str, resource: &str, operation: &str) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|item| item == "*" || item == value);
        any(&self.api_groups, group) && any(&self.resources, resource) && any(&self.operations, operation)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Selector {
    match_labels: BTreeMap<String, String>,
}

/// What runs for an active admission policy.
enum Runner {
    /// The loaded component.
    Loaded(Arc<AdmissionPolicy>),
    /// No component: every call fails with this reason. A policy that
    /// fails closed runs so while its signature cannot be checked.
    Refusing(String),
}

/// One active admission policy.
pub struct ActivePolicy {
    /// The Plugin object's name.
    pub name: String,
    spec: PluginSpec,
    runner: Runner,
}

impl ActivePolicy {
    /// Whether the policy changes objects.
    pub fn mutating(&self) -> bool {
        self.spec.admission.mutating
    }

    /// Whether a failed call refuses the request.
    pub fn fails_closed(&self) -> bool {
        self.spec.fails_closed()
    }

    /// Whether the policy sees `operation` on `resource` of `group`.
    pub fn matches(&self, group: &str, resource: &str, operation: &str) -> bool {
        self.spec.admission.rules.iter().any(|rule| rule.matches(group, resource, operation))
    }

    /// Whether a namespace with `labels` is selected (no selector: all).
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.spec
            .admission
            .namespace_selector
            .as_ref()
            .is_none_or(|s| s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }

    /// Whether the policy has a namespace selector.
    pub fn has_namespace_selector(&self) -> bool {
        self.spec.admission.namespace_selector.as_ref().is_some_and(|s| !s.match_labels.is_empty())
    }

    /// Decides `review`.
    ///
    /// # Errors
    /// The call failed, or no component can run (the reason).
    pub async fn admit(&self, host: &PluginHost, review: &Review) -> Result<Decision, String> {
        match &self.runner {
            Runner::Loaded(policy) => policy.admit(host, review).await.map_err(|e| e.to_string()),
            Runner::Refusing(reason) => Err(reason.clone()),
        }
    }

    fn is_loaded(&self) -> bool {
        matches!(self.runner, Runner::Loaded(_))
    }
}

/// The active admission policies of one API server, swapped whole.
#[derive(Default)]
pub struct ActivePolicies {
    current: RwLock<Arc<Vec<Arc<ActivePolicy>>>>,
}

impl ActivePolicies {
    /// The policies now, in the order they run: mutating first, then by
    /// `order` and name. Calls in flight keep the set they started with.
    pub fn current(&self) -> Arc<Vec<Arc<ActivePolicy>>> {
        self.current.read().expect("active policies lock").clone()
    }

    fn replace(&self, mut policies: Vec<Arc<ActivePolicy>>) {
        policies.sort_by(|a, b| {
            (!a.mutating(), a.spec.admission.order, &a.name).cmp(&(!b.mutating(), b.spec.admission.order, &b.name))
        });
        *self.current.write().expect("active policies lock") = Arc::new(policies);
    }
}

/// A status condition: status, reason, message.
pub(super) type Condition = (&'static str, &'static str, String);

/// Keeps an API server's admission policies current with the `Plugin`
/// objects, the stored components and the trusted signers.
pub struct PluginController {
    objects: ObjectStore,
    registry: SharedRegistry,
    host: Arc<PluginHost>,
    active: Arc<ActivePolicies>,
    status: ApiClient,
}

impl PluginController {
    /// A controller loading components into `host` and publishing them in
    /// `active`, writing the Plugins' status through `status`.
    pub fn new(
        objects: ObjectStore,
        registry: SharedRegistry,
        host: Arc<PluginHost>,
        active: Arc<ActivePolicies>,
        status: ApiClient,
    ) -> Self {
        Self { objects, registry, host, active, status }
    }

    /// Follows the plugins until `stop` turns true: a loop on the controller
    /// runtime, on every node, over the informers of the Plugins, the
    /// trusted signers and the stored components.
    pub async fn run(self, state: &ApiState, stop: tokio::sync::watch::Receiver<bool>) {
        let Some(informers) = plugin_informers(state) else { return };
        let this = Arc::new(self);
        let reconciler = Whole::new(informers, move || {
            let this = this.clone();
            async move {
                this.reconcile().await;
                Action::Done
            }
        });
        let settings = ("admission-plugins", 1, super::loops::SERVING_RESYNC);
        super::loops::run_loop(state, Arc::new(reconciler), settings, everywhere(), stop).await;
    }

    /// Loads every Plugin that changed; keeps those that did not and still
    /// verify against the trusted signers; reports each one's state on its
    /// status (the leader writes it).
    pub async fn reconcile(&self) {
        let registry = self.registry.current();
        let Some(plugins_type) = registry.find_plural(GROUP, "plugins").cloned() else { return };
        let Ok(listed) = self.objects.list_at(&plugins_type, None, 0) else { return };
        let trust = TrustRoot::read(&self.objects, &registry);
        let previous = self.active.current();
        let mut next = Vec::new();
        for object in &listed.items {
            let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let spec: PluginSpec =
                object.get("spec").cloned().and_then(|s| serde_json::from_value(s).ok()).unwrap_or_default();
            if spec.world != ADMISSION_WORLD {
                continue;
            }
            let (running, condition) = self.settle(&name, &spec, &trust, &previous).await;
            next.extend(running);
            if self.objects.is_leader() {
                report(&self.status, &plugins_type, object, &spec, condition).await;
            }
        }
        // The set is the same when every policy is one already active.
        let changed = next.len() != previous.len() || !next.iter().all(|a| previous.iter().any(|b| Arc::ptr_eq(a, b)));
        if changed {
            self.active.replace(next);
        }
    }

    /// What runs for Plugin `name` with `spec` under `trust`, and the
    /// condition for its status.
    async fn settle(
        &self,
        name: &str,
        spec: &PluginSpec,
        trust: &TrustRoot,
        previous: &[Arc<ActivePolicy>],
    ) -> (Option<Arc<ActivePolicy>>, Condition) {
        let signers = match trust {
            TrustRoot::Known(signers) => signers,
            TrustRoot::Unknown(reason) => return Self::untrusted(name, spec, reason, previous),
        };
        let before = previous.iter().find(|p| p.name == name && p.is_loaded());
        let outcome = match before {
            Some(active) if active.spec == *spec => verify_signature(name, spec, signers).map(|()| active.clone()),
            _ => self.load(name, spec, signers).await.map(Arc::new),
        };
        match outcome {
            Ok(active) => (Some(active), ("True", "Active", format!("component {} is active", spec.digest))),
            Err(error) => {
                tracing::warn!(plugin = name, %error, "a plugin was refused");
                // A refused update leaves the version before it running,
                // as long as its own signature still verifies.
                let kept =
                    before.filter(|b| b.spec != *spec && verify_signature(name, &b.spec, signers).is_ok()).cloned();
                (kept, ("False", "Refused", error))
            }
        }
    }

    /// While the trusted signers are missing or unreadable, a policy that
    /// fails closed refuses the requests it matches (reusing its refusing
    /// entry when nothing changed); one that fails open does not run.
    fn untrusted(
        name: &str,
        spec: &PluginSpec,
        reason: &str,
        previous: &[Arc<ActivePolicy>],
    ) -> (Option<Arc<ActivePolicy>>, Condition) {
        let message = format!("the trusted plugin signers cannot be read: {reason}");
        tracing::warn!(plugin = name, message, "a plugin cannot be verified");
        if !spec.fails_closed() {
            return (None, ("False", "SignersUnreadable", format!("{message}; not run (failurePolicy Ignore)")));
        }
        let condition = ("False", "SignersUnreadable", format!("{message}; the requests it matches are refused"));
        let same = previous
            .iter()
            .find(|p| p.name == name && p.spec == *spec && matches!(&p.runner, Runner::Refusing(m) if *m == message));
        let refusing = same.cloned().unwrap_or_else(|| {
            Arc::new(ActivePolicy { name: name.to_owned(), spec: spec.clone(), runner: Runner::Refusing(message) })
        });
        (Some(refusing), condition)
    }

    async fn load(&self, name: &str, spec: &PluginSpec, signers: &[Vec<u8>]) -> Result<ActivePolicy, String> {
        verify_signature(name, spec, signers)?;
        let bytes = load_component(&self.objects, &spec.digest)
            .map_err(|e| e.message)?
            .ok_or_else(|| format!("no component with digest {} has been pushed", spec.digest))?;
        let (config, limits) = (spec.config_json(), spec.call_limits());
        let tcp_connect = spec
            .grants
            .tcp_connect
            .iter()
            .map(|a| a.parse().map_err(|_| format!("grants.tcpConnect: {a:?} is not an address:port")))
            .collect::<Result<_, _>>()?;
        let grants = Grants {
            environment: spec.grants.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            directories: spec.grants.directories.iter().map(|d| (d.host_path.clone().into(), d.path.clone())).collect(),
            tcp_connect,
        };
        let policy = AdmissionPolicy::load_with_grants(&self.host, name, &spec.digest, &bytes, &config, limits, grants)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(plugin = name, digest = spec.digest, "admission policy active");
        Ok(ActivePolicy { name: name.to_owned(), spec: spec.clone(), runner: Runner::Loaded(Arc::new(policy)) })
    }
}

/// The name the plugin loops write Plugins' status as.
pub const STATUS_WRITER: &str = "plugin-controller";

/// Writes `condition` as the Ready condition of Plugin `object` (with
/// `spec`), and the generation it describes as `observedGeneration`,
/// unless the status says so already; through `client`, as
/// [`STATUS_WRITER`].
pub(super) async fn report(
    client: &ApiClient,
    plugins_type: &super::resources::ResourceType,
    object: &Value,
    spec: &PluginSpec,
    condition: Condition,
) {
    let active = condition.0 == "True";
    let Some(mut patch) = ready_patch(object, condition) else { return };
    if active {
        patch["status"]["activeDigest"] = json!(spec.digest);
    }
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let patch = (PatchType::Merge, patch.to_string().into_bytes());
    if let Err(refused) = client.patch(plugins_type, None, name, Some("status"), patch).await {
        tracing::debug!(plugin = name, %refused, "the plugin's status will be written again");
    }
}

/// The merge patch that makes `condition` the `Ready` condition of
/// `object`'s status, with the generation it describes as
/// `observedGeneration`; none when the status says so already.
pub(super) fn ready_patch(object: &Value, (status, reason, message): Condition) -> Option<Value> {
    let current = object.pointer("/status/conditions/0");
    let generation = object.pointer("/metadata/generation").cloned().unwrap_or(Value::Null);
    let same = current.is_some_and(|c| {
        c.get("status").and_then(Value::as_str) == Some(status)
            && c.get("reason").and_then(Value::as_str) == Some(reason)
            && c.get("message").and_then(Value::as_str) == Some(message.as_str())
    }) && object.pointer("/status/observedGeneration") == Some(&generation);
    if same {
        return None;
    }
    let condition = json!({"type": "Ready", "status": status, "reason": reason, "message": message,
        "lastTransitionTime": super::objects::now()});
    Some(json!({"status": {"conditions": [condition], "observedGeneration": generation}}))
}

/// The informers whose changes concern plugins: the Plugins, the trusted
/// signers and the stored components; none while the kinds are not served.
pub(super) fn plugin_informers(state: &ApiState) -> Option<Vec<Arc<engenho_control::Informer>>> {
    let registry = state.registry();
    let plugins = registry.find_plural(GROUP, "plugins")?;
    let signers = registry.find_plural(GROUP, SIGNERS_PLURAL)?;
    Some(vec![
        super::loops::informer_of(&state.informers, plugins),
        super::loops::informer_of(&state.informers, signers),
        super::loops::keys_informer(&state.informers, "plugin components", COMPONENTS_PREFIX),
    ])
}

/// Checks a Plugin's signature against the trusted signers.
pub(super) fn verify_signature(name: &str, spec: &PluginSpec, signers: &[Vec<u8>]) -> Result<(), String> {
    let what = format!("the name, world, digest, mutating flag, limits and grants of {name}");
    trust::verify(&spec.signature, &spec.signed_message(name), signers, &what)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    /// Goal: a signature binds everything that gives a plugin power, and
    /// not its configuration. Method: sign one spec, then change each
    /// field in turn and verify the old signature against the change.
    #[test]
    fn signatures_bind_everything_that_gives_power() {
        let key = SigningKey::from_text(&SigningKey::generate().expect("key")).expect("key");
        let public = vec![STANDARD.decode(key.public_base64()).expect("base64")];
        let signed = json!({"world": ADMISSION_WORLD, "digest": "abc", "config": {"a": 1},
            "limits": {"deadlineMillis": 100}, "grants": {"environment": {"A": "1"}, "tcpConnect": ["127.0.0.1:80"]},
            "admission": {"mutating": false}});
        let signature = key.sign_plugin("p", &signed).expect("signed");
        let verify = |name: &str, spec: &Value| {
            let mut spec: PluginSpec = serde_json::from_value(spec.clone()).expect("spec");
            spec.signature = signature.clone();
            verify_signature(name, &spec, &public)
        };
        assert!(verify("p", &signed).is_ok());
        let mut configured = signed.clone();
        configured["config"] = json!({"a": 2});
        assert!(verify("p", &configured).is_ok(), "the configuration is not signed");
        assert!(verify("q", &signed).is_err(), "another name");
        let changes = [
            ("/digest", json!("abd")),
            ("/limits/deadlineMillis", json!(10_000)),
            ("/grants/environment/A", json!("2")),
            ("/grants/tcpConnect/0", json!("127.0.0.1:2379")),
            ("/admission/mutating", json!(true)),
        ];
        for (pointer, value) in changes {
            let mut changed = signed.clone();
            *changed.pointer_mut(pointer).expect("field") = value;
            let refused = verify("p", &changed).expect_err(pointer);
            assert!(refused.contains("does not verify against any trusted signer"), "{refused}");
        }
        let mut granted = signed.clone();
        granted["grants"]["directories"] = json!([{"hostPath": "/srv", "path": "/data"}]);
        assert!(verify("p", &granted).is_err(), "a new directory");
        let unsigned = PluginSpec { world: ADMISSION_WORLD.into(), ..PluginSpec::default() };
        assert!(verify_signature("p", &unsigned, &public).expect_err("unsigned").contains("not signed"));
    }

    #[test]
    fn rules_match_groups_resources_and_operations() {
        let rule =
            Rule { api_groups: vec!["".into()], resources: vec!["pods".into()], operations: vec!["CREATE".into()] };
        assert!(rule.matches("", "pods", "CREATE"));
        assert!(!rule.matches("", "pods", "DELETE"));
        assert!(!rule.matches("apps", "pods", "CREATE"));
        let any = Rule { api_groups: vec!["*".into()], resources: vec!["*".into()], operations: vec!["*".into()] };
        assert!(any.matches("apps", "deployments", "UPDATE"));
    }
}
