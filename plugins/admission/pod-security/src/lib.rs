//! Admission policy: pods must meet the Pod Security Standards' baseline
//! level. Refused: privileged containers; host network, PID or IPC
//! namespaces; hostPath volumes; host ports; capabilities added beyond the
//! baseline set.
//!
//! Configuration: `{"exemptNamespaces": ["kube-system"]}`.

use std::borrow::Cow;
use std::cell::RefCell;

use serde::Deserialize;
use serde::de::IgnoredAny;

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
        let pod: Pod = match serde_json::from_str(&review.object) {
            Ok(pod) => pod,
            Err(e) => return decision(false, format!("the pod is not JSON: {e}")),
        };
        let violations = violations(&pod.spec);
        if violations.is_empty() {
            decision(true, String::new())
        } else {
            decision(false, format!("violates PodSecurity \"baseline\": {}", violations.join(", ")))
        }
    }
}

/// The parts of a pod the baseline looks at; the rest of the JSON is
/// skipped, not built.
#[derive(Deserialize)]
struct Pod<'a> {
    #[serde(borrow, default)]
    spec: Spec<'a>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Spec<'a> {
    host_network: Option<bool>,
    #[serde(rename = "hostPID")]
    host_pid: Option<bool>,
    #[serde(rename = "hostIPC")]
    host_ipc: Option<bool>,
    #[serde(borrow)]
    volumes: Option<Vec<Volume<'a>>>,
    #[serde(borrow)]
    init_containers: Option<Vec<Container<'a>>>,
    #[serde(borrow)]
    containers: Option<Vec<Container<'a>>>,
    #[serde(borrow)]
    ephemeral_containers: Option<Vec<Container<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Volume<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    host_path: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    security_context: Option<SecurityContext<'a>>,
    ports: Option<Vec<Port>>,
}

#[derive(Deserialize)]
struct SecurityContext<'a> {
    privileged: Option<bool>,
    #[serde(borrow)]
    capabilities: Option<Capabilities<'a>>,
}

#[derive(Deserialize)]
struct Capabilities<'a> {
    #[serde(borrow)]
    add: Option<Vec<Cow<'a, str>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Port {
    host_port: Option<i64>,
}

/// The baseline violations of a pod spec, worded as Kubernetes words them.
fn violations(spec: &Spec<'_>) -> Vec<String> {
    let mut found = Vec::new();
    for (set, what) in [
        (spec.host_network, "host namespaces (hostNetwork=true)"),
        (spec.host_pid, "host namespaces (hostPID=true)"),
        (spec.host_ipc, "host namespaces (hostIPC=true)"),
    ] {
        if set == Some(true) {
            found.push(what.to_owned());
        }
    }
    let host_paths: Vec<&str> =
        spec.volumes.iter().flatten().filter(|v| v.host_path.is_some()).map(|v| v.name.as_ref()).collect();
    if !host_paths.is_empty() {
        found.push(format!("hostPath volumes (volumes {host_paths:?})"));
    }
    let containers = [&spec.init_containers, &spec.containers, &spec.ephemeral_containers];
    for container in containers.into_iter().flatten().flatten() {
        let name = container.name.as_ref();
        let context = container.security_context.as_ref();
        if context.and_then(|c| c.privileged) == Some(true) {
            found.push(format!("privileged (container {name:?} must not set securityContext.privileged=true)"));
        }
        let added: Vec<&str> = context
            .and_then(|c| c.capabilities.as_ref())
            .and_then(|c| c.add.as_ref())
            .into_iter()
            .flatten()
            .map(AsRef::as_ref)
            .filter(|c| !BASELINE_CAPABILITIES.contains(c))
            .collect();
        if !added.is_empty() {
            found.push(format!(
                "non-default capabilities (container {name:?} must not include {added:?} in securityContext.capabilities.add)"
            ));
        }
        if container.ports.iter().flatten().any(|p| p.host_port.is_some_and(|port| port != 0)) {
            found.push(format!("hostPort (container {name:?} uses hostPort)"));
        }
    }
    found
}

fn decision(allowed: bool, reason: String) -> Decision {
    Decision { allowed, reason, patch: String::new(), warnings: Vec::new() }
}

export!(PodSecurity);
