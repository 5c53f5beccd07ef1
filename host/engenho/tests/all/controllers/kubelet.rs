//! A kubelet stand-in for the controller scenarios: a thread that, until
//! dropped, lists every pod about five times a second (one
//! `kubectl get pods -A -o json`) and moves the pods its rules match to
//! the phase the rule names, through the status subresource as a kubelet
//! reports them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::Kubectl;

/// How often the stand-in looks at the pods.
const PERIOD: Duration = Duration::from_millis(200);

/// What a rule does to the pods it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Running, with the `Ready` condition true.
    Ready,
    /// Succeeded: every container terminated with exit code 0.
    Succeeded,
    /// Failed: every container terminated with exit code 1.
    Failed,
}

/// Which pods a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pods {
    /// Every pod.
    All,
    /// The pods of the Job of this name (label `job-name`).
    OfJob(String),
    /// The pods with this label (key and value).
    Labeled(String, String),
}

/// One rule: the pods matched, and what they become.
#[derive(Debug)]
pub struct Rule {
    pods: Pods,
    phase: Phase,
}

impl Rule {
    /// Every pod becomes Ready.
    pub fn every_pod_ready() -> Self {
        Self { pods: Pods::All, phase: Phase::Ready }
    }

    /// The pods labeled `key=value` become Ready.
    pub fn labeled_ready(key: &str, value: &str) -> Self {
        Self { pods: Pods::Labeled(key.to_owned(), value.to_owned()), phase: Phase::Ready }
    }

    /// The pods of Job `name` succeed.
    pub fn job_succeeds(name: &str) -> Self {
        Self { pods: Pods::OfJob(name.to_owned()), phase: Phase::Succeeded }
    }

    /// The pods of Job `name` fail.
    pub fn job_fails(name: &str) -> Self {
        Self { pods: Pods::OfJob(name.to_owned()), phase: Phase::Failed }
    }

    fn matches(&self, pod: &Value) -> bool {
        match &self.pods {
            Pods::All => true,
            Pods::OfJob(job) => pod["metadata"]["labels"]["job-name"].as_str() == Some(job.as_str()),
            Pods::Labeled(key, value) => pod["metadata"]["labels"][key].as_str() == Some(value.as_str()),
        }
    }
}

/// The running stand-in; stops when dropped.
pub struct Kubelet {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Kubelet {
    /// Starts the stand-in with `rules` (the first rule that matches a pod
    /// decides), reaching the API with `kubectl`.
    pub fn start(kubectl: Kubectl, rules: Vec<Rule>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    tick(&kubectl, &rules);
                    std::thread::sleep(PERIOD);
                }
            })
        };
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One look at the pods: each live pod a rule matches and that is not yet
/// in the rule's phase is moved there; pods being deleted are removed.
fn tick(kubectl: &Kubectl, rules: &[Rule]) {
    let output = kubectl.run(&["get", "pods", "-A", "-o", "json"], None);
    if !output.status.success() {
        return;
    }
    let Ok(list) = serde_json::from_slice::<Value>(&output.stdout) else { return };
    for pod in list["items"].as_array().into_iter().flatten() {
        let (Some(name), Some(namespace)) = (pod["metadata"]["name"].as_str(), pod["metadata"]["namespace"].as_str())
        else {
            continue;
        };
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            // A pod on a node that is being deleted: its containers stop at once.
            kubectl.run(&["delete", "pod", name, "-n", namespace, "--grace-period=0", "--force", "--wait=false"], None);
            continue;
        }
        let Some(rule) = rules.iter().find(|rule| rule.matches(pod)) else { continue };
        if in_phase(pod, rule.phase) {
            continue;
        }
        set_phase(kubectl, namespace, name, pod, rule.phase);
    }
}

/// Whether `pod` already reports `phase`.
fn in_phase(pod: &Value, phase: Phase) -> bool {
    let status = &pod["status"];
    match phase {
        Phase::Ready => {
            status["phase"] == "Running"
                && status["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        }
        Phase::Succeeded => status["phase"] == "Succeeded",
        Phase::Failed => status["phase"] == "Failed",
    }
}

/// Reports `pod` in `phase` through its status subresource (a failure,
/// such as the pod being gone, is left to the next look).
pub fn set_phase(kubectl: &Kubectl, namespace: &str, name: &str, pod: &Value, phase: Phase) {
    let patch = status_patch(pod, phase).to_string();
    kubectl.run(&["patch", "pod", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", &patch], None);
}

/// The status a kubelet reports for `pod` in `phase`.
fn status_patch(pod: &Value, phase: Phase) -> Value {
    static NEXT_IP: AtomicU32 = AtomicU32::new(1);
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|container| container["name"].as_str())
        .collect();
    let image = |name: &str| {
        pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|container| container["name"] == name)
            .map_or(Value::Null, |container| container["image"].clone())
    };
    let ip = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    let pod_ip = format!("10.0.{}.{}", ip / 250, ip % 250 + 1);
    let (phase_name, ready, state) = match phase {
        Phase::Ready => ("Running", "True", json!({"running": {}})),
        Phase::Succeeded => ("Succeeded", "False", json!({"terminated": {"exitCode": 0, "reason": "Completed"}})),
        Phase::Failed => ("Failed", "False", json!({"terminated": {"exitCode": 1, "reason": "Error"}})),
    };
    let statuses: Vec<Value> = containers
        .iter()
        .map(|name| {
            json!({"name": name, "image": image(name), "imageID": "", "ready": ready == "True",
                "restartCount": 0, "state": state})
        })
        .collect();
    json!({"status": {
        "phase": phase_name,
        "podIP": pod_ip,
        "conditions": [{"type": "Ready", "status": ready}],
        "containerStatuses": statuses,
    }})
}
