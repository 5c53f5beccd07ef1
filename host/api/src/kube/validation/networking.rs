//! Ingresses, IngressClasses and NetworkPolicies: kube-apiserver's rules.

use serde_json::Value;

use super::super::status::Cause;
use super::{invalid, items, label_selector, required, text, unsupported};

/// The path types an Ingress path may have.
const PATH_TYPES: [&str; 3] = ["Exact", "ImplementationSpecific", "Prefix"];

/// Protocols of network policy ports.
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// A backend: a service with a name and a port, or a resource, not both.
fn backend(path: &str, backend: &Value, causes: &mut Vec<Cause>) {
    let service = backend.get("service").filter(|s| !s.is_null());
    let resource = backend.get("resource").filter(|r| !r.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => causes.push(invalid(path, "\"\"", "cannot set both resource and service backends")),
        (None, None) => causes.push(invalid(path, "\"\"", "resource or service backend is required")),
        (Some(service), None) => {
            if text(service, "/name").is_empty() {
                causes.push(required(format!("{path}.service.name"), ""));
            }
            let port = service.get("port").unwrap_or(&Value::Null);
            let named = !text(port, "/name").is_empty();
            let numbered = port.get("number").and_then(Value::as_i64).is_some_and(|n| n != 0);
            match (named, numbered) {
                (false, false) => {
                    causes.push(invalid(format!("{path}.service.port"), "\"\"", "port name or number is required"));
                }
                (true, true) => causes.push(invalid(
                    format!("{path}.service.port"),
                    "\"\"",
                    "cannot set both port name & port number",
                )),
                _ => {}
            }
            if let Some(number) = port.get("number").and_then(Value::as_i64)
                && !(0..=65535).contains(&number)
            {
                causes.push(invalid(
                    format!("{path}.service.port.number"),
                    &number.to_string(),
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
        (None, Some(resource)) => {
            if text(resource, "/kind").is_empty() {
                causes.push(required(format!("{path}.resource.kind"), ""));
            }
            if text(resource, "/name").is_empty() {
                causes.push(required(format!("{path}.resource.name"), ""));
            }
        }
    }
}

/// An Ingress: rules or a default backend; every path typed, absolute where
/// its type needs it, with a backend.
pub fn ingress(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    let rules = items(spec, "/rules");
    if rules.is_empty() && default_backend.is_none() {
        causes.push(invalid("spec", "\"\"", "either `defaultBackend` or `rules` must be specified"));
    }
    if let Some(default_backend) = default_backend {
        backend("spec.defaultBackend", default_backend, &mut causes);
    }
    for (r, rule) in rules.iter().enumerate() {
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else { continue };
        let paths = items(http, "/paths");
        if paths.is_empty() {
            causes.push(required(format!("spec.rules[{r}].http.paths"), ""));
        }
        for (p, entry) in paths.iter().enumerate() {
            let at = format!("spec.rules[{r}].http.paths[{p}]");
            let path = text(entry, "/path");
            match text(entry, "/pathType") {
                "" => causes.push(required(format!("{at}.pathType"), "pathType must be specified")),
                "Exact" | "Prefix" if !path.starts_with('/') => {
                    causes.push(invalid(format!("{at}.path"), &format!("{path:?}"), "must be an absolute path"));
                }
                kind if !PATH_TYPES.contains(&kind) => {
                    causes.push(unsupported(format!("{at}.pathType"), kind, &PATH_TYPES))
                }
                _ => {}
            }
            backend(&format!("{at}.backend"), entry.get("backend").unwrap_or(&Value::Null), &mut causes);
        }
    }
    causes
}

/// An IngressClass: the controller that implements it.
pub fn ingress_class(object: &Value) -> Vec<Cause> {
    let controller = text(object, "/spec/controller");
    if controller.is_empty() {
        return vec![required("spec.controller", "")];
    }
    if controller.len() > 250 {
        return vec![invalid("spec.controller", &format!("{controller:?}"), "must be no more than 250 characters")];
    }
    Vec::new()
}

/// A NetworkPolicy: its selectors, ports and policy types.
pub fn network_policy(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    label_selector("spec.podSelector", spec.get("podSelector").unwrap_or(&Value::Null), &mut causes);
    for (index, kind) in items(spec, "/policyTypes").iter().enumerate() {
        let kind = kind.as_str().unwrap_or_default();
        if !["Egress", "Ingress"].contains(&kind) {
            causes.push(unsupported(format!("spec.policyTypes[{index}]"), kind, &["Egress", "Ingress"]));
        }
    }
    for direction in ["ingress", "egress"] {
        for (r, rule) in items(spec, &format!("/{direction}")).iter().enumerate() {
            for (p, port) in items(rule, "/ports").iter().enumerate() {
                let protocol = text(port, "/protocol");
                if !protocol.is_empty() && !PROTOCOLS.contains(&protocol) {
                    let field = format!("spec.{direction}[{r}].ports[{p}].protocol");
                    causes.push(unsupported(field, protocol, &PROTOCOLS));
                }
            }
            let peers = if direction == "ingress" { "from" } else { "to" };
            for (p, peer) in items(rule, &format!("/{peers}")).iter().enumerate() {
                for selector in ["podSelector", "namespaceSelector"] {
                    if let Some(found) = peer.get(selector).filter(|s| !s.is_null()) {
                        let at = format!("spec.{direction}[{r}].{peers}[{p}].{selector}");
                        label_selector(&at, found, &mut causes);
                    }
                }
            }
        }
    }
    causes
}
