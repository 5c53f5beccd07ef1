//! Pods as controllers read them: the union of the fields the built-in
//! controllers look at, and the facts Kubernetes' controllers derive from
//! them (active, terminating, ready, restarts, addresses). Unknown fields
//! are skipped when reading.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::kinds::PODS;
use crate::meta::{Condition, ObjectMeta, condition, parse_time};
use crate::nodes::Taint;
use crate::revisions::REVISION_LABEL;
use crate::{ApiError, Cluster, Selector};

/// A Pod.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// Where and what it runs.
    pub spec: PodSpec,
    /// How it runs.
    pub status: PodStatus,
}

/// A Pod's spec, as far as controllers read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    /// The node it is bound to, or empty.
    pub node_name: String,
    /// Its hostname, if set (an endpoint's hostname in its subdomain).
    pub hostname: String,
    /// Its subdomain, if set (the headless Service it is named under).
    pub subdomain: String,
    /// Its containers (their named ports).
    pub containers: Vec<Container>,
    /// The taints it tolerates.
    pub tolerations: Vec<Toleration>,
    /// Its affinity, as written (where a daemon pod names its node before
    /// it is bound).
    pub affinity: Value,
}

/// A container, as far as controllers read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    /// The ports it names.
    pub ports: Vec<ContainerPort>,
}

/// One port of a container.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerPort {
    /// Its name, if any.
    pub name: String,
    /// The port number in the container.
    pub container_port: i32,
    /// Its protocol (empty: `TCP`).
    pub protocol: String,
}

/// A toleration of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Toleration {
    /// The taint key it tolerates; empty: every key (with `Exists`).
    pub key: String,
    /// `Equal` (the default) or `Exists`.
    pub operator: String,
    /// The value `Equal` compares with.
    pub value: String,
    /// The effect it tolerates; empty: every effect.
    pub effect: String,
    /// How long a `NoExecute` taint is tolerated; none: for ever.
    pub toleration_seconds: Option<i64>,
}

impl Toleration {
    /// Whether it tolerates `taint`, as Kubernetes matches them.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator.as_str() {
            "" | "Equal" => self.value == taint.value,
            "Exists" => true,
            _ => false,
        }
    }
}

/// A Pod's status, as far as controllers read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    pub phase: String,
    /// Its conditions, `Ready` among them.
    pub conditions: Vec<Condition>,
    /// Its containers' states.
    pub container_statuses: Vec<ContainerStatus>,
    /// Its init containers' states.
    pub init_container_statuses: Vec<ContainerStatus>,
    /// Its primary IP.
    #[serde(rename = "podIP")]
    pub pod_ip: String,
    /// All its IPs, the primary first.
    #[serde(rename = "podIPs")]
    pub pod_ips: Vec<PodIp>,
    /// The facts derived from the status, worked out on first use and kept
    /// with the decoded pod, which a controller reads on every reconcile
    /// while it is unchanged: a pod's status is not to be changed in place
    /// once a fact was read (a copy works them out anew).
    #[serde(skip)]
    pub derived: Derived,
}

/// Facts derived from a pod's status, worked out on first use. A copy
/// starts without them: a copied pod's status may be changed.
#[derive(Debug, Default)]
pub struct Derived(OnceLock<Facts>);

impl Clone for Derived {
    fn clone(&self) -> Self {
        Self::default()
    }
}

#[derive(Debug, Clone, Copy)]
struct Facts {
    terminal: bool,
    succeeded: bool,
    ready_since: Option<Option<DateTime<Utc>>>,
}

/// A container's state, as far as controllers read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStatus {
    /// How often the container restarted.
    pub restart_count: i32,
    /// Its current state, as far as controllers read it.
    pub state: ContainerState,
}

/// A container's current state, as far as controllers read it (read as a
/// typed record, not a JSON tree: every controller decodes every pod's
/// statuses on each reconcile).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ContainerState {
    /// Set when the container has exited.
    pub terminated: Option<Terminated>,
}

/// How a container exited, as far as controllers read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Terminated {
    /// When it exited (RFC 3339).
    pub finished_at: Option<String>,
}

/// One IP of a pod.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PodIp {
    /// The address.
    pub ip: String,
}

impl Pod {
    /// Whether it succeeded.
    pub fn succeeded(&self) -> bool {
        self.facts().succeeded
    }

    /// Whether it ran to an end and will not run again: `Succeeded` or
    /// `Failed`.
    pub fn is_terminal(&self) -> bool {
        self.facts().terminal
    }

    /// Whether it still runs or will: not terminal, not being deleted
    /// (Kubernetes' `IsPodActive`).
    pub fn is_active(&self) -> bool {
        !self.is_terminal() && !self.metadata.is_deleting()
    }

    /// Whether it is being deleted without having finished (Kubernetes'
    /// `IsPodTerminating`).
    pub fn is_terminating(&self) -> bool {
        self.metadata.is_deleting() && !self.is_terminal()
    }

    /// Whether its `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.facts().ready_since.is_some()
    }

    /// Since when it is ready: `None` when its `Ready` condition is not
    /// `True`, else the condition's transition time, if it parses.
    pub fn ready_since(&self) -> Option<Option<DateTime<Utc>>> {
        self.facts().ready_since
    }

    /// Whether it is `Running` with its `Ready` condition `True`.
    pub fn is_running_and_ready(&self) -> bool {
        self.status.phase == "Running" && self.is_ready()
    }

    /// The most restarts of any of its containers, init containers aside.
    pub fn max_container_restarts(&self) -> i32 {
        self.status.container_statuses.iter().map(|c| c.restart_count).max().unwrap_or(0)
    }

    /// Its containers' restarts, init containers included, in all.
    pub fn total_restarts(&self) -> i32 {
        let all = self.status.container_statuses.iter().chain(&self.status.init_container_statuses);
        all.map(|c| c.restart_count.max(0)).fold(0, i32::saturating_add)
    }

    /// Its IPs, the primary first, without repeats.
    pub fn ips(&self) -> Vec<&str> {
        let mut ips: Vec<&str> = Vec::new();
        let all = std::iter::once(self.status.pod_ip.as_str()).chain(self.status.pod_ips.iter().map(|p| p.ip.as_str()));
        for ip in all {
            if !ip.is_empty() && !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        ips
    }

    /// Its IP of `family` (`IPv4` or `IPv6`), if it has one.
    pub fn ip_of(&self, family: &str) -> Option<&str> {
        self.ips().into_iter().find(|ip| ip_family(ip) == family)
    }

    /// The revision it was made from: its `controller-revision-hash` label
    /// (empty when it has none).
    pub fn revision(&self) -> &str {
        self.metadata.labels.get(REVISION_LABEL).map_or("", String::as_str)
    }

    fn facts(&self) -> &Facts {
        self.status.derived.0.get_or_init(|| {
            let succeeded = self.status.phase == "Succeeded";
            let ready = condition(&self.status.conditions, "Ready").filter(|ready| ready.status == "True");
            Facts {
                terminal: succeeded || self.status.phase == "Failed",
                succeeded,
                ready_since: ready.map(|ready| ready.last_transition_time.as_deref().and_then(parse_time)),
            }
        })
    }
}

/// The pods the object `owner` describes controls, in its namespace.
///
/// # Errors
/// The list failed, or a pod did not decode.
pub fn controlled_by<C: Cluster>(cluster: &C, owner: &ObjectMeta) -> Result<Vec<Pod>, ApiError> {
    let owned = Selector::owned_by(&owner.namespace, &owner.uid);
    let pods: Vec<Pod> = cluster.list_as(&PODS, &owned)?;
    Ok(pods.into_iter().filter(|p| p.metadata.is_controlled_by(&owner.uid)).collect())
}

/// The family of an address: `IPv6` when it has a colon, else `IPv4`.
pub fn ip_family(ip: &str) -> &'static str {
    if ip.contains(':') { "IPv6" } else { "IPv4" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: Value) -> Pod {
        serde_json::from_value(value).expect("a pod")
    }

    #[test]
    fn phases_and_deletion_make_a_pod_active_terminal_or_terminating() {
        let running = pod(json!({"status": {"phase": "Running"}}));
        assert!(running.is_active() && !running.is_terminal() && !running.is_terminating());
        let deleting =
            pod(json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}}));
        assert!(!deleting.is_active() && deleting.is_terminating());
        let done =
            pod(json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Failed"}}));
        assert!(done.is_terminal() && !done.is_terminating() && !done.succeeded());
    }

    #[test]
    fn readiness_is_the_ready_condition_and_its_transition_time() {
        let ready = pod(json!({"status": {"phase": "Pending", "conditions": [
            {"type": "Initialized", "status": "True"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ]}}));
        assert!(ready.is_ready() && !ready.is_running_and_ready());
        assert_eq!(ready.ready_since(), Some(parse_time("2026-01-01T00:00:00Z")));
        let unready = pod(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert_eq!(unready.ready_since(), None);
    }

    #[test]
    fn a_copied_pod_works_its_facts_out_anew() {
        // Goal: facts read on a pod do not follow a copy whose status is
        // then changed.
        let running = pod(json!({"status": {"phase": "Running"}}));
        assert!(!running.is_terminal());
        let mut failed = running.clone();
        failed.status.phase = "Failed".into();
        assert!(failed.is_terminal() && !failed.succeeded());
        assert!(!running.is_terminal());
    }

    #[test]
    fn restarts_count_the_most_of_one_container_or_all_of_them() {
        let restarted = pod(json!({"status": {
            "containerStatuses": [{"restartCount": 2}, {"restartCount": 3}],
            "initContainerStatuses": [{"restartCount": 4}],
        }}));
        assert_eq!((restarted.max_container_restarts(), restarted.total_restarts()), (3, 9));
        assert_eq!(Pod::default().max_container_restarts(), 0);
    }

    #[test]
    fn ips_come_primary_first_once_each_by_family() {
        let dual = pod(json!({"status": {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}}));
        assert_eq!(dual.ips(), ["10.0.0.1", "fd00::1"]);
        assert_eq!((dual.ip_of("IPv4"), dual.ip_of("IPv6")), (Some("10.0.0.1"), Some("fd00::1")));
        assert!(Pod::default().ips().is_empty());
    }

    #[test]
    fn tolerations_match_taints_by_effect_key_and_value() {
        let taint = Taint { key: "dedicated".into(), value: "db".into(), effect: "NoExecute".into(), time_added: None };
        let toleration = |value: Value| -> Toleration { serde_json::from_value(value).expect("a toleration") };
        assert!(toleration(json!({"key": "dedicated", "value": "db"})).tolerates(&taint));
        assert!(!toleration(json!({"key": "dedicated", "value": "web"})).tolerates(&taint));
        assert!(toleration(json!({"operator": "Exists"})).tolerates(&taint));
        assert!(!toleration(json!({"operator": "Exists", "effect": "NoSchedule"})).tolerates(&taint));
        assert!(!toleration(json!({"key": "dedicated", "operator": "Gt"})).tolerates(&taint));
    }
}
