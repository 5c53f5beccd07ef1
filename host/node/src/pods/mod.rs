//! The pods bound to this node. The pod loop (on the shared controller
//! runtime) starts a [worker](worker) for each pod of a WebAssembly runtime
//! handler (`wasi`, `tlisp`), tells it of every change, and drops it when
//! the pod leaves the store. A pod it cannot run, one that names no
//! WebAssembly runtime (an OCI image such as `nginx:1.27`), waits with
//! reason `ErrImagePull` and a message saying that this node runs
//! WebAssembly pods and how to ask for one, and gets a `Failed` Event, as a
//! kubelet reports an image it cannot pull; deleted, it goes at once, as
//! nothing of it runs.

pub mod addresses;
pub mod lifecycle;
pub mod logs;
pub mod ports;
pub mod probes;
pub mod spec;
pub mod volumes;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use engenho_api::kube::ApiClient;
use engenho_api::kube::runtime_classes::WASM_HANDLERS;
use engenho_control::{Action, Change, Filter, Informer, Reconciler, Subscription, WorkQueue};
use http::Method;
use k8s_openapi::chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

pub use worker::{Bundled, Shared};

/// Longest one request to the API may take.
pub(crate) const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The reason a container waits with when this node cannot run it.
pub const UNRUNNABLE_REASON: &str = "ErrImagePull";

/// The loop over the pods bound to one node.
pub struct PodLoop {
    shared: Arc<Shared>,
    pods: Arc<Informer>,
    workers: Mutex<HashMap<String, worker::Handle>>,
    /// Whether the directories of pods gone while the agent was down have
    /// been removed (at the first resync, the informer long since synced).
    swept: std::sync::atomic::AtomicBool,
}

impl PodLoop {
    /// The loop of the node `shared` describes, reading `pods`.
    pub fn new(shared: Shared, pods: Arc<Informer>) -> Self {
        Self { shared: Arc::new(shared), pods, workers: Mutex::default(), swept: Default::default() }
    }

    /// The handler pod `pod` asks for: its RuntimeClass's, or none.
    async fn handler(&self, pod: &Value) -> Result<Option<String>, String> {
        let Some(class) = pod.pointer("/spec/runtimeClassName").and_then(Value::as_str) else { return Ok(None) };
        let path = format!("/apis/node.k8s.io/v1/runtimeclasses/{class}");
        let request = self.shared.client.send(Method::GET, &path, "application/json", Vec::new());
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await.map_err(|_| timed_out())? {
            Ok(body) => {
                let class: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                Ok(class["handler"].as_str().map(str::to_owned))
            }
            Err(refused) if refused.code == 404 => Ok(Some(String::new())),
            Err(refused) => Err(refused.to_string()),
        }
    }

    /// Reports pod `pod` (of `cached`), which this node cannot run; or, once
    /// deleted, removes it.
    async fn unrunnable(&self, cached: &engenho_control::Cached, pod: &Value, handler: Option<&str>) -> Action {
        let (namespace, name) = (cached.namespace.as_str(), cached.name.as_str());
        let client = &self.shared.client;
        if cached.deleting {
            let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
            let body = json!({"gracePeriodSeconds": 0, "preconditions": {"uid": cached.uid}}).to_string().into_bytes();
            let request = client.send(Method::DELETE, &path, "application/json", body);
            return match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
                Ok(Ok(_)) => Action::Done,
                Ok(Err(refused)) if matches!(refused.code, 404 | 409) => Action::Done,
                Ok(Err(refused)) => Action::Retry(refused.to_string()),
                Err(_) => Action::Retry(timed_out()),
            };
        }
        let message = unrunnable_message(&self.shared.node, pod, handler);
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let Some(status) = unrunnable_status(pod, &message, self.shared.host_ip.as_deref(), &now) else {
            return Action::Done;
        };
        let mut updated = pod.clone();
        updated["status"] = status;
        let path = format!("/api/v1/namespaces/{namespace}/pods/{name}/status");
        let request = client.send(Method::PUT, &path, "application/json", updated.to_string().into_bytes());
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(_)) => {}
            Ok(Err(refused)) => return Action::Retry(refused.to_string()),
            Err(_) => return Action::Retry(timed_out()),
        }
        record_event(client, &self.shared.node, pod, "Warning", "Failed", &message).await;
        Action::Done
    }
}

impl Reconciler for PodLoop {
    type Key = String;

    fn watch(self: &Arc<Self>, queue: &Arc<WorkQueue<String>>) -> Vec<Subscription> {
        let (queue, node) = (queue.clone(), self.shared.node.clone());
        vec![self.pods.subscribe(move |change: &Change| {
            let mine =
                |pod: &Option<Arc<engenho_control::Cached>>| pod.as_ref().filter(|p| p.node_name == node).cloned();
            if let Some(pod) = mine(&change.new).or_else(|| mine(&change.old)) {
                queue.add(pod.key.clone());
            }
        })]
    }

    fn resync(&self) -> Vec<String> {
        let mine = Filter { node_name: Some(&self.shared.node), ..Filter::default() };
        let pods = self.pods.list(&mine);
        if !self.swept.swap(true, std::sync::atomic::Ordering::Relaxed) {
            let uids: HashSet<&str> = pods.iter().map(|pod| pod.uid.as_str()).collect();
            sweep_orphans(&self.shared.pods_dir, &uids);
        }
        pods.into_iter().map(|pod| pod.key.clone()).collect()
    }

    async fn reconcile(&self, key: &String) -> Action {
        let Some(cached) = self.pods.get_by_key(key).filter(|pod| pod.node_name == self.shared.node) else {
            if let Some(worker) = self.workers.lock().expect("workers lock").remove(key) {
                worker.remove();
            }
            return Action::Done;
        };
        let Ok(pod) = cached.value() else { return Action::Done };
        {
            let mut workers = self.workers.lock().expect("workers lock");
            match workers.get(key) {
                Some(worker) if worker.uid == cached.uid => {
                    worker.update(pod);
                    return Action::Done;
                }
                Some(_) => {
                    if let Some(worker) = workers.remove(key) {
                        worker.remove();
                    }
                }
                None => {}
            }
        }
        let handler = match self.handler(&pod).await {
            Ok(handler) => handler,
            Err(error) => return Action::Retry(error),
        };
        if handler.as_deref().is_some_and(|h| WASM_HANDLERS.contains(&h)) {
            let worker = worker::spawn(self.shared.clone(), pod);
            self.workers.lock().expect("workers lock").insert(key.clone(), worker);
            return Action::Done;
        }
        self.unrunnable(&cached, &pod, handler.as_deref()).await
    }
}

/// Removes the directories under `pods_dir` of pods whose uid is not in
/// `uids` (pods deleted while the agent was not running).
fn sweep_orphans(pods_dir: &std::path::Path, uids: &HashSet<&str>) {
    let Ok(entries) = std::fs::read_dir(pods_dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((_, uid)) = name.rsplit_once('_') else { continue };
        if !uids.contains(uid)
            && let Err(error) = std::fs::remove_dir_all(entry.path())
        {
            tracing::warn!(dir = %entry.path().display(), %error, "a gone pod's directory could not be removed");
        }
    }
}

/// Records an Event of `kind` (`Normal`, `Warning`) about `pod`, as the
/// node's agent.
pub(crate) async fn record_event(client: &ApiClient, node: &str, pod: &Value, kind: &str, reason: &str, message: &str) {
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": name,
            "uid": pod.pointer("/metadata/uid").cloned().unwrap_or(Value::Null)},
        "reason": reason, "message": message, "type": kind,
        "source": {"component": "kubelet", "host": node},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    let events = format!("/api/v1/namespaces/{namespace}/events");
    let request = client.send(Method::POST, &events, "application/json", event.to_string().into_bytes());
    if !matches!(tokio::time::timeout(REQUEST_TIMEOUT, request).await, Ok(Ok(_))) {
        tracing::debug!(pod = %name, "an Event was not recorded");
    }
}

pub(crate) fn timed_out() -> String {
    format!("a request to the API took longer than {REQUEST_TIMEOUT:?}")
}

/// What a pod this node cannot run is told: why, and how to ask for a
/// runtime it has.
pub fn unrunnable_message(node: &str, pod: &Value, handler: Option<&str>) -> String {
    let images: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str())
        .collect();
    let asked = match handler {
        None => "no runtimeClassName".to_owned(),
        Some("") => format!(
            "runtimeClassName {:?}, which no RuntimeClass is",
            pod.pointer("/spec/runtimeClassName").and_then(Value::as_str).unwrap_or_default()
        ),
        Some(handler) => format!("the runtime handler {handler:?}"),
    };
    format!(
        "node {node:?} runs WebAssembly pods only (no container runtime), and this pod names {asked} for image(s) \
         {}: set spec.runtimeClassName to \"wasi\" (or \"tlisp\") and each image to a component's reference, \
         blake3:<digest> (engenho content push prints it)",
        images.join(", ")
    )
}

/// The status of `pod`, which this node cannot run, at `now`: Pending,
/// every container waiting with [`UNRUNNABLE_REASON`] and `message`, not
/// ready. `None` when its status says so already.
pub fn unrunnable_status(pod: &Value, message: &str, host_ip: Option<&str>, now: &str) -> Option<Value> {
    let current = pod.get("status").cloned().unwrap_or_else(|| json!({}));
    let containers: Vec<&Value> =
        pod.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten().collect();
    let waiting = |c: &Value| {
        json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false, "restartCount": 0,
            "started": false, "state": {"waiting": {"reason": UNRUNNABLE_REASON, "message": message}}})
    };
    let statuses: Vec<Value> = containers.iter().map(|c| waiting(c)).collect();
    if current["phase"] == "Pending" && current["containerStatuses"] == json!(statuses) {
        return None;
    }
    let names: Vec<&str> = containers.iter().filter_map(|c| c["name"].as_str()).collect();
    let unready = format!("containers with unready status: [{}]", names.join(" "));
    let mut conditions: Vec<Value> = current["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| !matches!(c["type"].as_str(), Some("Initialized" | "Ready" | "ContainersReady")))
        .cloned()
        .collect();
    conditions.push(json!({"type": "Initialized", "status": "True", "lastTransitionTime": now}));
    for kind in ["Ready", "ContainersReady"] {
        conditions.push(json!({"type": kind, "status": "False", "reason": "ContainersNotReady", "message": unready,
            "lastTransitionTime": now}));
    }
    let mut status = current;
    status["phase"] = json!("Pending");
    status["conditions"] = json!(conditions);
    status["containerStatuses"] = json!(statuses);
    if status.get("startTime").is_none() {
        status["startTime"] = json!(now);
    }
    if let Some(ip) = host_ip {
        status["hostIP"] = json!(ip);
        status["hostIPs"] = json!([{"ip": ip}]);
    }
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nginx() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "nginx:1.27"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}})
    }

    #[test]
    fn a_pod_this_node_cannot_run_waits_and_is_told_how_to_ask() {
        // Goal: as a kubelet that cannot pull an image: Pending, each
        // container waiting with ErrImagePull and the reason, Ready and
        // ContainersReady False, PodScheduled kept; written once.
        let pod = nginx();
        let message = unrunnable_message("n1", &pod, None);
        assert!(message.contains("node \"n1\" runs WebAssembly pods only"), "{message}");
        assert!(message.contains("no runtimeClassName") && message.contains("nginx:1.27"), "{message}");
        assert!(
            message.contains("spec.runtimeClassName to \"wasi\"") && message.contains("blake3:<digest>"),
            "{message}"
        );
        let status = unrunnable_status(&pod, &message, Some("10.0.0.7"), "t1").expect("a new status");
        assert_eq!(status["phase"], "Pending");
        assert_eq!(status["containerStatuses"][0]["state"]["waiting"]["reason"], UNRUNNABLE_REASON);
        assert_eq!(status["containerStatuses"][0]["state"]["waiting"]["message"], message.as_str());
        let kinds: Vec<(&str, &str)> = status["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .map(|c| (c["type"].as_str().expect("type"), c["status"].as_str().expect("status")))
            .collect();
        assert_eq!(
            kinds,
            [("PodScheduled", "True"), ("Initialized", "True"), ("Ready", "False"), ("ContainersReady", "False")]
        );
        assert_eq!(status["hostIP"], "10.0.0.7");
        let mut written = pod.clone();
        written["status"] = status;
        assert_eq!(unrunnable_status(&written, &message, Some("10.0.0.7"), "t2"), None, "nothing to write again");
    }

    #[test]
    fn directories_of_gone_pods_are_swept() {
        // Goal: only the directories of pods the store no longer has go.
        let dir = tempfile::tempdir().expect("dir");
        for name in ["ns_kept_u1", "ns_gone_u2"] {
            std::fs::create_dir_all(dir.path().join(name).join("logs")).expect("create");
        }
        sweep_orphans(dir.path(), &["u1"].into_iter().collect());
        assert!(dir.path().join("ns_kept_u1").exists());
        assert!(!dir.path().join("ns_gone_u2").exists());
    }

    #[test]
    fn the_message_names_what_the_pod_asked_for() {
        // Goal: a RuntimeClass that does not exist, or of another
        // handler, is named in the message.
        let mut pod = nginx();
        pod["spec"]["runtimeClassName"] = json!("gvisor");
        assert!(
            unrunnable_message("n1", &pod, Some("")).contains("runtimeClassName \"gvisor\", which no RuntimeClass is")
        );
        assert!(unrunnable_message("n1", &pod, Some("runsc")).contains("the runtime handler \"runsc\""));
    }
}
