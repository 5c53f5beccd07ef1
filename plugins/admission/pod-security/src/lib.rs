//! Admission policy: pods must meet the Pod Security Standards' baseline
//! level. Refused: privileged containers; host network, PID or IPC
//! namespaces; hostPath volumes; host ports; capabilities added beyond the
//! baseline set.
//!
//! Configuration: `{"exemptNamespaces": ["kube-system"]}`.

use std::cell::RefCell;

use serde::Deserialize;
use serde_json::Value;

wit_bindgen::generate!({
    world: "admission-policy",
    path: "../../../wit",
});

use engenho::plugins::admission_types::{Decision, Operation, Review};
use exports::engenho::plugins::policy::Guest;

/// Capabilities the baseline level allows containers to add.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    exempt_namespaces: Vec<String>,
}

thread_local! {
    static CONFIG: RefCell<Config> = const { RefCell::new(Config { exempt_namespaces: Vec::new() }) };
}

struct PodSecurity;

impl Guest for PodSecurity {
    fn configure(config: String) -> Result<(), String> {
        let parsed: Config = serde_json::from_str(&config).map_err(|e| format!("invalid configuration: {e}"))?;
        CONFIG.with(|c| *c.borrow_mut() = parsed);
        Ok(())
    }

    fn admit(review: Review) -> Decision {
        let exempt = CONFIG.with(|c| c.borrow().exempt_namespaces.contains(&review.namespace));
        if review.operation == Operation::Delete || review.kind != "Pod" || exempt {
            return decision(true, String::new());
        }
        let pod: Value = match serde_json::from_str(&review.object) {
            Ok(pod) => pod,
            Err(e) => return decision(false, format!("the pod is not JSON: {e}")),
        };
        let violations = violations(pod.get("spec").unwrap_or(&Value::Null));
        if violations.is_empty() {
            decision(true, String::new())
        } else {
            decision(false, format!("violates PodSecurity \"baseline\": {}", violations.join(", ")))
        }
    }
}

/// The baseline violations of a pod spec, worded as Kubernetes words them.
fn violations(spec: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for (field, what) in [
        ("hostNetwork", "host namespaces (hostNetwork=true)"),
        ("hostPID", "host namespaces (hostPID=true)"),
        ("hostIPC", "host namespaces (hostIPC=true)"),
    ] {
        if spec.get(field).and_then(Value::as_bool) == Some(true) {
            found.push(what.to_owned());
        }
    }
    let host_paths: Vec<&str> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("hostPath").is_some())
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    if !host_paths.is_empty() {
        found.push(format!("hostPath volumes (volumes {:?})", host_paths));
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
            let name = container.get("name").and_then(Value::as_str).unwrap_or_default();
            let context = container.get("securityContext");
            if context.and_then(|c| c.get("privileged")).and_then(Value::as_bool) == Some(true) {
                found.push(format!("privileged (container {name:?} must not set securityContext.privileged=true)"));
            }
            let added: Vec<&str> = context
                .and_then(|c| c.pointer("/capabilities/add"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|c| !BASELINE_CAPABILITIES.contains(c))
                .collect();
            if !added.is_empty() {
                found.push(format!("non-default capabilities (container {name:?} must not include {added:?} in securityContext.capabilities.add)"));
            }
            let host_ports = container
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|p| p.get("hostPort").and_then(Value::as_i64).is_some_and(|port| port != 0));
            if host_ports {
                found.push(format!("hostPort (container {name:?} uses hostPort)"));
            }
        }
    }
    found
}

fn decision(allowed: bool, reason: String) -> Decision {
    Decision { allowed, reason, patch: String::new(), warnings: Vec::new() }
}

export!(PodSecurity);
