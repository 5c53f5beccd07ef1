//! Label and field selectors, as `labelSelector` and `fieldSelector` spell
//! them.

use serde_json::Value;

use super::resources::ResourceType;
use super::status::ApiError;

/// One requirement on a label.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelRequirement {
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// One requirement on a field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    pointer: String,
    value: String,
    equal: bool,
}

/// Which objects a request selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
}

impl Selector {
    /// Parses `labelSelector` and `fieldSelector` for kind `t`.
    ///
    /// # Errors
    /// 400 for a malformed selector or a field the kind cannot be selected by.
    pub fn parse(t: &ResourceType, labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        let labels = match labels {
            Some(text) => parse_labels(text)
                .map_err(|message| ApiError::bad_request(format!("unable to parse requirement: {message}")))?,
            None => Vec::new(),
        };
        let fields = match fields {
            Some(text) => parse_fields(t, text)?,
            None => Vec::new(),
        };
        Ok(Self { labels, fields })
    }

    /// Whether `object` is selected.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        let labels_hold = self.labels.iter().all(|requirement| match requirement {
            LabelRequirement::Exists(key) => label(key).is_some(),
            LabelRequirement::Absent(key) => label(key).is_none(),
            LabelRequirement::In(key, values) => label(key).is_some_and(|v| values.iter().any(|x| x == v)),
            LabelRequirement::NotIn(key, values) => label(key).is_none_or(|v| values.iter().all(|x| x != v)),
        });
        labels_hold
            && self.fields.iter().all(|requirement| {
                let actual = match object.pointer(&requirement.pointer) {
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Bool(flag)) => flag.to_string(),
                    Some(Value::Number(number)) => number.to_string(),
                    _ => String::new(),
                };
                (actual == requirement.value) == requirement.equal
            })
    }
}

/// Fields every kind can be selected by, plus those of particular kinds (as
/// kube-apiserver allows them).
fn field_supported(t: &ResourceType, field: &str) -> bool {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return true;
    }
    match (t.group, t.plural) {
        ("", "pods") => matches!(
            field,
            "spec.nodeName"
                | "spec.restartPolicy"
                | "spec.schedulerName"
                | "spec.serviceAccountName"
                | "spec.hostNetwork"
                | "status.phase"
                | "status.podIP"
                | "status.nominatedNodeName"
        ),
        ("", "events") => {
            field.starts_with("involvedObject.") || matches!(field, "reason" | "reportingComponent" | "source" | "type")
        }
        ("", "nodes") => field == "spec.unschedulable",
        ("", "namespaces") => field == "status.phase",
        ("", "secrets") => field == "type",
        ("apps", "replicasets") => field == "status.replicas",
        ("batch", "jobs") => field == "status.successful",
        _ => false,
    }
}

fn parse_fields(t: &ResourceType, text: &str) -> Result<Vec<FieldRequirement>, ApiError> {
    let mut requirements = Vec::new();
    for term in text.split(',').map(str::trim).filter(|term| !term.is_empty()) {
        let (field, value, equal) = if let Some((field, value)) = term.split_once("!=") {
            (field, value, false)
        } else if let Some((field, value)) = term.split_once("==") {
            (field, value, true)
        } else if let Some((field, value)) = term.split_once('=') {
            (field, value, true)
        } else {
            return Err(ApiError::bad_request(format!("invalid field selector: '{term}'")));
        };
        let field = field.trim();
        if !field_supported(t, field) {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {field} (for {} {})",
                t.api_version, t.kind
            )));
        }
        let pointer = format!("/{}", field.replace('.', "/"));
        requirements.push(FieldRequirement { pointer, value: value.trim().to_owned(), equal });
    }
    Ok(requirements)
}

fn parse_labels(text: &str) -> Result<Vec<LabelRequirement>, String> {
    let mut requirements = Vec::new();
    for term in split_terms(text)? {
        let term = term.trim();
        if term.is_empty() {
            continue;
        }
        let requirement = if let Some(key) = term.strip_prefix('!') {
            LabelRequirement::Absent(label_key(key)?)
        } else if let Some((key, value)) = term.split_once("!=") {
            LabelRequirement::NotIn(label_key(key)?, vec![label_value(value)?])
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            LabelRequirement::In(label_key(key)?, vec![label_value(value)?])
        } else if let Some((key, values)) = split_set(term, " notin ")? {
            LabelRequirement::NotIn(label_key(key)?, values)
        } else if let Some((key, values)) = split_set(term, " in ")? {
            LabelRequirement::In(label_key(key)?, values)
        } else {
            LabelRequirement::Exists(label_key(term)?)
        };
        requirements.push(requirement);
    }
    Ok(requirements)
}

/// Splits on commas outside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("unbalanced parentheses in {text:?}"));
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in {text:?}"));
    }
    terms.push(&text[start..]);
    Ok(terms)
}

fn split_set<'a>(term: &'a str, operator: &str) -> Result<Option<(&'a str, Vec<String>)>, String> {
    let Some((key, set)) = term.split_once(operator) else { return Ok(None) };
    let set = set.trim();
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set of values after {operator:?} in {term:?}"))?;
    let values = inner.split(',').map(label_value).collect::<Result<Vec<_>, _>>()?;
    Ok(Some((key, values)))
}

fn label_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    let valid = !key.is_empty()
        && key.len() <= 317
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid { Ok(key.to_owned()) } else { Err(format!("invalid label key {key:?}")) }
}

fn label_value(value: &str) -> Result<String, String> {
    let value = value.trim();
    let valid = value.len() <= 63 && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid { Ok(value.to_owned()) } else { Err(format!("invalid label value {value:?}")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resources::Registry;
    use serde_json::json;

    fn pods() -> ResourceType {
        Registry::built_in().find("", "v1", "pods").expect("pods").clone()
    }

    fn pod(labels: Value, node: &str, phase: &str) -> Value {
        json!({"metadata": {"name": "p", "namespace": "d", "labels": labels}, "spec": {"nodeName": node}, "status": {"phase": phase}})
    }

    #[test]
    fn label_selectors_follow_kubernetes_grammar() {
        let selector =
            Selector::parse(&pods(), Some("app=web,tier in (front, back),!legacy,env!=prod"), None).expect("parse");
        assert!(selector.matches(&pod(json!({"app": "web", "tier": "front"}), "", "")));
        assert!(selector.matches(&pod(json!({"app": "web", "tier": "back", "env": "dev"}), "", "")));
        assert!(!selector.matches(&pod(json!({"app": "web", "tier": "front", "legacy": "1"}), "", "")));
        assert!(!selector.matches(&pod(json!({"app": "web", "tier": "mid"}), "", "")));
        assert!(!selector.matches(&pod(json!({"app": "web", "tier": "front", "env": "prod"}), "", "")));
        let exists = Selector::parse(&pods(), Some("app,tier notin (x)"), None).expect("parse");
        assert!(exists.matches(&pod(json!({"app": ""}), "", "")));
        assert!(!exists.matches(&pod(json!({}), "", "")));
        assert!(Selector::parse(&pods(), Some("app in (a"), None).is_err());
        assert!(Selector::parse(&pods(), Some("bad key=1"), None).is_err());
    }

    #[test]
    fn field_selectors_check_supported_fields() {
        let selector = Selector::parse(
            &pods(),
            None,
            Some("spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed,metadata.namespace=d"),
        )
        .expect("parse");
        assert!(selector.matches(&pod(json!({}), "n1", "Running")));
        assert!(!selector.matches(&pod(json!({}), "n2", "Running")));
        assert!(!selector.matches(&pod(json!({}), "n1", "Failed")));
        let error = Selector::parse(&pods(), None, Some("spec.image=x")).expect_err("unsupported");
        assert!(error.message.contains("field label not supported: spec.image"), "{error}");
        assert!(Selector::parse(&pods(), None, Some("nonsense")).is_err());
    }
}
