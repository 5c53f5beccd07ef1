//! Goal: the built-in endpointslice controller (a WebAssembly component)
//! keeps a selecting Service's EndpointSlice and its legacy Endpoints
//! object as the pods it selects come, turn ready, go and are relabelled,
//! resolving named target ports against each pod's container ports, and
//! updating its slice in place rather than replacing it.
//! Method: a real `engenho up` node; `kubectl apply` of a Service `web`
//! (port `http` → target port name `http`) and three pods; their IPs and
//! `Ready` conditions set through the pods' status subresource with
//! `kubectl patch --subresource=status`, as a node agent would; then
//! polling (with deadlines) `kubectl get endpointslices` and
//! `kubectl get endpoints` until they list exactly the expected
//! addresses, conditions and ports.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{EngenhoNode, Kubectl, wait_for};

const WAIT: Duration = Duration::from_secs(30);

fn json_of(kubectl: &Kubectl, args: &[&str]) -> Value {
    serde_json::from_str(&kubectl.ok(args)).expect("kubectl prints JSON")
}

fn pod(name: &str, http_port: u16) -> String {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx",
            "ports": [{"name": "http", "containerPort": http_port}]}]},
    })
    .to_string()
}

/// Gives pod `name` the address `ip` and a `Ready` condition `ready`.
fn report(kubectl: &Kubectl, name: &str, ip: &str, ready: bool) {
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    kubectl.ok(&["patch", "pod", name, "--subresource=status", "--type=merge", "-p", &status.to_string()]);
}

/// The Service's slices.
fn slices(kubectl: &Kubectl) -> Vec<Value> {
    let list = json_of(kubectl, &["get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "json"]);
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Every endpoint of the Service's slices, as (address, ready, pod name,
/// port numbers of its slice).
fn endpoints_of(slices: &[Value]) -> BTreeSet<(String, bool, String, Vec<i64>)> {
    let mut all = BTreeSet::new();
    for slice in slices {
        let ports: Vec<i64> = slice["ports"]
            .as_array()
            .map(|p| p.iter().filter_map(|p| p["port"].as_i64()).collect())
            .unwrap_or_default();
        for endpoint in slice["endpoints"].as_array().into_iter().flatten() {
            all.insert((
                endpoint["addresses"][0].as_str().unwrap_or_default().to_owned(),
                endpoint["conditions"]["ready"].as_bool().unwrap_or(false),
                endpoint["targetRef"]["name"].as_str().unwrap_or_default().to_owned(),
                ports.clone(),
            ));
        }
    }
    all
}

fn expected(entries: &[(&str, bool, &str, i64)]) -> BTreeSet<(String, bool, String, Vec<i64>)> {
    entries.iter().map(|(ip, ready, pod, port)| ((*ip).to_owned(), *ready, (*pod).to_owned(), vec![*port])).collect()
}

/// The Endpoints object's (ready, not ready) addresses.
fn legacy(kubectl: &Kubectl) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let output = kubectl.run(&["get", "endpoints", "web", "-o", "json"], None);
    if !output.status.success() {
        return None;
    }
    let endpoints: Value = serde_json::from_slice(&output.stdout).ok()?;
    let mut ready = BTreeSet::new();
    let mut not_ready = BTreeSet::new();
    for subset in endpoints["subsets"].as_array().into_iter().flatten() {
        for (field, into) in [("addresses", &mut ready), ("notReadyAddresses", &mut not_ready)] {
            for address in subset[field].as_array().into_iter().flatten() {
                into.insert(address["ip"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    Some((ready, not_ready))
}

fn set(ips: &[&str]) -> BTreeSet<String> {
    ips.iter().map(|ip| (*ip).to_owned()).collect()
}

#[test]
fn a_service_s_endpoint_slice_and_endpoints_follow_its_pods() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "endpoint-slices");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    wait_for("the controller's Plugin to be active", WAIT, || {
        let plugin = json_of(&kubectl, &["get", "plugin", "endpointslice-controller", "-o", "json"]);
        plugin["status"]["conditions"][0]["status"] == "True"
    });

    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "labels": {"team": "shop"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    });
    kubectl.ok_with(&["apply", "-f", "-"], Some(&service.to_string()));
    // With no pods, one empty slice stands for the Service.
    wait_for("the placeholder slice", WAIT, || {
        let slices = slices(&kubectl);
        slices.len() == 1 && endpoints_of(&slices).is_empty()
    });
    for name in ["a", "b", "c"] {
        kubectl.ok_with(&["apply", "-f", "-"], Some(&pod(name, 8080)));
    }
    report(&kubectl, "a", "10.1.0.1", true);
    report(&kubectl, "b", "10.1.0.2", true);

    // Two ready pods with IPs: one slice with exactly those two, the named
    // target port resolved to the container port.
    wait_for("a slice with the two ready pods", WAIT, || {
        let slices = slices(&kubectl);
        slices.len() == 1
            && endpoints_of(&slices) == expected(&[("10.1.0.1", true, "a", 8080), ("10.1.0.2", true, "b", 8080)])
    });
    let slice = slices(&kubectl).remove(0);
    let slice_name = slice["metadata"]["name"].as_str().expect("a name").to_owned();
    assert!(slice_name.starts_with("web-") && slice_name.len() == "web-".len() + 5, "{slice_name}");
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["ports"], json!([{"name": "http", "port": 8080, "protocol": "TCP"}]));
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["labels"]["team"], "shop");
    let owner = &slice["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str(), owner["controller"].as_bool()),
        (Some("Service"), Some("web"), Some(true))
    );
    let endpoint = &slice["endpoints"][0];
    assert_eq!(endpoint["conditions"], json!({"ready": true, "serving": true, "terminating": false}));
    assert_eq!(endpoint["targetRef"]["kind"], "Pod");
    wait_for("the Endpoints with the ready addresses", WAIT, || {
        legacy(&kubectl) == Some((set(&["10.1.0.1", "10.1.0.2"]), set(&[])))
    });
    let table = kubectl.ok(&["get", "endpoints", "web"]);
    assert!(table.contains("10.1.0.1:8080,10.1.0.2:8080"), "{table}");

    // The third pod gets an IP but is not ready: listed, not ready, in the
    // same slice.
    report(&kubectl, "c", "10.1.0.3", false);
    wait_for("the unready pod in the slice", WAIT, || {
        endpoints_of(&slices(&kubectl))
            == expected(&[("10.1.0.1", true, "a", 8080), ("10.1.0.2", true, "b", 8080), ("10.1.0.3", false, "c", 8080)])
    });
    wait_for("the unready pod in the Endpoints", WAIT, || {
        legacy(&kubectl) == Some((set(&["10.1.0.1", "10.1.0.2"]), set(&["10.1.0.3"])))
    });

    // A deleted pod and a relabelled pod leave; the slice is the same one.
    kubectl.ok(&["delete", "pod", "a"]);
    kubectl.ok(&["label", "pod", "b", "app=other", "--overwrite"]);
    wait_for("the deleted and relabelled pods to leave", WAIT, || {
        endpoints_of(&slices(&kubectl)) == expected(&[("10.1.0.3", false, "c", 8080)])
    });
    wait_for("the Endpoints to follow", WAIT, || legacy(&kubectl) == Some((set(&[]), set(&["10.1.0.3"]))));
    let names: Vec<String> =
        slices(&kubectl).iter().filter_map(|s| s["metadata"]["name"].as_str().map(str::to_owned)).collect();
    assert_eq!(names, [slice_name], "the slice was updated in place");

    // A pod whose `http` port is another number: its own slice, with that
    // port.
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("d", 9090)));
    report(&kubectl, "d", "10.1.0.4", true);
    report(&kubectl, "c", "10.1.0.3", true);
    wait_for("a second slice for the other port", WAIT, || {
        let slices = slices(&kubectl);
        slices.len() == 2
            && endpoints_of(&slices) == expected(&[("10.1.0.3", true, "c", 8080), ("10.1.0.4", true, "d", 9090)])
    });
    wait_for("the Endpoints with both", WAIT, || legacy(&kubectl) == Some((set(&["10.1.0.3", "10.1.0.4"]), set(&[]))));

    // The Service gone: its Endpoints go, and its slices with it.
    kubectl.ok(&["delete", "service", "web"]);
    wait_for("the Endpoints to go", WAIT, || legacy(&kubectl).is_none());
    wait_for("the slices to go", WAIT, || slices(&kubectl).is_empty());
    node.stop();
}
