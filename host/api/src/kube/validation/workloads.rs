//! Autoscalers, replication controllers, pod templates, controller
//! revisions and priority classes: kube-apiserver's rules.

use serde_json::Value;

use super::super::disruption::selects;
use super::super::status::Cause;
use super::{NEGATIVE_MESSAGE, apps, forbidden, invalid, label_selector, pods, required, text, unsupported};

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
    if let Some(spec) = object.pointer("/spec/template/spec").filter(|s| !s.is_null()) {
        pods::pod_spec("spec.template.spec", spec, &mut causes);
        let policy = text(spec, "/restartPolicy");
        if !policy.is_empty() && policy != "Always" {
            causes.push(unsupported("spec.template.spec.restartPolicy", policy, &["Always"]));
        }
    }
    causes
}

/// A PodTemplate: a pod spec with containers.
pub fn pod_template(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(spec) = object.pointer("/template/spec").filter(|s| !s.is_null()) {
        pods::pod_spec("template.spec", spec, &mut causes);
    }
    causes
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

/// A Job: counts, completion mode, selector and template.
pub fn job(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    job_spec("spec", object.get("spec").unwrap_or(&Value::Null), &mut causes);
    causes
}

/// The completion modes of a Job.
const COMPLETION_MODES: [&str; 2] = ["NonIndexed", "Indexed"];

/// The concurrency policies of a CronJob.
const CONCURRENCY_POLICIES: [&str; 3] = ["Allow", "Forbid", "Replace"];

/// The longest name of a CronJob (its Jobs' names add 11 characters).
const CRON_JOB_NAME_MAX: usize = 52;

/// Checks the Job spec `spec` at `path`.
fn job_spec(path: &str, spec: &Value, causes: &mut Vec<Cause>) {
    for field in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"] {
        if let Some(value) = spec.get(field).and_then(Value::as_i64)
            && value < 0
        {
            causes.push(invalid(format!("{path}.{field}"), &value.to_string(), NEGATIVE_MESSAGE));
        }
    }
    match text(spec, "/completionMode") {
        "Indexed" if spec.get("completions").is_none_or(Value::is_null) => {
            causes.push(required(format!("{path}.completions"), "when completion mode is Indexed"));
        }
        "" => {}
        mode if !COMPLETION_MODES.contains(&mode) => {
            causes.push(unsupported(format!("{path}.completionMode"), mode, &COMPLETION_MODES));
        }
        _ => {}
    }
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    match spec.get("selector").filter(|s| !s.is_null()) {
        None if manual => causes.push(required(format!("{path}.selector"), "")),
        None => {}
        Some(selector) => {
            let before = causes.len();
            label_selector(&format!("{path}.selector"), selector, causes);
            let labels = spec.pointer("/template/metadata/labels").and_then(Value::as_object);
            if causes.len() == before && !selects(selector, labels) {
                causes.push(invalid(
                    format!("{path}.template.metadata.labels"),
                    &apps::go_labels(labels),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    let template = format!("{path}.template.spec");
    let pod = spec.pointer("/template/spec").unwrap_or(&Value::Null);
    let mut pod_causes = Vec::new();
    pods::pod_spec(&template, pod, &mut pod_causes);
    let policy_field = format!("{template}.restartPolicy");
    causes.extend(pod_causes.into_iter().filter(|cause| cause.field != policy_field));
    causes.extend(restart_policy(&template, Some(pod)));
}

/// A CronJob: its schedule, time zone, policies, history limits and job
/// template.
pub fn cron_job(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = text(object, "/metadata/name");
    if name.len() > CRON_JOB_NAME_MAX {
        causes.push(invalid(
            "metadata.name",
            &format!("{name:?}"),
            &format!("must be no more than {CRON_JOB_NAME_MAX} characters"),
        ));
    }
    let spec = object.get("spec").unwrap_or(&Value::Null);
    match spec.get("schedule").and_then(Value::as_str).unwrap_or_default() {
        "" => causes.push(required("spec.schedule", "")),
        schedule => causes.extend(self::schedule(schedule)),
    }
    if let Some(zone) = spec.get("timeZone").filter(|z| !z.is_null()) {
        causes.extend(time_zone(zone.as_str().unwrap_or_default()));
    }
    match text(spec, "/concurrencyPolicy") {
        "" => causes.push(required("spec.concurrencyPolicy", "")),
        policy if !CONCURRENCY_POLICIES.contains(&policy) => {
            causes.push(unsupported("spec.concurrencyPolicy", policy, &CONCURRENCY_POLICIES));
        }
        _ => {}
    }
    for field in ["startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        if let Some(value) = spec.get(field).and_then(Value::as_i64)
            && value < 0
        {
            causes.push(invalid(format!("spec.{field}"), &value.to_string(), NEGATIVE_MESSAGE));
        }
    }
    job_spec("spec.jobTemplate.spec", spec.pointer("/jobTemplate/spec").unwrap_or(&Value::Null), &mut causes);
    causes
}

/// The causes of refusing a CronJob's `schedule`: a standard cron
/// expression, without a time zone of its own.
fn schedule(schedule: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let shown = format!("{schedule:?}");
    let bare = if schedule.starts_with("TZ=") || schedule.starts_with("CRON_TZ=") {
        schedule.split_once(' ').map_or("", |(_, rest)| rest.trim())
    } else {
        schedule
    };
    if let Err(error) = cron_schedule::Schedule::parse(bare) {
        causes.push(invalid("spec.schedule", &shown, &error.to_string()));
    }
    if schedule.contains("TZ") {
        causes.push(invalid(
            "spec.schedule",
            &shown,
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    }
    causes
}

/// Where the system's time zone database lies.
const ZONE_INFO: &str = "/usr/share/zoneinfo";

/// The causes of refusing a CronJob's `timeZone`: a name of the IANA time
/// zone database this node holds (`UTC` always), never `Local`.
fn time_zone(zone: &str) -> Vec<Cause> {
    let shown = format!("{zone:?}");
    if zone.is_empty() {
        return vec![invalid("spec.timeZone", &shown, "timeZone must be nil or non-empty string")];
    }
    let well_formed = zone.split('/').all(|part| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && !part.starts_with('-')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+'))
    });
    if !well_formed {
        return vec![invalid("spec.timeZone", &shown, &format!("unknown time zone {zone}"))];
    }
    if zone.eq_ignore_ascii_case("Local") {
        return vec![invalid(
            "spec.timeZone",
            &shown,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )];
    }
    let known = matches!(zone, "UTC" | "Etc/UTC") || std::path::Path::new(ZONE_INFO).join(zone).is_file();
    if known { Vec::new() } else { vec![invalid("spec.timeZone", &shown, &format!("unknown time zone {zone}"))] }
}

fn restart_policy(path: &str, spec: Option<&Value>) -> Vec<Cause> {
    let policy = spec.map_or("", |spec| text(spec, "/restartPolicy"));
    match policy {
        "OnFailure" | "Never" => Vec::new(),
        "" => vec![required(format!("{path}.restartPolicy"), "valid values: \"OnFailure\", \"Never\"")],
        other => vec![unsupported(format!("{path}.restartPolicy"), other, &["OnFailure", "Never"])],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(causes: Vec<Cause>) -> Vec<String> {
        causes.into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    fn pod(policy: &str) -> Value {
        json!({"restartPolicy": policy, "dnsPolicy": "ClusterFirst",
            "containers": [{"name": "run", "image": "busybox", "imagePullPolicy": "Always"}]})
    }

    fn cron(schedule: &str, zone: Option<&str>) -> Vec<String> {
        let mut object = json!({"metadata": {"name": "c"}, "spec": {"schedule": schedule,
            "concurrencyPolicy": "Allow", "jobTemplate": {"spec": {"template": {"spec": pod("Never")}}}}});
        if let Some(zone) = zone {
            object["spec"]["timeZone"] = json!(zone);
        }
        messages(cron_job(&object))
    }

    #[test]
    fn jobs_refuse_negative_counts_and_restarting_pods() {
        let job = json!({"spec": {"parallelism": -1, "backoffLimit": -2, "activeDeadlineSeconds": -3,
            "completionMode": "Indexed", "template": {"spec": pod("Always")}}});
        assert_eq!(
            messages(super::job(&job)),
            [
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
                "spec.activeDeadlineSeconds: Invalid value: -3: must be greater than or equal to 0",
                "spec.completions: Required value: when completion mode is Indexed",
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \
                 \"Never\"",
            ]
        );
        let missing = json!({"spec": {"template": {"spec": {"dnsPolicy": "ClusterFirst", "containers": []}}}});
        assert_eq!(
            messages(super::job(&missing)),
            [
                "spec.template.spec.containers: Required value",
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            ]
        );
    }

    #[test]
    fn job_selectors_must_select_the_template_and_are_required_when_manual() {
        let manual = json!({"spec": {"manualSelector": true, "template": {"spec": pod("Never")}}});
        assert_eq!(messages(super::job(&manual)), ["spec.selector: Required value"]);
        let mismatched = json!({"spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "c"}}, "spec": pod("Never")}}});
        assert_eq!(
            messages(super::job(&mismatched)),
            ["spec.template.metadata.labels: Invalid value: map[string]string{\"a\":\"c\"}: `selector` does not \
              match template `labels`"]
        );
    }

    #[test]
    fn cron_jobs_need_a_standard_schedule_without_a_zone_of_its_own() {
        assert!(cron("*/5 * * * *", None).is_empty());
        assert!(cron("@daily", Some("UTC")).is_empty());
        assert!(cron("@every 1h30m", None).is_empty());
        assert_eq!(
            cron("@every 1x", None),
            ["spec.schedule: Invalid value: \"@every 1x\": failed to parse duration @every 1x: time: unknown unit \
              \"x\" in duration \"1x\""]
        );
        assert_eq!(
            cron("bad", None),
            ["spec.schedule: Invalid value: \"bad\": expected exactly 5 fields, found 1: [bad]"]
        );
        assert_eq!(
            cron("TZ=UTC 0 * * * *", None),
            ["spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use \
              timeZone field instead"]
        );
        assert_eq!(cron("", None), ["spec.schedule: Required value"]);
        assert_eq!(
            cron("0 * * * *", Some("Local")),
            ["spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in \
              https://www.iana.org/time-zones"]
        );
        assert_eq!(
            cron("0 * * * *", Some("Mars/Olympus_Mons")),
            ["spec.timeZone: Invalid value: \"Mars/Olympus_Mons\": unknown time zone Mars/Olympus_Mons"]
        );
        assert_eq!(
            cron("0 * * * *", Some("../etc")),
            ["spec.timeZone: Invalid value: \"../etc\": unknown time zone ../etc"]
        );
    }

    #[test]
    fn cron_jobs_check_policies_and_name_length() {
        let object = json!({"metadata": {"name": "n".repeat(53)}, "spec": {"schedule": "0 0 * * *",
            "concurrencyPolicy": "Sometimes", "failedJobsHistoryLimit": -1,
            "jobTemplate": {"spec": {"template": {"spec": pod("OnFailure")}}}}});
        assert_eq!(
            messages(cron_job(&object)),
            [
                format!("metadata.name: Invalid value: \"{}\": must be no more than 52 characters", "n".repeat(53)),
                "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \
                 \"Replace\""
                    .to_owned(),
                "spec.failedJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0".to_owned(),
            ]
        );
    }
}
