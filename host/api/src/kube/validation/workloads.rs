//! Autoscalers, replication controllers, pod templates, controller
//! revisions and priority classes: kube-apiserver's rules.

use serde_json::Value;

use super::super::status::Cause;
use super::{NEGATIVE_MESSAGE, forbidden, invalid, required, text, unsupported};

/// Highest value of a PriorityClass a user may create.
const USER_PRIORITY_MAX: i64 = 1_000_000_000;

/// A HorizontalPodAutoscaler at autoscaling/v1 or v2: its target and its
/// replica bounds.
pub fn horizontal_pod_autoscaler(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for field in ["kind", "name"] {
        if text(object, &format!("/spec/scaleTargetRef/{field}")).is_empty() {
            causes.push(required(format!("spec.scaleTargetRef.{field}"), ""));
        }
    }
    let min = object.pointer("/spec/minReplicas").and_then(Value::as_i64);
    let max = object.pointer("/spec/maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    if let Some(min) = min
        && min < 1
    {
        causes.push(invalid("spec.minReplicas", &min.to_string(), "must be greater than or equal to 1"));
    }
    if max < 1 {
        causes.push(invalid("spec.maxReplicas", &max.to_string(), "must be greater than 0"));
    } else if min.is_some_and(|min| max < min) {
        causes.push(invalid("spec.maxReplicas", &max.to_string(), "must be greater than or equal to `minReplicas`"));
    }
    if let Some(target) = object.pointer("/spec/targetCPUUtilizationPercentage").and_then(Value::as_i64)
        && target < 1
    {
        causes.push(invalid("spec.targetCPUUtilizationPercentage", &target.to_string(), "must be greater than 0"));
    }
    let metrics = object.pointer("/spec/metrics").and_then(Value::as_array).into_iter().flatten();
    for (index, metric) in metrics.enumerate() {
        const TYPES: [&str; 5] = ["ContainerResource", "External", "Object", "Pods", "Resource"];
        let kind = text(metric, "/type");
        if kind.is_empty() {
            causes.push(required(format!("spec.metrics[{index}].type"), "must specify a metric source type"));
        } else if !TYPES.contains(&kind) {
            causes.push(unsupported(format!("spec.metrics[{index}].type"), kind, &TYPES));
        }
    }
    causes
}

/// A ReplicationController: a template whose labels its selector matches,
/// and a replica count that is not negative.
pub fn replication_controller(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(replicas) = object.pointer("/spec/replicas").and_then(Value::as_i64)
        && replicas < 0
    {
        causes.push(invalid("spec.replicas", &replicas.to_string(), NEGATIVE_MESSAGE));
    }
    let selector = object.pointer("/spec/selector").and_then(Value::as_object);
    let labels = object.pointer("/spec/template/metadata/labels").and_then(Value::as_object);
    match (selector.filter(|s| !s.is_empty()), object.pointer("/spec/template").filter(|t| !t.is_null())) {
        (None, _) => causes.push(required("spec.selector", "")),
        (_, None) => causes.push(required("spec.template", "")),
        (Some(selector), Some(_)) => {
            let matches = selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
            if !matches {
                let shown = serde_json::to_string(&labels).unwrap_or_default();
                causes.push(invalid(
                    "spec.template.metadata.labels",
                    &shown,
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    containers("spec.template.spec", object.pointer("/spec/template/spec"), &mut causes);
    causes
}

/// A PodTemplate: a pod spec with containers.
pub fn pod_template(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    containers("template.spec", object.pointer("/template/spec"), &mut causes);
    causes
}

/// A pod spec at `path` has at least one container, each named.
fn containers(path: &str, spec: Option<&Value>, causes: &mut Vec<Cause>) {
    let Some(spec) = spec.filter(|s| !s.is_null()) else { return };
    let containers = spec.get("containers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if containers.is_empty() {
        causes.push(required(format!("{path}.containers"), ""));
    }
    for (index, container) in containers.iter().enumerate() {
        if text(container, "/name").is_empty() {
            causes.push(required(format!("{path}.containers[{index}].name"), ""));
        }
        if text(container, "/image").is_empty() {
            causes.push(required(format!("{path}.containers[{index}].image"), ""));
        }
    }
}

/// A ControllerRevision: a revision number that is not negative.
pub fn controller_revision(object: &Value) -> Vec<Cause> {
    match object.get("revision").and_then(Value::as_i64) {
        Some(revision) if revision < 0 => vec![invalid("revision", &revision.to_string(), NEGATIVE_MESSAGE)],
        _ => Vec::new(),
    }
}

/// A PriorityClass: names starting `system-` and values above one billion
/// are the system's (its two classes, at their values, excepted); a known
/// preemption policy.
pub fn priority_class(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = text(object, "/metadata/name");
    let value = object.get("value").and_then(Value::as_i64).unwrap_or(0);
    let system = super::super::SYSTEM_PRIORITY_CLASSES.iter().any(|&(n, v, _)| (n, v) == (name, value));
    if !system && name.starts_with("system-") {
        causes.push(forbidden(
            "metadata.name",
            "priority class names with 'system-' prefix are reserved for system use only",
        ));
    } else if !system && value > USER_PRIORITY_MAX {
        causes.push(forbidden(
            "value",
            &format!("maximum allowed value of a user defined priority is {USER_PRIORITY_MAX}"),
        ));
    }
    let policy = text(object, "/preemptionPolicy");
    if !policy.is_empty() && !["Never", "PreemptLowerPriority"].contains(&policy) {
        causes.push(unsupported("preemptionPolicy", policy, &["Never", "PreemptLowerPriority"]));
    }
    causes
}

/// A Job's pods restart `OnFailure` or `Never`, as Kubernetes requires.
pub fn job(object: &Value) -> Vec<Cause> {
    restart_policy("spec.template.spec", object.pointer("/spec/template/spec"))
}

/// A CronJob's jobs, as [`job`].
pub fn cron_job(object: &Value) -> Vec<Cause> {
    restart_policy("spec.jobTemplate.spec.template.spec", object.pointer("/spec/jobTemplate/spec/template/spec"))
}

fn restart_policy(path: &str, spec: Option<&Value>) -> Vec<Cause> {
    let policy = spec.map_or("", |spec| text(spec, "/restartPolicy"));
    match policy {
        "OnFailure" | "Never" => Vec::new(),
        "" => vec![required(format!("{path}.restartPolicy"), "valid values: \"OnFailure\", \"Never\"")],
        other => vec![unsupported(format!("{path}.restartPolicy"), other, &["OnFailure", "Never"])],
    }
}
