//! Discovery documents: `/version`, the legacy `/api` and `/apis` trees, and
//! aggregated discovery (apidiscovery.k8s.io/v2), all from the registry.

use serde_json::{Value, json};

use super::resources::{Registry, ResourceType};

/// The Kubernetes version the server reports; kubectl picks its binary by
/// the minor version.
pub const KUBERNETES_MINOR: &str = "32";

/// The media type of aggregated discovery replies; kubectl ignores a reply
/// that does not carry it.
pub const AGGREGATED_DISCOVERY: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The version the API server and every node's agent report
/// (`gitVersion`, a Node's `kubeletVersion`).
pub fn git_version() -> String {
    format!("v1.{KUBERNETES_MINOR}.0-engenho.{}", env!("CARGO_PKG_VERSION"))
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": git_version(),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Whether an `Accept` header asks for aggregated discovery.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| part.contains("as=APIGroupDiscoveryList"))
}

/// Legacy `/api`.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    })
}

/// Legacy `/apis`.
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .into_iter()
        .filter(|(group, _)| !group.is_empty())
        .map(|(group, versions)| {
            let versions: Vec<Value> =
                versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
            json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Legacy `/apis/<group>`, if the group is served.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    let (group, versions) = registry.groups().into_iter().find(|(group, _)| *group == name && !group.is_empty())?;
    let versions: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions, "preferredVersion": versions[0]}),
    )
}

/// Legacy `/api/v1` or `/apis/<group>/<version>`, if served.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = registry.in_group_version(group, version).collect();
    let first = types.first()?;
    let mut resources = Vec::new();
    for t in &types {
        let mut resource = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs,
        });
        if !t.short_names.is_empty() {
            resource["shortNames"] = json!(t.short_names);
        }
        if t.in_category_all {
            resource["categories"] = json!(["all"]);
        }
        resources.push(resource);
        if t.has_status {
            resources.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        let subresources: &[(&str, &str, &[&str])] = match (t.group, t.plural) {
            ("", "pods") => {
                &[("binding", "Binding", &["create"]), ("eviction", "Eviction", &["create"]), ("log", "Pod", &["get"])]
            }
            ("", "serviceaccounts") => &[("token", "TokenRequest", &["create"])],
            ("certificates.k8s.io", "certificatesigningrequests") => {
                &[("approval", "CertificateSigningRequest", &["get", "patch", "update"])]
            }
            _ => &[],
        };
        for &(subresource, kind, verbs) in subresources {
            let mut resource = json!({
                "name": format!("{}/{subresource}", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            let group = match kind {
                "Eviction" => "policy",
                "TokenRequest" => "authentication.k8s.io",
                _ => "",
            };
            if !group.is_empty() {
                resource["group"] = json!(group);
                resource["version"] = json!("v1");
            }
            resources.push(resource);
        }
        if t.has_scale {
            resources.push(json!({
                "name": format!("{}/scale", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": first.api_version, "resources": resources}),
    )
}

/// Aggregated discovery of the core group (`/api`) or of every named group
/// (`/apis`).
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let items: Vec<Value> = registry
        .groups()
        .into_iter()
        .filter(|(group, _)| group.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| {
                    let resources: Vec<Value> =
                        registry.in_group_version(group, version).map(aggregated_resource).collect();
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(t: &ResourceType) -> Value {
    let mut resource = json!({
        "resource": t.plural,
        "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular,
        "verbs": t.verbs,
    });
    if !t.short_names.is_empty() {
        resource["shortNames"] = json!(t.short_names);
    }
    if t.in_category_all {
        resource["categories"] = json!(["all"]);
    }
    let mut subresources = Vec::new();
    if t.has_status {
        subresources.push(json!({
            "subresource": "status",
            "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
            "verbs": ["get", "patch", "update"],
        }));
    }
    if t.has_scale {
        subresources.push(json!({
            "subresource": "scale",
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "verbs": ["get", "patch", "update"],
        }));
    }
    if !subresources.is_empty() {
        resource["subresources"] = json!(subresources);
    }
    resource
}
