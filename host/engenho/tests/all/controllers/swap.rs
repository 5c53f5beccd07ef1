//! Goal: a controller swapped live while it works loses no key and
//! reconciles none twice at once: a Deployment scaled up while the
//! replicaset controller's Plugin changes (twice) ends with exactly its
//! replicas, every pod created once and none deleted.
//! Method: a real `engenho up` node; `kubectl create deployment` of 10,
//! `kubectl scale` to 60 and, at once, `kubectl patch` of the
//! replicaset-controller Plugin's configuration (a new version is loaded
//! and swapped in for the next reconcile) and back; the ReplicaSet's
//! Events counted with kubectl.

use std::time::Duration;

use serde_json::Value;

use crate::support::{EngenhoNode, Kubectl, wait_for};

fn json(kubectl: &Kubectl, args: &[&str]) -> Value {
    serde_json::from_str(&kubectl.ok(args)).expect("kubectl prints JSON")
}

/// Whether the running version is the one of the Plugin's generation now.
fn swapped_in(kubectl: &Kubectl) -> bool {
    let plugin = json(kubectl, &["get", "plugin", "replicaset-controller", "-o", "json"]);
    plugin["status"]["conditions"][0]["status"] == "True"
        && plugin["status"]["observedGeneration"] == plugin["metadata"]["generation"]
}

#[test]
fn a_controller_swapped_while_it_scales_reconciles_every_key_once() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "controller-swap");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    wait_for("the replicaset controller to be active", Duration::from_secs(40), || {
        kubectl.ok(&["get", "plugin", "replicaset-controller", "-o", "jsonpath={.status.conditions[0].status}"])
            == "True"
    });
    kubectl.ok(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=10"]);
    let pods = || kubectl.ok(&["get", "pods", "-l", "app=web", "-o", "name"]).lines().count();
    wait_for("10 pods", Duration::from_secs(30), || pods() == 10);

    kubectl.ok(&["scale", "deployment", "web", "--replicas=60"]);
    kubectl.ok(&[
        "patch",
        "plugin",
        "replicaset-controller",
        "--type=merge",
        "-p",
        r#"{"spec":{"config":{"burstReplicas":7}}}"#,
    ]);
    wait_for("the new version to be swapped in", Duration::from_secs(40), || swapped_in(&kubectl));
    kubectl.ok(&[
        "patch",
        "plugin",
        "replicaset-controller",
        "--type=merge",
        "-p",
        r#"{"spec":{"config":{"burstReplicas":500}}}"#,
    ]);
    wait_for("60 pods", Duration::from_secs(60), || pods() == 60);
    let replica_set = kubectl.ok(&["get", "rs", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]);
    wait_for("the ReplicaSet to count 60", Duration::from_secs(30), || {
        kubectl.ok(&["get", "rs", &replica_set, "-o", "jsonpath={.status.replicas}"]) == "60"
    });
    let selector = format!("involvedObject.name={replica_set}");
    let events = json(&kubectl, &["get", "events", "--field-selector", &selector, "-o", "json"]);
    let count = |reason: &str| -> i64 {
        events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["reason"] == reason)
            .map(|e| e["count"].as_i64().unwrap_or(1))
            .sum()
    };
    assert_eq!(count("SuccessfulCreate"), 60, "every pod created once");
    assert_eq!(count("SuccessfulDelete"), 0, "no pod created twice and deleted as surplus");
    assert_eq!(pods(), 60);
    node.stop();
}
