//! A pod as an endpoint of a Service: whether it is one, its address of
//! an IP family, its conditions, and the ports the Service's ports
//! resolve to on it.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use engenho_controller::pods::Pod;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Service, ServicePort, TargetRef};

/// One port of an endpoint (EndpointSlices and Endpoints alike).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointPort {
    /// The Service port's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The port on the pod.
    pub port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The Service port's application protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// A pod the Service sends traffic to, at one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The pod's address.
    pub ip: String,
    /// Whether it takes traffic: ready and not terminating, or the Service
    /// publishes addresses that are not ready.
    pub ready: bool,
    /// Whether the pod is ready, terminating or not.
    pub serving: bool,
    /// Whether the pod is being deleted.
    pub terminating: bool,
    /// The node it runs on, if bound.
    pub node_name: Option<String>,
    /// Its hostname in the Service's domain, if it has one there.
    pub hostname: Option<String>,
    /// The pod.
    pub target_ref: TargetRef,
    /// The Service's ports on this pod (those that resolve), sorted.
    pub ports: Vec<EndpointPort>,
}

/// Whether `pod` belongs among the endpoints at all: not finished, with an
/// IP, and (unless `include_terminating`) not being deleted.
pub fn should_be_endpoint(pod: &Pod, include_terminating: bool) -> bool {
    !pod.is_terminal() && !pod.ips().is_empty() && (include_terminating || !pod.metadata.is_deleting())
}

/// `pod` as an endpoint of `service` at its address of `family`, if it
/// has one.
pub fn member(service: &Service, pod: &Pod, family: &str) -> Option<Member> {
    let ip = pod.ip_of(family)?.to_owned();
    let serving = pod.is_ready();
    let terminating = pod.metadata.is_deleting();
    let ready = service.spec.publish_not_ready_addresses || (serving && !terminating);
    let hostname = (!pod.spec.hostname.is_empty()
        && pod.spec.subdomain == service.metadata.name
        && pod.metadata.namespace == service.metadata.namespace)
        .then(|| pod.spec.hostname.clone());
    let mut ports: Vec<EndpointPort> = service
        .spec
        .ports
        .iter()
        .filter_map(|port| {
            Some(EndpointPort {
                name: port.name.clone(),
                port: find_port(pod, port)?,
                protocol: port.protocol().to_owned(),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect();
    ports.sort();
    Some(Member {
        ip,
        ready,
        serving,
        terminating,
        node_name: Some(pod.spec.node_name.clone()).filter(|n| !n.is_empty()),
        hostname,
        target_ref: TargetRef {
            kind: "Pod".into(),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
        },
        ports,
    })
}

/// The port on `pod` that `port`'s `targetPort` names: a number as it
/// is, a name resolved against the pod's container ports of the same
/// protocol; none when the name resolves to nothing.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(Value::Number(number)) => number.as_i64().and_then(|n| i32::try_from(n).ok()),
        Some(Value::String(name)) => pod
            .spec
            .containers
            .iter()
            .flat_map(|c| &c.ports)
            .find(|p| {
                let protocol = if p.protocol.is_empty() { "TCP" } else { p.protocol.as_str() };
                &p.name == name && protocol == port.protocol()
            })
            .map(|p| p.container_port),
        Some(_) => None,
    }
}

/// The members of `service` among `pods` at addresses of `family`,
/// grouped by their port sets, each group sorted by address.
pub fn members_by_ports(
    service: &Service,
    pods: &[impl Borrow<Pod>],
    family: &str,
    include_terminating: bool,
) -> BTreeMap<Vec<EndpointPort>, Vec<Member>> {
    let mut groups: BTreeMap<Vec<EndpointPort>, Vec<Member>> = BTreeMap::new();
    for pod in pods.iter().map(Borrow::borrow).filter(|pod| should_be_endpoint(pod, include_terminating)) {
        if let Some(member) = member(service, pod, family) {
            groups.entry(member.ports.clone()).or_default().push(member);
        }
    }
    for members in groups.values_mut() {
        members.sort_by(|a, b| (&a.ip, &a.target_ref).cmp(&(&b.ip, &b.target_ref)));
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn service(value: Value) -> Service {
        serde_json::from_value(value).expect("a service")
    }

    pub(crate) fn pod(name: &str, ip: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
            ]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .expect("a pod")
    }

    fn web() -> Service {
        service(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"},
                {"name": "metrics", "port": 9090, "targetPort": 9091},
            ]},
        }))
    }

    #[test]
    fn target_ports_resolve_by_number_name_and_protocol() {
        let pod = pod("a", "10.0.0.1", true);
        let port = |target: Value, protocol: &str| ServicePort {
            port: 80,
            target_port: Some(target),
            protocol: protocol.into(),
            ..ServicePort::default()
        };
        assert_eq!(find_port(&pod, &port(json!("http"), "TCP")), Some(8080));
        assert_eq!(find_port(&pod, &port(json!("http"), "")), Some(8080));
        assert_eq!(find_port(&pod, &port(json!("dns"), "UDP")), Some(5353));
        assert_eq!(find_port(&pod, &port(json!("dns"), "TCP")), None);
        assert_eq!(find_port(&pod, &port(json!("nope"), "TCP")), None);
        assert_eq!(find_port(&pod, &port(json!(7000), "TCP")), Some(7000));
        assert_eq!(find_port(&pod, &ServicePort { port: 80, ..ServicePort::default() }), Some(80));
    }

    #[test]
    fn a_member_carries_its_conditions_node_and_ports() {
        let member = member(&web(), &pod("a", "10.0.0.1", true), "IPv4").expect("a member");
        assert!(member.ready && member.serving && !member.terminating);
        assert_eq!(member.node_name.as_deref(), Some("n1"));
        assert_eq!(member.target_ref.name, "a");
        assert_eq!(
            member.ports,
            vec![
                EndpointPort {
                    name: "http".into(),
                    port: 8080,
                    protocol: "TCP".into(),
                    app_protocol: Some("http".into())
                },
                EndpointPort { name: "metrics".into(), port: 9091, protocol: "TCP".into(), app_protocol: None },
            ]
        );
        assert!(super::member(&web(), &pod("a", "10.0.0.1", true), "IPv6").is_none());
    }

    #[test]
    fn terminating_and_unready_pods_are_not_ready_unless_published() {
        let mut terminating = pod("a", "10.0.0.1", true);
        terminating.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
        let member = member(&web(), &terminating, "IPv4").expect("a member");
        assert!(!member.ready && member.serving && member.terminating);
        let unready = super::member(&web(), &pod("b", "10.0.0.2", false), "IPv4").expect("a member");
        assert!(!unready.ready && !unready.serving);
        let mut published = web();
        published.spec.publish_not_ready_addresses = true;
        assert!(super::member(&published, &pod("b", "10.0.0.2", false), "IPv4").expect("a member").ready);
        assert!(super::member(&published, &terminating, "IPv4").expect("a member").ready);
    }

    #[test]
    fn pods_without_ips_or_finished_are_no_endpoints() {
        assert!(!should_be_endpoint(&pod("a", "", true), true));
        let mut done = pod("a", "10.0.0.1", true);
        done.status.phase = "Succeeded".into();
        assert!(!should_be_endpoint(&done, true));
        let mut terminating = pod("a", "10.0.0.1", true);
        terminating.metadata.deletion_timestamp = Some("2026-01-01T00:00:00Z".into());
        assert!(should_be_endpoint(&terminating, true));
        assert!(!should_be_endpoint(&terminating, false));
    }

    #[test]
    fn members_group_by_the_ports_that_resolve_on_them() {
        let mut other = pod("c", "10.0.0.3", true);
        other.spec.containers.clear();
        let groups = members_by_ports(
            &web(),
            &[pod("b", "10.0.0.2", true), pod("a", "10.0.0.1", false), other, pod("d", "", true)],
            "IPv4",
            true,
        );
        assert_eq!(groups.len(), 2);
        let full: Vec<&str> = groups
            .values()
            .find(|m| m.len() == 2)
            .map(|m| m.iter().map(|m| m.ip.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(full, ["10.0.0.1", "10.0.0.2"]);
        let hostname = {
            let mut named = pod("e", "10.0.0.5", true);
            named.spec.hostname = "e".into();
            named.spec.subdomain = "web".into();
            member(&web(), &named, "IPv4").and_then(|m| m.hostname)
        };
        assert_eq!(hostname.as_deref(), Some("e"));
    }
}
