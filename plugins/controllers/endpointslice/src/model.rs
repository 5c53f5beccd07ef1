//! The objects the controller reads, as far as it reads them. Unknown
//! fields are skipped; missing ones take Kubernetes' defaults.

use std::collections::BTreeMap;

use engenho_controller::meta::{Condition, ObjectMeta};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Service {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// Its spec.
    pub spec: ServiceSpec,
}

/// What a Service asks for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    /// The labels of the pods it sends traffic to; none: endpoints are
    /// kept by someone else.
    pub selector: Option<BTreeMap<String, String>>,
    /// `ClusterIP`, `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Its cluster IP, `None` for a headless Service.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: String,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// Whether pods that are not ready are listed as ready too.
    pub publish_not_ready_addresses: bool,
    /// Its IP families (`IPv4`, `IPv6`), the primary first.
    pub ip_families: Vec<String>,
}

impl Service {
    /// Whether the Service is headless (`clusterIP: None`).
    pub fn is_headless(&self) -> bool {
        self.spec.cluster_ip == "None"
    }

    /// The address types of its EndpointSlices: one per IP family,
    /// `IPv4` when it names none.
    pub fn address_types(&self) -> Vec<String> {
        let mut families: Vec<String> =
            self.spec.ip_families.iter().filter(|f| *f == "IPv4" || *f == "IPv6").cloned().collect();
        families.dedup();
        if families.is_empty() {
            families.push("IPv4".into());
        }
        families
    }
}

/// One port of a Service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePort {
    /// Its name (empty when the Service has one port).
    pub name: String,
    /// `TCP`, `UDP` or `SCTP` (empty: `TCP`).
    pub protocol: String,
    /// The port the Service exposes.
    pub port: i32,
    /// The pods' port: a number, or the name of a container port; absent:
    /// the same as `port`.
    pub target_port: Option<Value>,
    /// The application protocol, if named.
    pub app_protocol: Option<String>,
}

impl ServicePort {
    /// Its protocol, `TCP` when unset.
    pub fn protocol(&self) -> &str {
        if self.protocol.is_empty() { "TCP" } else { &self.protocol }
    }
}

/// A pod.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Pod {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// Its spec.
    pub spec: PodSpec,
    /// Its status.
    pub status: PodStatus,
}

/// A pod's spec, as far as endpoints read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    /// The node it is bound to.
    pub node_name: String,
    /// Its hostname, if set.
    pub hostname: String,
    /// Its subdomain, if set.
    pub subdomain: String,
    /// Its containers.
    pub containers: Vec<Container>,
}

/// A container, as far as endpoints read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    /// The ports it names.
    pub ports: Vec<ContainerPort>,
}

/// One port of a container.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerPort {
    /// Its name, if any.
    pub name: String,
    /// The port number in the container.
    pub container_port: i32,
    /// Its protocol (empty: `TCP`).
    pub protocol: String,
}

/// A pod's status, as far as endpoints read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    pub phase: String,
    /// Its primary IP.
    #[serde(rename = "podIP")]
    pub pod_ip: String,
    /// All its IPs, the primary first.
    #[serde(rename = "podIPs")]
    pub pod_ips: Vec<PodIp>,
    /// Its conditions.
    pub conditions: Vec<Condition>,
}

/// One IP of a pod.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PodIp {
    /// The address.
    pub ip: String,
}

impl Pod {
    /// Whether its `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        engenho_controller::meta::condition(&self.status.conditions, "Ready").is_some_and(|c| c.status == "True")
    }

    /// Whether it has finished for good (`Succeeded` or `Failed`).
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.phase.as_str(), "Succeeded" | "Failed")
    }

    /// Its IPs, the primary first, without repeats.
    pub fn ips(&self) -> Vec<&str> {
        let mut ips: Vec<&str> = Vec::new();
        let all = std::iter::once(self.status.pod_ip.as_str()).chain(self.status.pod_ips.iter().map(|p| p.ip.as_str()));
        for ip in all {
            if !ip.is_empty() && !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        ips
    }

    /// Its IP of `family` (`IPv4` or `IPv6`), if it has one.
    pub fn ip_of(&self, family: &str) -> Option<&str> {
        self.ips().into_iter().find(|ip| ip_family(ip) == family)
    }
}

/// The family of an address: `IPv6` when it has a colon, else `IPv4`.
pub fn ip_family(ip: &str) -> &'static str {
    if ip.contains(':') { "IPv6" } else { "IPv4" }
}

/// A Node, as far as endpoints read it (its zone label).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Node {
    /// Its metadata.
    pub metadata: ObjectMeta,
}

/// The reference from an endpoint to its pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TargetRef {
    /// Always `Pod`.
    pub kind: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's uid.
    pub uid: String,
}
