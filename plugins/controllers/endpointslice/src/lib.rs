//! Controller: each Service with a selector has EndpointSlices listing the
//! pods it selects, and the legacy `Endpoints` object named as it, as
//! kube-controller-manager's endpointslice and endpoints controllers keep
//! them. Pods with an IP are endpoints (ready when their `Ready`
//! condition holds and they are not terminating, or when the Service
//! publishes addresses that are not ready); the Service's ports resolve
//! against each pod's container ports. Slices hold at most
//! `maxEndpointsPerSlice` endpoints, are rewritten in place as pods
//! change, and go when stale. Services without a selector, and
//! `ExternalName` ones, are left alone.
//!
//! Configuration (JSON, optional): `{"maxEndpointsPerSlice": 100}`.

pub mod endpoint;
pub mod legacy;
pub mod model;
pub mod slices;

use std::collections::BTreeMap;
use std::sync::Arc;

use engenho_controller::kinds::{ENDPOINT_SLICES, ENDPOINTS, NODES, PODS, SERVICES};
use engenho_controller::meta::format_time;
use engenho_controller::nodes::Node;
use engenho_controller::pods::Pod;
use engenho_controller::selector::equality_text;
use engenho_controller::{
    ApiError, Cluster, Controller, EventType, Interest, Key, ObjectRef, Outcome, Propagation, Selector, Trigger, Write,
};
use serde::Deserialize;

use crate::endpoint::{members_by_ports, should_be_endpoint};
use crate::legacy::Endpoints;
use crate::model::Service;
use crate::slices::{Change, Desired, MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, Slice, SliceEndpoint};

/// The most endpoints a slice holds, unless configured.
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The fields of a pod an endpoint is made from: a change of any other
/// field leaves its Services' endpoints as they are.
pub const POD_ENDPOINT_FIELDS: [&str; 8] = [
    "/metadata/labels",
    "/metadata/deletionTimestamp",
    "/spec/hostname",
    "/spec/subdomain",
    "/status/phase",
    "/status/podIP",
    "/status/podIPs",
    "/status/conditions/Ready",
];

/// The node label naming its zone.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The controller's configuration.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// The most endpoints a slice holds (1 to 1000).
    #[serde(default = "default_max")]
    max_endpoints_per_slice: usize,
}

fn default_max() -> usize {
    DEFAULT_MAX_ENDPOINTS_PER_SLICE
}

/// Keeps each Service's EndpointSlices and Endpoints.
pub struct EndpointSlices {
    max_endpoints_per_slice: usize,
}

impl Controller for EndpointSlices {
    fn configure(config: &str) -> Result<(Self, Vec<Interest>), String> {
        let config: Config = match config.trim() {
            "" => Config { max_endpoints_per_slice: DEFAULT_MAX_ENDPOINTS_PER_SLICE },
            text => serde_json::from_str(text).map_err(|e| format!("invalid configuration: {e}"))?,
        };
        if !(1..=1000).contains(&config.max_endpoints_per_slice) {
            return Err("invalid configuration: maxEndpointsPerSlice must be between 1 and 1000".into());
        }
        let interests = vec![
            Interest::new(SERVICES, [Trigger::Itself]),
            // What an endpoint reads of a pod, as Kubernetes'
            // `podEndpointsChanged` weighs it: a node name is set (by
            // binding) before the pod has an address, so it is not one.
            Interest::new(PODS, [Trigger::Selecting(SERVICES)]).on_changes_of(POD_ENDPOINT_FIELDS),
            Interest::new(ENDPOINT_SLICES, [Trigger::Owners(SERVICES)]),
            Interest::new(ENDPOINTS, [Trigger::SameName(SERVICES)]),
            Interest::new(NODES, []),
        ];
        Ok((Self { max_endpoints_per_slice: config.max_endpoints_per_slice }, interests))
    }

    fn reconcile<C: Cluster>(&self, cluster: &C, key: &Key) -> Outcome {
        self.sync(cluster, key).into()
    }
}

impl EndpointSlices {
    fn sync<C: Cluster>(&self, cluster: &C, key: &Key) -> Result<Outcome, ApiError> {
        let Some(service) = cluster.get_as::<Service>(&SERVICES, &key.namespace, &key.name)? else {
            return delete_orphan_endpoints(cluster, key);
        };
        if service.metadata.is_deleting() || service.spec.type_ == "ExternalName" {
            return Ok(Outcome::Done);
        }
        let Some(selector) = &service.spec.selector else { return Ok(Outcome::Done) };
        let namespace = service.metadata.namespace.clone();
        let pods: Vec<Arc<Pod>> = cluster
            .list_shared(&PODS, &Selector { labels: equality_text(selector), ..Selector::namespace(&namespace) })?;
        let slice_error = self.sync_slices(cluster, &service, &pods).err();
        let endpoints_error = sync_endpoints(cluster, &service, &pods).err();
        match slice_error.or(endpoints_error) {
            Some(error) => Err(error),
            None => Ok(Outcome::Done),
        }
    }

    /// Brings the Service's EndpointSlices to what its pods say.
    fn sync_slices<C: Cluster>(&self, cluster: &C, service: &Service, pods: &[Arc<Pod>]) -> Result<(), ApiError> {
        let namespace = &service.metadata.namespace;
        let zones = zones(cluster, pods)?;
        let mut desired = Desired::new();
        for family in service.address_types() {
            let groups = members_by_ports(service, pods, &family, true)
                .into_iter()
                .map(|(ports, members)| {
                    let endpoints = members
                        .iter()
                        .map(|m| {
                            let zone = m.node_name.as_ref().and_then(|n| zones.get(n)).cloned();
                            SliceEndpoint::from_member(m, zone)
                        })
                        .collect();
                    (ports, endpoints)
                })
                .collect();
            desired.insert(family, groups);
        }
        let labels = format!("{SERVICE_NAME_LABEL}={},{MANAGED_BY_LABEL}={MANAGED_BY}", service.metadata.name);
        let existing: Vec<Slice> =
            cluster.list_as(&ENDPOINT_SLICES, &Selector { labels, ..Selector::namespace(namespace) })?;
        let writes: Vec<Write> = slices::plan(service, &desired, &existing, self.max_endpoints_per_slice)
            .into_iter()
            .map(|change| match change {
                Change::Create(object) => Write::Create { kind: ENDPOINT_SLICES, namespace: namespace.clone(), object },
                Change::Update(object) => Write::Update { kind: ENDPOINT_SLICES, namespace: namespace.clone(), object },
                Change::Delete(name, uid) => Write::Delete {
                    kind: ENDPOINT_SLICES,
                    namespace: namespace.clone(),
                    name,
                    uid,
                    propagation: Propagation::Background,
                },
            })
            .collect();
        let deletes: Vec<bool> = writes.iter().map(|w| matches!(w, Write::Delete { .. })).collect();
        let mut first_error = None;
        for (answer, is_delete) in cluster.apply(writes).into_iter().zip(deletes) {
            match answer {
                Err(error) if is_delete && error.is_not_found() => {}
                Err(error) => {
                    first_error.get_or_insert(error);
                }
                Ok(_) => {}
            }
        }
        if let Some(error) = first_error {
            let message = format!(
                "Error updating Endpoint Slices for Service {namespace}/{}: {}",
                service.metadata.name, error.message
            );
            cluster.emit(
                &ObjectRef::to(&SERVICES, &service.metadata),
                EventType::Warning,
                "FailedToUpdateEndpointSlices",
                &message,
            );
            return Err(error);
        }
        Ok(())
    }
}

/// Brings the Service's Endpoints object to what its pods say.
fn sync_endpoints<C: Cluster>(cluster: &C, service: &Service, pods: &[Arc<Pod>]) -> Result<(), ApiError> {
    let namespace = &service.metadata.namespace;
    let current = cluster.get_as::<Endpoints>(&ENDPOINTS, namespace, &service.metadata.name)?;
    let now = format_time(cluster.now());
    let Some(object) = legacy::desired(service, pods, current.as_ref(), &now) else { return Ok(()) };
    let (write, reason, what) = match &current {
        None => (
            Write::Create { kind: ENDPOINTS, namespace: namespace.clone(), object },
            "FailedToCreateEndpoint",
            "Failed to create endpoint for service",
        ),
        Some(_) => (
            Write::Update { kind: ENDPOINTS, namespace: namespace.clone(), object },
            "FailedToUpdateEndpoint",
            "Failed to update endpoint",
        ),
    };
    match cluster.write(write) {
        Ok(_) => Ok(()),
        Err(error) => {
            let regarding = ObjectRef {
                kind: ENDPOINTS,
                namespace: namespace.clone(),
                name: service.metadata.name.clone(),
                uid: current.map(|c| c.metadata.uid).unwrap_or_default(),
            };
            let message = format!("{what} {namespace}/{}: {}", service.metadata.name, error.message);
            cluster.emit(&regarding, EventType::Warning, reason, &message);
            Err(error)
        }
    }
}

/// Deletes the Endpoints this controller wrote for a Service that is gone
/// (those carrying its trigger-time annotation; others are someone
/// else's).
fn delete_orphan_endpoints<C: Cluster>(cluster: &C, key: &Key) -> Result<Outcome, ApiError> {
    let Some(current) = cluster.get_as::<Endpoints>(&ENDPOINTS, &key.namespace, &key.name)? else {
        return Ok(Outcome::Done);
    };
    if !current.metadata.annotations.contains_key(legacy::TRIGGER_TIME_ANNOTATION) {
        return Ok(Outcome::Done);
    }
    let deletion = Write::Delete {
        kind: ENDPOINTS,
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        uid: current.metadata.uid,
        propagation: Propagation::Background,
    };
    match cluster.write(deletion) {
        Err(error) if !error.is_not_found() => Err(error),
        _ => Ok(Outcome::Done),
    }
}

/// The zones of the nodes the pods that are endpoints run on, by node
/// name.
fn zones<C: Cluster>(cluster: &C, pods: &[Arc<Pod>]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut zones = BTreeMap::new();
    let endpoints = pods.iter().filter(|pod| should_be_endpoint(pod, true));
    for node_name in endpoints.map(|p| &p.spec.node_name).filter(|n| !n.is_empty()) {
        if zones.contains_key(node_name) {
            continue;
        }
        if let Some(zone) = cluster
            .get_shared::<Node>(&NODES, "", node_name)?
            .and_then(|node| node.metadata.labels.get(ZONE_LABEL).cloned())
        {
            zones.insert(node_name.clone(), zone);
        }
    }
    Ok(zones)
}

engenho_controller::export_controller!(EndpointSlices);

#[cfg(test)]
mod tests;
