//! What each built-in control loop may do: a ClusterRole
//! `system:controller:<name>` bound to its service account
//! `kube-system/<name>`, as kube-controller-manager's controllers have
//! them. A loop's writes are authorized against these like any request.

use serde_json::{Value, json};

use super::CONTROLLER_NAMESPACE;

/// The verbs of reading.
const READ: [&str; 3] = ["get", "list", "watch"];

/// Every verb on objects.
const ALL: [&str; 8] = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": [group], "resources": resources, "verbs": verbs})
}

/// Recording events, which every loop does.
fn events() -> Value {
    json!({"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "update", "patch"]})
}

/// The rules of each built-in loop, by its name.
pub fn loop_rules() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "kube-scheduler",
            vec![
                rule("", &["pods", "nodes", "namespaces"], &READ),
                rule("", &["pods/binding"], &["create"]),
                rule("", &["pods/status"], &["update", "patch"]),
                rule("", &["pods"], &["delete"]),
                rule("policy", &["poddisruptionbudgets"], &READ),
                rule("scheduling.k8s.io", &["priorityclasses"], &READ),
                rule("engenho.io", &["schedulerprofiles", "plugins"], &READ),
                rule("engenho.io", &["schedulerprofiles/status"], &["update", "patch"]),
                events(),
            ],
        ),
        (
            "replicaset-controller",
            vec![
                rule("apps", &["replicasets"], &READ),
                rule("apps", &["replicasets", "replicasets/finalizers"], &["update"]),
                rule("apps", &["replicasets/status"], &["update", "patch"]),
                rule("", &["pods"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
                events(),
            ],
        ),
        (
            "deployment-controller",
            vec![
                rule("apps", &["deployments"], &["get", "list", "watch", "update", "patch"]),
                rule("apps", &["deployments/status"], &["update", "patch"]),
                rule("apps", &["deployments/finalizers"], &["update"]),
                rule("apps", &["replicasets"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
                rule("", &["pods"], &["get", "list", "watch", "update"]),
                events(),
            ],
        ),
        (
            "statefulset-controller",
            vec![
                rule("apps", &["statefulsets"], &READ),
                rule("apps", &["statefulsets/status"], &["update", "patch"]),
                rule("apps", &["statefulsets/finalizers"], &["update"]),
                rule("", &["pods"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
                rule(
                    "apps",
                    &["controllerrevisions"],
                    &["get", "list", "watch", "create", "update", "patch", "delete"],
                ),
                rule("", &["persistentvolumeclaims"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
                events(),
            ],
        ),
        (
            "daemon-set-controller",
            vec![
                rule("apps", &["daemonsets"], &READ),
                rule("apps", &["daemonsets/status"], &["update", "patch"]),
                rule("apps", &["daemonsets/finalizers"], &["update"]),
                rule("", &["nodes"], &READ),
                rule("", &["pods"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
                rule("", &["pods/binding"], &["create"]),
                rule(
                    "apps",
                    &["controllerrevisions"],
                    &["get", "list", "watch", "create", "update", "patch", "delete"],
                ),
                events(),
            ],
        ),
        (
            "job-controller",
            vec![
                rule("batch", &["jobs"], &["get", "list", "watch", "update", "patch", "delete"]),
                rule("batch", &["jobs/status", "jobs/finalizers"], &["update", "patch"]),
                rule("", &["pods"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
                events(),
            ],
        ),
        (
            "cronjob-controller",
            vec![
                rule("batch", &["cronjobs"], &["get", "list", "watch", "update"]),
                rule("batch", &["cronjobs/status"], &["update", "patch"]),
                rule("batch", &["cronjobs/finalizers"], &["update"]),
                rule("batch", &["jobs"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
                rule("", &["pods"], &["get", "list", "watch", "delete"]),
                events(),
            ],
        ),
        (
            "endpointslice-controller",
            vec![
                rule("", &["services", "pods", "nodes"], &READ),
                rule("", &["services/finalizers"], &["update"]),
                rule(
                    "discovery.k8s.io",
                    &["endpointslices"],
                    &["get", "list", "watch", "create", "update", "patch", "delete"],
                ),
                rule("", &["endpoints"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
                events(),
            ],
        ),
        (
            "service-account-controller",
            vec![
                rule("", &["namespaces"], &READ),
                rule("", &["serviceaccounts"], &["get", "list", "watch", "create"]),
                rule("", &["configmaps"], &["get", "list", "watch", "create", "update"]),
                events(),
            ],
        ),
        (
            "node-lifecycle-controller",
            vec![
                rule("", &["nodes"], &["get", "list", "watch", "update", "patch", "delete"]),
                rule("", &["nodes/status"], &["update", "patch"]),
                rule("", &["pods"], &["get", "list", "watch", "delete"]),
                rule("", &["pods/status"], &["update", "patch"]),
                rule("coordination.k8s.io", &["leases"], &READ),
                events(),
            ],
        ),
        (
            "apiextensions-controller",
            vec![
                rule(
                    "apiextensions.k8s.io",
                    &["customresourcedefinitions"],
                    &["get", "list", "watch", "patch", "update"],
                ),
                rule("apiextensions.k8s.io", &["customresourcedefinitions/status"], &["update", "patch"]),
                json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "delete"]}),
                events(),
            ],
        ),
        (
            "plugin-controller",
            vec![
                rule("engenho.io", &["plugins", "pluginsigners"], &READ),
                rule("engenho.io", &["plugins/status"], &["update", "patch"]),
                events(),
            ],
        ),
        (
            "generic-garbage-collector",
            vec![
                json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch", "patch", "update", "delete"]}),
                events(),
            ],
        ),
        (
            "resourcequota-controller",
            vec![
                json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["list", "watch"]}),
                rule("", &["resourcequotas/status"], &["update"]),
                events(),
            ],
        ),
        (
            "disruption-controller",
            vec![
                rule("apps", &["deployments", "replicasets", "statefulsets"], &READ),
                rule("", &["pods", "replicationcontrollers"], &READ),
                rule("policy", &["poddisruptionbudgets"], &READ),
                rule("policy", &["poddisruptionbudgets/status"], &["update"]),
                events(),
            ],
        ),
        ("namespace-controller", vec![json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ALL}), events()]),
        // revoada's autopilot reports role changes as Events of the Nodes,
        // marks the workers it raises on their Nodes, and appends the
        // Plugins' activations to the attested chain.
        (
            "engenho-autopilot",
            vec![
                rule("", &["nodes"], &["get", "list", "watch", "patch"]),
                rule("engenho.io", &["plugins"], &READ),
                events(),
            ],
        ),
    ]
}

/// The bootstrap objects of the loops: for each, its ServiceAccount, its
/// ClusterRole and the binding between them, as (plural, object).
pub fn bootstrap_objects(labels: &Value) -> Vec<(&'static str, Value)> {
    let mut objects = Vec::new();
    for (name, rules) in loop_rules() {
        let role = format!("system:controller:{name}");
        let metadata = json!({"name": role, "labels": labels,
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}});
        objects.push((
            "serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": CONTROLLER_NAMESPACE}}),
        ));
        objects.push((
            "clusterroles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": metadata,
                "rules": rules}),
        ));
        objects.push((
            "clusterrolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": metadata,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": CONTROLLER_NAMESPACE}]}),
        ));
    }
    objects
}
