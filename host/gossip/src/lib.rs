//! revoada's membership: every node gossips (chitchat, over UDP on its
//! peer address's port) with every message sealed by its node identity
//! under the cluster CA ([`seal`]), and publishes its state signed with
//! the same key, so that a node relaying another's state cannot alter it.
//! Liveness comes from chitchat's phi-accrual failure detector; dead nodes
//! leave the gossip state after a grace period.

pub mod seal;
mod transport;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ProtocolVersion, spawn_chitchat};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

pub use seal::{Refusal, Sealer};
use transport::{SealedUdp, Seen};

/// The gossip key a node's signed state is published under.
const STATE_KEY: &str = "engenho";

/// The domain every state signature is made in.
const STATE_DOMAIN: &[u8] = b"engenho-gossip-state-v1\0";

/// What a node tells the others of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeState {
    /// Its peer address (raft, gRPC, gossip).
    pub peer: String,
    /// Its Kubernetes API address.
    pub api: String,
    /// Its role: `voter`, `learner` or `worker`.
    pub role: String,
    /// Its engenho version.
    pub version: String,
    /// The last raft log index it applied.
    pub raft_applied: u64,
}

/// Heartbeat intervals the failure detector keeps per node: 50 s of
/// history at a round per 500 ms, 800 bytes per node known (chitchat's
/// default of 1,000 holds 8 KB per node: 8 MB on each node of a 1,000-node
/// cluster).
const SAMPLING_WINDOW: usize = 100;

/// How a node gossips.
pub struct GossipConfig {
    /// This node's identity.
    pub sealer: Sealer,
    /// The cluster CA certificate (DER).
    pub ca: Vec<u8>,
    /// The cluster's id (all nodes of a cluster share it).
    pub cluster_id: String,
    /// The UDP address to gossip on (the peer address).
    pub listen: SocketAddr,
    /// Nodes to gossip with first.
    pub seeds: Vec<SocketAddr>,
    /// A gossip round every this long.
    pub interval: Duration,
    /// How long a dead node stays in the gossip state.
    pub dead_grace: Duration,
    /// A node is dead once its heartbeat has not grown for this many of
    /// its mean heartbeat intervals (phi accrual).
    pub phi_threshold: f64,
    /// A number that grows with each start of this node (its generation).
    pub generation: u64,
}

/// A node as gossip knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name.
    pub name: String,
    /// Where it gossips.
    pub gossip_addr: SocketAddr,
    /// Whether the failure detector holds it live.
    pub live: bool,
    /// Its state, when its signature verified against its key.
    pub state: Option<NodeState>,
}

/// Why gossip did not start.
#[derive(Debug, thiserror::Error)]
#[error("gossip: {0}")]
pub struct GossipError(String);

/// This node's gossip.
pub struct Gossip {
    handle: ChitchatHandle,
    sealer: Arc<Sealer>,
    seen: Arc<Seen>,
}

impl Gossip {
    /// Starts gossiping as `config` says, publishing `state`.
    ///
    /// # Errors
    /// The UDP address cannot be bound.
    pub async fn start(config: GossipConfig, state: &NodeState) -> Result<Self, GossipError> {
        let sealer = Arc::new(config.sealer);
        let seen = Arc::new(Seen::default());
        let chitchat_id = ChitchatId::new(sealer.node().to_owned(), config.generation, config.listen);
        let failure_detector_config = FailureDetectorConfig {
            sampling_window_size: SAMPLING_WINDOW,
            initial_interval: config.interval,
            dead_node_grace_period: config.dead_grace,
            phi_threshold: config.phi_threshold,
            ..FailureDetectorConfig::default()
        };
        let chitchat_config = ChitchatConfig {
            chitchat_id,
            cluster_id: config.cluster_id,
            gossip_interval: config.interval,
            listen_addr: config.listen,
            seed_nodes: config.seeds.iter().map(ToString::to_string).collect(),
            failure_detector_config,
            marked_for_deletion_grace_period: config.dead_grace,
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V1,
        };
        let transport = SealedUdp { sealer: sealer.clone(), ca: config.ca, seen: seen.clone() };
        let initial = vec![(STATE_KEY.to_owned(), signed_state(&sealer, state))];
        let handle =
            spawn_chitchat(chitchat_config, initial, &transport).await.map_err(|e| GossipError(format!("{e:#}")))?;
        Ok(Self { handle, sealer, seen })
    }

    /// Publishes `state` as this node's, signed.
    pub async fn publish(&self, state: &NodeState) {
        let value = signed_state(&self.sealer, state);
        self.handle.with_chitchat(|chitchat| chitchat.self_node_state().set(STATE_KEY, &value)).await;
    }

    /// Every node gossip knows, by name, with its liveness and verified
    /// state. A state whose signature does not verify (or whose node has
    /// not yet been heard from directly, so that its key is unknown) is
    /// left out.
    pub async fn members(&self) -> BTreeMap<String, Member> {
        let keys = self.seen.keys.lock().expect("gossip keys lock").clone();
        let own = (self.sealer.node().to_owned(), self.sealer.public_key());
        self.handle
            .with_chitchat(|chitchat| {
                let live: Vec<ChitchatId> = chitchat.live_nodes().cloned().collect();
                let mut members = BTreeMap::new();
                for (id, node_state) in chitchat.node_states() {
                    let name = id.node_id.to_string();
                    let key = if name == own.0 { Some(own.1) } else { keys.get(&name).copied() };
                    let state =
                        key.zip(node_state.get(STATE_KEY)).and_then(|(key, value)| verified_state(&name, &key, value));
                    let member = Member {
                        name: name.clone(),
                        gossip_addr: id.gossip_advertise_addr,
                        live: live.contains(id),
                        state,
                    };
                    members.insert(name, member);
                }
                members
            })
            .await
    }

    /// Every node gossip knows, by name, and whether the failure detector
    /// holds it live (no state is read or verified: cheap enough to ask
    /// often).
    pub async fn liveness(&self) -> BTreeMap<String, bool> {
        self.handle
            .with_chitchat(|chitchat| {
                let live: Vec<ChitchatId> = chitchat.live_nodes().cloned().collect();
                chitchat.node_states().keys().map(|id| (id.node_id.to_string(), live.contains(id))).collect()
            })
            .await
    }

    /// How many nodes (this one included) the failure detector holds live
    /// (no state is read or verified: cheap enough to ask often).
    pub async fn live_count(&self) -> usize {
        self.handle.with_chitchat(|chitchat| chitchat.live_nodes().count()).await
    }

    /// Bytes of datagrams this node has sent since start.
    pub fn sent_bytes(&self) -> u64 {
        self.seen.sent_bytes.load(Ordering::Relaxed)
    }

    /// Datagrams refused since start (not sealed by a member, forged,
    /// replayed, malformed).
    pub fn refused(&self) -> u64 {
        self.seen.refused.load(Ordering::Relaxed)
    }

    /// Stops gossiping.
    pub fn stop(&self) {
        let _ = self.handle.initiate_shutdown();
    }
}

impl Sealer {
    fn public_key(&self) -> [u8; 32] {
        use ring::signature::KeyPair as _;
        self.key_pair().public_key().as_ref().try_into().unwrap_or([0; 32])
    }
}

/// `state`, signed by `sealer`: `<base64 signature>.<JSON>`.
fn signed_state(sealer: &Sealer, state: &NodeState) -> String {
    let json = serde_json::to_string(state).expect("a node state serializes");
    let signature = sealer.sign(&state_bytes(sealer.node(), &json));
    format!("{}.{json}", BASE64.encode(signature))
}

/// The state in `value`, when node `name`'s `key` signed it.
fn verified_state(name: &str, key: &[u8; 32], value: &str) -> Option<NodeState> {
    let (signature, json) = value.split_once('.')?;
    let signature = BASE64.decode(signature).ok()?;
    UnparsedPublicKey::new(&ED25519, key).verify(&state_bytes(name, json), &signature).ok()?;
    serde_json::from_str(json).ok()
}

fn state_bytes(name: &str, json: &str) -> Vec<u8> {
    [STATE_DOMAIN, name.as_bytes(), b"\0", json.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start(sealer: Sealer, ca: &[u8], listen: SocketAddr, seeds: Vec<SocketAddr>) -> Gossip {
        let state = NodeState { peer: listen.to_string(), role: "voter".into(), ..NodeState::default() };
        let config = GossipConfig {
            sealer,
            ca: ca.to_vec(),
            cluster_id: "test".into(),
            listen,
            seeds,
            interval: Duration::from_millis(100),
            dead_grace: Duration::from_secs(60),
            phi_threshold: 8.0,
            generation: 1,
        };
        Gossip::start(config, &state).await.expect("gossip starts")
    }

    async fn eventually(what: &str, gossip: &Gossip, check: impl Fn(&BTreeMap<String, Member>) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let members = gossip.members().await;
            if check(&members) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: {members:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_see_each_other_strangers_are_refused_and_the_dead_are_noticed() {
        // Goal: two members learn each other's verified states and changes
        // to them; a node of another CA seeding itself with a member is
        // refused and never listed; a member that stops is no longer live.
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = engenho_pki::ClusterCa::create(&dir.path().join("ca")).expect("CA");
        let other = engenho_pki::ClusterCa::create(&dir.path().join("other")).expect("another CA");
        let octet = u8::try_from(std::process::id() % 200 + 20).expect("octet");
        let addr = |n: u8| SocketAddr::from(([127, 66, octet, n], 7946));
        let ca_der = ca.certificate_der().to_vec();
        let a = start(seal::tests::member(&ca, "a"), &ca_der, addr(1), vec![]).await;
        let b = start(seal::tests::member(&ca, "b"), &ca_der, addr(2), vec![addr(1)]).await;
        let stranger = start(seal::tests::member(&other, "c"), other.certificate_der(), addr(3), vec![addr(1)]).await;

        let both = |m: &BTreeMap<String, Member>| {
            ["a", "b"].iter().all(|n| m.get(*n).is_some_and(|m| m.live && m.state.is_some()))
        };
        eventually("a and b see each other", &a, both).await;
        eventually("b sees a", &b, both).await;
        let members = a.members().await;
        assert_eq!(members["b"].state.as_ref().map(|s| s.peer.clone()), Some(addr(2).to_string()));

        b.publish(&NodeState { peer: addr(2).to_string(), role: "learner".into(), ..NodeState::default() }).await;
        eventually("b's new role reaches a", &a, |m| {
            m.get("b").and_then(|b| b.state.as_ref()).is_some_and(|s| s.role == "learner")
        })
        .await;
        assert!(a.refused() > 0, "the stranger's messages were refused");
        assert!(!a.members().await.contains_key("c"), "the stranger is not a member");
        stranger.stop();

        b.stop();
        eventually("b is noticed dead", &a, |m| m.get("b").is_some_and(|b| !b.live)).await;
        a.stop();
    }
}
