//! Goal: the eviction subresource honours PodDisruptionBudgets as
//! kube-apiserver does: with minAvailable=2 over two ready pods an
//! eviction is refused with 429 and Kubernetes' message; once a third
//! ready pod exists one eviction is allowed, and the budget's status
//! (kept by the leader's loop) shows it.
//! Method: a real node and the real kubectl; pods made ready through the
//! status subresource (nothing runs them); evictions posted with
//! `kubectl create --raw`.

use std::time::Duration;

use crate::support::{EngenhoNode, Kubectl, wait_for};

const BUDGET: &str = r#"{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
    "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}"#;

fn ready_pod(kubectl: &Kubectl, name: &str) {
    let pod = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "labels": {{"app": "web"}}}},
        "spec": {{"containers": [{{"name": "a", "image": "busybox"}}]}}}}"#
    );
    kubectl.ok_with(&["create", "-f", "-"], Some(&pod));
    let ready = r#"{"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}"#;
    kubectl.ok(&["patch", "pod", name, "--subresource=status", "--type=merge", "-p", ready]);
}

fn evict(kubectl: &Kubectl, name: &str) -> std::process::Output {
    let eviction = format!(r#"{{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {{"name": "{name}"}}}}"#);
    let path = format!("/api/v1/namespaces/default/pods/{name}/eviction");
    kubectl.run(&["create", "--raw", &path, "-f", "-"], Some(&eviction))
}

#[test]
fn budgets_guard_evictions() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "disruption");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    ready_pod(&kubectl, "web-1");
    ready_pod(&kubectl, "web-2");
    kubectl.ok_with(&["apply", "-f", "-"], Some(BUDGET));
    let status = |field: &str| kubectl.ok(&["get", "pdb", "web", "-o", &format!("jsonpath={{.status.{field}}}")]);
    wait_for("the budget's status", Duration::from_secs(20), || status("currentHealthy") == "2");
    assert_eq!(status("disruptionsAllowed"), "0");

    let refused = evict(&kubectl, "web-1");
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(message.contains("Cannot evict pod as it would violate the pod's disruption budget."), "{message}");
    kubectl.ok(&["get", "pod", "web-1"]);

    ready_pod(&kubectl, "web-3");
    wait_for("a disruption to be allowed", Duration::from_secs(20), || status("disruptionsAllowed") == "1");
    let table = kubectl.ok(&["get", "pdb"]);
    assert!(table.contains("MIN AVAILABLE") && table.contains("N/A"), "{table}");
    let allowed = evict(&kubectl, "web-1");
    assert!(allowed.status.success(), "{}", String::from_utf8_lossy(&allowed.stderr));
    wait_for("the evicted pod to go", Duration::from_secs(20), || {
        !kubectl.run(&["get", "pod", "web-1"], None).status.success()
    });
    let again = evict(&kubectl, "web-2");
    assert!(!again.status.success(), "the budget allows no second eviction");
}
