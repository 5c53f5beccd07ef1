//! The Services the controller reads, as far as it reads them (unknown
//! fields are skipped; missing ones take Kubernetes' defaults), and the
//! reference an endpoint makes to its pod; pods and nodes are the SDK's.

use std::collections::BTreeMap;

use engenho_controller::meta::ObjectMeta;
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
