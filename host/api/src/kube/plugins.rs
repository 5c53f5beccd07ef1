//! Plugins in the cluster: `Plugin` objects (engenho.io/v1alpha1) name a
//! component by digest, carry its signature, configuration, match rules,
//! failure policy and limits; component bytes live in the store by digest;
//! every API server keeps the active admission policies current from a
//! store watch and swaps versions without a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use engenho_store::{KeyRange, Watcher};
use engenho_wasm::{AdmissionPolicy, Grants, Limits, PluginHost, digest_of};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::objects::ObjectStore;
use super::resources::{Registry, SharedRegistry};
use super::status::ApiError;

/// The group of engenho's own kinds.
pub const GROUP: &str = "engenho.io";

/// The world an admission policy implements.
pub const ADMISSION_WORLD: &str = "admission-policy";

/// Where Plugin objects are stored.
const PLUGINS_PREFIX: &str = "/registry/engenho.io/plugins/";

/// Where component bytes live: `<prefix><digest>` holds the manifest,
/// `<prefix><digest>/<n>` the chunks.
const COMPONENTS_PREFIX: &str = "/engenho/plugins/components/";

/// Largest chunk of a component in one store value.
const CHUNK_BYTES: usize = 512 * 1024;

/// Largest component accepted.
pub const COMPONENT_BYTES_MAX: usize = 3 * 1024 * 1024;

/// The ConfigMap (in kube-system) whose values are the trusted signers'
/// Ed25519 public keys, base64.
pub const SIGNERS_CONFIGMAP: &str = "engenho-plugin-signers";

/// How often plugins are looked at again without a change.
const RESYNC_INTERVAL: Duration = Duration::from_secs(5);

/// The message a plugin signature signs.
pub fn signed_message(name: &str, world: &str, digest: &str) -> Vec<u8> {
    format!("engenho-plugin-v1\n{name}\n{world}\n{digest}").into_bytes()
}

/// A plugin signing key (Ed25519), kept as base64 PKCS #8 text.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A new key, as the text of its file.
    ///
    /// # Errors
    /// The system's random source failed.
    pub fn generate() -> Result<String, String> {
        let document = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).map_err(|e| e.to_string())?;
        Ok(format!("{}\n", STANDARD.encode(document.as_ref())))
    }

    /// The key in a key file's `text`.
    ///
    /// # Errors
    /// Text that is not a base64 Ed25519 PKCS #8 key.
    pub fn from_text(text: &str) -> Result<Self, String> {
        let der = STANDARD.decode(text.trim()).map_err(|_| "the key file is not base64".to_owned())?;
        let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|e| format!("not an Ed25519 key: {e}"))?;
        Ok(Self { pair })
    }

    /// The key at `path`, made there (readable by its owner only) if absent.
    ///
    /// # Errors
    /// Unreadable or unwritable files; a file that holds no key.
    pub fn load_or_create(path: &std::path::Path) -> Result<Self, String> {
        let shown = path.display();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_text(&text).map_err(|e| format!("{shown}: {e}")),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let text = Self::generate()?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(|e| format!("{shown}: {e}"))?;
                std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|e| format!("{shown}: {e}"))?;
                Self::from_text(&text)
            }
            Err(error) => Err(format!("{shown}: {error}")),
        }
    }

    /// The public key, base64: what the signers ConfigMap holds.
    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.pair.public_key().as_ref())
    }

    /// The base64 signature of plugin `name` of `world` with `digest`.
    pub fn sign(&self, name: &str, world: &str, digest: &str) -> String {
        STANDARD.encode(self.pair.sign(&signed_message(name, world, digest)))
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
        "world": {"type": "string", "enum": [ADMISSION_WORLD],
            "description": "The WIT world the component implements."},
        "digest": {"type": "string", "description": "Hex BLAKE3 digest of the component."},
        "signature": {"type": "string",
            "description": "Base64 Ed25519 signature over (name, world, digest) by a trusted signer."},
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
struct PluginSpec {
    world: String,
    digest: String,
    signature: String,
    config: Option<Value>,
    failure_policy: Option<String>,
    limits: PluginLimits,
    grants: PluginGrants,
    admission: AdmissionSpec,
}

/// What a plugin may reach: nothing unless granted.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PluginGrants {
    environment: BTreeMap<String, String>,
    directories: Vec<GrantedDirectory>,
    tcp_connect: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GrantedDirectory {
    host_path: String,
    path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
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

/// One active admission policy.
pub struct ActivePolicy {
    /// The Plugin object's name.
    pub name: String,
    spec: PluginSpec,
    policy: AdmissionPolicy,
}

impl ActivePolicy {
    /// Whether the policy changes objects.
    pub fn mutating(&self) -> bool {
        self.spec.admission.mutating
    }

    /// Whether a failed call refuses the request.
    pub fn fails_closed(&self) -> bool {
        self.spec.failure_policy.as_deref() != Some("Ignore")
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

    /// The loaded component.
    pub fn policy(&self) -> &AdmissionPolicy {
        &self.policy
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

/// Keeps an API server's admission policies current with the `Plugin`
/// objects, the stored components and the trusted signers.
pub struct PluginController {
    objects: ObjectStore,
    registry: SharedRegistry,
    host: Arc<PluginHost>,
    active: Arc<ActivePolicies>,
}

impl PluginController {
    /// A controller loading components into `host` and publishing them in
    /// `active`.
    pub fn new(
        objects: ObjectStore,
        registry: SharedRegistry,
        host: Arc<PluginHost>,
        active: Arc<ActivePolicies>,
    ) -> Self {
        Self { objects, registry, host, active }
    }

    /// Follows the plugins until `stop` turns true.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let revision = self.objects.store().hub().current_revision();
            self.reconcile().await;
            // Plugins, their components and the trusted signers: a watch
            // of each, so that no other write wakes the controller.
            let watch = |range: KeyRange| Watcher::new(self.objects.store(), range, revision + 1);
            let mut plugins = watch(KeyRange::prefix(PLUGINS_PREFIX));
            let mut components = watch(KeyRange::prefix(COMPONENTS_PREFIX));
            let mut signers =
                watch(KeyRange::single(format!("/registry/core/configmaps/kube-system/{SIGNERS_CONFIGMAP}")));
            let mut resync = tokio::time::interval(RESYNC_INTERVAL);
            resync.tick().await;
            loop {
                let watching = tokio::select! {
                    batches = plugins.next() => batches.is_ok(),
                    batches = components.next() => batches.is_ok(),
                    batches = signers.next() => batches.is_ok(),
                    _ = resync.tick() => true,
                    _ = stop.wait_for(|stopped| *stopped) => return,
                };
                if !watching {
                    break;
                }
                self.reconcile().await;
            }
        }
    }

    /// Loads every Plugin that changed; keeps those that did not; reports
    /// each one's state on its status (the leader writes it).
    pub async fn reconcile(&self) {
        let registry = self.registry.current();
        let Some(plugins_type) = registry.find_plural(GROUP, "plugins").cloned() else { return };
        let Ok(listed) = self.objects.list_at(&plugins_type, None, 0) else { return };
        let signers = self.trusted_signers(&registry);
        let previous = self.active.current();
        let mut next = Vec::new();
        for object in &listed.items {
            let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let spec: PluginSpec =
                object.get("spec").cloned().and_then(|s| serde_json::from_value(s).ok()).unwrap_or_default();
            if spec.world != ADMISSION_WORLD {
                continue;
            }
            let unchanged = previous.iter().find(|p| p.name == name && p.spec == spec);
            let outcome = match unchanged {
                Some(active) => Ok(active.clone()),
                None => self.load(&name, &spec, &signers).map(Arc::new),
            };
            let condition = match &outcome {
                Ok(active) => {
                    next.push(active.clone());
                    ("True", "Active", format!("component {} is active", spec.digest))
                }
                Err(error) => {
                    tracing::warn!(plugin = name, %error, "a plugin was refused");
                    // A refused update leaves the version before it running.
                    if let Some(before) = previous.iter().find(|p| p.name == name) {
                        next.push(before.clone());
                    }
                    ("False", "Refused", error.clone())
                }
            };
            if self.objects.is_leader() {
                self.report(&plugins_type, object, &spec, condition).await;
            }
        }
        // The set is the same when every policy is one already active.
        let changed = next.len() != previous.len() || !next.iter().all(|a| previous.iter().any(|b| Arc::ptr_eq(a, b)));
        if changed {
            self.active.replace(next);
        }
    }

    fn load(&self, name: &str, spec: &PluginSpec, signers: &[Vec<u8>]) -> Result<ActivePolicy, String> {
        verify_signature(name, spec, signers)?;
        let bytes = load_component(&self.objects, &spec.digest)
            .map_err(|e| e.message)?
            .ok_or_else(|| format!("no component with digest {} has been pushed", spec.digest))?;
        let config = spec.config.clone().unwrap_or_else(|| json!({})).to_string();
        let defaults = Limits::default();
        let limits = Limits {
            deadline: spec.limits.deadline_millis.map_or(defaults.deadline, Duration::from_millis),
            memory_bytes: spec.limits.memory_bytes.unwrap_or(defaults.memory_bytes),
            ..defaults
        };
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
            .map_err(|e| e.to_string())?;
        tracing::info!(plugin = name, digest = spec.digest, "admission policy active");
        Ok(ActivePolicy { name: name.to_owned(), spec: spec.clone(), policy })
    }

    /// The trusted signers' public keys, from the signers ConfigMap.
    fn trusted_signers(&self, registry: &Registry) -> Vec<Vec<u8>> {
        let Some(configmaps) = registry.find("", "v1", "configmaps") else { return Vec::new() };
        let Ok(Some(configmap)) = self.objects.get_local(configmaps, Some("kube-system"), SIGNERS_CONFIGMAP) else {
            return Vec::new();
        };
        let data = configmap.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
        data.values().filter_map(Value::as_str).filter_map(|key| STANDARD.decode(key.trim()).ok()).collect()
    }

    async fn report(
        &self,
        plugins_type: &super::resources::ResourceType,
        object: &Value,
        spec: &PluginSpec,
        (status, reason, message): (&str, &str, String),
    ) {
        let current = object.pointer("/status/conditions/0");
        let same = current.is_some_and(|c| {
            c.get("status").and_then(Value::as_str) == Some(status)
                && c.get("message").and_then(Value::as_str) == Some(message.as_str())
        });
        if same {
            return;
        }
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let condition = json!({"type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": super::objects::now()});
        let digest = spec.digest.clone();
        let result = self
            .objects
            .modify(plugins_type, None, name, |object| {
                object["status"]["conditions"] = json!([condition.clone()]);
                if status == "True" {
                    object["status"]["activeDigest"] = json!(digest);
                }
                true
            })
            .await;
        if let Err(error) = result {
            tracing::debug!(plugin = name, %error, "the plugin's status will be written again");
        }
    }
}

/// Checks a Plugin's signature against the trusted signers.
fn verify_signature(name: &str, spec: &PluginSpec, signers: &[Vec<u8>]) -> Result<(), String> {
    if spec.signature.is_empty() {
        return Err("the plugin is not signed".into());
    }
    if signers.is_empty() {
        return Err(format!("no trusted signers: put their public keys in ConfigMap kube-system/{SIGNERS_CONFIGMAP}"));
    }
    let signature = STANDARD.decode(spec.signature.trim()).map_err(|_| "the signature is not base64".to_owned())?;
    let message = signed_message(name, &spec.world, &spec.digest);
    let trusted = signers.iter().any(|key| UnparsedPublicKey::new(&ED25519, key).verify(&message, &signature).is_ok());
    if trusted {
        Ok(())
    } else {
        Err(format!(
            "the signature over ({name}, {}, {}) does not verify against any trusted signer",
            spec.world, spec.digest
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_name_world_and_digest() {
        let random = ring::rand::SystemRandom::new();
        let key =
            Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&random).expect("key").as_ref()).expect("key");
        let public = key.public_key().as_ref().to_vec();
        let sign = |name: &str, digest: &str| STANDARD.encode(key.sign(&signed_message(name, ADMISSION_WORLD, digest)));
        let spec = |signature: String| PluginSpec {
            world: ADMISSION_WORLD.into(),
            digest: "abc".into(),
            signature,
            ..PluginSpec::default()
        };
        assert!(verify_signature("p", &spec(sign("p", "abc")), std::slice::from_ref(&public)).is_ok());
        assert!(verify_signature("q", &spec(sign("p", "abc")), std::slice::from_ref(&public)).is_err(), "another name");
        assert!(
            verify_signature("p", &spec(sign("p", "abd")), std::slice::from_ref(&public)).is_err(),
            "another digest"
        );
        assert!(verify_signature("p", &spec(String::new()), &[public]).expect_err("unsigned").contains("not signed"));
        assert!(verify_signature("p", &spec(sign("p", "abc")), &[]).expect_err("no signers").contains("no trusted"));
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
