//! The pods a DaemonSet makes: its template with the revision labels, the
//! daemon tolerations, and a required node affinity naming the one node
//! (the scheduler binds the pod there).

use engenho_controller::kinds::DAEMON_SETS;
use engenho_controller::meta::OwnerReference;
use engenho_controller::revisions::REVISION_LABEL;
use serde_json::{Value, json};

use crate::model::{DaemonSet, GENERATION_LABEL};
use crate::placement;

/// The pod for `node`, of the set's template at revision `hash`.
pub fn pod(set: &DaemonSet, hash: &str, node: &str) -> Value {
    let template = &set.spec.template;
    let mut labels = template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), json!(hash));
    if let Some(generation) = set.template_generation() {
        labels.insert(GENERATION_LABEL.into(), json!(generation));
    }
    let mut metadata = json!({
        "generateName": format!("{}-", set.metadata.name),
        "namespace": set.metadata.namespace,
        "labels": labels,
        "ownerReferences": [OwnerReference::controlled_by(&DAEMON_SETS, "DaemonSet", &set.metadata)],
    });
    if let Some(annotations) = template["metadata"]["annotations"].as_object() {
        metadata["annotations"] = Value::Object(annotations.clone());
    }
    let mut spec = template["spec"].as_object().cloned().unwrap_or_default();
    spec.insert("tolerations".into(), Value::Array(placement::with_daemon_tolerations(&template["spec"])));
    spec.insert("affinity".into(), placement::pinned_affinity(&template["spec"]["affinity"], node));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_pod_is_pinned_to_its_node_by_affinity_not_by_name() {
        let set: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "u1", "generation": 3},
            "spec": {"template": {
                "metadata": {"labels": {"app": "agent"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c"}]},
            }},
        }))
        .expect("a set");
        let pod = pod(&set, "h1", "n1");
        assert_eq!(pod["metadata"]["generateName"], "agent-");
        assert!(pod["metadata"].get("name").is_none());
        assert_eq!(pod["metadata"]["labels"], json!({"app": "agent", REVISION_LABEL: "h1", GENERATION_LABEL: "3"}));
        assert_eq!(pod["metadata"]["annotations"]["a"], "b");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
        assert!(pod["spec"].get("nodeName").is_none());
        let term = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0];
        assert_eq!(term["matchFields"][0]["values"], json!(["n1"]));
        assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(6));
        assert_eq!(pod["spec"]["containers"][0]["name"], "c");
    }
}
