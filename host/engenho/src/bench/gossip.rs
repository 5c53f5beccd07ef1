//! `engenho bench gossip`: how fast a membership change spreads through
//! revoada's gossip and what gossip costs a node, with `--nodes` gossip
//! instances in this one process (each its own UDP socket on a loopback
//! address, its own node certificate of one CA, every datagram sealed and
//! opened as between real nodes). Measured: the time until every node
//! holds every other live after they start (seeded by the first), the time
//! until every node holds a newly started one live, and each node's bytes
//! sent per second while the membership is steady.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use engenho_gossip::{Gossip, GossipConfig, NodeState, Sealer};
use engenho_pki::{ClusterCa, Profile};

/// `engenho bench gossip` arguments.
#[derive(clap::Args, Debug)]
pub struct GossipBenchArgs {
    /// Gossip instances (nodes) in this process.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Milliseconds between gossip rounds.
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,
    /// Seconds the steady membership is measured for bytes sent.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Longest a convergence may take, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

/// Runs the measurement and prints its table.
pub async fn run(args: GossipBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!((2..=60_000).contains(&args.nodes), "--nodes: give 2 to 60000");
    let dir = tempfile::tempdir().context("temporary directory")?;
    let ca = ClusterCa::create(dir.path()).context("a CA")?;
    let interval = Duration::from_millis(args.interval_ms.max(10));
    let timeout = Duration::from_secs(args.timeout);
    let address = |n: usize| {
        let n = u32::try_from(n + 1).unwrap_or(u32::MAX);
        SocketAddr::new(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 101, 0, 0)) + n).into(), 7946)
    };
    // Every identity is issued before any node gossips: issuing competes
    // for the cores with the nodes already running.
    let sealers: Vec<Sealer> = (0..=args.nodes).map(|n| sealer(&ca, n, address(n))).collect::<anyhow::Result<_>>()?;
    let mut sealers = sealers.into_iter();
    let mut nodes = Vec::with_capacity(args.nodes + 1);
    let started = Instant::now();
    for n in 0..args.nodes {
        let sealer = sealers.next().context("a sealer per node")?;
        nodes.push(start(&ca, sealer, address(n), vec![address(0)], interval).await?);
    }
    let all_live = converge(&nodes, args.nodes, started, timeout).await?;

    let bytes_before: u64 = nodes.iter().map(Gossip::sent_bytes).sum();
    let steady = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let bytes = nodes.iter().map(Gossip::sent_bytes).sum::<u64>() - bytes_before;
    let per_node = bytes as f64 / args.nodes as f64 / steady.elapsed().as_secs_f64();

    let joined = Instant::now();
    let sealer = sealers.next().context("the newcomer's sealer")?;
    let newcomer = start(&ca, sealer, address(args.nodes), vec![address(0)], interval).await?;
    let spread = converge(&nodes, args.nodes + 1, joined, timeout).await?;
    let refused: u64 = nodes.iter().map(Gossip::refused).sum();
    for node in nodes.iter().chain([&newcomer]) {
        node.stop();
    }

    println!("gossip, {} nodes in one process, a round every {} ms", args.nodes, interval.as_millis());
    println!("| measurement | figure |");
    println!("|---|---|");
    println!("| every node holds every node live, from start | {:.2} s |", all_live.as_secs_f64());
    println!("| a new node held live by every node | {:.2} s |", spread.as_secs_f64());
    println!("| bytes sent per node per second, steady | {per_node:.0} B/s |");
    println!("| datagrams refused | {refused} |");
    Ok(())
}

fn name(n: usize) -> String {
    format!("g{n}")
}

/// The sealer of node `n` at `listen`: its identity issued by `ca`.
fn sealer(ca: &ClusterCa, n: usize, listen: SocketAddr) -> anyhow::Result<Sealer> {
    let identity = ca.issue(&Profile::Node { name: name(n), ip: listen.ip() })?;
    Sealer::from_identity(&name(n), &identity).map_err(|e| anyhow::anyhow!(e))
}

/// A gossip instance sealing with `sealer`, at `listen`, seeded with
/// `seeds`.
async fn start(
    ca: &ClusterCa,
    sealer: Sealer,
    listen: SocketAddr,
    seeds: Vec<SocketAddr>,
    interval: Duration,
) -> anyhow::Result<Gossip> {
    let config = GossipConfig {
        sealer,
        ca: ca.certificate_der().to_vec(),
        cluster_id: ca.hash().to_string(),
        listen,
        seeds: seeds.into_iter().filter(|seed| *seed != listen).collect(),
        interval,
        dead_grace: Duration::from_secs(3600),
        phi_threshold: crate::gossip::PHI_THRESHOLD,
        generation: 1,
    };
    let state = NodeState { peer: listen.to_string(), role: "voter".into(), ..NodeState::default() };
    Gossip::start(config, &state).await.map_err(|e| anyhow::anyhow!("{e}"))
}

/// How long after `since` every one of `nodes` holds `count` nodes live.
async fn converge(nodes: &[Gossip], count: usize, since: Instant, timeout: Duration) -> anyhow::Result<Duration> {
    let mut pending: Vec<usize> = (0..nodes.len()).collect();
    loop {
        let mut still = Vec::new();
        for index in pending {
            if nodes[index].live_count().await < count {
                still.push(index);
            }
        }
        if still.is_empty() {
            return Ok(since.elapsed());
        }
        anyhow::ensure!(
            since.elapsed() < timeout,
            "{} of {} nodes did not hold {count} nodes live within {timeout:?}",
            still.len(),
            nodes.len()
        );
        pending = still;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
