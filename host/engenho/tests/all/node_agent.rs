//! Goal: every node's agent registers its Node (capacity and allocatable
//! from the machine and the flags, addresses, the standard labels, its
//! runtime handlers, the control-plane role where it votes, the taints and
//! eviction thresholds it is given), keeps its
//! conditions, renews its Lease in `kube-node-lease`, and writes only what
//! is its own; the `wasi` and `tlisp` RuntimeClasses exist from the start
//! and select the nodes that run them; a pod the node cannot run is told
//! why and how to ask for one. Method: a real `engenho up`, the
//! real kubectl (impersonating another node for NodeRestriction).

use std::time::Duration;

use serde_json::Value;

use crate::support::{EngenhoNode, Kubectl, wait_for};

/// Longest the agent may take to register, and the Lease to be renewed
/// (every 10 s).
const AGENT_DEADLINE: Duration = Duration::from_secs(40);

#[test]
fn the_node_registers_itself_reports_its_status_and_renews_its_lease() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "agent-1");
    let flags = [
        "--max-pods",
        "42",
        "--system-reserved",
        "cpu=500m,memory=1Gi",
        "--register-with-taints",
        "dedicated=wasm:NoSchedule",
        "--eviction-hard",
        "nodefs.available<1%",
    ];
    node.start_ready(&flags);
    let kubectl = Kubectl::for_node(&node);
    let ready = |node: &Value| {
        node.pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    wait_for("the node registered and Ready", AGENT_DEADLINE, || {
        kubectl.run(&["get", "node", "agent-1", "-o", "json"], None).status.success()
            && ready(&kubectl.json(&["get", "node", "agent-1", "-o", "json"]))
    });
    let registered = kubectl.json(&["get", "node", "agent-1", "-o", "json"]);
    let labels = &registered["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/hostname"], "agent-1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["node-role.kubernetes.io/control-plane"], "", "the only node votes: {labels}");
    assert_eq!(
        (labels["runtime.engenho.io/wasi"].as_str(), labels["runtime.engenho.io/tlisp"].as_str()),
        (Some("true"), Some("true"))
    );
    // The pod IPs' range: the node's own /24 of 127.0.0.0/8, as it is on
    // a loopback address.
    let ip: std::net::SocketAddr = node.peer.parse().expect("the peer address");
    let std::net::IpAddr::V4(ip) = ip.ip() else { panic!("an IPv4 node address") };
    let [a, b, c, _] = ip.octets();
    assert_eq!(registered["spec"]["podCIDR"], format!("{a}.{b}.{c}.0/24"));
    assert_eq!(registered["spec"]["podCIDRs"], serde_json::json!([format!("{a}.{b}.{c}.0/24")]));
    let taints = registered["spec"]["taints"].as_array().expect("taints");
    assert!(
        taints.iter().any(|t| t["key"] == "dedicated" && t["value"] == "wasm" && t["effect"] == "NoSchedule"),
        "{taints:?}"
    );
    let status = &registered["status"];
    assert_eq!(status["capacity"]["pods"], "42");
    assert_eq!(status["allocatable"]["pods"], "42");
    let cpus = std::thread::available_parallelism().expect("cpus").get();
    assert_eq!(status["capacity"]["cpu"], cpus.to_string());
    assert_eq!(status["allocatable"]["cpu"], format!("{}m", cpus * 1000 - 500));
    let kib = |resource: &str, field: &str| -> u64 {
        let text = status[field][resource].as_str().unwrap_or_else(|| panic!("{field} {resource}: {status}"));
        text.strip_suffix("Ki").expect("kibibytes").parse().expect("a number")
    };
    assert_eq!(
        kib("memory", "capacity") - kib("memory", "allocatable"),
        (1 << 20) + 100 * 1024,
        "1Gi reserved, 100Mi kept free"
    );
    // One percent of the disk kept free, as --eviction-hard says.
    let (disk, allocatable) = (kib("ephemeral-storage", "capacity"), kib("ephemeral-storage", "allocatable"));
    assert!(allocatable < disk && allocatable >= disk - disk / 100 - 1, "{disk} {allocatable}");
    let ip = node.peer.split(':').next().expect("peer ip");
    let addresses = status["addresses"].as_array().expect("addresses");
    assert!(addresses.iter().any(|a| a["type"] == "InternalIP" && a["address"] == ip), "{addresses:?}");
    let kinds: Vec<&str> =
        status["conditions"].as_array().expect("conditions").iter().filter_map(|c| c["type"].as_str()).collect();
    assert_eq!(kinds, ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"]);
    let handlers: Vec<&str> =
        status["runtimeHandlers"].as_array().expect("handlers").iter().filter_map(|h| h["name"].as_str()).collect();
    assert_eq!(handlers, ["wasi", "tlisp"]);
    assert_eq!(status["nodeInfo"]["containerRuntimeVersion"], "wasmtime://48.0.8");

    // kubectl's wide columns read the same status.
    let wide = kubectl.ok(&["get", "nodes", "-o", "wide", "--no-headers"]);
    let row = wide.lines().find(|line| line.starts_with("agent-1 ")).expect("a row for the node");
    for cell in ["Ready", "control-plane", ip, "wasmtime://48.0.8"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }

    // The RuntimeClasses select the nodes that carry their handler's label.
    for handler in ["wasi", "tlisp"] {
        let class = kubectl.json(&["get", "runtimeclass", handler, "-o", "json"]);
        assert_eq!(class["handler"], handler);
        let selector = &class["scheduling"]["nodeSelector"];
        let (key, value) = selector.as_object().and_then(|s| s.iter().next()).expect("a node selector");
        assert_eq!(&labels[key], value, "the node is selected by {handler}");
    }

    // The Lease is the node's, owned by its Node, and renewed.
    let lease = kubectl.json(&["get", "lease", "-n", "kube-node-lease", "agent-1", "-o", "json"]);
    assert_eq!(lease["spec"]["holderIdentity"], "agent-1");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    assert_eq!(lease["metadata"]["ownerReferences"][0]["uid"], registered["metadata"]["uid"]);
    let first = lease["spec"]["renewTime"].as_str().expect("renewTime").to_owned();
    wait_for("the lease renewed", AGENT_DEADLINE, || {
        let lease = kubectl.json(&["get", "lease", "-n", "kube-node-lease", "agent-1", "-o", "json"]);
        lease["spec"]["renewTime"].as_str().is_some_and(|renewed| renewed > first.as_str())
    });

    // NodeRestriction: another node's agent may not touch this node, its
    // lease, or create pods; RBAC lets it try, admission refuses.
    let other = ["--as", "system:node:agent-2", "--as-group", "system:nodes"];
    let refused = kubectl.fails(&[&other[..], &["label", "node", "agent-1", "stolen=yes"]].concat(), None);
    assert!(refused.contains("node \"agent-2\" is not allowed to modify node \"agent-1\""), "{refused}");
    let refused = kubectl
        .fails(&[&other[..], &["annotate", "lease", "-n", "kube-node-lease", "agent-1", "stolen=yes"]].concat(), None);
    assert!(refused.contains("can only access the node lease named after itself"), "{refused}");
    let refused = kubectl.fails(&[&other[..], &["run", "sneaky", "--image", "nginx:1.27"]].concat(), None);
    assert!(refused.contains("forbidden"), "{refused}");

    // A pod this node cannot run (an OCI image, no WebAssembly runtime)
    // waits, told why and how to ask for one; a wasi pod is left to the
    // runtime.
    let wasi = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "component"}, "spec": {"nodeName": "agent-1",
        "runtimeClassName": "wasi", "containers": [{"name": "main", "image": "blake3:0000000000000000000000000000000000000000000000000000000000000000"}]}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(wasi));

    // The RuntimeClass admission step: a pod naming a class gets its node
    // selector; a class that does not exist refuses the pod.
    let component = kubectl.json(&["get", "pod", "component", "-o", "json"]);
    assert_eq!(component["spec"]["nodeSelector"]["runtime.engenho.io/wasi"], "true", "{component}");
    let unknown = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sandboxed"}, "spec": {
        "runtimeClassName": "gvisor", "containers": [{"name": "main", "image": "nginx:1.27"}]}}"#;
    let refused = kubectl.fails(&["apply", "-f", "-"], Some(unknown));
    assert!(refused.contains("pod rejected: RuntimeClass \"gvisor\" not found"), "{refused}");

    let nginx = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"nodeName": "agent-1",
        "containers": [{"name": "web", "image": "nginx:1.27"}]}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(nginx));
    wait_for("the OCI pod told it cannot run here", AGENT_DEADLINE, || {
        let pod = kubectl.json(&["get", "pod", "web", "-o", "json"]);
        pod.pointer("/status/containerStatuses/0/state/waiting/reason").and_then(Value::as_str) == Some("ErrImagePull")
    });
    let pod = kubectl.json(&["get", "pod", "web", "-o", "json"]);
    let message =
        pod.pointer("/status/containerStatuses/0/state/waiting/message").and_then(Value::as_str).unwrap_or_default();
    assert!(
        message.contains("node \"agent-1\" runs WebAssembly pods only") && message.contains("runtimeClassName"),
        "{message}"
    );
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(pod["status"]["hostIP"], ip);
    let listed = kubectl.ok(&["get", "pod", "web", "--no-headers"]);
    assert!(listed.contains("ErrImagePull"), "kubectl shows the reason: {listed}");
    wait_for("the Failed Event", AGENT_DEADLINE, || {
        kubectl.ok(&["describe", "pod", "web"]).contains("runs WebAssembly pods only")
    });
    // The wasi pod is the agent's to run: it waits for its component, not
    // for a runtime.
    wait_for("the wasi pod waiting for its component", AGENT_DEADLINE, || {
        let component = kubectl.json(&["get", "pod", "component", "-o", "json"]);
        let message = component.pointer("/status/containerStatuses/0/state/waiting/message").and_then(Value::as_str);
        message.is_some_and(|m| m.contains("is not stored in the cluster") && !m.contains("WebAssembly pods only"))
    });

    // A deleted Node comes back, as a kubelet registers again.
    kubectl.ok(&["delete", "node", "agent-1", "--wait=false"]);
    wait_for("the node registered again", AGENT_DEADLINE, || {
        let again = kubectl.run(&["get", "node", "agent-1", "-o", "json"], None);
        again.status.success()
            && serde_json::from_slice::<Value>(&again.stdout)
                .is_ok_and(|node| node["metadata"]["uid"] != registered["metadata"]["uid"] && ready(&node))
    });

    // Its own node it may label.
    kubectl.ok(&["--as", "system:node:agent-1", "--as-group", "system:nodes", "label", "node", "agent-1", "mine=yes"]);
}
