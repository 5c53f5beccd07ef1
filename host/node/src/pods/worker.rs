//! One pod's worker: a task per pod this node runs, started by the pod
//! loop and told of every change to the pod. It makes the pod's volumes,
//! fetches and prepares its components, runs its init containers in order
//! and then its containers, restarts them by the pod's `restartPolicy`
//! with back-off, enforces `activeDeadlineSeconds`, and on deletion stops
//! what runs once the grace period is over and completes the deletion. It
//! reports the pod's status after every change, through the API as the
//! node.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engenho_api::kube::ApiClient;
use engenho_runtime::{ContainerLog, ContainerSpec, Exit, ExitReason, Image, PodRuntime, RuntimeError, Stopper, World};
use http::Method;
use k8s_openapi::chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::addresses::PodAddresses;
use super::lifecycle::{self, BACKOFF_INITIAL, BACKOFF_MAX, RestartPolicy, Slot, State, Terminated};
use super::probes::{self, Kind, Outcome};
use super::spec::{self, ConfigError, Downward, ImageRef, Objects};
use super::volumes::{self, Volume};
use super::{REQUEST_TIMEOUT, record_event, timed_out};

/// Reason of a pod that ran past its `activeDeadlineSeconds`.
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";

/// The port a `wasi:http/proxy` container that names none serves (as
/// `wasmtime serve` does).
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// Wait before a status that could not be written is tried again.
const REPORT_RETRY: Duration = Duration::from_secs(1);

/// What every worker of a node shares.
pub struct Shared {
    /// The node's client (as `system:node:<name>`).
    pub client: ApiClient,
    /// The node's pod runtime.
    pub runtime: Arc<PodRuntime>,
    /// The node's name.
    pub node: String,
    /// The node's address.
    pub host_ip: Option<String>,
    /// Where pods keep their volumes and logs (`<data>/pods`).
    pub pods_dir: PathBuf,
    /// What the downward API reads of the node.
    pub downward: Downward,
    /// The tlisp runner component shipped with the node (the image
    /// `tlisp`).
    pub tlisp_runner: Option<Bundled>,
    /// The logs being written now.
    pub writing: super::logs::Writing,
    /// The pods' addresses.
    pub addresses: Arc<PodAddresses>,
}

/// The directory of pod `namespace`/`name` with `uid` under `pods_dir`
/// (the kubelet's `<namespace>_<name>_<uid>`).
pub fn pod_dir(pods_dir: &std::path::Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    pods_dir.join(format!("{namespace}_{name}_{uid}"))
}

/// The log file of run `restart` of container `container` in `pod_dir`.
pub fn log_path(pod_dir: &std::path::Path, container: &str, restart: u32) -> PathBuf {
    pod_dir.join("logs").join(container).join(format!("{restart}.log"))
}

/// A component shipped inside the node's binary.
#[derive(Debug, Clone)]
pub struct Bundled {
    /// Its digest (hex BLAKE3).
    pub digest: String,
    /// Its bytes.
    pub bytes: &'static [u8],
}

impl Bundled {
    /// The component `bytes`.
    pub fn new(bytes: &'static [u8]) -> Self {
        Self { digest: engenho_wasm::digest_of(bytes), bytes }
    }
}

/// The loop's handle on a worker.
pub struct Handle {
    /// The pod's uid.
    pub uid: String,
    pod: watch::Sender<Value>,
}

impl Handle {
    /// Tells the worker of the pod as it is now.
    pub fn update(&self, pod: Value) {
        let _ = self.pod.send(pod);
    }

    /// Tells the worker that the pod is gone from the store: it stops the
    /// pod's runs at once and removes its directory.
    pub fn remove(self) {
        let _ = self.pod.send(Value::Null);
    }
}

/// Starts the worker of `pod`. Dropping the handle without
/// [`Handle::remove`] (the agent stops) stops the pod's runs and keeps
/// its directory, for the agent's next start.
pub fn spawn(shared: Arc<Shared>, pod: Value) -> Handle {
    let uid = text(&pod, "/metadata/uid");
    let (sender, updates) = watch::channel(pod.clone());
    let worker = Worker::new(shared, pod, updates);
    tokio::spawn(worker.run());
    Handle { uid, pod: sender }
}

/// The end of a run: the container's index, and how it ended.
type Ended = (usize, Exit);

/// A run in progress.
struct Run {
    stopper: Stopper,
    started: Instant,
    started_at: String,
    probers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Run {
    fn drop(&mut self) {
        self.probers.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

struct Worker {
    shared: Arc<Shared>,
    pod: Value,
    updates: watch::Receiver<Value>,
    namespace: String,
    name: String,
    uid: String,
    dir: PathBuf,
    policy: RestartPolicy,
    slots: Vec<Slot>,
    specs: Vec<Value>,
    runs: HashMap<usize, Run>,
    due: HashMap<usize, Instant>,
    setup_backoff: HashMap<usize, Duration>,
    exits: (mpsc::Sender<Ended>, mpsc::Receiver<Ended>),
    probes: (mpsc::Sender<Outcome>, mpsc::Receiver<Outcome>),
    ip: Option<Ipv4Addr>,
    volumes: Option<BTreeMap<String, Volume>>,
    volume_retry: Option<(Instant, Duration)>,
    start_time: String,
    deadline_exceeded: bool,
    reported: Option<Value>,
    report_retry: Option<Instant>,
    warned: Option<String>,
}

impl Worker {
    fn new(shared: Arc<Shared>, pod: Value, updates: watch::Receiver<Value>) -> Self {
        let (namespace, name, uid) =
            (text(&pod, "/metadata/namespace"), text(&pod, "/metadata/name"), text(&pod, "/metadata/uid"));
        let reported = |field: &str, name: &Value| {
            pod.pointer(&format!("/status/{field}"))
                .and_then(Value::as_array)
                .and_then(|all| all.iter().find(|s| s["name"] == *name))
                .cloned()
        };
        let mut slots = Vec::new();
        let mut specs = Vec::new();
        for (field, status_field, init) in
            [("initContainers", "initContainerStatuses", true), ("containers", "containerStatuses", false)]
        {
            for container in pod.pointer(&format!("/spec/{field}")).and_then(Value::as_array).into_iter().flatten() {
                slots.push(Slot::new(container, init, reported(status_field, &container["name"]).as_ref()));
                specs.push(container.clone());
            }
        }
        let policy = RestartPolicy::of(&pod);
        let start_time = pod.pointer("/status/startTime").and_then(Value::as_str).map_or_else(now_text, str::to_owned);
        let deadline_exceeded = pod.pointer("/status/reason").and_then(Value::as_str) == Some(DEADLINE_EXCEEDED);
        let dir = pod_dir(&shared.pods_dir, &namespace, &name, &uid);
        let capacity = slots.len().max(1) * 2;
        Self {
            shared,
            updates,
            namespace,
            name,
            uid,
            dir,
            policy,
            slots,
            specs,
            runs: HashMap::new(),
            due: HashMap::new(),
            setup_backoff: HashMap::new(),
            exits: mpsc::channel(capacity),
            probes: mpsc::channel(capacity * 3),
            ip: None,
            volumes: None,
            volume_retry: None,
            start_time,
            deadline_exceeded,
            reported: pod.get("status").cloned(),
            report_retry: None,
            warned: None,
            pod,
        }
    }

    async fn run(mut self) {
        self.recover();
        let preferred = self.pod.pointer("/status/podIP").and_then(Value::as_str).and_then(|ip| ip.parse().ok());
        self.ip = self.shared.addresses.assign(&self.uid, preferred);
        loop {
            let now = Instant::now();
            let mut wake: Option<Instant> = self.report_retry;
            if self.deleting() {
                let deadline = self.grace_deadline(now);
                if self.runs.is_empty() {
                    self.report().await;
                    self.complete_deletion().await;
                    return;
                }
                if now >= deadline {
                    self.runs.values().for_each(|run| run.stopper.stop());
                } else {
                    wake = earliest(wake, Some(deadline));
                }
            } else if !self.terminal() {
                match self.active_deadline(now) {
                    Some(deadline) if now >= deadline => {
                        self.deadline_exceeded = true;
                        self.runs.values().for_each(|run| run.stopper.stop());
                        self.record(
                            "Warning",
                            DEADLINE_EXCEEDED,
                            "Pod was active on the node longer than the specified deadline",
                        )
                        .await;
                    }
                    deadline => {
                        wake = earliest(wake, deadline);
                        wake = earliest(wake, self.advance(now).await);
                    }
                }
            }
            self.report().await;
            if self.report_retry.is_some() {
                wake = earliest(wake, self.report_retry);
            }
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some((index, exit)) = self.exits.1.recv() => self.exited(index, exit).await,
                Some(outcome) = self.probes.1.recv() => self.probed(outcome).await,
                changed = self.updates.changed() => {
                    let pod = self.updates.borrow_and_update().clone();
                    if changed.is_err() || pod.is_null() {
                        self.stop_all().await;
                        if pod.is_null() {
                            self.shared.addresses.release(&self.uid);
                            self.remove_dir().await;
                        }
                        return;
                    }
                    self.pod = pod;
                }
                () = sleep => {}
            }
        }
    }

    /// After a node restart: a run the status calls running is not running
    /// here; the container starts again if the policy restarts it, else it
    /// ends as the kubelet ends a container it can no longer find.
    fn recover(&mut self) {
        for slot in &mut self.slots {
            let State::Running { started_at } = &slot.state else { continue };
            let ended = Terminated {
                exit_code: 137,
                reason: "ContainerStatusUnknown".into(),
                message: Some("The container could not be located when the pod was terminated".into()),
                started_at: started_at.clone(),
                finished_at: now_text(),
            };
            let again = if slot.init { self.policy.restarts_init(137) } else { self.policy.restarts(137) };
            if again {
                slot.last = Some(ended);
                slot.state = State::Waiting { reason: "ContainerCreating".into(), message: None };
            } else {
                slot.state = State::Terminated(ended);
            }
        }
    }

    fn deleting(&self) -> bool {
        self.pod.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
    }

    /// When the grace period of a deletion ends, as an instant on the
    /// clock that read `now`.
    fn grace_deadline(&self, now: Instant) -> Instant {
        let at = self.pod.pointer("/metadata/deletionTimestamp").and_then(Value::as_str).and_then(parse_time);
        let left = at.map_or(Duration::ZERO, |at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        now + left
    }

    /// When the pod's `activeDeadlineSeconds` runs out, if it has one, as
    /// an instant on the clock that read `now`.
    fn active_deadline(&self, now: Instant) -> Option<Instant> {
        let seconds = self.pod.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_u64)?;
        let started = parse_time(&self.start_time)?;
        let end = started + k8s_openapi::chrono::Duration::seconds(i64::try_from(seconds).ok()?);
        Some(now + (end - Utc::now()).to_std().unwrap_or(Duration::ZERO))
    }

    fn phase(&self) -> &'static str {
        if self.deadline_exceeded { "Failed" } else { lifecycle::phase(&self.slots, self.policy) }
    }

    fn terminal(&self) -> bool {
        matches!(self.phase(), "Succeeded" | "Failed")
    }

    /// Starts what is due: volumes first, then the first init container
    /// that has not succeeded, or else every container not running. When
    /// to look again.
    async fn advance(&mut self, now: Instant) -> Option<Instant> {
        if self.volumes.is_none()
            && let Some((at, _)) = self.volume_retry.filter(|(at, _)| *at > now)
        {
            return Some(at);
        }
        let pending_init = self.slots.iter().position(|s| s.init && !s.succeeded());
        let candidates: Vec<usize> = match pending_init {
            Some(index) => vec![index],
            None => (0..self.slots.len()).filter(|i| !self.slots[*i].init).collect(),
        };
        let mut wake = None;
        let mut due = Vec::new();
        for index in candidates {
            if self.runs.contains_key(&index) || self.slots[index].is_terminated() {
                continue;
            }
            match self.due.get(&index) {
                Some(at) if *at > now => wake = earliest(wake, Some(*at)),
                _ => due.push(index),
            }
        }
        if due.is_empty() {
            return wake;
        }
        // One read of what the volumes and environments name serves the
        // volumes and every start of this round.
        let objects = match self.objects().await {
            Ok(objects) => objects,
            Err(error) => {
                for index in due {
                    let retry = self.not_started(index, "CreateContainerConfigError", error.0.clone()).await;
                    wake = earliest(wake, Some(retry));
                }
                return wake;
            }
        };
        if self.volumes.is_none() {
            match self.make_volumes(objects.clone()).await {
                Ok(volumes) => {
                    self.volumes = Some(volumes);
                    self.volume_retry = None;
                }
                Err(error) => {
                    let wait = next_backoff(self.volume_retry.map(|(_, wait)| wait));
                    self.volume_retry = Some((now + wait, wait));
                    for slot in self.slots.iter_mut().filter(|s| !s.started_before) {
                        slot.state =
                            State::Waiting { reason: "ContainerCreating".into(), message: Some(error.0.clone()) };
                    }
                    self.warn("FailedMount", &error.0).await;
                    return earliest(wake, Some(now + wait));
                }
            }
        }
        for index in due {
            if let Err(retry) = self.start(index, &objects).await {
                wake = earliest(wake, Some(retry));
            }
        }
        wake
    }

    /// Fetches what the pod's volumes and environment name.
    async fn objects(&self) -> Result<Objects, ConfigError> {
        let (config_maps, secrets) = spec::referenced(&self.pod);
        let mut objects = Objects::default();
        for (kind, names) in [("configmaps", config_maps), ("secrets", secrets)] {
            for name in names {
                let path = format!("/api/v1/namespaces/{}/{kind}/{name}", self.namespace);
                let request = self.shared.client.send(Method::GET, &path, "application/json", Vec::new());
                match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
                    Ok(Ok(body)) => {
                        let object: Value = serde_json::from_slice(&body).map_err(|e| ConfigError(e.to_string()))?;
                        let into = if kind == "configmaps" { &mut objects.config_maps } else { &mut objects.secrets };
                        into.insert(name, object);
                    }
                    Ok(Err(refused)) if refused.code == 404 => {}
                    Ok(Err(refused)) => return Err(ConfigError(format!("reading {kind}/{name}: {refused}"))),
                    Err(_) => return Err(ConfigError(timed_out())),
                }
            }
        }
        objects.services = self.services().await?;
        Ok(objects)
    }

    /// The Services whose addresses go into the environment: the pod's
    /// namespace's unless `enableServiceLinks` is false, and
    /// `default/kubernetes` always.
    async fn services(&self) -> Result<Vec<Value>, ConfigError> {
        let links = self.pod.pointer("/spec/enableServiceLinks").and_then(Value::as_bool).unwrap_or(true);
        let mut paths = vec![("default".to_owned(), Some("kubernetes"))];
        if links {
            paths.push((self.namespace.clone(), None));
        }
        let mut services: Vec<Value> = Vec::new();
        for (namespace, name) in paths {
            let path = match name {
                Some(name) => format!("/api/v1/namespaces/{namespace}/services/{name}"),
                None => format!("/api/v1/namespaces/{namespace}/services"),
            };
            let request = self.shared.client.send(Method::GET, &path, "application/json", Vec::new());
            let body = match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
                Ok(Ok(body)) => body,
                Ok(Err(refused)) if refused.code == 404 => continue,
                Ok(Err(refused)) => return Err(ConfigError(format!("reading services: {refused}"))),
                Err(_) => return Err(ConfigError(timed_out())),
            };
            let read: Value = serde_json::from_slice(&body).map_err(|e| ConfigError(e.to_string()))?;
            let found = match name {
                Some(_) => vec![read],
                None => read["items"].as_array().cloned().unwrap_or_default(),
            };
            for service in found {
                let key = |s: &Value| (s.pointer("/metadata/namespace").cloned(), s.pointer("/metadata/name").cloned());
                if !services.iter().any(|known| key(known) == key(&service)) {
                    services.push(service);
                }
            }
        }
        Ok(services)
    }

    async fn make_volumes(&self, objects: Objects) -> Result<BTreeMap<String, Volume>, ConfigError> {
        let (pod, downward, root) = (self.pod.clone(), self.shared.downward.clone(), self.dir.join("volumes"));
        tokio::task::spawn_blocking(move || volumes::make(&pod, &objects, &downward, &root))
            .await
            .map_err(|e| ConfigError(format!("making the volumes: {e}")))?
    }

    /// Starts container `index`, its environment from `objects`; when to
    /// try again if it could not.
    async fn start(&mut self, index: usize, objects: &Objects) -> Result<(), Instant> {
        let image = match self.image(index).await {
            Ok(image) => image,
            Err((reason, message)) => return Err(self.not_started(index, reason, message).await),
        };
        let container = self.specs[index].clone();
        let config = spec::env(&self.pod, &container, objects, &self.shared.downward);
        let volumes = self.volumes.clone().unwrap_or_default();
        let prepared = config.and_then(|env| Ok((volumes::mounts(&container, &volumes)?, env)));
        let (mounts, env) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return Err(self.not_started(index, "CreateContainerConfigError", error.0).await),
        };
        let (memory_bytes, cpu_millis) = spec::limits(&container);
        let run_spec = ContainerSpec { args: spec::args(&container, &env), env, mounts, memory_bytes, cpu_millis };
        let slot = &self.slots[index];
        let run_number = slot.restart_count + u32::from(slot.started_before);
        let path = log_path(&self.dir, &slot.name, run_number);
        let log = match self.open_log(&path, run_number) {
            Ok(log) => log,
            Err(error) => return Err(self.not_started(index, "CreateContainerError", error).await),
        };
        let Some(ip) = self.ip else {
            return Err(self.not_started(index, "ContainerCreating", "the node has no free pod address".into()).await);
        };
        let started = match image.world() {
            World::Command => self.shared.runtime.start(&image, &run_spec, &log),
            World::Http => {
                let addresses: Vec<SocketAddr> =
                    serving_ports(&container).into_iter().map(|port| SocketAddr::new(IpAddr::V4(ip), port)).collect();
                self.shared.runtime.serve(&image, &run_spec, &log, &addresses)
            }
        };
        let started = match started {
            Ok(started) => started,
            Err(error) => return Err(self.not_started(index, "CreateContainerError", error.to_string()).await),
        };
        let now = now_text();
        let slot = &mut self.slots[index];
        slot.image_id = Some(image.digest().to_owned());
        slot.started(&now);
        self.setup_backoff.remove(&index);
        self.due.remove(&index);
        let mut run = Run { stopper: started.stopper(), started: Instant::now(), started_at: now, probers: Vec::new() };
        match probes::probe_of(&container, Kind::Startup) {
            Some(startup) => {
                self.slots[index].started_up = false;
                self.slots[index].ready = false;
                run.probers.push(tokio::spawn(startup.run(index, IpAddr::V4(ip), self.probes.0.clone())));
            }
            None => self.start_probers(index, &mut run),
        }
        self.runs.insert(index, run);
        let (exits, writing) = (self.exits.0.clone(), self.shared.writing.clone());
        writing.set(&path, true);
        tokio::spawn(async move {
            let exit = started.wait().await;
            writing.set(&path, false);
            let _ = exits.send((index, exit)).await;
        });
        Ok(())
    }

    /// The image of container `index`, prepared; or the waiting reason
    /// and message that say why not.
    async fn image(&self, index: usize) -> Result<Image, (&'static str, String)> {
        let slot = &self.slots[index];
        let digest = match spec::image_ref(&slot.image) {
            Ok(ImageRef::Digest(digest)) => digest,
            Ok(ImageRef::Tlisp) => {
                let Some(runner) = &self.shared.tlisp_runner else {
                    return Err(("InvalidImageName", "this node has no tlisp runner".into()));
                };
                if let Some(image) = self.shared.runtime.prepared(&runner.digest) {
                    return Ok(image);
                }
                let prepared = self.shared.runtime.prepare(&runner.digest, runner.bytes.to_vec()).await;
                return prepared.map_err(|error| {
                    ("CreateContainerError", format!("the tlisp runner shipped with this node: {error}"))
                });
            }
            Err(message) => return Err(("InvalidImageName", message)),
        };
        if let Some(image) = self.shared.runtime.prepared(&digest) {
            return Ok(image);
        }
        let path = format!("/apis/engenho.io/v1alpha1/components/{digest}");
        let request = self.shared.client.send(Method::GET, &path, "application/json", Vec::new());
        let bytes = match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(bytes)) => bytes.to_vec(),
            Ok(Err(refused)) if refused.code == 404 => {
                return Err((
                    "ErrImagePull",
                    format!(
                        "component blake3:{digest} is not stored in the cluster (upload it with engenho content push)"
                    ),
                ));
            }
            Ok(Err(refused)) => return Err(("ErrImagePull", format!("fetching blake3:{digest}: {refused}"))),
            Err(_) => return Err(("ErrImagePull", format!("fetching blake3:{digest}: {}", timed_out()))),
        };
        self.shared.runtime.prepare(&digest, bytes).await.map_err(|error| match error {
            RuntimeError::DigestMismatch { .. } => ("ErrImagePull", error.to_string()),
            _ => ("CreateContainerError", error.to_string()),
        })
    }

    /// Records that container `index` could not start (`reason`,
    /// `message`); when to try again (back-off doubling from
    /// [`BACKOFF_INITIAL`] to [`BACKOFF_MAX`]).
    async fn not_started(&mut self, index: usize, reason: &str, message: String) -> Instant {
        let wait = next_backoff(self.setup_backoff.get(&index).copied());
        self.setup_backoff.insert(index, wait);
        let shown = if reason == "ErrImagePull" && wait > BACKOFF_INITIAL { "ImagePullBackOff" } else { reason };
        self.slots[index].state = State::Waiting { reason: shown.to_owned(), message: Some(message.clone()) };
        let at = Instant::now() + wait;
        self.due.insert(index, at);
        let event_reason = if reason == "ErrImagePull" { "Failed" } else { reason };
        self.warn(event_reason, &format!("Error: {message}")).await;
        at
    }

    /// Opens the log of run `run_number` of `container`, and removes the
    /// logs of runs before the previous one.
    fn open_log(&self, path: &std::path::Path, run_number: u32) -> Result<ContainerLog, String> {
        if let Some(dir) = path.parent()
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let run = name.split('.').next().and_then(|n| n.parse::<u32>().ok());
                if run.is_some_and(|run| run + 1 < run_number) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        ContainerLog::create(path, engenho_runtime::logs::LOG_FILE_BYTES_MAX)
            .map_err(|e| format!("creating the log {}: {e}", path.display()))
    }

    /// Starts the readiness and liveness probes of container `index`'s
    /// run `run` (its startup, if any, has passed).
    fn start_probers(&mut self, index: usize, run: &mut Run) {
        let Some(ip) = self.ip else { return };
        for kind in [Kind::Readiness, Kind::Liveness] {
            if let Some(probe) = probes::probe_of(&self.specs[index], kind) {
                if kind == Kind::Readiness {
                    self.slots[index].ready = false;
                }
                run.probers.push(tokio::spawn(probe.run(index, IpAddr::V4(ip), self.probes.0.clone())));
            }
        }
    }

    /// Takes in a probe's turned result: readiness follows it; a failed
    /// startup or liveness probe stops the run, which restarts by the
    /// pod's policy.
    async fn probed(&mut self, outcome: Outcome) {
        let Some(mut run) = self.runs.remove(&outcome.index) else { return };
        let index = outcome.index;
        let name = self.slots[index].name.clone();
        let label = outcome.kind.label();
        if let Some(message) = &outcome.message {
            let verb = if outcome.runnable { "failed" } else { "errored" };
            self.warn("Unhealthy", &format!("{label} probe {verb}: {message}")).await;
        }
        match (outcome.kind, outcome.ok) {
            (Kind::Readiness, ok) => self.slots[index].ready = ok,
            (Kind::Startup, true) => {
                self.slots[index].started_up = true;
                self.slots[index].ready = true;
                self.start_probers(index, &mut run);
            }
            (Kind::Startup | Kind::Liveness, false) if outcome.runnable => {
                let message = format!("Container {name} failed {} probe, will be restarted", label.to_lowercase());
                self.record("Normal", "Killing", &message).await;
                run.stopper.stop();
            }
            _ => {}
        }
        self.runs.insert(index, run);
    }

    /// Records how the run of container `index` ended, and when it starts
    /// again.
    async fn exited(&mut self, index: usize, exit: Exit) {
        let Some(run) = self.runs.remove(&index) else { return };
        let ended = Terminated {
            exit_code: exit.code,
            reason: exit.reason.as_str().to_owned(),
            message: exit.message.clone(),
            started_at: run.started_at.clone(),
            finished_at: now_text(),
        };
        let label = format!("{}_{}({})", self.name, self.namespace, self.uid);
        let stopping = self.deleting() || self.deadline_exceeded;
        let slot = &mut self.slots[index];
        if stopping {
            slot.state = State::Terminated(ended);
            return;
        }
        let name = slot.name.clone();
        if let Some(wait) = slot.ended(ended, self.policy, run.started.elapsed(), &label) {
            self.due.insert(index, Instant::now() + wait);
            if wait > Duration::ZERO {
                self.warn("BackOff", &format!("Back-off restarting failed container {name} in pod {label}")).await;
            }
        }
        if exit.reason == ExitReason::OomKilled {
            self.warn("OOMKilled", &format!("Container {name} exceeded its memory limit")).await;
        }
    }

    /// The pod's status now.
    fn status(&self) -> Value {
        let current = self.pod.get("status").cloned().unwrap_or_else(|| json!({}));
        let conditions: Vec<Value> = current["conditions"].as_array().cloned().unwrap_or_default();
        let phase = self.phase();
        let terminal = matches!(phase, "Succeeded" | "Failed");
        let previous = self.reported.as_ref().and_then(|r| r["conditions"].as_array().cloned()).unwrap_or(conditions);
        let now = now_text();
        let mut conditions = lifecycle::conditions(&previous, &self.slots, terminal || self.deleting(), &now);
        if let Some(scheduled) =
            current["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
        {
            conditions.retain(|c| c["type"] != "PodScheduled");
            conditions.insert(0, scheduled.clone());
        }
        let (init, main): (Vec<&Slot>, Vec<&Slot>) = self.slots.iter().partition(|s| s.init);
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "startTime": self.start_time,
            "containerStatuses": main.iter().map(|s| s.status(&self.uid)).collect::<Vec<_>>(),
            "reason": null,
            "message": null,
        });
        if !init.is_empty() {
            status["initContainerStatuses"] = json!(init.iter().map(|s| s.status(&self.uid)).collect::<Vec<_>>());
        }
        if self.deadline_exceeded {
            status["reason"] = json!(DEADLINE_EXCEEDED);
            status["message"] = json!("Pod was active on the node longer than the specified deadline");
        }
        if let Some(ip) = &self.shared.host_ip {
            status["hostIP"] = json!(ip);
            status["hostIPs"] = json!([{"ip": ip}]);
        }
        if let Some(ip) = self.ip {
            status["podIP"] = json!(ip.to_string());
            status["podIPs"] = json!([{"ip": ip.to_string()}]);
        }
        status
    }

    /// Writes the status when it changed since the last write.
    async fn report(&mut self) {
        let status = self.status();
        if self.reported.as_ref().is_some_and(|r| same_status(r, &status)) {
            self.report_retry = None;
            return;
        }
        let path = format!("/api/v1/namespaces/{}/pods/{}/status", self.namespace, self.name);
        let body = json!({"metadata": {"uid": self.uid}, "status": status}).to_string().into_bytes();
        let request = self.shared.client.send(Method::PATCH, &path, "application/merge-patch+json", body);
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(_)) => {
                self.reported = Some(status);
                self.report_retry = None;
            }
            Ok(Err(refused)) => {
                tracing::debug!(pod = %self.name, %refused, "a pod status was not written");
                self.report_retry = Some(Instant::now() + REPORT_RETRY);
            }
            Err(_) => self.report_retry = Some(Instant::now() + REPORT_RETRY),
        }
    }

    /// Deletes the pod for good (its containers have stopped) and its
    /// directory.
    async fn complete_deletion(&self) {
        let path = format!("/api/v1/namespaces/{}/pods/{}", self.namespace, self.name);
        let body = json!({"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}).to_string().into_bytes();
        let request = self.shared.client.send(Method::DELETE, &path, "application/json", body);
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(_)) => {}
            Ok(Err(refused)) if matches!(refused.code, 404 | 409) => {}
            Ok(Err(refused)) => tracing::warn!(pod = %self.name, %refused, "a deleted pod could not be removed"),
            Err(_) => tracing::warn!(pod = %self.name, "removing a deleted pod timed out"),
        }
        self.shared.addresses.release(&self.uid);
        self.remove_dir().await;
    }

    /// Stops the pod's runs at once, and waits for them to end.
    async fn stop_all(&mut self) {
        self.runs.values().for_each(|run| run.stopper.stop());
        while !self.runs.is_empty() {
            match self.exits.1.recv().await {
                Some((index, _)) => {
                    self.runs.remove(&index);
                }
                None => break,
            }
        }
    }

    async fn remove_dir(&self) {
        let dir = self.dir.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    }

    /// A Warning Event on the pod, once for each distinct message in a row.
    async fn warn(&mut self, reason: &str, message: &str) {
        if self.warned.as_deref() == Some(message) {
            return;
        }
        self.warned = Some(message.to_owned());
        self.record("Warning", reason, message).await;
    }

    async fn record(&self, kind: &str, reason: &str, message: &str) {
        record_event(&self.shared.client, &self.shared.node, &self.pod, kind, reason, message).await;
    }
}

/// The TCP ports a `wasi:http/proxy` container serves: its
/// `containerPort`s, or 8080 when it names none.
fn serving_ports(container: &Value) -> Vec<u16> {
    let ports: Vec<u16> = container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["protocol"].as_str().is_none_or(|protocol| protocol == "TCP"))
        .filter_map(|p| p["containerPort"].as_u64().and_then(|n| u16::try_from(n).ok()))
        .collect();
    if ports.is_empty() { vec![DEFAULT_HTTP_PORT] } else { ports }
}

/// Whether two statuses say the same, ignoring when conditions were probed.
fn same_status(a: &Value, b: &Value) -> bool {
    [
        "phase",
        "conditions",
        "containerStatuses",
        "initContainerStatuses",
        "reason",
        "message",
        "hostIP",
        "podIP",
        "startTime",
    ]
    .iter()
    .all(|field| a.get(*field).unwrap_or(&Value::Null) == b.get(*field).unwrap_or(&Value::Null))
}

/// The next wait of a back-off that waited `last` (none: the first).
fn next_backoff(last: Option<Duration>) -> Duration {
    last.map_or(BACKOFF_INITIAL, |wait| (wait * 2).min(BACKOFF_MAX))
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn text(value: &Value, pointer: &str) -> String {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}
