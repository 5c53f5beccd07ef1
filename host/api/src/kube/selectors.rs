//! Label and field selectors, as `labelSelector` and `fieldSelector` spell
//! them.

use engenho_control::LabelSelector;
use serde_json::Value;

use super::resources::ResourceType;
use super::status::ApiError;

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
    labels: LabelSelector,
    fields: Vec<FieldRequirement>,
}

impl Selector {
    /// Parses `labelSelector` and `fieldSelector` for kind `t`.
    ///
    /// # Errors
    /// 400 for a malformed selector or a field the kind cannot be selected by.
    pub fn parse(t: &ResourceType, labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        let labels = match labels {
            Some(text) => LabelSelector::parse(text)
                .map_err(|message| ApiError::bad_request(format!("unable to parse requirement: {message}")))?,
            None => LabelSelector::default(),
        };
        let fields = match fields {
            Some(text) => parse_fields(t, text)?,
            None => Vec::new(),
        };
        Ok(Self { labels, fields })
    }

    /// Whether `object` is selected.
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches_object(object)
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
