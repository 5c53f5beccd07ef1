//! Server-side printing: the `Table` that `kubectl get` asks for, with the
//! columns kube-apiserver prints for the built-in kinds and NAME/AGE for the
//! rest.

use serde_json::{Value, json};

use super::resources::ResourceType;

mod kinds;

/// Whether an `Accept` header asks for a `Table`.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| part.contains("as=Table"))
}

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// Nothing.
    None,
    /// The object's metadata as `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// From the `includeObject` query parameter.
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// One column: its definition and how a cell is computed.
struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u32,
    cell: fn(&Value) -> Value,
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "Name must be unique within a namespace.",
    priority: 0,
    cell: |o| json!(text(o, "/metadata/name")),
};

const AGE: Column = Column {
    name: "Age",
    kind: "string",
    format: "",
    description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
    priority: 0,
    cell: |o| json!(age(o)),
};

fn columns(t: &ResourceType) -> Vec<Column> {
    match (t.group, t.plural) {
        ("", "namespaces") => vec![
            NAME,
            Column {
                name: "Status",
                kind: "string",
                format: "",
                description: "The status of the namespace",
                priority: 0,
                cell: |o| json!(text_or(o, "/status/phase", "Active")),
            },
            AGE,
        ],
        ("", "pods") => vec![
            NAME,
            Column {
                name: "Ready",
                kind: "string",
                format: "",
                description: "The aggregate readiness state of this pod for accepting traffic.",
                priority: 0,
                cell: pod_ready,
            },
            Column {
                name: "Status",
                kind: "string",
                format: "",
                description: "The aggregate status of the containers in this pod.",
                priority: 0,
                cell: |o| json!(pod_status(o)),
            },
            Column {
                name: "Restarts",
                kind: "string",
                format: "",
                description: "The number of times the containers in this pod have been restarted.",
                priority: 0,
                cell: pod_restarts,
            },
            AGE,
            Column {
                name: "IP",
                kind: "string",
                format: "",
                description: "IP address allocated to the pod.",
                priority: 1,
                cell: |o| json!(text_or(o, "/status/podIP", "<none>")),
            },
            Column {
                name: "Node",
                kind: "string",
                format: "",
                description: "Name of the node the pod is scheduled on.",
                priority: 1,
                cell: |o| json!(text_or(o, "/spec/nodeName", "<none>")),
            },
        ],
        ("", "nodes") => vec![
            NAME,
            Column {
                name: "Status",
                kind: "string",
                format: "",
                description: "The status of the node",
                priority: 0,
                cell: node_status,
            },
            Column {
                name: "Roles",
                kind: "string",
                format: "",
                description: "The roles of the node",
                priority: 0,
                cell: node_roles,
            },
            AGE,
            Column {
                name: "Version",
                kind: "string",
                format: "",
                description: "Kubelet Version reported by the node.",
                priority: 0,
                cell: |o| json!(text(o, "/status/nodeInfo/kubeletVersion")),
            },
            Column {
                name: "Internal-IP",
                kind: "string",
                format: "",
                description: "List of addresses reachable to the node. Queried from cloud provider, if available.",
                priority: 1,
                cell: |o| json!(node_address(o, "InternalIP")),
            },
            Column {
                name: "External-IP",
                kind: "string",
                format: "",
                description: "List of addresses reachable to the node. Queried from cloud provider, if available.",
                priority: 1,
                cell: |o| json!(node_address(o, "ExternalIP")),
            },
            Column {
                name: "OS-Image",
                kind: "string",
                format: "",
                description: "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
                priority: 1,
                cell: |o| json!(text_or(o, "/status/nodeInfo/osImage", "<unknown>")),
            },
            Column {
                name: "Kernel-Version",
                kind: "string",
                format: "",
                description: "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
                priority: 1,
                cell: |o| json!(text_or(o, "/status/nodeInfo/kernelVersion", "<unknown>")),
            },
            Column {
                name: "Container-Runtime",
                kind: "string",
                format: "",
                description: "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
                priority: 1,
                cell: |o| json!(text_or(o, "/status/nodeInfo/containerRuntimeVersion", "<unknown>")),
            },
        ],
        ("", "configmaps") | ("", "secrets") => vec![
            NAME,
            Column {
                name: "Data",
                kind: "integer",
                format: "",
                description: "Number of entries in the object's data.",
                priority: 0,
                cell: |o| {
                    let count = |field: &str| o.get(field).and_then(Value::as_object).map_or(0, |m| m.len());
                    json!(count("data") + count("binaryData") + count("stringData"))
                },
            },
            AGE,
        ],
        ("apps", "deployments") => vec![
            NAME,
            Column {
                name: "Ready",
                kind: "string",
                format: "",
                description: "Number of the pod with ready state",
                priority: 0,
                cell: |o| json!(format!("{}/{}", int(o, "/status/readyReplicas"), desired_replicas(o))),
            },
            Column {
                name: "Up-to-date",
                kind: "string",
                format: "",
                description: "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                priority: 0,
                cell: |o| json!(int(o, "/status/updatedReplicas")),
            },
            Column {
                name: "Available",
                kind: "string",
                format: "",
                description: "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                priority: 0,
                cell: |o| json!(int(o, "/status/availableReplicas")),
            },
            AGE,
        ],
        ("", "resourcequotas") => vec![
            NAME,
            AGE,
            Column {
                name: "Request",
                kind: "string",
                format: "",
                description: "Request represents a minimum amount of cpu/memory that a container may consume.",
                priority: 0,
                cell: |o| json!(quota_usage(o, false)),
            },
            Column {
                name: "Limit",
                kind: "string",
                format: "",
                description: "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
                priority: 0,
                cell: |o| json!(quota_usage(o, true)),
            },
        ],
        ("", "limitranges") => vec![
            NAME,
            Column {
                name: "Created At",
                kind: "date",
                format: "",
                description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
                priority: 0,
                cell: |o| json!(text(o, "/metadata/creationTimestamp")),
            },
        ],
        ("policy", "poddisruptionbudgets") => vec![
            NAME,
            Column {
                name: "Min Available",
                kind: "string",
                format: "",
                description: "The minimum number of pods that must be available, in percent or count.",
                priority: 0,
                cell: |o| json!(int_or_percent(o, "/spec/minAvailable")),
            },
            Column {
                name: "Max Unavailable",
                kind: "string",
                format: "",
                description: "The maximum number of pods that may be unavailable, in percent or count.",
                priority: 0,
                cell: |o| json!(int_or_percent(o, "/spec/maxUnavailable")),
            },
            Column {
                name: "Allowed Disruptions",
                kind: "integer",
                format: "",
                description: "Number of pod disruptions that are currently allowed.",
                priority: 0,
                cell: |o| json!(int(o, "/status/disruptionsAllowed")),
            },
            AGE,
        ],
        _ => kinds::columns(t.group, t.plural).unwrap_or_else(|| vec![NAME, AGE]),
    }
}

/// A quota's `used/hard` pairs (`pods: 1/2, requests.cpu: 0/1`), in
/// resource order: those named `limits.*`, or the others.
fn quota_usage(quota: &Value, limits: bool) -> String {
    let hard = quota.pointer("/status/hard").and_then(Value::as_object).into_iter().flatten();
    let mut pairs: Vec<(&String, &Value)> = hard.filter(|(name, _)| name.starts_with("limits.") == limits).collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(name, hard)| {
            let used = quota.pointer("/status/used").and_then(|u| u.get(name.as_str())).and_then(Value::as_str);
            format!("{name}: {}/{}", used.unwrap_or("0"), hard.as_str().unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An int-or-percent cell, or `N/A` when unset.
fn int_or_percent(object: &Value, pointer: &str) -> String {
    match object.pointer(pointer) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => "N/A".to_owned(),
    }
}

/// A `Table` of `objects` of kind `t`.
pub fn of(t: &ResourceType, objects: &[Value], revision: i64, include: Include) -> Value {
    let columns = columns(t);
    let definition = |name: &str, kind: &str, format: &str, description: &str, priority: u32| json!({"name": name, "type": kind, "format": format, "description": description, "priority": priority});
    let mut definitions: Vec<Value> =
        columns.iter().map(|c| definition(c.name, c.kind, c.format, c.description, c.priority)).collect();
    // A custom kind's columns go between NAME and AGE.
    let custom_at = columns.len().saturating_sub(1);
    definitions.splice(
        custom_at..custom_at,
        t.printer_columns.iter().map(|c| definition(&c.name, &c.kind, "", &c.description, c.priority)),
    );
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells: Vec<Value> = columns.iter().map(|c| (c.cell)(object)).collect();
            cells.splice(custom_at..custom_at, t.printer_columns.iter().map(|c| json_path_cell(object, &c.json_path)));
            let mut row = json!({ "cells": cells });
            match include {
                Include::None => {}
                Include::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    });
                }
                Include::Object => row["object"] = object.clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": revision.to_string()},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

/// The cell at a simple JSONPath (`.spec.size`, `.status.items[0].name`);
/// null where the object has nothing there.
fn json_path_cell(object: &Value, path: &str) -> Value {
    let mut here = object;
    for step in path.trim_start_matches('{').trim_end_matches('}').trim_start_matches('.').split('.') {
        let (field, index) = match step.split_once('[') {
            Some((field, rest)) => (field, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (step, None),
        };
        let Some(next) = here.get(field) else { return Value::Null };
        here = match index {
            Some(index) => match next.get(index) {
                Some(item) => item,
                None => return Value::Null,
            },
            None => next,
        };
    }
    here.clone()
}

fn text(object: &Value, pointer: &str) -> String {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn text_or(object: &Value, pointer: &str, default: &str) -> String {
    object.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or(default).to_owned()
}

fn int(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn desired_replicas(object: &Value) -> i64 {
    object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

fn pod_ready(pod: &Value) -> Value {
    let total = pod.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
    let ready = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(0, |statuses| statuses.iter().filter(|s| s.get("ready") == Some(&json!(true))).count());
    json!(format!("{ready}/{total}"))
}

/// The pod's STATUS as kubectl prints it: the phase (or `status.reason`),
/// overridden by the first unfinished init container (`Init:<reason>`,
/// `Init:<n>/<m>`), else by the last container that waits or terminated
/// with a reason (`ErrImagePull`, `CrashLoopBackOff`, `Completed`,
/// `ExitCode:1`), and `Terminating` once deletion was asked for.
fn pod_status(pod: &Value) -> String {
    let status = &pod["status"];
    let mut reason = status["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
        .or_else(|| status["phase"].as_str())
        .unwrap_or("Pending")
        .to_owned();
    let statuses = |field: &str| status[field].as_array().cloned().unwrap_or_default();
    let stopped = |state: &Value| {
        let terminated = &state["terminated"];
        match terminated["reason"].as_str().filter(|r| !r.is_empty()) {
            Some(reason) => reason.to_owned(),
            None => match terminated["signal"].as_i64().filter(|s| *s != 0) {
                Some(signal) => format!("Signal:{signal}"),
                None => format!("ExitCode:{}", terminated["exitCode"].as_i64().unwrap_or(0)),
            },
        }
    };
    let init_total = pod.pointer("/spec/initContainers").and_then(Value::as_array).map_or(0, Vec::len);
    let mut initializing = false;
    for (index, container) in statuses("initContainerStatuses").iter().enumerate() {
        let state = &container["state"];
        let waiting = state["waiting"]["reason"].as_str().filter(|r| !r.is_empty() && *r != "PodInitializing");
        if state["terminated"].is_object() && state["terminated"]["exitCode"].as_i64() == Some(0) {
            continue;
        }
        initializing = true;
        reason = if state["terminated"].is_object() {
            format!("Init:{}", stopped(state))
        } else if let Some(waiting) = waiting {
            format!("Init:{waiting}")
        } else {
            format!("Init:{index}/{init_total}")
        };
        break;
    }
    if !initializing {
        let mut running = false;
        for container in statuses("containerStatuses").iter().rev() {
            let state = &container["state"];
            if let Some(waiting) = state["waiting"]["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = waiting.to_owned();
            } else if state["terminated"].is_object() {
                reason = stopped(state);
            } else if container["ready"] == true && state["running"].is_object() {
                running = true;
            }
        }
        if reason == "Completed" && running {
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            reason = if ready { "Running" } else { "NotReady" }.to_owned();
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
        reason = if status["reason"] == "NodeLost" { "Unknown" } else { "Terminating" }.to_owned();
    }
    reason
}

fn pod_restarts(pod: &Value) -> Value {
    let restarts: i64 = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(0, |statuses| statuses.iter().filter_map(|s| s.get("restartCount").and_then(Value::as_i64)).sum());
    json!(restarts.to_string())
}

fn node_status(node: &Value) -> Value {
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conditions| conditions.iter().find(|c| c.get("type") == Some(&json!("Ready"))))
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str);
    let mut status = match ready {
        Some("True") => "Ready".to_owned(),
        _ => "NotReady".to_owned(),
    };
    if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    json!(status)
}

/// The node's first address of `kind`, or `<none>`, as kubectl prints it.
fn node_address(node: &Value, kind: &str) -> String {
    node.pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|address| address["type"] == kind)
        .and_then(|address| address["address"].as_str())
        .unwrap_or("<none>")
        .to_owned()
}

fn node_roles(node: &Value) -> Value {
    let mut roles: Vec<&str> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| labels.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/")).collect())
        .unwrap_or_default();
    roles.sort_unstable();
    json!(if roles.is_empty() { "<none>".to_owned() } else { roles.join(",") })
}

/// The object's age as kubectl prints it.
fn age(object: &Value) -> String {
    let Some(created) = object
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| k8s_openapi::chrono::DateTime::parse_from_rfc3339(t).ok())
    else {
        return "<unknown>".into();
    };
    let seconds = (k8s_openapi::chrono::Utc::now() - created.to_utc()).num_seconds().max(0);
    human_duration(seconds)
}

/// Kubernetes' short human duration: `45s`, `3m20s`, `47m`, `5h`, `3d4h`, `2y`.
pub fn human_duration(seconds: i64) -> String {
    let minutes = seconds / 60;
    let hours = seconds / 3600;
    let days = hours / 24;
    match seconds {
        s if s < 120 => format!("{s}s"),
        _ if minutes < 10 => {
            let s = seconds % 60;
            if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") }
        }
        _ if minutes < 180 => format!("{minutes}m"),
        _ if hours < 8 => {
            let m = minutes % 60;
            if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") }
        }
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 24 * 8 => {
            let h = hours % 24;
            if h == 0 { format!("{days}d") } else { format!("{days}d{h}h") }
        }
        _ if hours < 24 * 365 * 2 => format!("{days}d"),
        _ if hours < 24 * 365 * 8 => {
            let years = days / 365;
            let d = days % 365;
            if d == 0 { format!("{years}y") } else { format!("{years}y{d}d") }
        }
        _ => format!("{}y", days / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resources::Registry;

    #[test]
    fn durations_print_as_kubectl_does() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(47 * 60), "47m");
        assert_eq!(human_duration(5 * 3600), "5h");
        assert_eq!(human_duration(20 * 3600), "20h");
        assert_eq!(human_duration(3 * 86400 + 4 * 3600), "3d4h");
        assert_eq!(human_duration(30 * 86400), "30d");
    }

    #[test]
    fn a_pod_s_status_reads_as_kubectl_prints_it() {
        // Goal: kubectl's printPod: the phase, overridden by a waiting or
        // terminated container's reason, an unfinished init container,
        // and Terminating once deleted.
        let pod = |status: Value| json!({"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "c"}]}, "status": status});
        let waiting = |reason: &str| json!({"state": {"waiting": {"reason": reason}}});
        assert_eq!(pod_status(&pod(json!({"phase": "Running"}))), "Running");
        assert_eq!(pod_status(&json!({})), "Pending");
        assert_eq!(
            pod_status(&pod(json!({"phase": "Pending", "containerStatuses": [waiting("ErrImagePull")]}))),
            "ErrImagePull"
        );
        assert_eq!(
            pod_status(&pod(json!({"phase": "Running", "containerStatuses": [waiting("CrashLoopBackOff")]}))),
            "CrashLoopBackOff"
        );
        let exited = json!({"state": {"terminated": {"exitCode": 3}}});
        assert_eq!(pod_status(&pod(json!({"phase": "Failed", "containerStatuses": [exited]}))), "ExitCode:3");
        let init_waiting = json!({"phase": "Pending", "initContainerStatuses": [{"state": {"waiting": {"reason": "PodInitializing"}}}]});
        assert_eq!(pod_status(&pod(init_waiting)), "Init:0/1");
        let init_failed = json!({"phase": "Pending", "initContainerStatuses": [{"state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]});
        assert_eq!(pod_status(&pod(init_failed)), "Init:Error");
        let mut deleting = pod(json!({"phase": "Running"}));
        deleting["metadata"] = json!({"deletionTimestamp": "2026-12-06T00:00:00Z"});
        assert_eq!(pod_status(&deleting), "Terminating");
    }

    #[test]
    fn pod_rows_have_real_columns_and_metadata() {
        let registry = Registry::built_in();
        let pods = registry.find("", "v1", "pods").expect("pods");
        let pod = json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
                {"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1}]},
        });
        let table = of(pods, &[pod], 7, Include::Metadata);
        let row = &table["rows"][0];
        let cells = row["cells"].as_array().expect("cells");
        assert_eq!(cells[0..4], [json!("web"), json!("1/2"), json!("Running"), json!("3")]);
        assert_eq!(cells[5..7], [json!("10.0.0.5"), json!("n1")]);
        assert_eq!(row["object"]["metadata"]["labels"]["app"], "web");
        assert_eq!(table["columnDefinitions"][5]["priority"], 1);
        assert_eq!(table["metadata"]["resourceVersion"], "7");
    }
}
