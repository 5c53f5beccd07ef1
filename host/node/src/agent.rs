//! The agent's loop, every [`LEASE_RENEW_INTERVAL`]: the Node registered
//! (created when missing, as after a deletion, or its labels brought up to
//! date), its Lease in `kube-node-lease` renewed, its status patched when
//! it changes and at least every [`STATUS_REPORT_INTERVAL`]. Every write
//! goes through the API as the node (`system:node:<name>`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engenho_api::kube::node_restriction::NODE_LEASE_NAMESPACE;
use engenho_api::kube::{ApiClient, Refused};
use http::Method;
use k8s_openapi::chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::machine::Machine;
use crate::status::{self, NodeRole, NodeSettings};

/// How often the Lease is renewed (the kubelet's: a quarter of its
/// duration).
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);

/// The Lease's duration, seconds (the kubelet's default).
pub const LEASE_DURATION_SECONDS: u32 = 40;

/// Longest the status goes unreported while nothing changes.
pub const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Longest one write may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Wait after a failed round before the next.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// This node's role in the cluster, asked each round and every
/// [`ROLE_CHECK_INTERVAL`] between rounds.
pub type RoleCheck = Arc<dyn Fn() -> NodeRole + Send + Sync>;

/// How often the role is asked between rounds: a changed role starts a
/// round at once, which relabels the Node.
const ROLE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A node's agent.
pub struct NodeAgent {
    client: ApiClient,
    settings: NodeSettings,
    data_dir: PathBuf,
    role: RoleCheck,
}

/// What the last round reported.
#[derive(Default)]
struct Reported {
    status: Option<Value>,
    at: Option<Instant>,
}

impl NodeAgent {
    /// The agent of the node `settings` describes, writing through
    /// `client` (the node's own), reading the disk of `data_dir`.
    pub fn new(client: ApiClient, settings: NodeSettings, data_dir: PathBuf, role: RoleCheck) -> Self {
        Self { client, settings, data_dir, role }
    }

    /// Keeps the node registered, leased and reported until `stop` turns
    /// true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut reported = Reported::default();
        loop {
            let labeled = (self.role)();
            let wait = match tokio::time::timeout(WRITE_TIMEOUT * 3, self.round(&mut reported, labeled)).await {
                Ok(Ok(())) => LEASE_RENEW_INTERVAL,
                Ok(Err(error)) => {
                    tracing::warn!(node = %self.settings.name, %error, "the node agent's round failed");
                    reported = Reported::default();
                    RETRY_AFTER
                }
                Err(_) => {
                    tracing::warn!(node = %self.settings.name, "the node agent's round ran out of time");
                    reported = Reported::default();
                    RETRY_AFTER
                }
            };
            let next = Instant::now() + wait;
            while Instant::now() < next && (self.role)() == labeled {
                tokio::select! {
                    () = tokio::time::sleep(ROLE_CHECK_INTERVAL.min(next - Instant::now())) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
            }
        }
    }

    /// One round: registration (when the Node is missing or its labels
    /// are not ours), status (when due), lease.
    async fn round(&self, reported: &mut Reported, role: NodeRole) -> Result<(), AgentError> {
        let labels = status::labels(&self.settings, role);
        let node = self.register(&labels).await?;
        let machine = Machine::probe(&self.data_dir)?;
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let stored = node.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        let previous = match &reported.status {
            Some(status) => status["conditions"].as_array().cloned().unwrap_or_default(),
            None => stored,
        };
        let status = status::status(&self.settings, &machine, &previous, &now);
        let changed = !reported.status.as_ref().is_some_and(|before| status::same_but_heartbeats(before, &status))
            || node.pointer("/status/conditions").is_none();
        if changed || reported.at.is_none_or(|at| at.elapsed() >= STATUS_REPORT_INTERVAL) {
            let patch = json!({"status": status});
            self.send(Method::PATCH, &self.node_path("/status"), "application/merge-patch+json", &patch).await?;
            reported.status = Some(status);
            reported.at = Some(Instant::now());
        }
        let uid = node.pointer("/metadata/uid").and_then(Value::as_str).map(str::to_owned);
        self.renew_lease(uid).await
    }

    /// The Node as stored: created when missing, its labels brought to
    /// `labels` when they differ.
    async fn register(&self, labels: &Value) -> Result<Value, AgentError> {
        let ours = |node: &Value| {
            labels.as_object().into_iter().flatten().all(|(key, value)| {
                let stored = node.pointer("/metadata/labels").and_then(|l| l.get(key));
                stored == Some(value) || (value.is_null() && stored.is_none())
            })
        };
        match self.get(&self.node_path("")).await? {
            Some(node) if ours(&node) => Ok(node),
            Some(_) => {
                let patch = json!({"metadata": {"labels": labels}});
                self.send(Method::PATCH, &self.node_path(""), "application/merge-patch+json", &patch).await
            }
            None => {
                let mut labels = labels.clone();
                if let Some(labels) = labels.as_object_mut() {
                    labels.retain(|_, value| !value.is_null());
                }
                let node = json!({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": self.settings.name, "labels": labels},
                    "spec": {"taints": self.settings.register_taints.0,
                        "podCIDR": self.settings.pod_cidr, "podCIDRs": [self.settings.pod_cidr]}});
                tracing::info!(node = %self.settings.name, "registering the node");
                self.send(Method::POST, "/api/v1/nodes", "application/json", &node).await
            }
        }
    }

    /// Renews the node's Lease, creating it (owned by the Node of
    /// `node_uid`) when there is none.
    async fn renew_lease(&self, node_uid: Option<String>) -> Result<(), AgentError> {
        let path = format!("{}/{}", leases_path(), self.settings.name);
        let renew_time = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        match self.get(&path).await? {
            Some(mut lease) => {
                lease["spec"]["holderIdentity"] = json!(self.settings.name);
                lease["spec"]["leaseDurationSeconds"] = json!(LEASE_DURATION_SECONDS);
                lease["spec"]["renewTime"] = json!(renew_time);
                self.send(Method::PUT, &path, "application/json", &lease).await?;
            }
            None => {
                let owners: Vec<Value> = node_uid
                    .into_iter()
                    .map(|uid| json!({"apiVersion": "v1", "kind": "Node", "name": self.settings.name, "uid": uid}))
                    .collect();
                let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.settings.name, "namespace": NODE_LEASE_NAMESPACE, "ownerReferences": owners},
                    "spec": {"holderIdentity": self.settings.name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                        "renewTime": renew_time}});
                self.send(Method::POST, &leases_path(), "application/json", &lease).await?;
            }
        }
        Ok(())
    }

    fn node_path(&self, subresource: &str) -> String {
        format!("/api/v1/nodes/{}{subresource}", self.settings.name)
    }

    /// The object at `path`, or none.
    async fn get(&self, path: &str) -> Result<Option<Value>, AgentError> {
        let request = self.client.send(Method::GET, path, "application/json", Vec::new());
        match tokio::time::timeout(WRITE_TIMEOUT, request).await.map_err(|_| AgentError::TimedOut)? {
            Ok(body) => Ok(Some(serde_json::from_slice(&body)?)),
            Err(refused) if refused.code == 404 => Ok(None),
            Err(refused) => Err(refused.into()),
        }
    }

    /// Sends `body` to `path`; the object answered.
    async fn send(&self, method: Method, path: &str, content_type: &str, body: &Value) -> Result<Value, AgentError> {
        let request = self.client.send(method, path, content_type, body.to_string().into_bytes());
        let answer = tokio::time::timeout(WRITE_TIMEOUT, request).await.map_err(|_| AgentError::TimedOut)??;
        Ok(serde_json::from_slice(&answer)?)
    }
}

fn leases_path() -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{NODE_LEASE_NAMESPACE}/leases")
}

/// Why a round of the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The API refused a request.
    #[error("the API refused: {0}")]
    Refused(#[from] Refused),
    /// The machine could not be read.
    #[error(transparent)]
    Probe(#[from] crate::machine::ProbeError),
    /// The API answered something that is not JSON.
    #[error("the API's answer: {0}")]
    Json(#[from] serde_json::Error),
    /// A request took longer than its deadline.
    #[error("a request to the API took longer than {WRITE_TIMEOUT:?}")]
    TimedOut,
}
