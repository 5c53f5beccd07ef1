//! Goal: a pod of higher priority that fits nowhere preempts as
//! kube-scheduler does: the fewest pods of lower priority on one node are
//! evicted (one a PodDisruptionBudget protects is spared when another will
//! do), each marked `DisruptionTarget` and told by a `Preempted` Event; the
//! preemptor is nominated to the node (`status.nominatedNodeName`) and bound
//! there once room is made, and holds that room against a pod of no higher
//! priority; a pod with `preemptionPolicy: Never` evicts nothing and says
//! so in its condition.
//! Method: a real `engenho up` node; one Node object with 3 CPUs; pods and
//! PriorityClasses created with kubectl; every step waits, with a
//! deadline, on what kubectl shows.

use serde_json::Value;

use crate::scheduler::{DEADLINE, bindings, condition, pod_with_spec, register_node, wait_bound};
use crate::support::{EngenhoNode, Kubectl, wait_for};

fn priority_class(kubectl: &Kubectl, name: &str, value: i32, policy: &str) {
    let class = format!(
        r#"{{"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {{"name": "{name}"}},
          "value": {value}, "preemptionPolicy": "{policy}"}}"#
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&class));
}

/// A pod requesting one CPU at priority class `class`, gone at once when
/// deleted, and tolerating for good the taints the node lifecycle
/// controller gives Nodes no agent keeps alive.
fn one_cpu_pod(kubectl: &Kubectl, name: &str, class: &str) {
    let requests = r#", "resources": {"requests": {"cpu": "1"}}"#;
    let spec = format!(
        r#", "priorityClassName": "{class}", "terminationGracePeriodSeconds": 0, "tolerations": [
          {{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}},
          {{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}}]"#
    );
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod_with_spec(name, requests, &spec)));
}

fn exists(kubectl: &Kubectl, pod: &str) -> bool {
    kubectl.run(&["get", "pod", pod, "-o", "name"], None).status.success()
}

#[test]
fn a_higher_priority_pod_preempts_the_fewest_lower_priority_pods() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "preemption");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    register_node(&kubectl, "only", "3", "a", "[]");
    kubectl.ok(&["create", "priorityclass", "low", "--value=10"]);
    priority_class(&kubectl, "high", 1000, "PreemptLowerPriority");
    priority_class(&kubectl, "high-never", 1000, "Never");

    // The node full of low-priority pods; a budget protects one of them.
    for name in ["spare", "guarded", "filler"] {
        one_cpu_pod(&kubectl, name, "low");
        wait_bound(&kubectl, &format!("app={name}"), 1);
    }
    kubectl.ok(&["create", "poddisruptionbudget", "guarded", "--selector=app=guarded", "--min-available=1"]);
    wait_for("the budget to allow no disruption", DEADLINE, || {
        let budget = kubectl.json(&["get", "pdb", "guarded", "-o", "json"]);
        budget["status"]["observedGeneration"] == budget["metadata"]["generation"]
            && budget["status"]["currentHealthy"].is_number()
            && budget["status"]["disruptionsAllowed"] == 0
    });

    // A pod that may not preempt evicts nothing.
    one_cpu_pod(&kubectl, "patient", "high-never");
    wait_for("the pod that may not preempt told why", DEADLINE, || {
        let pod = kubectl.json(&["get", "pod", "patient", "-o", "json"]);
        condition(&pod, "PodScheduled").is_some_and(|c| {
            // The test node's own Node is tainted apart (HOST_NODE_APART).
            c["message"]
                == "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint \
                    {engenho.io/test-host: }. not eligible due to preemptionPolicy=Never.."
        })
    });
    assert!(["spare", "guarded", "filler"].iter().all(|p| exists(&kubectl, p)), "nothing was evicted");

    // The urgent pod evicts one pod, not the one the budget protects.
    one_cpu_pod(&kubectl, "urgent", "high");
    wait_for("the urgent pod bound", DEADLINE, || bindings(&kubectl, "app=urgent") == ["only"]);
    let gone: Vec<&str> = ["spare", "guarded", "filler"].into_iter().filter(|p| !exists(&kubectl, p)).collect();
    assert_eq!(gone.len(), 1, "exactly one victim: {gone:?}");
    assert_ne!(gone, ["guarded"], "the budget's pod is spared while another will do");
    let urgent = kubectl.json(&["get", "pod", "urgent", "-o", "json"]);
    assert_eq!(urgent["status"]["nominatedNodeName"], "only", "{urgent}");
    let preempted = format!("involvedObject.name={},reason=Preempted", gone[0]);
    wait_for("the victim's Preempted event", DEADLINE, || {
        let events = kubectl.json(&["get", "events", "--field-selector", &preempted, "-o", "json"]);
        let uid = urgent["metadata"]["uid"].as_str().unwrap_or_default();
        events["items"].as_array().is_some_and(|items| {
            items.iter().any(|e| e["message"].as_str() == Some(&format!("Preempted by pod {uid} on node only")))
        })
    });

    // The patient pod, of the same priority, did not take the room made.
    let patient: Value = kubectl.json(&["get", "pod", "patient", "-o", "json"]);
    assert_eq!(patient["spec"]["nodeName"], Value::Null, "{patient}");
    node.stop();
}
