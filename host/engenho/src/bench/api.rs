//! `engenho bench api`: the Kubernetes API of one node, driven by kube-rs
//! clients: pod creates, gets and lists at several concurrencies, the raw
//! store cost of the same writes, and watch delivery to many watchers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use engenho_api::etcd::proto::etcdserverpb::{RangeRequest, kv_client::KvClient};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::{Cluster, Figures, Sample, System, Target, measure_creates, median_figures, middle, millis, quantile};

/// Arguments of `engenho bench api`.
#[derive(Debug, clap::Args)]
pub struct ApiBenchArgs {
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent kube-rs clients of the create, get and list measurements.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    concurrency: Vec<usize>,
    /// Open watches of the delivery measurement.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Pods created while the watchers listen.
    #[arg(long, default_value_t = 100)]
    watch_events: usize,
    /// Times the create and store-put measurements are repeated at each
    /// concurrency, taking turns to go first; the table shows the median of
    /// each figure and of the rounds' throughput ratios.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=25))]
    rounds: u32,
}

/// Watches sharing one client (one HTTP/2 connection).
const WATCHES_PER_CLIENT: usize = 100;

/// Pods in the namespace the list measurement reads.
const LISTED_PODS: usize = 100;

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0", "ports": [{"containerPort": 8080}]}]},
    }))
    .expect("a valid pod")
}

/// The JSON of the benchmark's pod with its name cut out, so that a
/// create's body is made by joining three strings: the creating clients
/// then spend their CPU on the request, as the store's clients do, not on
/// building typed objects (the server's work is the same).
struct PodBody {
    before_name: String,
    after_name: String,
}

impl PodBody {
    /// Stands for the name in the serialized template.
    const NAME_SLOT: &str = "name-slot";

    /// The benchmark's pod, cut around its name.
    fn new() -> anyhow::Result<Self> {
        let text = serde_json::to_string(&pod(Self::NAME_SLOT))?;
        let (before_name, after_name) = text.split_once(Self::NAME_SLOT).context("the pod's name slot")?;
        Ok(Self { before_name: before_name.to_owned(), after_name: after_name.to_owned() })
    }

    /// The create body of the pod named `name`.
    fn with_name(&self, name: &str) -> Vec<u8> {
        [self.before_name.as_str(), name, self.after_name.as_str()].concat().into_bytes()
    }
}

/// The size of a pod as the API server stores it (with its uid, timestamps,
/// managed fields and admission's defaults): the value size of the store
/// creates the pod creates are compared with. The pod read is one of the
/// listed ones, whose name and namespace are 13 bytes shorter than the
/// created pods'.
async fn stored_pod_bytes(etcd: &Target) -> anyhow::Result<usize> {
    let channel = super::connect(etcd, 1).await?.remove(0);
    let key = b"/registry/core/pods/listed/pod-000".to_vec();
    let found = KvClient::new(channel).range(RangeRequest { key, ..RangeRequest::default() }).await?.into_inner();
    let stored = found.kvs.first().context("the first listed pod is not in the store")?;
    Ok(stored.value.len())
}

/// Runs the API benchmark and prints its table.
pub async fn run(args: ApiBenchArgs) -> anyhow::Result<()> {
    let root = tempfile::tempdir().context("temporary directory")?;
    let dir = root.path().join("engenho-api");
    let cluster = Cluster::start(System::Engenho, 1, &dir, Path::new("etcd")).await?;
    let etcd = cluster.wait_for_leader().await?;
    let kubeconfig = dir.join("n0").join("kubeconfig");
    let first = connect(&kubeconfig).await?;
    for namespace in ["bench", "listed", "watched"] {
        let api: Api<Namespace> = Api::all(first.clone());
        let object = serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?;
        api.create(&PostParams::default(), &object).await.with_context(|| format!("creating namespace {namespace}"))?;
    }
    let listed: Api<Pod> = Api::namespaced(first.clone(), "listed");
    for i in 0..LISTED_PODS {
        listed.create(&PostParams::default(), &pod(&format!("pod-{i:03}"))).await?;
    }
    let duration = Duration::from_secs(args.seconds);
    let body = Arc::new(PodBody::new()?);
    let stored_bytes = stored_pod_bytes(&etcd).await?;
    eprintln!("  a pod is stored as {stored_bytes} bytes");
    let mut rows = Vec::new();
    for &concurrency in &args.concurrency {
        let clients = connect_many(&kubeconfig, concurrency).await?;
        let connections = concurrency.clamp(1, 16);
        let (mut all_creates, mut all_stored, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..args.rounds {
            let create_pods = || async {
                let cpu_before = cluster.cpu_time()?;
                let body = body.clone();
                let mut creates = run_workers(&clients, duration, move |client, worker, sequence| {
                    let name = format!("bench-{concurrency:02}-{round}-{worker:02}-{sequence:07}");
                    let request = http::Request::post("/api/v1/namespaces/bench/pods")
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(body.with_name(&name));
                    async move {
                        client.request_text(request?).await?;
                        Ok(())
                    }
                })
                .await?;
                creates.server_cpu_per_operation = Some(cpu_per_operation(&cluster, cpu_before, &creates, duration)?);
                eprintln!("  pod creates c={concurrency}: {creates:?}");
                anyhow::Ok(creates)
            };
            let store_creates = || async {
                let cpu_before = cluster.cpu_time()?;
                let prefix = format!("bench/{concurrency:02}-{round}-");
                let mut stored =
                    measure_creates(&etcd, connections, concurrency, prefix, stored_bytes, duration).await?;
                stored.server_cpu_per_operation = Some(cpu_per_operation(&cluster, cpu_before, &stored, duration)?);
                eprintln!("  store creates c={concurrency}: {stored:?}");
                anyhow::Ok(stored)
            };
            // The two take turns to go first.
            let (creates, stored) = if round % 2 == 0 {
                let creates = create_pods().await?;
                (creates, store_creates().await?)
            } else {
                let stored = store_creates().await?;
                (create_pods().await?, stored)
            };
            ratios.push(stored.operations_per_second / creates.operations_per_second);
            all_creates.push(creates);
            all_stored.push(stored);
        }
        let (creates, store, ratio) = (median_figures(&all_creates), median_figures(&all_stored), middle(ratios));
        let gets = run_workers(&clients, duration, |client, worker, sequence| async move {
            let pods: Api<Pod> = Api::namespaced(client, "listed");
            let index = (worker * 31 + sequence as usize) % LISTED_PODS;
            pods.get(&format!("pod-{index:03}")).await?;
            Ok(())
        })
        .await?;
        eprintln!("  pod gets c={concurrency}: {gets:?}");
        let lists = run_workers(&clients, duration, |client, _, _| async move {
            let pods: Api<Pod> = Api::namespaced(client, "listed");
            let found = pods.list(&ListParams::default()).await?;
            anyhow::ensure!(found.items.len() == LISTED_PODS, "listed {} pods", found.items.len());
            Ok(())
        })
        .await?;
        eprintln!("  pod lists c={concurrency}: {lists:?}");
        rows.push((concurrency, creates, store, ratio, gets, lists));
    }
    let delivery = watch_delivery(&kubeconfig, args.watchers, args.watch_events).await?;
    drop(cluster);

    println!(
        "| clients | pod creates/s | p50 | p99 | CPU/create | store creates/s (same bytes) | CPU/store create | throughput: store/API | server CPU: API/store | get p50 | get p99 | list ({LISTED_PODS} pods) p50 | list p99 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (concurrency, creates, store, ratio, gets, lists) in rows {
        let micros = |figures: &Figures| figures.server_cpu_per_operation.unwrap_or_default().as_secs_f64() * 1e6;
        println!(
            "| {concurrency} | {:.0} | {} | {} | {:.0} µs | {:.0} | {:.0} µs | {:.2}× | {:.2}× | {} | {} | {} | {} |",
            creates.operations_per_second,
            millis(creates.p50),
            millis(creates.p99),
            micros(&creates),
            store.operations_per_second,
            micros(&store),
            ratio,
            micros(&creates) / micros(&store).max(f64::MIN_POSITIVE),
            millis(gets.p50),
            millis(gets.p99),
            millis(lists.p50),
            millis(lists.p99),
        );
    }
    println!();
    println!("| watchers | events | deliveries | measured from | p50 | p99 | max |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (from, delays) in [("create answered", &delivery.from_acknowledged), ("create sent", &delivery.from_sent)] {
        println!(
            "| {} | {} | {} | {from} | {} | {} | {} |",
            args.watchers,
            args.watch_events,
            delays.len(),
            millis(quantile(delays, 0.50)),
            millis(quantile(delays, 0.99)),
            millis(quantile(delays, 1.0)),
        );
    }
    Ok(())
}

/// The node's CPU time since `before` per operation of `figures`.
fn cpu_per_operation(
    cluster: &Cluster,
    before: Duration,
    figures: &Figures,
    duration: Duration,
) -> anyhow::Result<Duration> {
    let cpu = cluster.cpu_time()?.saturating_sub(before);
    Ok(cpu.div_f64((figures.operations_per_second * duration.as_secs_f64()).max(1.0)))
}

/// A client of the API server whose kubeconfig is `kubeconfig`, once it
/// answers.
pub(super) async fn connect(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client(kubeconfig).await {
            Ok(client) => return Ok(client),
            Err(error) if Instant::now() > deadline => return Err(error.context("the API server did not answer")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A client of the API server whose kubeconfig is `kubeconfig`, if the
/// kubeconfig is there and the server answers now.
pub(crate) async fn client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let config = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(config)?;
    client.apiserver_version().await?;
    Ok(client)
}

/// `count` clients, each with connections of its own.
async fn connect_many(kubeconfig: &Path, count: usize) -> anyhow::Result<Vec<kube::Client>> {
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        clients.push(connect(kubeconfig).await?);
    }
    Ok(clients)
}

/// One worker per client, each calling `operation` in a loop for `duration`.
async fn run_workers<F, Fut>(clients: &[kube::Client], duration: Duration, operation: F) -> anyhow::Result<Figures>
where
    F: Fn(kube::Client, usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for (worker, client) in clients.iter().cloned().enumerate() {
        let operation = operation.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut sequence = 0u64;
            while Instant::now() < deadline {
                let begun = Instant::now();
                operation(client.clone(), worker, sequence).await?;
                latencies.push(begun.elapsed());
                sequence += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Sample { latencies, elapsed: started.elapsed(), server_cpu: Duration::ZERO }.figures(false)
}

/// Opens `watchers` watches on one namespace, creates `events` pods there
/// one after another, and measures when each watcher saw each of them.
async fn watch_delivery(kubeconfig: &Path, watchers: usize, events: usize) -> anyhow::Result<Delivery> {
    let created: Arc<Mutex<HashMap<String, (Instant, Instant)>>> = Arc::default();
    let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let clients = connect_many(kubeconfig, watchers.div_ceil(WATCHES_PER_CLIENT).max(1)).await?;
    let mut tasks = Vec::new();
    for index in 0..watchers {
        // The watchers read the raw event lines through kube-rs' transport
        // and pick out the name: decoding 100,000 Pods on the same two cores
        // would measure the client, not the server.
        let request =
            http::Request::get("/api/v1/namespaces/watched/pods?watch=true&resourceVersion=0&timeoutSeconds=290")
                .body(Vec::new())?;
        let stream = clients[index / WATCHES_PER_CLIENT].request_stream(request).await?;
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            use futures::{AsyncBufReadExt, StreamExt};
            let mut lines = Box::pin(stream).lines();
            let mut got = 0;
            while got < events {
                let Some(Ok(line)) = lines.next().await else { break };
                if !line.contains("\"type\":\"ADDED\"") {
                    continue;
                }
                if let Some(name) = line.split("\"name\":\"").nth(1).and_then(|rest| rest.split('"').next()) {
                    seen.lock().expect("lock").push((name.to_owned(), Instant::now()));
                    got += 1;
                }
            }
        }));
    }
    // The writer has a connection of its own, not one busy with events.
    let writer: Api<Pod> = Api::namespaced(connect(kubeconfig).await?, "watched");
    for i in 0..events {
        let name = format!("watched-{i:05}");
        let sent = Instant::now();
        writer.create(&PostParams::default(), &pod(&name)).await?;
        created.lock().expect("lock").insert(name, (sent, Instant::now()));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all = futures::future::join_all(tasks);
    let _ = tokio::time::timeout(Duration::from_secs(60), all).await;
    let created = created.lock().expect("lock");
    let mut from_sent = Vec::new();
    let mut from_acknowledged = Vec::new();
    for (name, at) in seen.lock().expect("lock").iter() {
        if let Some((sent, acknowledged)) = created.get(name) {
            from_sent.push(at.saturating_duration_since(*sent));
            from_acknowledged.push(at.saturating_duration_since(*acknowledged));
        }
    }
    from_sent.sort_unstable();
    from_acknowledged.sort_unstable();
    Ok(Delivery { from_sent, from_acknowledged })
}

/// When each watcher saw each event, sorted: after its create was sent,
/// and after the create's answer came back (0 when the event came first).
struct Delivery {
    from_sent: Vec<Duration>,
    from_acknowledged: Vec<Duration>,
}
