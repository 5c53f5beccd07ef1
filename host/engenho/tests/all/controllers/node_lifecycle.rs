//! Goal: the built-in node-lifecycle controller (a WebAssembly component)
//! notices a node that stops renewing its Lease: within the grace period
//! plus ten seconds the node's conditions are `Unknown`
//! (`NodeStatusUnknown`, "Kubelet stopped posting node status.") and it
//! is tainted `node.kubernetes.io/unreachable` (`NoSchedule` and
//! `NoExecute`); the pods on it that do not tolerate the taint are
//! deleted at once (events `TaintManagerEviction`) and their ReplicaSet
//! replaces them, a pod tolerating it for a few seconds goes after those
//! seconds, one tolerating it for ever stays; the node that keeps
//! renewing is untouched; once the node renews and reports `Ready` again
//! its taints go.
//! Method: a real `engenho up` node, its controller configured with a
//! 5-second grace period through its Plugin; two Node objects (`Ready`
//! through `kubectl patch --subresource=status`) and their Leases in
//! `kube-node-lease`, renewed every second by a thread running
//! `kubectl patch lease`; a Deployment of four pods bound to the nodes
//! through the `pods/binding` subresource (`kubectl create --raw`), and
//! two bare pods with tolerations on the second node; then the second
//! node's renewals stop, and `kubectl get` polls (with deadlines) what
//! the controller did.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::support::{EngenhoNode, Kubectl, wait_for};

const WAIT: Duration = Duration::from_secs(30);
const GRACE_SECONDS: u64 = 5;
const TOLERATED_SECONDS: i64 = 8;

fn json_of(kubectl: &Kubectl, args: &[&str]) -> Value {
    serde_json::from_str(&kubectl.ok(args)).expect("kubectl prints JSON")
}

fn micro_now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("a timestamp").with_timezone(&Utc)
}

/// Makes node `name` report `Ready` now.
fn report_ready(kubectl: &Kubectl, name: &str) {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    kubectl.ok(&["patch", "node", name, "--subresource=status", "--type=merge", "-p", &status.to_string()]);
}

fn renew(kubectl: &Kubectl, name: &str) {
    let patch = json!({"spec": {"renewTime": micro_now()}}).to_string();
    kubectl.ok(&["patch", "lease", name, "-n", "kube-node-lease", "--type=merge", "-p", &patch]);
}

/// Binds pod `pod` to node `node` through the binding subresource.
fn bind(kubectl: &Kubectl, pod: &str, node: &str) {
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let path = format!("/api/v1/namespaces/default/pods/{pod}/binding");
    kubectl.ok_with(&["create", "--raw", &path, "-f", "-"], Some(&binding.to_string()));
}

fn pods(kubectl: &Kubectl) -> Vec<Value> {
    json_of(kubectl, &["get", "pods", "-o", "json"])["items"].as_array().cloned().unwrap_or_default()
}

fn name(object: &Value) -> String {
    object["metadata"]["name"].as_str().unwrap_or_default().to_owned()
}

fn deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

fn node_taints(kubectl: &Kubectl, node: &str) -> Vec<(String, String)> {
    let node = json_of(kubectl, &["get", "node", node, "-o", "json"]);
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (t["key"].as_str().unwrap_or_default().to_owned(), t["effect"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

fn ready_condition(kubectl: &Kubectl, node: &str) -> Value {
    let node = json_of(kubectl, &["get", "node", node, "-o", "json"]);
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_silent_node_is_tainted_unreachable_and_its_pods_evicted() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "node-lifecycle");
    node.start_ready(&[]);
    let kubectl = Arc::new(Kubectl::for_node(&node));
    wait_for("the controller's Plugin to be active", WAIT, || {
        let plugin = json_of(&kubectl, &["get", "plugin", "node-lifecycle-controller", "-o", "json"]);
        plugin["status"]["conditions"][0]["status"] == "True"
    });
    let config = json!({"spec": {"config": {"gracePeriodSeconds": GRACE_SECONDS}}}).to_string();
    kubectl.ok(&["patch", "plugin", "node-lifecycle-controller", "--type=merge", "-p", &config]);
    wait_for("the reconfigured controller to be swapped in", WAIT, || {
        let plugin = json_of(&kubectl, &["get", "plugin", "node-lifecycle-controller", "-o", "json"]);
        plugin["status"]["conditions"][0]["status"] == "True"
            && plugin["status"]["observedGeneration"] == plugin["metadata"]["generation"]
            && plugin["metadata"]["generation"].as_i64() > Some(1)
    });

    for name in ["n1", "n2"] {
        let node_object = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
        kubectl.ok_with(&["apply", "-f", "-"], Some(&node_object.to_string()));
        report_ready(&kubectl, name);
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_now()}});
        kubectl.ok_with(&["apply", "-f", "-"], Some(&lease.to_string()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let n2_alive = Arc::new(AtomicBool::new(true));
    let renewer = {
        let (kubectl, stop, n2_alive) = (kubectl.clone(), stop.clone(), n2_alive.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                renew(&kubectl, "n1");
                if n2_alive.load(Ordering::Relaxed) {
                    renew(&kubectl, "n2");
                }
                std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
            }
        })
    };

    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    kubectl.ok_with(&["apply", "-f", "-"], Some(&deployment.to_string()));
    wait_for("the Deployment's four pods", WAIT, || pods(&kubectl).len() == 4);
    let mut web: Vec<String> = pods(&kubectl).iter().map(name).collect();
    web.sort();
    for (index, pod) in web.iter().enumerate() {
        bind(&kubectl, pod, if index < 2 { "n1" } else { "n2" });
    }
    for (pod, tolerations) in [
        (
            "tolerant",
            json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": TOLERATED_SECONDS}]),
        ),
        ("forever", json!([{"operator": "Exists"}])),
    ] {
        let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
            "spec": {"nodeName": "n2", "tolerations": tolerations, "containers": [{"name": "c", "image": "nginx"}]}});
        kubectl.ok_with(&["apply", "-f", "-"], Some(&object.to_string()));
    }

    // n2 falls silent.
    n2_alive.store(false, Ordering::Relaxed);
    let silent_since = Instant::now();
    let deadline = Duration::from_secs(GRACE_SECONDS + 10);
    wait_for("n2 to be Unknown and tainted", deadline + Duration::from_secs(5), || {
        ready_condition(&kubectl, "n2")["status"] == "Unknown"
            && node_taints(&kubectl, "n2")
                .iter()
                .any(|(k, e)| k == "node.kubernetes.io/unreachable" && e == "NoExecute")
    });
    let took = silent_since.elapsed();
    assert!(took <= deadline, "n2 was marked after {took:?}");
    let ready = ready_condition(&kubectl, "n2");
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    let n2 = json_of(&kubectl, &["get", "node", "n2", "-o", "json"]);
    for type_ in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        let condition = n2["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == type_);
        assert_eq!(condition.map(|c| c["status"].clone()), Some(json!("Unknown")), "{type_}: {n2}");
    }
    let mut taints = node_taints(&kubectl, "n2");
    taints.sort();
    assert_eq!(
        taints,
        [
            ("node.kubernetes.io/unreachable".to_owned(), "NoExecute".to_owned()),
            ("node.kubernetes.io/unreachable".to_owned(), "NoSchedule".to_owned()),
        ]
    );
    let unreachable_since = n2["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["effect"] == "NoExecute")
        .and_then(|t| t["timeAdded"].as_str())
        .map(parse)
        .expect("the NoExecute taint has its time");
    // n1 kept renewing: untouched.
    assert_eq!(ready_condition(&kubectl, "n1")["status"], "True");
    assert!(node_taints(&kubectl, "n1").is_empty());

    // n2's Deployment pods are evicted, n1's stay, and the ReplicaSet
    // replaces the evicted ones.
    wait_for("n2's Deployment pods to be evicted", WAIT, || {
        pods(&kubectl).iter().filter(|p| web[2..].contains(&name(p))).all(deleting)
    });
    let all = pods(&kubectl);
    assert!(all.iter().filter(|p| web[..2].contains(&name(p))).all(|p| !deleting(p)), "n1's pods stay");
    assert!(all.iter().any(|p| name(p) == "forever" && !deleting(p)), "a pod tolerating for ever stays");
    wait_for("the ReplicaSet to replace them", WAIT, || {
        let live: Vec<Value> =
            pods(&kubectl).into_iter().filter(|p| p["metadata"]["labels"]["app"] == "web" && !deleting(p)).collect();
        live.len() == 4 && live.iter().filter(|p| !web.contains(&name(p))).count() == 2
    });
    let events = json_of(&kubectl, &["get", "events", "-o", "json"]);
    for pod in &web[2..] {
        let evicted = events["items"].as_array().into_iter().flatten().any(|e| {
            e["reason"] == "TaintManagerEviction"
                && e["involvedObject"]["name"] == pod.as_str()
                && e["message"] == format!("Marking for deletion Pod default/{pod}")
        });
        assert!(evicted, "no eviction event for {pod}: {events}");
    }

    // The pod tolerating the taint for a few seconds goes after them.
    wait_for("the tolerating pod to be evicted", WAIT, || {
        pods(&kubectl).iter().any(|p| name(p) == "tolerant" && deleting(p))
    });
    let tolerant = json_of(&kubectl, &["get", "pod", "tolerant", "-o", "json"]);
    let deleted_at = parse(tolerant["metadata"]["deletionTimestamp"].as_str().expect("a deletion time"));
    let grace = tolerant["metadata"]["deletionGracePeriodSeconds"].as_i64().expect("a grace period");
    let evicted_after = (deleted_at - k8s_openapi::chrono::Duration::seconds(grace)) - unreachable_since;
    assert!(evicted_after.num_seconds() >= TOLERATED_SECONDS - 1, "evicted after {evicted_after}");

    // n2 renews and reports Ready again: its taints go.
    n2_alive.store(true, Ordering::Relaxed);
    report_ready(&kubectl, "n2");
    wait_for("n2's taints to go", WAIT, || node_taints(&kubectl, "n2").is_empty());
    assert_eq!(ready_condition(&kubectl, "n2")["status"], "True");

    stop.store(true, Ordering::Relaxed);
    renewer.join().expect("the renewer stops");
    node.stop();
}
