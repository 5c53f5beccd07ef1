//! A ResourceQuota's `spec.scopes` and `spec.scopeSelector`: kube-apiserver's
//! rules (scopes that track only pod resources, operators each scope
//! allows, values each operator needs, no opposite scopes together), with
//! its messages and the values it prints.

use serde_json::Value;

use super::super::status::Cause;
use super::{QUOTA_SCOPES, STANDARD_QUOTA_RESOURCES, invalid, items, required, text};

/// The resources a scope other than `BestEffort` may limit.
const POD_RESOURCES: [&str; 7] =
    ["pods", "cpu", "memory", "limits.cpu", "limits.memory", "requests.cpu", "requests.memory"];

/// Scopes that may not be asked for together.
const OPPOSITE_SCOPES: [(&str, &str); 2] = [("BestEffort", "NotBestEffort"), ("Terminating", "NotTerminating")];

/// Kubernetes' message for an operator other than `Exists` on a scope
/// without values.
const EXISTS_ONLY_MESSAGE: &str = "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, \
    ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or \
    ResourceQuotaScopeCrossNamespacePodAffinity";

/// Whether a quota with `scope` may limit standard resource `resource`.
fn valid_for(scope: &str, resource: &str) -> bool {
    match scope {
        "BestEffort" => resource == "pods",
        "Terminating" | "NotTerminating" | "NotBestEffort" | "PriorityClass" | "CrossNamespacePodAffinity" => {
            POD_RESOURCES.contains(&resource)
        }
        _ => true,
    }
}

/// A list of texts as Go prints it (`[]T{"a", "b"}`, `[]T(nil)` when empty).
fn go_list(kind: &str, values: &[&str]) -> String {
    if values.is_empty() {
        return format!("[]{kind}(nil)");
    }
    let quoted: Vec<String> = values.iter().map(|value| format!("{value:?}")).collect();
    format!("[]{kind}{{{}}}", quoted.join(", "))
}

/// The texts of the array at `pointer`.
fn texts<'a>(object: &'a Value, pointer: &str) -> Vec<&'a str> {
    items(object, pointer).iter().map(|value| value.as_str().unwrap_or_default()).collect()
}

/// The scope selector as Go prints it.
fn go_selector(object: &Value) -> String {
    let expressions: Vec<String> = items(object, "/spec/scopeSelector/matchExpressions")
        .iter()
        .map(|expression| {
            format!(
                "core.ScopedResourceSelectorRequirement{{ScopeName:{:?}, Operator:{:?}, Values:{}}}",
                text(expression, "/scopeName"),
                text(expression, "/operator"),
                go_list("string", &texts(expression, "/values"))
            )
        })
        .collect();
    let list = if expressions.is_empty() {
        "[]core.ScopedResourceSelectorRequirement(nil)".to_owned()
    } else {
        format!("[]core.ScopedResourceSelectorRequirement{{{}}}", expressions.join(", "))
    };
    format!("&core.ScopeSelector{{MatchExpressions:{list}}}")
}

/// Adds `cause` unless the same is already there (Kubernetes reports each
/// once).
fn push_once(causes: &mut Vec<Cause>, cause: Cause) {
    if !causes.iter().any(|held| held.field == cause.field && held.message == cause.message) {
        causes.push(cause);
    }
}

/// The causes that refuse a quota's scopes and scope selector.
pub fn quota_scopes(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let hard: Vec<&String> = object
        .pointer("/spec/hard")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, _)| name)
        .filter(|name| STANDARD_QUOTA_RESOURCES.contains(&name.as_str()))
        .collect();
    let scopes = texts(object, "/spec/scopes");
    let shown_scopes = go_list("core.ResourceQuotaScope", &scopes);
    for scope in &scopes {
        if hard.iter().any(|resource| !valid_for(scope, resource)) {
            push_once(&mut causes, invalid("spec.scopes", &shown_scopes, "unsupported scope applied to resource"));
        }
    }
    let opposite = |named: &[&str]| OPPOSITE_SCOPES.iter().any(|(a, b)| named.contains(a) && named.contains(b));
    if opposite(&scopes) {
        push_once(&mut causes, invalid("spec.scopes", &shown_scopes, "conflicting scopes"));
    }
    if object.pointer("/spec/scopeSelector").is_none_or(Value::is_null) {
        return causes;
    }
    let field = "spec.scopeSelector.matchExpressions";
    let mut selected = Vec::new();
    for expression in items(object, "/spec/scopeSelector/matchExpressions") {
        let scope = text(expression, "/scopeName");
        let operator = text(expression, "/operator");
        let values = texts(expression, "/values");
        if !QUOTA_SCOPES.contains(&scope) {
            causes.push(invalid(format!("{field}.scopeName"), &format!("{scope:?}"), "unsupported scope"));
        }
        if hard.iter().any(|resource| !valid_for(scope, resource)) {
            push_once(&mut causes, invalid(field, &go_selector(object), "unsupported scope applied to resource"));
        }
        let exists_only = ["BestEffort", "NotBestEffort", "Terminating", "NotTerminating", "CrossNamespacePodAffinity"];
        if exists_only.contains(&scope) && operator != "Exists" {
            causes.push(invalid(format!("{field}.operator"), &format!("{operator:?}"), EXISTS_ONLY_MESSAGE));
        }
        match operator {
            "In" | "NotIn" if values.is_empty() => causes.push(required(
                format!("{field}.values"),
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => causes.push(invalid(
                format!("{field}.values"),
                &go_list("string", &values),
                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(invalid(
                format!("{field}.operator"),
                &format!("{other:?}"),
                "not a valid selector operator",
            )),
        }
        selected.push(scope);
    }
    if opposite(&selected) {
        push_once(&mut causes, invalid(field, &shown_scopes, "conflicting scopes"));
    }
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refusals(spec: Value) -> Vec<(String, String)> {
        quota_scopes(&json!({"spec": spec})).into_iter().map(|cause| (cause.field, cause.message)).collect()
    }

    #[test]
    fn scopes_are_refused_as_kubernetes_refuses_them() {
        let causes =
            refusals(json!({"hard": {"pods": "1", "services": "1"}, "scopes": ["BestEffort", "NotBestEffort"]}));
        let shown = r#"[]core.ResourceQuotaScope{"BestEffort", "NotBestEffort"}"#;
        assert_eq!(
            causes,
            [
                ("spec.scopes".into(), format!("Invalid value: {shown}: unsupported scope applied to resource")),
                ("spec.scopes".into(), format!("Invalid value: {shown}: conflicting scopes")),
            ]
        );
        let fits = refusals(json!({"hard": {"pods": "1", "requests.cpu": "1", "count/pods": "1"},
            "scopes": ["NotBestEffort", "Terminating"]}));
        assert!(fits.is_empty(), "{fits:?}");
    }

    #[test]
    fn selectors_are_refused_as_kubernetes_refuses_them() {
        let causes = refusals(json!({"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
            {"scopeName": "BestEffort", "operator": "In", "values": ["x"]},
            {"scopeName": "PriorityClass", "operator": "NotIn"},
            {"scopeName": "Bogus", "operator": "Near"}]}}));
        let field = "spec.scopeSelector.matchExpressions";
        assert_eq!(
            causes,
            [
                (format!("{field}.operator"), format!("Invalid value: \"In\": {EXISTS_ONLY_MESSAGE}")),
                (
                    format!("{field}.values"),
                    "Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope \
                     selector"
                        .to_owned()
                ),
                (format!("{field}.scopeName"), "Invalid value: \"Bogus\": unsupported scope".to_owned()),
                (format!("{field}.operator"), "Invalid value: \"Near\": not a valid selector operator".to_owned()),
            ]
        );
        let storage = refusals(json!({"hard": {"requests.storage": "1Gi"}, "scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "Exists"}]}}));
        assert_eq!(
            storage,
            [(
                field.to_owned(),
                "Invalid value: &core.ScopeSelector{MatchExpressions:[]core.ScopedResourceSelectorRequirement{\
                 core.ScopedResourceSelectorRequirement{ScopeName:\"PriorityClass\", Operator:\"Exists\", \
                 Values:[]string(nil)}}}: unsupported scope applied to resource"
                    .to_owned()
            )]
        );
    }
}
