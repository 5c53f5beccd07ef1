//! Conversions of built-in kinds served at more than one version or group
//! from the one they are stored at, as kube-apiserver converts them: a
//! HorizontalPodAutoscaler is stored at autoscaling/v2 and served at v1
//! too; an events.k8s.io/v1 Event is a core v1 Event under other names.

use serde_json::{Map, Value, json};

/// The annotations that carry what autoscaling/v1 cannot say, as
/// kube-apiserver names them; their values are the v2 fields as JSON.
const HPA_METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const HPA_BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const HPA_CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const HPA_CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

/// Converts a HorizontalPodAutoscaler to `api_version` (`autoscaling/v1`
/// or `autoscaling/v2`). In v1 the CPU utilization target is
/// `targetCPUUtilizationPercentage`; every other metric, the behavior, the
/// current metrics and the conditions ride in annotations and come back
/// from them, so that a round trip through v1 loses nothing.
pub fn horizontal_pod_autoscaler(object: &mut Value, api_version: &str) {
    let from = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
    if from == api_version || !object.is_object() {
        return;
    }
    match api_version {
        "autoscaling/v1" => hpa_to_v1(object),
        _ => hpa_to_v2(object),
    }
    object["apiVersion"] = json!(api_version);
}

fn hpa_to_v1(object: &mut Value) {
    let mut annotations = Map::new();
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        let mut metrics = take_array(spec, "metrics");
        if let Some(at) = metrics.iter().position(|m| cpu_utilization(m, "target").is_some()) {
            let target = cpu_utilization(&metrics.remove(at), "target");
            spec.insert("targetCPUUtilizationPercentage".into(), json!(target));
        }
        keep_as_annotation(&mut annotations, HPA_METRICS, metrics);
        if let Some(behavior) = spec.remove("behavior") {
            annotations.insert(HPA_BEHAVIOR.into(), json!(behavior.to_string()));
        }
    }
    if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
        let mut current = take_array(status, "currentMetrics");
        if let Some(at) = current.iter().position(|m| cpu_utilization(m, "current").is_some()) {
            let utilization = cpu_utilization(&current.remove(at), "current");
            status.insert("currentCPUUtilizationPercentage".into(), json!(utilization));
        }
        keep_as_annotation(&mut annotations, HPA_CURRENT_METRICS, current);
        let conditions = take_array(status, "conditions");
        keep_as_annotation(&mut annotations, HPA_CONDITIONS, conditions);
    }
    if !annotations.is_empty() {
        let metadata = object_field(object, "metadata");
        let existing = object_field(metadata, "annotations");
        existing.as_object_mut().expect("an object").extend(annotations);
    }
}

fn hpa_to_v2(object: &mut Value) {
    let mut from_annotations = |key: &str| -> Option<Value> {
        let annotations = object.pointer_mut("/metadata/annotations")?.as_object_mut()?;
        let text = annotations.remove(key)?;
        serde_json::from_str(text.as_str()?).ok()
    };
    let (metrics, behavior, current, conditions) = (
        from_annotations(HPA_METRICS),
        from_annotations(HPA_BEHAVIOR),
        from_annotations(HPA_CURRENT_METRICS),
        from_annotations(HPA_CONDITIONS),
    );
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut)
        && metadata.get("annotations").and_then(Value::as_object).is_some_and(Map::is_empty)
    {
        metadata.remove("annotations");
    }
    let spec = object_field(object, "spec").as_object_mut().expect("an object");
    let mut all_metrics = Vec::new();
    if let Some(target) = spec.remove("targetCPUUtilizationPercentage").filter(|t| !t.is_null()) {
        all_metrics.push(json!({"type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}));
    }
    all_metrics.extend(metrics.and_then(|m| m.as_array().cloned()).unwrap_or_default());
    if !all_metrics.is_empty() {
        spec.insert("metrics".into(), Value::Array(all_metrics));
    }
    if let Some(behavior) = behavior {
        spec.insert("behavior".into(), behavior);
    }
    let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) else { return };
    let mut all_current = Vec::new();
    if let Some(utilization) = status.remove("currentCPUUtilizationPercentage").filter(|u| !u.is_null()) {
        all_current.push(json!({"type": "Resource",
            "resource": {"name": "cpu", "current": {"averageUtilization": utilization}}}));
    }
    all_current.extend(current.and_then(|m| m.as_array().cloned()).unwrap_or_default());
    if !all_current.is_empty() {
        status.insert("currentMetrics".into(), Value::Array(all_current));
    }
    if let Some(conditions) = conditions {
        status.insert("conditions".into(), conditions);
    }
}

/// The CPU utilization of a v2 metric (`target` or `current`), if it is one.
fn cpu_utilization(metric: &Value, which: &str) -> Option<i64> {
    let resource = metric.get("resource").filter(|_| metric.get("type").and_then(Value::as_str) == Some("Resource"))?;
    if resource.get("name").and_then(Value::as_str) != Some("cpu") {
        return None;
    }
    let value = resource.get(which)?;
    if which == "target" && value.get("type").and_then(Value::as_str) != Some("Utilization") {
        return None;
    }
    value.get("averageUtilization")?.as_i64()
}

fn take_array(map: &mut Map<String, Value>, field: &str) -> Vec<Value> {
    match map.remove(field) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

fn keep_as_annotation(annotations: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    if !items.is_empty() {
        annotations.insert(key.into(), json!(Value::Array(items).to_string()));
    }
}

/// The object at `field` of `value`, made one if it is missing or not one.
fn object_field<'a>(value: &'a mut Value, field: &str) -> &'a mut Value {
    let slot = &mut value[field];
    if !slot.is_object() {
        *slot = json!({});
    }
    slot
}

/// The names of an Event's fields in core v1 and in events.k8s.io/v1.
const EVENT_FIELDS: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Converts an Event to `api_version` (`v1` or `events.k8s.io/v1`): the
/// same object under the other group's field names.
pub fn event(object: &mut Value, api_version: &str) {
    let Some(fields) = object.as_object_mut() else { return };
    let to_events_group = api_version == "events.k8s.io/v1";
    for (core, events) in EVENT_FIELDS {
        let (from, to) = if to_events_group { (core, events) } else { (events, core) };
        if let Some(value) = fields.remove(from) {
            fields.insert(to.into(), value);
        }
    }
    fields.insert("apiVersion".into(), json!(api_version));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn v2() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 2,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}],
                "conditions": [{"type": "AbleToScale", "status": "True"}],
            },
        })
    }

    #[test]
    fn a_v2_autoscaler_reads_as_v1_as_kubernetes_serves_it() {
        let mut object = v2();
        horizontal_pod_autoscaler(&mut object, "autoscaling/v1");
        assert_eq!(object["apiVersion"], "autoscaling/v1");
        assert_eq!(object["spec"]["targetCPUUtilizationPercentage"], 80);
        assert!(object["spec"].get("metrics").is_none());
        assert_eq!(object["status"]["currentCPUUtilizationPercentage"], 40);
        let annotations = &object["metadata"]["annotations"];
        let metrics: Value = serde_json::from_str(annotations[HPA_METRICS].as_str().expect("text")).expect("json");
        assert_eq!(metrics[0]["resource"]["name"], "memory");
        assert!(annotations[HPA_CONDITIONS].as_str().expect("text").contains("AbleToScale"));
        serde_json::from_value::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>(object)
            .expect("a v1 object");
    }

    #[test]
    fn a_v1_autoscaler_stores_as_v2() {
        let mut object = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                "targetCPUUtilizationPercentage": 50}});
        horizontal_pod_autoscaler(&mut object, "autoscaling/v2");
        assert_eq!(object["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 50);
        assert!(object["spec"].get("targetCPUUtilizationPercentage").is_none());
        assert!(object["metadata"].get("annotations").is_none());
        serde_json::from_value::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(object)
            .expect("a v2 object");
    }

    proptest! {
        /// Goal: a v2 autoscaler survives a round trip through v1. Method:
        /// v2 objects with any CPU target, any other metric and any
        /// window; to v1 and back must give the same object.
        #[test]
        fn a_round_trip_through_v1_loses_nothing(cpu in 1i64..200, memory in 1u32..64, window in 0i64..3600) {
            let mut original = v2();
            original["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = json!(cpu);
            original["spec"]["metrics"][1]["resource"]["target"]["averageValue"] = json!(format!("{memory}Gi"));
            original["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] = json!(window);
            let mut object = original.clone();
            horizontal_pod_autoscaler(&mut object, "autoscaling/v1");
            horizontal_pod_autoscaler(&mut object, "autoscaling/v2");
            prop_assert_eq!(object, original);
        }
    }

    #[test]
    fn an_event_is_the_same_object_in_both_groups() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web"}, "reason": "Started", "message": "started",
            "type": "Normal", "count": 3, "source": {"component": "kubelet"},
            "firstTimestamp": "2026-12-05T00:00:00Z", "lastTimestamp": "2026-12-05T00:01:00Z",
            "reportingComponent": "kubelet", "reportingInstance": "n1"});
        let mut events = core.clone();
        event(&mut events, "events.k8s.io/v1");
        assert_eq!(events["regarding"]["name"], "web");
        assert_eq!(events["note"], "started");
        assert_eq!(events["deprecatedCount"], 3);
        assert_eq!(events["reportingController"], "kubelet");
        serde_json::from_value::<k8s_openapi::api::events::v1::Event>(events.clone()).expect("an events.k8s.io event");
        event(&mut events, "v1");
        assert_eq!(events, core);
    }
}
