//! The EndpointSlices a Service should have, planned against the ones it
//! has: endpoints stay in the slice they are in (updated in place), new
//! ones fill slices with room before new slices are made, emptied and
//! stale slices go; a Service with no endpoints keeps one empty slice.

use std::collections::{BTreeMap, BTreeSet};

use engenho_controller::kinds::SERVICES;
use engenho_controller::meta::{ObjectMeta, OwnerReference};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::endpoint::{EndpointPort, Member};
use crate::model::{Service, TargetRef};

/// The label naming the Service of a slice.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name in [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The label of the endpoints of headless Services.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SliceEndpoint {
    /// Its addresses (one).
    pub addresses: Vec<String>,
    /// Its conditions.
    pub conditions: Conditions,
    /// Its hostname, if it has one in the Service's domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The node it runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Its pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// The zone of its node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// An endpoint's conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Conditions {
    /// Whether it takes traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Whether its pod is ready, terminating or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    /// Whether its pod is being deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminating: Option<bool>,
}

impl SliceEndpoint {
    /// `member` as a slice endpoint, in `zone`.
    pub fn from_member(member: &Member, zone: Option<String>) -> Self {
        Self {
            addresses: vec![member.ip.clone()],
            conditions: Conditions {
                ready: Some(member.ready),
                serving: Some(member.serving),
                terminating: Some(member.terminating),
            },
            hostname: member.hostname.clone(),
            node_name: member.node_name.clone(),
            target_ref: Some(member.target_ref.clone()),
            zone,
        }
    }

    /// What identifies it across changes: its address and pod.
    fn identity(&self) -> (String, String) {
        let address = self.addresses.first().cloned().unwrap_or_default();
        (address, self.target_ref.as_ref().map(|t| t.uid.clone()).unwrap_or_default())
    }
}

/// An EndpointSlice of the Service, as read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Slice {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6` or `FQDN`.
    pub address_type: String,
    /// Its endpoints.
    pub endpoints: Option<Vec<SliceEndpoint>>,
    /// Its ports.
    pub ports: Option<Vec<EndpointPort>>,
}

impl Slice {
    fn endpoints(&self) -> &[SliceEndpoint] {
        self.endpoints.as_deref().unwrap_or_default()
    }

    fn ports(&self) -> &[EndpointPort] {
        self.ports.as_deref().unwrap_or_default()
    }
}

/// The endpoints a Service should have: by address type, by port set.
pub type Desired = BTreeMap<String, BTreeMap<Vec<EndpointPort>, Vec<SliceEndpoint>>>;

/// One change to the Service's slices.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new slice (with `generateName`).
    Create(Value),
    /// A slice rewritten in place: `slice`'s metadata with new labels,
    /// endpoints and ports.
    Update(Value),
    /// A slice deleted: its name and uid.
    Delete(String, String),
}

/// The labels of the Service's slices: the Service's own, less the
/// reserved ones, plus the service name, the manager and, when headless,
/// the headless label.
pub fn labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = service
        .metadata
        .labels
        .iter()
        .filter(|(k, _)| ![SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(SERVICE_NAME_LABEL.into(), service.metadata.name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    if service.is_headless() {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

/// A slice being planned: an existing one (with what it will hold) or a
/// new one.
struct Planned<'a> {
    existing: Option<&'a Slice>,
    endpoints: Vec<SliceEndpoint>,
}

/// The changes that bring `existing` (the Service's slices) to `desired`,
/// at most `max` endpoints a slice.
pub fn plan(service: &Service, desired: &Desired, existing: &[Slice], max: usize) -> Vec<Change> {
    let max = max.max(1);
    let labels = labels(service);
    let mut changes = Vec::new();
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    for (address_type, groups) in desired {
        let of_type: Vec<&Slice> = existing.iter().filter(|s| &s.address_type == address_type).collect();
        if groups.values().all(Vec::is_empty) {
            let placeholder =
                of_type.iter().find(|s| s.endpoints().is_empty() && s.ports().is_empty()).or(of_type.first());
            match placeholder {
                Some(slice) => {
                    kept.insert(&slice.metadata.name);
                    let planned = Planned { existing: Some(slice), endpoints: Vec::new() };
                    changes.extend(write(service, &labels, address_type, &[], planned));
                }
                None => changes.extend(write(
                    service,
                    &labels,
                    address_type,
                    &[],
                    Planned { existing: None, endpoints: Vec::new() },
                )),
            }
            continue;
        }
        for (ports, wanted) in groups.iter().filter(|(_, wanted)| !wanted.is_empty()) {
            let mut same_ports: Vec<&Slice> =
                of_type.iter().copied().filter(|s| s.ports() == ports.as_slice()).collect();
            same_ports.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            for planned in pack(same_ports, wanted, max) {
                if planned.endpoints.is_empty() {
                    continue;
                }
                if let Some(slice) = planned.existing {
                    kept.insert(&slice.metadata.name);
                }
                changes.extend(write(service, &labels, address_type, ports, planned));
            }
        }
    }
    for slice in existing.iter().filter(|s| !kept.contains(s.metadata.name.as_str())) {
        changes.push(Change::Delete(slice.metadata.name.clone(), slice.metadata.uid.clone()));
    }
    changes
}

/// Distributes `wanted` over `slices` (all with the same ports): each
/// endpoint stays in the slice that has it, the rest fill slices that
/// change anyway, then slices with room, then new slices.
fn pack<'a>(slices: Vec<&'a Slice>, wanted: &[SliceEndpoint], max: usize) -> Vec<Planned<'a>> {
    let by_identity: BTreeMap<(String, String), &SliceEndpoint> = wanted.iter().map(|e| (e.identity(), e)).collect();
    let mut placed: BTreeSet<(String, String)> = BTreeSet::new();
    let mut planned: Vec<Planned<'a>> = Vec::new();
    for slice in slices {
        let mut endpoints = Vec::new();
        for endpoint in slice.endpoints() {
            let identity = endpoint.identity();
            if endpoints.len() < max
                && !placed.contains(&identity)
                && let Some(wanted) = by_identity.get(&identity)
            {
                endpoints.push((*wanted).clone());
                placed.insert(identity);
            }
        }
        planned.push(Planned { existing: Some(slice), endpoints });
    }
    let mut rest: Vec<&SliceEndpoint> = wanted.iter().filter(|e| !placed.contains(&e.identity())).collect();
    rest.reverse();
    let changing = |p: &Planned<'_>| p.existing.is_some_and(|s| s.endpoints() != p.endpoints.as_slice());
    for pass_changing in [true, false] {
        for slice in planned.iter_mut().filter(|p| changing(p) == pass_changing) {
            while slice.endpoints.len() < max {
                let Some(next) = rest.pop() else { break };
                slice.endpoints.push(next.clone());
            }
        }
    }
    while !rest.is_empty() {
        let take = rest.len().min(max);
        let endpoints = rest.split_off(rest.len() - take).into_iter().rev().cloned().collect();
        planned.push(Planned { existing: None, endpoints });
    }
    planned
}

/// The write that makes `planned` a slice of `address_type` with `ports`,
/// if it is not that already.
fn write(
    service: &Service,
    labels: &BTreeMap<String, String>,
    address_type: &str,
    ports: &[EndpointPort],
    planned: Planned<'_>,
) -> Option<Change> {
    match planned.existing {
        None => Some(Change::Create(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": format!("{}-", service.metadata.name),
                "namespace": service.metadata.namespace,
                "labels": labels,
                "ownerReferences": [OwnerReference::controlled_by(&SERVICES, "Service", &service.metadata)],
            },
            "addressType": address_type,
            "endpoints": planned.endpoints,
            "ports": ports,
        }))),
        Some(slice) => {
            let same = slice.endpoints() == planned.endpoints.as_slice()
                && slice.ports() == ports
                && &slice.metadata.labels == labels;
            if same {
                return None;
            }
            let mut metadata = slice.metadata.clone();
            metadata.labels = labels.clone();
            Some(Change::Update(json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": metadata,
                "addressType": address_type,
                "endpoints": planned.endpoints,
                "ports": ports,
            })))
        }
    }
}
