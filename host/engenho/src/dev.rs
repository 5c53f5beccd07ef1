//! `engenho dev --nodes N`: an N-node cluster on this machine. Each node
//! is an `engenho up` process on a loopback address of its own (node `i`
//! on the `i`-th /24 after the first address, so that nodes' pod IPs do
//! not meet), its data and log under one directory; the first bootstraps
//! the cluster, the others join it with its token. It prints where each
//! node is, and Ctrl-C (or SIGTERM) stops them all; a node that exits by
//! itself stops the others too.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// Nodes one `engenho dev` starts, at most.
const NODES_MAX: usize = 64;

/// Longest a node may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// How often a starting node is looked at.
const POLL: Duration = Duration::from_millis(200);

/// `engenho dev` arguments.
#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// Nodes to start (1 to 64).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Where the nodes keep their data (`node-<i>/`) and logs
    /// (`node-<i>.log`).
    #[arg(long, default_value = ".engenho/dev")]
    data_dir: PathBuf,
    /// The first node's address, in 127.0.0.0/8; node `i` takes the same
    /// address `i` /24s further (127.0.90.1, 127.0.91.1, …).
    #[arg(long, default_value = "127.0.90.1")]
    first_ip: Ipv4Addr,
    /// Longest one node may take to start, in seconds.
    #[arg(long, default_value_t = 120)]
    start_timeout: u64,
    /// Arguments for every node's `engenho up` (after `--`).
    #[arg(last = true)]
    up_args: Vec<String>,
}

/// One node of the cluster.
struct DevNode {
    name: String,
    ip: Ipv4Addr,
    dir: PathBuf,
    log: PathBuf,
    child: Child,
}

/// Starts the cluster, prints where each node is, and stops every node on
/// Ctrl-C or SIGTERM, or once one of them exits.
///
/// # Errors
/// Bad arguments, a node that does not start in time, or a node that
/// exits by itself.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    if !(1..=NODES_MAX).contains(&args.nodes) {
        bail!("--nodes {}: give 1 to {NODES_MAX}", args.nodes);
    }
    let ips = addresses(args.first_ip, args.nodes)?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let mut nodes: Vec<DevNode> = Vec::with_capacity(args.nodes);
    let started = start_all(&args, &ips, &mut nodes).await;
    if let Err(error) = started {
        stop_all(&mut nodes).await;
        return Err(error);
    }
    print_nodes(&nodes);
    let ended = tokio::select! {
        signal = stop_signal() => signal.map(|()| None),
        exited = first_exit(&mut nodes) => Ok(Some(exited)),
    };
    stop_all(&mut nodes).await;
    match ended? {
        None => Ok(()),
        Some((name, status, log)) => bail!("{name} exited by itself ({status}); its log: {}", log.display()),
    }
}

/// The addresses of `count` nodes from `first`, a /24 apart.
fn addresses(first: Ipv4Addr, count: usize) -> anyhow::Result<Vec<Ipv4Addr>> {
    if !first.is_loopback() {
        bail!("--first-ip {first}: give an address in 127.0.0.0/8");
    }
    (0..count)
        .map(|i| {
            let step = u32::try_from(i).unwrap_or(u32::MAX).saturating_mul(256);
            let ip = Ipv4Addr::from(u32::from(first).saturating_add(step));
            if !ip.is_loopback() {
                bail!("--first-ip {first} leaves no room in 127.0.0.0/8 for {count} nodes, a /24 apart");
            }
            Ok(ip)
        })
        .collect()
}

/// Starts the nodes one after another, each once the one before answers.
async fn start_all(args: &DevArgs, ips: &[Ipv4Addr], nodes: &mut Vec<DevNode>) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the engenho binary")?;
    for (index, ip) in ips.iter().enumerate() {
        let name = format!("node-{}", index + 1);
        let dir = args.data_dir.join(&name);
        let log = args.data_dir.join(format!("{name}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let log_start = log_file.metadata()?.len();
        let mut command = Command::new(&exe);
        command
            .args(["up", "--data-dir"])
            .arg(&dir)
            .args(["--name", &name])
            .args(["--api-addr", &format!("{ip}:6443"), "--etcd-addr", &format!("{ip}:2379")])
            .args(["--peer-addr", &format!("{ip}:2380")]);
        if index > 0 {
            command.args(["--join", &format!("{}:2380", ips[0]), "--token-file"]);
            command.arg(args.data_dir.join("node-1").join("join-token"));
        }
        let child = command
            .args(&args.up_args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            // Its own process group: a terminal's Ctrl-C reaches `engenho
            // dev`, which stops the nodes in order.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        eprintln!("starting {name} on {ip} (log: {})", log.display());
        nodes.push(DevNode { name, ip: *ip, dir, log, child });
        let node = nodes.last_mut().expect("the node just started");
        wait_ready(node, log_start, Duration::from_secs(args.start_timeout)).await?;
    }
    Ok(())
}

/// Waits until `node` logs that it is ready (after `log_start`, where this
/// start's lines begin) and its API answers.
async fn wait_ready(node: &mut DevNode, log_start: u64, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = node.child.try_wait()? {
            bail!("{} exited while starting ({status}); its log: {}", node.name, node.log.display());
        }
        if logged_ready(&node.log, log_start) && crate::bench::api::client(&node.dir.join("kubeconfig")).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} did not start within {timeout:?}; its log: {}", node.name, node.log.display());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether the log at `path` says, after `from`, that the node is ready.
fn logged_ready(path: &Path, from: u64) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| bytes.get(usize::try_from(from).ok()?..).map(<[u8]>::to_vec))
        .is_some_and(|tail| String::from_utf8_lossy(&tail).contains("engenho node ready"))
}

fn print_nodes(nodes: &[DevNode]) {
    let mut rows = vec![["NODE", "API", "KUBECONFIG", "LOG"].map(str::to_owned).to_vec()];
    rows.extend(nodes.iter().map(|node| {
        vec![
            node.name.clone(),
            format!("https://{}:6443", node.ip),
            node.dir.join("kubeconfig").display().to_string(),
            node.log.display().to_string(),
        ]
    }));
    crate::print_table(&rows);
    if let Some(first) = nodes.first() {
        println!("\nexport KUBECONFIG={}", first.dir.join("kubeconfig").display());
    }
    println!("{} node(s) running; Ctrl-C stops them all.", nodes.len());
}

/// The first node to exit: its name, exit status and log.
async fn first_exit(nodes: &mut [DevNode]) -> (String, std::process::ExitStatus, PathBuf) {
    let waits = nodes.iter_mut().map(|node| {
        Box::pin(async move {
            let status = node.child.wait().await.unwrap_or_else(|_| std::process::ExitStatus::default());
            (node.name.clone(), status, node.log.clone())
        })
    });
    futures::future::select_all(waits).await.0
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// Stops every node still running: SIGTERM, then SIGKILL after
/// [`STOP_GRACE`].
async fn stop_all(nodes: &mut [DevNode]) {
    for node in nodes.iter() {
        if let Some(pid) = node.child.id().and_then(|pid| rustix::process::Pid::from_raw(pid.cast_signed())) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    for node in nodes.iter_mut() {
        if tokio::time::timeout(STOP_GRACE, node.child.wait()).await.is_err() {
            eprintln!("{} did not stop within {STOP_GRACE:?}; killing it", node.name);
            let _ = node.child.kill().await;
        }
        eprintln!("{} stopped", node.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_take_loopback_addresses_a_slash_24_apart() {
        // Goal: node i is i /24s after the first; a first address outside
        // 127.0.0.0/8, or one leaving no room, is refused.
        let ips = addresses(Ipv4Addr::new(127, 0, 90, 1), 3).expect("addresses");
        assert_eq!(ips, [Ipv4Addr::new(127, 0, 90, 1), Ipv4Addr::new(127, 0, 91, 1), Ipv4Addr::new(127, 0, 92, 1)]);
        assert!(addresses(Ipv4Addr::new(10, 0, 0, 1), 1).is_err());
        assert!(addresses(Ipv4Addr::new(127, 255, 254, 1), 3).is_err());
    }
}
