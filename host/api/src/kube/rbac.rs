//! Role-based access control: what a user may do, read from the Roles,
//! ClusterRoles and their bindings in the store at the moment of asking.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use engenho_store::{KeyRange, Mvcc, RangeRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AUTHENTICATED_GROUP, NODES_GROUP, UserInfo};
use super::resources::{Registry, ResourceType};
use super::status::ApiError;

/// What a request does, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, `impersonate`, ...
    pub verb: String,
    /// The resource acted on; `None` for a non-resource path.
    pub resource: Option<ResourceAttributes>,
    /// The request path, for non-resource requests.
    pub path: String,
}

/// The resource a request acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    /// API group; empty for the core group.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource, or empty.
    pub subresource: String,
    /// Namespace, or empty for cluster-scoped requests.
    pub namespace: String,
    /// Object name, or empty for collections.
    pub name: String,
}

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyRule {
    /// Verbs allowed; `*` is every verb.
    pub verbs: Vec<String>,
    /// API groups; `*` is every group, `""` the core group.
    pub api_groups: Vec<String>,
    /// Resources (`pods`, `pods/log`, `*/scale`, `*`).
    pub resources: Vec<String>,
    /// Object names; empty is every object.
    pub resource_names: Vec<String>,
    /// Non-resource paths (`/healthz`, `/apis/*`).
    #[serde(rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

impl PolicyRule {
    /// Whether the rule allows the request.
    pub fn allows(&self, attributes: &Attributes) -> bool {
        if !self.verbs.iter().any(|v| v == "*" || *v == attributes.verb) {
            return false;
        }
        match &attributes.resource {
            Some(resource) => self.allows_resource(resource),
            None => self.non_resource_urls.iter().any(|url| match url.strip_suffix('*') {
                Some(prefix) => attributes.path.starts_with(prefix),
                None => *url == attributes.path,
            }),
        }
    }

    fn allows_resource(&self, r: &ResourceAttributes) -> bool {
        let group = self.api_groups.iter().any(|g| g == "*" || *g == r.group);
        let combined =
            if r.subresource.is_empty() { r.resource.clone() } else { format!("{}/{}", r.resource, r.subresource) };
        let resource = self.resources.iter().any(|rule| {
            rule == "*"
                || *rule == combined
                || (!r.subresource.is_empty() && rule.strip_prefix("*/") == Some(r.subresource.as_str()))
        });
        let name = self.resource_names.is_empty() || (!r.name.is_empty() && self.resource_names.contains(&r.name));
        group && resource && name
    }
}

/// A binding's subject.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

impl Subject {
    fn matches(&self, user: &UserInfo, binding_namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => self.name == user.name,
            "Group" => user.groups.contains(&self.name),
            "ServiceAccount" => {
                let namespace = if self.namespace.is_empty() { binding_namespace } else { &self.namespace };
                user.as_service_account() == Some((namespace, self.name.as_str()))
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct RoleRef {
    kind: String,
    name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Binding {
    metadata: Metadata,
    subjects: Vec<Subject>,
    role_ref: RoleRef,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Metadata {
    name: String,
    namespace: String,
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Role {
    metadata: Metadata,
    rules: Vec<PolicyRule>,
    aggregation_rule: Option<AggregationRule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct AggregationRule {
    cluster_role_selectors: Vec<Value>,
}

/// A rule and where it came from.
#[derive(Debug, Clone)]
pub struct GrantedRule {
    /// The rule.
    pub rule: PolicyRule,
    /// The binding and role that grant it, for the decision's reason.
    pub source: String,
}

/// Decides requests from the RBAC objects in the store.
pub struct Authorizer {
    store: Arc<Mvcc>,
    roles: ResourceType,
    role_bindings: ResourceType,
    cluster_roles: ResourceType,
    cluster_role_bindings: ResourceType,
    decoded: Mutex<DecodedObjects>,
}

/// Aggregated ClusterRoles followed at most this deep.
const AGGREGATION_DEPTH_MAX: usize = 4;

impl Authorizer {
    /// An authorizer over the RBAC objects in `store`.
    pub fn new(store: Arc<Mvcc>, registry: &Registry) -> Self {
        let kind = |plural: &str| {
            registry.find("rbac.authorization.k8s.io", "v1", plural).expect("RBAC kinds are built in").clone()
        };
        Self {
            store,
            roles: kind("roles"),
            role_bindings: kind("rolebindings"),
            cluster_roles: kind("clusterroles"),
            cluster_role_bindings: kind("clusterrolebindings"),
            decoded: Mutex::default(),
        }
    }

    /// Whether `user` may do what `attributes` say; if so, why.
    ///
    /// # Errors
    /// The store could not be read.
    pub fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Result<Option<String>, ApiError> {
        if user.is_master() {
            return Ok(Some(format!("{} is in the privileged group system:masters", user.name)));
        }
        let namespace = attributes.resource.as_ref().map_or("", |r| r.namespace.as_str());
        let granted = self.rules_for(user, namespace)?;
        Ok(granted.into_iter().find(|g| g.rule.allows(attributes)).map(|g| format!("RBAC: allowed by {}", g.source)))
    }

    /// Every rule granted to `user` in `namespace` (empty: cluster-wide
    /// rules only).
    ///
    /// # Errors
    /// The store could not be read.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Result<Vec<GrantedRule>, ApiError> {
        if user.is_master() {
            let everything = PolicyRule {
                verbs: vec!["*".into()],
                api_groups: vec!["*".into()],
                resources: vec!["*".into()],
                ..PolicyRule::default()
            };
            let paths =
                PolicyRule { verbs: vec!["*".into()], non_resource_urls: vec!["*".into()], ..Default::default() };
            let source = "the privileged group system:masters".to_owned();
            return Ok(vec![
                GrantedRule { rule: everything, source: source.clone() },
                GrantedRule { rule: paths, source },
            ]);
        }
        let mut granted = Vec::new();
        for binding in self.read::<Binding>(&self.cluster_role_bindings.key_prefix(None))? {
            if binding.role_ref.kind == "ClusterRole" && binding.subjects.iter().any(|s| s.matches(user, "")) {
                let source = format!(
                    "ClusterRoleBinding \"{}\" of ClusterRole \"{}\"",
                    binding.metadata.name, binding.role_ref.name
                );
                self.grant_cluster_role(&binding.role_ref.name, &source, &mut granted, 0)?;
            }
        }
        if !namespace.is_empty() {
            for binding in self.read::<Binding>(&self.role_bindings.key_prefix(Some(namespace)))? {
                if !binding.subjects.iter().any(|s| s.matches(user, namespace)) {
                    continue;
                }
                let source = format!(
                    "RoleBinding \"{}/{}\" of {} \"{}\"",
                    namespace, binding.metadata.name, binding.role_ref.kind, binding.role_ref.name
                );
                match binding.role_ref.kind.as_str() {
                    "Role" => {
                        let key = self.roles.key(Some(namespace), &binding.role_ref.name);
                        for role in self.read::<Role>(&key)? {
                            granted.extend(
                                role.rules
                                    .iter()
                                    .map(|rule| GrantedRule { rule: rule.clone(), source: source.clone() }),
                            );
                        }
                    }
                    "ClusterRole" => self.grant_cluster_role(&binding.role_ref.name, &source, &mut granted, 0)?,
                    _ => {}
                }
            }
        }
        Ok(granted)
    }

    /// Refuses a Role, ClusterRole or binding that would give away more
    /// than `user` holds: each rule of a role must be one the user holds in
    /// its scope (unless the user may `escalate`), and a binding's role must
    /// be (unless the user may `bind` it).
    ///
    /// # Errors
    /// 403 naming the first rule the user does not hold; store failures.
    pub fn check_escalation(
        &self,
        user: &UserInfo,
        plural: &str,
        namespace: &str,
        object: &Value,
    ) -> Result<(), ApiError> {
        if user.is_master() {
            return Ok(());
        }
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let on = |verb: &str, resource: &str, name: &str| Attributes {
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                group: RBAC_GROUP.into(),
                resource: resource.into(),
                subresource: String::new(),
                namespace: namespace.into(),
                name: name.into(),
            }),
            path: String::new(),
        };
        let rules: Vec<PolicyRule> = match plural {
            "roles" | "clusterroles" => {
                if self.authorize(user, &on("escalate", plural, name))?.is_some() {
                    return Ok(());
                }
                let role: Role = serde_json::from_value(object.clone()).unwrap_or_default();
                let mut rules = role.rules;
                if let Some(aggregation) = role.aggregation_rule.filter(|_| plural == "clusterroles") {
                    rules.extend(self.aggregated_rules(name, &aggregation)?);
                }
                rules
            }
            "rolebindings" | "clusterrolebindings" => {
                let binding: Binding = serde_json::from_value(object.clone()).unwrap_or_default();
                let (role_plural, key) = match binding.role_ref.kind.as_str() {
                    "Role" => ("roles", self.roles.key(Some(namespace), &binding.role_ref.name)),
                    _ => ("clusterroles", self.cluster_roles.key(None, &binding.role_ref.name)),
                };
                if self.authorize(user, &on("bind", role_plural, &binding.role_ref.name))?.is_some() {
                    return Ok(());
                }
                let mut granted = Vec::new();
                if role_plural == "roles" {
                    granted.extend(self.read::<Role>(&key)?.iter().flat_map(|r| r.rules.iter().cloned()));
                } else {
                    let mut rules = Vec::new();
                    self.grant_cluster_role(&binding.role_ref.name, "", &mut rules, 0)?;
                    granted.extend(rules.into_iter().map(|g| g.rule));
                }
                granted
            }
            _ => return Ok(()),
        };
        let held = self.rules_for(user, namespace)?;
        for rule in &rules {
            let atoms = atoms_of(rule, namespace).ok_or_else(|| {
                ApiError::forbidden(format!("{plural} \"{name}\" is forbidden: a rule expands to too many permissions"))
            })?;
            if let Some(missing) = atoms.iter().find(|atom| !held.iter().any(|g| g.rule.allows(atom))) {
                return Err(ApiError::forbidden_on(
                    format!(
                        "{plural}.{RBAC_GROUP} \"{name}\" is forbidden: user \"{}\" (groups={:?}) is attempting to \
                         grant RBAC permissions not currently held: {}",
                        user.name,
                        user.groups,
                        describe(missing)
                    ),
                    RBAC_GROUP,
                    plural,
                    name,
                ));
            }
        }
        Ok(())
    }

    /// The rules a ClusterRole named `name` with `aggregation` would take
    /// from the ClusterRoles it selects (and those they aggregate), as they
    /// stand: what writing that aggregation grants.
    fn aggregated_rules(&self, name: &str, aggregation: &AggregationRule) -> Result<Vec<PolicyRule>, ApiError> {
        let mut granted = Vec::new();
        for member in self.read::<Role>(&self.cluster_roles.key_prefix(None))? {
            let selected = aggregation.cluster_role_selectors.iter().any(|selector| labels_match(selector, &member));
            if selected && member.metadata.name != name {
                self.grant_cluster_role(&member.metadata.name, "", &mut granted, 1)?;
            }
        }
        Ok(granted.into_iter().map(|g| g.rule).collect())
    }

    /// Adds the rules of ClusterRole `name` (with those of the roles it
    /// aggregates) to `granted`.
    fn grant_cluster_role(
        &self,
        name: &str,
        source: &str,
        granted: &mut Vec<GrantedRule>,
        depth: usize,
    ) -> Result<(), ApiError> {
        for role in self.read::<Role>(&self.cluster_roles.key(None, name))? {
            granted.extend(role.rules.iter().map(|rule| GrantedRule { rule: rule.clone(), source: source.to_owned() }));
            let Some(aggregation) = role.aggregation_rule.as_ref().filter(|_| depth < AGGREGATION_DEPTH_MAX) else {
                continue;
            };
            for member in self.read::<Role>(&self.cluster_roles.key_prefix(None))? {
                let selected =
                    aggregation.cluster_role_selectors.iter().any(|selector| labels_match(selector, &member));
                if selected && member.metadata.name != name {
                    self.grant_cluster_role(&member.metadata.name, source, granted, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// The objects under `prefix` (or the one at a full key) that decode as
    /// `T`; others are skipped, as they grant nothing. Each object is
    /// decoded once per revision that wrote it.
    fn read<T>(&self, prefix: &str) -> Result<Vec<Arc<T>>, ApiError>
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let range = if prefix.ends_with('/') {
            KeyRange::prefix(prefix.to_owned())
        } else {
            KeyRange::single(prefix.to_owned())
        };
        let (_, found) = self.store.range(&RangeRequest { range, ..RangeRequest::default() })?;
        let mut decoded = self.decoded.lock().unwrap_or_else(PoisonError::into_inner);
        if decoded.len() + found.kvs.len() > DECODED_KEPT_MAX {
            decoded.clear();
        }
        Ok(found
            .kvs
            .iter()
            .filter_map(|kv| {
                let slot = (TypeId::of::<T>(), kv.key.clone());
                if let Some((revision, object)) = decoded.get(&slot)
                    && *revision == kv.mod_revision
                {
                    return object.clone().downcast::<T>().ok();
                }
                let object: Arc<T> = Arc::new(serde_json::from_slice(&kv.value).ok()?);
                decoded.insert(slot, (kv.mod_revision, object.clone()));
                Some(object)
            })
            .collect())
    }
}

/// RBAC objects kept decoded, at most, before all are let go.
const DECODED_KEPT_MAX: usize = 8192;

/// RBAC objects as decoded, by type and key, with the revision that wrote
/// them.
type DecodedObjects = HashMap<(TypeId, Vec<u8>), (i64, Arc<dyn Any + Send + Sync>)>;

/// The RBAC API group.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Permissions one rule may expand to before it is refused as too broad to
/// check.
const ATOMS_MAX: usize = 4096;

/// The single permissions a rule grants, as requests in `namespace`.
fn atoms_of(rule: &PolicyRule, namespace: &str) -> Option<Vec<Attributes>> {
    let mut atoms = Vec::new();
    let names: Vec<&str> = if rule.resource_names.is_empty() {
        vec![""]
    } else {
        rule.resource_names.iter().map(String::as_str).collect()
    };
    for verb in &rule.verbs {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
                for name in &names {
                    atoms.push(Attributes {
                        verb: verb.clone(),
                        resource: Some(ResourceAttributes {
                            group: group.clone(),
                            resource: resource.to_owned(),
                            subresource: subresource.to_owned(),
                            namespace: namespace.to_owned(),
                            name: (*name).to_owned(),
                        }),
                        path: String::new(),
                    });
                    if atoms.len() > ATOMS_MAX {
                        return None;
                    }
                }
            }
        }
        for url in &rule.non_resource_urls {
            atoms.push(Attributes { verb: verb.clone(), resource: None, path: url.clone() });
        }
    }
    (atoms.len() <= ATOMS_MAX).then_some(atoms)
}

/// A permission as a sentence fragment: `{get pods/log in ""}`.
fn describe(atom: &Attributes) -> String {
    match &atom.resource {
        Some(r) if r.subresource.is_empty() => format!("{{{} {} in \"{}\"}}", atom.verb, r.resource, r.group),
        Some(r) => format!("{{{} {}/{} in \"{}\"}}", atom.verb, r.resource, r.subresource, r.group),
        None => format!("{{{} {}}}", atom.verb, atom.path),
    }
}

/// Whether `role`'s labels satisfy a label selector's `matchLabels` (an
/// aggregation selector).
fn labels_match(selector: &Value, role: &Role) -> bool {
    let Some(wanted) = selector.get("matchLabels").and_then(Value::as_object) else { return false };
    !wanted.is_empty() && wanted.iter().all(|(k, v)| v.as_str() == role.metadata.labels.get(k).map(String::as_str))
}

/// The 403 for `user` not being allowed `attributes`, worded as
/// kube-apiserver words it.
pub fn forbidden(user: &UserInfo, attributes: &Attributes) -> ApiError {
    let Some(r) = &attributes.resource else {
        return ApiError::forbidden(format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"",
            user.name, attributes.verb, attributes.path
        ));
    };
    let combined =
        if r.subresource.is_empty() { r.resource.clone() } else { format!("{}/{}", r.resource, r.subresource) };
    let what = if r.group.is_empty() { combined.clone() } else { format!("{combined}.{}", r.group) };
    let subject = if r.name.is_empty() { what } else { format!("{what} \"{}\"", r.name) };
    let scope = if r.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace \"{}\"", r.namespace)
    };
    ApiError::forbidden_on(
        format!(
            "{subject} is forbidden: User \"{}\" cannot {} resource \"{combined}\" in API group \"{}\" {scope}",
            user.name, attributes.verb, r.group
        ),
        &r.group,
        &r.resource,
        &r.name,
    )
}

/// The label every bootstrap RBAC object carries.
pub(super) const BOOTSTRAP_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");

/// The ClusterRoles and ClusterRoleBindings every cluster has from its first
/// start, as (plural, object).
pub fn bootstrap_policy() -> Vec<(&'static str, Value)> {
    let read = ["get", "list", "watch"];
    let write = ["create", "update", "patch", "delete", "deletecollection"];
    let workloads = json!([
        {"apiGroups": [""], "resources": ["pods", "pods/log", "pods/status", "services", "services/status",
            "endpoints", "configmaps", "serviceaccounts", "events", "persistentvolumeclaims", "replicationcontrollers"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale", "deployments/status", "replicasets",
            "replicasets/scale", "replicasets/status", "daemonsets", "daemonsets/status", "statefulsets",
            "statefulsets/scale", "statefulsets/status"]},
        {"apiGroups": ["batch"], "resources": ["jobs", "jobs/status", "cronjobs", "cronjobs/status"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"]},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets", "poddisruptionbudgets/status"]},
    ]);
    let with_verbs = |rules: &Value, verbs: &[&str]| -> Vec<Value> {
        rules
            .as_array()
            .into_iter()
            .flatten()
            .map(|rule| {
                let mut rule = rule.clone();
                rule["verbs"] = json!(verbs);
                rule
            })
            .collect()
    };
    let read_write = [&read[..], &write[..]].concat();
    // Quotas and limit ranges are read by every role and written only by
    // cluster administrators, as in Kubernetes.
    let limits = json!({"apiGroups": [""], "resources": ["resourcequotas", "resourcequotas/status", "limitranges"],
        "verbs": read});
    let mut view = with_verbs(&workloads, &read);
    view.push(limits.clone());
    let mut edit = with_verbs(&workloads, &read_write);
    edit.push(limits);
    edit.push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": read_write}));
    edit.push(json!({"apiGroups": [""], "resources": ["pods/eviction", "serviceaccounts/token"], "verbs": ["create"]}));
    // Streams into pods: refused by view, as in Kubernetes.
    edit.push(json!({"apiGroups": [""], "resources": ["pods/attach", "pods/exec", "pods/portforward"],
        "verbs": read_write}));
    let mut admin = edit.clone();
    admin.push(json!({"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
        "verbs": read_write}));
    let namespace_read = json!({"apiGroups": [""], "resources": ["namespaces"], "verbs": read});
    for rules in [&mut admin, &mut edit] {
        rules.push(namespace_read.clone());
    }
    let discovery_paths = ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/version", "/version/"];
    let health_paths = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    let cluster_roles: Vec<(&str, Value)> = vec![
        (
            "cluster-admin",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        ),
        ("admin", json!(admin)),
        ("edit", json!(edit)),
        ("view", json!(view)),
        ("system:discovery", json!([{"nonResourceURLs": discovery_paths, "verbs": ["get"]}])),
        ("system:public-info-viewer", json!([{"nonResourceURLs": health_paths, "verbs": ["get"]}])),
        (
            // What a node's agent does; NodeRestriction narrows it to the
            // node's own Node, Lease and pods.
            "system:node",
            json!([
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch", "update"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update", "patch", "delete"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
                {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch", "update"]},
                {"apiGroups": [""], "resources": ["configmaps", "secrets", "services", "endpoints"], "verbs": read},
                {"apiGroups": ["node.k8s.io"], "resources": ["runtimeclasses"], "verbs": read},
                {"apiGroups": ["engenho.io"], "resources": ["components"], "verbs": ["get"]},
                {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "update", "patch"]},
            ]),
        ),
        (
            "system:basic-user",
            json!([
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
                {"apiGroups": ["authorization.k8s.io"],
                 "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
            ]),
        ),
    ];
    let bindings = [
        ("cluster-admin", "system:masters"),
        ("system:discovery", AUTHENTICATED_GROUP),
        ("system:public-info-viewer", AUTHENTICATED_GROUP),
        ("system:basic-user", AUTHENTICATED_GROUP),
        ("system:node", NODES_GROUP),
    ];
    let metadata = |name: &str| {
        json!({
            "name": name,
            "labels": {BOOTSTRAP_LABEL.0: BOOTSTRAP_LABEL.1},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        })
    };
    let mut policy: Vec<(&str, Value)> = cluster_roles
        .into_iter()
        .map(|(name, rules)| {
            let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": metadata(name), "rules": rules});
            ("clusterroles", role)
        })
        .collect();
    policy.extend(bindings.into_iter().map(|(role, group)| {
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": metadata(role),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
        });
        ("clusterrolebindings", binding)
    }));
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(value: Value) -> PolicyRule {
        serde_json::from_value(value).expect("rule")
    }

    fn on(verb: &str, group: &str, resource: &str, subresource: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                group: group.into(),
                resource: resource.into(),
                subresource: subresource.into(),
                namespace: "default".into(),
                name: name.into(),
            }),
            path: String::new(),
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_and_names() {
        let pods = rule(json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}));
        assert!(pods.allows(&on("list", "", "pods", "", "")));
        assert!(!pods.allows(&on("delete", "", "pods", "", "p")));
        assert!(!pods.allows(&on("get", "apps", "pods", "", "p")));
        assert!(!pods.allows(&on("get", "", "pods", "log", "p")), "subresources are named apart");

        let scale = rule(json!({"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]}));
        assert!(scale.allows(&on("patch", "apps", "deployments", "scale", "d")));
        assert!(!scale.allows(&on("patch", "apps", "deployments", "", "d")));

        let one =
            rule(json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["get"]}));
        assert!(one.allows(&on("get", "", "configmaps", "", "a")));
        assert!(!one.allows(&on("get", "", "configmaps", "", "b")));
        assert!(!one.allows(&on("get", "", "configmaps", "", "")), "a named rule does not allow the collection");
    }

    #[test]
    fn non_resource_rules_match_paths_and_prefixes() {
        let rule = rule(json!({"nonResourceURLs": ["/version", "/apis/*"], "verbs": ["get"]}));
        let path = |path: &str| Attributes { verb: "get".into(), resource: None, path: path.into() };
        assert!(rule.allows(&path("/version")));
        assert!(rule.allows(&path("/apis/apps/v1")));
        assert!(!rule.allows(&path("/api/v1")));
        assert!(!rule.allows(&on("get", "", "version", "", "")));
    }

    #[test]
    fn rules_expand_to_single_permissions() {
        let rule = rule(json!({"apiGroups": ["", "apps"], "resources": ["pods", "deployments/scale"],
            "verbs": ["get", "patch"], "resourceNames": ["a"]}));
        let atoms = atoms_of(&rule, "default").expect("few");
        assert_eq!(atoms.len(), 8);
        assert!(atoms.contains(&on("patch", "apps", "deployments", "scale", "a")));
        let wide = PolicyRule {
            verbs: (0..100).map(|v| v.to_string()).collect(),
            api_groups: (0..100).map(|g| g.to_string()).collect(),
            resources: vec!["pods".into()],
            ..PolicyRule::default()
        };
        assert!(atoms_of(&wide, "").is_none(), "too broad to check");
    }

    #[test]
    fn denials_read_like_kube_apiservers() {
        let user = UserInfo::service_account("default", "reader", "u");
        let list = forbidden(&user, &on("list", "", "pods", "", ""));
        assert_eq!(
            list.message,
            "pods is forbidden: User \"system:serviceaccount:default:reader\" cannot list resource \"pods\" \
             in API group \"\" in the namespace \"default\""
        );
        let scale = forbidden(&user, &on("patch", "apps", "deployments", "scale", "web"));
        assert!(scale.message.starts_with("deployments/scale.apps \"web\" is forbidden"), "{}", scale.message);
        assert_eq!(list.code, 403);
    }

    #[test]
    fn decisions_follow_role_changes_at_once() {
        // Goal: objects kept decoded never outlive the revision that wrote
        // them.
        let dir = tempfile::tempdir().expect("temporary directory");
        let storage = engenho_store::open_database(&dir.path().join("db")).expect("open");
        let store = Mvcc::open(&storage).expect("store");
        let authorizer = Authorizer::new(store.clone(), &crate::kube::resources::Registry::built_in());
        let write = |key: String, object: Value| {
            let mut applier = store.applier();
            let put =
                engenho_store::PutRequest { key: key.into(), value: object.to_string().into(), ..Default::default() };
            applier.apply(&engenho_store::Command::Put(put)).expect("applied").outcome.expect("accepted");
            applier.commit(None, None).expect("committed");
        };
        let role = |verbs: Value| {
            json!({"metadata": {"name": "r", "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}]})
        };
        write(authorizer.roles.key(Some("default"), "r"), role(json!(["get"])));
        write(
            authorizer.role_bindings.key(Some("default"), "b"),
            json!({"metadata": {"name": "b", "namespace": "default"}, "roleRef": {"kind": "Role", "name": "r"},
                "subjects": [{"kind": "User", "name": "ana"}]}),
        );
        let ana = UserInfo { name: "ana".into(), uid: String::new(), groups: Vec::new() };
        let may = |verb: &str| authorizer.authorize(&ana, &on(verb, "", "pods", "", "p")).expect("read").is_some();
        assert!(may("get") && !may("delete"));
        assert!(may("get"), "asked again, from what was kept");
        write(authorizer.roles.key(Some("default"), "r"), role(json!(["delete"])));
        assert!(!may("get") && may("delete"), "the changed role is read at once");
    }

    #[test]
    fn the_bootstrap_policy_decodes_and_binds_the_masters() {
        let policy = bootstrap_policy();
        for (_, object) in &policy {
            assert!(object.pointer("/metadata/name").is_some());
        }
        let admin = policy.iter().find(|(p, o)| *p == "clusterroles" && o["metadata"]["name"] == "cluster-admin");
        let role: Role = serde_json::from_value(admin.expect("cluster-admin").1.clone()).expect("role");
        assert!(role.rules.iter().any(|r| r.allows(&on("delete", "apps", "deployments", "", "x"))));
        let view = policy.iter().find(|(_, o)| o["metadata"]["name"] == "view").expect("view");
        let view: Role = serde_json::from_value(view.1.clone()).expect("role");
        assert!(view.rules.iter().any(|r| r.allows(&on("list", "", "pods", "", ""))));
        assert!(!view.rules.iter().any(|r| r.allows(&on("get", "", "secrets", "", "s"))));
    }
}
