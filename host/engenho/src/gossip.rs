//! The node's gossip: it joins the cluster's gossip on the UDP side of its
//! peer address (seeded by the node it joined through and the raft
//! members it knows), publishes its signed state every
//! [`PUBLISH_INTERVAL`] when it changes, and logs members becoming live
//! or dead; [`MeshStatus`] shows it with the raft members on
//! `/mesh/status`. A node whose identity key is not Ed25519 (made by an
//! engenho before node keys were) does not gossip, and says so.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engenho_gossip::{Gossip, GossipConfig, NodeState, Sealer};
use engenho_mesh::Node;
use engenho_pki::{ClusterCa, Identity};
use rustls::pki_types::CertificateDer;
use tokio::sync::watch;

use crate::autopilot::{SharedTracker, SharedWorkers};

/// A gossip round every this long.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(500);

/// A node is dead to gossip once its heartbeat has not grown for this
/// many mean heartbeat intervals (about 2 s at one round per 500 ms): with
/// the autopilot's grace period on top, a failed voter is replaced within
/// the failover target.
pub const PHI_THRESHOLD: f64 = 4.0;

/// How long a dead node stays in the gossip state before it is forgotten.
pub const DEAD_GRACE: Duration = Duration::from_secs(10 * 60);

/// How often the node's own state is looked at (and published when it
/// changed).
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// How often gossip's liveness of every node is taken into the tracker
/// the autopilot reads.
const OBSERVE_INTERVAL: Duration = Duration::from_millis(250);

/// Where a node is, for its gossip.
pub struct Addresses {
    /// Its peer address (TCP for raft and gRPC, UDP for gossip).
    pub peer: SocketAddr,
    /// Its Kubernetes API address.
    pub api: SocketAddr,
    /// The node it joined the cluster through, if any.
    pub joined_through: Option<String>,
}

/// Starts gossiping as `node`; `None` (and why, in the log) when it
/// cannot.
pub async fn start(node: &Node, identity: &Identity, ca: &ClusterCa, addresses: &Addresses) -> Option<Arc<Gossip>> {
    let mut seeds: Vec<SocketAddr> = addresses.joined_through.iter().filter_map(|a| a.parse().ok()).collect();
    seeds.extend(node.members().iter().filter_map(|m| m.info.peer_addr.parse::<SocketAddr>().ok()));
    let state = state_of(node, addresses);
    start_as(&node.info().name, seeds, identity, ca.certificate_der(), addresses.peer, &state).await
}

/// Starts gossiping on `listen` as node `name` with first state `state`,
/// seeded by `seeds`; `None` (and why, in the log) when it cannot.
pub async fn start_as(
    name: &str,
    mut seeds: Vec<SocketAddr>,
    identity: &Identity,
    ca: &CertificateDer<'static>,
    listen: SocketAddr,
    state: &NodeState,
) -> Option<Arc<Gossip>> {
    let sealer =
        Sealer::from_identity(name, identity).inspect_err(|reason| tracing::warn!(%reason, "gossip is off")).ok()?;
    seeds.retain(|seed| *seed != listen);
    seeds.sort();
    seeds.dedup();
    let generation = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let config = GossipConfig {
        sealer,
        ca: ca.to_vec(),
        cluster_id: engenho_pki::CaHash::of(ca).to_string(),
        listen,
        seeds,
        interval: GOSSIP_INTERVAL,
        dead_grace: DEAD_GRACE,
        phi_threshold: PHI_THRESHOLD,
        generation,
    };
    let gossip =
        Gossip::start(config, state).await.inspect_err(|error| tracing::warn!(%error, "gossip did not start")).ok()?;
    tracing::info!(addr = %listen, "gossiping");
    Some(Arc::new(gossip))
}

/// Publishes `node`'s state when it changes, follows every node's
/// liveness in `tracker` and which nodes are workers in `workers`, and
/// logs members becoming live or dead, until `stop` turns true.
pub async fn run(
    node: Node,
    gossip: Arc<Gossip>,
    addresses: Addresses,
    (tracker, workers): (SharedTracker, SharedWorkers),
    mut stop: watch::Receiver<bool>,
) {
    let name = node.info().name;
    let mut state = state_of(&node, &addresses);
    let mut published = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(OBSERVE_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        if published.elapsed() >= PUBLISH_INTERVAL {
            published = Instant::now();
            let now = state_of(&node, &addresses);
            if now != state {
                gossip.publish(&now).await;
                state = now;
            }
            let named: std::collections::BTreeSet<String> = gossip
                .members()
                .await
                .into_values()
                .filter(|member| member.state.as_ref().is_some_and(|state| state.role == "worker"))
                .map(|member| member.name)
                .collect();
            *workers.lock().expect("worker list lock") = named;
        }
        let liveness = gossip.liveness().await;
        let now = Instant::now();
        let mut tracker = tracker.lock().expect("liveness tracker lock");
        for (member, live) in &liveness {
            if *member != name && tracker.observe(member, *live, now) {
                let status = if *live { "live" } else { "dead" };
                tracing::info!(node = %member, "gossip: {member} is {status}");
            }
        }
        tracker.retain(|member| liveness.contains_key(member));
    }
    gossip.stop();
}

/// Most recent role assignments `/mesh/status` shows.
const TRANSITIONS_SHOWN: usize = 20;

/// The node's view of the distribution layer, for `/mesh/status`.
pub struct MeshStatus {
    /// The raft node.
    pub node: Node,
    /// Its gossip, when it gossips.
    pub gossip: Option<Arc<Gossip>>,
    /// The autopilot rounds this node planned while leading.
    pub autopilot_rounds: Arc<std::sync::atomic::AtomicU64>,
    /// The attested chain, as this node reads it.
    pub chain: Option<crate::chain::Chain>,
}

impl engenho_api::kube::mesh_status::MeshView for MeshStatus {
    fn status(&self) -> futures::future::BoxFuture<'static, serde_json::Value> {
        let (node, gossip) = (self.node.clone(), self.gossip.clone());
        let rounds = self.autopilot_rounds.load(std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move {
            use serde_json::json;
            let raft = node.raft_status();
            let heard = match &gossip {
                Some(gossip) => gossip.members().await,
                None => BTreeMap::new(),
            };
            let view = |name: &str| {
                heard
                    .get(name)
                    .map(|seen| json!({"live": seen.live, "addr": seen.gossip_addr.to_string(), "state": seen.state}))
            };
            let raft_members = node.members();
            let mut records = crate::autopilot::read_records(&node).unwrap_or_default();
            let quarantined = |id: u64| records.iter().any(|r| r.id == id && r.quarantined);
            let members: Vec<serde_json::Value> = raft_members
                .iter()
                .map(|m| {
                    json!({
                        "name": m.info.name, "id": m.id.to_string(), "peer": m.info.peer_addr,
                        "role": if m.is_learner { "learner" } else { "voter" },
                        "leader": raft.leader == Some(m.id), "gossip": view(&m.info.name),
                        "quarantined": quarantined(m.id),
                    })
                })
                .collect();
            records.reverse();
            records.truncate(TRANSITIONS_SHOWN);
            let gossip_only: Vec<serde_json::Value> = heard
                .keys()
                .filter(|name| !raft_members.iter().any(|m| &m.info.name == *name))
                .map(|name| json!({"name": name, "gossip": view(name)}))
                .collect();
            json!({
                "node": node.info().name,
                "raft": {"id": raft.id.to_string(), "leader": raft.leader.map(|l| l.to_string()), "term": raft.term,
                    "lastLogIndex": raft.last_log_index, "appliedIndex": raft.applied_index},
                "members": members,
                "gossipOnly": gossip_only,
                "transitions": records,
                "autopilot": {"rounds": rounds},
                "gossiping": gossip.is_some(),
                "refused": gossip.as_ref().map_or(0, |g| g.refused()),
            })
        })
    }

    fn chain(&self) -> futures::future::BoxFuture<'static, Result<String, String>> {
        let chain = self.chain.clone();
        Box::pin(async move {
            let chain = chain.ok_or("this node does not read the chain (its key is not Ed25519)")?;
            chain.export().map(|file| file.to_text())
        })
    }
}

/// What this node tells the others of itself now.
fn state_of(node: &Node, addresses: &Addresses) -> NodeState {
    let status = node.raft_status();
    let role = match node.members().iter().find(|m| m.id == status.id) {
        Some(member) if member.is_learner => "learner",
        Some(_) => "voter",
        None => "worker",
    };
    NodeState {
        peer: addresses.peer.to_string(),
        api: addresses.api.to_string(),
        role: role.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        raft_applied: status.applied_index,
    }
}
