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
        "spec": {"hard": {"configmaps": "1"}}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(one));
    let counted = || kubectl.ok(&["get", "quota", "compute", "-o", "jsonpath={.status.used.configmaps}"]);
    wait_for("the quota's status", Duration::from_secs(20), || counted() == "0");
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
    assert_eq!(counted(), "1");
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
