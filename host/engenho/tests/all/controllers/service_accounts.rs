//! Goal: the built-in service-account controller (a WebAssembly component)
//! gives every new namespace its `default` ServiceAccount and the
//! `kube-root-ca.crt` ConfigMap with the cluster's CA, writing through the
//! API server as its own service account, and its Plugin shows it active.
//! Method: a real `engenho up` node; `kubectl create namespace`, then
//! polling (with a deadline) for the two objects; their managedFields name
//! the controller as the writer; `kubectl auth can-i` as the controller's
//! service account shows what its ClusterRole allows and refuses; a
//! ConfigMap bundle changed by hand is put back; `/metrics` counts the
//! controller's reconciles and the namespaces informer's objects.

use std::time::Duration;

use serde_json::Value;

use crate::support::{EngenhoNode, Kubectl, wait_for};

const CONTROLLER: &str = "system:serviceaccount:kube-system:service-account-controller";

fn json(kubectl: &Kubectl, args: &[&str]) -> Value {
    serde_json::from_str(&kubectl.ok(args)).expect("kubectl prints JSON")
}

#[test]
fn every_namespace_gets_its_default_service_account_and_ca_bundle() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "service-accounts");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let ca = std::fs::read_to_string(node.pki().join("ca.crt")).expect("the cluster CA");

    let plugin = json(&kubectl, &["get", "plugin", "service-account-controller", "-o", "json"]);
    assert_eq!(plugin["spec"]["world"], "controller-plugin");
    wait_for("the controller's Plugin to be active", Duration::from_secs(30), || {
        let plugin = json(&kubectl, &["get", "plugin", "service-account-controller", "-o", "json"]);
        plugin["status"]["conditions"][0]["status"] == "True"
    });

    kubectl.ok(&["create", "namespace", "team"]);
    let exists = |args: &[&str]| kubectl.run(args, None).status.success();
    wait_for("the default ServiceAccount", Duration::from_secs(30), || {
        exists(&["get", "serviceaccount", "default", "-n", "team"])
    });
    wait_for("the CA bundle", Duration::from_secs(30), || {
        exists(&["get", "configmap", "kube-root-ca.crt", "-n", "team"])
    });
    let bundle =
        json(&kubectl, &["get", "configmap", "kube-root-ca.crt", "-n", "team", "-o", "json", "--show-managed-fields"]);
    assert_eq!(bundle["data"]["ca.crt"].as_str(), Some(ca.as_str()));
    assert_eq!(bundle["metadata"]["managedFields"][0]["manager"], "service-account-controller", "{bundle}");
    for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(exists(&["get", "serviceaccount", "default", "-n", namespace]), "{namespace} has its account");
    }

    // The loops report their queues, reconciles and caches.
    let metrics = kubectl.ok(&["get", "--raw", "/metrics"]);
    for family in ["workqueue_depth", "workqueue_adds_total", "controller_reconcile_total", "informer_bytes"] {
        assert!(metrics.contains(&format!("# TYPE {family} ")), "{family} in {metrics}");
    }
    let reconciles = metrics
        .lines()
        .find_map(|line| line.strip_prefix("controller_reconcile_total{name=\"service-account-controller\"} "))
        .and_then(|count| count.parse::<u64>().ok())
        .expect("the controller's reconciles are counted");
    assert!(reconciles >= 5, "one per namespace at least: {reconciles}");
    assert!(metrics.contains("informer_objects{name=\"namespaces\"} 5"), "{metrics}");

    // What the controller's ClusterRole allows, and what it does not.
    let can = |verb: &str, resource: &str| {
        let output = kubectl.run(&["auth", "can-i", verb, resource, "-n", "team", "--as", CONTROLLER], None);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(can("create", "serviceaccounts"), "yes");
    assert_eq!(can("create", "configmaps"), "yes");
    assert_eq!(can("create", "secrets"), "no");
    assert_eq!(can("delete", "serviceaccounts"), "no");

    // A bundle changed by hand is put back.
    kubectl.ok(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "team",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"ca.crt":"tampered"}}"#,
    ]);
    wait_for("the bundle to be put back", Duration::from_secs(30), || {
        let bundle = json(&kubectl, &["get", "configmap", "kube-root-ca.crt", "-n", "team", "-o", "json"]);
        bundle["data"]["ca.crt"].as_str() == Some(ca.as_str())
    });
    node.stop();
}
