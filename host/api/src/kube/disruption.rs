//! PodDisruptionBudget, as Kubernetes' disruption controller and eviction
//! subresource keep it: a budget's `status` counted from the pods its
//! selector matches (healthy: condition `Ready=True`), and an eviction
//! allowed only while `disruptionsAllowed` is above zero, which it
//! decrements with the store's optimistic concurrency, so that two
//! evictions cannot both take the last disruption.

use std::collections::BTreeMap;

use serde_json::{Value, json};

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
    let conditions = pod.pointer("/status/conditions").and_then(Value::as_array).into_iter().flatten();
    let ready = conditions
        .into_iter()
        .any(|c| c.get("type") == Some(&json!("Ready")) && c.get("status") == Some(&json!("True")));
    ready && pod.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null)
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

/// The status of `budget` over the pods of its namespace at time `now`
/// (seconds since the epoch): expected pods are the pods it covers.
pub fn status_of(budget: &Value, pods: &[Value], now: i64) -> Value {
    let covered: Vec<&Value> = pods.iter().filter(|pod| covers(budget, pod)).collect();
    let expected = i64::try_from(covered.len()).unwrap_or(i64::MAX);
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
    let spec = budget.get("spec").cloned().unwrap_or(Value::Null);
    let desired = match (
        spec.get("minAvailable").filter(|v| !v.is_null()),
        spec.get("maxUnavailable").filter(|v| !v.is_null()),
    ) {
        (Some(min), _) => scaled(min, expected),
        (None, Some(max)) => (expected - scaled(max, expected)).max(0),
        (None, None) => expected,
    };
    let allowed = (current - desired).max(0);
    let generation = budget.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
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

/// The `DisruptionAllowed` condition, its transition time kept while its
/// status stays.
fn condition(budget: &Value, allowed: i64, generation: i64) -> Value {
    let (state, reason) = if allowed > 0 { ("True", "SufficientPods") } else { ("False", "InsufficientPods") };
    let previous = budget
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type") == Some(&json!("DisruptionAllowed")) && c.get("status") == Some(&json!(state)));
    let since =
        previous.and_then(|c| c.get("lastTransitionTime").cloned()).unwrap_or_else(|| json!(super::objects::now()));
    json!({"type": "DisruptionAllowed", "status": state, "reason": reason, "message": "",
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
pub async fn recount(objects: &ObjectStore, registry: &Registry, namespace: &str) -> Result<(), ApiError> {
    let budgets = registry.find("policy", "v1", "poddisruptionbudgets").expect("budgets are built in");
    let pods = registry.find("", "v1", "pods").expect("pods are built in");
    objects.read_barrier().await?;
    let held = objects.list_at(budgets, Some(namespace), 0)?.items;
    if held.is_empty() {
        return Ok(());
    }
    let pods = objects.list_at(pods, Some(namespace), 0)?.items;
    let now = k8s_openapi::chrono::Utc::now().timestamp();
    for budget in held {
        let status = status_of(&budget, &pods, now);
        if budget.get("status") == Some(&status) {
            continue;
        }
        let name = budget.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut updated = budget;
        updated["status"] = status;
        match objects.update(budgets, Some(namespace), &name, updated, &WriteOptions::default()).await {
            Ok(_) => {}
            Err(error) if error.reason == "Conflict" || error.code == 404 => {}
            Err(error) => return Err(error),
        }
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

/// Lets the eviction of `pod` take one disruption from the budget that
/// covers it: none covers it, or its budget allows one and is updated
/// (conditional on being unchanged since read) to allow one fewer and to
/// hold the pod in `disruptedPods`. Finished pods need no budget.
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
) -> Result<(), ApiError> {
    if matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")) {
        return Ok(());
    }
    let budgets = registry.find("policy", "v1", "poddisruptionbudgets").expect("budgets are built in");
    let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    for _ in 0..EVICTION_ATTEMPTS {
        objects.read_barrier().await?;
        let covering: Vec<Value> =
            objects.list_at(budgets, Some(namespace), 0)?.items.into_iter().filter(|b| covers(b, pod)).collect();
        let budget = match covering.as_slice() {
            [] => return Ok(()),
            [one] => one.clone(),
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
        };
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
            return Ok(());
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
            Ok(_) => return Ok(()),
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
        json!({"metadata": {"name": name, "labels": {"app": "web"}},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn budgets_count_healthy_pods_they_cover() {
        let budget = json!({"metadata": {"generation": 1},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}});
        let mut pods = vec![pod("a", true), pod("b", true), pod("c", false)];
        pods.push(json!({"metadata": {"name": "other", "labels": {"app": "db"}}}));
        let status = status_of(&budget, &pods, 0);
        assert_eq!((status["expectedPods"].as_i64(), status["currentHealthy"].as_i64()), (Some(3), Some(2)));
        assert_eq!(status["disruptionsAllowed"], 0);
        assert_eq!(status["conditions"][0]["reason"], "InsufficientPods");
        pods[2] = pod("c", true);
        assert_eq!(status_of(&budget, &pods, 0)["disruptionsAllowed"], 1);
        let percent = json!({"spec": {"maxUnavailable": "50%", "selector": {}}});
        assert_eq!(status_of(&percent, &pods, 0)["desiredHealthy"], 2, "4 pods, 2 may go");
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
