//! PodDisruptionBudget, as Kubernetes' disruption controller and eviction
//! subresource keep it: a budget's `status` counted from the pods its
//! selector matches (healthy: condition `Ready=True`), and an eviction
//! allowed only while `disruptionsAllowed` is above zero, which it
//! decrements with the store's optimistic concurrency, so that two
//! evictions cannot both take the last disruption.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::client::{ApiClient, Refused};
use super::disruption_scale::Controllers;
use super::objects::{ObjectStore, WriteOptions};
use super::resources::Registry;
use super::status::{ApiError, Cause};

/// Times an eviction re-reads its budget when the budget changed under
/// it.
const EVICTION_ATTEMPTS: usize = 5;

/// Seconds an eviction's entry in `disruptedPods` holds the pod out of
/// the healthy count when the pod is not deleted (as Kubernetes' two
/// minutes).
const DISRUPTED_POD_SECONDS: i64 = 120;

/// Kubernetes' message for an eviction a budget refuses.
pub const VIOLATION_MESSAGE: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Whether a `LabelSelector` selects `labels` (a selector without terms
/// selects everything; an unknown operator selects nothing).
pub fn selects(selector: &Value, labels: Option<&serde_json::Map<String, Value>>) -> bool {
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    let wanted = selector.get("matchLabels").and_then(Value::as_object).into_iter().flatten();
    let labels_hold = wanted.into_iter().all(|(key, value)| label(key) == value.as_str());
    let expressions = selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten();
    labels_hold
        && expressions.into_iter().all(|expression| {
            let key = expression.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<&str> = expression
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match expression.get("operator").and_then(Value::as_str) {
                Some("In") => label(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => label(key).is_some(),
                Some("DoesNotExist") => label(key).is_none(),
                _ => false,
            }
        })
}

/// Whether budget `budget` covers `pod` (a budget without a selector
/// covers nothing).
fn covers(budget: &Value, pod: &Value) -> bool {
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    budget.pointer("/spec/selector").filter(|s| !s.is_null()).is_some_and(|selector| selects(selector, labels))
}

/// Whether a pod counts as healthy: Ready and not being deleted.
fn healthy(pod: &Value) -> bool {
    ready(pod) && pod.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null)
}

/// An int-or-percent of `total`, percentages rounded up.
fn scaled(value: &Value, total: i64) -> i64 {
    match value {
        Value::String(text) => {
            let percent: i64 = text.trim_end_matches('%').parse().unwrap_or(0);
            (percent * total + 99) / 100
        }
        other => other.as_i64().unwrap_or(0),
    }
}

/// The expected pod count and the desired healthy count of `budget` over
/// the pods it covers, as Kubernetes' disruption controller counts them:
/// an integer `minAvailable` expects the covered pods; a percentage
/// `minAvailable` and any `maxUnavailable` expect the scale of the pods'
/// controllers.
///
/// # Errors
/// Kubernetes' message when a covered pod's controller is not found.
fn expected_and_desired(budget: &Value, covered: &[&Value], controllers: &Controllers) -> Result<(i64, i64), String> {
    let spec = budget.get("spec").cloned().unwrap_or(Value::Null);
    let pods = i64::try_from(covered.len()).unwrap_or(i64::MAX);
    match (spec.get("minAvailable").filter(|v| !v.is_null()), spec.get("maxUnavailable").filter(|v| !v.is_null())) {
        (_, Some(max)) => {
            let expected = controllers.expected(covered.iter().copied())?;
            Ok((expected, (expected - scaled(max, expected)).max(0)))
        }
        (Some(min @ Value::String(_)), None) => {
            let expected = controllers.expected(covered.iter().copied())?;
            Ok((expected, scaled(min, expected)))
        }
        (Some(min), None) => Ok((pods, scaled(min, pods))),
        (None, None) => Ok((pods, pods)),
    }
}

/// The status of `budget` over the pods of its namespace and their
/// `controllers` at time `now` (seconds since the epoch). When a covered
/// pod's controller is missing, the status Kubernetes' fail-safe writes:
/// the previous one with no disruption allowed and a `SyncFailed`
/// condition.
pub fn status_of(budget: &Value, pods: &[Value], controllers: &Controllers, now: i64) -> Value {
    let covered: Vec<&Value> = pods.iter().filter(|pod| covers(budget, pod)).collect();
    let generation = budget.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
    let (expected, desired) = match expected_and_desired(budget, &covered, controllers) {
        Ok(counts) => counts,
        Err(message) => return failed_status(budget, &message),
    };
    let disrupted: BTreeMap<String, Value> = budget
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(name, when)| {
            let recent = when.as_str().and_then(seconds_of).is_some_and(|t| now - t < DISRUPTED_POD_SECONDS);
            recent && covered.iter().any(|pod| pod.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
        })
        .map(|(name, when)| (name.clone(), when.clone()))
        .collect();
    let current = covered
        .iter()
        .filter(|pod| healthy(pod))
        .filter(|pod| {
            !disrupted.contains_key(pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default())
        })
        .count();
    let current = i64::try_from(current).unwrap_or(i64::MAX);
    let allowed = (current - desired).max(0);
    let mut status = json!({
        "observedGeneration": generation,
        "expectedPods": expected,
        "currentHealthy": current,
        "desiredHealthy": desired,
        "disruptionsAllowed": allowed,
        "conditions": [condition(budget, allowed, generation)],
    });
    if !disrupted.is_empty() {
        status["disruptedPods"] = json!(disrupted);
    }
    status
}

/// Kubernetes' fail-safe status of a budget it could not count: the
/// previous status (its `observedGeneration` kept) with no disruption
/// allowed and `DisruptionAllowed=False` for `SyncFailed`.
fn failed_status(budget: &Value, message: &str) -> Value {
    let mut status = budget.get("status").filter(|s| s.is_object()).cloned().unwrap_or_else(|| json!({}));
    let observed = status.get("observedGeneration").and_then(Value::as_i64).unwrap_or(0);
    status["disruptionsAllowed"] = json!(0);
    for field in ["expectedPods", "currentHealthy", "desiredHealthy"] {
        if status.get(field).is_none() {
            status[field] = json!(0);
        }
    }
    status["conditions"] = json!([condition_with(budget, ("False", "SyncFailed", message), observed)]);
    status
}

/// The `DisruptionAllowed` condition, its transition time kept while its
/// status stays.
fn condition(budget: &Value, allowed: i64, generation: i64) -> Value {
    let state = if allowed > 0 { ("True", "SufficientPods", "") } else { ("False", "InsufficientPods", "") };
    condition_with(budget, state, generation)
}

/// The `DisruptionAllowed` condition with `(status, reason, message)`, its
/// transition time kept while its status stays.
fn condition_with(budget: &Value, (state, reason, message): (&str, &str, &str), generation: i64) -> Value {
    let previous = budget
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type") == Some(&json!("DisruptionAllowed")) && c.get("status") == Some(&json!(state)));
    let since =
        previous.and_then(|c| c.get("lastTransitionTime").cloned()).unwrap_or_else(|| json!(super::objects::now()));
    json!({"type": "DisruptionAllowed", "status": state, "reason": reason, "message": message,
        "observedGeneration": generation, "lastTransitionTime": since})
}

/// Seconds since the epoch of an RFC 3339 time.
fn seconds_of(text: &str) -> Option<i64> {
    k8s_openapi::chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp())
}

/// Recounts the status of every budget in `namespace`, writing what
/// changed, each write conditional on the budget being unchanged since it
/// was read (an eviction made meanwhile wins).
///
/// # Errors
/// Store failures.
pub async fn recount(
    objects: &ObjectStore,
    registry: &Registry,
    client: &ApiClient,
    namespace: &str,
) -> Result<(), Refused> {
    let budgets = registry.find("policy", "v1", "poddisruptionbudgets").expect("budgets are built in");
    let pods = registry.find("", "v1", "pods").expect("pods are built in");
    objects.read_barrier().await?;
    let held = objects.list_at(budgets, Some(namespace), 0)?.items;
    if held.is_empty() {
        return Ok(());
    }
    let pods = objects.list_at(pods, Some(namespace), 0)?.items;
    let controllers = Controllers::read(objects, registry, namespace)?;
    let now = k8s_openapi::chrono::Utc::now().timestamp();
    for budget in held {
        let status = status_of(&budget, &pods, &controllers, now);
        client.update_status_as_read(budgets, Some(namespace), budget, status).await?;
    }
    Ok(())
}

/// The 429 of an eviction a budget refuses, with the `DisruptionBudget`
/// cause Kubernetes gives.
fn too_many(cause: String) -> ApiError {
    let mut error = ApiError::too_many_requests(VIOLATION_MESSAGE);
    error.details = Some(Box::new((String::new(), String::new(), String::new())));
    error.causes = vec![Cause { reason: "DisruptionBudget".into(), message: cause, field: String::new() }];
    error
}

/// What an eviction a budget lets through asks of the pod's delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clearance {
    /// The pod may be deleted as it is.
    Granted,
    /// The pod goes without taking a disruption (finished, pending, or not
    /// Ready): it may be deleted only at the resource version the eviction
    /// read, so that a pod that changed meanwhile stays.
    IfUnchanged,
}

/// Whether a pod is Ready, as Kubernetes' `IsPodReady`.
fn ready(pod: &Value) -> bool {
    let conditions = pod.pointer("/status/conditions").and_then(Value::as_array).into_iter().flatten();
    conditions.into_iter().any(|c| c.get("type") == Some(&json!("Ready")) && c.get("status") == Some(&json!("True")))
}

/// Whether `budget` lets a pod that is not Ready go without a disruption:
/// its `unhealthyPodEvictionPolicy` is `AlwaysAllow`, or (the default
/// `IfHealthyBudget`) it has the healthy pods it wants.
fn lets_unready_pods_go(budget: &Value) -> bool {
    if budget.pointer("/spec/unhealthyPodEvictionPolicy").and_then(Value::as_str) == Some("AlwaysAllow") {
        return true;
    }
    let number = |field: &str| budget.pointer(&format!("/status/{field}")).and_then(Value::as_i64).unwrap_or(0);
    number("currentHealthy") >= number("desiredHealthy") && number("desiredHealthy") > 0
}

/// Lets the eviction of `pod` take one disruption from the budget that
/// covers it: none covers it, or its budget allows one and is updated
/// (conditional on being unchanged since read) to allow one fewer and to
/// hold the pod in `disruptedPods`. As Kubernetes' `canIgnorePDB`, pods
/// finished or pending need no budget ([`Clearance::IfUnchanged`]), nor
/// pods being deleted; a pod that is not Ready goes without a disruption
/// when its budget's `unhealthyPodEvictionPolicy` lets it
/// ([`Clearance::IfUnchanged`]).
///
/// # Errors
/// 429 when the budget allows no disruption or its status is behind its
/// spec; 500 when several budgets cover the pod; store failures.
pub async fn take_disruption(
    objects: &ObjectStore,
    registry: &Registry,
    namespace: &str,
    pod: &Value,
    dry_run: bool,
) -> Result<Clearance, ApiError> {
    if matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed" | "Pending")) {
        return Ok(Clearance::IfUnchanged);
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
        return Ok(Clearance::Granted);
    }
    let budgets = registry.find("policy", "v1", "poddisruptionbudgets").expect("budgets are built in");
    let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    for _ in 0..EVICTION_ATTEMPTS {
        objects.read_barrier().await?;
        let covering: Vec<Value> =
            objects.list_at(budgets, Some(namespace), 0)?.items.into_iter().filter(|b| covers(b, pod)).collect();
        let budget = match covering.as_slice() {
            [] => return Ok(Clearance::Granted),
            [one] => one.clone(),
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
        };
        if !ready(pod) && lets_unready_pods_go(&budget) {
            return Ok(Clearance::IfUnchanged);
        }
        let name = budget.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let number = |field: &str| budget.pointer(&format!("/status/{field}")).and_then(Value::as_i64).unwrap_or(0);
        let generation = budget.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        if number("observedGeneration") < generation || budget.get("status").is_none_or(Value::is_null) {
            return Err(too_many(format!("The disruption budget {name} is still being processed by the server.")));
        }
        let allowed = number("disruptionsAllowed");
        if allowed <= 0 {
            return Err(too_many(format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                number("desiredHealthy"),
                number("currentHealthy")
            )));
        }
        if dry_run {
            return Ok(Clearance::Granted);
        }
        let mut updated = budget.clone();
        updated["status"]["disruptionsAllowed"] = json!(allowed - 1);
        if allowed == 1 {
            updated["status"]["conditions"] = json!([condition(&budget, 0, number("observedGeneration"))]);
        }
        if !updated["status"].get("disruptedPods").is_some_and(Value::is_object) {
            updated["status"]["disruptedPods"] = json!({});
        }
        updated["status"]["disruptedPods"][pod_name] = json!(super::objects::now());
        match objects.update(budgets, Some(namespace), &name, updated, &WriteOptions::default()).await {
            Ok(_) => return Ok(Clearance::Granted),
            Err(error) if error.reason == "Conflict" => continue,
            Err(error) => return Err(error),
        }
    }
    Err(ApiError::conflict("policy", "poddisruptionbudgets", pod_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "labels": {"app": "web"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "uid": "rs", "controller": true}]},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn budgets_count_healthy_pods_they_cover() {
        let budget = json!({"metadata": {"generation": 1},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}});
        let mut pods = vec![pod("a", true), pod("b", true), pod("c", false)];
        pods.push(json!({"metadata": {"name": "other", "labels": {"app": "db"}}}));
        let controllers =
            Controllers::new([json!({"kind": "ReplicaSet", "metadata": {"uid": "rs"}, "spec": {"replicas": 6}})]);
        let status = status_of(&budget, &pods, &controllers, 0);
        assert_eq!((status["expectedPods"].as_i64(), status["currentHealthy"].as_i64()), (Some(3), Some(2)));
        assert_eq!(status["disruptionsAllowed"], 0);
        assert_eq!(status["conditions"][0]["reason"], "InsufficientPods");
        pods[2] = pod("c", true);
        assert_eq!(status_of(&budget, &pods, &controllers, 0)["disruptionsAllowed"], 1);
        let percent = json!({"spec": {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}}});
        let status = status_of(&percent, &pods, &controllers, 0);
        assert_eq!((status["expectedPods"].as_i64(), status["desiredHealthy"].as_i64()), (Some(6), Some(3)));
    }

    #[test]
    fn percentages_and_max_unavailable_count_the_controllers_scale() {
        let mut pods: Vec<Value> = (0..4).map(|i| pod(&format!("p{i}"), true)).collect();
        let controllers =
            Controllers::new([json!({"kind": "ReplicaSet", "metadata": {"uid": "rs"}, "spec": {"replicas": 4}})]);
        let one = json!({"metadata": {"generation": 2}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
        let status = status_of(&one, &pods, &controllers, 0);
        assert_eq!((status["expectedPods"].as_i64(), status["disruptionsAllowed"].as_i64()), (Some(4), Some(1)));
        let half = json!({"spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}});
        assert_eq!(status_of(&half, &pods, &controllers, 0)["disruptionsAllowed"], 2);
        pods[0]["metadata"]["ownerReferences"][0]["uid"] = json!("gone");
        let failed = status_of(&one, &pods, &controllers, 0);
        assert_eq!(failed["disruptionsAllowed"], 0);
        assert_eq!(failed["conditions"][0]["reason"], "SyncFailed");
        assert_eq!(failed["conditions"][0]["message"], "found no controllers for pod \"p0\"");
        assert!(failed["observedGeneration"].as_i64().unwrap_or(0) < 2, "a failed count observes no generation");
        let integer = json!({"spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}}});
        assert_eq!(status_of(&integer, &pods, &controllers, 0)["disruptionsAllowed"], 1, "an integer counts pods");
    }

    #[test]
    fn unready_pods_go_past_a_budget_that_lets_them() {
        let exhausted = json!({"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"},
            "status": {"currentHealthy": 1, "desiredHealthy": 3}});
        assert!(lets_unready_pods_go(&exhausted));
        let mut default = exhausted.clone();
        default["spec"] = json!({});
        assert!(!lets_unready_pods_go(&default), "IfHealthyBudget keeps them while the budget lacks healthy pods");
        default["status"]["currentHealthy"] = json!(3);
        assert!(lets_unready_pods_go(&default));
        default["spec"]["unhealthyPodEvictionPolicy"] = json!("IfHealthyBudget");
        default["status"]["desiredHealthy"] = json!(0);
        assert!(!lets_unready_pods_go(&default), "a budget wanting no healthy pods counts them");
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let labels = json!({"app": "web", "tier": "a"});
        let labels = labels.as_object();
        assert!(selects(&json!({}), labels));
        assert!(selects(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}),
            labels
        ));
        assert!(!selects(&json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}), labels));
        assert!(!selects(&json!({"matchLabels": {"app": "db"}}), labels));
    }
}
