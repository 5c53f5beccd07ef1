//! The `scale` subresource: an `autoscaling/v1` `Scale` view of an object's
//! `spec.replicas`, read and written through the object itself.

use serde_json::{Value, json};

/// The `Scale` of `object`.
pub fn of(object: &Value) -> Value {
    let metadata = &object["metadata"];
    let mut scale_metadata = json!({});
    for field in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(value) = metadata.get(field) {
            scale_metadata[field] = value.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_metadata,
        "spec": { "replicas": object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1) },
        "status": {
            "replicas": object.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector_string(object.pointer("/spec/selector")),
        },
    })
}

/// Applies a changed `Scale` to its object: the new replica count, and the
/// `resourceVersion` the client based it on (if any).
///
/// # Errors
/// A description of a `Scale` that is not one.
pub fn apply_to(object: &mut Value, scale: &Value) -> Result<(), String> {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or("spec.replicas: Required value: a Scale needs a replica count")?;
    if replicas < 0 {
        return Err(format!("spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"));
    }
    object["spec"]["replicas"] = json!(replicas);
    if let Some(version) = scale.pointer("/metadata/resourceVersion").filter(|v| v.as_str() != Some("")) {
        object["metadata"]["resourceVersion"] = version.clone();
    }
    Ok(())
}

/// A label selector in its string form (`app=web,tier in (a,b)`).
fn selector_string(selector: Option<&Value>) -> String {
    let Some(selector) = selector else { return String::new() };
    // A ReplicationController's selector is a plain map of labels.
    if selector.get("matchLabels").is_none() && selector.get("matchExpressions").is_none() {
        let labels = selector.as_object().into_iter().flatten();
        return labels.map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(",");
    }
    let mut terms: Vec<String> = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|labels| labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    for expression in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = expression.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        terms.push(match expression.get("operator").and_then(Value::as_str) {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("DoesNotExist") => format!("!{key}"),
            _ => key.to_owned(),
        });
    }
    terms.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_read_and_write_replicas() {
        let mut deployment = json!({
            "metadata": {"name": "web", "namespace": "d", "resourceVersion": "7", "labels": {"x": "y"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
            "status": {"replicas": 1},
        });
        let scale = of(&deployment);
        assert_eq!(scale["spec"]["replicas"], 2);
        assert_eq!(scale["status"], json!({"replicas": 1, "selector": "app=web,tier in (a,b)"}));
        assert_eq!(scale["metadata"], json!({"name": "web", "namespace": "d", "resourceVersion": "7"}));
        let controller =
            json!({"metadata": {"name": "rc"}, "spec": {"replicas": 3, "selector": {"app": "web", "tier": "a"}}});
        assert_eq!(of(&controller)["status"]["selector"], "app=web,tier=a");
        apply_to(&mut deployment, &json!({"spec": {"replicas": 5}})).expect("applies");
        assert_eq!(deployment["spec"]["replicas"], 5);
        assert!(apply_to(&mut deployment, &json!({"spec": {"replicas": -1}})).is_err());
        assert!(apply_to(&mut deployment, &json!({"spec": {}})).is_err());
    }
}
