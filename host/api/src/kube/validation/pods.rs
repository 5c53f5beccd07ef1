//! Pod specs, of pods and of every workload's template: kube-apiserver's
//! rules for containers, their names, images, ports and resources, and
//! the pod's policies and deadlines.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::super::status::Cause;
use super::{NEGATIVE_MESSAGE, entries, invalid, quantity_at, required, text, unsupported};
use engenho_control::quantity::Quantity;

/// The restart policies a pod may name.
const RESTART_POLICIES: [&str; 3] = ["Always", "OnFailure", "Never"];

/// The DNS policies a pod may name.
const DNS_POLICIES: [&str; 4] = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

/// The image pull policies a container may name.
const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];

/// The protocols a container port may name.
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// The resources a container may name without a `/` (besides
/// `hugepages-<size>`).
const CONTAINER_RESOURCES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// Kubernetes' message for a name that is not a DNS-1123 label.
pub const DNS_LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
    '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for \
    validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Kubernetes' message for a port number out of range.
pub const PORT_RANGE_MESSAGE: &str = "must be between 1 and 65535, inclusive";

/// What is wrong with `name` as a DNS-1123 label, in Kubernetes' words.
pub fn dns_label_errors(name: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if name.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let fits = name.starts_with(edge)
        && name.ends_with(edge)
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !fits {
        errors.push(DNS_LABEL_MESSAGE.to_owned());
    }
    errors
}

/// A Pod: its spec.
pub fn pod(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    pod_spec("spec", object.get("spec").unwrap_or(&Value::Null), &mut causes);
    causes
}

/// Checks the pod spec `spec` found at `path` (`spec`,
/// `spec.template.spec`, ...).
pub fn pod_spec(path: &str, spec: &Value, causes: &mut Vec<Cause>) {
    let mut names = BTreeSet::new();
    let init = spec.get("initContainers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for (index, container) in init.iter().enumerate() {
        self::container(&format!("{path}.initContainers[{index}]"), container, &mut names, causes);
    }
    let containers = spec.get("containers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if containers.is_empty() {
        causes.push(required(format!("{path}.containers"), ""));
    }
    for (index, container) in containers.iter().enumerate() {
        self::container(&format!("{path}.containers[{index}]"), container, &mut names, causes);
    }
    for (field, allowed) in [("restartPolicy", &RESTART_POLICIES[..]), ("dnsPolicy", &DNS_POLICIES[..])] {
        match text(spec, &format!("/{field}")) {
            "" => causes.push(required(format!("{path}.{field}"), "")),
            given if !allowed.contains(&given) => causes.push(unsupported(format!("{path}.{field}"), given, allowed)),
            _ => {}
        }
    }
    if let Some(grace) = spec.get("terminationGracePeriodSeconds").and_then(Value::as_i64)
        && grace < 0
    {
        causes.push(invalid(format!("{path}.terminationGracePeriodSeconds"), &grace.to_string(), NEGATIVE_MESSAGE));
    }
    if let Some(deadline) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64)
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        causes.push(invalid(
            format!("{path}.activeDeadlineSeconds"),
            &deadline.to_string(),
            "must be between 1 and 2147483647, inclusive",
        ));
    }
}

/// Checks one container at `path`; `names` holds the names of the
/// containers checked before it.
fn container(path: &str, container: &Value, names: &mut BTreeSet<String>, causes: &mut Vec<Cause>) {
    let name = text(container, "/name");
    if name.is_empty() {
        causes.push(required(format!("{path}.name"), ""));
    } else {
        let errors = dns_label_errors(name);
        causes.extend(errors.iter().map(|error| invalid(format!("{path}.name"), &format!("{name:?}"), error)));
        if errors.is_empty() && !names.insert(name.to_owned()) {
            causes.push(Cause {
                reason: "FieldValueDuplicate".into(),
                message: format!("Duplicate value: {name:?}"),
                field: format!("{path}.name"),
            });
        }
    }
    if text(container, "/image").trim().is_empty() {
        causes.push(required(format!("{path}.image"), ""));
    }
    match text(container, "/imagePullPolicy") {
        "" => causes.push(required(format!("{path}.imagePullPolicy"), "")),
        given if !PULL_POLICIES.contains(&given) => {
            causes.push(unsupported(format!("{path}.imagePullPolicy"), given, &PULL_POLICIES));
        }
        _ => {}
    }
    ports(path, container, causes);
    resources(&format!("{path}.resources"), container.get("resources").unwrap_or(&Value::Null), causes);
}

/// Checks a container's ports: numbers in range, known protocols, and
/// unique names.
fn ports(path: &str, container: &Value, causes: &mut Vec<Cause>) {
    let mut names = BTreeSet::new();
    let ports = container.get("ports").and_then(Value::as_array).into_iter().flatten();
    for (index, port) in ports.enumerate() {
        let at = format!("{path}.ports[{index}]");
        let name = text(port, "/name");
        if !name.is_empty() {
            let errors = port_name_errors(name);
            causes.extend(errors.iter().map(|error| invalid(format!("{at}.name"), &format!("{name:?}"), error)));
            if errors.is_empty() && !names.insert(name) {
                causes.push(Cause {
                    reason: "FieldValueDuplicate".into(),
                    message: format!("Duplicate value: {name:?}"),
                    field: format!("{at}.name"),
                });
            }
        }
        match port.get("containerPort").and_then(Value::as_i64).unwrap_or(0) {
            0 => causes.push(required(format!("{at}.containerPort"), "")),
            number if !(1..=65535).contains(&number) => {
                causes.push(invalid(format!("{at}.containerPort"), &number.to_string(), PORT_RANGE_MESSAGE));
            }
            _ => {}
        }
        let host = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
        if host != 0 && !(1..=65535).contains(&host) {
            causes.push(invalid(format!("{at}.hostPort"), &host.to_string(), PORT_RANGE_MESSAGE));
        }
        match text(port, "/protocol") {
            "" => causes.push(required(format!("{at}.protocol"), "")),
            given if !PROTOCOLS.contains(&given) => {
                causes.push(unsupported(format!("{at}.protocol"), given, &PROTOCOLS));
            }
            _ => {}
        }
    }
}

/// What is wrong with `name` as an IANA service name (a port's name), in
/// Kubernetes' words.
pub fn port_name_errors(name: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if name.len() > 15 {
        errors.push("must be no more than 15 characters".to_owned());
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        errors.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_owned());
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        errors.push("must contain at least one letter (a-z)".to_owned());
    }
    if name.contains("--") {
        errors.push("must not contain consecutive hyphens".to_owned());
    }
    if name.starts_with('-') || name.ends_with('-') {
        errors.push("must not begin or end with a hyphen".to_owned());
    }
    errors
}

/// Checks a container's `resources` at `path`: known names, quantities
/// that parse and are not negative, and requests no greater than limits.
fn resources(path: &str, resources: &Value, causes: &mut Vec<Cause>) {
    let read = |field: &str, causes: &mut Vec<Cause>| -> BTreeMap<String, Quantity> {
        let mut found = BTreeMap::new();
        for (name, value) in entries(resources, &format!("/{field}")) {
            let at = format!("{path}.{field}[{name}]");
            let standard = CONTAINER_RESOURCES.contains(&name.as_str()) || name.starts_with("hugepages-");
            if !standard && !name.contains('/') {
                causes.push(invalid(&at, &format!("{name:?}"), "must be a standard resource type or fully qualified"));
                continue;
            }
            if let Some(quantity) = quantity_at(&at, value, causes) {
                found.insert(name.clone(), quantity);
            }
        }
        found
    };
    let limits = read("limits", causes);
    let requests = read("requests", causes);
    for (name, request) in &requests {
        let overcommit = CONTAINER_RESOURCES.contains(&name.as_str());
        let shown = format!("{:?}", request.to_string());
        match limits.get(name) {
            Some(limit) if !overcommit && request != limit => causes.push(invalid(
                format!("{path}.requests"),
                &shown,
                &format!("must be equal to {name} limit of {limit}"),
            )),
            Some(limit) if request > limit => causes.push(invalid(
                format!("{path}.requests"),
                &shown,
                &format!("must be less than or equal to {name} limit of {limit}"),
            )),
            None if !overcommit => {
                causes.push(required(format!("{path}.limits"), "Limit must be set for non overcommitable resources"))
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(spec: Value) -> Vec<String> {
        let mut causes = Vec::new();
        pod_spec("spec", &spec, &mut causes);
        causes.into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    fn defaulted(containers: Value) -> Value {
        json!({"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "containers": containers})
    }

    fn container(name: &str) -> Value {
        json!({"name": name, "image": "nginx", "imagePullPolicy": "Always"})
    }

    #[test]
    fn a_pod_needs_containers() {
        assert_eq!(causes(defaulted(json!([]))), ["spec.containers: Required value"]);
        assert!(causes(defaulted(json!([container("a")]))).is_empty());
    }

    #[test]
    fn containers_need_a_valid_unique_name_and_an_image() {
        let spec = json!({"restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "initContainers": [container("x")],
            "containers": [container("a"), container("x"), {"imagePullPolicy": "Sometimes"}, container("Bad_Name")]});
        let found = causes(spec);
        assert_eq!(
            found,
            [
                "spec.containers[1].name: Duplicate value: \"x\"".to_owned(),
                "spec.containers[2].name: Required value".to_owned(),
                "spec.containers[2].image: Required value".to_owned(),
                "spec.containers[2].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \
                 \"IfNotPresent\", \"Never\""
                    .to_owned(),
                format!("spec.containers[3].name: Invalid value: \"Bad_Name\": {DNS_LABEL_MESSAGE}"),
            ]
        );
    }

    #[test]
    fn ports_must_be_in_range_with_known_protocols() {
        let mut web = container("web");
        web["ports"] = json!([{"containerPort": 0, "protocol": "TCP"}, {"containerPort": 70000, "protocol": "ICMP"},
            {"containerPort": 80, "protocol": "TCP", "hostPort": -1, "name": "http"},
            {"containerPort": 81, "protocol": "TCP", "name": "http"}]);
        assert_eq!(
            causes(defaulted(json!([web]))),
            [
                "spec.containers[0].ports[0].containerPort: Required value",
                "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, \
                 inclusive",
                "spec.containers[0].ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \
                 \"TCP\", \"UDP\"",
                "spec.containers[0].ports[2].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[3].name: Duplicate value: \"http\"",
            ]
        );
    }

    #[test]
    fn requests_may_not_exceed_limits() {
        let mut web = container("web");
        web["resources"] = json!({"requests": {"cpu": "2", "memory": "x"}, "limits": {"cpu": "1", "gpu": "1",
            "example.com/dongle": "-1"}});
        let found = causes(defaulted(json!([web])));
        assert!(found.contains(&"spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1".to_owned()), "{found:?}");
        assert!(found.contains(&"spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified".to_owned()), "{found:?}");
        assert!(found.contains(&"spec.containers[0].resources.limits[example.com/dongle]: Invalid value: \"-1\": must be greater than or equal to 0".to_owned()), "{found:?}");
        assert!(
            found.iter().any(|c| c.starts_with("spec.containers[0].resources.requests[memory]: Invalid value: \"x\"")),
            "{found:?}"
        );
        assert_eq!(found.len(), 4, "{found:?}");
        let mut gpu = container("gpu");
        gpu["resources"] = json!({"requests": {"example.com/gpu": "1", "hugepages-2Mi": "2Mi"},
            "limits": {"example.com/gpu": "2"}});
        assert_eq!(
            causes(defaulted(json!([gpu]))),
            [
                "spec.containers[0].resources.requests: Invalid value: \"1\": must be equal to example.com/gpu limit \
                 of 2",
                "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable \
                 resources",
            ]
        );
    }

    #[test]
    fn policies_and_deadlines_follow_kubernetes() {
        let mut spec = defaulted(json!([container("a")]));
        spec["restartPolicy"] = json!("Sometimes");
        spec["dnsPolicy"] = json!("");
        spec["terminationGracePeriodSeconds"] = json!(-1);
        spec["activeDeadlineSeconds"] = json!(0);
        assert_eq!(
            causes(spec),
            [
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \
                 \"Never\"",
                "spec.dnsPolicy: Required value",
                "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            ]
        );
    }

    #[test]
    fn port_names_are_iana_service_names() {
        assert!(port_name_errors("http").is_empty());
        assert!(!port_name_errors("80").is_empty());
        assert!(!port_name_errors("a--b").is_empty());
        assert!(!port_name_errors("a-very-long-port-name").is_empty());
    }
}
