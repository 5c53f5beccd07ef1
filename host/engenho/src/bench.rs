//! `engenho bench`: measurements against real processes, side by side with
//! the peer systems that can run on the same machine.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use engenho_api::etcd::proto::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, StatusRequest, TxnRequest, compare, kv_client::KvClient,
    maintenance_client::MaintenanceClient, request_op,
};
use engenho_pki::{ClusterCa, HTTP2_ALPN, Profile};
use rustls::ClientConfig;
use tonic::transport::Channel;

pub(crate) mod api;
mod controllers;
mod failover;
mod gossip;
mod plugins;
mod pods;
mod scheduler;

/// Keys pre-written for the read benchmark.
const READ_KEYS: usize = 1000;

/// Deadline of one benchmark request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `engenho bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    target: BenchTarget,
}

#[derive(Debug, clap::Subcommand)]
enum BenchTarget {
    /// Write and read throughput and latency of the replicated store, and
    /// of etcd under the same client and workload.
    Store(StoreBenchArgs),
    /// Pod creates, gets, lists and watch delivery through the Kubernetes
    /// API of one node, with the raw store cost of the same writes.
    Api(api::ApiBenchArgs),
    /// Admission policies as components: per-call cost, loading, chain
    /// throughput, live swaps.
    Plugins(plugins::PluginBenchArgs),
    /// Controllers: a large Deployment brought up on a node, informer
    /// memory, and the replicaset controller as a component against the
    /// same controller compiled into the host.
    Controllers(controllers::ControllerBenchArgs),
    /// The scheduler: the default profile's plugins as components against
    /// the same plugins compiled into the host, pods bound end to end on a
    /// node, memory per node and pod, profile swaps.
    Scheduler(scheduler::SchedulerBenchArgs),
    /// Pods: create → Running latency of wasi command pods, host memory
    /// per idle wasi:http pod, requests/s of a wasi:http pod against
    /// `wasmtime serve` of the same component.
    Pods(pods::PodBenchArgs),
    /// Gossip: how fast a membership change spreads, and bytes per node
    /// per second, with many gossip nodes in one process.
    Gossip(gossip::GossipBenchArgs),
    /// Failover: the raft leader killed; until a new leader, writes
    /// accepted again and the voters restored, with etcd's beside.
    Failover(failover::FailoverBenchArgs),
}

#[derive(Debug, clap::Args)]
struct StoreBenchArgs {
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients of the write measurements.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 256])]
    concurrency: Vec<usize>,
    /// Cluster sizes to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 3])]
    nodes: Vec<usize>,
    /// Concurrent clients of the read measurement.
    #[arg(long, default_value_t = 16)]
    read_concurrency: usize,
    /// gRPC connections the clients share (HTTP/2 multiplexes their
    /// requests); fewer if there are fewer clients.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Bytes per written value.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Measure engenho only.
    #[arg(long)]
    skip_etcd: bool,
    /// Turns each measurement is split into. Both systems' clusters run
    /// through a round, and their turns alternate, so that the two see the
    /// machine alike: on a shared machine its speed drifts within seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    turns: u32,
    /// Times every measurement is repeated, each on a fresh cluster, the
    /// systems taking turns to go first; the table shows the median of each
    /// figure (the spread between runs on a shared machine is wide).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=25))]
    rounds: u32,
    /// Path of the etcd server binary.
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
}

/// Runs a benchmark and prints its table.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.target {
        BenchTarget::Store(args) => store(args).await,
        BenchTarget::Api(args) => api::run(args).await,
        BenchTarget::Plugins(args) => plugins::run(args).await,
        BenchTarget::Controllers(args) => controllers::run(args).await,
        BenchTarget::Scheduler(args) => scheduler::run(args).await,
        BenchTarget::Pods(args) => pods::run(args).await,
        BenchTarget::Gossip(args) => gossip::run(args).await,
        BenchTarget::Failover(args) => failover::run(args).await,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    Engenho,
    Etcd,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            Self::Engenho => "engenho",
            Self::Etcd => "etcd",
        }
    }
}

/// One measurement's outcome.
#[derive(Debug, Clone, Copy)]
struct Figures {
    operations_per_second: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time all server processes spent per operation, when measured.
    server_cpu_per_operation: Option<Duration>,
}

struct Row {
    nodes: usize,
    workload: String,
    engenho: Figures,
    etcd: Option<Figures>,
    /// The lowest and highest throughput ratio of one round's engenho
    /// cluster to the etcd cluster measured next to it.
    round_ratios: Option<(f64, f64)>,
}

async fn store(args: StoreBenchArgs) -> anyhow::Result<()> {
    let root = tempfile::tempdir().context("temporary directory")?;
    let systems: &[System] = if args.skip_etcd { &[System::Engenho] } else { &[System::Engenho, System::Etcd] };
    let workloads: Vec<Workload> = args
        .concurrency
        .iter()
        .map(|&concurrency| Workload::Write(concurrency))
        .chain([Workload::Read(args.read_concurrency)])
        .collect();
    let turn = Duration::from_secs(args.seconds).div_f64(f64::from(args.turns));
    let mut rows = Vec::new();
    for &nodes in &args.nodes {
        let mut rounds_by_system: Vec<Vec<Vec<(String, Figures)>>> = vec![Vec::new(); systems.len()];
        for round in 0..args.rounds {
            eprintln!("round {} of {}:", round + 1, args.rounds);
            let mut running = Vec::with_capacity(systems.len());
            for &system in systems {
                let dir = root.path().join(format!("{}-{nodes}-{round}", system.name()));
                running.push(Running::start(system, nodes, &dir, &args.etcd).await?);
            }
            let mut figures = vec![Vec::new(); systems.len()];
            for &workload in &workloads {
                let mut samples: Vec<Sample> = (0..systems.len()).map(|_| Sample::default()).collect();
                for number in 0..args.turns {
                    let mut order: Vec<usize> = (0..systems.len()).collect();
                    if (number + round) % 2 == 1 {
                        order.reverse();
                    }
                    for index in order {
                        samples[index].add(running[index].measure(workload, &args, turn).await?);
                    }
                }
                for (index, sample) in samples.into_iter().enumerate() {
                    let measured = sample.figures(workload.is_write())?;
                    eprintln!("  {} {}: {measured:?}", systems[index].name(), workload.name());
                    figures[index].push((workload.name(), measured));
                }
            }
            for (index, figures) in figures.into_iter().enumerate() {
                rounds_by_system[index].push(figures);
            }
        }
        let medians: Vec<Vec<(String, Figures)>> = rounds_by_system.iter().map(|rounds| median(rounds)).collect();
        for (index, (workload, figures)) in medians[0].iter().enumerate() {
            let etcd = medians.get(1).map(|f| f[index].1);
            let round_ratios = rounds_by_system.get(1).map(|etcd_rounds| {
                let ratios = rounds_by_system[0]
                    .iter()
                    .zip(etcd_rounds)
                    .map(|(ours, theirs)| ours[index].1.operations_per_second / theirs[index].1.operations_per_second);
                ratios.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), ratio| (low.min(ratio), high.max(ratio)))
            });
            rows.push(Row { nodes, workload: workload.clone(), engenho: *figures, etcd, round_ratios });
        }
    }
    println!("Medians of {} round(s):", args.rounds);
    print_table(&rows);
    Ok(())
}

/// One workload of the store benchmark, with its number of clients.
#[derive(Debug, Clone, Copy)]
enum Workload {
    /// Puts to the leader.
    Write(usize),
    /// Serializable gets from the last member.
    Read(usize),
}

impl Workload {
    fn name(self) -> String {
        match self {
            Self::Write(concurrency) => format!("write c={concurrency}"),
            Self::Read(concurrency) => format!("serializable read c={concurrency}"),
        }
    }

    fn is_write(self) -> bool {
        matches!(self, Self::Write(_))
    }
}

/// Where benchmark clients connect, and the TLS client configuration
/// (with a client certificate) they prove themselves with.
#[derive(Clone)]
struct Target {
    addr: String,
    tls: Arc<ClientConfig>,
}

/// A cluster of one system, up and ready for every workload.
struct Running {
    cluster: Cluster,
    leader: Target,
    read_from: Target,
}

impl Running {
    /// Starts a cluster of `system` and writes the keys the reads get.
    async fn start(system: System, nodes: usize, dir: &Path, etcd: &Path) -> anyhow::Result<Self> {
        let cluster = Cluster::start(system, nodes, dir, etcd).await?;
        cluster.settle().await?;
        let leader = cluster.wait_for_leader().await?;
        eprintln!("{} with {nodes} node(s): leader at {}", system.name(), leader.addr);
        let read_from = cluster.targets().last().cloned().unwrap_or_else(|| leader.clone());
        write_read_keys(&leader).await?;
        Ok(Self { cluster, leader, read_from })
    }

    /// Runs `workload` for `duration`; a write's sample carries the CPU
    /// time the cluster's processes spent meanwhile.
    async fn measure(&self, workload: Workload, args: &StoreBenchArgs, duration: Duration) -> anyhow::Result<Sample> {
        match workload {
            Workload::Write(concurrency) => {
                let connections = concurrency.min(args.connections.max(1));
                let cpu_before = self.cluster.cpu_time()?;
                let mut sample =
                    measure_writes(&self.leader, connections, concurrency, args.value_bytes, duration).await?;
                sample.server_cpu = self.cluster.cpu_time()?.saturating_sub(cpu_before);
                Ok(sample)
            }
            Workload::Read(concurrency) => {
                let connections = concurrency.min(args.connections.max(1));
                measure_reads(&self.read_from, connections, concurrency, duration).await
            }
        }
    }
}

/// The operations of one or more turns of a measurement.
#[derive(Debug, Default)]
struct Sample {
    /// Each operation's latency.
    latencies: Vec<Duration>,
    /// Time the turns took.
    elapsed: Duration,
    /// CPU time the server processes spent meanwhile, when measured.
    server_cpu: Duration,
}

impl Sample {
    fn add(&mut self, other: Sample) {
        self.latencies.extend(other.latencies);
        self.elapsed += other.elapsed;
        self.server_cpu += other.server_cpu;
    }

    /// Throughput and latencies, with the server CPU per operation if
    /// `with_cpu`.
    fn figures(mut self, with_cpu: bool) -> anyhow::Result<Figures> {
        if self.latencies.is_empty() {
            bail!("no operation completed");
        }
        self.latencies.sort_unstable();
        let count = self.latencies.len();
        Ok(Figures {
            operations_per_second: count as f64 / self.elapsed.as_secs_f64(),
            p50: quantile(&self.latencies, 0.50),
            p99: quantile(&self.latencies, 0.99),
            server_cpu_per_operation: with_cpu.then(|| self.server_cpu.div_f64(count as f64)),
        })
    }
}

/// The middle of `values` (the mean of the two middle ones when their
/// number is even; 0 when empty).
fn median_value(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

/// The value at `q` (0 to 1) of `sorted`; zero if it is empty.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// Per workload, the median of each figure over the rounds.
fn median(rounds: &[Vec<(String, Figures)>]) -> Vec<(String, Figures)> {
    rounds[0]
        .iter()
        .enumerate()
        .map(|(index, (workload, _))| {
            let all: Vec<Figures> = rounds.iter().map(|round| round[index].1).collect();
            (workload.clone(), median_figures(&all))
        })
        .collect()
}

/// The median of each figure of `all` (not empty).
fn median_figures(all: &[Figures]) -> Figures {
    Figures {
        operations_per_second: middle(all.iter().map(|f| f.operations_per_second).collect()),
        p50: middle(all.iter().map(|f| f.p50).collect()),
        p99: middle(all.iter().map(|f| f.p99).collect()),
        server_cpu_per_operation: all
            .iter()
            .map(|f| f.server_cpu_per_operation)
            .collect::<Option<Vec<_>>>()
            .map(middle),
    }
}

/// The middle one of `values` (not empty) once sorted.
fn middle<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).expect("figures are never NaN"));
    values[values.len() / 2]
}

fn print_table(rows: &[Row]) {
    println!(
        "| nodes | workload | engenho ops/s | p50 | p99 | CPU/op | etcd ops/s | p50 | p99 | CPU/op | throughput ratio | rounds' ratios | p99 ratio |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for row in rows {
        let ours = row.engenho;
        let (theirs, ratio, p99_ratio) = match row.etcd {
            Some(etcd) => (
                format!("{} | {}", columns(etcd), cpu(etcd)),
                format!("{:.2}×", ours.operations_per_second / etcd.operations_per_second),
                format!("{:.2}×", ours.p99.as_secs_f64() / etcd.p99.as_secs_f64()),
            ),
            None => ("- | - | - | -".into(), "-".into(), "-".into()),
        };
        let rounds = row.round_ratios.map_or_else(|| "-".into(), |(low, high)| format!("{low:.2}–{high:.2}×"));
        println!(
            "| {} | {} | {} | {} | {theirs} | {ratio} | {rounds} | {p99_ratio} |",
            row.nodes,
            row.workload,
            columns(ours),
            cpu(ours)
        );
    }
}

fn columns(figures: Figures) -> String {
    format!("{:.0} | {} | {}", figures.operations_per_second, millis(figures.p50), millis(figures.p99))
}

fn cpu(figures: Figures) -> String {
    figures.server_cpu_per_operation.map_or_else(|| "-".into(), |cpu| format!("{:.0} µs", cpu.as_secs_f64() * 1e6))
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// `count` gRPC channels to `target` over TLS, each with a connection of
/// its own, connected before they are returned.
async fn connect(target: &Target, count: usize) -> anyhow::Result<Vec<Channel>> {
    let endpoint =
        engenho_pki::grpc_endpoint(&target.addr)?.connect_timeout(Duration::from_secs(2)).timeout(REQUEST_TIMEOUT);
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        let channel = engenho_pki::grpc_channel(&endpoint, target.tls.clone());
        // A first request opens the connection, so that no measured request
        // pays for the TCP and TLS handshakes.
        MaintenanceClient::new(channel.clone())
            .status(StatusRequest {})
            .await
            .with_context(|| format!("connecting to {}", target.addr))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Runs `concurrency` workers for `duration` over `connections`
/// connections to `addr`, each calling `operation` in a loop, and collects
/// latencies. The clients and their connections run on a thread of their
/// own with a single-threaded runtime: a request and its connection's tasks
/// hand off within that thread, so the client adds as little as it can to
/// every request, the same for every system measured.
async fn measure<F, Fut>(
    target: &Target,
    connections: usize,
    concurrency: usize,
    duration: Duration,
    operation: F,
) -> anyhow::Result<Sample>
where
    F: Fn(KvClient<Channel>, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + 'static,
{
    let target = target.clone();
    let (sender, measured) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-clients".into())
        .spawn(move || {
            let sample = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("the clients' runtime")
                .and_then(|runtime| {
                    runtime.block_on(async {
                        let channels = connect(&target, connections).await?;
                        let local = tokio::task::LocalSet::new();
                        local.run_until(run_clients(channels, concurrency, duration, operation)).await
                    })
                });
            let _ = sender.send(sample);
        })
        .context("starting the clients' thread")?;
    measured.await.context("the clients' thread stopped")?
}

/// The measurement loop of [`measure`], on the clients' own thread.
async fn run_clients<F, Fut>(
    channels: Vec<Channel>,
    concurrency: usize,
    duration: Duration,
    operation: F,
) -> anyhow::Result<Sample>
where
    F: Fn(KvClient<Channel>, usize, u64) -> Fut + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + 'static,
{
    let operation = Arc::new(operation);
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let client = KvClient::new(channels[worker % channels.len()].clone());
        let operation = operation.clone();
        workers.push(tokio::task::spawn_local(async move {
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
    Ok(Sample { latencies, elapsed: started.elapsed(), server_cpu: Duration::ZERO })
}

async fn measure_writes(
    target: &Target,
    connections: usize,
    concurrency: usize,
    value_bytes: usize,
    duration: Duration,
) -> anyhow::Result<Sample> {
    let value = Arc::new(vec![b'v'; value_bytes]);
    measure(target, connections, concurrency, duration, move |mut client, worker, sequence| {
        let value = value.clone();
        async move {
            let key = format!("bench/{worker}/{}", sequence % 1000).into_bytes();
            client.put(PutRequest { key, value: value.to_vec(), ..PutRequest::default() }).await?;
            Ok(())
        }
    })
    .await
}

/// Creates of fresh keys as the API server writes an object: a
/// transaction that puts `value_bytes` under a key only if the key has
/// never been created. Each key is `prefix`, the worker and a sequence
/// number; the transaction must succeed.
async fn measure_creates(
    target: &Target,
    connections: usize,
    concurrency: usize,
    prefix: String,
    value_bytes: usize,
    duration: Duration,
) -> anyhow::Result<Figures> {
    let value = Arc::new(vec![b'v'; value_bytes]);
    let prefix = Arc::new(prefix);
    measure(target, connections, concurrency, duration, move |mut client, worker, sequence| {
        let (value, prefix) = (value.clone(), prefix.clone());
        async move {
            let key = format!("{prefix}{worker:02}-{sequence:07}").into_bytes();
            let absent = Compare {
                result: compare::CompareResult::Equal.into(),
                target: compare::CompareTarget::Create.into(),
                key: key.clone(),
                target_union: Some(compare::TargetUnion::CreateRevision(0)),
                ..Compare::default()
            };
            let put = RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key,
                    value: value.to_vec(),
                    ..PutRequest::default()
                })),
            };
            let request = TxnRequest { compare: vec![absent], success: vec![put], failure: Vec::new() };
            if !client.txn(request).await?.into_inner().succeeded {
                bail!("a create of a fresh key found the key");
            }
            Ok(())
        }
    })
    .await?
    .figures(false)
}

/// Writes the keys [`measure_reads`] gets.
async fn write_read_keys(leader: &Target) -> anyhow::Result<()> {
    let mut writer = KvClient::new(connect(leader, 1).await?.remove(0));
    for i in 0..READ_KEYS {
        let request =
            PutRequest { key: format!("read/{i:04}").into_bytes(), value: vec![b'r'; 256], ..PutRequest::default() };
        writer.put(request).await?;
    }
    Ok(())
}

async fn measure_reads(
    target: &Target,
    connections: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Sample> {
    measure(target, connections, concurrency, duration, |mut client, worker, sequence| async move {
        let index = (worker * 7919 + usize::try_from(sequence).unwrap_or(0)) % READ_KEYS;
        let request = RangeRequest {
            key: format!("read/{index:04}").into_bytes(),
            serializable: true,
            ..RangeRequest::default()
        };
        let found = client.range(request).await?.into_inner();
        if found.kvs.is_empty() {
            bail!("a pre-written key was not found");
        }
        Ok(())
    })
    .await
}

/// Processes of one benchmarked cluster; killed on drop.
/// CPU time a cluster's processes may use in a second and count as idle.
const SETTLED_CPU: Duration = Duration::from_millis(100);

/// Longest a new cluster is given to become idle before it is measured.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);

struct Cluster {
    /// Each member's process, while it runs.
    children: Vec<Option<Child>>,
    /// How each member is started (and started again: a command spawns
    /// as often as asked).
    commands: Vec<Command>,
    client_addrs: Vec<String>,
    /// How clients prove themselves to the cluster's client endpoints.
    tls: Arc<ClientConfig>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn member_ip(system: System, index: usize) -> Ipv4Addr {
    let third = match system {
        System::Engenho => 110,
        System::Etcd => 120,
    };
    Ipv4Addr::new(127, 0, third, u8::try_from(index + 1).expect("small cluster"))
}

impl Cluster {
    /// CPU time (user and system) the cluster's processes have used so far.
    fn cpu_time(&self) -> anyhow::Result<Duration> {
        let ticks_per_second = rustix::param::clock_ticks_per_second();
        let mut ticks = 0u64;
        for child in self.children.iter().flatten() {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id()))?;
            // Fields after the parenthesised command name: state is the first,
            // utime the 12th and stime the 13th.
            let fields: Vec<&str> =
                stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
            let field = |index: usize| -> anyhow::Result<u64> {
                Ok(fields.get(index).context("short /proc stat line")?.parse()?)
            };
            ticks += field(11)? + field(12)?;
        }
        Ok(Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64))
    }

    /// Starts a cluster of `system`, every client and peer URL under TLS
    /// with client certificates required, from a CA the bench makes (for
    /// engenho, the first member's cluster CA).
    async fn start(system: System, nodes: usize, dir: &Path, etcd: &Path) -> anyhow::Result<Self> {
        Self::start_with(system, nodes, dir, etcd, &[]).await
    }

    /// As [`Cluster::start`], each engenho member started with `extra`
    /// arguments of `engenho up`.
    async fn start_with(system: System, nodes: usize, dir: &Path, etcd: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let pki = match system {
            System::Engenho => dir.join("n0").join("pki"),
            System::Etcd => dir.join("pki"),
        };
        let ca = ClusterCa::create(&pki)?;
        let client = ca.issue(&Profile::Client { common_name: "bench".into() })?;
        let tls = engenho_pki::mutual_client_config(&client, ca.certificate_der(), &[HTTP2_ALPN])?;
        let mut cluster = Self { children: Vec::new(), commands: Vec::new(), client_addrs: Vec::new(), tls };
        let initial: Vec<String> = (0..nodes).map(|i| format!("e{i}=https://{}:2380", member_ip(system, i))).collect();
        for index in 0..nodes {
            let ip = member_ip(system, index);
            let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{index}.log")))?;
            let mut command = match system {
                System::Engenho => {
                    let mut command = Command::new(std::env::current_exe()?);
                    command
                        .args(["up", "--data-dir"])
                        .arg(dir.join(format!("n{index}")))
                        .args(["--name", &format!("n{index}"), "--etcd-addr", &format!("{ip}:2379")])
                        .args(["--peer-addr", &format!("{ip}:2380"), "--api-addr", &format!("{ip}:6443")]);
                    if index > 0 {
                        command.args(["--join", &format!("{}:2380", member_ip(system, 0)), "--token-file"]);
                        command.arg(dir.join("n0").join("join-token"));
                    }
                    command.args(extra).env("ENGENHO_LOG", "warn");
                    command
                }
                System::Etcd => {
                    let name = format!("e{index}");
                    let (certificate, key) = (pki.join(format!("{name}.crt")), pki.join(format!("{name}.key")));
                    // An etcd member checks that a dialing peer's address
                    // is in its certificate; on loopback peers dial from
                    // 127.0.0.1.
                    let ips = vec![ip.into(), Ipv4Addr::LOCALHOST.into()];
                    ca.issue(&Profile::Member { common_name: name.clone(), ips })?.write(&certificate, &key)?;
                    let trusted = pki.join(engenho_pki::CA_CERTIFICATE_FILE);
                    let mut command = Command::new(etcd);
                    command
                        .args(["--name", &name, "--data-dir"])
                        .arg(dir.join(&name))
                        .args(["--listen-client-urls", &format!("https://{ip}:2379")])
                        .args(["--advertise-client-urls", &format!("https://{ip}:2379")])
                        .args(["--listen-peer-urls", &format!("https://{ip}:2380")])
                        .args(["--initial-advertise-peer-urls", &format!("https://{ip}:2380")])
                        .args(["--initial-cluster", &initial[..nodes].join(",")])
                        .args(["--initial-cluster-state", "new", "--initial-cluster-token", "bench"])
                        .args(["--client-cert-auth", "--peer-client-cert-auth"]);
                    for flag in ["--cert-file", "--peer-cert-file"] {
                        command.arg(flag).arg(&certificate);
                    }
                    for flag in ["--key-file", "--peer-key-file"] {
                        command.arg(flag).arg(&key);
                    }
                    for flag in ["--trusted-ca-file", "--peer-trusted-ca-file"] {
                        command.arg(flag).arg(&trusted);
                    }
                    command.args(["--logger", "zap", "--log-level", "error"]);
                    command
                }
            };
            command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
            let child = command.spawn().with_context(|| format!("starting {} member {index}", system.name()))?;
            cluster.children.push(Some(child));
            cluster.commands.push(command);
            cluster.client_addrs.push(format!("{ip}:2379"));
            if system == System::Engenho {
                // Later members join through the cluster, which must be up;
                // a member is measured only once it has finished starting
                // (its plugins compiled and its API serving), as an etcd
                // member is once it serves.
                cluster.wait_for_leader().await?;
                api::connect(&dir.join(format!("n{index}")).join("kubeconfig")).await?;
            }
        }
        Ok(cluster)
    }

    /// Waits until the cluster's processes are idle (together under
    /// [`SETTLED_CPU`] of a core over a second), at most
    /// [`SETTLE_TIMEOUT`]: a new engenho leader compiles the components
    /// of its controllers and scheduler for a while after it serves, and
    /// a measurement taken meanwhile measures the compiler as well.
    async fn settle(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let mut before = self.cpu_time()?;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.cpu_time()?;
            let used = now.saturating_sub(before);
            if used < SETTLED_CPU {
                return Ok(());
            }
            if Instant::now() >= deadline {
                eprintln!("still busy after {SETTLE_TIMEOUT:?} ({used:?} of CPU in the last second); measuring anyway");
                return Ok(());
            }
            before = now;
        }
    }

    /// Kills member `index` with SIGKILL, as a crash.
    fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `index` again on its data.
    fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.children[index].is_none(), "member {index} runs");
        self.children[index] = Some(self.commands[index].spawn().with_context(|| format!("restarting {index}"))?);
        Ok(())
    }

    /// Every member's client endpoint.
    fn targets(&self) -> Vec<Target> {
        self.client_addrs.iter().map(|addr| Target { addr: addr.clone(), tls: self.tls.clone() }).collect()
    }

    /// Waits until every member answers and agrees on a leader; returns the
    /// leader's client endpoint.
    async fn wait_for_leader(&self) -> anyhow::Result<Target> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(addr)) = self.leader().await {
                return Ok(addr);
            }
            if Instant::now() > deadline {
                bail!("the cluster elected no leader in time");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn leader(&self) -> anyhow::Result<Option<Target>> {
        let mut leaders = Vec::new();
        let mut leader_addr = None;
        for target in self.targets() {
            let channel = connect(&target, 1).await?.remove(0);
            let status = MaintenanceClient::new(channel).status(StatusRequest {}).await?.into_inner();
            let member = status.header.map_or(0, |h| h.member_id);
            if status.leader == 0 {
                return Ok(None);
            }
            if status.leader == member {
                leader_addr = Some(target);
            }
            leaders.push(status.leader);
        }
        leaders.dedup();
        Ok(if leaders.len() == 1 { leader_addr } else { None })
    }
}

/// Gives Nodes without agents (they never renew a Lease) a day's grace
/// before the node lifecycle controller taints them unreachable mid-run.
async fn give_agentless_nodes_grace(client: &kube::Client) -> anyhow::Result<()> {
    let patch = serde_json::json!({"spec": {"config": {"gracePeriodSeconds": 86_400}}});
    crate::plugin::plugins_api(client.clone())
        .patch("node-lifecycle-controller", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .context("configuring the node lifecycle controller")?;
    Ok(())
}
