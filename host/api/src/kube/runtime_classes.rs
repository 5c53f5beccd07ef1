//! The RuntimeClasses every cluster has: `wasi` and `tlisp`, the pod
//! runtimes of engenho's node agent. A node labels itself with each
//! handler it runs (`runtime.engenho.io/<handler>: "true"`), and each class
//! selects those nodes, so that the scheduler places its pods only there.

use serde_json::{Value, json};

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
