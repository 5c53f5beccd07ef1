//! What many kinds' cells share: reading fields, and the formats
//! kube-apiserver's printers use for labels, selectors, containers, times,
//! access modes and truncated lists.

use k8s_openapi::chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::super::{Column, human_duration};
use super::descriptions::{META_CREATED, META_NAME};

/// The longest list a cell shows before it reads `+ N more...`.
pub(super) const LIST_SHOWN_MAX: usize = 3;

/// A column shown by plain `kubectl get`.
pub(super) const fn column(
    name: &'static str,
    kind: &'static str,
    description: &'static str,
    cell: fn(&Value) -> Value,
) -> Column {
    Column { name, kind, format: "", description, priority: 0, cell }
}

/// A column shown only with `-o wide`.
pub(super) const fn wide(
    name: &'static str,
    kind: &'static str,
    description: &'static str,
    cell: fn(&Value) -> Value,
) -> Column {
    Column { name, kind, format: "", description, priority: 1, cell }
}

/// The `Name` column.
pub(super) const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: META_NAME,
    priority: 0,
    cell: |o| json!(text(o, "/metadata/name")),
};

/// The `Age` column.
pub(super) const AGE: Column =
    column("Age", "string", META_CREATED, |o| json!(since_or_unknown(o, "/metadata/creationTimestamp")));

/// The `Created At` column of kinds kube-apiserver prints with its default
/// table (roles, definitions): the creation time in RFC 3339, UTC.
pub(super) const CREATED_AT: Column = column("Created At", "date", META_CREATED, |o| {
    let created = timestamp(o, "/metadata/creationTimestamp").unwrap_or(DateTime::<Utc>::MIN_UTC);
    json!(created.to_rfc3339_opts(SecondsFormat::Secs, true))
});

/// The string at `pointer`, or empty.
pub(super) fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// The non-empty string at `pointer`, or `absent`.
pub(super) fn text_or<'a>(object: &'a Value, pointer: &str, absent: &'a str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or(absent)
}

/// The integer at `pointer`, or 0.
pub(super) fn int(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// The items of the array at `pointer`, or none.
pub(super) fn items<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object.pointer(pointer).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The length of the array at `pointer`.
pub(super) fn count(object: &Value, pointer: &str) -> i64 {
    i64::try_from(items(object, pointer).len()).unwrap_or(i64::MAX)
}

/// A boolean as kube-apiserver prints an optional one: `True`, `False` or
/// `<unset>`.
pub(super) fn bool_word(value: Option<&Value>) -> &'static str {
    match value.and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

/// `True`/`False`/`<unset>` of the boolean at `pointer`.
pub(super) fn bool_cell(object: &Value, pointer: &str) -> Value {
    json!(bool_word(object.pointer(pointer)))
}

/// A quantity (`10Gi`) as stored, or empty.
pub(super) fn quantity(object: &Value, pointer: &str) -> String {
    match object.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The time at `pointer`.
pub(super) fn timestamp(object: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    let text = object.pointer(pointer)?.as_str()?;
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc())
}

/// How long ago the time at `pointer` was, e.g. `5m`.
pub(super) fn since(object: &Value, pointer: &str) -> Option<String> {
    timestamp(object, pointer).map(|t| human_duration((Utc::now() - t).num_seconds().max(0)))
}

/// How long ago the time at `pointer` was, or `<unknown>`.
pub(super) fn since_or_unknown(object: &Value, pointer: &str) -> String {
    since(object, pointer).unwrap_or_else(|| "<unknown>".to_owned())
}

/// A label map as `a=1,b=2` (sorted by key), or `<none>`.
pub(super) fn labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".to_owned();
    };
    sorted_pairs(map).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn sorted_pairs(map: &Map<String, Value>) -> Vec<(&str, &str)> {
    let mut pairs: Vec<(&str, &str)> = map.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())).collect();
    pairs.sort_unstable();
    pairs
}

/// A label selector as kube-apiserver prints it (`app=web,tier in (a,b)`),
/// `<none>` when it selects by nothing, `<error>` when it is malformed.
pub(super) fn selector(selector: Option<&Value>) -> String {
    let text = selector_text(selector);
    match text {
        Some(text) if text.is_empty() => "<none>".to_owned(),
        Some(text) => text,
        None => "<error>".to_owned(),
    }
}

/// A label selector's requirements joined by commas (empty when there are
/// none); `None` when an operator is unknown.
pub(super) fn selector_text(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector else { return Some(String::new()) };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(map) = selector.get("matchLabels").and_then(Value::as_object) {
        requirements.extend(sorted_pairs(map).into_iter().map(|(k, v)| (k.to_owned(), format!("{k}={v}"))));
    }
    for expression in items(selector, "/matchExpressions") {
        let key = text(expression, "/key");
        let mut values: Vec<&str> = items(expression, "/values").iter().filter_map(Value::as_str).collect();
        values.sort_unstable();
        let requirement = match text(expression, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key.to_owned(), requirement));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Some(requirements.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

/// The names and the images of the containers of the pod spec at
/// `pointer`, each joined by commas.
pub(super) fn containers(object: &Value, pointer: &str) -> (String, String) {
    let containers = items(object, &format!("{pointer}/containers"));
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// Access modes in their short forms, in kube-apiserver's order
/// (`RWO,ROX,RWX,RWOP`).
pub(super) fn access_modes(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(mode, _)| has(mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// Up to `LIST_SHOWN_MAX` entries of `all` joined by commas, then
/// `+ N more...`; `empty` when there are none.
pub(super) fn list_with_more(all: &[String], empty: &str) -> String {
    if all.is_empty() {
        return empty.to_owned();
    }
    let shown = all[..all.len().min(LIST_SHOWN_MAX)].join(",");
    if all.len() > LIST_SHOWN_MAX { format!("{shown} + {} more...", all.len() - LIST_SHOWN_MAX) } else { shown }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_print_as_kube_apiserver_does() {
        let selector_value = json!({
            "matchLabels": {"tier": "web", "app": "shop"},
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["b", "a"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "Exists"},
            ],
        });
        assert_eq!(selector(Some(&selector_value)), "app=shop,!canary,env,tier=web,zone in (a,b)");
        assert_eq!(selector(None), "<none>");
        assert_eq!(selector(Some(&json!({}))), "<none>");
        assert_eq!(selector(Some(&json!({"matchExpressions": [{"key": "a", "operator": "Near"}]}))), "<error>");
    }

    #[test]
    fn lists_truncate_after_three() {
        let five: Vec<String> = (1..=5).map(|n| format!("10.0.0.{n}")).collect();
        assert_eq!(list_with_more(&five, "<none>"), "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...");
        assert_eq!(list_with_more(&five[..2], "<none>"), "10.0.0.1,10.0.0.2");
        assert_eq!(list_with_more(&[], "<unset>"), "<unset>");
    }

    #[test]
    fn labels_and_access_modes() {
        assert_eq!(labels(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
        assert_eq!(labels(Some(&json!({}))), "<none>");
        assert_eq!(access_modes(&[json!("ReadWriteMany"), json!("ReadWriteOnce")]), "RWO,RWX");
        assert_eq!(access_modes(&[]), "");
    }
}
