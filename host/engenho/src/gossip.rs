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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engenho_gossip::{Gossip, GossipConfig, NodeState, Sealer};
use engenho_mesh::Node;
use engenho_pki::{ClusterCa, Identity};
use tokio::sync::watch;

/// A gossip round every this long.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(500);

/// How long a dead node stays in the gossip state before it is forgotten.
pub const DEAD_GRACE: Duration = Duration::from_secs(10 * 60);

/// How often the node's own state is looked at (and published when it
/// changed).
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

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
    let name = node.info().name;
    let sealer =
        Sealer::from_identity(&name, identity).inspect_err(|reason| tracing::warn!(%reason, "gossip is off")).ok()?;
    let mut seeds: Vec<SocketAddr> = addresses.joined_through.iter().filter_map(|a| a.parse().ok()).collect();
    seeds.extend(node.members().iter().filter_map(|m| m.info.peer_addr.parse::<SocketAddr>().ok()));
    seeds.retain(|seed| *seed != addresses.peer);
    seeds.sort();
    seeds.dedup();
    let generation = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let config = GossipConfig {
        sealer,
        ca: ca.certificate_der().to_vec(),
        cluster_id: ca.hash().to_string(),
        listen: addresses.peer,
        seeds,
        interval: GOSSIP_INTERVAL,
        dead_grace: DEAD_GRACE,
        generation,
    };
    let gossip = Gossip::start(config, &state_of(node, addresses))
        .await
        .inspect_err(|error| tracing::warn!(%error, "gossip did not start"))
        .ok()?;
    tracing::info!(addr = %addresses.peer, "gossiping");
    Some(Arc::new(gossip))
}

/// Publishes `node`'s state when it changes and logs members becoming
/// live or dead, until `stop` turns true.
pub async fn run(node: Node, gossip: Arc<Gossip>, addresses: Addresses, mut stop: watch::Receiver<bool>) {
    let name = node.info().name;
    let mut state = state_of(&node, &addresses);
    let mut known: BTreeMap<String, bool> = BTreeMap::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(PUBLISH_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        let now = state_of(&node, &addresses);
        if now != state {
            gossip.publish(&now).await;
            state = now;
        }
        for (member, seen) in gossip.members().await {
            if member == name {
                continue;
            }
            if known.insert(member.clone(), seen.live) != Some(seen.live) {
                let status = if seen.live { "live" } else { "dead" };
                tracing::info!(node = %member, addr = %seen.gossip_addr, "gossip: {member} is {status}");
            }
        }
    }
    gossip.stop();
}

/// The node's view of the distribution layer, for `/mesh/status`.
pub struct MeshStatus {
    /// The raft node.
    pub node: Node,
    /// Its gossip, when it gossips.
    pub gossip: Option<Arc<Gossip>>,
}

impl engenho_api::kube::mesh_status::MeshView for MeshStatus {
    fn status(&self) -> futures::future::BoxFuture<'static, serde_json::Value> {
        let (node, gossip) = (self.node.clone(), self.gossip.clone());
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
            let members: Vec<serde_json::Value> = raft_members
                .iter()
                .map(|m| {
                    json!({
                        "name": m.info.name, "id": m.id.to_string(), "peer": m.info.peer_addr,
                        "role": if m.is_learner { "learner" } else { "voter" },
                        "leader": raft.leader == Some(m.id), "gossip": view(&m.info.name),
                    })
                })
                .collect();
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
                "gossiping": gossip.is_some(),
                "refused": gossip.as_ref().map_or(0, |g| g.refused()),
            })
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
