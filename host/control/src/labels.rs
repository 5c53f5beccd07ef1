//! Label selectors: the text form (`app=web,tier in (a,b),!canary`), the
//! object form (`matchLabels`, `matchExpressions`) and a Service's label
//! map, all parsed to one set of requirements.

use serde_json::Value;

/// One requirement on a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// The label is present.
    Exists(String),
    /// The label is absent.
    Absent(String),
    /// The label is present with one of the values.
    In(String, Vec<String>),
    /// The label is absent or has none of the values.
    NotIn(String, Vec<String>),
}

/// Requirements that must all hold; none selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// Why a selector does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

impl LabelSelector {
    /// Parses the text form.
    ///
    /// # Errors
    /// Unbalanced parentheses, malformed sets, invalid keys or values.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_terms(text)? {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = term.strip_prefix('!') {
                Requirement::Absent(label_key(key)?)
            } else if let Some((key, value)) = term.split_once("!=") {
                Requirement::NotIn(label_key(key)?, vec![label_value(value)?])
            } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::In(label_key(key)?, vec![label_value(value)?])
            } else if let Some((key, values)) = split_set(term, " notin ")? {
                Requirement::NotIn(label_key(key)?, values)
            } else if let Some((key, values)) = split_set(term, " in ")? {
                Requirement::In(label_key(key)?, values)
            } else {
                Requirement::Exists(label_key(term)?)
            };
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    /// Parses the object form (`matchLabels`, `matchExpressions`) or, when
    /// `value` is a plain map of strings, a Service's selector. `None` when
    /// `value` is neither.
    pub fn from_object(value: &Value) -> Option<Self> {
        let fields = value.as_object()?;
        let structured = fields.contains_key("matchLabels") || fields.contains_key("matchExpressions");
        if !structured {
            let requirements = fields
                .iter()
                .map(|(k, v)| v.as_str().map(|v| Requirement::In(k.clone(), vec![v.to_owned()])))
                .collect::<Option<Vec<_>>>()?;
            return Some(Self { requirements });
        }
        let mut requirements = Vec::new();
        if let Some(labels) = fields.get("matchLabels").and_then(Value::as_object) {
            for (key, value) in labels {
                requirements.push(Requirement::In(key.clone(), vec![value.as_str()?.to_owned()]));
            }
        }
        for expression in fields.get("matchExpressions").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
            let key = expression.get("key").and_then(Value::as_str)?.to_owned();
            let values = || -> Vec<String> {
                expression
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|v| v.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default()
            };
            requirements.push(match expression.get("operator").and_then(Value::as_str)? {
                "In" => Requirement::In(key, values()),
                "NotIn" => Requirement::NotIn(key, values()),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::Absent(key),
                _ => return None,
            });
        }
        Some(Self { requirements })
    }

    /// Whether it has no requirement (and so selects everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses the text form; `None` for blank text (no selector, where
    /// [`LabelSelector::parse`] gives one that selects everything).
    ///
    /// # Errors
    /// As [`LabelSelector::parse`].
    pub fn parse_unless_empty(text: &str) -> Result<Option<Self>, SelectorError> {
        match text.trim() {
            "" => Ok(None),
            text => Self::parse(text).map(Some),
        }
    }

    /// The labels it requires to have one value each, as (key, value):
    /// what an index by label can narrow a search with.
    pub fn equalities(&self) -> impl Iterator<Item = (&str, &str)> {
        self.requirements.iter().filter_map(|requirement| match requirement {
            Requirement::In(key, values) if values.len() == 1 => Some((key.as_str(), values[0].as_str())),
            _ => None,
        })
    }

    /// Whether the labels `label` looks up satisfy every requirement.
    pub fn matches<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|requirement| match requirement {
            Requirement::Exists(key) => label(key).is_some(),
            Requirement::Absent(key) => label(key).is_none(),
            Requirement::In(key, values) => label(key).is_some_and(|v| values.iter().any(|x| x == v)),
            Requirement::NotIn(key, values) => label(key).is_none_or(|v| values.iter().all(|x| x != v)),
        })
    }

    /// Whether an object's `metadata.labels` (JSON) satisfy it.
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
        self.matches(|key| labels.and_then(|l| l.get(key)).and_then(Value::as_str))
    }
}

/// Splits on commas outside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, SelectorError> {
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
            return Err(SelectorError(format!("unbalanced parentheses in {text:?}")));
        }
    }
    if depth != 0 {
        return Err(SelectorError(format!("unbalanced parentheses in {text:?}")));
    }
    terms.push(&text[start..]);
    Ok(terms)
}

fn split_set<'a>(term: &'a str, operator: &str) -> Result<Option<(&'a str, Vec<String>)>, SelectorError> {
    let Some((key, set)) = term.split_once(operator) else { return Ok(None) };
    let set = set.trim();
    let inner = set.strip_prefix('(').and_then(|s| s.strip_suffix(')')).ok_or_else(|| {
        SelectorError(format!("expected a parenthesised set of values after {operator:?} in {term:?}"))
    })?;
    let values = inner.split(',').map(label_value).collect::<Result<Vec<_>, _>>()?;
    Ok(Some((key, values)))
}

fn label_key(key: &str) -> Result<String, SelectorError> {
    let key = key.trim();
    let valid = !key.is_empty()
        && key.len() <= 317
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid { Ok(key.to_owned()) } else { Err(SelectorError(format!("invalid label key {key:?}"))) }
}

fn label_value(value: &str) -> Result<String, SelectorError> {
    let value = value.trim();
    let valid = value.len() <= 63 && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid { Ok(value.to_owned()) } else { Err(SelectorError(format!("invalid label value {value:?}"))) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(labels: Value) -> Value {
        json!({"metadata": {"labels": labels}})
    }

    #[test]
    fn the_text_form_follows_kubernetes_grammar() {
        let selector = LabelSelector::parse("app=web,tier in (front, back),!legacy,env!=prod").expect("parse");
        assert!(selector.matches_object(&object(json!({"app": "web", "tier": "front"}))));
        assert!(selector.matches_object(&object(json!({"app": "web", "tier": "back", "env": "dev"}))));
        assert!(!selector.matches_object(&object(json!({"app": "web", "tier": "front", "legacy": "1"}))));
        assert!(!selector.matches_object(&object(json!({"app": "web", "tier": "mid"}))));
        assert!(!selector.matches_object(&object(json!({"app": "web", "tier": "front", "env": "prod"}))));
        let exists = LabelSelector::parse("app,tier notin (x)").expect("parse");
        assert!(exists.matches_object(&object(json!({"app": ""}))));
        assert!(!exists.matches_object(&object(json!({}))));
        assert!(LabelSelector::parse("app in (a").is_err());
        assert!(LabelSelector::parse("bad key=1").is_err());
    }

    #[test]
    fn the_object_form_and_service_maps_parse_alike() {
        let structured = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}],
        }))
        .expect("a selector");
        assert_eq!(structured, LabelSelector::parse("app=web,tier in (a)").expect("parse"));
        let service = LabelSelector::from_object(&json!({"app": "web"})).expect("a map");
        assert_eq!(service, LabelSelector::parse("app=web").expect("parse"));
        assert!(LabelSelector::from_object(&json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})).is_none());
        assert!(LabelSelector::from_object(&json!("app=web")).is_none());
        assert!(LabelSelector::from_object(&json!({})).expect("empty").is_empty());
    }
}
