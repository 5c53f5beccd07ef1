//! `engenho bench failover`: the raft leader of a five-node cluster killed
//! with SIGKILL, and how long until (a) a survivor names a new leader, (b)
//! a write issued at the kill is accepted, (c) the voters are back at their
//! target (a learner promoted in the dead leader's place). etcd's (a) and
//! (b) are measured on the same harness beside. Between runs the killed
//! member is started again and the cluster left to settle.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use engenho_api::etcd::proto::etcdserverpb::{
    MemberListRequest, PutRequest, StatusRequest, cluster_client::ClusterClient, kv_client::KvClient,
    maintenance_client::MaintenanceClient,
};
use tonic::transport::Channel;

use super::{Cluster, System, Target, connect};

/// Longest any one measured phase may take before the run is abandoned.
const PHASE_DEADLINE: Duration = Duration::from_secs(60);

/// Pause between polls of the survivors.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Deadline of one write attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Deadline of one status or member-list call.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// Arguments of `engenho bench failover`.
#[derive(Debug, clap::Args)]
pub struct FailoverBenchArgs {
    /// Leader kills per system.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Members of each cluster.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Seconds between runs once the cluster has settled: at least the
    /// autopilot's shift interval (60 s by default), so that the learners
    /// demoted in earlier runs may be promoted again.
    #[arg(long, default_value_t = 61)]
    pause: u64,
    /// Voters an engenho cluster of this size keeps (its autopilot's
    /// target).
    #[arg(long, default_value_t = 3)]
    voters: usize,
    /// Measure engenho only.
    #[arg(long)]
    skip_etcd: bool,
    /// Path of the etcd server binary.
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Failover {
    elected: Duration,
    writable: Duration,
    restored: Option<Duration>,
}

/// Runs the benchmark and prints its table.
///
/// # Errors
/// A cluster did not start or settle, or a phase passed its deadline.
pub async fn run(args: FailoverBenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut systems = vec![System::Engenho];
    if !args.skip_etcd {
        systems.push(System::Etcd);
    }
    let mut rows = Vec::new();
    for system in systems {
        let path = dir.path().join(system.name());
        let mut cluster = Cluster::start(system, args.nodes, &path, &args.etcd).await?;
        let mut runs = Vec::new();
        for run in 0..args.runs {
            settle(&cluster, system, args.voters).await.with_context(|| format!("{} run {run}", system.name()))?;
            if run > 0 && system == System::Engenho {
                tokio::time::sleep(Duration::from_secs(args.pause)).await;
            }
            let figures = kill_leader(&mut cluster, system, args.voters).await?;
            eprintln!("{} run {run}: {figures:?}", system.name());
            runs.push(figures);
        }
        rows.push((system, runs));
    }
    print(&rows, args.nodes);
    Ok(())
}

/// Waits until every member answers with one leader and, for engenho, the
/// voters are `voters` members that answer.
async fn settle(cluster: &Cluster, system: System, voters: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + PHASE_DEADLINE;
    let channels = channels(&cluster.targets())?;
    loop {
        let statuses = statuses(&channels).await;
        let leaders: Vec<u64> = statuses.iter().filter_map(|s| s.map(|(_, leader)| leader)).collect();
        let settled = statuses.iter().all(Option::is_some) && leaders.windows(2).all(|w| w[0] == w[1]);
        let settled = settled
            && leaders.first().is_some_and(|leader| *leader != 0)
            && (system == System::Etcd || voter_count(&channels, None).await == Some(voters));
        if settled {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the cluster did not settle within {PHASE_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Kills the leader and measures the three phases; starts it again.
async fn kill_leader(cluster: &mut Cluster, system: System, voters: usize) -> anyhow::Result<Failover> {
    let all = channels(&cluster.targets())?;
    let before = statuses(&all).await;
    let (index, leader) = before
        .iter()
        .enumerate()
        .find_map(|(index, status)| status.filter(|(member, leader)| member == leader).map(|(_, l)| (index, l)))
        .context("no member leads")?;
    let survivors: Vec<Channel> = all.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, c)| c.clone()).collect();
    let writer = connect(&cluster.targets()[(index + 1) % all.len()], 1).await?.remove(0);
    cluster.kill(index);
    let killed = Instant::now();
    let elected = async {
        loop {
            let now = statuses(&survivors).await;
            if now.iter().flatten().any(|(_, seen)| *seen != 0 && *seen != leader) {
                return killed.elapsed();
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    };
    let writable = write_accepted(writer, killed);
    let restored = async {
        if system == System::Etcd {
            return None;
        }
        loop {
            if voter_count(&survivors, Some(leader)).await == Some(voters) {
                return Some(killed.elapsed());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    };
    let phases = async { tokio::join!(elected, writable, restored) };
    let (elected, writable, restored) =
        tokio::time::timeout(PHASE_DEADLINE, phases).await.context("a phase passed its deadline")?;
    cluster.restart(index)?;
    Ok(Failover { elected, writable: writable?, restored })
}

/// When a write is first acknowledged after `since`: a new attempt is
/// issued every [`POLL_INTERVAL`] (each given [`ATTEMPT_TIMEOUT`]), so that
/// neither system is judged by one request stuck in the election.
async fn write_accepted(channel: Channel, since: Instant) -> anyhow::Result<Duration> {
    let mut attempts = tokio::task::JoinSet::new();
    let mut next = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            _ = next.tick() => {
                let mut client = KvClient::new(channel.clone());
                attempts.spawn(async move {
                    let put = PutRequest { key: b"bench/failover".to_vec(), value: b"probe".to_vec(), ..Default::default() };
                    matches!(tokio::time::timeout(ATTEMPT_TIMEOUT, client.put(put)).await, Ok(Ok(_)))
                });
            }
            Some(done) = attempts.join_next() => {
                if done? {
                    return Ok(since.elapsed());
                }
            }
        }
    }
}

/// A channel to each target, connecting when first used and again after
/// failures, so that polling pays no handshake per call.
fn channels(targets: &[Target]) -> anyhow::Result<Vec<Channel>> {
    targets
        .iter()
        .map(|target| {
            let endpoint = engenho_pki::grpc_endpoint(&target.addr)?.connect_timeout(CALL_TIMEOUT);
            Ok(engenho_pki::grpc_channel(&endpoint, target.tls.clone()))
        })
        .collect()
}

/// Each member's (member id, leader id), or `None` where it did not
/// answer.
async fn statuses(channels: &[Channel]) -> Vec<Option<(u64, u64)>> {
    let calls = channels.iter().map(|channel| async move {
        let mut request = tonic::Request::new(StatusRequest {});
        request.set_timeout(CALL_TIMEOUT);
        let status = MaintenanceClient::new(channel.clone()).status(request).await.ok()?.into_inner();
        Some((status.header.map_or(0, |h| h.member_id), status.leader))
    });
    futures::future::join_all(calls).await
}

/// The voters the first answering member lists, leaving out `dead`.
async fn voter_count(channels: &[Channel], dead: Option<u64>) -> Option<usize> {
    for channel in channels {
        let mut request = tonic::Request::new(MemberListRequest { linearizable: false });
        request.set_timeout(CALL_TIMEOUT);
        if let Ok(listed) = ClusterClient::new(channel.clone()).member_list(request).await {
            let members = listed.into_inner().members;
            return Some(members.iter().filter(|m| !m.is_learner && Some(m.id) != dead).count());
        }
    }
    None
}

fn print(rows: &[(System, Vec<Failover>)], nodes: usize) {
    let quantiles = |values: Vec<Duration>| -> String {
        let mut values = values;
        values.sort();
        match (values.get(values.len() / 2), values.last()) {
            (Some(median), Some(worst)) => format!("{} / {}", super::millis(*median), super::millis(*worst)),
            _ => "-".into(),
        }
    };
    let mut table =
        vec![["system", "runs", "(a) elected", "(b) writable", "(c) voters restored"].map(str::to_owned).to_vec()];
    for (system, runs) in rows {
        table.push(vec![
            format!("{} ({nodes} nodes)", system.name()),
            runs.len().to_string(),
            quantiles(runs.iter().map(|r| r.elected).collect()),
            quantiles(runs.iter().map(|r| r.writable).collect()),
            if runs.iter().all(|r| r.restored.is_some()) {
                quantiles(runs.iter().filter_map(|r| r.restored).collect())
            } else {
                "-".into()
            },
        ]);
    }
    println!("leader killed with SIGKILL; median / worst, ms");
    crate::print_table(&table);
}
