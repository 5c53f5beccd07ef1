//! Admission policy: objects must carry the labels the configuration names.
//!
//! Configuration: `{"labels": ["team", "app.kubernetes.io/name"]}`. A
//! create or update whose object lacks one of them is denied, naming the
//! missing labels; deletes are always allowed.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

wit_bindgen::generate!({
    world: "admission-policy",
    path: "../../../wit",
});

use engenho::plugins::admission_types::{Decision, Operation, Review};
use exports::engenho::plugins::policy::Guest;

/// The policy's configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Labels every admitted object must carry.
    labels: Vec<String>,
}

thread_local! {
    static CONFIG: RefCell<Config> = const { RefCell::new(Config { labels: Vec::new() }) };
}

struct RequiredLabels;

impl Guest for RequiredLabels {
    fn configure(config: String) -> Result<(), String> {
        let parsed: Config = serde_json::from_str(&config).map_err(|e| format!("invalid configuration: {e}"))?;
        CONFIG.with(|c| *c.borrow_mut() = parsed);
        Ok(())
    }

    fn admit(review: Review) -> Decision {
        // With no labels required there is nothing to read.
        if review.operation == Operation::Delete || CONFIG.with(|c| c.borrow().labels.is_empty()) {
            return allow();
        }
        let object: Object = match serde_json::from_str(&review.object) {
            Ok(object) => object,
            Err(e) => return deny(format!("the object is not JSON: {e}")),
        };
        let labels = object.metadata.labels.unwrap_or_default();
        let missing: Vec<String> =
            CONFIG.with(|c| c.borrow().labels.iter().filter(|l| !labels.contains_key(l.as_str())).cloned().collect());
        if missing.is_empty() { allow() } else { deny(format!("missing required labels: {}", missing.join(", "))) }
    }
}

/// An object's label names; the rest of the JSON is skipped, not built.
#[derive(Deserialize)]
struct Object<'a> {
    #[serde(borrow, default)]
    metadata: Metadata<'a>,
}

#[derive(Default, Deserialize)]
struct Metadata<'a> {
    #[serde(borrow)]
    labels: Option<BTreeMap<Cow<'a, str>, IgnoredAny>>,
}

fn allow() -> Decision {
    Decision { allowed: true, reason: String::new(), patch: String::new(), warnings: Vec::new() }
}

fn deny(reason: String) -> Decision {
    Decision { allowed: false, reason, patch: String::new(), warnings: Vec::new() }
}

export!(RequiredLabels);
