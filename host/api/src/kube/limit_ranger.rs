//! LimitRange, as kube-apiserver's LimitRanger admission applies it: a
//! LimitRange's own defaults (a default limit from `max`, a default
//! request from the default limit or `min`), containers of new pods given
//! the namespace's `default` limits and `defaultRequest` requests they
//! lack, pods refused (403, Kubernetes' message) whose containers, or
//! whose sums, fall outside `min`/`max` or pass `maxLimitRequestRatio`,
//! and claims refused whose storage request falls outside the `min`/`max`
//! of `PersistentVolumeClaim` items.

use serde_json::{Value, json};

use super::objects::ObjectStore;
use super::resources::Registry;
use super::status::ApiError;
use engenho_control::quantity::Quantity;

/// The LimitRanges of `namespace`, as this node has them (as
/// kube-apiserver reads them from its cache).
fn limit_ranges(objects: &ObjectStore, registry: &Registry, namespace: &str) -> Result<Vec<Value>, ApiError> {
    let t = registry.find("", "v1", "limitranges").expect("limit ranges are built in");
    Ok(objects.list_at(t, Some(namespace), 0)?.items)
}

/// The items of a LimitRange of `kind` (`Container`, `Pod`).
fn items<'a>(ranges: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    ranges
        .iter()
        .flat_map(|range| range.pointer("/spec/limits").and_then(Value::as_array).into_iter().flatten())
        .filter(move |item| item.get("type").and_then(Value::as_str) == Some(kind))
}

/// Fills in a LimitRange's defaults as Kubernetes does for `Container`
/// items: the default limit from `max`, the default request from the
/// default limit, then from `min`.
pub fn default_limit_range(object: &mut Value) {
    let Some(items) = object.pointer_mut("/spec/limits").and_then(Value::as_array_mut) else { return };
    for item in items.iter_mut().filter(|item| item.get("type").and_then(Value::as_str) == Some("Container")) {
        for (from, into) in [("max", "default"), ("default", "defaultRequest"), ("min", "defaultRequest")] {
            let source = item.get(from).and_then(Value::as_object).cloned().unwrap_or_default();
            if source.is_empty() {
                continue;
            }
            if !item.get(into).is_some_and(Value::is_object) {
                item[into] = json!({});
            }
            for (resource, quantity) in source {
                if item[into].get(&resource).is_none() {
                    item[into][resource] = quantity;
                }
            }
        }
    }
}

/// Gives the containers of a new pod the default limits and requests of
/// the `Container` items of `namespace`'s LimitRanges, where they lack
/// them.
///
/// # Errors
/// Store failures.
pub fn default_pod(
    objects: &ObjectStore,
    registry: &Registry,
    namespace: &str,
    pod: &mut Value,
) -> Result<(), ApiError> {
    let ranges = limit_ranges(objects, registry, namespace)?;
    for item in items(&ranges, "Container") {
        for field in ["containers", "initContainers"] {
            let Some(containers) = pod.pointer_mut(&format!("/spec/{field}")).and_then(Value::as_array_mut) else {
                continue;
            };
            for container in containers.iter_mut() {
                for (default, into) in [("default", "limits"), ("defaultRequest", "requests")] {
                    let defaults = item.get(default).and_then(Value::as_object).into_iter().flatten();
                    for (resource, quantity) in defaults {
                        if !container.get("resources").is_some_and(Value::is_object) {
                            container["resources"] = json!({});
                        }
                        let resources = &mut container["resources"];
                        if !resources.get(into).is_some_and(Value::is_object) {
                            resources[into] = json!({});
                        }
                        if resources[into].get(resource).is_none() {
                            resources[into][resource] = quantity.clone();
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Refuses a new pod outside the `min`, `max` and `maxLimitRequestRatio`
/// of `namespace`'s LimitRanges, with every reason Kubernetes gives.
///
/// # Errors
/// 403 `pods "web" is forbidden: maximum cpu usage per Container is 1, but
/// limit is 2`; store failures.
pub fn check_pod(objects: &ObjectStore, registry: &Registry, namespace: &str, pod: &Value) -> Result<(), ApiError> {
    let ranges = limit_ranges(objects, registry, namespace)?;
    let mut reasons = Vec::new();
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|field| pod.pointer(&format!("/spec/{field}")).and_then(Value::as_array).into_iter().flatten())
        .collect();
    let amounts = |container: &Value, field: &str, resource: &str| {
        container
            .pointer(&format!("/resources/{field}/{resource}"))
            .and_then(Value::as_str)
            .and_then(|q| Quantity::parse(q).ok())
    };
    for item in items(&ranges, "Container") {
        for container in &containers {
            let request = |resource: &str| amounts(container, "requests", resource);
            let limit = |resource: &str| amounts(container, "limits", resource);
            reasons.extend(violations(item, "Container", &request, &limit));
        }
    }
    for item in items(&ranges, "Pod") {
        let sum = |field: &str, resource: &str| {
            let regular = pod.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten();
            let found: Vec<Quantity> = regular.filter_map(|c| amounts(c, field, resource)).collect();
            found.into_iter().reduce(Quantity::plus)
        };
        reasons.extend(violations(item, "Pod", &|r| sum("requests", r), &|r| sum("limits", r)));
    }
    match reasons.as_slice() {
        [] => Ok(()),
        reasons => {
            let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            let reason = if reasons.len() == 1 { reasons[0].clone() } else { format!("[{}]", reasons.join(", ")) };
            Err(ApiError::forbidden_on(format!("pods \"{name}\" is forbidden: {reason}"), "", "pods", name))
        }
    }
}

/// Refuses a claim being created or updated whose requests fall outside
/// the `min` and `max` of the `PersistentVolumeClaim` items of
/// `namespace`'s LimitRanges; a claim's limits are not read, as in
/// Kubernetes.
///
/// # Errors
/// 403 `persistentvolumeclaims "data" is forbidden: maximum storage usage
/// per PersistentVolumeClaim is 2Gi, but request is 5Gi`; store failures.
pub fn check_claim(objects: &ObjectStore, registry: &Registry, namespace: &str, claim: &Value) -> Result<(), ApiError> {
    let ranges = limit_ranges(objects, registry, namespace)?;
    let request = |resource: &str| {
        claim
            .pointer(&format!("/spec/resources/requests/{resource}"))
            .and_then(Value::as_str)
            .and_then(|q| Quantity::parse(q).ok())
    };
    let reasons: Vec<String> =
        items(&ranges, "PersistentVolumeClaim").flat_map(|item| claim_violations(item, &request)).collect();
    match reasons.as_slice() {
        [] => Ok(()),
        reasons => {
            let name = claim.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            let reason = if reasons.len() == 1 { reasons[0].clone() } else { format!("[{}]", reasons.join(", ")) };
            Err(ApiError::forbidden_on(
                format!("persistentvolumeclaims \"{name}\" is forbidden: {reason}"),
                "",
                "persistentvolumeclaims",
                name,
            ))
        }
    }
}

/// How a claim's requests break one `PersistentVolumeClaim` item, in
/// Kubernetes' words: `min` and `max` both bound the request.
fn claim_violations(item: &Value, request: &dyn Fn(&str) -> Option<Quantity>) -> Vec<String> {
    let kind = "PersistentVolumeClaim";
    let mut reasons = Vec::new();
    for (resource, min) in bounds(item, "min") {
        match request(&resource) {
            None => reasons.push(format!("minimum {resource} usage per {kind} is {min}.  No request is specified")),
            Some(request) if request < min => {
                reasons.push(format!("minimum {resource} usage per {kind} is {min}, but request is {request}"));
            }
            Some(_) => {}
        }
    }
    for (resource, max) in bounds(item, "max") {
        match request(&resource) {
            None => reasons.push(format!("maximum {resource} usage per {kind} is {max}.  No request is specified")),
            Some(request) if request > max => {
                reasons.push(format!("maximum {resource} usage per {kind} is {max}, but request is {request}"));
            }
            Some(_) => {}
        }
    }
    reasons
}

/// The quantities of an item's `field` (`min`, `max`) in resource name
/// order, skipping what does not parse.
fn bounds(item: &Value, field: &str) -> Vec<(String, Quantity)> {
    let entries = item.get(field).and_then(Value::as_object).into_iter().flatten();
    let mut found: Vec<(String, Quantity)> =
        entries.filter_map(|(r, q)| Some((r.clone(), Quantity::parse(q.as_str()?).ok()?))).collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// How one container (or pod) breaks one LimitRange item, in Kubernetes'
/// words.
fn violations(
    item: &Value,
    kind: &str,
    request: &dyn Fn(&str) -> Option<Quantity>,
    limit: &dyn Fn(&str) -> Option<Quantity>,
) -> Vec<String> {
    let bounds = |field: &str| bounds(item, field);
    let mut reasons = Vec::new();
    for (resource, min) in bounds("min") {
        match (request(&resource), limit(&resource)) {
            (None, _) => {
                reasons.push(format!("minimum {resource} usage per {kind} is {min}.  No request is specified"))
            }
            (Some(request), _) if request < min => {
                reasons.push(format!("minimum {resource} usage per {kind} is {min}, but request is {request}"));
            }
            (_, Some(limit)) if limit < min => {
                reasons.push(format!("minimum {resource} usage per {kind} is {min}, but limit is {limit}"));
            }
            _ => {}
        }
    }
    for (resource, max) in bounds("max") {
        match (request(&resource), limit(&resource)) {
            (_, None) => reasons.push(format!("maximum {resource} usage per {kind} is {max}.  No limit is specified")),
            (_, Some(limit)) if limit > max => {
                reasons.push(format!("maximum {resource} usage per {kind} is {max}, but limit is {limit}"));
            }
            (Some(request), _) if request > max => {
                reasons.push(format!("maximum {resource} usage per {kind} is {max}, but request is {request}"));
            }
            _ => {}
        }
    }
    for (resource, ratio) in bounds("maxLimitRequestRatio") {
        let prefix = format!("{resource} max limit to request ratio per {kind} is {ratio}");
        match (request(&resource).filter(|q| !q.is_zero()), limit(&resource).filter(|q| !q.is_zero())) {
            (None, _) => reasons.push(format!("{prefix}, but no request is specified or request is 0")),
            (_, None) => reasons.push(format!("{prefix}, but no limit is specified or limit is 0")),
            (Some(request), Some(limit)) => {
                let observed = limit.milli_value() as f64 / request.milli_value() as f64;
                if observed * 1000.0 > ratio.milli_value() as f64 {
                    reasons.push(format!("{prefix}, but provided ratio is {observed:.6}"));
                }
            }
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantities(map: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<Quantity> {
        move |resource| map.iter().find(|(r, _)| *r == resource).map(|(_, q)| Quantity::parse(q).expect("quantity"))
    }

    #[test]
    fn containers_outside_the_range_are_named_as_kubernetes_does() {
        let item = json!({"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"},
            "maxLimitRequestRatio": {"cpu": "2"}});
        let reasons = violations(&item, "Container", &quantities(&[("cpu", "500m")]), &quantities(&[("cpu", "2")]));
        assert_eq!(
            reasons,
            [
                "minimum memory usage per Container is 64Mi.  No request is specified",
                "maximum cpu usage per Container is 1, but limit is 2",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000",
            ]
        );
        let fits = violations(
            &item,
            "Container",
            &quantities(&[("cpu", "500m"), ("memory", "64Mi")]),
            &quantities(&[("cpu", "1")]),
        );
        assert!(fits.is_empty(), "{fits:?}");
    }

    #[test]
    fn claims_outside_the_range_are_named_as_kubernetes_does() {
        let item = json!({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}});
        assert_eq!(
            claim_violations(&item, &quantities(&[("storage", "5Gi")])),
            ["maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"]
        );
        assert_eq!(
            claim_violations(&item, &quantities(&[("storage", "512Mi")])),
            ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 512Mi"]
        );
        assert_eq!(
            claim_violations(&item, &quantities(&[])),
            [
                "minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified",
                "maximum storage usage per PersistentVolumeClaim is 2Gi.  No request is specified",
            ]
        );
        assert!(claim_violations(&item, &quantities(&[("storage", "2Gi")])).is_empty());
    }

    #[test]
    fn limit_ranges_default_as_kubernetes_does() {
        let mut range = json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}},
            {"type": "Pod", "max": {"cpu": "4"}}]}});
        default_limit_range(&mut range);
        assert_eq!(range["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
        assert_eq!(range["spec"]["limits"][0]["defaultRequest"], json!({"cpu": "2", "memory": "1Mi"}));
        assert!(range["spec"]["limits"][1].get("default").is_none(), "pod items get no defaults");
    }
}
