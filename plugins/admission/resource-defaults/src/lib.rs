//! Mutating admission policy: containers of new pods that set no resource
//! requests or limits get the configured defaults.
//!
//! Configuration: `{"requests": {"cpu": "100m", "memory": "128Mi"},
//! "limits": {"cpu": "500m", "memory": "256Mi"}}`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
        let pod: Pod = match serde_json::from_str(&review.object) {
            Ok(pod) => pod,
            Err(_) => return allow(String::new()),
        };
        let patch = CONFIG.with(|c| {
            let config = c.borrow();
            let operations = config.as_ref().map(|config| defaults(&pod, config)).unwrap_or_default();
            if operations.is_empty() { String::new() } else { serde_json::to_string(&operations).unwrap_or_default() }
        });
        allow(patch)
    }
}

/// What a pod's containers set of their resources; the rest of the JSON is
/// skipped, not built.
#[derive(Deserialize)]
struct Pod<'a> {
    #[serde(borrow, default)]
    spec: Spec<'a>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Spec<'a> {
    #[serde(borrow)]
    init_containers: Option<Vec<Container<'a>>>,
    #[serde(borrow)]
    containers: Option<Vec<Container<'a>>>,
}

#[derive(Deserialize)]
struct Container<'a> {
    #[serde(borrow)]
    resources: Option<Resources<'a>>,
}

#[derive(Deserialize)]
struct Resources<'a> {
    #[serde(borrow)]
    requests: Option<BTreeMap<Cow<'a, str>, IgnoredAny>>,
    #[serde(borrow)]
    limits: Option<BTreeMap<Cow<'a, str>, IgnoredAny>>,
}

/// One JSON patch operation adding `value` at `path`.
#[derive(Serialize)]
struct Add<'a> {
    op: &'static str,
    path: String,
    value: Added<'a>,
}

/// What an [`Add`] adds: an empty object, the configured requests or
/// limits, or one configured quantity.
#[derive(Serialize)]
#[serde(untagged)]
enum Added<'a> {
    Empty(Map<String, Value>),
    Defaults(&'a Map<String, Value>),
    Quantity(&'a Value),
}

/// JSON patch operations that give each container the defaults it lacks.
fn defaults<'a>(pod: &Pod<'_>, config: &'a Config) -> Vec<Add<'a>> {
    let mut operations = Vec::new();
    let mut add = |path: String, value: Added<'a>| operations.push(Add { op: "add", path, value });
    for (list, containers) in [("initContainers", &pod.spec.init_containers), ("containers", &pod.spec.containers)] {
        for (index, container) in containers.iter().flatten().enumerate() {
            let base = format!("/spec/{list}/{index}/resources");
            if container.resources.is_none() {
                add(base.clone(), Added::Empty(Map::new()));
            }
            let present = |field: &str| {
                let resources = container.resources.as_ref()?;
                if field == "requests" { resources.requests.as_ref() } else { resources.limits.as_ref() }
            };
            for (field, wanted) in [("requests", &config.requests), ("limits", &config.limits)] {
                if wanted.is_empty() {
                    continue;
                }
                match present(field) {
                    None => add(format!("{base}/{field}"), Added::Defaults(wanted)),
                    Some(present) => {
                        for (resource, quantity) in wanted {
                            if !present.contains_key(resource.as_str()) {
                                add(format!("{base}/{field}/{resource}"), Added::Quantity(quantity));
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
