//! Workload kinds: replica sets, stateful sets, daemon sets, controller
//! revisions, jobs, cron jobs and horizontal pod autoscalers.

use serde_json::{Value, json};

use super::super::{Column, human_duration};
use super::cells::{
    AGE, NAME, bool_cell, column, containers, count, int, items, labels, quantity, selector, since, since_or_unknown,
    text, text_or, timestamp, wide,
};
use super::core::replicas;
use super::descriptions as doc;

/// The columns of an `apps`, `batch` or `autoscaling` kind.
pub(super) fn columns(plural: &str) -> Option<Vec<Column>> {
    let columns = match plural {
        "replicasets" => vec![
            NAME,
            column("Desired", "integer", doc::RS_REPLICAS, |o| json!(replicas(o))),
            column("Current", "integer", doc::RS_STATUS_REPLICAS, |o| json!(int(o, "/status/replicas"))),
            column("Ready", "integer", doc::RS_READY_REPLICAS, |o| json!(int(o, "/status/readyReplicas"))),
            AGE,
            CONTAINERS,
            IMAGES,
            wide("Selector", "string", doc::RS_SELECTOR, |o| json!(selector(o.pointer("/spec/selector")))),
        ],
        "statefulsets" => vec![
            NAME,
            column("Ready", "string", "Number of the pod with ready state", |o| {
                json!(format!("{}/{}", int(o, "/status/readyReplicas"), replicas(o)))
            }),
            AGE,
            CONTAINERS,
            IMAGES,
        ],
        "daemonsets" => daemon_sets(),
        "controllerrevisions" => vec![
            NAME,
            column("Controller", "string", "Controller of the object", controller_of),
            column("Revision", "string", doc::CONTROLLER_REVISION_REVISION, |o| json!(int(o, "/revision"))),
            AGE,
        ],
        "jobs" => vec![
            NAME,
            column("Status", "string", "Status of the job.", |o| json!(job_status(o))),
            column("Completions", "string", doc::JOB_SUCCEEDED, |o| json!(job_completions(o))),
            column("Duration", "string", "Time required to complete the job.", |o| json!(job_duration(o))),
            AGE,
            CONTAINERS,
            IMAGES,
            wide("Selector", "string", doc::JOB_SELECTOR, |o| json!(selector(o.pointer("/spec/selector")))),
        ],
        "cronjobs" => cron_jobs(),
        "horizontalpodautoscalers" => vec![
            NAME,
            column("Reference", "string", doc::HPA_SCALE_TARGET_REF, |o| {
                json!(format!("{}/{}", text(o, "/spec/scaleTargetRef/kind"), text(o, "/spec/scaleTargetRef/name")))
            }),
            column("Targets", "string", doc::HPA_METRICS, |o| json!(hpa_targets(o))),
            column("MinPods", "string", doc::HPA_MIN_REPLICAS, |o| match o.pointer("/spec/minReplicas") {
                Some(Value::Number(n)) => json!(n.to_string()),
                _ => json!("<unset>"),
            }),
            column("MaxPods", "string", doc::HPA_MAX_REPLICAS, |o| json!(int(o, "/spec/maxReplicas"))),
            column("Replicas", "string", doc::HPA_CURRENT_REPLICAS, |o| json!(int(o, "/status/currentReplicas"))),
            AGE,
        ],
        _ => return None,
    };
    Some(columns)
}

/// The wide `Containers` column of a kind with a pod template.
const CONTAINERS: Column = wide("Containers", "string", "Names of each container in the template.", |o| {
    json!(containers(o, template_spec(o)).0)
});

/// The wide `Images` column of a kind with a pod template.
const IMAGES: Column = wide("Images", "string", "Images referenced by each container in the template.", |o| {
    json!(containers(o, template_spec(o)).1)
});

/// Where the pod spec of an object's template is.
fn template_spec(object: &Value) -> &'static str {
    if object.pointer("/spec/jobTemplate").is_some() {
        "/spec/jobTemplate/spec/template/spec"
    } else {
        "/spec/template/spec"
    }
}

fn daemon_sets() -> Vec<Column> {
    vec![
        NAME,
        column("Desired", "integer", doc::DS_DESIRED, |o| json!(int(o, "/status/desiredNumberScheduled"))),
        column("Current", "integer", doc::DS_CURRENT, |o| json!(int(o, "/status/currentNumberScheduled"))),
        column("Ready", "integer", doc::DS_READY, |o| json!(int(o, "/status/numberReady"))),
        column("Up-to-date", "integer", doc::DS_UPDATED, |o| json!(int(o, "/status/updatedNumberScheduled"))),
        column("Available", "integer", doc::DS_AVAILABLE, |o| json!(int(o, "/status/numberAvailable"))),
        column("Node Selector", "string", doc::POD_NODE_SELECTOR, |o| {
            json!(labels(o.pointer("/spec/template/spec/nodeSelector")))
        }),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", doc::DS_SELECTOR, |o| json!(selector(o.pointer("/spec/selector")))),
    ]
}

fn cron_jobs() -> Vec<Column> {
    vec![
        NAME,
        column("Schedule", "string", doc::CRONJOB_SCHEDULE, |o| json!(text(o, "/spec/schedule"))),
        column("Timezone", "string", doc::CRONJOB_TIME_ZONE, |o| json!(text_or(o, "/spec/timeZone", "<none>"))),
        column("Suspend", "boolean", doc::CRONJOB_SUSPEND, |o| bool_cell(o, "/spec/suspend")),
        column("Active", "integer", doc::CRONJOB_ACTIVE, |o| json!(count(o, "/status/active"))),
        column("Last Schedule", "string", doc::CRONJOB_LAST_SCHEDULE, |o| {
            json!(match o.pointer("/status/lastScheduleTime") {
                Some(Value::String(_)) => since_or_unknown(o, "/status/lastScheduleTime"),
                _ => "<none>".to_owned(),
            })
        }),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", doc::JOB_SELECTOR, |o| {
            json!(selector(o.pointer("/spec/jobTemplate/spec/selector")))
        }),
    ]
}

/// The owner that controls an object, as `kind.group/name`, or `<none>`.
fn controller_of(object: &Value) -> Value {
    let owner = items(object, "/metadata/ownerReferences").iter().find(|r| r.get("controller") == Some(&json!(true)));
    let Some(owner) = owner else { return json!("<none>") };
    let group = text(owner, "/apiVersion").rsplit_once('/').map_or("", |(group, _)| group);
    let kind = text(owner, "/kind");
    let group_kind = if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") };
    let name = text(owner, "/name");
    json!(if kind.is_empty() { name.to_owned() } else { format!("{}/{name}", group_kind.to_lowercase()) })
}

/// Whether the job has condition `kind` with status `True`.
fn job_condition(job: &Value, kind: &str) -> bool {
    items(job, "/status/conditions")
        .iter()
        .find(|c| text(c, "/type") == kind)
        .is_some_and(|c| text(c, "/status") == "True")
}

/// The job's `STATUS` cell.
fn job_status(job: &Value) -> &'static str {
    if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if job.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
        "Terminating"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

/// The job's `COMPLETIONS` cell: `1/3`, or `0/1 of 4` for a work queue.
fn job_completions(job: &Value) -> String {
    let succeeded = int(job, "/status/succeeded");
    match job.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match int(job, "/spec/parallelism") {
            parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// The job's `DURATION` cell: from start to completion, or to now while it
/// runs; empty before it starts.
fn job_duration(job: &Value) -> String {
    match (timestamp(job, "/status/startTime"), timestamp(job, "/status/completionTime")) {
        (None, _) => String::new(),
        (Some(_), None) => since(job, "/status/startTime").unwrap_or_default(),
        (Some(start), Some(end)) => human_duration((end - start).num_seconds().max(0)),
    }
}

/// The most metrics the `TARGETS` cell shows before `+ N more...`.
const HPA_METRICS_SHOWN_MAX: usize = 2;

/// The autoscaler's `TARGETS` cell, from `spec.metrics` and
/// `status.currentMetrics` (`autoscaling/v2`) or the CPU utilization
/// fields of `autoscaling/v1`.
fn hpa_targets(hpa: &Value) -> String {
    if let Some(target) = hpa.pointer("/spec/targetCPUUtilizationPercentage").and_then(Value::as_i64) {
        let current = hpa.pointer("/status/currentCPUUtilizationPercentage").and_then(Value::as_i64);
        let current = current.map_or_else(|| "<unknown>".to_owned(), |c| format!("{c}%"));
        return format!("cpu: {current}/{target}%");
    }
    let specs = items(hpa, "/spec/metrics");
    if specs.is_empty() {
        return "<none>".to_owned();
    }
    let statuses = items(hpa, "/status/currentMetrics");
    let shown: Vec<String> = specs
        .iter()
        .enumerate()
        .take(HPA_METRICS_SHOWN_MAX)
        .map(|(i, spec)| hpa_metric(spec, statuses.get(i)))
        .collect();
    let joined = shown.join(", ");
    if specs.len() > HPA_METRICS_SHOWN_MAX {
        format!("{joined} + {} more...", specs.len() - HPA_METRICS_SHOWN_MAX)
    } else {
        joined
    }
}

/// One metric of the `TARGETS` cell: `cpu: 40%/80%`, `1k/500 (avg)`.
fn hpa_metric(spec: &Value, status: Option<&Value>) -> String {
    let kind = text(spec, "/type");
    let field = match kind {
        "External" => "external",
        "Pods" => "pods",
        "Object" => "object",
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        _ => return "<unknown type>".to_owned(),
    };
    let source = &spec[field];
    let current = status.map(|s| &s[field]).filter(|c| c.is_object());
    let current_of = |key: &str| current.and_then(|c| c.pointer(&format!("/current/{key}"))).filter(|v| !v.is_null());
    let current_quantity =
        |key: &str| current_of(key).map_or_else(|| "<unknown>".to_owned(), |v| quantity(&json!({ "q": v }), "/q"));
    let target_average = source.pointer("/target/averageValue").filter(|v| !v.is_null());
    match kind {
        "External" | "Object" if target_average.is_some() => {
            format!("{}/{} (avg)", current_quantity("averageValue"), quantity(source, "/target/averageValue"))
        }
        "External" | "Object" => format!("{}/{}", current_quantity("value"), quantity(source, "/target/value")),
        "Pods" => format!("{}/{}", current_quantity("averageValue"), quantity(source, "/target/averageValue")),
        _ => {
            let name = text(source, "/name");
            if target_average.is_some() {
                return format!(
                    "{name}: {}/{}",
                    current_quantity("averageValue"),
                    quantity(source, "/target/averageValue")
                );
            }
            let current = current_of("averageUtilization").and_then(Value::as_i64);
            let current = current.map_or_else(|| "<unknown>".to_owned(), |c| format!("{c}%"));
            let target = source.pointer("/target/averageUtilization").and_then(Value::as_i64);
            let target = target.map_or_else(|| "<auto>".to_owned(), |t| format!("{t}%"));
            format!("{name}: {current}/{target}")
        }
    }
}
