//! Goal: an `aggregationRule` is a grant like any rule: writing one needs
//! the `escalate` verb or every permission it would pull in, so a user who
//! may edit a ClusterRole bound to them cannot make it cluster-admin.
//! Method: a real node; the real kubectl acting with a service account's
//! token, bound to a ClusterRole that may edit ClusterRoles but not
//! escalate.

use crate::support::{EngenhoNode, Kubectl};

/// Selects the bootstrap ClusterRoles, cluster-admin among them.
const SELECT_BOOTSTRAP_ROLES: &str =
    r#"{"aggregationRule":{"clusterRoleSelectors":[{"matchLabels":{"kubernetes.io/bootstrapping":"rbac-defaults"}}]}}"#;

#[test]
fn an_aggregation_rule_cannot_grant_what_its_writer_does_not_hold() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "rbac-aggregation");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    kubectl.ok(&["create", "serviceaccount", "editor"]);
    kubectl.ok(&[
        "create",
        "clusterrole",
        "role-editor",
        "--verb=get,list,create,update,patch",
        "--resource=clusterroles",
    ]);
    kubectl.ok(&[
        "create",
        "clusterrolebinding",
        "role-editor",
        "--clusterrole=role-editor",
        "--serviceaccount=default:editor",
    ]);
    let token = kubectl.ok(&["create", "token", "editor", "--duration=20m"]);
    let token = format!("--token={}", token.trim());
    let user = "system:serviceaccount:default:editor";

    let refused = kubectl
        .fails(&[&token, "patch", "clusterrole", "role-editor", "--type=merge", "-p", SELECT_BOOTSTRAP_ROLES], None);
    assert!(
        refused.contains(&format!(
            "Error from server (Forbidden): clusterroles.rbac.authorization.k8s.io \"role-editor\" is forbidden: user \"{user}\""
        )) && refused.contains("is attempting to grant RBAC permissions not currently held"),
        "{refused}"
    );
    let aggregating = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "sneaky"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}]},
    });
    let refused = kubectl.fails(&[&token, "create", "-f", "-"], Some(&aggregating.to_string()));
    assert!(refused.contains("is attempting to grant RBAC permissions not currently held"), "{refused}");
    assert_eq!(kubectl.fails_with_stdout(&[&token, "auth", "can-i", "delete", "secrets", "-A"]).trim(), "no");
    assert!(kubectl.ok(&["get", "clusterrole", "role-editor", "-o", "json"]).contains("\"rules\""));
    assert!(!kubectl.ok(&["get", "clusterrole", "role-editor", "-o", "json"]).contains("aggregationRule"));

    // Aggregating only what the writer already holds is allowed.
    kubectl.ok(&["create", "clusterrole", "role-reader", "--verb=get,list", "--resource=clusterroles"]);
    kubectl.ok(&["label", "clusterrole", "role-reader", "aggregate-to-editor=true"]);
    let held = r#"{"aggregationRule":{"clusterRoleSelectors":[{"matchLabels":{"aggregate-to-editor":"true"}}]}}"#;
    kubectl.ok(&[&token, "patch", "clusterrole", "role-editor", "--type=merge", "-p", held]);

    // With the escalate verb, anything may be aggregated.
    kubectl.ok(&["create", "clusterrole", "escalator", "--verb=escalate", "--resource=clusterroles"]);
    kubectl.ok(&[
        "create",
        "clusterrolebinding",
        "escalator",
        "--clusterrole=escalator",
        "--serviceaccount=default:editor",
    ]);
    kubectl.ok_with(&[&token, "create", "-f", "-"], Some(&aggregating.to_string()));
    node.stop();
}
