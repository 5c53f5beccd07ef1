//! A Service's spec as kube-apiserver settles it on a write: defaults,
//! the fields that follow `type`, the checks of its addresses and ports,
//! and which cluster IPs and node ports it holds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use rand::Rng;
use serde_json::{Value, json};

use super::allocation::{cluster_ip_key, dynamic_band_start, node_port_key, pick};
use super::network::ServiceNetwork;
use crate::kube::status::Cause;
use crate::kube::validation;

/// The Service types Kubernetes knows.
const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

/// The port protocols Kubernetes knows.
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// What a Service write claims and gives up, as store keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Keys of addresses and ports newly held: created with the Service.
    pub claims: BTreeSet<String>,
    /// Keys of addresses and ports no longer held: deleted with it.
    pub releases: BTreeSet<String>,
}

/// Why a Service cannot be settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The causes of a 422, with Kubernetes' field paths and messages.
    Invalid(Vec<Cause>),
    /// No free value is left of the range named (`serviceIP`, `nodePort`).
    RangeFull(&'static str),
    /// The message of a 500 kube-apiserver answers: a health check node
    /// port that could not be allocated.
    Internal(String),
}

/// Settles `service` (new, or replacing `old`) for the store: fills in
/// defaults, carries over what `old` was allocated, picks free addresses
/// and ports where none were asked for (`taken` says whether a key is
/// held), and checks everything Kubernetes checks of them.
///
/// # Errors
/// A [`Refusal`].
pub fn settle(
    network: &ServiceNetwork,
    old: Option<&Value>,
    service: &mut Value,
    rng: &mut impl Rng,
    mut taken: impl FnMut(&str) -> bool,
) -> Result<Plan, Refusal> {
    if !service["spec"].is_object() {
        service["spec"] = json!({});
    }
    if let Some(old) = old {
        drop_type_dependent_fields(old, service);
        carry_allocations(old, service);
        carry_health_check(old, service);
    }
    set_defaults(service);
    let mut causes = check(network, service);
    if let Some(old) = old {
        causes.extend(check_update(old, service));
    }
    if !causes.is_empty() {
        return Err(Refusal::Invalid(causes));
    }
    let before = old.map(held).unwrap_or_default();
    causes.extend(check_requested(network, service, &before, &mut taken));
    if !causes.is_empty() {
        return Err(Refusal::Invalid(causes));
    }
    check_requested_health_check(network, service, &before, &mut taken)?;
    allocate(network, service, rng, |key| before.contains(key) || taken(key))?;
    allocate_health_check(network, service, rng, |key| before.contains(key) || taken(key))?;
    let after = held(service);
    Ok(Plan {
        claims: after.difference(&before).cloned().collect(),
        releases: before.difference(&after).cloned().collect(),
    })
}

/// The store keys of the addresses and ports `service` holds.
pub fn held(service: &Value) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for ip in strings(&service["spec"]["clusterIPs"]) {
        if let Ok(address) = ip.parse::<Ipv4Addr>() {
            keys.insert(cluster_ip_key(address));
        }
    }
    for port in service["spec"]["ports"].as_array().into_iter().flatten() {
        if let Some(node_port) = port["nodePort"].as_u64().and_then(|p| u16::try_from(p).ok()).filter(|&p| p > 0) {
            keys.insert(node_port_key(node_port));
        }
    }
    if let Some(port) = health_check_port(service) {
        keys.insert(node_port_key(port));
    }
    keys
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

fn service_type(service: &Value) -> &str {
    service["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

fn needs_cluster_ip(service: &Value) -> bool {
    service_type(service) != "ExternalName"
}

fn needs_node_ports(service: &Value) -> bool {
    matches!(service_type(service), "NodePort" | "LoadBalancer")
}

/// Kubernetes' `needsHCNodePort`: a LoadBalancer Service with
/// `externalTrafficPolicy: Local` has a health check node port.
fn needs_health_check(service: &Value) -> bool {
    service_type(service) == "LoadBalancer" && service["spec"]["externalTrafficPolicy"] == "Local"
}

/// The health check node port `service` names, if one in port range.
fn health_check_port(service: &Value) -> Option<u16> {
    service["spec"]["healthCheckNodePort"].as_u64().and_then(|p| u16::try_from(p).ok()).filter(|&p| p > 0)
}

/// Kubernetes' `dropTypeDependentFields`: a change of type away from
/// NodePort or LoadBalancer that leaves the node ports as they were gives
/// them up, and likewise the fields only those types have.
fn drop_type_dependent_fields(old: &Value, service: &mut Value) {
    if needs_node_ports(old) && !needs_node_ports(service) {
        let node_ports = |s: &Value| -> Vec<Value> {
            s["spec"]["ports"].as_array().into_iter().flatten().map(|p| p["nodePort"].clone()).collect()
        };
        if node_ports(old) == node_ports(service)
            && let Some(ports) = service["spec"]["ports"].as_array_mut()
        {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                port.remove("nodePort");
            }
        }
        let spec = service["spec"].as_object_mut().expect("a settled spec is an object");
        if spec.get("externalTrafficPolicy") == old["spec"].get("externalTrafficPolicy") {
            spec.remove("externalTrafficPolicy");
        }
    }
    if needs_health_check(old)
        && !needs_health_check(service)
        && service["spec"].get("healthCheckNodePort") == old["spec"].get("healthCheckNodePort")
    {
        service["spec"].as_object_mut().expect("a settled spec is an object").remove("healthCheckNodePort");
    }
    if service_type(old) == "LoadBalancer" && service_type(service) != "LoadBalancer" {
        let spec = service["spec"].as_object_mut().expect("a settled spec is an object");
        if spec.get("allocateLoadBalancerNodePorts") == old["spec"].get("allocateLoadBalancerNodePorts") {
            spec.remove("allocateLoadBalancerNodePorts");
        }
    }
}

/// Kubernetes' `patchAllocatedValues`: an update that leaves out the
/// cluster IP or a node port keeps the one allocated before (a port is
/// matched by number and protocol).
fn carry_allocations(old: &Value, service: &mut Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(service) {
        let spec = &mut service["spec"];
        if spec["clusterIP"].as_str().is_none_or(str::is_empty) && strings(&spec["clusterIPs"]).is_empty() {
            spec["clusterIP"] = old["spec"]["clusterIP"].clone();
            spec["clusterIPs"] = old["spec"]["clusterIPs"].clone();
        }
    }
    if needs_node_ports(old) && needs_node_ports(service) {
        let allocated: BTreeMap<(u64, String), Value> = old["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["nodePort"].as_u64().is_some_and(|n| n > 0))
            .map(|p| ((p["port"].as_u64().unwrap_or(0), protocol(p).to_owned()), p["nodePort"].clone()))
            .collect();
        for port in service["spec"]["ports"].as_array_mut().into_iter().flatten() {
            if port["nodePort"].as_u64().is_none_or(|n| n == 0)
                && let Some(node_port) = allocated.get(&(port["port"].as_u64().unwrap_or(0), protocol(port).to_owned()))
            {
                port["nodePort"] = node_port.clone();
            }
        }
    }
}

/// Kubernetes' `patchAllocatedValues` of the health check node port.
fn carry_health_check(old: &Value, service: &mut Value) {
    let unset = service["spec"]["healthCheckNodePort"].as_i64().is_none_or(|p| p == 0);
    if needs_health_check(old) && needs_health_check(service) && unset {
        service["spec"]["healthCheckNodePort"] = old["spec"]["healthCheckNodePort"].clone();
    }
}

fn protocol(port: &Value) -> &str {
    port["protocol"].as_str().unwrap_or("TCP")
}

/// Kubernetes' defaults for a Service (`SetDefaults_Service`) and those its
/// registry sets (IP families, the status).
fn set_defaults(service: &mut Value) {
    let kind = service_type(service).to_owned();
    let spec = service["spec"].as_object_mut().expect("a settled spec is an object");
    spec.entry("type").or_insert_with(|| json!("ClusterIP"));
    spec.entry("sessionAffinity").or_insert_with(|| json!("None"));
    if spec["sessionAffinity"] == "ClientIP" {
        let config = spec.entry("sessionAffinityConfig").or_insert_with(|| json!({}));
        if config["clientIP"]["timeoutSeconds"].is_null() {
            config["clientIP"]["timeoutSeconds"] = json!(10800);
        }
    }
    for port in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        let Some(port) = port.as_object_mut() else { continue };
        port.entry("protocol").or_insert_with(|| json!("TCP"));
        let unset = port.get("targetPort").is_none_or(|t| t.is_null() || *t == json!(0) || *t == json!(""));
        if unset && let Some(number) = port.get("port").cloned() {
            port.insert("targetPort".into(), number);
        }
    }
    if kind != "ExternalName" {
        spec.entry("internalTrafficPolicy").or_insert_with(|| json!("Cluster"));
        spec.entry("ipFamilyPolicy").or_insert_with(|| json!("SingleStack"));
        let no_families = spec.get("ipFamilies").and_then(Value::as_array).is_none_or(Vec::is_empty);
        if no_families {
            let requested_v6 = spec.get("clusterIP").and_then(Value::as_str).is_some_and(|ip| ip.contains(':'));
            spec.insert("ipFamilies".into(), json!([if requested_v6 { "IPv6" } else { "IPv4" }]));
        }
        let ip = spec.get("clusterIP").and_then(Value::as_str).filter(|ip| !ip.is_empty()).map(str::to_owned);
        let ips_empty = spec.get("clusterIPs").and_then(Value::as_array).is_none_or(Vec::is_empty);
        if let (Some(ip), true) = (&ip, ips_empty) {
            spec.insert("clusterIPs".into(), json!([ip]));
        }
        let first = spec.get("clusterIPs").and_then(|ips| ips.get(0)).and_then(Value::as_str).map(str::to_owned);
        if let (None, Some(first)) = (ip, first) {
            spec.insert("clusterIP".into(), json!(first));
        }
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
        spec.entry("externalTrafficPolicy").or_insert_with(|| json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        spec.entry("allocateLoadBalancerNodePorts").or_insert_with(|| json!(true));
    }
    if !service["status"].is_object() {
        service["status"] = json!({"loadBalancer": {}});
    }
}

fn invalid(field: impl Into<String>, value: impl std::fmt::Display, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {detail}"),
        field: field.into(),
    }
}

fn unsupported(field: impl Into<String>, value: &str, supported: &[&str]) -> Cause {
    let supported = supported.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    Cause {
        reason: "FieldValueNotSupported".into(),
        message: format!("Unsupported value: {value:?}: supported values: {supported}"),
        field: field.into(),
    }
}

/// The checks of one Service's addresses, families, type and ports.
fn check(network: &ServiceNetwork, service: &Value) -> Vec<Cause> {
    let spec = &service["spec"];
    let mut causes = Vec::new();
    let kind = service_type(service);
    if !TYPES.contains(&kind) {
        causes.push(unsupported("spec.type", kind, &TYPES));
    }
    let ips = strings(&spec["clusterIPs"]);
    let headless = ips.first() == Some(&"None");
    if let (Some(ip), Some(first)) = (spec["clusterIP"].as_str().filter(|ip| !ip.is_empty()), ips.first())
        && ip != *first
    {
        causes.push(invalid("spec.clusterIPs", go_strings(&ips), "element [0] must match clusterIP"));
    }
    if kind == "ExternalName" {
        let name = spec["externalName"].as_str().unwrap_or_default();
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "spec.externalName".into(),
            });
        } else if let Err(message) = crate::kube::objects::subdomain(name) {
            causes.push(invalid("spec.externalName", format!("{name:?}"), &message));
        }
        if let Some(ip) = spec["clusterIP"].as_str().filter(|ip| !ip.is_empty()) {
            causes.push(invalid("spec.clusterIP", format!("{ip:?}"), "may not be set for ExternalName services"));
        }
    } else {
        causes.extend(check_families(spec, &ips));
        for (index, ip) in ips.iter().enumerate().filter(|(_, ip)| **ip != "None") {
            if ip.parse::<IpAddr>().is_err() {
                causes.push(invalid(
                    format!("spec.clusterIPs[{index}]"),
                    format!("{ip:?}"),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                ));
            }
        }
        if headless && kind != "ClusterIP" {
            causes.push(invalid(
                "spec.clusterIPs[0]",
                "\"None\"",
                &format!("may not be set to 'None' for {kind} services"),
            ));
        }
    }
    causes.extend(check_ports(network, service, headless));
    let health_check = &spec["healthCheckNodePort"];
    if !needs_health_check(service) && !health_check.is_null() && health_check.as_i64() != Some(0) {
        causes.push(invalid(
            "spec.healthCheckNodePort",
            health_check,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    }
    causes
}

/// Go's `%#v` of a string slice, as Kubernetes prints list values.
fn go_strings(values: &[&str]) -> String {
    format!("[]string{{{}}}", values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", "))
}

/// IP families: IPv4 only, one family (this cluster is single-stack).
fn check_families(spec: &Value, ips: &[&str]) -> Vec<Cause> {
    let mut causes = Vec::new();
    let policy = spec["ipFamilyPolicy"].as_str().unwrap_or("SingleStack");
    match policy {
        "SingleStack" | "PreferDualStack" => {}
        "RequireDualStack" => causes.push(invalid(
            "spec.ipFamilyPolicy",
            format!("{policy:?}"),
            "this cluster is not configured for dual-stack services",
        )),
        other => causes.push(unsupported(
            "spec.ipFamilyPolicy",
            other,
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        )),
    }
    for (index, family) in strings(&spec["ipFamilies"]).into_iter().enumerate() {
        match family {
            "IPv4" => {}
            "IPv6" => {
                causes.push(invalid(format!("spec.ipFamilies[{index}]"), "\"IPv6\"", "not configured on this cluster"))
            }
            other => causes.push(unsupported(format!("spec.ipFamilies[{index}]"), other, &["IPv4", "IPv6"])),
        }
    }
    if ips.len() > 1 {
        causes.push(invalid(
            "spec.clusterIPs",
            go_strings(ips),
            "may only hold up to 1 values in single-stack clusters",
        ));
    }
    causes
}

fn check_ports(network: &ServiceNetwork, service: &Value, headless: bool) -> Vec<Cause> {
    let kind = service_type(service);
    let ports = service["spec"]["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut causes = Vec::new();
    if ports.is_empty() && !headless && kind != "ExternalName" {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "spec.ports".into(),
        });
    }
    let mut seen = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (index, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{index}]");
        causes.extend(port_name(&path, port, ports.len(), &mut names));
        let number = port["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&number) {
            causes.push(invalid(format!("{path}.port"), number, "must be between 1 and 65535, inclusive"));
        }
        causes.extend(target_port(&path, &port["targetPort"]));
        if !PROTOCOLS.contains(&protocol(port)) {
            causes.push(unsupported(format!("{path}.protocol"), protocol(port), &PROTOCOLS));
        }
        let node_port = port["nodePort"].as_i64().unwrap_or(0);
        if node_port == 0 {
            continue;
        }
        if !needs_node_ports(service) {
            causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                message: format!("Forbidden: may not be used when `type` is '{kind}'"),
                field: format!("{path}.nodePort"),
            });
        } else if !(1..=65535).contains(&node_port) {
            causes.push(invalid(format!("{path}.nodePort"), node_port, "must be between 1 and 65535, inclusive"));
        } else if !network.node_ports().contains(&u16::try_from(node_port).expect("checked")) {
            let detail = format!(
                "provided port is not in the valid range. The range of valid ports is {}",
                network.port_range()
            );
            causes.push(invalid(format!("{path}.nodePort"), node_port, &detail));
        } else if !seen.insert((node_port, protocol(port))) {
            causes.push(Cause {
                reason: "FieldValueDuplicate".into(),
                message: format!("Duplicate value: {node_port}"),
                field: format!("{path}.nodePort"),
            });
        }
    }
    causes
}

/// A Service port's name at `path`: required when the Service has more
/// than one port, a DNS-1123 label, unique among `names`.
fn port_name(path: &str, port: &Value, count: usize, names: &mut BTreeSet<String>) -> Vec<Cause> {
    let name = port["name"].as_str().unwrap_or_default();
    let field = format!("{path}.name");
    if name.is_empty() {
        if count > 1 {
            return vec![Cause { reason: "FieldValueRequired".into(), message: "Required value".into(), field }];
        }
        return Vec::new();
    }
    let errors = validation::pods::dns_label_errors(name);
    if !errors.is_empty() {
        return errors.iter().map(|error| invalid(&field, format!("{name:?}"), error)).collect();
    }
    if !names.insert(name.to_owned()) {
        return vec![Cause {
            reason: "FieldValueDuplicate".into(),
            message: format!("Duplicate value: {name:?}"),
            field,
        }];
    }
    Vec::new()
}

/// A Service port's `targetPort` at `path`: a port number, or the name of
/// a container's port.
fn target_port(path: &str, target: &Value) -> Vec<Cause> {
    let field = format!("{path}.targetPort");
    match target {
        Value::Number(number) => {
            let number = number.as_i64().unwrap_or(0);
            if (1..=65535).contains(&number) {
                Vec::new()
            } else {
                vec![invalid(field, number, validation::pods::PORT_RANGE_MESSAGE)]
            }
        }
        Value::String(name) => {
            validation::pods::port_name_errors(name).iter().map(|e| invalid(&field, format!("{name:?}"), e)).collect()
        }
        _ => Vec::new(),
    }
}

/// Kubernetes' checks of an update: the primary cluster IP may not change.
fn check_update(old: &Value, service: &Value) -> Vec<Cause> {
    let (before, after) = (strings(&old["spec"]["clusterIPs"]), strings(&service["spec"]["clusterIPs"]));
    if !needs_cluster_ip(old) || !needs_cluster_ip(service) || before.is_empty() {
        return Vec::new();
    }
    if after.first() == before.first() {
        return Vec::new();
    }
    vec![invalid("spec.clusterIPs[0]", go_strings(&after), "may not change once set")]
}

/// Requested addresses and ports not held by `old` must be in range and
/// free.
fn check_requested(
    network: &ServiceNetwork,
    service: &Value,
    before: &BTreeSet<String>,
    taken: &mut impl FnMut(&str) -> bool,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (index, ip) in strings(&service["spec"]["clusterIPs"]).into_iter().enumerate() {
        let Ok(address) = ip.parse::<Ipv4Addr>() else { continue };
        let field = format!("spec.clusterIPs[{index}]");
        let usable = network.offset(address).is_some_and(|o| network.usable_offsets().contains(&o));
        if !usable {
            let detail = format!(
                "failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {}",
                network.cidr()
            );
            causes.push(invalid(field, format!("{ip:?}"), &detail));
        } else if !before.contains(&cluster_ip_key(address)) && taken(&cluster_ip_key(address)) {
            let detail = format!("failed to allocate IP {ip}: provided IP is already allocated");
            causes.push(invalid(field, format!("{ip:?}"), &detail));
        }
    }
    let mut claimed = BTreeSet::new();
    for (index, port) in service["spec"]["ports"].as_array().into_iter().flatten().enumerate() {
        let Some(node_port) = port["nodePort"].as_u64().and_then(|p| u16::try_from(p).ok()).filter(|&p| p > 0) else {
            continue;
        };
        let key = node_port_key(node_port);
        if claimed.insert(key.clone()) && !before.contains(&key) && taken(&key) {
            causes.push(invalid(
                format!("spec.ports[{index}].nodePort"),
                node_port,
                "provided port is already allocated",
            ));
        }
    }
    causes
}

/// A requested health check node port not held by `old` must be in the
/// node port range and free (of other Services and of this one's node
/// ports); kube-apiserver refuses one that is not with a 500.
fn check_requested_health_check(
    network: &ServiceNetwork,
    service: &Value,
    before: &BTreeSet<String>,
    taken: &mut impl FnMut(&str) -> bool,
) -> Result<(), Refusal> {
    let requested = service["spec"]["healthCheckNodePort"].as_i64().unwrap_or(0);
    if !needs_health_check(service) || requested == 0 {
        return Ok(());
    }
    let failed = |why: String| {
        Refusal::Internal(format!("failed to allocate requested HealthCheck NodePort {requested}: {why}"))
    };
    let Some(port) = u16::try_from(requested).ok().filter(|p| network.node_ports().contains(p)) else {
        return Err(failed(format!(
            "provided port is not in the valid range. The range of valid ports is {}",
            network.port_range()
        )));
    };
    let key = node_port_key(port);
    let own =
        service["spec"]["ports"].as_array().into_iter().flatten().any(|p| p["nodePort"].as_i64() == Some(requested));
    if own || (!before.contains(&key) && taken(&key)) {
        return Err(failed("provided port is already allocated".into()));
    }
    Ok(())
}

/// Picks a health check node port for a Service that needs one and asked
/// for none, apart from its own node ports.
fn allocate_health_check(
    network: &ServiceNetwork,
    service: &mut Value,
    rng: &mut impl Rng,
    mut taken: impl FnMut(&str) -> bool,
) -> Result<(), Refusal> {
    if !needs_health_check(service) || health_check_port(service).is_some() {
        return Ok(());
    }
    let own: BTreeSet<u32> = service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect();
    let ports = network.node_ports();
    let (first, last) = (u32::from(*ports.start()), u32::from(*ports.end()));
    let dynamic = (first + dynamic_band_start(last - first + 1, 32, 128)).min(last)..=last;
    let port = pick(first..=last, dynamic, rng, |p| {
        own.contains(&p) || taken(&node_port_key(u16::try_from(p).expect("a port")))
    })
    .ok_or_else(|| Refusal::Internal("failed to allocate a HealthCheck NodePort 0: range is full".into()))?;
    service["spec"]["healthCheckNodePort"] = json!(port);
    Ok(())
}

/// Picks a cluster IP and node ports where the Service needs them and
/// asked for none.
fn allocate(
    network: &ServiceNetwork,
    service: &mut Value,
    rng: &mut impl Rng,
    mut taken: impl FnMut(&str) -> bool,
) -> Result<(), Refusal> {
    if needs_cluster_ip(service) && strings(&service["spec"]["clusterIPs"]).is_empty() {
        let usable = network.usable_offsets();
        let dynamic = dynamic_band_start(network.size(), 16, 256).max(*usable.start())..=*usable.end();
        let offset = pick(usable, dynamic, rng, |o| taken(&cluster_ip_key(network.address(o))))
            .ok_or(Refusal::RangeFull("serviceIP"))?;
        let ip = network.address(offset).to_string();
        service["spec"]["clusterIP"] = json!(ip);
        service["spec"]["clusterIPs"] = json!([ip]);
    }
    // A load balancer that asks for no node ports keeps only those it names.
    let declined = service_type(service) == "LoadBalancer" && service["spec"]["allocateLoadBalancerNodePorts"] == false;
    if !needs_node_ports(service) || declined {
        return Ok(());
    }
    let ports = network.node_ports();
    let (first, last) = (u32::from(*ports.start()), u32::from(*ports.end()));
    let dynamic = (first + dynamic_band_start(last - first + 1, 32, 128)).min(last)..=last;
    // The health check port asked for is no node port's to take.
    let asked_health_check = health_check_port(service).filter(|_| needs_health_check(service)).map(u32::from);
    let mut picked: BTreeSet<u32> = service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_u64().and_then(|n| u32::try_from(n).ok()))
        .chain(asked_health_check)
        .collect();
    let count = service["spec"]["ports"].as_array().map_or(0, Vec::len);
    for index in 0..count {
        if service["spec"]["ports"][index]["nodePort"].as_u64().is_some_and(|p| p > 0) {
            continue;
        }
        let port = pick(first..=last, dynamic.clone(), rng, |p| {
            picked.contains(&p) || taken(&node_port_key(u16::try_from(p).expect("a port")))
        })
        .ok_or(Refusal::RangeFull("nodePort"))?;
        picked.insert(port);
        service["spec"]["ports"][index]["nodePort"] = json!(port);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use rand::SeedableRng;

    use super::*;

    fn network() -> ServiceNetwork {
        ServiceNetwork::parse("10.43.0.0/28", "30000-30015").expect("valid")
    }

    /// One write of a history over a few Service names.
    #[derive(Debug, Clone)]
    enum Write {
        Create { name: u8, kind: u8, ip: Option<u8> },
        ToggleType { name: u8 },
        Delete { name: u8 },
    }

    fn write() -> impl Strategy<Value = Write> {
        prop_oneof![
            3 => (0..6u8, 0..3u8, prop::option::of(0..16u8))
                .prop_map(|(name, kind, ip)| Write::Create { name, kind, ip }),
            1 => (0..6u8).prop_map(|name| Write::ToggleType { name }),
            1 => (0..6u8).prop_map(|name| Write::Delete { name }),
        ]
    }

    /// Applies a plan as the store's transaction does: every claim must be
    /// free, else nothing changes.
    fn commit(keys: &mut BTreeSet<String>, plan: &Plan) -> bool {
        if plan.claims.iter().any(|claim| keys.contains(claim)) {
            return false;
        }
        keys.extend(plan.claims.iter().cloned());
        plan.releases.iter().for_each(|released| assert!(keys.remove(released), "{released} was held"));
        true
    }

    proptest! {
        /// Goal: whatever Services are created, retyped and deleted, the
        /// held keys are exactly what the stored Services hold: no address
        /// or port is held twice, none outlives its Service. Method: a set
        /// stands in for the store's allocation keys; each write's plan is
        /// committed as the store's transaction commits it.
        #[test]
        fn plans_never_hand_out_twice_and_never_leak(seed in any::<u64>(), writes in prop::collection::vec(write(), 1..80)) {
            let network = network();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut keys: BTreeSet<String> = BTreeSet::new();
            let mut stored: BTreeMap<u8, Value> = BTreeMap::new();
            for write in writes {
                match write {
                    Write::Create { name, kind, ip } if !stored.contains_key(&name) => {
                        let kind_name = ["ClusterIP", "NodePort", "LoadBalancer"][usize::from(kind)];
                        let mut service = json!({"spec": {
                            "type": kind_name,
                            "ports": [{"port": 80}, {"port": 443}],
                        }});
                        if kind == 2 {
                            service["spec"]["externalTrafficPolicy"] = json!("Local");
                        }
                        if let Some(ip) = ip {
                            service["spec"]["clusterIP"] = json!(network.address(u32::from(ip)).to_string());
                        }
                        let taken = |key: &str| keys.contains(key);
                        if let Ok(plan) = settle(&network, None, &mut service, &mut rng, taken)
                            && commit(&mut keys, &plan)
                        {
                            stored.insert(name, service);
                        }
                    }
                    Write::ToggleType { name } if stored.contains_key(&name) => {
                        let old = stored[&name].clone();
                        let mut service = old.clone();
                        let other = match service_type(&old) {
                            "ClusterIP" => "LoadBalancer",
                            "LoadBalancer" => "NodePort",
                            _ => "ClusterIP",
                        };
                        service["spec"]["type"] = json!(other);
                        if other == "LoadBalancer" {
                            service["spec"]["externalTrafficPolicy"] = json!("Local");
                        }
                        let taken = |key: &str| keys.contains(key);
                        if let Ok(plan) = settle(&network, Some(&old), &mut service, &mut rng, taken)
                            && commit(&mut keys, &plan)
                        {
                            prop_assert_eq!(&service["spec"]["clusterIP"], &old["spec"]["clusterIP"]);
                            prop_assert_eq!(needs_health_check(&service), health_check_port(&service).is_some());
                            stored.insert(name, service);
                        }
                    }
                    Write::Delete { name } => {
                        if let Some(service) = stored.remove(&name) {
                            for released in held(&service) {
                                prop_assert!(keys.remove(&released));
                            }
                        }
                    }
                    _ => {}
                }
                let mut expected = BTreeSet::new();
                for service in stored.values() {
                    for key in held(service) {
                        prop_assert!(expected.insert(key.clone()), "{} held by two Services", key);
                    }
                }
                prop_assert_eq!(&expected, &keys, "held keys match the stored Services");
            }
        }
    }

    #[test]
    fn kubernetes_defaults_are_filled_in() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut service = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        let plan = settle(&ServiceNetwork::default(), None, &mut service, &mut rng, |_| false).expect("settles");
        let spec = &service["spec"];
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
        assert_eq!(spec["ports"][0]["targetPort"], 80);
        assert_eq!(service["status"], json!({"loadBalancer": {}}));
        assert_eq!(plan.claims.len(), 2, "a cluster IP and a node port: {plan:?}");
        assert!(plan.releases.is_empty());
    }

    #[test]
    fn load_balancers_that_decline_node_ports_get_only_those_they_name() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let network = network();
        let mut service = json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https", "nodePort": 30003}]}});
        let plan = settle(&network, None, &mut service, &mut rng, |_| false).expect("settles");
        assert_eq!(service["spec"]["ports"][0].get("nodePort"), None, "{service}");
        assert_eq!(service["spec"]["ports"][1]["nodePort"], 30003);
        assert!(plan.claims.contains(&node_port_key(30003)), "the named port is claimed: {plan:?}");
    }

    #[test]
    fn a_node_port_never_takes_the_health_check_port_asked_for() {
        // Goal: with two ports in the range, the Service's node port is
        // the one its health check did not ask for, whatever the draw.
        let network = ServiceNetwork::parse("10.43.0.0/28", "30000-30001").expect("valid");
        for seed in 0..32 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut service = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                "healthCheckNodePort": 30001, "ports": [{"port": 80}]}});
            let plan = settle(&network, None, &mut service, &mut rng, |_| false).expect("settles");
            assert_eq!(service["spec"]["ports"][0]["nodePort"], 30000, "seed {seed}");
            assert_eq!(plan.claims.len(), 3, "a cluster IP, a node port and the health check port: {plan:?}");
        }
    }

    #[test]
    fn local_load_balancers_get_a_health_check_node_port() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let network = network();
        let local =
            json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}});
        let mut service = local.clone();
        let plan = settle(&network, None, &mut service, &mut rng, |_| false).expect("settles");
        let port = health_check_port(&service).expect("a health check node port");
        assert!(network.node_ports().contains(&port));
        assert_ne!(service["spec"]["ports"][0]["nodePort"], json!(port), "apart from the Service's node ports");
        assert_eq!(plan.claims.len(), 3, "a cluster IP, a node port and the health check port: {plan:?}");

        let mut to_cluster = service.clone();
        to_cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
        let plan = settle(&network, Some(&service), &mut to_cluster, &mut rng, |_| false).expect("settles");
        assert_eq!(plan.releases, BTreeSet::from([node_port_key(port)]), "the health check port goes");
        assert!(to_cluster["spec"].get("healthCheckNodePort").is_none());

        let refused = |request: Value, taken: &dyn Fn(&str) -> bool| {
            let mut service = local.clone();
            service["spec"]["healthCheckNodePort"] = request;
            settle(&network, None, &mut service, &mut rng.clone(), taken).expect_err("refused")
        };
        let message = "failed to allocate requested HealthCheck NodePort 30003: provided port is already allocated";
        assert_eq!(refused(json!(30003), &|key: &str| key == node_port_key(30003)), Refusal::Internal(message.into()));
        let range = "failed to allocate requested HealthCheck NodePort 20000: provided port is not in the valid range. The range of valid ports is 30000-30015";
        assert_eq!(refused(json!(20000), &|_: &str| false), Refusal::Internal(range.into()));
        let mut cluster_ip = json!({"spec": {"healthCheckNodePort": 30001, "ports": [{"port": 80}]}});
        let Err(Refusal::Invalid(causes)) = settle(&network, None, &mut cluster_ip, &mut rng, |_| false) else {
            panic!("refused")
        };
        assert_eq!(causes[0].field, "spec.healthCheckNodePort");
        assert_eq!(
            causes[0].message,
            "Invalid value: 30001: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"
        );
    }

    #[test]
    fn ipv6_and_dual_stack_are_refused_with_kubernetes_messages() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut service = json!({"spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"], "ports": [{"port": 80}]}});
        let Err(Refusal::Invalid(causes)) = settle(&ServiceNetwork::default(), None, &mut service, &mut rng, |_| false)
        else {
            panic!("refused")
        };
        let messages: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        assert!(messages.contains(&"spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services".to_owned()), "{messages:?}");
        assert!(
            messages
                .contains(&"spec.ipFamilies[1]: Invalid value: \"IPv6\": not configured on this cluster".to_owned()),
            "{messages:?}"
        );
    }

    fn refusals(mut service: Value) -> Vec<String> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        match settle(&ServiceNetwork::default(), None, &mut service, &mut rng, |_| false) {
            Err(Refusal::Invalid(causes)) => causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn ports_need_unique_names_valid_targets_and_numbers_in_range() {
        let service = json!({"spec": {"ports": [{"port": 0, "name": "http"}, {"port": 81, "name": "http",
            "targetPort": 70000}, {"port": 82, "targetPort": "Web_Port"}]}});
        assert_eq!(
            refusals(service),
            [
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[1].name: Duplicate value: \"http\"",
                "spec.ports[1].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.ports[2].name: Required value",
                "spec.ports[2].targetPort: Invalid value: \"Web_Port\": must contain only alpha-numeric characters \
                 (a-z, 0-9), and hyphens (-)",
            ]
        );
        assert!(refusals(json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}]}})).is_empty());
    }

    #[test]
    fn external_names_are_required_dns_names() {
        assert_eq!(refusals(json!({"spec": {"type": "ExternalName"}})), ["spec.externalName: Required value"]);
        assert!(refusals(json!({"spec": {"type": "ExternalName", "externalName": "db.example.com."}})).is_empty());
    }
}
