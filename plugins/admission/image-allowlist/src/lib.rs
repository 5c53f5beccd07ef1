//! Admission policy: every container image must be pinned by digest
//! (`name@sha256:...`) and come from an allowed source.
//!
//! Configuration: `{"allowedPrefixes": ["registry.example.com/"]}`; an
//! empty list allows every source (digests are still required).

use std::cell::RefCell;

use serde::Deserialize;
use serde_json::Value;

wit_bindgen::generate!({
    world: "admission-policy",
    path: "../../../wit",
});

use engenho::plugins::admission_types::{Decision, Operation, Review};
use exports::engenho::plugins::policy::Guest;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    allowed_prefixes: Vec<String>,
}

thread_local! {
    static CONFIG: RefCell<Config> = const { RefCell::new(Config { allowed_prefixes: Vec::new() }) };
}

struct ImageAllowlist;

impl Guest for ImageAllowlist {
    fn configure(config: String) -> Result<(), String> {
        let parsed: Config = serde_json::from_str(&config).map_err(|e| format!("invalid configuration: {e}"))?;
        CONFIG.with(|c| *c.borrow_mut() = parsed);
        Ok(())
    }

    fn admit(review: Review) -> Decision {
        if review.operation == Operation::Delete || review.kind != "Pod" {
            return decision(true, String::new());
        }
        let pod: Value = match serde_json::from_str(&review.object) {
            Ok(pod) => pod,
            Err(e) => return decision(false, format!("the pod is not JSON: {e}")),
        };
        let mut refused = Vec::new();
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for container in pod.pointer(&format!("/spec/{list}")).and_then(Value::as_array).into_iter().flatten() {
                let image = container.get("image").and_then(Value::as_str).unwrap_or_default();
                if let Some(why) = CONFIG.with(|c| problem(image, &c.borrow().allowed_prefixes)) {
                    refused.push(format!("image {image:?} {why}"));
                }
            }
        }
        if refused.is_empty() { decision(true, String::new()) } else { decision(false, refused.join("; ")) }
    }
}

/// Why `image` is not allowed, if it is not.
fn problem(image: &str, allowed_prefixes: &[String]) -> Option<&'static str> {
    let digest = image.rsplit_once("@sha256:").map(|(_, d)| d);
    if !digest.is_some_and(|d| d.len() == 64 && d.chars().all(|c| c.is_ascii_hexdigit())) {
        return Some("is not pinned by a sha256 digest");
    }
    if !allowed_prefixes.is_empty() && !allowed_prefixes.iter().any(|p| image.starts_with(p.as_str())) {
        return Some("is not from an allowed source");
    }
    None
}

fn decision(allowed: bool, reason: String) -> Decision {
    Decision { allowed, reason, patch: String::new(), warnings: Vec::new() }
}

export!(ImageAllowlist);
