//! The RuntimeClasses every cluster has: `wasi` and `tlisp`, the pod
//! runtimes of engenho's node agent. A node labels itself with each
//! handler it runs (`runtime.engenho.io/<handler>: "true"`), and each class
//! selects those nodes, so that the scheduler places its pods only there.
//!
//! The RuntimeClass admission step, as kube-apiserver's: a new pod naming
//! a RuntimeClass gets the class's `scheduling.nodeSelector` merged into its
//! own and the class's tolerations added, and its `overhead`; a pod naming
//! a class that does not exist is refused.

use serde_json::{Value, json};

use super::objects::ObjectStore;
use super::resources::Registry;
use super::status::ApiError;

/// The handlers every node's agent runs: WASI components and tlisp
/// programs, in wasmtime.
pub const WASM_HANDLERS: [&str; 2] = ["wasi", "tlisp"];

/// The label a node carries for each handler it runs: this, then the
/// handler's name.
pub const HANDLER_LABEL_PREFIX: &str = "runtime.engenho.io/";

/// The label of nodes that run `handler`.
pub fn handler_label(handler: &str) -> String {
    format!("{HANDLER_LABEL_PREFIX}{handler}")
}

/// The RuntimeClass of each of [`WASM_HANDLERS`], named after it.
pub fn default_runtime_classes() -> Vec<Value> {
    WASM_HANDLERS
        .iter()
        .map(|handler| {
            json!({
                "apiVersion": "node.k8s.io/v1",
                "kind": "RuntimeClass",
                "metadata": {"name": handler},
                "handler": handler,
                "scheduling": {"nodeSelector": {handler_label(handler): "true"}},
            })
        })
        .collect()
}

/// Applies the RuntimeClass a new `pod` names, read from the store: its
/// node selector and tolerations join the pod's, its fixed overhead
/// becomes the pod's.
///
/// # Errors
/// 403 when the class does not exist, its node selector contradicts the
/// pod's, or the pod gives another overhead.
pub fn admit_pod(objects: &ObjectStore, registry: &Registry, pod: &mut Value) -> Result<(), ApiError> {
    let Some(class_name) = pod.pointer("/spec/runtimeClassName").and_then(Value::as_str).map(str::to_owned) else {
        return Ok(());
    };
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let forbidden =
        |message: String| ApiError::forbidden_on(format!("pods \"{name}\" is forbidden: {message}"), "", "pods", &name);
    let classes = registry.find_plural("node.k8s.io", "runtimeclasses").expect("RuntimeClasses are built in");
    let class = objects
        .get_local(classes, None, &class_name)?
        .ok_or_else(|| forbidden(format!("pod rejected: RuntimeClass \"{class_name}\" not found")))?;
    apply_class(pod, &class).map_err(|message| forbidden(format!("pod rejected: {message}")))
}

/// `class`'s scheduling and overhead applied to `pod`.
fn apply_class(pod: &mut Value, class: &Value) -> Result<(), String> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    if let Some(fixed) = class.pointer("/overhead/podFixed").filter(|o| o.as_object().is_some_and(|o| !o.is_empty())) {
        match spec.get("overhead") {
            Some(given) if given != fixed => {
                return Err("Pod's Overhead doesn't match RuntimeClass's defined Overhead".into());
            }
            _ => {
                spec.insert("overhead".into(), fixed.clone());
            }
        }
    }
    let wanted = class.pointer("/scheduling/nodeSelector").and_then(Value::as_object).cloned().unwrap_or_default();
    if !wanted.is_empty() {
        let selector = spec.entry("nodeSelector").or_insert_with(|| json!({}));
        let Some(selector) = selector.as_object_mut() else { return Err("spec.nodeSelector is not a map".into()) };
        for (key, value) in wanted {
            match selector.get(&key) {
                Some(given) if *given != value => {
                    return Err(format!(
                        "conflict: runtimeClass.scheduling.nodeSelector[{key}] = {}; pod.spec.nodeSelector[{key}] = {}",
                        value.as_str().unwrap_or_default(),
                        given.as_str().unwrap_or_default()
                    ));
                }
                _ => {
                    selector.insert(key, value);
                }
            }
        }
    }
    let tolerations = class.pointer("/scheduling/tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
    if !tolerations.is_empty() {
        let given = spec.entry("tolerations").or_insert_with(|| json!([]));
        let Some(given) = given.as_array_mut() else { return Err("spec.tolerations is not a list".into()) };
        for toleration in tolerations {
            if !given.contains(&toleration) {
                given.push(toleration);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_s_scheduling_and_overhead_join_the_pod_s() {
        // Goal: kube's RuntimeClass admission: the selector merged, the
        // tolerations added once, the overhead set; contradictions refused.
        let class = json!({"metadata": {"name": "wasi"}, "handler": "wasi",
            "overhead": {"podFixed": {"memory": "16Mi"}},
            "scheduling": {"nodeSelector": {"runtime.engenho.io/wasi": "true"},
                "tolerations": [{"key": "wasm", "operator": "Exists"}]}});
        let mut pod = json!({"spec": {"runtimeClassName": "wasi", "nodeSelector": {"zone": "a"},
            "tolerations": [{"key": "wasm", "operator": "Exists"}], "containers": []}});
        apply_class(&mut pod, &class).expect("applied");
        assert_eq!(pod["spec"]["nodeSelector"], json!({"zone": "a", "runtime.engenho.io/wasi": "true"}));
        assert_eq!(pod["spec"]["tolerations"], json!([{"key": "wasm", "operator": "Exists"}]));
        assert_eq!(pod["spec"]["overhead"], json!({"memory": "16Mi"}));
        let mut contrary = json!({"spec": {"nodeSelector": {"runtime.engenho.io/wasi": "false"}}});
        let refused = apply_class(&mut contrary, &class).expect_err("a conflict");
        assert!(
            refused.starts_with("conflict: runtimeClass.scheduling.nodeSelector[runtime.engenho.io/wasi] = true"),
            "{refused}"
        );
        let mut heavier = json!({"spec": {"overhead": {"memory": "1Gi"}}});
        assert_eq!(
            apply_class(&mut heavier, &class).expect_err("refused"),
            "Pod's Overhead doesn't match RuntimeClass's defined Overhead"
        );
        for default in default_runtime_classes() {
            let mut pod = json!({"spec": {"containers": []}});
            apply_class(&mut pod, &default).expect("applied");
            let handler = default["handler"].as_str().expect("handler");
            assert_eq!(pod["spec"]["nodeSelector"][handler_label(handler)], "true");
        }
    }
}
