//! Validation of objects by kind, past their shape: the rules
//! kube-apiserver's validation applies, with its field paths and messages
//! (`spec.hard[pods]: Invalid value: "-1": must be greater than or equal to
//! 0`). One function per kind, found by group and resource; kinds without
//! one pass.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::resources::ResourceType;
use super::status::{ApiError, Cause};
use engenho_control::quantity::Quantity;

mod apps;
mod cluster;
mod networking;
pub(super) mod pods;
mod quota_scopes;
mod storage;
mod workloads;

/// The rules of one kind: the causes of an object's invalidity.
type Rules = fn(&Value) -> Vec<Cause>;

/// The rules of kind `t`, if it has any beyond its shape.
fn rules_of(t: &ResourceType) -> Option<Rules> {
    match (t.group, t.plural) {
        ("", "resourcequotas") => Some(resource_quota),
        ("", "limitranges") => Some(limit_range),
        ("policy", "poddisruptionbudgets") => Some(pod_disruption_budget),
        ("", "persistentvolumes") => Some(storage::persistent_volume),
        ("", "persistentvolumeclaims") => Some(storage::persistent_volume_claim),
        ("", "pods") => Some(pods::pod),
        ("apps", "deployments") => Some(apps::deployment),
        ("apps", "replicasets") => Some(apps::replica_set),
        ("apps", "statefulsets") => Some(apps::stateful_set),
        ("apps", "daemonsets") => Some(apps::daemon_set),
        ("", "podtemplates") => Some(workloads::pod_template),
        ("", "replicationcontrollers") => Some(workloads::replication_controller),
        ("apps", "controllerrevisions") => Some(workloads::controller_revision),
        ("autoscaling", "horizontalpodautoscalers") => Some(workloads::horizontal_pod_autoscaler),
        ("batch", "jobs") => Some(workloads::job),
        ("batch", "cronjobs") => Some(workloads::cron_job),
        ("scheduling.k8s.io", "priorityclasses") => Some(workloads::priority_class),
        ("networking.k8s.io", "ingresses") => Some(networking::ingress),
        ("networking.k8s.io", "ingressclasses") => Some(networking::ingress_class),
        ("networking.k8s.io", "networkpolicies") => Some(networking::network_policy),
        ("storage.k8s.io", "storageclasses") => Some(storage::storage_class),
        ("storage.k8s.io", "csinodes") => Some(storage::csi_node),
        ("storage.k8s.io", "csistoragecapacities") => Some(storage::csi_storage_capacity),
        ("storage.k8s.io", "volumeattachments") => Some(storage::volume_attachment),
        ("certificates.k8s.io", "certificatesigningrequests") => Some(cluster::certificate_signing_request),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations" | "mutatingwebhookconfigurations") => {
            Some(cluster::webhook_configuration)
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => Some(cluster::validating_admission_policy),
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            Some(cluster::validating_admission_policy_binding)
        }
        ("events.k8s.io", "events") => Some(cluster::event),
        ("apiregistration.k8s.io", "apiservices") => Some(cluster::api_service),
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => Some(cluster::flow_schema),
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => Some(cluster::priority_level_configuration),
        _ => None,
    }
}

/// 422 listing every rule of its kind `object` breaks.
///
/// # Errors
/// The 422 `Invalid` status, with one cause per broken rule.
pub fn validate(t: &ResourceType, object: &Value) -> Result<(), ApiError> {
    let Some(rules) = rules_of(t) else { return Ok(()) };
    let causes = rules(object);
    if causes.is_empty() {
        return Ok(());
    }
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    Err(ApiError::invalid(t.group, t.kind, name, causes))
}

/// 422 when an update changes what its kind keeps fixed once created, as
/// kube-apiserver's update validation refuses it.
///
/// # Errors
/// The 422 `Invalid` status, with one cause per changed field.
pub fn validate_update(t: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    let changed = |pointer: &str| old.pointer(pointer) != new.pointer(pointer);
    let mut causes = Vec::new();
    match (t.group, t.plural) {
        ("", "resourcequotas") => {
            let scopes = |object: &Value| {
                let mut scopes: Vec<String> =
                    items(object, "/spec/scopes").iter().filter_map(Value::as_str).map(str::to_owned).collect();
                scopes.sort();
                scopes
            };
            if scopes(old) != scopes(new) {
                let shown = serde_json::to_string(&scopes(new)).unwrap_or_default();
                causes.push(invalid("spec.scopes", &shown, "field is immutable"));
            }
        }
        ("scheduling.k8s.io", "priorityclasses") => {
            for field in ["value", "preemptionPolicy"] {
                if changed(&format!("/{field}")) {
                    causes.push(forbidden(field, "may not be changed in an update."));
                }
            }
        }
        ("storage.k8s.io", "storageclasses") => {
            for field in ["provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"] {
                if changed(&format!("/{field}")) {
                    causes.push(forbidden(field, &format!("updates to {field} are forbidden.")));
                }
            }
        }
        ("apps", plural @ ("deployments" | "replicasets" | "statefulsets" | "daemonsets")) => {
            causes.extend(apps::update(plural, old, new));
        }
        _ => {}
    }
    if causes.is_empty() {
        return Ok(());
    }
    let name = new.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    Err(ApiError::invalid(t.group, t.kind, name, causes))
}

/// `field: Invalid value: <shown>: message`.
pub fn invalid(field: impl Into<String>, shown: &str, message: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {shown}: {message}"),
        field: field.into(),
    }
}

/// `field: Required value: message`.
fn required(field: impl Into<String>, message: &str) -> Cause {
    let message = if message.is_empty() { "Required value".to_owned() } else { format!("Required value: {message}") };
    Cause { reason: "FieldValueRequired".into(), message, field: field.into() }
}

/// `field: Forbidden: message`.
fn forbidden(field: impl Into<String>, message: &str) -> Cause {
    Cause { reason: "FieldValueForbidden".into(), message: format!("Forbidden: {message}"), field: field.into() }
}

/// `field: Unsupported value: "x": supported values: "a", "b"`.
fn unsupported(field: impl Into<String>, given: &str, supported: &[&str]) -> Cause {
    let supported: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    Cause {
        reason: "FieldValueNotSupported".into(),
        message: format!("Unsupported value: {given:?}: supported values: {}", supported.join(", ")),
        field: field.into(),
    }
}

/// The text at `pointer` in `value`, or empty.
fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// The items of the array at `pointer` in `value` (none when absent).
fn items<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value.pointer(pointer).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// Kubernetes' message for a negative value.
pub const NEGATIVE_MESSAGE: &str = "must be greater than or equal to 0";

/// The resources whose quantities are whole numbers.
const INTEGER_RESOURCES: [&str; 9] = [
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

/// The resources a quota may name without a `/` (`count/...` and other
/// qualified names are checked as names only).
const STANDARD_QUOTA_RESOURCES: [&str; 19] = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// The resources a container (or a LimitRange of containers or pods) may
/// name without a `/`.
const STANDARD_CONTAINER_RESOURCES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// The scopes a quota may name.
const QUOTA_SCOPES: [&str; 6] =
    ["Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass", "CrossNamespacePodAffinity"];

/// The map at `pointer` as (name, value) pairs in name order.
fn entries<'a>(object: &'a Value, pointer: &str) -> Vec<(&'a String, &'a Value)> {
    let map: Option<&Map<String, Value>> = object.pointer(pointer).and_then(Value::as_object);
    let mut pairs: Vec<_> = map.into_iter().flatten().collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
}

/// A quantity at `field`, or the causes of its refusal.
fn quantity_at(field: &str, value: &Value, causes: &mut Vec<Cause>) -> Option<Quantity> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        other => other.to_string(),
    };
    match Quantity::parse(&text) {
        Ok(quantity) if quantity.is_negative() => {
            causes.push(invalid(field, &format!("{:?}", quantity.to_string()), NEGATIVE_MESSAGE));
            None
        }
        Ok(quantity) => Some(quantity),
        Err(error) => {
            causes.push(invalid(field, &format!("{text:?}"), &error.to_string()));
            None
        }
    }
}

/// A `ResourceQuota`: known resource names, non-negative (and, for
/// counts, whole) quantities, known scopes that fit the resources limited,
/// and a well-formed scope selector.
fn resource_quota(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (path, pointer) in
        [("spec.hard", "/spec/hard"), ("status.hard", "/status/hard"), ("status.used", "/status/used")]
    {
        for (name, value) in entries(object, pointer) {
            let field = format!("{path}[{name}]");
            let before = causes.len();
            resource_name(
                &field,
                name,
                &STANDARD_QUOTA_RESOURCES,
                "must be a standard resource for quota",
                &mut causes,
            );
            if let Some(quantity) = quantity_at(&field, value, &mut causes)
                && INTEGER_RESOURCES.contains(&name.as_str())
                && !quantity.is_whole()
                && causes.len() == before
            {
                causes.push(invalid(&field, &format!("{:?}", quantity.to_string()), "must be an integer"));
            }
        }
    }
    let scopes = object.pointer("/spec/scopes").and_then(Value::as_array).into_iter().flatten();
    for (index, scope) in scopes.enumerate() {
        let scope = scope.as_str().unwrap_or_default();
        if !QUOTA_SCOPES.contains(&scope) {
            causes.push(unsupported(format!("spec.scopes[{index}]"), scope, &QUOTA_SCOPES));
        }
    }
    causes.extend(quota_scopes::quota_scopes(object));
    causes
}

/// Checks a resource name: a qualified name, and one of `standard` when
/// it has no `/`.
fn resource_name(field: &str, name: &str, standard: &[&str], message: &str, causes: &mut Vec<Cause>) {
    let shown = format!("{name:?}");
    let errors = qualified_name_errors(name);
    let qualified = errors.is_empty();
    causes.extend(errors.iter().map(|error| invalid(field, &shown, error)));
    if qualified && !name.contains('/') && !standard.contains(&name) {
        causes.push(invalid(field, &shown, message));
    }
}

/// The limit types a LimitRange may name.
const LIMIT_TYPES: [&str; 3] = ["Pod", "Container", "PersistentVolumeClaim"];

/// A `LimitRange`: each item's quantities non-negative, min ≤ default
/// request ≤ default ≤ max, and a limit-to-request ratio of at least 1
/// and at most max/min.
fn limit_range(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let items = object.pointer("/spec/limits").and_then(Value::as_array).into_iter().flatten();
    for (index, item) in items.enumerate() {
        let path = format!("spec.limits[{index}]");
        let kind = item.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind.is_empty() {
            causes.push(required(format!("{path}.type"), ""));
        } else if !LIMIT_TYPES.contains(&kind) {
            causes.push(unsupported(format!("{path}.type"), kind, &LIMIT_TYPES));
        }
        let mut read = |field: &str| -> BTreeMap<String, Quantity> {
            let mut found = BTreeMap::new();
            for (name, value) in entries(item, &format!("/{field}")) {
                let at = format!("{path}.{field}[{name}]");
                if kind != "PersistentVolumeClaim" {
                    let message = "must be a standard resource for containers";
                    resource_name(&at, name, &STANDARD_CONTAINER_RESOURCES, message, &mut causes);
                }
                if let Some(quantity) = quantity_at(&at, value, &mut causes) {
                    found.insert(name.clone(), quantity);
                }
            }
            found
        };
        let (max, min) = (read("max"), read("min"));
        let (default, default_request) = (read("default"), read("defaultRequest"));
        let ratio = read("maxLimitRequestRatio");
        if kind == "Pod" {
            for (field, given) in [("default", &default), ("defaultRequest", &default_request)] {
                if !given.is_empty() {
                    causes.push(forbidden(format!("{path}.{field}"), "may not be specified when `type` is 'Pod'"));
                }
            }
        }
        let keys: std::collections::BTreeSet<&String> = max
            .keys()
            .chain(min.keys())
            .chain(default.keys())
            .chain(default_request.keys())
            .chain(ratio.keys())
            .collect();
        for key in keys {
            let at = |field: &str| format!("{path}.{field}[{key}]");
            let shown = |q: &Quantity| format!("{:?}", q.to_string());
            let (min, max) = (min.get(key), max.get(key));
            let (default, request, ratio) = (default.get(key), default_request.get(key), ratio.get(key));
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                causes.push(invalid(
                    at("min"),
                    &shown(min),
                    &format!("min value {min} is greater than max value {max}"),
                ));
            }
            if let (Some(request), Some(min)) = (request, min)
                && min > request
            {
                let message = format!("min value {min} is greater than default request value {request}");
                causes.push(invalid(at("defaultRequest"), &shown(request), &message));
            }
            if let (Some(request), Some(max)) = (request, max)
                && request > max
            {
                let message = format!("default request value {request} is greater than max value {max}");
                causes.push(invalid(at("defaultRequest"), &shown(request), &message));
            }
            if let (Some(request), Some(default)) = (request, default)
                && request > default
            {
                let message = format!("default request value {request} is greater than default limit value {default}");
                causes.push(invalid(at("defaultRequest"), &shown(request), &message));
            }
            if let (Some(default), Some(min)) = (default, min)
                && min > default
            {
                let message = format!("min value {min} is greater than default value {default}");
                causes.push(invalid(at("default"), &shown(min), &message));
            }
            if let (Some(default), Some(max)) = (default, max)
                && default > max
            {
                let message = format!("default value {default} is greater than max value {max}");
                causes.push(invalid(at("default"), &shown(max), &message));
            }
            if let Some(ratio) = ratio {
                if *ratio < Quantity::from_units(1) {
                    let message = format!("ratio {ratio} is less than 1");
                    causes.push(invalid(at("maxLimitRequestRatio"), &shown(ratio), &message));
                }
                if let (Some(min), Some(max)) = (min, max)
                    && !min.is_zero()
                {
                    let limit = max.milli_value() as f64 / min.milli_value() as f64;
                    if ratio.milli_value() as f64 / 1000.0 > limit {
                        let message = format!("ratio {ratio} is greater than max/min = {limit:.6}");
                        causes.push(invalid(at("maxLimitRequestRatio"), &shown(ratio), &message));
                    }
                }
            }
        }
    }
    causes
}

/// The eviction policies for unhealthy pods a budget may name.
const UNHEALTHY_POD_EVICTION_POLICIES: [&str; 2] = ["AlwaysAllow", "IfHealthyBudget"];

/// A `PodDisruptionBudget`: at most one of minAvailable and
/// maxUnavailable, each a non-negative count or a percentage up to 100%,
/// and a valid selector.
fn pod_disruption_budget(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        causes.push(invalid("spec", &spec.to_string(), "minAvailable and maxUnavailable cannot be both set"));
    }
    for (field, value) in [("spec.minAvailable", min), ("spec.maxUnavailable", max)] {
        if let Some(value) = value {
            int_or_percent(field, value, &mut causes);
        }
    }
    if let Some(selector) = spec.get("selector").filter(|s| !s.is_null()) {
        label_selector("spec.selector", selector, &mut causes);
    }
    if let Some(policy) = spec.get("unhealthyPodEvictionPolicy").and_then(Value::as_str)
        && !UNHEALTHY_POD_EVICTION_POLICIES.contains(&policy)
    {
        causes.push(unsupported("spec.unhealthyPodEvictionPolicy", policy, &UNHEALTHY_POD_EVICTION_POLICIES));
    }
    causes
}

/// Kubernetes' message for a malformed percentage.
const PERCENT_MESSAGE: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  \
                               or '93%', regex used for validation is '[0-9]+%')";

/// Checks an int-or-percent: a count ≥ 0, or `N%` with N ≤ 100.
fn int_or_percent(field: &str, value: &Value, causes: &mut Vec<Cause>) {
    match value {
        Value::Number(number) => match number.as_i64() {
            Some(count) if count < 0 => causes.push(invalid(field, &count.to_string(), NEGATIVE_MESSAGE)),
            Some(_) => {}
            None => causes.push(invalid(field, &number.to_string(), "must be an integer or percentage (e.g '5%')")),
        },
        Value::String(text) => {
            let shown = format!("{text:?}");
            let digits = text.strip_suffix('%').filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            match digits {
                None => causes.push(invalid(field, &shown, PERCENT_MESSAGE)),
                Some(digits) if digits.parse::<u64>().map_or(true, |p| p > 100) => {
                    causes.push(invalid(field, &shown, "must not be greater than 100%"));
                }
                Some(_) => {}
            }
        }
        other => causes.push(invalid(field, &other.to_string(), "must be an integer or percentage (e.g '5%')")),
    }
}

/// The operators of a label selector's expressions.
const SELECTOR_OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

/// Checks a `LabelSelector`: label keys and values, operators, and values
/// given exactly when the operator needs them.
pub fn label_selector(path: &str, selector: &Value, causes: &mut Vec<Cause>) {
    for (key, value) in entries(selector, "/matchLabels") {
        let field = format!("{path}.matchLabels");
        causes.extend(qualified_name_errors(key).iter().map(|e| invalid(&field, &format!("{key:?}"), e)));
        let value = value.as_str().unwrap_or_default();
        causes.extend(label_value_errors(value).iter().map(|e| invalid(&field, &format!("{value:?}"), e)));
    }
    let expressions = selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten();
    for (index, expression) in expressions.enumerate() {
        let at = format!("{path}.matchExpressions[{index}]");
        let operator = expression.get("operator").and_then(Value::as_str).unwrap_or_default();
        let values = expression.get("values").and_then(Value::as_array).map_or(0, Vec::len);
        match operator {
            "In" | "NotIn" if values == 0 => {
                causes.push(required(format!("{at}.values"), "must be specified when `operator` is 'In' or 'NotIn'"))
            }
            "Exists" | "DoesNotExist" if values > 0 => causes.push(forbidden(
                format!("{at}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            _ if !SELECTOR_OPERATORS.contains(&operator) => {
                causes.push(invalid(
                    format!("{at}.operator"),
                    &format!("{operator:?}"),
                    "not a valid selector operator",
                ));
            }
            _ => {}
        }
        let key = expression.get("key").and_then(Value::as_str).unwrap_or_default();
        let field = format!("{at}.key");
        causes.extend(qualified_name_errors(key).iter().map(|e| invalid(&field, &format!("{key:?}"), e)));
    }
}

/// The regular expression of a qualified name's name part.
const NAME_PART_MESSAGE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
    and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation \
    is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// Whether `text` is alphanumeric at both ends and `-`, `_`, `.` or
/// alphanumeric between.
fn is_name_part(text: &str) -> bool {
    let edge = |c: char| c.is_ascii_alphanumeric();
    text.starts_with(edge)
        && text.ends_with(edge)
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What is wrong with a qualified name (`example.com/MyName`), in
/// Kubernetes' words.
pub fn qualified_name_errors(name: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = name.split('/').collect();
    let (prefix, part) = match parts.as_slice() {
        [part] => (None, *part),
        [prefix, part] => (Some(*prefix), *part),
        _ => {
            errors.push(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
                 with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for \
                 validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix \
                 and '/' (e.g. 'example.com/MyName')"
                    .to_owned(),
            );
            return errors;
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errors.push("prefix part must be non-empty".to_owned());
        } else if let Err(message) = super::objects::subdomain(prefix) {
            errors.push(format!("prefix part {message}"));
        }
    }
    if part.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if part.len() > 63 {
        errors.push("name part must be no more than 63 characters".to_owned());
    }
    if !part.is_empty() && !is_name_part(part) {
        errors.push(NAME_PART_MESSAGE.to_owned());
    }
    errors
}

/// What is wrong with a label value, in Kubernetes' words.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    if !value.is_empty() && !is_name_part(value) {
        errors.push(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and \
             must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex \
             used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                .to_owned(),
        );
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resources::Registry;
    use serde_json::json;

    fn refusal(plural: &str, group: &str, object: Value) -> Vec<(String, String)> {
        let registry = Registry::built_in();
        let t = registry.find_plural(group, plural).expect("built in");
        match validate(t, &object) {
            Ok(()) => Vec::new(),
            Err(error) => error.causes.into_iter().map(|c| (c.field, c.message)).collect(),
        }
    }

    #[test]
    fn quotas_refuse_negative_and_unknown_resources() {
        let quota = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "-1", "bogus": "1", "cpu": "x",
            "secrets": "1.5", "count/deployments.apps": "2"}}});
        let causes = refusal("resourcequotas", "", quota);
        assert!(
            causes.contains(&(
                "spec.hard[pods]".into(),
                "Invalid value: \"-1\": must be greater than or equal to 0".into()
            ))
        );
        assert!(causes.contains(&(
            "spec.hard[bogus]".into(),
            "Invalid value: \"bogus\": must be a standard resource for quota".into()
        )));
        assert!(causes.iter().any(|(f, m)| f == "spec.hard[cpu]" && m.contains("quantities must match")));
        assert!(causes.contains(&("spec.hard[secrets]".into(), "Invalid value: \"1500m\": must be an integer".into())));
        assert_eq!(causes.len(), 4, "{causes:?}");
    }

    #[test]
    fn limit_ranges_refuse_min_over_max_and_defaults_outside() {
        let range = json!({"spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"},
            "default": {"memory": "2Gi"}, "defaultRequest": {"memory": "1Gi"}, "maxLimitRequestRatio": {"memory": "500m"}},
            {"type": "Pod", "default": {"cpu": "1"}}]}});
        let causes = refusal("limitranges", "", range);
        assert!(causes.contains(&(
            "spec.limits[0].min[cpu]".into(),
            "Invalid value: \"2\": min value 2 is greater than max value 1".into()
        )));
        assert!(causes.contains(&(
            "spec.limits[0].maxLimitRequestRatio[memory]".into(),
            "Invalid value: \"500m\": ratio 500m is less than 1".into()
        )));
        assert!(causes.contains(&(
            "spec.limits[1].default".into(),
            "Forbidden: may not be specified when `type` is 'Pod'".into()
        )));
        assert_eq!(causes.len(), 3, "{causes:?}");
    }

    #[test]
    fn budgets_refuse_both_bounds_and_bad_values() {
        let both = json!({"spec": {"minAvailable": 1, "maxUnavailable": 1}});
        let causes = refusal("poddisruptionbudgets", "policy", both);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].0, "spec");
        assert!(causes[0].1.ends_with(": minAvailable and maxUnavailable cannot be both set"), "{causes:?}");
        let bad = json!({"spec": {"minAvailable": "120%", "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}});
        assert_eq!(
            refusal("poddisruptionbudgets", "policy", bad),
            [
                ("spec.minAvailable".to_owned(), "Invalid value: \"120%\": must not be greater than 100%".to_owned()),
                (
                    "spec.selector.matchExpressions[0].values".to_owned(),
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'".to_owned()
                ),
            ]
        );
        assert!(
            refusal("poddisruptionbudgets", "policy", json!({"spec": {"maxUnavailable": -1}})).contains(&(
                "spec.maxUnavailable".into(),
                "Invalid value: -1: must be greater than or equal to 0".into()
            ))
        );
        assert!(
            refusal("poddisruptionbudgets", "policy", json!({"spec": {"minAvailable": "50%", "selector": {}}}))
                .is_empty()
        );
    }
}
