//! The node's gossip: it joins the cluster's gossip on the UDP side of its
//! peer address (seeded by the node it joined through and the raft
//! members it knows), publishes its signed state every
//! [`PUBLISH_INTERVAL`] when it changes, and logs members becoming live
//! or dead. A node whose identity key is not Ed25519 (made by an engenho
//! before node keys were) does not gossip, and says so.

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

/// Gossips as `node` until `stop` turns true.
pub async fn run(
    node: Node,
    identity: Identity,
    ca: Arc<ClusterCa>,
    addresses: Addresses,
    mut stop: watch::Receiver<bool>,
) {
    let name = node.info().name;
    let sealer = match sealer_of(&name, &identity) {
        Ok(sealer) => sealer,
        Err(reason) => return tracing::warn!(%reason, "gossip is off on this node"),
    };
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
    let mut state = state_of(&node, &addresses);
    let gossip = match Gossip::start(config, &state).await {
        Ok(gossip) => gossip,
        Err(error) => return tracing::warn!(%error, "gossip did not start"),
    };
    tracing::info!(addr = %addresses.peer, "gossiping");
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
    gossip.shutdown().await;
}

/// This node's gossip identity: its node certificate and Ed25519 key.
fn sealer_of(name: &str, identity: &Identity) -> Result<Sealer, String> {
    let certificate = identity.chain().first().ok_or("the node has no certificate")?.to_vec();
    let rustls::pki_types::PrivateKeyDer::Pkcs8(key) = identity.private_key() else {
        return Err("the node key is not PKCS#8".into());
    };
    Sealer::new(name, certificate, key.secret_pkcs8_der())
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
