//! Goal: writes through the `scale`, `binding` and `eviction` subresources
//! pass admission like every other write, and a refused one changes
//! nothing.
//! Method: a real node and the real kubectl; the built-in required-labels
//! policy configured to require a label the objects lack (updates through
//! `scale` and `binding`), and a signed policy that fails closed on pod
//! deletes (eviction).

use std::time::Duration;

use engenho_api::kube::plugins::SigningKey;

use crate::plugin_trust::upload_component;
use crate::support::{EngenhoNode, Kubectl, wait_for};

const DEPLOYMENT: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "busybox"}]}}}}"#;

const POD: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
    "spec": {"containers": [{"name": "a", "image": "busybox"}]}}"#;

const BINDING: &str = r#"{"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p1"},
    "target": {"kind": "Node", "name": "n1"}}"#;

const EVICTION: &str = r#"{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p1"}}"#;

#[test]
fn scale_binding_and_eviction_pass_admission() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "subresource-admission");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok_with(&["apply", "-f", "-"], Some(DEPLOYMENT));
    kubectl.ok_with(&["apply", "-f", "-"], Some(POD));

    let require_team = r#"{"spec": {"config": {"labels": ["team"]}}}"#;
    kubectl.ok(&["patch", "plugin", "required-labels", "--type=merge", "-p", require_team]);
    wait_for("required-labels to require team", Duration::from_secs(20), || {
        !kubectl.run(&["create", "configmap", "probe", "--dry-run=server"], None).status.success()
    });

    let scaled = kubectl.fails(&["scale", "deployment", "web", "--replicas=5"], None);
    assert!(
        scaled.contains(
            "deployments.apps \"web\" is forbidden: denied by required-labels: missing required labels: team"
        ),
        "{scaled}"
    );
    assert_eq!(kubectl.ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]), "1");

    let binding = "/api/v1/namespaces/default/pods/p1/binding";
    let bound = kubectl.fails(&["create", "--raw", binding, "-f", "-"], Some(BINDING));
    assert!(
        bound.contains("pods \"p1\" is forbidden: denied by required-labels: missing required labels: team"),
        "{bound}"
    );
    assert_eq!(kubectl.ok(&["get", "pod", "p1", "-o", "jsonpath={.spec.nodeName}"]), "");

    kubectl.ok(&["label", "deployment", "web", "team=a"]);
    kubectl.ok(&["scale", "deployment", "web", "--replicas=5"]);
    assert_eq!(kubectl.ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]), "5");

    let signer = SigningKey::load_or_create(&node.dir.join("pki").join("plugin-signer.key")).expect("the signer");
    let digest = upload_component(&kubectl, "misbehaving");
    let mut spec = serde_json::json!({
        "world": "admission-policy", "digest": digest, "failurePolicy": "Fail", "config": {"mode": "loop"},
        "admission": {"rules": [{"apiGroups": [""], "resources": ["pods"], "operations": ["DELETE"]}]},
    });
    spec["signature"] = signer.sign_plugin("no-deletes", &spec).expect("signed").into();
    let guard = serde_json::json!({
        "apiVersion": "engenho.io/v1alpha1", "kind": "Plugin", "metadata": {"name": "no-deletes"}, "spec": spec,
    })
    .to_string();
    kubectl.ok_with(&["apply", "-f", "-"], Some(&guard));
    wait_for("the delete guard to be active", Duration::from_secs(20), || {
        kubectl.ok(&["get", "plugin", "no-deletes", "-o", "jsonpath={.status.conditions[0].status}"]) == "True"
    });
    let eviction = "/api/v1/namespaces/default/pods/p1/eviction";
    let evicted = kubectl.fails(&["create", "--raw", eviction, "-f", "-"], Some(EVICTION));
    assert!(evicted.contains("admission plugin \"no-deletes\" failed"), "{evicted}");
    assert_eq!(kubectl.ok(&["get", "pod", "p1", "-o", "name"]).trim(), "pod/p1");
    node.stop();
}
