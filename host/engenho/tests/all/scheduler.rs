//! Goal: the scheduler places pods as kube-scheduler's default profile
//! would, with the built-in WASM plugins: a deployment's pods are bound
//! across the nodes that take them (never the tainted one); a pod whose
//! requests fit one node only lands there; required node affinity picks its
//! node; required anti-affinity on the hostname spreads replicas; a pod that
//! fits nowhere stays Pending with kube-scheduler's message on its
//! `PodScheduled` condition and a `FailedScheduling` Event (as `kubectl
//! describe pod` shows); a pod naming no profile stays Pending and says why.
//! Method: a real `engenho up` node; Nodes registered with `kubectl apply`
//! (capacity, labels, taints) and made Ready through their status; every
//! step waits, with a deadline, on what kubectl shows.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::{EngenhoNode, Kubectl, wait_for};

pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// Registers Node `name` with `cpu` allocatable, `zone`, and `taints`
/// (JSON), and reports it Ready.
pub(crate) fn register_node(kubectl: &Kubectl, name: &str, cpu: &str, zone: &str, taints: &str) {
    let node = format!(
        r#"{{"apiVersion": "v1", "kind": "Node",
  "metadata": {{"name": "{name}", "labels": {{"kubernetes.io/hostname": "{name}", "topology.kubernetes.io/zone": "{zone}"}}}},
  "spec": {{"taints": {taints}}}}}"#
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&node));
    let status = format!(
        r#"{{"status":{{"capacity":{{"cpu":"{cpu}","memory":"8Gi","pods":"110"}},"allocatable":{{"cpu":"{cpu}","memory":"8Gi","pods":"110"}},"conditions":[{{"type":"Ready","status":"True","reason":"KubeletReady"}}]}}}}"#
    );
    kubectl.ok(&["patch", "node", name, "--subresource=status", "--type=merge", "-p", &status]);
}

/// The node each pod labelled `selector` is bound to (empty: not bound).
pub(crate) fn bindings(kubectl: &Kubectl, selector: &str) -> Vec<String> {
    let list = kubectl.json(&["get", "pods", "-l", selector, "-o", "json"]);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items.iter().map(|pod| pod["spec"]["nodeName"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Waits until `count` pods labelled `selector` are bound; their nodes.
pub(crate) fn wait_bound(kubectl: &Kubectl, selector: &str, count: usize) -> Vec<String> {
    let mut nodes = Vec::new();
    wait_for(&format!("{count} pods {selector} bound"), DEADLINE, || {
        nodes = bindings(kubectl, selector);
        nodes.len() == count && nodes.iter().all(|n| !n.is_empty())
    });
    nodes
}

pub(crate) fn pod(name: &str, spec_extra: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "labels": {{"app": "{name}"}}}},
  "spec": {{"containers": [{{"name": "c", "image": "nginx:1.27"{spec_extra}}}]}}}}"#
    )
}

pub(crate) fn pod_with_spec(name: &str, container_extra: &str, spec_extra: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "labels": {{"app": "{name}"}}}},
  "spec": {{"containers": [{{"name": "c", "image": "nginx:1.27"{container_extra}}}]{spec_extra}}}}}"#
    )
}

pub(crate) fn condition(pod: &Value, kind: &str) -> Option<Value> {
    pod["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind).cloned()
}

#[test]
fn the_default_profile_places_pods_as_kube_scheduler_does() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "scheduler");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    wait_for("the default profile active", DEADLINE, || {
        let profile = kubectl.run(&["get", "schedulerprofile", "default-scheduler", "-o", "json"], None);
        let profile: Value = serde_json::from_slice(&profile.stdout).unwrap_or(Value::Null);
        profile["status"]["conditions"][0]["status"] == "True"
    });

    register_node(&kubectl, "small", "2", "a", "[]");
    register_node(&kubectl, "large", "4", "b", "[]");
    register_node(&kubectl, "gpu", "8", "c", r#"[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]"#);

    // A deployment's pods go to the untainted nodes, spread by the scores.
    kubectl.ok(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=4"]);
    let nodes = wait_bound(&kubectl, "app=web", 4);
    assert!(nodes.iter().all(|n| n == "small" || n == "large"), "a pod went to the tainted node: {nodes:?}");
    let distinct: BTreeSet<&String> = nodes.iter().collect();
    assert_eq!(distinct.len(), 2, "the least allocated and balanced scores spread the pods: {nodes:?}");

    // Requests that fit only the large node.
    let big = r#", "resources": {"requests": {"cpu": "3"}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("big", big)));
    assert_eq!(wait_bound(&kubectl, "app=big", 1), vec!["large".to_owned()]);
    let big = kubectl.json(&["get", "pod", "big", "-o", "json"]);
    assert_eq!(condition(&big, "PodScheduled").map(|c| c["status"].clone()), Some("True".into()), "{big}");
    wait_for("the Scheduled event", DEADLINE, || {
        kubectl.ok(&["describe", "pod", "big"]).contains("Successfully assigned default/big to large")
    });

    // Tolerating the taint and asking for the zone by required affinity.
    let affinity = r#", "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
          {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["c"]}]}]}}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod_with_spec("trainer", "", affinity)));
    assert_eq!(wait_bound(&kubectl, "app=trainer", 1), vec!["gpu".to_owned()]);

    // Required anti-affinity on the hostname: one replica per node.
    let spread = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "spread"},
      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "spread"}},
        "template": {"metadata": {"labels": {"app": "spread"}}, "spec": {
          "containers": [{"name": "c", "image": "nginx:1.27"}],
          "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "spread"}}, "topologyKey": "kubernetes.io/hostname"}]}}}}}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(spread));
    let spread_nodes = wait_bound(&kubectl, "app=spread", 2);
    assert_ne!(spread_nodes[0], spread_nodes[1], "anti-affinity puts the replicas apart: {spread_nodes:?}");

    // A pod that fits nowhere.
    let huge = r#", "resources": {"requests": {"cpu": "100"}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("huge", huge)));
    let expected = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. \
                    preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
                    2 No preemption victims found for incoming pod..";
    wait_for("the unfittable pod's condition", DEADLINE, || {
        let pod = kubectl.json(&["get", "pod", "huge", "-o", "json"]);
        condition(&pod, "PodScheduled")
            .is_some_and(|c| c["status"] == "False" && c["reason"] == "Unschedulable" && c["message"] == expected)
    });
    let described = kubectl.ok(&["describe", "pod", "huge"]);
    assert!(described.contains("FailedScheduling"), "{described}");
    assert!(described.contains(expected), "{described}");
    assert_eq!(bindings(&kubectl, "app=huge"), vec![String::new()]);

    // A pod naming no profile.
    let unknown = r#", "schedulerName": "no-such-scheduler""#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod_with_spec("orphan", "", unknown)));
    wait_for("the pod naming no profile told so", DEADLINE, || {
        let pod = kubectl.json(&["get", "pod", "orphan", "-o", "json"]);
        condition(&pod, "PodScheduled").is_some_and(|c| {
            c["reason"] == "SchedulerProfileNotFound"
                && c["message"].as_str().is_some_and(|m| m.contains("no-such-scheduler"))
        })
    });
    assert_eq!(bindings(&kubectl, "app=orphan"), vec![String::new()]);
    node.stop();
}
