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
    let managers = kubectl.ok(&[
        "get",
        "pdb",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.contains("disruption-controller"), "the status is the disruption controller's: {managers}");

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

/// Creates pod `name` labelled `app`, controlled by the `kind` named
/// `owner` with `uid`; Ready when `ready`.
fn owned_pod(kubectl: &Kubectl, name: &str, app: &str, (kind, owner, uid): (&str, &str, &str), ready: bool) {
    let api_version = match kind {
        "Job" => "batch/v1",
        "ConfigMap" => "v1",
        _ => "apps/v1",
    };
    let pod = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "labels": {{"app": "{app}"}},
        "ownerReferences": [{{"apiVersion": "{api_version}", "kind": "{kind}", "name": "{owner}", "uid": "{uid}", "controller": true}}]}},
        "spec": {{"containers": [{{"name": "a", "image": "busybox"}}]}}}}"#
    );
    kubectl.ok_with(&["create", "-f", "-"], Some(&pod));
    let state = if ready { "True" } else { "False" };
    let status =
        format!(r#"{{"status": {{"phase": "Running", "conditions": [{{"type": "Ready", "status": "{state}"}}]}}}}"#);
    kubectl.ok(&["patch", "pod", name, "--subresource=status", "--type=merge", "-p", &status]);
}

/// Creates an object from JSON and returns its uid.
fn create_uid(kubectl: &Kubectl, manifest: &str) -> String {
    kubectl.ok_with(&["create", "-f", "-", "-o", "jsonpath={.metadata.uid}"], Some(manifest))
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Goal: a budget with `maxUnavailable` expects the scale of the pods'
/// controller, as Kubernetes' disruption controller counts it: a
/// ReplicaSet of 4 with 4 ready pods and `maxUnavailable: 1` allows one
/// eviction, then refuses with 429; a covered pod whose controller has no
/// scale (here a ConfigMap, which no controller acts for) makes the budget
/// refuse with `SyncFailed` and Kubernetes' message until that pod goes.
/// Method: a real node and the real kubectl; the ReplicaSet's controller
/// makes its pods, which the test makes ready through the status
/// subresource (playing the kubelet); evictions posted with
/// `kubectl create --raw`.
#[test]
fn budgets_expect_the_scale_of_the_pods_controllers() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "disruption-scale");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let replica_set = r#"{"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "front"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "front"}},
            "template": {"metadata": {"labels": {"app": "front"}}, "spec": {"containers": [{"name": "a", "image": "busybox"}]}}}}"#;
    kubectl.ok_with(&["create", "-f", "-"], Some(replica_set));
    let pods = || -> Vec<String> {
        let names = kubectl.ok(&["get", "pods", "-l", "app=front", "-o", "jsonpath={.items[*].metadata.name}"]);
        names.split_whitespace().map(str::to_owned).collect()
    };
    wait_for("the ReplicaSet's 4 pods", Duration::from_secs(30), || pods().len() == 4);
    let ready = r#"{"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}"#;
    let names = pods();
    for name in &names {
        kubectl.ok(&["patch", "pod", name, "--subresource=status", "--type=merge", "-p", ready]);
    }
    let budget = r#"{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "front"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "front"}}}}"#;
    kubectl.ok_with(&["create", "-f", "-"], Some(budget));
    let status = |field: &str| kubectl.ok(&["get", "pdb", "front", "-o", &format!("jsonpath={{.status.{field}}}")]);
    wait_for("the budget to count the ReplicaSet", Duration::from_secs(20), || {
        status("expectedPods") == "4" && status("disruptionsAllowed") == "1"
    });
    assert_eq!(status("desiredHealthy"), "3");

    let first = evict(&kubectl, &names[0]);
    assert!(first.status.success(), "{}", stderr(&first));
    let second = evict(&kubectl, &names[1]);
    assert!(!second.status.success(), "the budget allows one eviction");
    assert!(
        stderr(&second).contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{}",
        stderr(&second)
    );
    kubectl.ok(&["get", "pod", &names[1]]);
    wait_for("the budget to see the evicted pod replaced by one not ready", Duration::from_secs(20), || {
        status("currentHealthy") == "3" && status("expectedPods") == "4" && status("disruptionsAllowed") == "0"
    });

    let holder = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "holder"}}"#;
    let holder_uid = create_uid(&kubectl, holder);
    kubectl.ok(&["scale", "replicaset", "front", "--replicas=5"]);
    owned_pod(&kubectl, "stray", "front", ("ConfigMap", "holder", &holder_uid), true);
    let condition = |field: &str| {
        kubectl.ok(&["get", "pdb", "front", "-o", &format!("jsonpath={{.status.conditions[0].{field}}}")])
    };
    wait_for("the budget to fail its count", Duration::from_secs(20), || condition("reason") == "SyncFailed");
    assert_eq!(condition("message"), r#"found no controllers for pod "stray""#);
    assert_eq!(condition("status"), "False");
    let refused = evict(&kubectl, &names[2]);
    assert!(!refused.status.success(), "a budget that cannot count refuses evictions");

    kubectl.ok(&["delete", "pod", "stray", "--wait=false"]);
    wait_for("the budget to count again", Duration::from_secs(20), || {
        condition("reason") == "InsufficientPods" && status("expectedPods") == "5"
    });
    assert_eq!(status("desiredHealthy"), "4", "the ReplicaSet's new scale counts");
    assert_eq!(status("disruptionsAllowed"), "0", "3 healthy of 5 wanted at least 4");
}

/// Goal: `unhealthyPodEvictionPolicy` as Kubernetes applies it at
/// eviction: under the default `IfHealthyBudget` a running pod that is not
/// Ready stays while the budget lacks healthy pods (a pending pod goes,
/// needing no budget); under `AlwaysAllow` it goes
/// even though the budget allows no disruption, which ready pods still
/// get refused.
/// Method: a real node and the real kubectl; two ready pods and one not
/// ready under `minAvailable: 3`; the policy changed with `kubectl patch`
/// and the budget's status waited on before each eviction.
#[test]
fn unhealthy_pods_go_past_an_exhausted_budget_when_it_always_allows() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "disruption-unhealthy");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    // Owned by a ConfigMap, which no controller acts for: a `minAvailable`
    // count needs no scale, and the pods stay as the test makes them.
    let holder = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "back"}}"#;
    let uid = create_uid(&kubectl, holder);
    owned_pod(&kubectl, "back-1", "back", ("ConfigMap", "back", &uid), true);
    owned_pod(&kubectl, "back-2", "back", ("ConfigMap", "back", &uid), true);
    owned_pod(&kubectl, "back-sick", "back", ("ConfigMap", "back", &uid), false);
    let budget = r#"{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "back"},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "back"}}}}"#;
    kubectl.ok_with(&["create", "-f", "-"], Some(budget));
    let status = |field: &str| kubectl.ok(&["get", "pdb", "back", "-o", &format!("jsonpath={{.status.{field}}}")]);
    wait_for("the budget's status", Duration::from_secs(20), || status("currentHealthy") == "2");
    assert_eq!(status("disruptionsAllowed"), "0");
    let kept = evict(&kubectl, "back-sick");
    assert!(!kept.status.success(), "IfHealthyBudget keeps an unready pod while the budget lacks healthy pods");
    assert!(
        stderr(&kept).contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{}",
        stderr(&kept)
    );

    let pending = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "back-pending", "labels": {"app": "back"}},
        "spec": {"containers": [{"name": "a", "image": "busybox"}]}}"#;
    kubectl.ok_with(&["create", "-f", "-"], Some(pending));
    let phase = r#"{"status": {"phase": "Pending"}}"#;
    kubectl.ok(&["patch", "pod", "back-pending", "--subresource=status", "--type=merge", "-p", phase]);
    let pending_evicted = evict(&kubectl, "back-pending");
    assert!(pending_evicted.status.success(), "a pending pod needs no budget: {}", stderr(&pending_evicted));

    let always = r#"{"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}}"#;
    kubectl.ok(&["patch", "pdb", "back", "--type=merge", "-p", always]);
    let generation = kubectl.ok(&["get", "pdb", "back", "-o", "jsonpath={.metadata.generation}"]);
    wait_for("the budget to observe the policy", Duration::from_secs(20), || {
        status("observedGeneration") == generation
    });
    let refused = evict(&kubectl, "back-1");
    assert!(!refused.status.success(), "a ready pod is still held by the exhausted budget");
    let gone = evict(&kubectl, "back-sick");
    assert!(gone.status.success(), "{}", stderr(&gone));
    wait_for("the unready pod to go", Duration::from_secs(20), || {
        !kubectl.run(&["get", "pod", "back-sick"], None).status.success()
    });
    kubectl.ok(&["get", "pod", "back-1"]);
    assert_eq!(status("disruptionsAllowed"), "0", "the unready pod took no disruption");
}
