//! Admission policy: every container image must be pinned by digest
//! (`name@sha256:...`) and come from an allowed source.
//!
//! Configuration: `{"allowedPrefixes": ["registry.example.com/"]}`; an
//! empty list allows every source (digests are still required).

use std::borrow::Cow;
use std::cell::RefCell;

use serde::Deserialize;

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
        let pod: Pod = match serde_json::from_str(&review.object) {
            Ok(pod) => pod,
            Err(e) => return decision(false, format!("the pod is not JSON: {e}")),
        };
        let mut refused = Vec::new();
        let spec = &pod.spec;
        let containers = [&spec.init_containers, &spec.containers, &spec.ephemeral_containers];
        for container in containers.into_iter().flatten().flatten() {
            let image = container.image.as_deref().unwrap_or_default();
            if let Some(why) = CONFIG.with(|c| problem(image, &c.borrow().allowed_prefixes)) {
                refused.push(format!("image {image:?} {why}"));
            }
        }
        if refused.is_empty() { decision(true, String::new()) } else { decision(false, refused.join("; ")) }
    }
}

/// The images of a pod; the rest of the JSON is skipped, not built.
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
    #[serde(borrow)]
    ephemeral_containers: Option<Vec<Container<'a>>>,
}

#[derive(Deserialize)]
struct Container<'a> {
    #[serde(borrow)]
    image: Option<Cow<'a, str>>,
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
