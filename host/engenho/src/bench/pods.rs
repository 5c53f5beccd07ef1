//! `engenho bench pods`: on one real node, how long a `wasi` command pod
//! takes from create to Running (its component precompiled), how much
//! host memory an idle `wasi:http` pod holds, and how many requests/s a
//! hello-world `wasi:http` pod answers through its pod IP, against
//! `wasmtime serve` of the same component on the same machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use tokio::sync::mpsc;

use super::api::connect;
use super::{Cluster, System};

/// Longest the pods of one measurement may take to run.
const RUNNING_LIMIT: Duration = Duration::from_secs(600);

/// Pod creates in flight while the density pods are made.
const CREATES_IN_FLIGHT: usize = 16;

/// The pod range the benchmarked node hands out (room for the density
/// pods).
const POD_RANGE: &str = "127.245.0.0/16";

/// Arguments of `engenho bench pods`.
#[derive(Debug, clap::Args)]
pub struct PodBenchArgs {
    /// Pods created one after another for the latency figures.
    #[arg(long, default_value_t = 200)]
    latency_pods: usize,
    /// Idle wasi:http pods kept running for the memory figure.
    #[arg(long, default_value_t = 1000)]
    density_pods: usize,
    /// Seconds each requests/s measurement runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Connections the load generator keeps open.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// The `wasmtime` CLI of wasmtime 48, for the `wasmtime serve` side.
    #[arg(long, default_value = "wasmtime")]
    wasmtime: PathBuf,
    /// runc, for the anchor: containers of a static busybox run to their
    /// end from a bundle on local disk.
    #[arg(long, default_value = "runc")]
    runc: PathBuf,
    /// The static busybox the runc containers run (Debian's
    /// busybox-static).
    #[arg(long, default_value = "/bin/busybox")]
    busybox: PathBuf,
}

/// Runs the measurements and prints their table.
pub async fn run(args: PodBenchArgs) -> anyhow::Result<()> {
    let root = tempfile::tempdir().context("temporary directory")?;
    let dir = root.path().join("engenho-pods");
    let extra = [
        "--pod-range",
        POD_RANGE,
        "--eviction-hard",
        "nodefs.available<1%,memory.available<1Mi",
        "--register-with-taints",
        "",
    ];
    let cluster = Cluster::start_with(System::Engenho, 1, &dir, Path::new("etcd"), &extra).await?;
    cluster.wait_for_leader().await?;
    let client = connect(&dir.join("n0").join("kubeconfig")).await?;
    let pid = cluster.children[0].as_ref().context("the node runs")?.id();
    let toolbox = push(&client, engenho_plugin_artifacts::pod_component("toolbox").context("the toolbox")?).await?;
    let hello_bytes = engenho_plugin_artifacts::pod_component("hello-http").context("hello-http")?;
    let hello = push(&client, hello_bytes).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (running, mut became) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(watch_running(pods.clone(), running));

    // Create → Running, one pod at a time, after a first pod that
    // compiles the component.
    let command = |name: &str| pod(name, &toolbox, json!({"args": ["sleep", "3600000"]}));
    create_and_wait(&pods, &mut became, vec![command("warm-up")]).await?;
    let mut latencies = Vec::with_capacity(args.latency_pods);
    for n in 0..args.latency_pods {
        let name = format!("latency-{n}");
        let started = Instant::now();
        pods.create(&PostParams::default(), &command(&name)).await?;
        wait_running(&mut became, &[name]).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    delete_all(&pods).await?;

    // Idle wasi:http pods: the node's resident memory before and after.
    let before = resident_bytes(pid)?;
    let http = |name: &str| pod(name, &hello, json!({"ports": [{"containerPort": 8080}]}));
    let made = Instant::now();
    let density: Vec<Pod> = (0..args.density_pods).map(|n| http(&format!("idle-{n}"))).collect();
    create_and_wait(&pods, &mut became, density).await?;
    let density_seconds = made.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = resident_bytes(pid)?;
    let per_pod = after.saturating_sub(before) as f64 / args.density_pods.max(1) as f64;

    // Requests/s of one pod, and of `wasmtime serve` of the same bytes.
    let target = pods.get("idle-0").await?;
    let ip = target.status.and_then(|s| s.pod_ip).context("idle-0 has no pod IP")?;
    let ours = load(format!("{ip}:8080").parse()?, args.connections, Duration::from_secs(args.seconds)).await?;
    let theirs = wasmtime_serve(&args, hello_bytes, root.path()).await;
    watcher.abort();
    drop(cluster);
    let runc = runc_runs(&args, root.path(), args.latency_pods.min(100)).await;

    let millis = |d: Duration| d.as_secs_f64() * 1000.0;
    let percentile = |p: f64| latencies.get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied();
    println!("pods on one node (wasmtime {})", engenho_wasm::WASMTIME_VERSION);
    println!("| measurement | figure |");
    println!("|---|---|");
    if let (Some(p50), Some(p99)) = (percentile(0.5), percentile(0.99)) {
        println!("| create → Running, wasi command, p50 ({} pods) | {:.1} ms |", latencies.len(), millis(p50));
        println!("| create → Running, wasi command, p99 | {:.1} ms |", millis(p99));
    }
    println!("| {} idle wasi:http pods Running | {density_seconds:.1} s |", args.density_pods);
    println!("| host resident memory per idle wasi:http pod | {:.0} KiB |", per_pod / 1024.0);
    println!("| hello-world wasi:http pod, {} connections | {ours:.0} req/s |", args.connections);
    match theirs {
        Ok(theirs) => {
            println!("| `wasmtime serve` of the same component | {theirs:.0} req/s |");
            println!("| ratio engenho / wasmtime serve | {:.2} |", ours / theirs);
        }
        Err(error) => println!("| `wasmtime serve` of the same component | not measured: {error:#} |"),
    }
    match runc {
        Ok(mut runs) => {
            runs.sort();
            let percentile = |p: f64| runs.get(((runs.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied();
            if let (Some(p50), Some(p99)) = (percentile(0.5), percentile(0.99)) {
                let count = runs.len();
                println!(
                    "| anchor: `runc run` of busybox `true`, start to end, p50 ({count} runs) | {:.1} ms |",
                    millis(p50)
                );
                println!("| anchor: `runc run`, p99 | {:.1} ms |", millis(p99));
            }
        }
        Err(error) => println!("| anchor: `runc run` | not measured: {error:#} |"),
    }
    Ok(())
}

/// How long each of `runs` containers takes under `runc run`, from start
/// to end: a bundle on local disk whose only file is a static busybox,
/// running `busybox true`.
async fn runc_runs(args: &PodBenchArgs, dir: &Path, runs: usize) -> anyhow::Result<Vec<Duration>> {
    let install = "install runc and busybox-static (Debian packages)";
    let version = tokio::process::Command::new(&args.runc).arg("--version").output().await;
    if !version.is_ok_and(|v| v.status.success()) {
        bail!("{} cannot run; {install}", args.runc.display());
    }
    let bundle = dir.join("runc-bundle");
    std::fs::create_dir_all(bundle.join("rootfs/bin"))?;
    std::fs::copy(&args.busybox, bundle.join("rootfs/bin/busybox"))
        .with_context(|| format!("copying {}; {install}", args.busybox.display()))?;
    let spec = tokio::process::Command::new(&args.runc).arg("spec").current_dir(&bundle).status().await?;
    if !spec.success() {
        bail!("runc spec failed: {spec}");
    }
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
    config["process"]["args"] = json!(["/bin/busybox", "true"]);
    config["process"]["terminal"] = json!(false);
    std::fs::write(&config_path, serde_json::to_vec(&config)?)?;
    let mut times = Vec::with_capacity(runs);
    for n in 0..runs {
        let started = Instant::now();
        let status = tokio::process::Command::new(&args.runc)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(format!("engenho-bench-{}-{n}", std::process::id()))
            .stdin(std::process::Stdio::null())
            .status()
            .await?;
        if !status.success() {
            bail!("runc run failed: {status}");
        }
        times.push(started.elapsed());
    }
    Ok(times)
}

/// Uploads component `bytes`; its reference.
async fn push(client: &kube::Client, bytes: &[u8]) -> anyhow::Result<String> {
    let digest = engenho_wasm::digest_of(bytes);
    let request = http::Request::put(format!("/apis/engenho.io/v1alpha1/components/{digest}")).body(bytes.to_vec())?;
    client.request_text(request).await.context("uploading a component")?;
    Ok(format!("blake3:{digest}"))
}

/// A `wasi` pod on node `n0` running `image`, its container's other
/// fields from `container`.
fn pod(name: &str, image: &str, container: serde_json::Value) -> Pod {
    let mut spec_container = json!({"name": "app", "image": image});
    if let (Some(into), Some(from)) = (spec_container.as_object_mut(), container.as_object()) {
        into.extend(from.clone());
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": "n0", "runtimeClassName": "wasi", "terminationGracePeriodSeconds": 0,
            "containers": [spec_container]}});
    serde_json::from_value(pod).expect("a pod")
}

/// Sends the name of every pod seen Running for the first time.
async fn watch_running(pods: Api<Pod>, running: mpsc::UnboundedSender<String>) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut version = "0".to_owned();
    loop {
        let mut stream = pods.watch(&WatchParams::default().timeout(290), &version).await?.boxed();
        while let Some(event) = stream.next().await {
            let pod = match event? {
                WatchEvent::Added(pod) | WatchEvent::Modified(pod) => pod,
                WatchEvent::Bookmark(bookmark) => {
                    version = bookmark.metadata.resource_version;
                    continue;
                }
                _ => continue,
            };
            if let Some(v) = &pod.metadata.resource_version {
                version.clone_from(v);
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            let name = pod.metadata.name.clone().unwrap_or_default();
            if phase == Some("Running") && seen.insert(name.clone()) && running.send(name).is_err() {
                return Ok(());
            }
        }
    }
}

async fn wait_running(became: &mut mpsc::UnboundedReceiver<String>, names: &[String]) -> anyhow::Result<()> {
    let mut waiting: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let deadline = tokio::time::Instant::now() + RUNNING_LIMIT;
    while !waiting.is_empty() {
        match tokio::time::timeout_at(deadline, became.recv()).await {
            Ok(Some(name)) => {
                waiting.remove(name.as_str());
            }
            Ok(None) => bail!("the pod watch ended"),
            Err(_) => bail!("{} pods did not run within {RUNNING_LIMIT:?}", waiting.len()),
        }
    }
    Ok(())
}

/// Creates `pods` (a few at a time) and waits until all run.
async fn create_and_wait(
    api: &Api<Pod>,
    became: &mut mpsc::UnboundedReceiver<String>,
    pods: Vec<Pod>,
) -> anyhow::Result<()> {
    let names: Vec<String> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
    let creates = futures::stream::iter(pods.into_iter().map(|pod| {
        let api = api.clone();
        async move { api.create(&PostParams::default(), &pod).await.map(drop) }
    }));
    let results: Vec<_> = creates.buffer_unordered(CREATES_IN_FLIGHT).collect().await;
    results.into_iter().collect::<Result<Vec<()>, _>>().context("creating pods")?;
    wait_running(became, &names).await
}

async fn delete_all(pods: &Api<Pod>) -> anyhow::Result<()> {
    let names: Vec<String> =
        pods.list(&ListParams::default()).await?.items.into_iter().filter_map(|p| p.metadata.name).collect();
    let deletes = futures::stream::iter(names.into_iter().map(|name| {
        let pods = pods.clone();
        async move { pods.delete(&name, &DeleteParams::default()).await.map(drop) }
    }));
    let results: Vec<_> = deletes.buffer_unordered(CREATES_IN_FLIGHT).collect().await;
    results.into_iter().collect::<Result<Vec<()>, _>>().context("deleting pods")?;
    let deadline = Instant::now() + RUNNING_LIMIT;
    while !pods.list(&ListParams::default()).await?.items.is_empty() {
        if Instant::now() > deadline {
            bail!("deleted pods did not go within {RUNNING_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The resident memory of process `pid`, bytes.
fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    let kib: u64 = line.split_whitespace().nth(1).context("VmRSS")?.parse()?;
    Ok(kib * 1024)
}

/// Requests/s `connections` keep-alive HTTP/1.1 connections get from
/// `address` in `length`, each sending its next request when the last is
/// answered.
async fn load(address: SocketAddr, connections: usize, length: Duration) -> anyhow::Result<f64> {
    let answered = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let end = tokio::time::Instant::now() + length;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (answered, failed) = (answered.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(address).await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            while tokio::time::Instant::now() < end {
                let request = hyper::Request::get("/").header("host", "pod").body(Empty::<Bytes>::new())?;
                let response = sender.send_request(request).await?;
                let ok = response.status().is_success();
                response.into_body().collect().await?;
                if ok {
                    answered.fetch_add(1, Ordering::Relaxed)
                } else {
                    failed.fetch_add(1, Ordering::Relaxed)
                };
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await??;
    }
    let failures = failed.load(Ordering::Relaxed);
    if failures > 0 {
        bail!("{failures} requests to {address} failed");
    }
    Ok(answered.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Requests/s of `wasmtime serve` of component `bytes`, under the same
/// load.
async fn wasmtime_serve(args: &PodBenchArgs, bytes: &[u8], dir: &Path) -> anyhow::Result<f64> {
    let version = std::process::Command::new(&args.wasmtime).arg("--version").output();
    let version = match version {
        Ok(output) => String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        Err(error) => bail!(
            "{} cannot run ({error}); install it with cargo install wasmtime-cli --version 48.0.8",
            args.wasmtime.display()
        ),
    };
    if !version.contains(" 48.") {
        bail!("{} is {version:?}, not wasmtime 48", args.wasmtime.display());
    }
    let file = dir.join("hello-http.wasm");
    std::fs::write(&file, bytes)?;
    let address: SocketAddr = "127.0.0.77:8080".parse()?;
    let mut child = tokio::process::Command::new(&args.wasmtime)
        .args(["serve", "-S", "cli=y", "--addr", &address.to_string()])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        if Instant::now() > deadline {
            bail!("wasmtime serve did not listen on {address}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rate = load(address, args.connections, Duration::from_secs(args.seconds)).await;
    let _ = child.kill().await;
    rate
}
