//! Label selectors: matching labels, and the text form lists take.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Further requirements, all of which must hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` requirement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values `In` and `NotIn` compare with.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether it selects nothing-in-particular: no labels, no
    /// expressions (Kubernetes' workload controllers then match no pod).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether `labels` satisfy every requirement. An empty selector
    /// matches everything; an unknown operator matches nothing.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    /// The selector in the text form a list takes
    /// (`app=web,tier in (a,b),!canary`).
    pub fn to_text(&self) -> String {
        let mut text = equality_text(&self.match_labels);
        for requirement in &self.match_expressions {
            if !text.is_empty() {
                text.push(',');
            }
            let key = requirement.key.as_str();
            let with_values = |text: &mut String, operator: &str| {
                text.push_str(key);
                text.push_str(operator);
                text.push('(');
                for (index, value) in requirement.values.iter().enumerate() {
                    if index > 0 {
                        text.push(',');
                    }
                    text.push_str(value);
                }
                text.push(')');
            };
            match requirement.operator.as_str() {
                "In" => with_values(&mut text, " in "),
                "NotIn" => with_values(&mut text, " notin "),
                "Exists" => text.push_str(key),
                "DoesNotExist" => {
                    text.push('!');
                    text.push_str(key);
                }
                // The API server refuses other operators; one that slipped
                // through selects nothing.
                _ => {
                    text.push_str(key);
                    text.push_str(" in ()");
                }
            }
        }
        text
    }
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => value.is_some_and(|v| self.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !self.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    }
}

/// The text form of an equality selector (a Service's `spec.selector`).
pub fn equality_text(labels: &BTreeMap<String, String>) -> String {
    let mut text = String::new();
    for (key, value) in labels {
        if !text.is_empty() {
            text.push(',');
        }
        text.push_str(key);
        text.push('=');
        text.push_str(value);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn selectors_match_as_kubernetes_does() {
        let selector: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }))
        .expect("a selector");
        assert!(selector.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "c")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "a"), ("canary", "1")])));
        assert!(!selector.matches(&labels(&[("tier", "a")])));
        assert_eq!(selector.to_text(), "app=web,tier in (a,b),!canary");
        let others: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchExpressions": [
                {"key": "zone", "operator": "NotIn", "values": ["x"]},
                {"key": "gpu", "operator": "Exists"},
                {"key": "odd", "operator": "Near", "values": ["y", "z"]},
            ],
        }))
        .expect("a selector");
        assert_eq!(others.to_text(), "zone notin (x),gpu,odd in ()");
        assert_eq!(equality_text(&labels(&[("a", "1"), ("b", "2")])), "a=1,b=2");
        assert!(LabelSelector::default().matches(&labels(&[("any", "thing")])));
    }
}
