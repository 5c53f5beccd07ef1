//! NodeRestriction, as kube-apiserver's admission plugin of that name: a
//! node's agent (`system:node:<name>` in `system:nodes`) writes its own
//! Node and its own Lease in `kube-node-lease`, the status of the pods
//! bound to it, and deletes only those pods; it creates no pods. Other
//! users are not concerned.

use engenho_wasm::Operation;
use serde_json::Value;

use super::admission::Request;
use super::status::ApiError;

/// The namespace of the nodes' heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Checks `request` (with `object`, the object written, and `old`, the
/// stored one where known) against what the node making it may do.
///
/// # Errors
/// 403 naming what the node may do instead.
pub fn check(request: &Request<'_>, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let Some(node) = request.user.and_then(|user| user.node_name()) else { return Ok(()) };
    let t = request.t;
    let refuse = |message: String| Err(ApiError::forbidden_on(message, t.group, t.plural, request.name));
    let subject = |what: &str| format!("{what} \"{}\" is forbidden: node \"{node}\"", request.name);
    match (t.group, t.plural) {
        ("", "nodes") if request.name != node => {
            refuse(format!("{} is not allowed to modify node \"{}\"", subject("nodes"), request.name))
        }
        ("coordination.k8s.io", "leases")
            if request.namespace != Some(NODE_LEASE_NAMESPACE) || request.name != node =>
        {
            refuse(format!(
                "{} can only access the node lease named after itself, in namespace {NODE_LEASE_NAMESPACE}",
                subject("leases.coordination.k8s.io")
            ))
        }
        ("", "pods") => match (request.operation, request.subresource) {
            (Operation::Create, "") => refuse(format!("{} can only create mirror pods", subject("pods"))),
            (Operation::Delete, "") | (_, "status") if !bound_to(node, object, old) => {
                let verb = if request.operation == Operation::Delete { "delete pods" } else { "update pod status" };
                refuse(format!("{} can only {verb} for pods with spec.nodeName set to itself", subject("pods")))
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whether the pod (as written, and as stored where known) is bound to
/// `node`.
fn bound_to(node: &str, object: &Value, old: Option<&Value>) -> bool {
    let node_of = |pod: &Value| pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node);
    node_of(object) && old.is_none_or(node_of)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kube::auth::UserInfo;
    use crate::kube::resources::{Registry, ResourceType};

    fn request<'a>(
        t: &'a ResourceType,
        user: &'a UserInfo,
        namespace: Option<&'a str>,
        name: &'a str,
        (operation, subresource): (Operation, &'a str),
    ) -> Request<'a> {
        Request { t, namespace, name, subresource, operation, user: Some(user), dry_run: false }
    }

    fn kind(group: &str, plural: &str) -> ResourceType {
        Registry::built_in().find_plural(group, plural).expect("built in").clone()
    }

    #[test]
    fn a_node_writes_its_own_node_and_lease_only() {
        // Goal: kube's NodeRestriction: another node's Node or Lease, or a
        // lease elsewhere, is refused with a 403; its own pass.
        let (nodes, leases) = (kind("", "nodes"), kind("coordination.k8s.io", "leases"));
        let agent = UserInfo::node("n1");
        let update = (Operation::Update, "status");
        assert!(check(&request(&nodes, &agent, None, "n1", update), &json!({}), None).is_ok());
        let refused = check(&request(&nodes, &agent, None, "n2", update), &json!({}), None).expect_err("refused");
        assert_eq!(
            (refused.code, refused.message.as_str()),
            (403, "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\"")
        );
        let create = (Operation::Create, "");
        assert!(check(&request(&leases, &agent, Some(NODE_LEASE_NAMESPACE), "n1", create), &json!({}), None).is_ok());
        for (namespace, name) in [(NODE_LEASE_NAMESPACE, "n2"), ("default", "n1")] {
            let refused = check(&request(&leases, &agent, Some(namespace), name, create), &json!({}), None);
            assert_eq!(refused.expect_err("refused").code, 403, "{namespace}/{name}");
        }
        // Anyone else is not concerned.
        let admin = UserInfo::admin();
        assert!(check(&request(&nodes, &admin, None, "n2", update), &json!({}), None).is_ok());
    }

    #[test]
    fn a_node_touches_only_the_pods_bound_to_it() {
        // Goal: status updates and deletes of pods bound elsewhere (or
        // rebound by the write) are refused, and no pod is created.
        let pods = kind("", "pods");
        let agent = UserInfo::node("n1");
        let (mine, theirs) = (json!({"spec": {"nodeName": "n1"}}), json!({"spec": {"nodeName": "n2"}}));
        let status = (Operation::Update, "status");
        assert!(check(&request(&pods, &agent, Some("default"), "p", status), &mine, Some(&mine)).is_ok());
        let refused = check(&request(&pods, &agent, Some("default"), "p", status), &theirs, None).expect_err("refused");
        assert!(refused.message.ends_with("can only update pod status for pods with spec.nodeName set to itself"));
        assert_eq!(
            check(&request(&pods, &agent, Some("default"), "p", status), &mine, Some(&theirs))
                .expect_err("refused")
                .code,
            403
        );
        let delete = (Operation::Delete, "");
        assert!(check(&request(&pods, &agent, Some("default"), "p", delete), &mine, None).is_ok());
        assert_eq!(
            check(&request(&pods, &agent, Some("default"), "p", delete), &theirs, None).expect_err("refused").code,
            403
        );
        let create = (Operation::Create, "");
        assert_eq!(
            check(&request(&pods, &agent, Some("default"), "p", create), &mine, None).expect_err("refused").code,
            403
        );
    }
}
