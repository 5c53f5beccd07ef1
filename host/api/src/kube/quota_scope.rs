//! ResourceQuota scopes, as Kubernetes' quota evaluators match them: a
//! quota's `spec.scopes` and `spec.scopeSelector.matchExpressions` narrow
//! the objects it counts. Only pods have scopes; a quota with any scope
//! counts no object of another kind.

use serde_json::Value;

use super::resources::ResourceType;

/// Scopes a quota may name at most (`spec.scopes` and the selector's
/// expressions together); what is past it is not read.
const REQUIREMENTS_MAX: usize = 64;

/// One scope requirement: `spec.scopes` entries are `Exists`
/// requirements, the selector's expressions are as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// `BestEffort`, `PriorityClass`, …
    pub scope: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values of `In` and `NotIn`.
    pub values: Vec<String>,
}

/// The scope requirements of `quota`, as Kubernetes gathers them from its
/// spec.
pub fn requirements(quota: &Value) -> Vec<Requirement> {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let scopes = quota.pointer("/spec/scopes").and_then(Value::as_array).into_iter().flatten();
    let listed = scopes.map(|scope| Requirement { scope: text(scope), operator: "Exists".into(), values: Vec::new() });
    let expressions =
        quota.pointer("/spec/scopeSelector/matchExpressions").and_then(Value::as_array).into_iter().flatten();
    let selected = expressions.map(|expression| Requirement {
        scope: expression.get("scopeName").map(text).unwrap_or_default(),
        operator: expression.get("operator").map(text).unwrap_or_default(),
        values: expression.get("values").and_then(Value::as_array).into_iter().flatten().map(text).collect(),
    });
    listed.chain(selected).take(REQUIREMENTS_MAX).collect()
}

/// Whether `quota` counts `object` of kind `t`: a quota without scopes
/// counts every object; one with scopes counts only the pods that match
/// all of them.
pub fn matches(t: &ResourceType, quota: &Value, object: &Value) -> bool {
    let required = requirements(quota);
    if required.is_empty() {
        return true;
    }
    (t.group, t.plural) == ("", "pods") && required.iter().all(|requirement| pod_matches(requirement, object))
}

/// Whether a pod matches one scope requirement.
pub fn pod_matches(requirement: &Requirement, pod: &Value) -> bool {
    match requirement.scope.as_str() {
        "Terminating" => terminating(pod),
        "NotTerminating" => !terminating(pod),
        "BestEffort" => best_effort(pod),
        "NotBestEffort" => !best_effort(pod),
        "PriorityClass" => priority_class_matches(requirement, pod),
        "CrossNamespacePodAffinity" => cross_namespace_affinity(pod),
        _ => false,
    }
}

/// Whether a pod has an active deadline (it will end by itself).
fn terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_i64).is_some_and(|seconds| seconds >= 0)
}

/// Whether a pod is of the `BestEffort` QoS class: no container (init
/// containers included) requests or limits a positive amount of CPU or
/// memory.
fn best_effort(pod: &Value) -> bool {
    let containers = ["containers", "initContainers"]
        .iter()
        .flat_map(|field| pod.pointer(&format!("/spec/{field}")).and_then(Value::as_array).into_iter().flatten());
    let positive = |container: &Value, field: &str, resource: &str| {
        container
            .pointer(&format!("/resources/{field}/{resource}"))
            .and_then(Value::as_str)
            .and_then(|text| engenho_control::quantity::Quantity::parse(text).ok())
            .is_some_and(|quantity| !quantity.is_zero() && !quantity.is_negative())
    };
    !containers.into_iter().any(|container| {
        ["requests", "limits"]
            .iter()
            .any(|field| ["cpu", "memory"].iter().any(|resource| positive(container, field, resource)))
    })
}

/// Whether a pod's `priorityClassName` meets a `PriorityClass`
/// requirement, read as a label selector on the label `PriorityClass`
/// (absent when the pod names no class).
fn priority_class_matches(requirement: &Requirement, pod: &Value) -> bool {
    let class = pod.pointer("/spec/priorityClassName").and_then(Value::as_str).filter(|name| !name.is_empty());
    let listed = |name: &str| requirement.values.iter().any(|value| value == name);
    match requirement.operator.as_str() {
        "Exists" => class.is_some(),
        "DoesNotExist" => class.is_none(),
        "In" => class.is_some_and(listed),
        "NotIn" => !class.is_some_and(listed),
        _ => false,
    }
}

/// Whether a pod's affinity or anti-affinity has a term that reaches
/// other namespaces (`namespaces` or `namespaceSelector`).
fn cross_namespace_affinity(pod: &Value) -> bool {
    let reaches = |term: &Value| {
        term.get("namespaces").and_then(Value::as_array).is_some_and(|names| !names.is_empty())
            || term.get("namespaceSelector").is_some_and(|selector| !selector.is_null())
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let Some(affinity) = pod.pointer(&format!("/spec/affinity/{kind}")) else { return false };
        let required = affinity
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let preferred = affinity
            .get("preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|weighted| weighted.get("podAffinityTerm"));
        required.chain(preferred).any(reaches)
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::super::resources::Registry;
    use super::*;

    fn requirement(scope: &str, operator: &str, values: &[&str]) -> Requirement {
        Requirement {
            scope: scope.to_owned(),
            operator: operator.to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn scopes_and_selectors_are_gathered_from_the_spec() {
        let quota = json!({"spec": {"scopes": ["BestEffort"], "scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
        assert_eq!(
            requirements(&quota),
            [requirement("BestEffort", "Exists", &[]), requirement("PriorityClass", "In", &["high"])]
        );
        assert!(requirements(&json!({"spec": {"hard": {"pods": "1"}}})).is_empty());
    }

    #[test]
    fn pods_match_scopes_as_kubernetes_matches_them() {
        let bare = json!({"spec": {"containers": [{"name": "a"}]}});
        let sized = json!({"spec": {"activeDeadlineSeconds": 30, "priorityClassName": "high",
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "podAffinityTerm": {"namespaceSelector": {}, "topologyKey": "zone"}}]}}}});
        let zero = json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"memory": "0"}}}]}});
        let cases = [
            ("Terminating", "Exists", vec![], [false, true]),
            ("NotTerminating", "Exists", vec![], [true, false]),
            ("BestEffort", "Exists", vec![], [true, false]),
            ("NotBestEffort", "Exists", vec![], [false, true]),
            ("PriorityClass", "Exists", vec![], [false, true]),
            ("PriorityClass", "In", vec!["high"], [false, true]),
            ("PriorityClass", "NotIn", vec!["high"], [true, false]),
            ("PriorityClass", "DoesNotExist", vec![], [true, false]),
            ("CrossNamespacePodAffinity", "Exists", vec![], [false, true]),
        ];
        for (scope, operator, values, [on_bare, on_sized]) in cases {
            let wanted = requirement(scope, operator, &values);
            assert_eq!(pod_matches(&wanted, &bare), on_bare, "{scope} {operator} on a bare pod");
            assert_eq!(pod_matches(&wanted, &sized), on_sized, "{scope} {operator} on a sized pod");
        }
        assert!(best_effort(&zero), "zero amounts leave a pod best effort");
    }

    #[test]
    fn scoped_quotas_count_only_pods() {
        let registry = Registry::built_in();
        let pods = registry.find_plural("", "pods").expect("pods");
        let services = registry.find_plural("", "services").expect("services");
        let scoped = json!({"spec": {"scopes": ["NotTerminating"]}});
        let pod = json!({"spec": {"containers": [{"name": "a"}]}});
        assert!(matches(pods, &scoped, &pod));
        assert!(!matches(services, &scoped, &json!({})), "services have no scopes");
        assert!(matches(services, &json!({"spec": {}}), &json!({})), "an unscoped quota counts everything");
    }

    fn pod_strategy() -> impl Strategy<Value = Value> {
        let amount = prop_oneof![Just(None), (0u32..4).prop_map(|n| Some(format!("{n}00m")))];
        let class = prop_oneof![Just(None), Just(Some("high")), Just(Some("low")), Just(Some(""))];
        let deadline = prop_oneof![Just(None), (-1i64..100).prop_map(Some)];
        (amount.clone(), amount, class, deadline).prop_map(|(request, limit, class, deadline)| {
            let mut resources = json!({});
            if let Some(request) = request {
                resources["requests"] = json!({"cpu": request});
            }
            if let Some(limit) = limit {
                resources["limits"] = json!({"memory": limit});
            }
            let mut pod = json!({"spec": {"containers": [{"name": "a", "resources": resources}]}});
            if let Some(class) = class {
                pod["spec"]["priorityClassName"] = json!(class);
            }
            if let Some(deadline) = deadline {
                pod["spec"]["activeDeadlineSeconds"] = json!(deadline);
            }
            pod
        })
    }

    proptest! {
        #[test]
        fn opposite_scopes_split_every_pod(pod in pod_strategy()) {
            for (one, other) in [("Terminating", "NotTerminating"), ("BestEffort", "NotBestEffort")] {
                let one = pod_matches(&requirement(one, "Exists", &[]), &pod);
                let other = pod_matches(&requirement(other, "Exists", &[]), &pod);
                prop_assert!(one != other);
            }
            for (one, other, values) in [("In", "NotIn", vec!["high"]), ("Exists", "DoesNotExist", vec![])] {
                let one = pod_matches(&requirement("PriorityClass", one, &values), &pod);
                let other = pod_matches(&requirement("PriorityClass", other, &values), &pod);
                prop_assert!(one != other);
            }
        }

        #[test]
        fn every_added_scope_narrows_a_quota(pod in pod_strategy(), scopes in proptest::sample::subsequence(
            vec!["Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass"], 0..5)) {
            let registry = Registry::built_in();
            let pods = registry.find_plural("", "pods").expect("pods");
            let quota = json!({"spec": {"scopes": scopes}});
            let each = scopes.iter().all(|scope| pod_matches(&requirement(scope, "Exists", &[]), &pod));
            prop_assert_eq!(matches(pods, &quota, &pod), each);
        }
    }
}
