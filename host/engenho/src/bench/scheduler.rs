//! `engenho bench scheduler`: the default profile's eight plugins placing
//! a cluster's pods. In the bench's own process, cycle after cycle over a
//! node table as the loop keeps it, once with the plugins as components
//! and once with the same plugin crates compiled into the host; then end
//! to end on a real node (Node objects and pods created through the API,
//! bindings seen on a watch); the memory the table and each instance hold;
//! and how long a changed SchedulerProfile takes to place its first pod.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use engenho_api::kube::scheduler::{BUILT_IN_PLUGINS, DEFAULT_PROFILE};
use engenho_scheduler as sdk;
use engenho_scheduling::{Cycle, Decision, PluginRun, PluginTime, Runner, Table, view};
use engenho_wasm::{Limits, PluginHost, SchedulerPlugin, digest_of};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::api::connect;
use super::{Cluster, System, quantile};

/// The namespace of the benchmark's pods.
const NAMESPACE: &str = "bench";

/// The node label that splits the nodes into groups, which profile swaps
/// require in turn.
const GROUP_LABEL: &str = "bench.engenho.io/group";

/// Node groups, at most.
const GROUPS_MAX: usize = 10;

/// Deployments (each with a Service selecting its pods) the pods come from.
const DEPLOYMENTS: usize = 50;

/// Topology zones the nodes are spread over.
const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// Longest the pods of one end-to-end run may take to be bound, and a
/// swap to place its first pod.
const RUN_LIMIT: Duration = Duration::from_secs(280);

/// Swap pods created per second, about, while profiles are swapped.
const SWAP_PODS_INTERVAL: Duration = Duration::from_millis(10);

/// Arguments of `engenho bench scheduler`.
#[derive(Debug, clap::Args)]
pub struct SchedulerBenchArgs {
    /// Cluster sizes (Node objects), one measurement each.
    #[arg(long, value_delimiter = ',', default_values_t = [500, 5000])]
    nodes: Vec<usize>,
    /// Pending pods placed at each size.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Profile swaps timed at each size.
    #[arg(long, default_value_t = 20)]
    swaps: usize,
    /// Creates in flight at once through the API.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Skip the end-to-end runs and swaps on a real node.
    #[arg(long)]
    skip_node: bool,
    /// Backlog runs at each size, as components and natively in turn (each
    /// on a fresh node; the figures are their medians).
    #[arg(long, default_value_t = 3)]
    backlog_pairs: usize,
}

/// Runs the measurements and prints their tables.
pub async fn run(args: SchedulerBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.nodes.is_empty() && args.nodes.iter().all(|n| *n > 0), "--nodes needs sizes above 0");
    anyhow::ensure!(
        args.pods > 0 && args.concurrency > 0 && args.backlog_pairs > 0,
        "--pods, --concurrency and --backlog-pairs must be above 0"
    );
    let tables = host_table_memory(&args.nodes, args.pods);
    let host = PluginHost::new(None).context("the plugin engine")?;
    let mut cycles = Vec::new();
    for &nodes in &args.nodes {
        let workload = Workload::new(nodes, args.pods);
        let component = measure_cycles(&host, &workload, Profile::Component).await?;
        let native = measure_cycles(&host, &workload, Profile::Native).await?;
        anyhow::ensure!(
            component.decisions == native.decisions,
            "at {nodes} nodes the components placed the pods otherwise than the same plugins compiled in"
        );
        eprintln!("  {nodes} nodes: components {:.0} pods/s, native {:.0} pods/s", component.rate, native.rate);
        cycles.push((nodes, component, native));
    }
    let mut ends = Vec::new();
    if !args.skip_node {
        let root = tempfile::tempdir().context("temporary directory")?;
        for &nodes in &args.nodes {
            ends.push((nodes, end_to_end(root.path(), nodes, &args).await?));
        }
    }

    println!("Cycles in the bench's process, {} pending pods each, the default profile's eight plugins:\n", args.pods);
    println!("| nodes | WASM pods/s | native pods/s | WASM/native | placed | unfit |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (nodes, component, native) in &cycles {
        println!(
            "| {nodes} | {:.0} | {:.0} | {:.2} | {} | {} |",
            component.rate,
            native.rate,
            component.rate / native.rate,
            component.placed,
            component.unfit
        );
    }
    print_plugin_times(&cycles, args.pods);
    print_memory(&tables, &cycles, args.pods);
    if !args.skip_node {
        print_end_to_end(&ends, &args);
    }
    Ok(())
}

/// The cluster the benchmark schedules onto: nodes and pods as JSON, the
/// same for the in-process cycles and the real node.
struct Workload {
    nodes: Vec<Value>,
    pods: Vec<Value>,
}

impl Workload {
    fn new(nodes: usize, pods: usize) -> Self {
        let per_deployment = pods.div_ceil(DEPLOYMENTS);
        Self {
            nodes: (0..nodes).map(|i| node_object(i, nodes)).collect(),
            pods: (0..pods).map(|i| pod_object(i, per_deployment <= nodes)).collect(),
        }
    }
}

/// The group of the node at `index` of a cluster of `nodes`.
fn group_of(index: usize, nodes: usize) -> usize {
    index % nodes.min(GROUPS_MAX)
}

/// Node `index` of a cluster of `nodes`: 16 CPUs, 64 GiB, 110 pods; zone,
/// hostname, instance type and group labels; one node in 50 tainted for
/// GPUs only, one in 100 preferring no pods.
fn node_object(index: usize, nodes: usize) -> Value {
    let name = format!("node-{index:05}");
    let taints = match index % 100 {
        7 | 57 => json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
        31 => json!([{"key": "maintenance", "value": "soon", "effect": "PreferNoSchedule"}]),
        _ => json!([]),
    };
    let resources = json!({"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"});
    let instance_type = ["m5.4xlarge", "c5.4xlarge", "r5.4xlarge"][index % 3];
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "topology.kubernetes.io/region": "region-1", "topology.kubernetes.io/zone": ZONES[index % ZONES.len()],
            "node.kubernetes.io/instance-type": instance_type,
            GROUP_LABEL: format!("g{}", group_of(index, nodes)),
        }},
        "spec": {"taints": taints},
        "status": {"capacity": resources, "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
    })
}

/// Pod `index`, as a cluster's: four in five from one of the
/// [`DEPLOYMENTS`] (some with anti-affinity on the hostname, required when
/// `required_anti_affinity_fits`, or preferred; some spread over zones),
/// the rest batch pods, one in twenty pinned to two zones by required node
/// affinity and tolerating the GPU taint.
fn pod_object(index: usize, required_anti_affinity_fits: bool) -> Value {
    let deployment = index % DEPLOYMENTS;
    let app = format!("app-{deployment:02}");
    let (name, labels, cpu, memory, extra) = match index % 20 {
        0..16 => {
            let selector = json!({"matchLabels": {"app": app}});
            let hostname = json!({"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"});
            let extra = match deployment % 10 {
                0 if required_anti_affinity_fits => {
                    json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [hostname]}}})
                }
                1 => json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "podAffinityTerm": hostname}]}}}),
                2 => json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "DoNotSchedule", "labelSelector": selector}]}),
                _ => json!({}),
            };
            let labels = json!({"app": app, "pod-template-hash": format!("{deployment:02}7f9c")});
            let cpu = format!("{}m", 100 + (deployment % 5) * 100);
            let memory = format!("{}Mi", 128 << (deployment % 4));
            (format!("{app}-{index:05}"), labels, cpu, memory, extra)
        }
        16..19 => {
            let labels = json!({"job-name": format!("job-{}", index / 20 % 100)});
            (format!("job-{index:05}"), labels, "250m".into(), "256Mi".into(), json!({}))
        }
        _ => {
            let zones = json!({"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-a", "zone-b"]});
            let extra = json!({
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [zones]}]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "preference": {"matchExpressions": [
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["r5.4xlarge"]}]}}]}},
            });
            (format!("train-{index:05}"), json!({"app": "trainer"}), "1".into(), "2Gi".into(), extra)
        }
    };
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": format!("uid-{index:05}"), "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "registry.example.com/team/app:1.0",
            "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}}]},
    });
    if let (Some(spec), Some(extra)) = (pod["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    pod
}

/// The pod records the loop would make of `workload`'s pods: in namespace
/// [`NAMESPACE`], a deployment's pods spread by default over their
/// Service's selector.
fn pod_records(workload: &Workload) -> Vec<Arc<sdk::Pod>> {
    let namespace = BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), NAMESPACE.to_owned())]);
    let selected = |_: &sdk::LabelSelector| vec![NAMESPACE.to_owned()];
    workload
        .pods
        .iter()
        .map(|pod| {
            let mut record = view::pod(pod, &namespace, &selected);
            // The deployments' pods are selected by their Service.
            let app =
                pod.pointer("/metadata/labels/app").filter(|app| app.as_str().is_some_and(|a| a.starts_with("app-")));
            record.default_spread_selector =
                app.and_then(|app| view::label_selector(Some(&json!({"matchLabels": {"app": app}}))));
            Arc::new(record)
        })
        .collect()
}

/// Which profile a measurement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// The built-in plugins as components.
    Component,
    /// The same plugin crates compiled into the host.
    Native,
}

/// What one in-process run measured.
struct CycleRun {
    /// Pods decided per second.
    rate: f64,
    placed: usize,
    unfit: usize,
    /// Where each pod went, in order (`None`: no node fitted).
    decisions: Vec<Option<u32>>,
    /// Each plugin's linear memory at the end (components only).
    memory: Vec<(String, usize)>,
    /// Each plugin's calls' time over the run.
    times: Vec<(String, PluginTime)>,
}

/// Decides every pod of `workload`, one cycle each, with `profile`, placing
/// each (assumed) in the table as the loop does.
async fn measure_cycles(host: &PluginHost, workload: &Workload, profile: Profile) -> anyhow::Result<CycleRun> {
    let mut table = Table::new();
    for node in &workload.nodes {
        table.set_node(view::node(node));
    }
    let pods = pod_records(workload);
    let mut cycle = start_profile(host, profile).await?;
    let mut decisions = Vec::with_capacity(pods.len());
    let started = Instant::now();
    for pod in &pods {
        match cycle.decide(host, &table, pod, &sdk::Assumptions::default()).await? {
            Decision::Place(index) => {
                let node = table.node(index).map(|n| n.node.name.clone()).context("a decision named no node")?;
                table.place(&node, pod.clone(), true);
                decisions.push(Some(index));
            }
            Decision::Unfit(_) => decisions.push(None),
        }
        table.trim(cycle.oldest_cursor().unwrap_or_else(|| table.cursor()));
    }
    let rate = pods.len() as f64 / started.elapsed().as_secs_f64();
    let memory = cycle.plugins().iter().map(|p| (p.name.clone(), p.runner().memory_bytes())).collect();
    let times = cycle.plugins().iter().map(|p| (p.name.clone(), p.time())).collect();
    let placed = decisions.iter().flatten().count();
    Ok(CycleRun { rate, placed, unfit: decisions.len() - placed, decisions, memory, times })
}

/// The default profile's plugins with kube-scheduler's weights, fresh.
async fn start_profile(host: &PluginHost, profile: Profile) -> anyhow::Result<Cycle> {
    let mut plugins = Vec::with_capacity(BUILT_IN_PLUGINS.len());
    for (name, weight) in BUILT_IN_PLUGINS {
        let runner = match profile {
            Profile::Component => {
                let bytes =
                    engenho_plugin_artifacts::plugin(name).with_context(|| format!("{name} is not built in"))?;
                let limits = Limits { deadline: Duration::from_secs(2), memory_bytes: 256 << 20, ..Limits::default() };
                let plugin = SchedulerPlugin::load(host, name, &digest_of(bytes), bytes, "{}", limits).await?;
                Runner::Component(plugin.instance(host).await?)
            }
            Profile::Native => {
                let (judge, abilities) = crate::native::plugin(name, "{}")
                    .with_context(|| format!("{name} is not compiled in"))?
                    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                Runner::Native { name: name.to_owned(), judge, abilities }
            }
        };
        plugins.push(PluginRun::with_runner(name.to_owned(), weight, runner));
    }
    Ok(Cycle::new(plugins, None))
}

/// The resident memory of this process, in bytes.
fn resident_bytes() -> usize {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()))
        .unwrap_or(0);
    pages * rustix::param::page_size()
}

/// What the host's table of one size holds: resident bytes its nodes
/// added, then its placed pods (their records included, as the loop keeps
/// them).
struct TableMemory {
    nodes: usize,
    node_bytes: usize,
    pod_bytes: usize,
}

/// Builds the host's table at each size, its nodes first, then `pods` pods
/// placed round the nodes, measuring the resident memory each step adds.
/// Every table stays alive until all are measured, so that none is built
/// in memory an earlier one freed.
fn host_table_memory(sizes: &[usize], pods: usize) -> Vec<TableMemory> {
    let mut kept = Vec::with_capacity(sizes.len());
    let mut figures = Vec::with_capacity(sizes.len());
    for &nodes in sizes {
        let workload = Workload::new(nodes, pods);
        let before = resident_bytes();
        let mut table = Table::new();
        for node in &workload.nodes {
            table.set_node(view::node(node));
        }
        table.trim(table.cursor());
        let with_nodes = resident_bytes();
        for (index, pod) in pod_records(&workload).into_iter().enumerate() {
            table.place(&format!("node-{:05}", index % nodes), pod, false);
        }
        table.trim(table.cursor());
        let with_pods = resident_bytes();
        figures.push(TableMemory {
            nodes,
            node_bytes: with_nodes.saturating_sub(before),
            pod_bytes: with_pods.saturating_sub(with_nodes),
        });
        kept.push(table);
    }
    figures
}

/// Each plugin's time per pod, as a component and natively, by kind of
/// call: where a cycle's time goes.
fn print_plugin_times(cycles: &[(usize, CycleRun, CycleRun)], pods: usize) {
    println!("\nEach plugin's calls per pod, µs (prepare + filter + score), as a component and natively:\n");
    println!(
        "| nodes | plugin | WASM prepare | WASM filter | WASM score | native prepare | native filter | native score |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let per_pod = |d: Duration| d.as_secs_f64() * 1e6 / pods.max(1) as f64;
    for (nodes, component, native) in cycles {
        for ((name, wasm), (_, native)) in component.times.iter().zip(&native.times) {
            println!(
                "| {nodes} | {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                per_pod(wasm.prepare),
                per_pod(wasm.filter),
                per_pod(wasm.score),
                per_pod(native.prepare),
                per_pod(native.filter),
                per_pod(native.score)
            );
        }
    }
}

fn print_memory(tables: &[TableMemory], cycles: &[(usize, CycleRun, CycleRun)], pods: usize) {
    println!("\nMemory with {pods} pods placed (host table: resident bytes it added; plugins: linear memory):\n");
    let sizes: Vec<String> = tables.iter().map(|t| format!("at {} nodes", t.nodes)).collect();
    let per_unit = tables.len() >= 2;
    let extra = if per_unit { " | bytes per node | bytes per pod |" } else { " |" };
    println!("| part | {}{extra}", sizes.join(" | "));
    println!("| --- |{}{}", " --- |".repeat(sizes.len()), if per_unit { " --- | --- |" } else { "" });
    let mut rows: Vec<(String, Vec<(usize, usize)>)> = Vec::new();
    rows.push(("host table".into(), tables.iter().map(|t| (t.nodes, t.node_bytes + t.pod_bytes)).collect()));
    if let Some((_, first, _)) = cycles.first() {
        for (index, (name, _)) in first.memory.iter().enumerate() {
            let sizes = cycles.iter().map(|(nodes, run, _)| (*nodes, run.memory[index].1)).collect();
            rows.push((format!("{name} instance"), sizes));
        }
    }
    let instances: Vec<(usize, usize)> =
        cycles.iter().map(|(nodes, run, _)| (*nodes, run.memory.iter().map(|(_, b)| b).sum())).collect();
    rows.push(("all eight instances".into(), instances));
    for (part, sizes) in rows {
        let cells: Vec<String> = sizes.iter().map(|(_, bytes)| format!("{:.1} MB", *bytes as f64 / 1e6)).collect();
        let split = per_unit.then(|| per_node_and_pod(&sizes, pods)).flatten();
        let split = split.map_or_else(String::new, |(node, pod)| format!(" {node:.0} | {pod:.0} |"));
        println!("| {part} | {} |{split}", cells.join(" | "));
    }
}

/// Bytes per node and per pod from the first and last of `sizes` (nodes,
/// bytes), each with `pods` pods: the difference is the nodes', the rest
/// the pods'.
fn per_node_and_pod(sizes: &[(usize, usize)], pods: usize) -> Option<(f64, f64)> {
    let (&(small_nodes, small), &(large_nodes, large)) = (sizes.first()?, sizes.last()?);
    if large_nodes <= small_nodes {
        return None;
    }
    let per_node = (large as f64 - small as f64) / (large_nodes - small_nodes) as f64;
    let per_pod = (small as f64 - per_node * small_nodes as f64) / pods as f64;
    Some((per_node, per_pod))
}

/// What one end-to-end run on a real node measured.
struct EndToEnd {
    /// From the first create to the last bound.
    elapsed: Duration,
    /// From the first create to the last create's answer.
    created: Duration,
    /// Each pod's create answered → bound.
    latencies: Vec<Duration>,
    /// Apply → first pod placed by the new version, one per swap.
    swaps: Vec<Duration>,
    /// Per backlog run: the profile the pods name created → the last of
    /// them bound, all of them pending before (a fresh node); and the same
    /// on a node running the plugins compiled into the binary.
    backlogs: Vec<(Duration, Duration)>,
}

impl EndToEnd {
    /// Pods bound per second from the backlog, the median run's, as
    /// components and natively; the lowest and highest ratio of a pair.
    fn backlog_rates(&self, pods: usize) -> (f64, f64, f64, f64) {
        let rates = |of: fn(&(Duration, Duration)) -> Duration| -> Vec<f64> {
            self.backlogs.iter().map(|run| pods as f64 / of(run).as_secs_f64()).collect()
        };
        let (component, native) = (rates(|run| run.0), rates(|run| run.1));
        let ratios = self.backlogs.iter().map(|(component, native)| native.as_secs_f64() / component.as_secs_f64());
        let lowest = ratios.clone().fold(f64::INFINITY, f64::min);
        let highest = ratios.fold(0.0, f64::max);
        (super::median_value(&component), super::median_value(&native), lowest, highest)
    }
}

fn print_end_to_end(ends: &[(usize, EndToEnd)], args: &SchedulerBenchArgs) {
    println!(
        "\nEnd to end on one node: Node objects (no agents), then {} pods created through the API by {} concurrent \
         creates while the default profile runs; bound as seen on a watch:\n",
        args.pods, args.concurrency
    );
    println!(
        "| nodes | pods | creates done | pods bound/s while created | create→bind p50 | create→bind p99 | pods bound/s \
         from {} pending | the same, plugins compiled in | WASM/native | WASM/native of each pair |",
        args.pods
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (nodes, end) in ends {
        let (component, native, lowest, highest) = end.backlog_rates(args.pods);
        println!(
            "| {nodes} | {} | {:.2} s | {:.0} | {} | {} | {component:.0} | {native:.0} | {:.2} | {lowest:.2}–{highest:.2} |",
            end.latencies.len(),
            end.created.as_secs_f64(),
            end.latencies.len() as f64 / end.elapsed.as_secs_f64(),
            super::millis(quantile(&end.latencies, 0.50)),
            super::millis(quantile(&end.latencies, 0.99)),
            component / native,
        );
    }
    println!(
        "\nPending: on a fresh node, the pods name a profile that does not exist yet (each is told so); the profile \
         is then created with the default plugins, and timed until the last pod is bound. Then the same on another \
         fresh node started with --native-scheduler-plugins: the same plugin crates compiled into the binary. {} \
         such pairs (which goes first alternating); the medians of each side, and the range of the pairs' ratios.",
        args.backlog_pairs
    );
    println!(
        "\nProfile swaps: node-affinity's addedAffinity requires another node group at each apply, pods created \
         continuously; apply → first pod bound in the new group:\n"
    );
    println!("| nodes | swaps | p50 | p99 | max |");
    println!("| --- | --- | --- | --- | --- |");
    for (nodes, end) in ends {
        println!(
            "| {nodes} | {} | {} | {} | {} |",
            end.swaps.len(),
            super::millis(quantile(&end.swaps, 0.50)),
            super::millis(quantile(&end.swaps, 0.99)),
            super::millis(end.swaps.last().copied().unwrap_or_default()),
        );
    }
}

/// A fresh node in `dir` with `nodes` Node objects, ready for pods
/// ([`prepare_cluster`]), and a client of it.
async fn prepared_node(
    dir: &Path,
    nodes: usize,
    args: &SchedulerBenchArgs,
    plugins: Profile,
) -> anyhow::Result<(Cluster, kube::Client)> {
    let extra: &[&str] = match plugins {
        Profile::Component => &[],
        Profile::Native => &["--native-scheduler-plugins"],
    };
    let cluster = Cluster::start_with(System::Engenho, 1, dir, Path::new("etcd"), extra).await?;
    cluster.wait_for_leader().await?;
    let client = connect(&dir.join("n0").join("kubeconfig")).await?;
    prepare_cluster(&client, nodes, args.concurrency).await?;
    // Measured once the node has compiled its controllers' and policies'
    // components, which both profiles' nodes do.
    cluster.settle().await?;
    Ok((cluster, client))
}

/// Starts a node, creates `nodes` Node objects and the pods through its
/// API, and times their binding; then times profile swaps.
async fn end_to_end(root: &Path, nodes: usize, args: &SchedulerBenchArgs) -> anyhow::Result<EndToEnd> {
    let (cluster, client) =
        prepared_node(&root.join(format!("engenho-scheduler-{nodes}")), nodes, args, Profile::Component).await?;
    let workload = Workload::new(nodes, args.pods);
    let pods: Vec<Pod> = workload.pods.iter().map(api_pod).collect::<Result<_, _>>()?;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let (bound, mut bindings) = mpsc::channel(1024);
    let watcher = tokio::spawn(watch_bindings(pods_api.clone(), bound));
    let started = Instant::now();
    let created: Vec<(String, Instant)> = futures::stream::iter(pods)
        .map(|pod| {
            let pods_api = pods_api.clone();
            async move {
                let name = pod.metadata.name.clone().unwrap_or_default();
                pods_api.create(&PostParams::default(), &pod).await.with_context(|| format!("creating pod {name}"))?;
                anyhow::Ok((name, Instant::now()))
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect()
        .await?;
    let created_in = started.elapsed();
    let mut bound_at: HashMap<String, Instant> = HashMap::with_capacity(created.len());
    while bound_at.len() < created.len() {
        let remaining = RUN_LIMIT.saturating_sub(started.elapsed());
        let (name, at, _) = tokio::time::timeout(remaining, bindings.recv())
            .await
            .with_context(|| format!("{} of {} pods bound in time", bound_at.len(), created.len()))?
            .context("the watch ended")?;
        if !name.starts_with("probe") {
            bound_at.entry(name).or_insert(at);
        }
    }
    let elapsed = started.elapsed();
    let mut latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(name, answered)| bound_at.get(name).map(|at| at.saturating_duration_since(*answered)))
        .collect();
    latencies.sort();
    eprintln!("  {nodes} nodes on a node: {:.0} pods bound/s", created.len() as f64 / elapsed.as_secs_f64());
    let swaps = swap_latency(&client, &pods_api, &mut bindings, nodes, args.swaps).await?;
    watcher.abort();
    drop(cluster);
    let mut backlogs = Vec::with_capacity(args.backlog_pairs);
    for run in 0..args.backlog_pairs {
        let (component, native) = if run % 2 == 0 {
            let component = backlog(root, nodes, args, Profile::Component, run).await?;
            (component, backlog(root, nodes, args, Profile::Native, run).await?)
        } else {
            let native = backlog(root, nodes, args, Profile::Native, run).await?;
            (backlog(root, nodes, args, Profile::Component, run).await?, native)
        };
        eprintln!(
            "  {nodes} nodes on a node: {:.0} pods bound/s from pending ({:.0} with the plugins compiled in)",
            args.pods as f64 / component.as_secs_f64(),
            args.pods as f64 / native.as_secs_f64()
        );
        backlogs.push((component, native));
    }
    Ok(EndToEnd { elapsed, created: created_in, latencies, swaps, backlogs })
}

/// The name of the profile the pending pods wait for.
const BACKLOG_PROFILE: &str = "bench-backlog";

/// On a fresh node: creates the pods naming [`BACKLOG_PROFILE`], which does
/// not exist, waits until the scheduler has told each of them so, then
/// creates the profile (the default plugins) and times it until every pod
/// is bound; `run` tells the node's directory from other runs'.
async fn backlog(
    root: &Path,
    nodes: usize,
    args: &SchedulerBenchArgs,
    plugins: Profile,
    run: usize,
) -> anyhow::Result<Duration> {
    let dir = root.join(format!("engenho-scheduler-backlog-{nodes}-{plugins:?}-{run}"));
    let (cluster, client) = prepared_node(&dir, nodes, args, plugins).await?;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let (seen, mut waits) = mpsc::channel(1024);
    let watcher = tokio::spawn(watch_waits(pods_api.clone(), seen));
    let pods: Vec<Pod> = Workload::new(nodes, args.pods)
        .pods
        .iter()
        .map(|pod| {
            let mut pod = pod.clone();
            pod["spec"]["schedulerName"] = json!(BACKLOG_PROFILE);
            api_pod(&pod)
        })
        .collect::<Result<_, _>>()?;
    let count = pods.len();
    futures::stream::iter(pods)
        .map(|pod| {
            let pods_api = pods_api.clone();
            async move { pods_api.create(&PostParams::default(), &pod).await.context("creating a pending pod") }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let mut told = std::collections::HashSet::with_capacity(count);
    while told.len() < count {
        if let Wait::Told(name) = next_wait(&mut waits, "every pending pod told its profile is missing").await? {
            told.insert(name);
        }
    }
    let mut profile = engenho_api::kube::scheduler::default_profile();
    profile["metadata"]["name"] = json!(BACKLOG_PROFILE);
    profile["spec"]["schedulerName"] = json!(BACKLOG_PROFILE);
    let request = http::Request::post("/apis/engenho.io/v1alpha1/schedulerprofiles")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&profile)?)?;
    client.request_text(request).await.context("creating the profile the pods name")?;
    let started = Instant::now();
    let mut bound = std::collections::HashSet::with_capacity(count);
    while bound.len() < count {
        if let Wait::Bound(name) = next_wait(&mut waits, "every pending pod bound").await? {
            bound.insert(name);
        }
    }
    let elapsed = started.elapsed();
    watcher.abort();
    drop(cluster);
    Ok(elapsed)
}

/// What a watch of pending pods saw of one pod.
enum Wait {
    /// It was told that its profile does not exist.
    Told(String),
    /// It was bound.
    Bound(String),
}

/// The next [`Wait`], within [`RUN_LIMIT`].
async fn next_wait(waits: &mut mpsc::Receiver<Wait>, what: &str) -> anyhow::Result<Wait> {
    tokio::time::timeout(RUN_LIMIT, waits.recv())
        .await
        .with_context(|| format!("waited in vain for {what}"))?
        .context("the watch ended")
}

/// Sends what the watch shows of each pod of [`NAMESPACE`]: told that its
/// profile is missing, and bound.
async fn watch_waits(pods: Api<Pod>, seen: mpsc::Sender<Wait>) -> anyhow::Result<()> {
    let mut updates = pod_updates(&pods).await?;
    while let Some(pod) = updates.next().await {
        let pod = pod?;
        let Some(name) = pod.metadata.name.filter(|name| !name.starts_with("probe")) else { continue };
        let wait = if pod.spec.and_then(|s| s.node_name).is_some() {
            Wait::Bound(name)
        } else if pod.status.and_then(|s| s.conditions).is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulerProfileNotFound"))
        }) {
            Wait::Told(name)
        } else {
            continue;
        };
        if seen.send(wait).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// The typed pod of `pod`, without the uid the API assigns.
fn api_pod(pod: &Value) -> anyhow::Result<Pod> {
    let mut pod = pod.clone();
    if let Some(metadata) = pod["metadata"].as_object_mut() {
        metadata.remove("uid");
    }
    Ok(serde_json::from_value(pod)?)
}

/// Readies a fresh node for the run: the default profile active, node
/// lifecycle patient with agentless nodes, the namespace and its service
/// account, the Services whose selectors spread each deployment, and the
/// Node objects, the last of them seen by the scheduler (a probe pod that
/// only it fits is bound).
async fn prepare_cluster(client: &kube::Client, nodes: usize, concurrency: usize) -> anyhow::Result<()> {
    wait_until("the default scheduler profile active", || async {
        let path = format!("/apis/engenho.io/v1alpha1/schedulerprofiles/{DEFAULT_PROFILE}");
        let text = client.request_text(http::Request::get(path).body(Vec::new())?).await?;
        let profile: Value = serde_json::from_str(&text)?;
        anyhow::Ok(profile.pointer("/status/conditions/0/status").and_then(Value::as_str) == Some("True"))
    })
    .await?;
    super::give_agentless_nodes_grace(client).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?)
        .await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    wait_until("the namespace's default service account", || async {
        Ok(accounts.get_opt("default").await?.is_some())
    })
    .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    for deployment in 0..DEPLOYMENTS {
        let app = format!("app-{deployment:02}");
        let service = json!({"metadata": {"name": app}, "spec": {"selector": {"app": app}, "ports": [{"port": 80}]}});
        services.create(&PostParams::default(), &serde_json::from_value(service)?).await?;
    }
    let nodes_api: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..nodes)
        .map(|index| {
            let nodes_api = nodes_api.clone();
            async move {
                let object = node_object(index, nodes);
                let name = format!("node-{index:05}");
                nodes_api.create(&PostParams::default(), &serde_json::from_value(object.clone())?).await?;
                let status = json!({"status": object["status"]});
                nodes_api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await
        .context("creating the nodes")?;
    let last = format!("node-{:05}", nodes - 1);
    let probe = json!({"metadata": {"name": "probe"}, "spec": {"nodeSelector": {"kubernetes.io/hostname": last},
        "tolerations": [{"operator": "Exists"}], "containers": [{"name": "main", "image": "registry.example.com/probe:1"}]}});
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    pods_api.create(&PostParams::default(), &serde_json::from_value(probe)?).await?;
    wait_until("the probe pod bound to the last node", || async {
        let pod = pods_api.get("probe").await?;
        Ok(pod.spec.and_then(|s| s.node_name).is_some())
    })
    .await
}

/// Polls `done` every 50 ms until it says so, for [`RUN_LIMIT`] at most.
async fn wait_until<F, Fut>(what: &str, done: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let started = Instant::now();
    loop {
        if done().await? {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < RUN_LIMIT, "waited in vain for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each pod a watch of `pods` (from the start) shows added or changed; an
/// error where the watch fails.
async fn pod_updates(
    pods: &Api<Pod>,
) -> anyhow::Result<impl futures::Stream<Item = anyhow::Result<Pod>> + Unpin + use<>> {
    let events = pods.watch(&WatchParams::default().timeout(290), "0").await?;
    Ok(events
        .filter_map(|event| async move {
            match event {
                Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) => Some(Ok(pod)),
                Ok(WatchEvent::Error(error)) => Some(Err(anyhow::anyhow!("the watch failed: {error:?}"))),
                Ok(_) => None,
                Err(error) => Some(Err(error.into())),
            }
        })
        .boxed())
}

/// Sends (name, when seen, node) of every pod of [`NAMESPACE`] the first
/// time a watch shows it bound.
async fn watch_bindings(pods: Api<Pod>, bound: mpsc::Sender<(String, Instant, String)>) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut updates = pod_updates(&pods).await?;
    while let Some(pod) = updates.next().await {
        let pod = pod?;
        let at = Instant::now();
        let (Some(name), Some(node)) = (pod.metadata.name, pod.spec.and_then(|s| s.node_name)) else { continue };
        if seen.insert(name.clone()) && bound.send((name, at, node)).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// The default profile's plugins, node-affinity requiring node group
/// `group` (none: no added affinity), as a merge patch of the profile.
fn profile_patch(group: Option<usize>) -> Value {
    let plugins: Vec<Value> = BUILT_IN_PLUGINS
        .iter()
        .map(|(name, weight)| match group {
            Some(group) if *name == "node-affinity" => {
                let term = json!({"matchExpressions": [{"key": GROUP_LABEL, "operator": "In", "values": [format!("g{group}")]}]});
                let config = json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}});
                json!({"name": name, "weight": weight, "config": config})
            }
            _ => json!({"name": name, "weight": weight}),
        })
        .collect();
    json!({"spec": {"plugins": plugins}})
}

/// The group of the node named `node` (`node-00042`) of a cluster of
/// `nodes`.
fn group_of_node(node: &str, nodes: usize) -> Option<usize> {
    node.strip_prefix("node-").and_then(|i| i.parse().ok()).map(|index| group_of(index, nodes))
}

/// Times `swaps` profile swaps while pods are created continuously: each
/// requires another node group, and the first pod bound in it is the new
/// version's first. A first, untimed swap moves the pods into group 0.
async fn swap_latency(
    client: &kube::Client,
    pods: &Api<Pod>,
    bindings: &mut mpsc::Receiver<(String, Instant, String)>,
    nodes: usize,
    swaps: usize,
) -> anyhow::Result<Vec<Duration>> {
    let groups = nodes.min(GROUPS_MAX);
    anyhow::ensure!(groups >= 2, "profile swaps need two node groups, so at least two nodes");
    let creator = {
        let pods = pods.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWAP_PODS_INTERVAL);
            for number in 0u64.. {
                tick.tick().await;
                let pod = json!({"metadata": {"name": format!("swap-{number:06}")}, "spec": {"containers": [
                    {"name": "main", "image": "registry.example.com/app:1", "resources": {"requests": {"cpu": "10m"}}}]}});
                pods.create(&PostParams::default(), &serde_json::from_value(pod)?).await?;
            }
            anyhow::Ok(())
        })
    };
    let profile = |group| async move {
        let path = format!("/apis/engenho.io/v1alpha1/schedulerprofiles/{DEFAULT_PROFILE}");
        let body = serde_json::to_vec(&profile_patch(group))?;
        let request = http::Request::patch(path).header("Content-Type", "application/merge-patch+json").body(body)?;
        client.request_text(request).await?;
        anyhow::Ok(Instant::now())
    };
    let result = async {
        // Five pods in a row in group 0: the untimed first swap is in force.
        profile(Some(0)).await?;
        let mut in_a_row = 0;
        while in_a_row < 5 {
            let (_, _, node) = next_binding(bindings).await?;
            in_a_row = if group_of_node(&node, nodes) == Some(0) { in_a_row + 1 } else { 0 };
        }
        let mut latencies = Vec::with_capacity(swaps);
        for swap in 1..=swaps {
            let group = swap % groups;
            let applied = profile(Some(group)).await?;
            loop {
                let (_, at, node) = next_binding(bindings).await?;
                if group_of_node(&node, nodes) == Some(group) {
                    latencies.push(at.saturating_duration_since(applied));
                    break;
                }
            }
        }
        latencies.sort();
        anyhow::Ok(latencies)
    }
    .await;
    creator.abort();
    result
}

/// The next pod bound, within [`RUN_LIMIT`].
async fn next_binding(
    bindings: &mut mpsc::Receiver<(String, Instant, String)>,
) -> anyhow::Result<(String, Instant, String)> {
    tokio::time::timeout(RUN_LIMIT, bindings.recv())
        .await
        .context("no pod was bound in time")?
        .context("the watch ended")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn components_place_pods_as_the_same_plugins_compiled_in() {
        // Goal: a pod's crossing into the components (its placement
        // sent as a reference to the pod just prepared, among others)
        // loses nothing: cycle after cycle, the components place every pod
        // where the same plugin crates compiled in place it. Method: more
        // pods than four nodes hold, so that placements fill the nodes
        // and spread constraints and anti-affinity see every pod placed.
        let host = PluginHost::new(None).expect("the plugin engine");
        let workload = Workload::new(4, 500);
        let component = measure_cycles(&host, &workload, Profile::Component).await.expect("the components decide");
        let native = measure_cycles(&host, &workload, Profile::Native).await.expect("the natives decide");
        assert!(
            component.placed > 100 && component.unfit > 100,
            "{} placed, {} unfit",
            component.placed,
            component.unfit
        );
        assert_eq!(component.decisions, native.decisions);
    }
}
