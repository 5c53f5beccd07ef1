//! Networking kinds: ingresses, ingress classes, network policies and
//! endpoint slices.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::super::Column;
use super::cells::{AGE, LIST_SHOWN_MAX, NAME, column, items, list_with_more, selector, text, text_or};
use super::descriptions as doc;

/// The columns of a `networking.k8s.io` or `discovery.k8s.io` kind.
pub(super) fn columns(plural: &str) -> Option<Vec<Column>> {
    let columns = match plural {
        "ingresses" => vec![
            NAME,
            column(
                "Class",
                "string",
                "The name of the IngressClass resource that should be used for additional configuration",
                |o| json!(text_or(o, "/spec/ingressClassName", "<none>")),
            ),
            column(
                "Hosts",
                "string",
                "Hosts that incoming requests are matched against before the ingress rule",
                |o| json!(ingress_hosts(o)),
            ),
            column("Address", "string", "Address is a list containing ingress points for the load-balancer", |o| {
                json!(ingress_address(o))
            }),
            column("Ports", "string", "Ports of TLS configurations that open", |o| {
                json!(if items(o, "/spec/tls").is_empty() { "80" } else { "80, 443" })
            }),
            AGE,
        ],
        "ingressclasses" => vec![
            NAME,
            column("Controller", "string", "Controller that is responsible for handling this class", |o| {
                json!(text(o, "/spec/controller"))
            }),
            column("Parameters", "string", "A reference to a resource with additional parameters", |o| {
                json!(ingress_class_parameters(o))
            }),
            AGE,
        ],
        "networkpolicies" => vec![
            NAME,
            column("Pod-Selector", "string", doc::NETWORK_POLICY_POD_SELECTOR, |o| {
                json!(selector(Some(o.pointer("/spec/podSelector").unwrap_or(&json!({})))))
            }),
            AGE,
        ],
        "endpointslices" => vec![
            NAME,
            column("AddressType", "string", doc::SLICE_ADDRESS_TYPE, |o| json!(text(o, "/addressType"))),
            column("Ports", "string", doc::SLICE_PORTS, |o| json!(slice_ports(o))),
            column("Endpoints", "string", doc::SLICE_ENDPOINTS, |o| json!(slice_endpoints(o))),
            AGE,
        ],
        _ => return None,
    };
    Some(columns)
}

/// The `HOSTS` cell: the first three hosts the rules name, `*` when none
/// does.
fn ingress_hosts(ingress: &Value) -> String {
    let rules = items(ingress, "/spec/rules");
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == LIST_SHOWN_MAX {
            more = true;
            break;
        }
        let host = text(rule, "/host");
        if !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_owned();
    }
    let shown = hosts.join(",");
    if more { format!("{shown} + {} more...", rules.len() - LIST_SHOWN_MAX) } else { shown }
}

/// The `ADDRESS` cell: the load balancer's IPs or host names, sorted.
fn ingress_address(ingress: &Value) -> String {
    let addresses: BTreeSet<&str> = items(ingress, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| [text(i, "/ip"), text(i, "/hostname")].into_iter().find(|s| !s.is_empty()))
        .collect();
    addresses.into_iter().collect::<Vec<_>>().join(",")
}

/// The `PARAMETERS` cell: `Kind.group/name`, or `<none>`.
fn ingress_class_parameters(class: &Value) -> String {
    let Some(parameters) = class.pointer("/spec/parameters").filter(|p| p.is_object()) else {
        return "<none>".to_owned();
    };
    let mut reference = text(parameters, "/kind").to_owned();
    if let Some(group) = parameters.get("apiGroup").and_then(Value::as_str) {
        reference = format!("{reference}.{group}");
    }
    format!("{reference}/{}", text(parameters, "/name"))
}

/// The `PORTS` cell: port numbers (or names, or `*`), or `<unset>`.
fn slice_ports(slice: &Value) -> String {
    let ports: Vec<String> = items(slice, "/ports")
        .iter()
        .map(|p| match (p.get("port").and_then(Value::as_i64), p.get("name").and_then(Value::as_str)) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) => name.to_owned(),
            (None, None) => "*".to_owned(),
        })
        .collect();
    list_with_more(&ports, "<unset>")
}

/// The `ENDPOINTS` cell: the endpoints' addresses, or `<unset>`.
fn slice_endpoints(slice: &Value) -> String {
    let addresses: Vec<String> = items(slice, "/endpoints")
        .iter()
        .flat_map(|e| items(e, "/addresses").iter().filter_map(Value::as_str).map(str::to_owned))
        .collect();
    list_with_more(&addresses, "<unset>")
}
