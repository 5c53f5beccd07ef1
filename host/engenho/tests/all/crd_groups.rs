//! Goal: a CustomResourceDefinition cannot claim a group whose storage is
//! the built-in kinds' (`core`, or any built-in group), so no custom kind
//! can read or write built-in objects such as Secrets.
//! Method: a real node and the real kubectl; definitions in reserved groups
//! are refused with 422 on `spec.group`, and nothing is served for them.

use crate::support::{EngenhoNode, Kubectl};

fn definition(group: &str, plural: &str, kind: &str) -> String {
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    })
    .to_string()
}

#[test]
fn definitions_cannot_claim_the_built_in_groups() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "crd-groups");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok(&["create", "secret", "generic", "hidden", "--from-literal=password=hunter2"]);

    for (group, plural, kind) in [
        ("core", "secrets", "Secret"),
        ("apps", "deployments", "Deployment"),
        ("apps", "widgets", "Widget"),
        ("rbac.authorization.k8s.io", "widgets", "Widget"),
        ("batch", "gadgets", "Gadget"),
    ] {
        let refused = kubectl.fails(&["create", "-f", "-"], Some(&definition(group, plural, kind)));
        assert!(
            refused.contains(&format!(
                "The CustomResourceDefinition \"{plural}.{group}\" is invalid: spec.group: Invalid value: \"{group}\""
            )),
            "{group}/{plural}: {refused}"
        );
    }
    let served = kubectl.run(&["get", "--raw", "/apis/core/v1/namespaces/default/secrets"], None);
    assert!(!served.status.success(), "a custom kind serves the core group's secrets");
    assert!(!String::from_utf8_lossy(&served.stdout).contains("hunter2"));

    kubectl.ok_with(&["create", "-f", "-"], Some(&definition("example.com", "gadgets", "Gadget")));
    let moved = kubectl
        .fails(&["patch", "crd", "gadgets.example.com", "--type=merge", "-p", r#"{"spec": {"group": "core"}}"#], None);
    assert!(moved.contains("spec.group: Invalid value: \"core\""), "{moved}");
    assert!(kubectl.ok(&["get", "crd", "-o", "name"]).contains("gadgets.example.com"));
    node.stop();
}
