//! The legacy `Endpoints` object named as the Service: its subsets group
//! the pods' addresses (ready or not) by the ports they serve, as the
//! endpoints controller keeps them.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use engenho_controller::meta::ObjectMeta;
use engenho_controller::pods::Pod;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::endpoint::{self, EndpointPort};
use crate::model::{Service, TargetRef};
use crate::slices::HEADLESS_LABEL;

/// The annotation with the time of the change that last rewrote the
/// Endpoints.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// The annotation set when addresses were left out.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// The most addresses an Endpoints object lists.
pub const MAX_ADDRESSES: usize = 1000;

/// One address of a subset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointAddress {
    /// The pod's IP.
    pub ip: String,
    /// Its hostname in the Service's domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The node it runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
}

/// Addresses that serve the same ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Subset {
    /// The ready addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<EndpointAddress>,
    /// The addresses not ready.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_ready_addresses: Vec<EndpointAddress>,
    /// The ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

/// An Endpoints object, as read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Endpoints {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// Its subsets.
    pub subsets: Option<Vec<Subset>>,
}

/// The subsets of `service` over `pods`: addresses of its primary IP
/// family grouped by the ports they serve, sorted; and whether addresses
/// were left out to stay within [`MAX_ADDRESSES`].
pub fn subsets(service: &Service, pods: &[impl Borrow<Pod>]) -> (Vec<Subset>, bool) {
    let family = service.address_types().into_iter().next().unwrap_or_else(|| "IPv4".into());
    let publish = service.spec.publish_not_ready_addresses;
    let mut groups: BTreeMap<Vec<EndpointPort>, Subset> = BTreeMap::new();
    for pod in pods.iter().map(Borrow::borrow).filter(|pod| endpoint::should_be_endpoint(pod, publish)) {
        let Some(member) = endpoint::member(service, pod, &family) else { continue };
        if member.ports.is_empty() && !(service.spec.ports.is_empty() && service.is_headless()) {
            continue;
        }
        let address = EndpointAddress {
            ip: member.ip.clone(),
            hostname: member.hostname.clone(),
            node_name: member.node_name.clone(),
            target_ref: Some(member.target_ref.clone()),
        };
        let subset = groups.entry(member.ports.clone()).or_default();
        if publish || pod.is_ready() {
            subset.addresses.push(address);
        } else {
            subset.not_ready_addresses.push(address);
        }
    }
    let mut subsets: Vec<Subset> = groups
        .into_iter()
        .map(|(ports, mut subset)| {
            subset.ports = ports;
            let order = |a: &EndpointAddress, b: &EndpointAddress| (&a.ip, &a.target_ref).cmp(&(&b.ip, &b.target_ref));
            subset.addresses.sort_by(order);
            subset.not_ready_addresses.sort_by(order);
            subset
        })
        .collect();
    let truncated = truncate(&mut subsets);
    (subsets, truncated)
}

/// Leaves at most [`MAX_ADDRESSES`] addresses, ready ones first; whether
/// any were left out.
fn truncate(subsets: &mut [Subset]) -> bool {
    let total: usize = subsets.iter().map(|s| s.addresses.len() + s.not_ready_addresses.len()).sum();
    if total <= MAX_ADDRESSES {
        return false;
    }
    let mut room = MAX_ADDRESSES;
    for subset in subsets.iter_mut() {
        subset.addresses.truncate(room);
        room -= subset.addresses.len();
    }
    for subset in subsets.iter_mut() {
        subset.not_ready_addresses.truncate(room);
        room -= subset.not_ready_addresses.len();
    }
    true
}

/// The labels of the Service's Endpoints: the Service's, plus the
/// headless label when it is headless.
pub fn labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone();
    if service.is_headless() || service.spec.cluster_ip.is_empty() {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// The Endpoints object `service` should have, when `current` is not it
/// already: a new one (no `current`) or `current` rewritten; `now` is the
/// trigger time written.
pub fn desired(service: &Service, pods: &[impl Borrow<Pod>], current: Option<&Endpoints>, now: &str) -> Option<Value> {
    let (subsets, truncated) = subsets(service, pods);
    let labels = labels(service);
    if let Some(current) = current {
        let same = current.subsets.as_deref().unwrap_or_default() == subsets.as_slice()
            && current.metadata.labels == labels
            && current.metadata.annotations.contains_key(OVER_CAPACITY_ANNOTATION) == truncated;
        if same {
            return None;
        }
    }
    let mut metadata = current.map(|c| c.metadata.clone()).unwrap_or_else(|| ObjectMeta {
        name: service.metadata.name.clone(),
        namespace: service.metadata.namespace.clone(),
        ..ObjectMeta::default()
    });
    metadata.labels = labels;
    metadata.annotations.insert(TRIGGER_TIME_ANNOTATION.into(), now.to_owned());
    if truncated {
        metadata.annotations.insert(OVER_CAPACITY_ANNOTATION.into(), "truncated".into());
    } else {
        metadata.annotations.remove(OVER_CAPACITY_ANNOTATION);
    }
    Some(json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": metadata, "subsets": subsets}))
}
