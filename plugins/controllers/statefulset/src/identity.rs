//! What a set's pod and its claims look like: the stable name, the
//! identity labels, hostname and subdomain, the claims' volumes, and the
//! claims' owners under the retention policy.

use engenho_controller::kinds::{PODS, STATEFUL_SETS};
use engenho_controller::meta::{ObjectMeta, OwnerReference};
use engenho_controller::revisions::REVISION_LABEL;
use serde_json::{Map, Value, json};

use crate::model::{POD_INDEX_LABEL, POD_NAME_LABEL, StatefulSet};

/// The pod of `ordinal` made from `template`, labelled with `revision`.
pub fn pod(set: &StatefulSet, template: &Value, revision: &str, ordinal: i32) -> Value {
    let name = set.pod_name(ordinal);
    let mut labels = template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), json!(name));
    labels.insert(POD_INDEX_LABEL.into(), json!(ordinal.to_string()));
    labels.insert(REVISION_LABEL.into(), json!(revision));
    let mut metadata = json!({
        "name": name,
        "namespace": set.metadata.namespace,
        "labels": labels,
        "ownerReferences": [OwnerReference::controlled_by(&STATEFUL_SETS, "StatefulSet", &set.metadata)],
    });
    if let Some(annotations) = template["metadata"]["annotations"].as_object() {
        metadata["annotations"] = Value::Object(annotations.clone());
    }
    let mut spec = template["spec"].as_object().cloned().unwrap_or_default();
    spec.insert("hostname".into(), json!(name));
    if !set.spec.service_name.is_empty() {
        spec.insert("subdomain".into(), json!(set.spec.service_name));
    }
    set_claim_volumes(set, ordinal, &mut spec);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// Replaces the pod's volumes named like a claim template with the claim
/// of `ordinal`, as Kubernetes' `updateStorage` does.
fn set_claim_volumes(set: &StatefulSet, ordinal: i32, spec: &mut Map<String, Value>) {
    let templates = set.claim_template_names();
    if templates.is_empty() {
        return;
    }
    let mut volumes: Vec<Value> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter(|v| !templates.iter().any(|t| v["name"] == json!(t))).cloned().collect())
        .unwrap_or_default();
    for template in &templates {
        volumes.push(json!({
            "name": template,
            "persistentVolumeClaim": {"claimName": set.claim_name(template, ordinal)},
        }));
    }
    spec.insert("volumes".into(), Value::Array(volumes));
}

/// The claims of the pod of `ordinal`, each as its name and the object to
/// create: the template's, labelled with the set's selector labels, owned
/// as the retention policy says.
pub fn claims(set: &StatefulSet, ordinal: i32) -> Vec<(String, Value)> {
    set.spec
        .volume_claim_templates
        .iter()
        .filter_map(|template| {
            let template_name = template["metadata"]["name"].as_str()?;
            let name = set.claim_name(template_name, ordinal);
            let mut labels = template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
            for (key, value) in &set.spec.selector.match_labels {
                labels.insert(key.clone(), json!(value));
            }
            let mut metadata = json!({"name": name, "namespace": set.metadata.namespace, "labels": labels});
            if let Some(annotations) = template["metadata"]["annotations"].as_object() {
                metadata["annotations"] = Value::Object(annotations.clone());
            }
            let owners = claim_owners(set, None, false, &[]);
            if !owners.is_empty() {
                metadata["ownerReferences"] = json!(owners);
            }
            let object = json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": metadata,
                "spec": template["spec"].clone(),
            });
            Some((name, object))
        })
        .collect()
}

/// The ownerReferences a claim of `pod` should have: `existing` without
/// references to the set or to the pod, plus a reference to the set when
/// `whenDeleted` is `Delete`, plus one to the pod when it is `condemned`
/// (being scaled away) and `whenScaled` is `Delete`.
pub fn claim_owners(
    set: &StatefulSet,
    pod: Option<&ObjectMeta>,
    condemned: bool,
    existing: &[OwnerReference],
) -> Vec<OwnerReference> {
    let policy = &set.spec.persistent_volume_claim_retention_policy;
    let mut owners: Vec<OwnerReference> = existing
        .iter()
        .filter(|o| o.uid != set.metadata.uid)
        .filter(|o| !(o.kind == "Pod" && pod.is_some_and(|p| p.name == o.name)))
        .cloned()
        .collect();
    if policy.when_deleted == "Delete" {
        owners.push(plain_reference(STATEFUL_SETS.api_version(), "StatefulSet", &set.metadata));
    }
    if let Some(pod) = pod.filter(|_| condemned && policy.when_scaled == "Delete") {
        owners.push(plain_reference(PODS.api_version(), "Pod", pod));
    }
    owners
}

/// A reference to `owner` that neither controls nor blocks deletion, as the
/// retention policy sets it.
fn plain_reference(api_version: String, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version,
        kind: kind.to_owned(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        controller: None,
        block_owner_deletion: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RetentionPolicy, Spec};

    fn set() -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: "web".into(),
                namespace: "ns".into(),
                uid: "u1".into(),
                ..ObjectMeta::default()
            },
            spec: Spec {
                service_name: "nginx".into(),
                selector: serde_json::from_value(json!({"matchLabels": {"app": "web"}})).expect("a selector"),
                template: json!({
                    "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "www", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]},
                }),
                volume_claim_templates: vec![
                    json!({"metadata": {"name": "www"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}),
                ],
                ..Spec::default()
            },
            ..StatefulSet::default()
        }
    }

    #[test]
    fn a_pod_has_its_stable_identity_and_its_claims_volumes() {
        let pod = pod(&set(), &set().spec.template, "web-abc", 2);
        assert_eq!(pod["metadata"]["name"], "web-2");
        assert_eq!(pod["metadata"]["labels"][POD_NAME_LABEL], "web-2");
        assert_eq!(pod["metadata"]["labels"][POD_INDEX_LABEL], "2");
        assert_eq!(pod["metadata"]["labels"][REVISION_LABEL], "web-abc");
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(pod["metadata"]["annotations"]["a"], "b");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        assert_eq!(pod["spec"]["hostname"], "web-2");
        assert_eq!(pod["spec"]["subdomain"], "nginx");
        assert_eq!(
            pod["spec"]["volumes"],
            json!([{"name": "tmp", "emptyDir": {}}, {"name": "www", "persistentVolumeClaim": {"claimName": "www-web-2"}}])
        );
    }

    #[test]
    fn claims_are_named_per_pod_and_carry_the_selector_labels() {
        let claims = claims(&set(), 0);
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].0, "www-web-0");
        assert_eq!(claims[0].1["metadata"]["labels"]["app"], "web");
        assert_eq!(claims[0].1["spec"]["resources"]["requests"]["storage"], "1Gi");
        assert!(claims[0].1["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn the_retention_policy_decides_a_claims_owners() {
        let mut owner = set();
        let pod = ObjectMeta { name: "web-3".into(), uid: "p3".into(), ..ObjectMeta::default() };
        let other = OwnerReference { kind: "Thing".into(), uid: "t".into(), ..OwnerReference::default() };
        assert_eq!(claim_owners(&owner, Some(&pod), true, std::slice::from_ref(&other)), vec![other.clone()]);
        owner.spec.persistent_volume_claim_retention_policy =
            RetentionPolicy { when_deleted: "Delete".into(), when_scaled: "Delete".into() };
        let owners = claim_owners(&owner, Some(&pod), true, std::slice::from_ref(&other));
        assert_eq!(owners.iter().map(|o| o.uid.as_str()).collect::<Vec<_>>(), vec!["t", "u1", "p3"]);
        let kept = claim_owners(&owner, Some(&pod), false, &owners);
        assert_eq!(kept.iter().map(|o| o.uid.as_str()).collect::<Vec<_>>(), vec!["t", "u1"]);
    }
}
