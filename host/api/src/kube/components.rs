//! `componentstatuses` (core v1, read-only and deprecated in Kubernetes):
//! the health of the cluster's components as this node sees them, made on
//! every read, never stored. engenho's store stands where etcd does and
//! answers as `etcd-0`; components engenho does not run are not listed.

use serde_json::{Value, json};

use super::objects::ObjectStore;
use super::status::ApiError;

/// The component statuses now, in name order.
pub fn statuses(objects: &ObjectStore) -> Vec<Value> {
    let healthy = objects.has_leader();
    let (status, message, error) = if healthy {
        ("True", "ok", "")
    } else {
        ("False", "", "the store has no leader: it cannot take writes until a quorum of its members is up")
    };
    let mut condition = json!({"type": "Healthy", "status": status});
    if !message.is_empty() {
        condition["message"] = json!(message);
    }
    if !error.is_empty() {
        condition["error"] = json!(error);
    }
    vec![json!({
        "apiVersion": "v1",
        "kind": "ComponentStatus",
        "metadata": {"name": "etcd-0"},
        "conditions": [condition],
    })]
}

/// The status of component `name`.
///
/// # Errors
/// 404 when no component has that name.
pub fn status(objects: &ObjectStore, name: &str) -> Result<Value, ApiError> {
    statuses(objects)
        .into_iter()
        .find(|s| s.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
        .ok_or_else(|| ApiError::not_found("", "componentstatuses", name))
}
