//! APIService objects (apiregistration.k8s.io/v1) for every group version
//! the server serves, as kube-apiserver's autoregistration keeps them:
//! built-in group versions labelled `onstart`, those of custom resource
//! definitions `true`, every one served locally and always available.
//! engenho aggregates no other API servers, so an APIService that names a
//! Service is stored but serves nothing.

use serde_json::{Value, json};

use super::client::{ApiClient, Refused};
use super::objects::ObjectStore;
use super::resources::Registry;

/// The label that marks an APIService as kept by the server.
const AUTOMANAGED: &str = "kube-aggregator.kubernetes.io/automanaged";

/// The group priorities kube-apiserver gives the built-in groups, as
/// (group, groupPriorityMinimum, versionPriority); a group not listed is a
/// custom one.
const PRIORITIES: [(&str, u32, u32); 21] = [
    ("", 18000, 1),
    ("apps", 17800, 15),
    ("events.k8s.io", 17750, 15),
    ("authentication.k8s.io", 17700, 15),
    ("authorization.k8s.io", 17600, 15),
    ("autoscaling", 17500, 30),
    ("batch", 17400, 15),
    ("certificates.k8s.io", 17300, 15),
    ("networking.k8s.io", 17200, 15),
    ("policy", 17100, 15),
    ("rbac.authorization.k8s.io", 17000, 15),
    ("storage.k8s.io", 16800, 15),
    ("admissionregistration.k8s.io", 16700, 15),
    ("scheduling.k8s.io", 16600, 15),
    ("coordination.k8s.io", 16500, 15),
    ("apiextensions.k8s.io", 16400, 15),
    ("node.k8s.io", 16300, 15),
    ("discovery.k8s.io", 16200, 15),
    ("flowcontrol.apiserver.k8s.io", 16100, 22),
    ("apiregistration.k8s.io", 18000, 15),
    ("engenho.io", 1000, 100),
];

/// The APIService of every group version `registry` serves.
pub fn wanted(registry: &Registry) -> Vec<Value> {
    let mut services = Vec::new();
    for (group, versions) in registry.groups() {
        let known = PRIORITIES.iter().find(|(g, _, _)| *g == group);
        let (group_priority, version_priority) = known.map_or((1000, 100), |&(_, g, v)| (g, v));
        let built_in = known.is_some() && group != "engenho.io";
        for (index, version) in versions.iter().enumerate() {
            // Later versions of a group rank below the first (preferred).
            let version_priority = version_priority.saturating_sub(u32::try_from(index).unwrap_or(0) * 15).max(1);
            services.push(json!({
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": format!("{version}.{group}"),
                    "labels": {AUTOMANAGED: if built_in { "onstart" } else { "true" }}},
                "spec": {"group": group, "version": version, "groupPriorityMinimum": group_priority,
                    "versionPriority": version_priority},
                "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Local",
                    "message": "Local APIServices are always available",
                    "lastTransitionTime": super::objects::now()}]},
            }));
        }
    }
    services
}

/// Creates the APIServices `registry` wants and deletes the automanaged
/// ones it no longer does (a deleted custom group's), writing through
/// `client`. A refused write does not keep the others from being made.
///
/// # Errors
/// The store refused the read, or the first refused write.
pub async fn reconcile(objects: &ObjectStore, registry: &Registry, client: &ApiClient) -> Result<(), Refused> {
    let Some(t) = registry.find("apiregistration.k8s.io", "v1", "apiservices") else { return Ok(()) };
    let existing = objects.list_at(t, None, 0)?.items;
    let name_of = |o: &Value| o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let wanted = wanted(registry);
    let mut first_error = None;
    for service in &wanted {
        if existing.iter().any(|e| name_of(e) == name_of(service)) {
            continue;
        }
        match client.create(t, None, service.to_string().into_bytes()).await {
            Ok(_) => {}
            Err(refused) if refused.reason == "AlreadyExists" => {}
            Err(refused) => first_error = first_error.or(Some(refused)),
        }
    }
    for stale in existing.iter().filter(|e| !wanted.iter().any(|w| name_of(w) == name_of(e))) {
        if stale.pointer(&format!("/metadata/labels/{}", AUTOMANAGED.replace('/', "~1"))).is_none() {
            continue;
        }
        match client.delete(t, None, &name_of(stale), &json!({})).await {
            Ok(_) => {}
            Err(refused) if matches!(refused.code, 404 | 409) => {}
            Err(refused) => first_error = first_error.or(Some(refused)),
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_group_version_has_its_service() {
        let registry = Registry::built_in();
        let services = wanted(&registry);
        let names: Vec<&str> = services.iter().filter_map(|s| s.pointer("/metadata/name")?.as_str()).collect();
        for name in ["v1.", "v1.apps", "v2.autoscaling", "v1.autoscaling", "v1.events.k8s.io"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        let autoscaling = |name: &str| {
            services.iter().find(|s| s.pointer("/metadata/name").and_then(Value::as_str) == Some(name)).cloned()
        };
        let (v2, v1) = (autoscaling("v2.autoscaling").expect("v2"), autoscaling("v1.autoscaling").expect("v1"));
        assert!(v2["spec"]["versionPriority"].as_u64() > v1["spec"]["versionPriority"].as_u64(), "v2 is preferred");
        assert_eq!(v2["metadata"]["labels"][AUTOMANAGED], "onstart");
    }
}
