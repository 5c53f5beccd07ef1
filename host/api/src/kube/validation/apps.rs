//! Deployments, ReplicaSets, StatefulSets and DaemonSets (apps/v1):
//! kube-apiserver's rules for their selectors, templates, counts and
//! strategies, and what an update may not change.

use serde_json::{Map, Value};

use super::super::disruption::selects;
use super::super::status::Cause;
use super::{NEGATIVE_MESSAGE, forbidden, int_or_percent, invalid, label_selector, pods, required, text, unsupported};

/// Go's `%#v` of a label map, as Kubernetes shows template labels.
pub fn go_labels(labels: Option<&Map<String, Value>>) -> String {
    let Some(labels) = labels else { return "map[string]string(nil)".to_owned() };
    let mut pairs: Vec<String> =
        labels.iter().map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default())).collect();
    pairs.sort();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

/// Checks `spec.selector` (required, valid, not empty) and that it
/// selects the template's labels; `kind` names the kind in the message of
/// an empty selector, as Kubernetes words it.
pub fn selector_and_template(spec: &Value, kind: &str, causes: &mut Vec<Cause>) {
    let Some(selector) = spec.get("selector").filter(|s| !s.is_null()) else {
        causes.push(required("spec.selector", ""));
        return;
    };
    let before = causes.len();
    label_selector("spec.selector", selector, causes);
    let count = |field: &str| {
        selector.get(field).and_then(Value::as_object).map_or(0, Map::len)
            + selector.get(field).and_then(Value::as_array).map_or(0, Vec::len)
    };
    if count("matchLabels") + count("matchExpressions") == 0 {
        causes.push(invalid("spec.selector", &selector.to_string(), &format!("empty selector is invalid for {kind}")));
        return;
    }
    let labels = spec.pointer("/template/metadata/labels").and_then(Value::as_object);
    if causes.len() == before && !selects(selector, labels) {
        causes.push(invalid(
            "spec.template.metadata.labels",
            &go_labels(labels),
            "`selector` does not match template `labels`",
        ));
    }
}

/// Checks the template of a kind whose pods always restart: a valid pod
/// spec, `restartPolicy: Always`, no `activeDeadlineSeconds`.
fn restarting_template(spec: &Value, kind: &str, causes: &mut Vec<Cause>) {
    let pod = spec.pointer("/template/spec").unwrap_or(&Value::Null);
    pods::pod_spec("spec.template.spec", pod, causes);
    let policy = text(pod, "/restartPolicy");
    if !policy.is_empty() && policy != "Always" {
        causes.push(unsupported("spec.template.spec.restartPolicy", policy, &["Always"]));
    }
    if let Some(deadline) = pod.get("activeDeadlineSeconds").filter(|d| !d.is_null()) {
        causes.push(invalid(
            "spec.template.spec.activeDeadlineSeconds",
            &deadline.to_string(),
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// A count at `pointer` of `spec`, refused when negative.
fn non_negative(spec: &Value, field: &str, causes: &mut Vec<Cause>) {
    if let Some(value) = spec.get(field).and_then(Value::as_i64)
        && value < 0
    {
        causes.push(invalid(format!("spec.{field}"), &value.to_string(), NEGATIVE_MESSAGE));
    }
}

/// The value of an int-or-percent as Kubernetes compares it with 0.
fn int_or_percent_value(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Number(number)) => number.as_i64().unwrap_or(0),
        Some(Value::String(text)) => text.trim_end_matches('%').parse().unwrap_or(0),
        _ => 0,
    }
}

/// Checks a rolling update's `maxUnavailable` and `maxSurge` at `path`:
/// each an int-or-percent, not both 0, and maxUnavailable at most 100%.
fn rolling_update(path: &str, rolling: &Value, causes: &mut Vec<Cause>) {
    let unavailable = rolling.get("maxUnavailable").filter(|v| !v.is_null());
    let surge = rolling.get("maxSurge").filter(|v| !v.is_null());
    if let Some(value) = unavailable {
        int_or_percent(&format!("{path}.maxUnavailable"), value, causes);
    }
    if let Some(value) = surge {
        positive_int_or_percent(&format!("{path}.maxSurge"), value, causes);
    }
    if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
        let shown = unavailable.map_or_else(|| "0".to_owned(), Value::to_string);
        causes.push(invalid(format!("{path}.maxUnavailable"), &shown, "may not be 0 when `maxSurge` is 0"));
    }
}

/// Checks an int-or-percent that may exceed 100% (a surge).
fn positive_int_or_percent(field: &str, value: &Value, causes: &mut Vec<Cause>) {
    let mut found = Vec::new();
    int_or_percent(field, value, &mut found);
    causes.extend(found.into_iter().filter(|c| !c.message.ends_with("must not be greater than 100%")));
}

/// A Deployment: selector and template, counts, strategy and deadlines.
pub fn deployment(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    for field in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        non_negative(spec, field, &mut causes);
    }
    selector_and_template(spec, "deployment", &mut causes);
    restarting_template(spec, "ReplicaSet", &mut causes);
    let strategy = spec.get("strategy").unwrap_or(&Value::Null);
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match text(strategy, "/type") {
        "Recreate" if rolling.is_some() => causes
            .push(forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")),
        "Recreate" => {}
        "RollingUpdate" => match rolling {
            Some(rolling) => rolling_update("spec.strategy.rollingUpdate", rolling, &mut causes),
            None => causes.push(required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil")),
        },
        other => causes.push(unsupported("spec.strategy.type", other, &["Recreate", "RollingUpdate"])),
    }
    if let Some(deadline) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        non_negative(spec, "progressDeadlineSeconds", &mut causes);
        let min_ready = spec.get("minReadySeconds").and_then(Value::as_i64).unwrap_or(0);
        if deadline <= min_ready {
            causes.push(invalid(
                "spec.progressDeadlineSeconds",
                &deadline.to_string(),
                "must be greater than minReadySeconds",
            ));
        }
    }
    causes
}

/// A ReplicaSet: selector and template, and counts.
pub fn replica_set(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    for field in ["replicas", "minReadySeconds"] {
        non_negative(spec, field, &mut causes);
    }
    selector_and_template(spec, "deployment", &mut causes);
    restarting_template(spec, "ReplicaSet", &mut causes);
    causes
}

/// The pod management policies of a StatefulSet.
const POD_MANAGEMENT_POLICIES: [&str; 2] = ["OrderedReady", "Parallel"];

/// The claim retention policies of a StatefulSet.
const RETENTION_POLICIES: [&str; 2] = ["Retain", "Delete"];

/// A StatefulSet: selector and template, counts, pod management and
/// update strategy, claim retention.
pub fn stateful_set(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    for field in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        non_negative(spec, field, &mut causes);
    }
    match text(spec, "/podManagementPolicy") {
        "" => causes.push(required("spec.podManagementPolicy", "")),
        given if !POD_MANAGEMENT_POLICIES.contains(&given) => causes.push(invalid(
            "spec.podManagementPolicy",
            &format!("{given:?}"),
            "must be 'OrderedReady' or 'Parallel'",
        )),
        _ => {}
    }
    let strategy = spec.get("updateStrategy").unwrap_or(&Value::Null);
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match text(strategy, "/type") {
        "" => causes.push(required("spec.updateStrategy", "")),
        "OnDelete" if rolling.is_some() => causes.push(invalid(
            "spec.updateStrategy.rollingUpdate",
            &rolling.map(Value::to_string).unwrap_or_default(),
            "only allowed for updateStrategy 'RollingUpdate'",
        )),
        "OnDelete" => {}
        "RollingUpdate" => {
            if let Some(partition) = rolling.and_then(|r| r.get("partition")).and_then(Value::as_i64)
                && partition < 0
            {
                causes.push(invalid(
                    "spec.updateStrategy.rollingUpdate.partition",
                    &partition.to_string(),
                    NEGATIVE_MESSAGE,
                ));
            }
        }
        other => {
            causes.push(invalid("spec.updateStrategy", &format!("{other:?}"), "must be 'RollingUpdate' or 'OnDelete'"))
        }
    }
    for field in ["whenDeleted", "whenScaled"] {
        let given = text(spec, &format!("/persistentVolumeClaimRetentionPolicy/{field}"));
        if !given.is_empty() && !RETENTION_POLICIES.contains(&given) {
            causes.push(unsupported(
                format!("spec.persistentVolumeClaimRetentionPolicy.{field}"),
                given,
                &RETENTION_POLICIES,
            ));
        }
    }
    selector_and_template(spec, "statefulset", &mut causes);
    restarting_template(spec, "StatefulSet", &mut causes);
    causes
}

/// A DaemonSet: selector and template, counts and update strategy.
pub fn daemon_set(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    for field in ["minReadySeconds", "revisionHistoryLimit"] {
        non_negative(spec, field, &mut causes);
    }
    selector_and_template(spec, "daemonset", &mut causes);
    restarting_template(spec, "DaemonSet", &mut causes);
    let strategy = spec.get("updateStrategy").unwrap_or(&Value::Null);
    match text(strategy, "/type") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let rolling = strategy.get("rollingUpdate").unwrap_or(&Value::Null);
            rolling_update("spec.updateStrategy.rollingUpdate", rolling, &mut causes);
        }
        other => causes.push(unsupported("spec.updateStrategy.type", other, &["OnDelete", "RollingUpdate"])),
    }
    causes
}

/// The fields of a StatefulSet's spec an update may change.
const STATEFUL_SET_MUTABLE: [&str; 6] =
    ["replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy", "minReadySeconds"];

/// What an update of an apps/v1 workload may not change: its selector,
/// and for a StatefulSet (its selector included) every field of its spec
/// but those Kubernetes lets change.
pub fn update(plural: &str, old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let (before, after) = (old.pointer("/spec/selector"), new.pointer("/spec/selector"));
    if plural != "statefulsets" && before != after {
        let shown = after.map(Value::to_string).unwrap_or_else(|| "null".to_owned());
        causes.push(invalid("spec.selector", &shown, "field is immutable"));
    }
    if plural == "statefulsets" {
        let fixed = |object: &Value| -> Map<String, Value> {
            let mut spec = object.get("spec").and_then(Value::as_object).cloned().unwrap_or_default();
            for field in STATEFUL_SET_MUTABLE {
                spec.remove(field);
            }
            spec
        };
        if fixed(old) != fixed(new) {
            causes.push(forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', \
                 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(causes: Vec<Cause>) -> Vec<String> {
        causes.into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    fn template(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}, "spec": {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "containers": [{"name": "web", "image": "nginx", "imagePullPolicy": "Always"}]}})
    }

    fn deployment_with(spec: Value) -> Value {
        let mut object = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": template(json!({"app": "web"}))}});
        for (field, value) in spec.as_object().expect("fields") {
            object["spec"][field] = value.clone();
        }
        object
    }

    #[test]
    fn a_defaulted_deployment_passes() {
        assert!(deployment(&deployment_with(json!({}))).is_empty());
    }

    #[test]
    fn deployments_refuse_negative_replicas_and_mismatched_selectors() {
        assert_eq!(
            messages(deployment(&deployment_with(json!({"replicas": -3})))),
            ["spec.replicas: Invalid value: -3: must be greater than or equal to 0"]
        );
        assert_eq!(
            messages(deployment(&deployment_with(json!({"template": template(json!({"app": "other"}))})))),
            ["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does \
              not match template `labels`"]
        );
        assert_eq!(
            messages(deployment(&deployment_with(json!({"selector": null})))),
            ["spec.selector: Required value"]
        );
        let empty = messages(deployment(&deployment_with(json!({"selector": {}}))));
        assert_eq!(empty, ["spec.selector: Invalid value: {}: empty selector is invalid for deployment"]);
    }

    #[test]
    fn deployment_strategies_follow_kubernetes() {
        let recreate = json!({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}});
        assert_eq!(
            messages(deployment(&deployment_with(recreate))),
            ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
        );
        let zero =
            json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}});
        assert_eq!(
            messages(deployment(&deployment_with(zero))),
            ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"]
        );
        let bad = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "200%", "maxUnavailable": "x"}}});
        let found = messages(deployment(&deployment_with(bad)));
        assert_eq!(found.len(), 1, "a surge may pass 100%: {found:?}");
        assert!(found[0].starts_with("spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"x\""), "{found:?}");
        let late = json!({"minReadySeconds": 700, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"restartPolicy": "Never", "dnsPolicy": "ClusterFirst", "containers": []}}});
        assert_eq!(
            messages(deployment(&deployment_with(late))),
            [
                "spec.template.spec.containers: Required value",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
            ]
        );
    }

    #[test]
    fn stateful_sets_check_policies_and_keep_their_spec() {
        let set = json!({"metadata": {"name": "db"}, "spec": {"replicas": 1, "podManagementPolicy": "Sometimes",
            "updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 0}},
            "selector": {"matchLabels": {"app": "db"}}, "template": template(json!({"app": "db"}))}});
        assert_eq!(
            messages(stateful_set(&set)),
            [
                "spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'",
                "spec.updateStrategy.rollingUpdate: Invalid value: {\"partition\":0}: only allowed for \
                 updateStrategy 'RollingUpdate'",
            ]
        );
        let mut scaled = set.clone();
        scaled["spec"]["replicas"] = json!(5);
        assert!(update("statefulsets", &set, &scaled).is_empty());
        let mut renamed = set.clone();
        renamed["spec"]["serviceName"] = json!("other");
        assert_eq!(
            messages(update("statefulsets", &set, &renamed)),
            ["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', \
              'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]
        );
        let mut reselected = set.clone();
        reselected["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
        assert_eq!(messages(update("statefulsets", &set, &reselected)).len(), 1, "the spec's rule covers the selector");
        assert_eq!(
            messages(update("deployments", &set, &reselected)),
            ["spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"x\"}}: field is immutable"]
        );
    }

    #[test]
    fn daemon_sets_check_their_update_strategy() {
        let set = json!({"spec": {"selector": {"matchLabels": {"app": "d"}}, "template": template(json!({"app": "d"})),
            "updateStrategy": {"type": "Sideways"}}});
        assert_eq!(
            messages(daemon_set(&set)),
            ["spec.updateStrategy.type: Unsupported value: \"Sideways\": supported values: \"OnDelete\", \
              \"RollingUpdate\""]
        );
        let mut zero = set.clone();
        zero["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}});
        assert_eq!(
            messages(daemon_set(&zero)),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"]
        );
    }

    #[test]
    fn replica_sets_refuse_negative_counts() {
        let set = json!({"spec": {"replicas": -1, "minReadySeconds": -2, "selector": {"matchLabels": {"app": "r"}},
            "template": template(json!({"app": "r"}))}});
        assert_eq!(
            messages(replica_set(&set)),
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0",
            ]
        );
    }
}
