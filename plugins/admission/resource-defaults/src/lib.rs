//! Mutating admission policy: containers of new pods that set no resource
//! requests or limits get the configured defaults.
//!
//! Configuration: `{"requests": {"cpu": "100m", "memory": "128Mi"},
//! "limits": {"cpu": "500m", "memory": "256Mi"}}`.

use std::cell::RefCell;

use serde::Deserialize;
use serde_json::{Map, Value, json};

wit_bindgen::generate!({
    world: "admission-policy",
    path: "../../../wit",
});

use engenho::plugins::admission_types::{Decision, Operation, Review};
use exports::engenho::plugins::policy::Guest;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    requests: Map<String, Value>,
    #[serde(default)]
    limits: Map<String, Value>,
}

thread_local! {
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
}

struct ResourceDefaults;

impl Guest for ResourceDefaults {
    fn configure(config: String) -> Result<(), String> {
        let parsed: Config = serde_json::from_str(&config).map_err(|e| format!("invalid configuration: {e}"))?;
        for value in parsed.requests.values().chain(parsed.limits.values()) {
            if !value.is_string() {
                return Err(format!("quantities are strings, such as \"100m\": {value}"));
            }
        }
        CONFIG.with(|c| *c.borrow_mut() = Some(parsed));
        Ok(())
    }

    fn admit(review: Review) -> Decision {
        if review.operation != Operation::Create || review.kind != "Pod" {
            return allow(String::new());
        }
        let pod: Value = match serde_json::from_str(&review.object) {
            Ok(pod) => pod,
            Err(_) => return allow(String::new()),
        };
        let operations = CONFIG.with(|c| c.borrow().as_ref().map(|config| defaults(&pod, config)).unwrap_or_default());
        if operations.is_empty() { allow(String::new()) } else { allow(Value::Array(operations).to_string()) }
    }
}

/// JSON patch operations that give each container the defaults it lacks.
fn defaults(pod: &Value, config: &Config) -> Vec<Value> {
    let mut operations = Vec::new();
    for list in ["initContainers", "containers"] {
        for (index, container) in
            pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array).into_iter().flatten().enumerate()
        {
            let base = format!("/spec/{list}/{index}/resources");
            let resources = container.get("resources").and_then(Value::as_object);
            if resources.is_none() {
                operations.push(json!({"op": "add", "path": base, "value": {}}));
            }
            for (field, wanted) in [("requests", &config.requests), ("limits", &config.limits)] {
                if wanted.is_empty() {
                    continue;
                }
                match resources.and_then(|r| r.get(field)).and_then(Value::as_object) {
                    None => operations.push(json!({"op": "add", "path": format!("{base}/{field}"), "value": wanted})),
                    Some(present) => {
                        for (resource, quantity) in wanted {
                            if !present.contains_key(resource) {
                                let path = format!("{base}/{field}/{resource}");
                                operations.push(json!({"op": "add", "path": path, "value": quantity}));
                            }
                        }
                    }
                }
            }
        }
    }
    operations
}

fn allow(patch: String) -> Decision {
    Decision { allowed: true, reason: String::new(), patch, warnings: Vec::new() }
}

export!(ResourceDefaults);
