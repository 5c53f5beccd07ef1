//! Goal: the built-in daemon-set controller runs one pod of a DaemonSet on
//! each Node that takes it, as Kubernetes does: of 3 Ready Nodes, one
//! tainted `NoSchedule`, only the 2 others get a pod, each pinned to its
//! Node by a required node affinity on `metadata.name`; a Node added gets
//! its pod; `kubectl rollout status daemonset` finishes once the pods are
//! Ready, and the status counts the Nodes; a new image rolls out with
//! never more pods than Nodes nor more than one of them not Ready.
//! Method: a real `engenho up` node; Nodes registered with `kubectl apply`
//! and made Ready through their status subresource; the kubelet stand-in
//! marks every pod Ready; each step waits (with a deadline) on what
//! kubectl shows; the rolling update is judged at every event of a
//! `kubectl get pods --watch` that ran throughout it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use super::kubelet::{Kubelet, Rule};
use super::watch::{events, is_ready};
use crate::support::{EngenhoNode, Kubectl, wait_for};

const DEADLINE: Duration = Duration::from_secs(60);

const DAEMON_SET: &str = r#"{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
  "spec": {"selector": {"matchLabels": {"app": "agent"}},
    "template": {"metadata": {"labels": {"app": "agent"}},
      "spec": {"containers": [{"name": "agent", "image": "busybox:1.36"}]}}}}"#;

/// Registers the Node `name` (with `taints`) and reports it Ready.
fn register_node(kubectl: &Kubectl, name: &str, taints: &str) {
    let node = format!(
        r#"{{"apiVersion": "v1", "kind": "Node", "metadata": {{"name": "{name}", "labels": {{"kubernetes.io/hostname": "{name}"}}}},
  "spec": {{"taints": {taints}}}}}"#
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&node));
    kubectl.ok(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}}"#,
    ]);
}

/// The Node each live pod of the DaemonSet is pinned to.
fn pinned_nodes(kubectl: &Kubectl) -> Vec<String> {
    let list = kubectl.json(&["get", "pods", "-l", "app=agent", "-o", "json"]);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items.iter().filter(|pod| pod["metadata"]["deletionTimestamp"].is_null()).map(pinned_node).collect()
}

/// The Node `pod`'s required node affinity names (its only term's only
/// `metadata.name` value), or `?` when it has another shape.
fn pinned_node(pod: &Value) -> String {
    let terms =
        &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
    let field = &terms[0]["matchFields"][0];
    let single = terms.as_array().map(Vec::len) == Some(1) && field["key"] == "metadata.name";
    match (single, field["operator"].as_str(), field["values"].as_array()) {
        (true, Some("In"), Some(values)) if values.len() == 1 => values[0].as_str().unwrap_or("?").to_owned(),
        _ => "?".into(),
    }
}

fn rollout_status(kubectl: &Kubectl) {
    let status = kubectl.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    assert!(status.contains("daemon set \"agent\" successfully rolled out"), "{status}");
}

#[test]
fn a_daemon_set_runs_a_pod_on_each_node_that_takes_it() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "daemon-sets");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let _kubelet = Kubelet::start(Kubectl::for_node(&node), vec![Rule::every_pod_ready()]);

    register_node(&kubectl, "n1", "[]");
    register_node(&kubectl, "n2", "[]");
    register_node(&kubectl, "n3", r#"[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]"#);
    kubectl.ok_with(&["apply", "-f", "-"], Some(DAEMON_SET));
    let set = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<BTreeSet<String>>();
    wait_for("pods on n1 and n2", DEADLINE, || {
        let pinned = pinned_nodes(&kubectl);
        pinned.len() == 2 && pinned.iter().cloned().collect::<BTreeSet<_>>() == set(&["n1", "n2"])
    });
    rollout_status(&kubectl);
    let daemon_set = kubectl.json(&["get", "daemonset", "agent", "-o", "json"]);
    assert_eq!(daemon_set["status"]["desiredNumberScheduled"], 2, "{daemon_set}");
    assert_eq!(daemon_set["status"]["numberReady"], 2, "{daemon_set}");
    let pods = kubectl.json(&["get", "pods", "-l", "app=agent", "-o", "json"]);
    for pod in pods["items"].as_array().into_iter().flatten() {
        assert!(is_ready(pod), "{pod}");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "DaemonSet", "{pod}");
        assert!(pod["metadata"]["labels"]["controller-revision-hash"].is_string(), "{pod}");
    }

    register_node(&kubectl, "n4", "[]");
    wait_for("a pod on n4", DEADLINE, || {
        let pinned = pinned_nodes(&kubectl);
        pinned.len() == 3 && pinned.iter().cloned().collect::<BTreeSet<_>>() == set(&["n1", "n2", "n4"])
    });
    rollout_status(&kubectl);
    wait_for("the status to count n4", DEADLINE, || {
        let daemon_set = kubectl.json(&["get", "daemonset", "agent", "-o", "json"]);
        daemon_set["status"]["desiredNumberScheduled"] == 3 && daemon_set["status"]["numberReady"] == 3
    });
    assert!(!pinned_nodes(&kubectl).contains(&"n3".to_owned()), "the tainted Node gets no pod");

    // A new image rolls node by node: by default (maxUnavailable 1, no
    // surge) never more than 3 pods nor fewer than 2 Ready.
    let mut watch =
        kubectl.spawn(&["get", "pods", "-l", "app=agent", "--watch", "-o", "json", "--output-watch-events"]);
    wait_for("the watch to list the pods", DEADLINE, || events(&watch.output()).len() >= 3);
    kubectl.ok(&["set", "image", "daemonset/agent", "agent=busybox:1.37"]);
    rollout_status(&kubectl);
    wait_for("the watch to see the old pods go", DEADLINE, || {
        events(&watch.output()).iter().filter(|event| event.kind == "DELETED").count() >= 3
    });
    let mut live: BTreeMap<String, bool> = BTreeMap::new();
    let mut listed = false;
    for event in events(&watch.output()) {
        if event.kind == "DELETED" || !event.object["metadata"]["deletionTimestamp"].is_null() {
            live.remove(event.name());
        } else {
            live.insert(event.name().to_owned(), is_ready(&event.object));
        }
        let ready = live.values().filter(|ready| **ready).count();
        // The watch first lists the 3 Ready pods one by one.
        listed |= ready == 3;
        assert!(live.len() <= 3, "more pods than Nodes after {} {}: {live:?}", event.kind, event.name());
        assert!(!listed || ready >= 2, "fewer than 2 Ready after {} {}: {live:?}", event.kind, event.name());
    }
    drop(watch);
    let pods = kubectl.json(&["get", "pods", "-l", "app=agent", "-o", "json"]);
    let images: Vec<&Value> =
        pods["items"].as_array().into_iter().flatten().map(|p| &p["spec"]["containers"][0]["image"]).collect();
    assert_eq!(images, ["busybox:1.37"; 3], "{pods}");
    node.stop();
}
