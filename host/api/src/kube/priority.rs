//! Pod priority, as kube-apiserver's `Priority` admission plugin resolves
//! it: a pod's `priorityClassName` (or the cluster's default class) sets
//! its `spec.priority` and `spec.preemptionPolicy`; at most one class is
//! the cluster's default.

use serde_json::{Value, json};

use super::objects::ObjectStore;
use super::resources::Registry;
use super::status::ApiError;

/// The PriorityClasses of the cluster, as this node has them.
fn classes(objects: &ObjectStore, registry: &Registry) -> Result<Vec<Value>, ApiError> {
    let t = registry.find_plural("scheduling.k8s.io", "priorityclasses").expect("priority classes are built in");
    Ok(objects.list_at(t, None, 0)?.items)
}

fn name_of(object: &Value) -> &str {
    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

fn is_default(class: &Value) -> bool {
    class.get("globalDefault").and_then(Value::as_bool).unwrap_or(false)
}

/// Sets a new pod's priority from its class, or from the default class
/// (priority 0 when there is none).
///
/// # Errors
/// 403 when the class does not exist, or when the pod gives a priority
/// other than its class's.
pub fn resolve_pod(objects: &ObjectStore, registry: &Registry, pod: &mut Value) -> Result<(), ApiError> {
    let name = name_of(pod).to_owned();
    let forbidden =
        |message: String| ApiError::forbidden_on(format!("pods \"{name}\" is forbidden: {message}"), "", "pods", &name);
    let classes = classes(objects, registry)?;
    let wanted = pod.pointer("/spec/priorityClassName").and_then(Value::as_str).filter(|n| !n.is_empty());
    let class = match wanted {
        Some(wanted) => Some(
            classes
                .iter()
                .find(|c| name_of(c) == wanted)
                .ok_or_else(|| forbidden(format!("no PriorityClass with name {wanted} was found")))?,
        ),
        None => classes.iter().filter(|c| is_default(c)).min_by_key(|c| c.get("value").and_then(Value::as_i64)),
    };
    let priority = class.and_then(|c| c.get("value")).and_then(Value::as_i64).unwrap_or(0);
    if let Some(given) = pod.pointer("/spec/priority").and_then(Value::as_i64)
        && given != priority
    {
        return Err(forbidden(format!(
            "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller \
             computed {priority} from the given PriorityClass name"
        )));
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    spec.insert("priority".into(), json!(priority));
    if let Some(class) = class {
        spec.insert("priorityClassName".into(), json!(name_of(class)));
        let policy = class.get("preemptionPolicy").and_then(Value::as_str).unwrap_or("PreemptLowerPriority");
        spec.insert("preemptionPolicy".into(), json!(policy));
    }
    Ok(())
}

/// Refuses a second default PriorityClass.
///
/// # Errors
/// 403 when `class` is a default and another class already is.
pub fn check_default(objects: &ObjectStore, registry: &Registry, class: &Value) -> Result<(), ApiError> {
    if !is_default(class) {
        return Ok(());
    }
    let name = name_of(class);
    let classes = classes(objects, registry)?;
    match classes.iter().find(|c| is_default(c) && name_of(c) != name) {
        Some(other) => Err(ApiError::forbidden_on(
            format!(
                "priorityclasses.scheduling.k8s.io \"{name}\" is forbidden: PriorityClass {} is already marked as \
                 default. Only one default can exist",
                name_of(other)
            ),
            "scheduling.k8s.io",
            "priorityclasses",
            name,
        )),
        None => Ok(()),
    }
}
