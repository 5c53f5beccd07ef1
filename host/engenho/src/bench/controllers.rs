//! `engenho bench controllers`: how fast the controllers bring a large
//! Deployment up on a real node, what the informer caches hold per object,
//! and what running the replicaset controller as a component costs against
//! the same controller compiled into the host.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use engenho_control::informer::Decode;
use engenho_control::{Cached, Filter, Informer, LabelSelector};
use engenho_controller::{
    ApiError, Cluster, Controller, Decoded, EventType, Key, Level, ObjectRef, Outcome, Selector, Write,
};
use engenho_store::{Command, KeyValue, Mvcc, PutRequest};
use engenho_wasm::controller_types::{self as wit, KindRef, ObjectKey};
use engenho_wasm::{Applied, ClusterAccess, ControllerPlugin, Limits, PluginHost};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use replicaset_controller::ReplicaSets;
use serde_json::json;

use super::api::connect;
use super::{Cluster as BenchCluster, System};

/// Longest a Deployment's rollout may take before the benchmark gives up.
const ROLLOUT_LIMIT: Duration = Duration::from_secs(600);

/// Arguments of `engenho bench controllers`.
#[derive(Debug, clap::Args)]
pub struct ControllerBenchArgs {
    /// Replicas of the Deployments created, one measurement each.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 10000])]
    replicas: Vec<usize>,
    /// Rounds of the component/native comparison: each side runs once a
    /// round, taking turns, and the tables report the medians.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// How long each side reconciles in one round, in milliseconds.
    #[arg(long, default_value_t = 300)]
    round_millis: u64,
    /// Pods of the ReplicaSet the comparison reconciles.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 100, 1000])]
    pods: Vec<usize>,
    /// Registers no Node before the rollouts: the scheduler finds nowhere
    /// to put the pods and writes each one's `PodScheduled=False` and a
    /// `FailedScheduling` Event instead of binding it.
    #[arg(long)]
    without_node: bool,
}

/// Runs the measurements and prints their tables.
pub async fn run(args: ControllerBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds > 0 && args.round_millis > 0, "--rounds and --round-millis must be above 0");
    let round = Duration::from_millis(args.round_millis);
    let mut comparison = Vec::new();
    for &pods in &args.pods {
        comparison.push((pods, compare(pods, args.rounds, round).await?));
    }
    let root = tempfile::tempdir().context("temporary directory")?;
    let dir = root.path().join("engenho-controllers");
    let cluster = BenchCluster::start(System::Engenho, 1, &dir, Path::new("etcd")).await?;
    cluster.wait_for_leader().await?;
    let kubeconfig = dir.join("n0").join("kubeconfig");
    let client = connect(&kubeconfig).await?;
    wait_for_controllers(&client).await?;
    if !args.without_node {
        register_node(&client).await?;
    }
    // The node compiles its other controllers' and policies' components
    // for a while after these run: a rollout measured meanwhile would
    // measure the compiler as well.
    cluster.settle().await?;
    let mut rollouts = Vec::new();
    for &replicas in &args.replicas {
        let rollout = scale_up(&client, replicas).await?;
        eprintln!("  {replicas} replicas: {rollout:?}");
        rollouts.push((replicas, rollout));
    }
    let (objects, bytes) = pod_informer(&client).await?;
    drop(cluster);

    println!("| replicas | all pods exist | ReplicaSet and Deployment status complete | pods created/s |");
    println!("| --- | --- | --- | --- |");
    for (replicas, rollout) in &rollouts {
        println!(
            "| {replicas} | {:.2} s | {:.2} s | {:.0} |",
            rollout.pods.as_secs_f64(),
            rollout.status.as_secs_f64(),
            *replicas as f64 / rollout.pods.as_secs_f64()
        );
    }
    println!();
    println!("| informer | objects | bytes | bytes per object |");
    println!("| --- | --- | --- | --- |");
    println!("| pods | {objects} | {bytes} | {:.0} |", bytes as f64 / objects.max(1) as f64);
    println!();
    println!(
        "| pods of the ReplicaSet | component reconciles/s | native reconciles/s | component/native (rounds) | \
         component µs | native µs | least component µs |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (pods, comparison) in comparison {
        let (component, native) = (comparison.component(), comparison.native());
        println!(
            "| {pods} | {component:.0} | {native:.0} | {:.2} ({:.2}–{:.2}) | {:.2} | {:.2} | {:.2} |",
            comparison.ratio(),
            comparison.ratios().first().copied().unwrap_or(0.0),
            comparison.ratios().last().copied().unwrap_or(0.0),
            1e6 / component,
            1e6 / native,
            1e6 / comparison.least()
        );
    }
    println!(
        "\nMedians of {} rounds of {} ms a side, the sides taking turns; component/native is the median of the \
         rounds' ratios (their range in brackets). least component µs: a controller component that reads one \
         object and answers at once, the least a reconcile costs as a component.",
        args.rounds, args.round_millis
    );
    Ok(())
}

/// Waits until the node runs the deployment and replicaset controllers
/// (they compile once, at first start) and the default scheduler profile.
async fn wait_for_controllers(client: &kube::Client) -> anyhow::Result<()> {
    let started = Instant::now();
    let plugins = ["deployment-controller", "replicaset-controller"].map(|name| (name, "plugins"));
    for (name, plural) in plugins.into_iter().chain([("default-scheduler", "schedulerprofiles")]) {
        loop {
            let path = format!("/apis/engenho.io/v1alpha1/{plural}/{name}");
            let object: serde_json::Value =
                serde_json::from_str(&client.request_text(http::Request::get(path).body(Vec::new())?).await?)?;
            if object.pointer("/status/conditions/0/status").and_then(serde_json::Value::as_str) == Some("True") {
                break;
            }
            anyhow::ensure!(started.elapsed() < ROLLOUT_LIMIT, "the {name} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Registers the Node the pods are bound to, as the node's own agent
/// would: room for every pod of the rollouts, its Lease never renewed, so
/// the node lifecycle controller is given a day's grace.
async fn register_node(client: &kube::Client) -> anyhow::Result<()> {
    super::give_agentless_nodes_grace(client).await?;
    let resources = json!({"cpu": "64", "memory": "256Gi", "pods": "20000"});
    let status = json!({"status": {"capacity": resources, "allocatable": resources,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}});
    let nodes: Api<Node> = Api::all(client.clone());
    let node = json!({"metadata": {"name": "bench-node", "labels": {"kubernetes.io/hostname": "bench-node"}}});
    nodes.create(&PostParams::default(), &serde_json::from_value(node)?).await.context("creating the Node")?;
    nodes.patch_status("bench-node", &PatchParams::default(), &Patch::Merge(&status)).await?;
    Ok(())
}

/// How long a Deployment took to come up.
#[derive(Debug)]
struct Rollout {
    /// From its create to the last of its pods existing.
    pods: Duration,
    /// From its create to its ReplicaSet's and its own status counting
    /// every pod.
    status: Duration,
}

/// Creates a Deployment of `replicas` in a namespace of its own and times
/// it, following its pods with a watch.
async fn scale_up(client: &kube::Client, replicas: usize) -> anyhow::Result<Rollout> {
    let namespace = format!("scale-{replicas}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": namespace}}))?)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let mut watch = pods.watch(&WatchParams::default().timeout(290), "0").await?.boxed();
    let deployment = json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
    });
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let started = Instant::now();
    deployments.create(&PostParams::default(), &serde_json::from_value(deployment)?).await?;
    let mut seen = 0;
    while seen < replicas {
        let event = tokio::time::timeout(ROLLOUT_LIMIT, watch.next())
            .await
            .context("the pods did not all come within the limit")?
            .context("the watch ended")??;
        match event {
            WatchEvent::Added(_) => seen += 1,
            WatchEvent::Error(error) => bail!("the watch failed: {error:?}"),
            _ => {}
        }
    }
    let pods_time = started.elapsed();
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    let wanted = i32::try_from(replicas)?;
    loop {
        anyhow::ensure!(started.elapsed() < ROLLOUT_LIMIT, "the status did not count every pod within the limit");
        let sets = replica_sets.list(&ListParams::default()).await?;
        let set_done = sets.items.iter().any(|set| {
            set.status.as_ref().is_some_and(|s| s.replicas == wanted && s.fully_labeled_replicas == Some(wanted))
        });
        let deployment = deployments.get("web").await?;
        let deployment_done = deployment.status.as_ref().is_some_and(|s| s.replicas == Some(wanted));
        if set_done && deployment_done {
            return Ok(Rollout { pods: pods_time, status: started.elapsed() });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pods informer's objects and bytes, from the node's `/metrics`.
async fn pod_informer(client: &kube::Client) -> anyhow::Result<(u64, u64)> {
    let text = client.request_text(http::Request::get("/metrics").body(Vec::new())?).await?;
    let value = |metric: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{metric}{{name=\"pods\"}} ")))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Ok((value("informer_objects").context("no pods informer")?, value("informer_bytes").context("no pods informer")?))
}

/// A ReplicaSet of `pods` ready pods whose status already counts them, and
/// its pods: a reconcile that finds nothing to change.
fn steady_replica_set(pods: usize) -> (serde_json::Value, Vec<serde_json::Value>) {
    let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid",
        "controller": true, "blockOwnerDeletion": true});
    let pods: Vec<serde_json::Value> = (0..pods)
        .map(|i| {
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("web-{i:05}"), "namespace": "bench", "uid": format!("pod-{i}"),
                    "creationTimestamp": "2026-12-01T00:00:00Z",
                    "labels": {"app": "web"}, "ownerReferences": [owner]},
                "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "nginx:1.27",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
                "status": {"phase": "Running", "podIP": "10.0.0.1", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T00:00:05Z"}],
                    "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0}]},
            })
        })
        .collect();
    let count = pods.len();
    let replica_set = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "bench", "uid": "rs-uid", "generation": 1},
        "spec": {"replicas": count, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
        "status": {"replicas": count, "fullyLabeledReplicas": count, "readyReplicas": count,
            "availableReplicas": count, "observedGeneration": 1},
    });
    (replica_set, pods)
}

/// The objects both sides read: the node's informers, over a store on
/// disk, as a node's controllers read them.
struct Objects {
    replica_sets: Arc<Informer>,
    pods: Arc<Informer>,
    writes: Mutex<usize>,
}

impl Objects {
    /// Informers of `replica_set` and `pods`, written to a store in `dir`,
    /// listed and following it until `stop` turns true.
    async fn start(
        dir: &Path,
        replica_set: serde_json::Value,
        pods: Vec<serde_json::Value>,
        stop: &tokio::sync::watch::Sender<bool>,
    ) -> anyhow::Result<Self> {
        let storage = engenho_store::open_database(dir).context("the store")?;
        let store = Mvcc::open(&storage).context("the store")?;
        let mut applier = store.applier();
        let objects = std::iter::once(("/registry/replicasets/bench/web".to_owned(), replica_set)).chain(
            pods.into_iter()
                .map(|pod| (format!("/registry/pods/bench/{}", pod["metadata"]["name"].as_str().unwrap_or("?")), pod)),
        );
        for (key, object) in objects {
            let put =
                PutRequest { key: key.into_bytes(), value: object.to_string().into_bytes(), ..PutRequest::default() };
            applier.apply(&Command::Put(put)).context("a write")?;
        }
        applier.commit(None, None).context("the writes")?;
        let decode: Decode = Arc::new(|kv: &KeyValue| {
            let mut object: serde_json::Value = serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
            object["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
            Ok(object)
        });
        let informer = |name: &str, prefix: &str| {
            let informer = Informer::new(name, store.clone(), prefix.to_owned(), decode.clone(), true);
            tokio::spawn(informer.clone().run(stop.subscribe()));
            informer
        };
        let objects = Self {
            replica_sets: informer("replicasets", "/registry/replicasets/"),
            pods: informer("pods", "/registry/pods/"),
            writes: Mutex::new(0),
        };
        objects.replica_sets.synced().await;
        objects.pods.synced().await;
        Ok(objects)
    }

    fn informer(&self, plural: &str) -> Result<&Arc<Informer>, ApiError> {
        match plural {
            "replicasets" => Ok(&self.replica_sets),
            "pods" => Ok(&self.pods),
            other => Err(ApiError { code: 403, reason: "Forbidden".into(), message: format!("{other} not watched") }),
        }
    }

    fn get(&self, plural: &str, namespace: &str, name: &str) -> Result<Option<Arc<Cached>>, ApiError> {
        Ok(self.informer(plural)?.get(namespace, name))
    }

    /// The objects a selector picks, as the node's controller runner
    /// reads them (the label selector parsed per listing).
    fn list(&self, plural: &str, namespace: &str, labels: &str, owner_uid: &str) -> Result<Vec<u64>, ApiError> {
        let selector = LabelSelector::parse_unless_empty(labels).map_err(|e| ApiError {
            code: 400,
            reason: "BadRequest".into(),
            message: e.to_string(),
        })?;
        let filter = Filter::given(namespace, owner_uid, "", selector.as_ref());
        Ok(self.informer(plural)?.list(&filter).iter().map(|cached| cached.version).collect())
    }

    fn fetch(&self, plural: &str, versions: &[u64]) -> Result<Vec<Option<String>>, ApiError> {
        let informer = self.informer(plural)?;
        Ok(versions.iter().map(|v| informer.get_by_version(*v).map(|cached| cached.json.to_string())).collect())
    }

    fn count_writes(&self, writes: usize) {
        *self.writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += writes;
    }
}

/// The controller compiled into the host, reading [`Objects`].
struct Native {
    objects: Arc<Objects>,
    decoded: Decoded,
}

impl Cluster for Native {
    fn get(&self, kind: &engenho_controller::Kind, namespace: &str, name: &str) -> Result<Option<String>, ApiError> {
        Ok(self.objects.get(&kind.plural, namespace, name)?.map(|cached| cached.json.to_string()))
    }

    fn get_version(
        &self,
        kind: &engenho_controller::Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<u64>, ApiError> {
        Ok(self.objects.get(&kind.plural, namespace, name)?.map(|cached| cached.version))
    }

    fn list_versions(&self, kind: &engenho_controller::Kind, selector: &Selector) -> Result<Vec<u64>, ApiError> {
        self.objects.list(&kind.plural, &selector.namespace, &selector.labels, &selector.owner_uid)
    }

    fn fetch(&self, kind: &engenho_controller::Kind, versions: &[u64]) -> Result<Vec<Option<String>>, ApiError> {
        self.objects.fetch(&kind.plural, versions)
    }

    fn decoded(&self) -> &Decoded {
        &self.decoded
    }

    fn apply(&self, writes: Vec<Write>) -> Vec<Result<String, ApiError>> {
        self.objects.count_writes(writes.len());
        writes.iter().map(|_| Ok(String::new())).collect()
    }

    fn emit(&self, _: &ObjectRef, _: EventType, _: &str, _: &str) {}

    fn log(&self, _: Level, _: &str) {}

    fn now(&self) -> k8s_openapi::chrono::DateTime<k8s_openapi::chrono::Utc> {
        k8s_openapi::chrono::Utc::now()
    }
}

/// The controller as a component, reading [`Objects`].
struct Component(Arc<Objects>);

fn wit_error(error: ApiError) -> wit::ApiError {
    wit::ApiError { code: error.code, reason: error.reason, message: error.message }
}

impl ClusterAccess for Component {
    fn get(&self, kind: &KindRef, namespace: &str, name: &str) -> Result<Option<String>, wit::ApiError> {
        let cached = self.0.get(&kind.plural, namespace, name).map_err(wit_error)?;
        Ok(cached.map(|cached| cached.json.to_string()))
    }

    fn get_version(&self, kind: &KindRef, namespace: &str, name: &str) -> Result<Option<u64>, wit::ApiError> {
        Ok(self.0.get(&kind.plural, namespace, name).map_err(wit_error)?.map(|cached| cached.version))
    }

    fn list(&self, kind: &KindRef, selector: &wit::Selector) -> Result<Vec<String>, wit::ApiError> {
        let versions = self.list_versions(kind, selector)?;
        Ok(self.fetch(kind, &versions)?.into_iter().flatten().collect())
    }

    fn list_versions(&self, kind: &KindRef, selector: &wit::Selector) -> Result<Vec<u64>, wit::ApiError> {
        self.0.list(&kind.plural, &selector.namespace, &selector.labels, &selector.owner_uid).map_err(wit_error)
    }

    fn fetch(&self, kind: &KindRef, versions: &[u64]) -> Result<Vec<Option<String>>, wit::ApiError> {
        self.0.fetch(&kind.plural, versions).map_err(wit_error)
    }

    fn apply(&self, writes: Vec<wit::Write>) -> Applied {
        self.0.count_writes(writes.len());
        let answers = writes.iter().map(|_| Ok(String::new())).collect();
        Box::pin(std::future::ready(answers))
    }

    fn emit(&self, _: wit::ObjectRef, _: wit::EventType, _: String, _: String) {}
}

/// The rates each round of a component/native comparison measured, in
/// reconciles per second.
#[derive(Debug, Default)]
struct Comparison {
    component: Vec<f64>,
    native: Vec<f64>,
    least: Vec<f64>,
}

impl Comparison {
    /// The median component rate.
    fn component(&self) -> f64 {
        super::median_value(&self.component)
    }

    /// The median native rate.
    fn native(&self) -> f64 {
        super::median_value(&self.native)
    }

    /// The median rate of the least reconcile.
    fn least(&self) -> f64 {
        super::median_value(&self.least)
    }

    /// Each round's component/native ratio, lowest first.
    fn ratios(&self) -> Vec<f64> {
        let mut ratios: Vec<f64> = self.component.iter().zip(&self.native).map(|(c, n)| c / n).collect();
        ratios.sort_by(f64::total_cmp);
        ratios
    }

    /// The median of the rounds' ratios.
    fn ratio(&self) -> f64 {
        super::median_value(&self.ratios())
    }
}

/// Reconciles per second while `reconcile` runs for `round`: as many calls
/// as fit (the clock read every 16).
async fn rate<F, Fut>(round: Duration, mut reconcile: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let mut calls = 0_u64;
    loop {
        for _ in 0..16 {
            reconcile().await?;
        }
        calls += 16;
        let elapsed = started.elapsed();
        if elapsed >= round {
            return Ok(calls as f64 / elapsed.as_secs_f64());
        }
    }
}

/// Reconciles per second of the replicaset controller over a steady
/// ReplicaSet of `pods` pods, as a component and compiled into the host,
/// and of a component that reads one object and answers at once (the
/// misbehaving test controller failing on purpose, its ConfigMap not among
/// what the bench caches): the least a component reconcile costs. Each of
/// `rounds` rounds runs each for `round`, in turns.
async fn compare(pods: usize, rounds: usize, round: Duration) -> anyhow::Result<Comparison> {
    let (replica_set, pod_objects) = steady_replica_set(pods);
    let root = tempfile::tempdir().context("temporary directory")?;
    let (stop, _) = tokio::sync::watch::channel(false);
    let objects = Arc::new(Objects::start(&root.path().join("db"), replica_set, pod_objects, &stop).await?);
    let native_key =
        Key { kind: engenho_controller::kinds::REPLICA_SETS, namespace: "bench".into(), name: "web".into() };
    let (native, _) = ReplicaSets::configure("").map_err(|e| anyhow::anyhow!(e))?;
    let cluster = Native { objects: objects.clone(), decoded: Decoded::default() };
    let native_outcome = native.reconcile(&cluster, &native_key);
    anyhow::ensure!(native_outcome == Outcome::Done, "the native first reconcile answered {native_outcome:?}");

    let host = PluginHost::new(None).context("the plugin engine")?;
    let bytes = engenho_plugin_artifacts::plugin("replicaset-controller").context("the replicaset component")?;
    let limits = Limits { deadline: Duration::from_secs(1), ..Limits::default() };
    let digest = engenho_wasm::digest_of(bytes);
    let component = ControllerPlugin::load(&host, "replicaset-controller", &digest, bytes, "{}", limits, 1).await?;
    let access: Arc<dyn ClusterAccess> = Arc::new(Component(objects.clone()));
    let key = ObjectKey {
        kind: KindRef { group: "apps".into(), version: "v1".into(), plural: "replicasets".into() },
        namespace: "bench".into(),
        name: "web".into(),
    };
    let outcome = component.reconcile(&host, &key, access.clone()).await?;
    anyhow::ensure!(outcome == wit::Outcome::Done, "the component's first reconcile answered {outcome:?}");
    let least = LeastReconcile::load(&host).await?;
    least.call(&host, &access).await?;

    let mut comparison = Comparison::default();
    for _ in 0..rounds {
        comparison.native.push(
            rate(round, || {
                native.reconcile(&cluster, &native_key);
                std::future::ready(Ok(()))
            })
            .await?,
        );
        comparison.component.push(
            rate(round, || async {
                component.reconcile(&host, &key, access.clone()).await?;
                Ok(())
            })
            .await?,
        );
        comparison.least.push(rate(round, || least.call(&host, &access)).await?);
    }
    stop.send_replace(true);
    let writes = *objects.writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    anyhow::ensure!(writes == 0, "a steady ReplicaSet was written to {writes} times: the comparison is not steady");
    eprintln!(
        "  {pods} pods: component {:.0}/s, native {:.0}/s, ratios {:.2?}",
        comparison.component(),
        comparison.native(),
        comparison.ratios()
    );
    Ok(comparison)
}

/// A component that reads one object and answers at once: the misbehaving
/// test controller failing on purpose.
struct LeastReconcile {
    component: ControllerPlugin,
    key: ObjectKey,
}

impl LeastReconcile {
    /// The component, loaded and configured to fail.
    async fn load(host: &PluginHost) -> anyhow::Result<Self> {
        let name = "misbehaving-controller";
        let bytes = engenho_plugin_artifacts::plugin(name).context("the misbehaving controller component")?;
        let limits = Limits { deadline: Duration::from_secs(1), ..Limits::default() };
        let config = r#"{"mode": "fail"}"#;
        let component =
            ControllerPlugin::load(host, name, &engenho_wasm::digest_of(bytes), bytes, config, limits, 1).await?;
        let key = ObjectKey {
            kind: KindRef { group: String::new(), version: "v1".into(), plural: "configmaps".into() },
            namespace: "bench".into(),
            name: "probe".into(),
        };
        Ok(Self { component, key })
    }

    /// One reconcile, which must fail (reading a kind the bench does not
    /// cache).
    async fn call(&self, host: &PluginHost, access: &Arc<dyn ClusterAccess>) -> anyhow::Result<()> {
        let outcome = self.component.reconcile(host, &self.key, access.clone()).await?;
        anyhow::ensure!(matches!(outcome, wit::Outcome::Failed(_)), "the least reconcile answered {outcome:?}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comparison_reports_medians_and_the_median_of_its_rounds_ratios() {
        // Goal: the ratio is each round's own, not one of the medians'
        // quotient (here 3/10, which no round measured).
        let comparison =
            Comparison { component: vec![2.0, 3.0, 10.0], native: vec![1.0, 10.0, 11.0], least: vec![5.0, 4.0, 6.0] };
        assert_eq!((comparison.component(), comparison.native(), comparison.least()), (3.0, 10.0, 5.0));
        assert_eq!(comparison.ratios(), [0.3, 10.0 / 11.0, 2.0]);
        assert!((comparison.ratio() - 10.0 / 11.0).abs() < 1e-12);
        assert_eq!(super::super::median_value(&[]), 0.0);
        assert_eq!(super::super::median_value(&[4.0, 1.0]), 2.5, "the mean of the middle two");
    }
}
