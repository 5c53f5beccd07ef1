//! Goal: ResourceQuota and LimitRange are enforced at admission as
//! kube-apiserver enforces them: creates past a quota are refused with
//! Kubernetes' message, usage is counted in `status.used` (down again after
//! a delete), racing creates cannot both take a quota's last slot,
//! LimitRanges default containers and refuse pods over their maximum, and
//! invalid quotas, limit ranges and budgets are refused with 422.
//! Method: a real node and the real kubectl (`apply`, `create`, `get`,
//! `describe`, `delete`), waiting on the quota's status with deadlines.

use std::time::Duration;

use crate::support::{EngenhoNode, Kubectl, wait_for};

const QUOTA: &str = r#"{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"},
    "spec": {"hard": {"pods": "2", "requests.cpu": "1"}}}"#;

fn pod(name: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
        "spec": {{"containers": [{{"name": "a", "image": "busybox",
            "resources": {{"requests": {{"cpu": "100m"}}, "limits": {{"cpu": "200m"}}}}}}]}}}}"#
    )
}

fn used(kubectl: &Kubectl, namespace: &str) -> String {
    kubectl.ok(&["get", "quota", "compute", "-n", namespace, "-o", "jsonpath={.status.used.pods}"])
}

#[test]
fn quotas_limit_creates_and_count_usage() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "quota");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok_with(&["apply", "-f", "-"], Some(QUOTA));
    wait_for("the quota's status", Duration::from_secs(20), || used(&kubectl, "default") == "0");
    let managers = kubectl.ok(&[
        "get",
        "quota",
        "compute",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.contains("resourcequota-controller"), "the status is the quota controller's: {managers}");

    kubectl.ok_with(&["create", "-f", "-"], Some(&pod("web-1")));
    kubectl.ok_with(&["create", "-f", "-"], Some(&pod("web-2")));
    let refused = kubectl.fails(&["create", "-f", "-"], Some(&pod("web")));
    assert!(
        refused.contains(
            "pods \"web\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"
        ),
        "{refused}"
    );
    let table = kubectl.ok(&["get", "quota"]);
    assert!(table.contains("REQUEST") && table.contains("pods: 2/2, requests.cpu: 200m/1"), "{table}");
    let described = kubectl.ok(&["describe", "quota", "compute"]);
    assert!(described.contains("requests.cpu") && described.contains("200m"), "{described}");

    kubectl.ok(&["delete", "pod", "web-1"]);
    wait_for("usage to go down", Duration::from_secs(20), || used(&kubectl, "default") == "1");

    let missing = r#"{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"},
        "spec": {"hard": {"pods": "2", "limits.cpu": "1"}}}"#;
    kubectl.ok(&["create", "namespace", "strict"]);
    kubectl.ok_with(&["apply", "-n", "strict", "-f", "-"], Some(missing));
    wait_for("the strict quota's status", Duration::from_secs(20), || used(&kubectl, "strict") == "0");
    let bare = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "a", "image": "busybox"}]}}"#;
    let refused = kubectl.fails(&["create", "-n", "strict", "-f", "-"], Some(bare));
    assert!(
        refused.contains("pods \"bare\" is forbidden: failed quota: compute: must specify limits.cpu for: a"),
        "{refused}"
    );
}

#[test]
fn racing_creates_take_one_slot_once() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "quota-race");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let one = r#"{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"},
        "spec": {"hard": {"configmaps": "2"}}}"#;
    // The namespace's CA bundle (kept by its controller) takes one slot.
    wait_for("the CA bundle", Duration::from_secs(30), || {
        kubectl.run(&["get", "configmap", "kube-root-ca.crt"], None).status.success()
    });
    kubectl.ok_with(&["apply", "-f", "-"], Some(one));
    let counted = || kubectl.ok(&["get", "quota", "compute", "-o", "jsonpath={.status.used.configmaps}"]);
    wait_for("the quota's status", Duration::from_secs(20), || counted() == "1");
    let created: usize = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..8)
            .map(|index| {
                let kubectl = &kubectl;
                scope.spawn(move || {
                    let name = format!("racer-{index}");
                    kubectl.run(&["create", "configmap", &name], None).status.success()
                })
            })
            .collect();
        racers.into_iter().map(|racer| usize::from(racer.join().expect("racer"))).sum()
    });
    assert_eq!(created, 1, "exactly one create takes the last slot");
    let listed = kubectl.ok(&["get", "configmaps", "-o", "name"]);
    assert_eq!(listed.lines().filter(|line| line.contains("racer-")).count(), 1, "{listed}");
    assert_eq!(counted(), "2");
}

#[test]
fn limit_ranges_default_and_bound_containers() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "limit-range");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let range = r#"{"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bounds"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}, "defaultRequest": {"cpu": "250m"},
            "default": {"cpu": "500m"}}]}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(range));
    assert!(kubectl.ok(&["get", "limits"]).contains("CREATED AT"));
    let plain = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "a", "image": "busybox"}]}}"#;
    kubectl.ok_with(&["create", "-f", "-"], Some(plain));
    let resources = kubectl.ok(&["get", "pod", "plain", "-o", "jsonpath={.spec.containers[0].resources}"]);
    assert!(resources.contains(r#""cpu":"250m""#) && resources.contains(r#""cpu":"500m""#), "{resources}");
    let big = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "a", "image": "busybox", "resources": {"limits": {"cpu": "2"}}}]}}"#;
    let refused = kubectl.fails(&["create", "-f", "-"], Some(big));
    assert!(
        refused.contains("pods \"web\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"),
        "{refused}"
    );
}

#[test]
fn invalid_quotas_ranges_and_budgets_are_refused() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "quota-invalid");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let cases = [
        (
            r#"{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"pods": "-1"}}}"#,
            "spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0",
        ),
        (
            r#"{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"},
                "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In"}]}}}"#,
            "spec.scopeSelector.matchExpressions.values: Required value: must be at least one value when `operator` \
             is 'In' or 'NotIn' for scope selector",
        ),
        (
            r#"{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                "spec": {"hard": {"pods": "1"}, "scopes": ["Terminating", "NotTerminating"]}}"#,
            "spec.scopes: Invalid value: []core.ResourceQuotaScope{\"Terminating\", \"NotTerminating\"}: \
             conflicting scopes",
        ),
        (
            r#"{"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l"},
                "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}}"#,
            "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
        ),
        (
            r#"{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "b"},
                "spec": {"minAvailable": 1, "maxUnavailable": 1, "selector": {}}}"#,
            "minAvailable and maxUnavailable cannot be both set",
        ),
        (
            r#"{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "b"},
                "spec": {"minAvailable": "x%", "selector": {}}}"#,
            "spec.minAvailable: Invalid value: \"x%\": a valid percent string",
        ),
    ];
    for (object, message) in cases {
        let refused = kubectl.fails(&["create", "-f", "-"], Some(object));
        assert!(refused.contains("is invalid") && refused.contains(message), "{refused}");
    }
    for kind in ["quota", "limits", "pdb"] {
        assert_eq!(kubectl.ok(&["get", kind, "-o", "name"]), "", "nothing stored");
    }
}

fn status_used(kubectl: &Kubectl, quota: &str, resource: &str) -> String {
    let path = format!("jsonpath={{.status.used.{}}}", resource.replace('.', "\\."));
    kubectl.ok(&["get", "quota", quota, "-o", &path])
}

fn scoped_pod(name: &str, cpu: Option<&str>, class: Option<&str>) -> String {
    let resources = cpu.map_or_else(String::new, |cpu| format!(r#", "resources": {{"requests": {{"cpu": "{cpu}"}}}}"#));
    let class = class.map_or_else(String::new, |class| format!(r#""priorityClassName": "{class}", "#));
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
        "spec": {{{class}"containers": [{{"name": "a", "image": "busybox"{resources}}}]}}}}"#
    )
}

/// Goal: a quota's `scopes` and `scopeSelector` narrow the pods it counts,
/// both when a create is charged and when `status.used` is recounted: a
/// `BestEffort` quota counts only pods without requests, a `PriorityClass`
/// selector quota only pods of that class.
/// Method: a real node and kubectl; the built-in `resource-defaults`
/// policy deleted (it gives every pod requests, so none would be best
/// effort); three quotas (best effort, class `high` through
/// `scopeSelector`, unscoped), pods of each sort created
/// until the scoped quotas refuse with Kubernetes' message while other
/// pods still pass; then a delete makes the node recount, and the scoped
/// usage must come out of the recount matching only its pods.
#[test]
fn scoped_quotas_count_only_the_pods_they_match() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "quota-scopes");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let objects = r#"
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"}, "value": 1000}
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "besteffort"},
            "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}}
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "high"},
            "spec": {"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}}
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "all"}, "spec": {"hard": {"pods": "10"}}}"#;
    kubectl.ok(&["delete", "plugin", "resource-defaults"]);
    let bare = scoped_pod("probe", None, None);
    let defaulted = || {
        let args = ["create", "--dry-run=server", "-o", "jsonpath={.spec.containers[0].resources}", "-f", "-"];
        kubectl.ok_with(&args, Some(&bare))
    };
    wait_for("pods to keep their lack of requests", Duration::from_secs(20), || defaulted() == "{}");
    kubectl.ok_with(&["apply", "-f", "-"], Some(objects));
    wait_for("the quotas' status", Duration::from_secs(20), || {
        ["besteffort", "high", "all"].iter().all(|quota| status_used(&kubectl, quota, "pods") == "0")
    });

    kubectl.ok_with(&["create", "-f", "-"], Some(&scoped_pod("sized-1", Some("100m"), None)));
    kubectl.ok_with(&["create", "-f", "-"], Some(&scoped_pod("idle-1", None, None)));
    let refused = kubectl.fails(&["create", "-f", "-"], Some(&scoped_pod("idle-2", None, None)));
    assert!(
        refused.contains(
            "pods \"idle-2\" is forbidden: exceeded quota: besteffort, requested: pods=1, used: pods=1, limited: pods=1"
        ),
        "{refused}"
    );
    kubectl.ok_with(&["create", "-f", "-"], Some(&scoped_pod("sized-2", Some("100m"), None)));
    kubectl.ok_with(&["create", "-f", "-"], Some(&scoped_pod("urgent-1", Some("100m"), Some("high"))));
    let refused = kubectl.fails(&["create", "-f", "-"], Some(&scoped_pod("urgent-2", Some("100m"), Some("high"))));
    assert!(
        refused.contains(
            "pods \"urgent-2\" is forbidden: exceeded quota: high, requested: pods=1, used: pods=1, limited: pods=1"
        ),
        "{refused}"
    );
    assert_eq!(status_used(&kubectl, "all", "pods"), "4");
    assert_eq!(status_used(&kubectl, "besteffort", "pods"), "1");
    assert_eq!(status_used(&kubectl, "high", "pods"), "1");

    kubectl.ok(&["delete", "pod", "idle-1"]);
    wait_for("the recount after a delete", Duration::from_secs(20), || {
        status_used(&kubectl, "all", "pods") == "3" && status_used(&kubectl, "besteffort", "pods") == "0"
    });
    wait_for("the recount of the class quota", Duration::from_secs(20), || {
        status_used(&kubectl, "high", "pods") == "1"
    });
    kubectl.ok_with(&["create", "-f", "-"], Some(&scoped_pod("idle-3", None, None)));
}

fn claim(name: &str, storage: &str, class: Option<&str>) -> String {
    let class = class.map_or_else(String::new, |class| format!(r#""storageClassName": "{class}", "#));
    format!(
        r#"{{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {{"name": "{name}"}},
        "spec": {{{class}"accessModes": ["ReadWriteOnce"], "resources": {{"requests": {{"storage": "{storage}"}}}}}}}}"#
    )
}

/// Goal: updates are charged where Kubernetes charges them (a Service
/// turning NodePort, a claim asking more storage, by the difference only),
/// claims are counted in `requests.storage` and per storage class, and a
/// LimitRange's `PersistentVolumeClaim` item bounds a claim's storage; each
/// refusal is Kubernetes' 403 message and leaves nothing changed.
/// Method: a real node and kubectl `create`, `patch` and `get` against
/// quotas of node ports and storage and a LimitRange of claims; a Service
/// turned back to ClusterIP must give its node port back in the recount.
#[test]
fn updates_and_claims_are_charged() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "quota-claims");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let quotas = r#"
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "ports"},
            "spec": {"hard": {"services.nodeports": "0"}}}
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "storage"},
            "spec": {"hard": {"requests.storage": "5Gi", "persistentvolumeclaims": "10",
                "gold.storageclass.storage.k8s.io/requests.storage": "1Gi",
                "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1"}}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(quotas));
    wait_for("the quotas' status", Duration::from_secs(20), || {
        status_used(&kubectl, "ports", "services.nodeports") == "0"
            && status_used(&kubectl, "storage", "requests.storage") == "0"
    });

    kubectl.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let refused = kubectl.fails(&["patch", "service", "web", "-p", r#"{"spec": {"type": "NodePort"}}"#], None);
    assert!(
        refused.contains(
            "services \"web\" is forbidden: exceeded quota: ports, requested: services.nodeports=1, \
             used: services.nodeports=0, limited: services.nodeports=0"
        ),
        "{refused}"
    );
    assert_eq!(kubectl.ok(&["get", "service", "web", "-o", "jsonpath={.spec.type}"]), "ClusterIP");
    kubectl.ok(&["patch", "quota", "ports", "-p", r#"{"spec": {"hard": {"services.nodeports": "1"}}}"#]);
    wait_for("the raised limit", Duration::from_secs(20), || {
        kubectl.ok(&["get", "quota", "ports", "-o", "jsonpath={.status.hard.services\\.nodeports}"]) == "1"
    });
    kubectl.ok(&["patch", "service", "web", "-p", r#"{"spec": {"type": "NodePort"}}"#]);
    assert_eq!(status_used(&kubectl, "ports", "services.nodeports"), "1");
    let back = r#"[{"op": "replace", "path": "/spec/type", "value": "ClusterIP"},
        {"op": "remove", "path": "/spec/ports/0/nodePort"}]"#;
    kubectl.ok(&["patch", "service", "web", "--type=json", "-p", back]);
    wait_for("the node port given back", Duration::from_secs(20), || {
        status_used(&kubectl, "ports", "services.nodeports") == "0"
    });

    kubectl.ok_with(&["create", "-f", "-"], Some(&claim("data", "2Gi", None)));
    let refused = kubectl.fails(&["create", "-f", "-"], Some(&claim("fast", "2Gi", Some("gold"))));
    assert!(
        refused.contains(
            "persistentvolumeclaims \"fast\" is forbidden: exceeded quota: storage, requested: \
             gold.storageclass.storage.k8s.io/requests.storage=2Gi, used: \
             gold.storageclass.storage.k8s.io/requests.storage=0, limited: \
             gold.storageclass.storage.k8s.io/requests.storage=1Gi"
        ),
        "{refused}"
    );
    kubectl.ok_with(&["create", "-f", "-"], Some(&claim("fast", "1Gi", Some("gold"))));
    assert_eq!(status_used(&kubectl, "storage", "requests.storage"), "3Gi");
    assert_eq!(status_used(&kubectl, "storage", "gold.storageclass.storage.k8s.io/persistentvolumeclaims"), "1");
    let refused = kubectl.fails(&["create", "-f", "-"], Some(&claim("more", "3Gi", None)));
    assert!(
        refused.contains(
            "persistentvolumeclaims \"more\" is forbidden: exceeded quota: storage, requested: \
             requests.storage=3Gi, used: requests.storage=3Gi, limited: requests.storage=5Gi"
        ),
        "{refused}"
    );
    assert!(kubectl.fails(&["get", "pvc", "more"], None).contains("NotFound"), "nothing stored");

    kubectl.ok(&["patch", "pvc", "data", "--subresource=status", "-p", r#"{"status": {"phase": "Bound"}}"#]);
    let grow = |storage: &str| format!(r#"{{"spec": {{"resources": {{"requests": {{"storage": "{storage}"}}}}}}}}"#);
    let refused = kubectl.fails(&["patch", "pvc", "data", "-p", &grow("5Gi")], None);
    assert!(
        refused.contains(
            "persistentvolumeclaims \"data\" is forbidden: exceeded quota: storage, requested: \
             requests.storage=3Gi, used: requests.storage=3Gi, limited: requests.storage=5Gi"
        ),
        "{refused}"
    );
    kubectl.ok(&["patch", "pvc", "data", "-p", &grow("4Gi")]);
    assert_eq!(status_used(&kubectl, "storage", "requests.storage"), "5Gi", "charged the difference");
    assert_eq!(status_used(&kubectl, "storage", "persistentvolumeclaims"), "2", "a claim counted once");

    kubectl.ok(&["create", "namespace", "bounded"]);
    let range = r#"{"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "claims"},
        "spec": {"limits": [{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}}]}}"#;
    kubectl.ok_with(&["apply", "-n", "bounded", "-f", "-"], Some(range));
    let refused = kubectl.fails(&["create", "-n", "bounded", "-f", "-"], Some(&claim("big", "5Gi", None)));
    assert!(
        refused.contains(
            "persistentvolumeclaims \"big\" is forbidden: maximum storage usage per PersistentVolumeClaim is 2Gi, \
             but request is 5Gi"
        ),
        "{refused}"
    );
    kubectl.ok_with(&["create", "-n", "bounded", "-f", "-"], Some(&claim("fits", "2Gi", None)));
    assert_eq!(kubectl.ok(&["get", "pvc", "-n", "bounded", "-o", "name"]).trim(), "persistentvolumeclaim/fits");
}
