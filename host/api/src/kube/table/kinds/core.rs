//! Core kinds: services, endpoints, events (core and `events.k8s.io`),
//! service accounts, volumes and claims, pod templates, replication
//! controllers, component statuses.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::super::Column;
use super::cells::{
    AGE, NAME, access_modes, column, containers, count, int, items, labels, list_with_more, quantity, since, text,
    text_or, wide,
};
use super::descriptions as doc;

/// The columns of a core (or `events.k8s.io`) kind.
pub(super) fn columns(group: &str, plural: &str) -> Option<Vec<Column>> {
    let columns = match (group, plural) {
        ("", "services") => services(),
        ("", "endpoints") => vec![NAME, column("Endpoints", "string", doc::ENDPOINTS_SUBSETS, endpoints_cell), AGE],
        ("", "events") => events(false),
        ("events.k8s.io", "events") => events(true),
        ("", "serviceaccounts") => {
            vec![NAME, column("Secrets", "string", doc::SERVICE_ACCOUNT_SECRETS, |o| json!(count(o, "/secrets"))), AGE]
        }
        ("", "persistentvolumes") => persistent_volumes(),
        ("", "persistentvolumeclaims") => persistent_volume_claims(),
        ("", "podtemplates") => vec![
            NAME,
            column("Containers", "string", "Names of each container in the template.", |o| {
                json!(containers(o, "/template/spec").0)
            }),
            column("Images", "string", "Images referenced by each container in the template.", |o| {
                json!(containers(o, "/template/spec").1)
            }),
            column("Pod Labels", "string", "The labels for the pod template.", |o| {
                json!(labels(o.pointer("/template/metadata/labels")))
            }),
        ],
        ("", "replicationcontrollers") => vec![
            NAME,
            column("Desired", "integer", doc::RC_REPLICAS, |o| json!(replicas(o))),
            column("Current", "integer", doc::RC_STATUS_REPLICAS, |o| json!(int(o, "/status/replicas"))),
            column("Ready", "integer", doc::RC_READY_REPLICAS, |o| json!(int(o, "/status/readyReplicas"))),
            AGE,
            wide("Containers", "string", "Names of each container in the template.", |o| {
                json!(containers(o, "/spec/template/spec").0)
            }),
            wide("Images", "string", "Images referenced by each container in the template.", |o| {
                json!(containers(o, "/spec/template/spec").1)
            }),
            wide("Selector", "string", doc::RC_SELECTOR, |o| json!(labels(o.pointer("/spec/selector")))),
        ],
        ("", "componentstatuses") => vec![
            NAME,
            column("Status", "string", "Status of the component conditions", |o| json!(component_health(o).0)),
            column("Message", "string", "Message of the component conditions", |o| json!(component_health(o).1)),
            column("Error", "string", "Error of the component conditions", |o| json!(component_health(o).2)),
        ],
        _ => return None,
    };
    Some(columns)
}

/// `spec.replicas`, which kube-apiserver defaults to 1.
pub(super) fn replicas(object: &Value) -> i64 {
    object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

fn services() -> Vec<Column> {
    vec![
        NAME,
        column("Type", "string", doc::SERVICE_TYPE, |o| json!(text_or(o, "/spec/type", "ClusterIP"))),
        column("Cluster-IP", "string", doc::SERVICE_CLUSTER_IP, |o| {
            let first = items(o, "/spec/clusterIPs").first().and_then(Value::as_str);
            json!(first.unwrap_or_else(|| text_or(o, "/spec/clusterIP", "<none>")))
        }),
        column("External-IP", "string", doc::SERVICE_EXTERNAL_IPS, |o| json!(service_external_ip(o))),
        column("Port(s)", "string", doc::SERVICE_PORTS, |o| json!(service_ports(o))),
        AGE,
        wide("Selector", "string", doc::SERVICE_SELECTOR, |o| json!(labels(o.pointer("/spec/selector")))),
    ]
}

/// The `EXTERNAL-IP` cell: external IPs, load-balancer ingress,
/// `<pending>` for a load balancer without one, the external name.
fn service_external_ip(service: &Value) -> String {
    let external: Vec<&str> = items(service, "/spec/externalIPs").iter().filter_map(Value::as_str).collect();
    match text_or(service, "/spec/type", "ClusterIP") {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_owned(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let ingress: BTreeSet<&str> = items(service, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| [text(i, "/ip"), text(i, "/hostname")].into_iter().find(|s| !s.is_empty()))
                .collect();
            let all: Vec<&str> = ingress.into_iter().chain(external).collect();
            if all.is_empty() { "<pending>".to_owned() } else { all.join(",") }
        }
        "ExternalName" => text(service, "/spec/externalName").to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

/// The `PORT(S)` cell: `80/TCP`, `80:30080/TCP`, or `<none>`.
fn service_ports(service: &Value) -> String {
    let ports: Vec<String> = items(service, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = text_or(p, "/protocol", "TCP");
            match int(p, "/nodePort") {
                0 => format!("{}/{protocol}", int(p, "/port")),
                node_port => format!("{}:{node_port}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    if ports.is_empty() { "<none>".to_owned() } else { ports.join(",") }
}

/// The `ENDPOINTS` cell: up to three `ip:port` pairs, or `<none>`.
fn endpoints_cell(endpoints: &Value) -> Value {
    let subsets = items(endpoints, "/subsets");
    if subsets.is_empty() {
        return json!("<none>");
    }
    let mut all = Vec::new();
    for subset in subsets {
        let addresses = items(subset, "/addresses");
        let ports = items(subset, "/ports");
        if ports.is_empty() {
            all.extend(addresses.iter().map(|a| text(a, "/ip").to_owned()));
        }
        for port in ports {
            all.extend(addresses.iter().map(|a| host_port(text(a, "/ip"), int(port, "/port"))));
        }
    }
    json!(list_with_more(&all, ""))
}

/// `ip:port`, with an IPv6 address in brackets.
fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

fn events(new_api: bool) -> Vec<Column> {
    macro_rules! event_cell {
        ($cell:expr) => {
            if new_api {
                |o: &Value| -> Value { ($cell)(&EventView::of_new(o)) }
            } else {
                |o: &Value| -> Value { ($cell)(&EventView::of_core(o)) }
            }
        };
    }
    vec![
        column("Last Seen", "string", doc::EVENT_LAST_TIMESTAMP, event_cell!(|e: &EventView| json!(e.last_seen()))),
        column("Type", "string", doc::EVENT_TYPE, event_cell!(|e: &EventView| json!(e.kind))),
        column("Reason", "string", doc::EVENT_REASON, event_cell!(|e: &EventView| json!(e.reason))),
        column("Object", "string", doc::EVENT_INVOLVED_OBJECT, event_cell!(|e: &EventView| json!(e.object()))),
        wide("Subobject", "string", doc::OBJECT_REFERENCE_FIELD_PATH, event_cell!(|e: &EventView| json!(e.field_path))),
        wide("Source", "string", doc::EVENT_SOURCE, event_cell!(|e: &EventView| json!(e.source()))),
        column("Message", "string", doc::EVENT_MESSAGE, event_cell!(|e: &EventView| json!(e.message.trim()))),
        wide("First Seen", "string", doc::EVENT_FIRST_TIMESTAMP, event_cell!(|e: &EventView| json!(e.first_seen()))),
        wide("Count", "string", doc::EVENT_COUNT, event_cell!(|e: &EventView| json!(e.count()))),
        Column { priority: 1, ..NAME },
    ]
}

/// The fields an event's cells read, from either API's shape.
struct EventView<'a> {
    object: &'a Value,
    kind: &'a str,
    reason: &'a str,
    message: &'a str,
    field_path: &'a str,
    involved_kind: &'a str,
    involved_name: &'a str,
    source_component: &'a str,
    source_host: &'a str,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    first_pointer: &'static str,
    last_pointer: &'static str,
    count_pointer: &'static str,
}

impl<'a> EventView<'a> {
    /// A core `v1` event.
    fn of_core(o: &'a Value) -> Self {
        Self {
            object: o,
            kind: text(o, "/type"),
            reason: text(o, "/reason"),
            message: text(o, "/message"),
            field_path: text(o, "/involvedObject/fieldPath"),
            involved_kind: text(o, "/involvedObject/kind"),
            involved_name: text(o, "/involvedObject/name"),
            source_component: text(o, "/source/component"),
            source_host: text(o, "/source/host"),
            reporting_controller: text(o, "/reportingComponent"),
            reporting_instance: text(o, "/reportingInstance"),
            first_pointer: "/firstTimestamp",
            last_pointer: "/lastTimestamp",
            count_pointer: "/count",
        }
    }

    /// An `events.k8s.io/v1` event.
    fn of_new(o: &'a Value) -> Self {
        Self {
            object: o,
            kind: text(o, "/type"),
            reason: text(o, "/reason"),
            message: text(o, "/note"),
            field_path: text(o, "/regarding/fieldPath"),
            involved_kind: text(o, "/regarding/kind"),
            involved_name: text(o, "/regarding/name"),
            source_component: text(o, "/deprecatedSource/component"),
            source_host: text(o, "/deprecatedSource/host"),
            reporting_controller: text(o, "/reportingController"),
            reporting_instance: text(o, "/reportingInstance"),
            first_pointer: "/deprecatedFirstTimestamp",
            last_pointer: "/deprecatedLastTimestamp",
            count_pointer: "/deprecatedCount",
        }
    }

    fn first_seen(&self) -> String {
        since(self.object, self.first_pointer)
            .or_else(|| since(self.object, "/eventTime"))
            .unwrap_or_else(|| "<unknown>".to_owned())
    }

    fn last_seen(&self) -> String {
        if self.object.pointer("/series").is_some_and(Value::is_object) {
            return since(self.object, "/series/lastObservedTime").unwrap_or_else(|| "<unknown>".to_owned());
        }
        since(self.object, self.last_pointer).unwrap_or_else(|| self.first_seen())
    }

    fn count(&self) -> i64 {
        if self.object.pointer("/series").is_some_and(Value::is_object) {
            return int(self.object, "/series/count");
        }
        match int(self.object, self.count_pointer) {
            0 => 1,
            count => count,
        }
    }

    fn object(&self) -> String {
        let kind = self.involved_kind.to_lowercase();
        if self.involved_name.is_empty() { kind } else { format!("{kind}/{}", self.involved_name) }
    }

    fn source(&self) -> String {
        let component = [self.source_component, self.reporting_controller].into_iter().find(|s| !s.is_empty());
        let instance = [self.source_host, self.reporting_instance].into_iter().find(|s| !s.is_empty());
        match (component.unwrap_or_default(), instance) {
            (component, None) => component.to_owned(),
            (component, Some(instance)) => format!("{component}, {instance}"),
        }
    }
}

fn persistent_volumes() -> Vec<Column> {
    vec![
        NAME,
        column("Capacity", "string", doc::PV_CAPACITY, |o| json!(quantity(o, "/spec/capacity/storage"))),
        column("Access Modes", "string", doc::PV_ACCESS_MODES, |o| json!(access_modes(items(o, "/spec/accessModes")))),
        column("Reclaim Policy", "string", doc::PV_RECLAIM_POLICY, |o| {
            json!(text(o, "/spec/persistentVolumeReclaimPolicy"))
        }),
        column("Status", "string", doc::PV_PHASE, |o| json!(phase(o))),
        column("Claim", "string", doc::PV_CLAIM_REF, |o| match o.pointer("/spec/claimRef") {
            Some(claim) if claim.is_object() => {
                json!(format!("{}/{}", text(claim, "/namespace"), text(claim, "/name")))
            }
            _ => json!(""),
        }),
        column("StorageClass", "string", "StorageClass of the pv", |o| json!(storage_class(o))),
        column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv", |o| {
            json!(text_or(o, "/spec/volumeAttributesClassName", "<unset>"))
        }),
        column("Reason", "string", doc::PV_REASON, |o| json!(text(o, "/status/reason"))),
        AGE,
        wide("VolumeMode", "string", doc::PV_VOLUME_MODE, |o| json!(text_or(o, "/spec/volumeMode", "<unset>"))),
    ]
}

fn persistent_volume_claims() -> Vec<Column> {
    vec![
        NAME,
        column("Status", "string", doc::PVC_PHASE, |o| json!(phase(o))),
        column("Volume", "string", doc::PVC_VOLUME_NAME, |o| json!(text(o, "/spec/volumeName"))),
        column("Capacity", "string", doc::PVC_CAPACITY, |o| {
            json!(if claim_bound(o) { quantity(o, "/status/capacity/storage") } else { String::new() })
        }),
        column("Access Modes", "string", doc::PVC_ACCESS_MODES, |o| {
            json!(if claim_bound(o) { access_modes(items(o, "/status/accessModes")) } else { String::new() })
        }),
        column("StorageClass", "string", "StorageClass of the pvc", |o| json!(storage_class(o))),
        column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc", |o| {
            json!(text_or(o, "/spec/volumeAttributesClassName", "<unset>"))
        }),
        AGE,
        wide("VolumeMode", "string", doc::PVC_VOLUME_MODE, |o| json!(text_or(o, "/spec/volumeMode", "<unset>"))),
    ]
}

/// Whether a claim names its volume.
fn claim_bound(claim: &Value) -> bool {
    !text(claim, "/spec/volumeName").is_empty()
}

/// A volume's or claim's phase, or `Terminating` once it is being deleted.
fn phase(object: &Value) -> &str {
    if object.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
        "Terminating"
    } else {
        text(object, "/status/phase")
    }
}

/// The storage class: the beta annotation if set, else
/// `spec.storageClassName`.
fn storage_class(object: &Value) -> String {
    let annotation = object.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class");
    match annotation.and_then(Value::as_str) {
        Some(class) => class.to_owned(),
        None => text(object, "/spec/storageClassName").to_owned(),
    }
}

/// A component's health, message and error from its `Healthy` condition.
fn component_health(component: &Value) -> (&'static str, &str, &str) {
    let healthy = items(component, "/conditions").iter().find(|c| text(c, "/type") == "Healthy");
    match healthy {
        Some(c) => {
            let status = if text(c, "/status") == "True" { "Healthy" } else { "Unhealthy" };
            (status, text(c, "/message"), text(c, "/error"))
        }
        None => ("Unknown", "", ""),
    }
}
