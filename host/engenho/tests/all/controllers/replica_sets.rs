//! Goal: the built-in replicaset controller keeps a bare ReplicaSet's pods
//! as Kubernetes does: it adopts a matching orphan pod (adding its
//! controller ownerReference), replaces a deleted pod, deletes the pods
//! that are not Ready first when scaled down, and, when a ResourceQuota
//! refuses its pods, records the API's message in a `FailedCreate`
//! Warning event and its `ReplicaFailure` condition.
//! Method: a real `engenho up` node driven by the installed kubectl; the
//! tests mark pods Ready through the status subresource as a kubelet does;
//! each step waits (with a deadline) on what kubectl shows.

use std::time::Duration;

use serde_json::Value;

use super::kubelet::{Phase, set_phase};
use super::watch::is_ready;
use crate::support::{EngenhoNode, Kubectl, wait_for};

const DEADLINE: Duration = Duration::from_secs(60);

fn replica_set(namespace: &str, replicas: u32) -> String {
    format!(
        r#"{{"apiVersion": "apps/v1", "kind": "ReplicaSet",
  "metadata": {{"name": "cache", "namespace": "{namespace}"}},
  "spec": {{"replicas": {replicas}, "selector": {{"matchLabels": {{"app": "cache"}}}},
    "template": {{"metadata": {{"labels": {{"app": "cache"}}}},
      "spec": {{"containers": [{{"name": "redis", "image": "redis:7"}}]}}}}}}}}"#
    )
}

/// The ReplicaSet's pods in `namespace` that are not being deleted.
fn live_pods(kubectl: &Kubectl, namespace: &str) -> Vec<Value> {
    let list = kubectl.json(&["get", "pods", "-n", namespace, "-l", "app=cache", "-o", "json"]);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items.into_iter().filter(|pod| pod["metadata"]["deletionTimestamp"].is_null()).collect()
}

fn name(object: &Value) -> String {
    object["metadata"]["name"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_replica_set_adopts_replaces_scales_down_unready_first_and_reports_quota_refusals() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "replica-sets");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);

    kubectl.ok(&["run", "orphan", "--image=redis:7", "--labels=app=cache"]);
    kubectl.ok_with(&["apply", "-f", "-"], Some(&replica_set("default", 3)));
    let uid = kubectl.ok(&["get", "replicaset", "cache", "-o", "jsonpath={.metadata.uid}"]);
    wait_for("the orphan adopted and 2 pods more", DEADLINE, || {
        let pods = live_pods(&kubectl, "default");
        pods.len() == 3 && pods.iter().all(|pod| pod["metadata"]["ownerReferences"][0]["uid"] == uid.as_str())
    });
    let orphan = kubectl.json(&["get", "pod", "orphan", "-o", "json"]);
    let owner = &orphan["metadata"]["ownerReferences"][0];
    assert_eq!((owner["kind"].as_str(), owner["name"].as_str()), (Some("ReplicaSet"), Some("cache")), "{orphan}");
    assert_eq!(owner["controller"], true);
    assert_eq!(owner["blockOwnerDeletion"], true);
    let created: Vec<String> = live_pods(&kubectl, "default").iter().map(name).filter(|n| n != "orphan").collect();
    assert!(created.iter().all(|n| n.starts_with("cache-") && n.len() == "cache-".len() + 5), "{created:?}");

    // A deleted pod is replaced.
    kubectl.ok(&["delete", "pod", &created[0]]);
    wait_for("the deleted pod replaced", DEADLINE, || {
        let pods: Vec<String> = live_pods(&kubectl, "default").iter().map(name).collect();
        pods.len() == 3 && !pods.contains(&created[0])
    });

    // Two pods Ready, one not: scaling to 2 deletes the one not Ready.
    let pods = live_pods(&kubectl, "default");
    let unready = pods.iter().map(name).find(|n| n != "orphan").expect("a created pod");
    for pod in pods.iter().filter(|pod| name(pod) != unready) {
        set_phase(&kubectl, "default", &name(pod), pod, Phase::Ready);
    }
    wait_for("2 Ready replicas", DEADLINE, || {
        kubectl.ok(&["get", "replicaset", "cache", "-o", "jsonpath={.status.readyReplicas}"]) == "2"
    });
    kubectl.ok(&["scale", "replicaset", "cache", "--replicas=2"]);
    wait_for("the pod not Ready deleted", DEADLINE, || {
        let pods = live_pods(&kubectl, "default");
        pods.len() == 2 && pods.iter().all(is_ready)
    });
    assert!(live_pods(&kubectl, "default").iter().all(|pod| name(pod) != unready));

    // A quota of 2 pods and 3 replicas: the refusal surfaces on the ReplicaSet.
    kubectl.ok(&["create", "namespace", "limited"]);
    // kubectl sends the quota as protobuf.
    kubectl.ok(&["create", "quota", "pods", "--hard=pods=2", "-n", "limited"]);
    let quota = kubectl.json(&["get", "resourcequota", "pods", "-n", "limited", "-o", "json"]);
    assert_eq!(quota["spec"]["hard"]["pods"], "2", "{quota}");
    kubectl.ok_with(&["apply", "-f", "-"], Some(&replica_set("limited", 3)));
    wait_for("the ReplicaFailure condition", DEADLINE, || {
        let rs = kubectl.json(&["get", "replicaset", "cache", "-n", "limited", "-o", "json"]);
        rs["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter().any(|c| {
                c["type"] == "ReplicaFailure"
                    && c["status"] == "True"
                    && c["reason"] == "FailedCreate"
                    && c["message"].as_str().is_some_and(|m| m.contains("exceeded quota: pods"))
            })
        })
    });
    assert_eq!(live_pods(&kubectl, "limited").len(), 2);
    let rs = kubectl.json(&["get", "replicaset", "cache", "-n", "limited", "-o", "json"]);
    assert_eq!(rs["status"]["replicas"], 2, "{rs}");
    wait_for("the FailedCreate event", DEADLINE, || {
        let events = kubectl.json(&["get", "events", "-n", "limited", "-o", "json"]);
        events["items"].as_array().is_some_and(|items| {
            items.iter().any(|e| {
                e["reason"] == "FailedCreate"
                    && e["type"] == "Warning"
                    && e["involvedObject"]["name"] == "cache"
                    && e["message"].as_str().is_some_and(|m| m.contains("forbidden: exceeded quota: pods"))
            })
        })
    });
    let described = kubectl.ok(&["describe", "replicaset", "cache", "-n", "limited"]);
    assert!(described.contains("FailedCreate"), "{described}");
    node.stop();
}
