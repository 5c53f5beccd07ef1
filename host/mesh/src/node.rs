//! The raft node of the datastore and the requests that need the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engenho_store::{
    Applied, Command, Compare, CompareResult, CompareTarget, KeyRange, LogStore, Mvcc, NodeInfo, Operation, Outcome,
    PutRequest, Raft, StateMachineStore, TxnRequest,
};
use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::{ChangeMembers, Config, ServerState, SnapshotPolicy};
use rand::Rng;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tonic::transport::Channel;

use crate::error::{MeshError, Result};
use crate::forward::{ForwardRequest, ForwardResponse};
use crate::leases::{LEASE_CHECK_INTERVAL, LeaseClock};
use crate::network::{Contacts, PeerClients, PeerNetwork, decode, encode};
use crate::proto::peer_client::PeerClient;
use crate::tls::{PeerCredentials, PeerTls};

/// Most raft entries sent in one AppendEntries message: every proposal
/// in flight fits in one. With [`PROPOSAL_BYTES_MAX`] (and a single command
/// of at most the client message limit) a message stays under the peer
/// message limit.
pub const RAFT_PAYLOAD_ENTRIES_MAX: u64 = PROPOSALS_IN_FLIGHT_MAX as u64;

/// Most commands grouped into one raft entry.
pub const PROPOSAL_COMMANDS_MAX: usize = 1024;

/// Most key and value bytes grouped into one raft entry (a single larger
/// command still goes alone).
pub const PROPOSAL_BYTES_MAX: usize = 1024 * 1024;

/// Proposals raft may have in flight (appended, not yet applied) at once;
/// writes arriving while all are in flight queue and go together in the
/// next one.
pub const PROPOSALS_IN_FLIGHT_MAX: usize = 16;

/// Writes waiting for a proposal before writers are held back.
pub const PROPOSAL_QUEUE_MAX: usize = 8192;

/// Deadline of a write, from proposal to applied (including forwarding and
/// waiting out an election).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Deadline of a linearizable read's leadership check.
pub const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(5);

/// Deadline of a join, which includes bringing the new node up to date.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(120);

/// The leader's heartbeat to every member, in milliseconds.
const HEARTBEAT_INTERVAL_MS: u64 = 100;

/// A follower that has not heard from the leader for a random time between
/// this and twice this (in milliseconds), after the leader's lease (twice
/// this again) has run out, stands for election: a dead leader is replaced
/// within 1.05–1.4 s, as etcd's defaults replace one within 1–2 s.
const ELECTION_TIMEOUT_MIN_MS: u64 = 350;

/// Longest the leader waits for a quorum to confirm its leadership when
/// asked for its view.
const QUORUM_CONFIRM_TIMEOUT: Duration = Duration::from_secs(1);

/// Raft reaches a member that answered one of its calls this recently.
const REACHABLE_WITHIN: Duration = Duration::from_secs(1);

/// Pause between attempts while no leader is known.
const LEADER_WAIT_INTERVAL: Duration = Duration::from_millis(50);

/// Key (in the replicated store) of the BLAKE3 hash of the join secret.
pub const JOIN_TOKEN_HASH_KEY: &[u8] = b"/engenho/mesh/join-token-hash";

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Data directory: database, node id, snapshot, join token.
    pub data_dir: PathBuf,
    /// Human-readable node name.
    pub name: String,
    /// Peer address other nodes use to reach this one.
    pub peer_addr: String,
    /// etcd client address of this node.
    pub client_addr: String,
    /// Build a raft snapshot after this many log entries.
    pub snapshot_logs: u64,
    /// Revisions of history kept for reads in the past and watch replay;
    /// the leader compacts older ones away. 0 keeps everything.
    pub history_revisions: i64,
    /// How often the leader checks whether history needs compacting.
    pub compaction_interval: Duration,
    /// The node's certificate and the cluster CA, for the peer port.
    pub credentials: PeerCredentials,
    /// The most replicas (voters and learners) the cluster keeps: a node
    /// that joins through this one asking for either role is given a
    /// worker's once the cluster has this many members.
    pub replicas_max: usize,
}

/// One member of the raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Raft node id.
    pub id: u64,
    /// How to reach it.
    pub info: NodeInfo,
    /// Whether it is a learner (non-voting).
    pub is_learner: bool,
}

/// A change of one member's place in the raft group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    /// A learner becomes a voter.
    Promote,
    /// A voter becomes a learner.
    Demote,
    /// A member leaves the group.
    Remove,
}

/// One member as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberProgress {
    /// Raft node id.
    pub id: u64,
    /// How to reach it.
    pub info: NodeInfo,
    /// Whether it votes.
    pub voter: bool,
    /// Whether it is the leader.
    pub leader: bool,
    /// Time since it last answered the leader's raft calls (counted from
    /// the start of this leadership at most).
    pub raft_silent: Duration,
    /// Log entries it trails the leader's log by, when known.
    pub lag: Option<u64>,
}

/// What the leader sees of the raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderView {
    /// The leader's term.
    pub term: u64,
    /// How long ago a quorum of voters confirmed the leadership, if they
    /// did when asked.
    pub quorum_ack_age: Option<Duration>,
    /// Every member, the leader included.
    pub members: Vec<MemberProgress>,
}

/// Raft position of this node, for status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStatus {
    /// This node's id.
    pub id: u64,
    /// The leader this node knows of.
    pub leader: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Index of the last log entry.
    pub last_log_index: u64,
    /// Index of the last applied entry.
    pub applied_index: u64,
    /// Whether this node is a learner.
    pub is_learner: bool,
}

/// A running raft node with its datastore.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    id: u64,
    pub(crate) raft: Raft,
    proposals: mpsc::Sender<Pending>,
    pub(crate) store: Arc<Mvcc>,
    pub(crate) tls: Arc<PeerTls>,
    clients: PeerClients,
    leases: LeaseClock,
    pub(crate) config: NodeConfig,
    /// The database, for the cause of a stop.
    db: engenho_store::Storage,
    /// Opens the streams other nodes ask for.
    streams: std::sync::OnceLock<Arc<dyn crate::streams::StreamHandler>>,
    /// Opens the tunnels other nodes ask for.
    tunnels: std::sync::OnceLock<Arc<dyn crate::tunnels::TunnelHandler>>,
    /// Signs what the leader asks this node to witness.
    witnesses: std::sync::OnceLock<Arc<dyn crate::witness::WitnessHandler>>,
    /// When each peer last answered this node's raft calls.
    contacts: Arc<Contacts>,
    /// Held while a membership change is under way: one at a time.
    changes: tokio::sync::Mutex<()>,
    /// The term this node last led in, and when it began leading in it.
    led_since: std::sync::Mutex<Option<(u64, Instant)>>,
}

impl Inner {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn stream_handler(&self) -> Option<Arc<dyn crate::streams::StreamHandler>> {
        self.streams.get().cloned()
    }

    pub(crate) fn tunnel_handler(&self) -> Option<Arc<dyn crate::tunnels::TunnelHandler>> {
        self.tunnels.get().cloned()
    }

    pub(crate) fn witness_handler(&self) -> Option<Arc<dyn crate::witness::WitnessHandler>> {
        self.witnesses.get().cloned()
    }
}

impl Node {
    /// Opens the data directory and starts raft. A data directory that was
    /// never part of a cluster stays uninitialized until [`Node::bootstrap`]
    /// or [`Node::join`].
    ///
    /// # Errors
    /// Storage failures, an invalid raft configuration, or credentials
    /// that TLS refuses.
    pub async fn start(config: NodeConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| storage(&e))?;
        let id = node_id(&config.data_dir)?;
        let db = engenho_store::open_database(&config.data_dir.join("db"))?;
        let log = LogStore::open(&db, id)?;
        let appended = log.appended();
        let store = Mvcc::open(&db)?;
        let state_machine = StateMachineStore::new(store.clone(), &config.data_dir);
        let raft_config = Config {
            cluster_name: "engenho".into(),
            heartbeat_interval: HEARTBEAT_INTERVAL_MS,
            election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max: ELECTION_TIMEOUT_MIN_MS * 2,
            max_payload_entries: RAFT_PAYLOAD_ENTRIES_MAX,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_logs),
            max_in_snapshot_log_to_keep: config.snapshot_logs.min(1000),
            install_snapshot_timeout: 10_000,
            ..Config::default()
        }
        .validate()
        .map_err(|e| MeshError::Stopped(format!("invalid raft configuration: {e}")))?;
        let tls = Arc::new(PeerTls::new(config.credentials.clone())?);
        let clients = PeerClients::new(tls.clone());
        let contacts = Arc::new(Contacts::default());
        let network = PeerNetwork { tls: tls.clone(), contacts: contacts.clone() };
        let raft = Raft::new(id, Arc::new(raft_config), network, log, state_machine)
            .await
            .map_err(|e| MeshError::Stopped(e.to_string()))?;
        let (proposals, queue) = mpsc::channel(PROPOSAL_QUEUE_MAX);
        tokio::spawn(propose_batches(raft.clone(), queue, appended));
        let leases = LeaseClock::default();
        let (streams, tunnels) = (std::sync::OnceLock::new(), std::sync::OnceLock::new());
        let inner = Arc::new(Inner {
            id,
            raft,
            proposals,
            store,
            tls,
            clients,
            leases,
            config,
            db,
            streams,
            tunnels,
            witnesses: std::sync::OnceLock::new(),
            contacts,
            changes: tokio::sync::Mutex::new(()),
            led_since: std::sync::Mutex::new(None),
        });
        tokio::spawn(expire_leases(Arc::downgrade(&inner)));
        tokio::spawn(bound_history(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Serves the streams other nodes open on this one with `handler`
    /// (once; later calls are ignored).
    pub fn serve_streams(&self, handler: Arc<dyn crate::streams::StreamHandler>) {
        let _ = self.inner.streams.set(handler);
    }

    /// Opens on the node at `peer_addr`, over the peer channel, the
    /// stream `request` asks for.
    ///
    /// # Errors
    /// The node refused, or could not be reached in time.
    pub async fn open_stream(
        &self,
        peer_addr: &str,
        request: Vec<u8>,
    ) -> std::result::Result<crate::streams::ByteStream, crate::streams::StreamRefusal> {
        let client = self
            .inner
            .clients
            .get(peer_addr)
            .map_err(|e| crate::streams::StreamRefusal::new(503, format!("reaching node {peer_addr}: {e}")))?;
        crate::streams::open(client, peer_addr, request).await
    }

    /// Serves the tunnels other nodes open on this one with `handler`
    /// (once; later calls are ignored).
    pub fn serve_tunnels(&self, handler: Arc<dyn crate::tunnels::TunnelHandler>) {
        let _ = self.inner.tunnels.set(handler);
    }

    /// Opens on the node at `peer_addr`, over the peer channel, the
    /// tunnel `request` asks for: this node's end of the pipe.
    ///
    /// # Errors
    /// The node refused, or could not be reached in time.
    pub async fn open_tunnel(
        &self,
        peer_addr: &str,
        request: Vec<u8>,
    ) -> std::result::Result<tokio::io::DuplexStream, crate::streams::StreamRefusal> {
        let client = self
            .inner
            .clients
            .get(peer_addr)
            .map_err(|e| crate::streams::StreamRefusal::new(503, format!("reaching node {peer_addr}: {e}")))?;
        crate::tunnels::open(client, peer_addr, request).await
    }

    /// Witnesses what the leader asks with `handler` (once; later calls
    /// are ignored).
    pub fn serve_witness(&self, handler: Arc<dyn crate::witness::WitnessHandler>) {
        let _ = self.inner.witnesses.set(handler);
    }

    /// Asks the node at `peer_addr` to witness `request`; its answer.
    ///
    /// # Errors
    /// It refused, or could not be reached within
    /// [`crate::witness::WITNESS_TIMEOUT`].
    pub async fn ask_witness(&self, peer_addr: &str, request: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
        let client = self.inner.clients.get(peer_addr).map_err(|e| format!("reaching {peer_addr}: {e}"))?;
        crate::witness::ask(client, request).await
    }

    /// This node's raft id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The replicated store as applied on this node.
    pub fn store(&self) -> &Arc<Mvcc> {
        &self.inner.store
    }

    /// How this node describes itself to peers.
    pub fn info(&self) -> NodeInfo {
        let config = &self.inner.config;
        NodeInfo {
            name: config.name.clone(),
            peer_addr: config.peer_addr.clone(),
            client_addr: config.client_addr.clone(),
        }
    }

    /// Whether this node belongs to a cluster already.
    ///
    /// # Errors
    /// The raft node stopped.
    pub async fn is_initialized(&self) -> Result<bool> {
        self.inner.raft.is_initialized().await.map_err(|e| MeshError::Stopped(e.to_string()))
    }

    /// Makes this node a new one-node cluster and records the join secret
    /// other nodes must present.
    ///
    /// # Errors
    /// Raft refused to initialize, or the secret could not be stored.
    pub async fn bootstrap(&self, join_secret: &str) -> Result<()> {
        let members = BTreeMap::from([(self.inner.id, self.info())]);
        self.inner.raft.initialize(members).await.map_err(|e| MeshError::Stopped(e.to_string()))?;
        self.record_join_secret(join_secret).await
    }

    /// Records the hash of the cluster's join secret, unless one is
    /// recorded already (so a restart after an interrupted bootstrap
    /// completes it).
    ///
    /// # Errors
    /// No leader took the write in time.
    pub async fn record_join_secret(&self, join_secret: &str) -> Result<()> {
        let hash = blake3::hash(join_secret.as_bytes()).to_hex().to_string();
        let put_if_absent = TxnRequest {
            compare: vec![Compare {
                range: KeyRange::single(JOIN_TOKEN_HASH_KEY),
                result: CompareResult::Equal,
                target: CompareTarget::Version(0),
            }],
            success: vec![Operation::Put(PutRequest {
                key: JOIN_TOKEN_HASH_KEY.to_vec(),
                value: hash.into_bytes(),
                ..PutRequest::default()
            })],
            failure: vec![],
        };
        self.write(Command::Txn(put_if_absent)).await?.outcome?;
        Ok(())
    }

    /// Joins the cluster reachable at `peer_addr` as a learner (the
    /// leader's autopilot promotes it when the cluster wants another
    /// voter), under the node certificate [`crate::fetch_credentials`]
    /// obtained. This node must already serve its peer endpoint, so the
    /// leader can bring it up to date.
    ///
    /// # Errors
    /// The cluster refused the node or could not be reached in time.
    pub async fn join(&self, peer_addr: &str) -> Result<()> {
        let request = ForwardRequest::Join { id: self.inner.id, node: self.info() };
        let client = self.inner.clients.get(peer_addr)?;
        match call_forward(client, &request, JOIN_TIMEOUT).await? {
            ForwardResponse::Joined => Ok(()),
            other => Err(MeshError::Malformed(format!("unexpected answer to join: {other:?}"))),
        }
    }

    /// Proposes `command` and returns what applying it produced. Followers
    /// forward to the leader; an election in progress is waited out.
    ///
    /// # Errors
    /// No leader within [`WRITE_TIMEOUT`], or the raft node stopped.
    pub async fn write(&self, command: Command) -> Result<Applied> {
        self.at_leader(ForwardRequest::Write(command), WRITE_TIMEOUT, |answer| match answer {
            ForwardResponse::Written(applied) => Some(applied),
            _ => None,
        })
        .await
    }

    /// Waits until this node has applied everything committed when the call
    /// began, confirmed by the leader: a read after it is linearizable.
    ///
    /// # Errors
    /// No leader confirmed within [`READ_INDEX_TIMEOUT`].
    pub async fn linearize(&self) -> Result<()> {
        let index = self
            .at_leader(ForwardRequest::ReadIndex, READ_INDEX_TIMEOUT, |answer| match answer {
                ForwardResponse::ReadIndex(index) => Some(index),
                _ => None,
            })
            .await?;
        self.inner
            .raft
            .wait(Some(READ_INDEX_TIMEOUT))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|_| MeshError::TimedOut)?;
        Ok(())
    }

    /// Renews a lease at the leader; answers its time to live, or `None`
    /// when the lease does not exist.
    ///
    /// # Errors
    /// No leader reachable in time.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<Option<i64>> {
        self.at_leader(ForwardRequest::LeaseKeepAlive(id), READ_INDEX_TIMEOUT, lease_answer).await
    }

    /// Seconds left on a lease as the leader counts them, or `None` when the
    /// lease does not exist.
    ///
    /// # Errors
    /// No leader reachable in time.
    pub async fn lease_remaining(&self, id: i64) -> Result<Option<i64>> {
        self.at_leader(ForwardRequest::LeaseRemaining(id), READ_INDEX_TIMEOUT, lease_answer).await
    }

    /// Serves a leader-only request here if this node leads, or at the
    /// leader otherwise; elections and an unreachable leader are waited out
    /// until `timeout`.
    async fn at_leader<T>(
        &self,
        request: ForwardRequest,
        timeout: Duration,
        expected: fn(ForwardResponse) -> Option<T>,
    ) -> Result<T> {
        let attempt = async {
            loop {
                let answer = match self.inner.serve_local(request.clone()).await {
                    Ok(answer) => Ok(answer),
                    Err(Redirect::To(leader)) => {
                        call_forward(self.inner.clients.get(&leader.peer_addr)?, &request, timeout).await
                    }
                    Err(Redirect::Unknown) => Err(MeshError::NoLeader),
                    Err(Redirect::Failed(error)) => Err(error),
                };
                match answer {
                    Ok(answer) => {
                        let wrong = || MeshError::Malformed("the leader answered a different request".into());
                        return expected(answer).ok_or_else(wrong);
                    }
                    Err(MeshError::NoLeader | MeshError::LeaderUnreachable(_)) => {
                        tokio::time::sleep(LEADER_WAIT_INTERVAL).await;
                    }
                    Err(other) => return Err(other),
                }
            }
        };
        tokio::time::timeout(timeout, attempt).await.map_err(|_| MeshError::TimedOut)?
    }

    /// What this node sees of the raft group while it leads (`None` when
    /// it does not): every member's progress, and how long ago a quorum of
    /// voters confirmed this leadership (asked now, within
    /// [`QUORUM_CONFIRM_TIMEOUT`]; `None` when they did not).
    pub async fn leader_view(&self) -> Option<LeaderView> {
        let inner = &self.inner;
        let metrics = inner.raft.metrics().borrow().clone();
        if metrics.state != ServerState::Leader {
            return None;
        }
        let led_since = {
            let mut led = inner.led_since.lock().expect("leadership lock");
            match *led {
                Some((term, since)) if term == metrics.current_term => since,
                _ => led.insert((metrics.current_term, Instant::now())).1,
            }
        };
        let asked = Instant::now();
        let confirmed = tokio::time::timeout(QUORUM_CONFIRM_TIMEOUT, inner.raft.ensure_linearizable()).await;
        let quorum_ack_age = matches!(confirmed, Ok(Ok(_))).then(|| asked.elapsed());
        let last = metrics.last_log_index.unwrap_or(0);
        let replication = metrics.replication.clone().unwrap_or_default();
        let members = inner
            .member_nodes()
            .into_iter()
            .map(|(id, info, voter)| {
                let leader = id == inner.id;
                let heard = inner.contacts.last(id).map_or(led_since, |at| at.max(led_since));
                let matched = if leader { Some(last) } else { replication.get(&id).map(|m| m.map_or(0, |l| l.index)) };
                MemberProgress {
                    id,
                    info,
                    voter,
                    leader,
                    raft_silent: if leader { Duration::ZERO } else { heard.elapsed() },
                    lag: matched.map(|matched| last.saturating_sub(matched)),
                }
            })
            .collect();
        Some(LeaderView { term: metrics.current_term, quorum_ack_age, members })
    }

    /// Makes `change` to member `id`'s role, if this node leads; waits
    /// until it is committed. One change at a time: a change asked for
    /// while another is under way waits for it.
    ///
    /// # Errors
    /// This node does not lead; raft refused the change; removing a voter
    /// would leave too few reachable voters for a quorum.
    pub async fn change_role(&self, id: u64, change: MembershipChange) -> Result<()> {
        let inner = &self.inner;
        let _one_change = inner.changes.lock().await;
        if inner.raft.metrics().borrow().state != ServerState::Leader {
            return Err(MeshError::NoLeader);
        }
        let refused = |e: RaftError<u64, ClientWriteError<u64, NodeInfo>>| MeshError::Stopped(e.to_string());
        let members = match change {
            MembershipChange::Promote => ChangeMembers::AddVoterIds(BTreeSet::from([id])),
            MembershipChange::Demote => ChangeMembers::RemoveVoters(BTreeSet::from([id])),
            MembershipChange::Remove => return inner.remove_member(id).await,
        };
        inner.raft.change_membership(members, true).await.map_err(refused)?;
        Ok(())
    }

    /// The members of the raft group, voters first.
    pub fn members(&self) -> Vec<Member> {
        let metrics = self.inner.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        let mut members: Vec<Member> = membership
            .nodes()
            .map(|(&id, info)| Member { id, info: info.clone(), is_learner: learners.contains(&id) })
            .collect();
        members.sort_by_key(|m| (m.is_learner, m.id));
        members
    }

    /// Whether this node leads the cluster, now and as it changes; the
    /// receiver sees every change of leadership. It follows raft's server
    /// metrics, which change with the vote, role, leader or membership,
    /// not with every entry (the full metrics wake their watchers on every
    /// write).
    pub fn leadership(&self) -> watch::Receiver<bool> {
        let mut metrics = self.inner.raft.server_metrics();
        let id = self.inner.id;
        let leading = metrics.borrow_and_update().current_leader == Some(id);
        let (sender, receiver) = watch::channel(leading);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = metrics.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let leading = metrics.borrow_and_update().current_leader == Some(id);
                        sender.send_if_modified(|was| std::mem::replace(was, leading) != leading);
                    }
                    () = sender.closed() => break,
                }
            }
        });
        receiver
    }

    /// The current raft term as this node knows it; cheap.
    pub fn term(&self) -> u64 {
        self.inner.raft.metrics().borrow().current_term
    }

    /// This node's raft position.
    pub fn raft_status(&self) -> RaftStatus {
        let metrics = self.inner.raft.metrics().borrow().clone();
        RaftStatus {
            id: self.inner.id,
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            is_learner: metrics.state == ServerState::Learner,
        }
    }

    /// Stops raft. In-flight requests fail.
    ///
    /// # Errors
    /// The raft task panicked.
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.raft.shutdown().await.map_err(|e| MeshError::Stopped(e.to_string()))
    }
}

/// Where a leader-only request must go instead.
#[derive(Clone)]
pub(crate) enum Redirect {
    /// To this leader.
    To(NodeInfo),
    /// No leader is known yet.
    Unknown,
    /// Nowhere: it failed.
    Failed(MeshError),
}

impl From<ForwardToLeader<u64, NodeInfo>> for Redirect {
    fn from(forward: ForwardToLeader<u64, NodeInfo>) -> Self {
        forward.leader_node.map_or(Self::Unknown, Self::To)
    }
}

impl Inner {
    async fn leader(&self) -> Option<(u64, NodeInfo)> {
        let leader = self.raft.current_leader().await?;
        let metrics = self.raft.metrics().borrow().clone();
        let info = metrics.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, info))
    }

    /// Proposes on this node, if it leads.
    pub(crate) async fn write_local(&self, command: Command) -> Result<Applied, Redirect> {
        let grant = match &command {
            Command::LeaseGrant { id, ttl } => Some((*id, *ttl)),
            _ => None,
        };
        let (reply, answer) = oneshot::channel();
        let stopped = || {
            let cause = match self.db.first_failure() {
                Some(failure) => format!("the proposer stopped after a storage failure: {failure}"),
                None => "the proposer stopped".into(),
            };
            Redirect::Failed(MeshError::Stopped(cause))
        };
        self.proposals.send((command, reply)).await.map_err(|_| stopped())?;
        let applied = answer.await.map_err(|_| stopped())??;
        if let (Some((id, ttl)), Ok(Outcome::LeaseGranted { .. })) = (grant, &applied.outcome) {
            self.leases.renew(id, ttl);
        }
        Ok(applied)
    }

    /// Confirms leadership and returns the read index, if this node leads.
    pub(crate) async fn read_index_local(&self) -> Result<u64, Redirect> {
        match self.raft.ensure_linearizable().await {
            Ok(read_log_id) => Ok(read_log_id.map_or(0, |l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => Err(forward.into()),
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => Err(Redirect::Unknown),
            Err(RaftError::Fatal(fatal)) => Err(Redirect::Failed(MeshError::Stopped(fatal.to_string()))),
        }
    }

    /// Serves a request forwarded by another node. Only a leader serves;
    /// forwarding stops here, so requests never travel in circles.
    pub(crate) async fn serve_forward(&self, request: ForwardRequest) -> Result<ForwardResponse> {
        self.serve_local(request).await.map_err(|redirect| match redirect {
            Redirect::Failed(error) => error,
            Redirect::To(_) | Redirect::Unknown => MeshError::NoLeader,
        })
    }

    /// Serves a leader-only request if this node leads; otherwise says
    /// where it must go.
    async fn serve_local(&self, request: ForwardRequest) -> Result<ForwardResponse, Redirect> {
        match request {
            ForwardRequest::Write(command) => {
                check_write(&command).map_err(|e| Redirect::Failed(MeshError::Store(e)))?;
                self.write_local(command).await.map(ForwardResponse::Written)
            }
            ForwardRequest::ReadIndex => self.read_index_local().await.map(ForwardResponse::ReadIndex),
            ForwardRequest::LeaseKeepAlive(id) => {
                self.require_leader().await?;
                let ttl = self.store.lease(id).map(|lease| lease.ttl);
                if let Some(ttl) = ttl {
                    self.leases.renew(id, ttl);
                }
                Ok(ForwardResponse::Lease(ttl))
            }
            ForwardRequest::LeaseRemaining(id) => {
                self.require_leader().await?;
                let remaining = self.store.lease(id).map(|lease| self.leases.remaining(id).unwrap_or(lease.ttl));
                Ok(ForwardResponse::Lease(remaining))
            }
            ForwardRequest::Join { id, node } => self.admit(id, node).await.map_err(Redirect::Failed),
        }
    }

    async fn require_leader(&self) -> Result<(), Redirect> {
        match self.leader().await {
            Some((leader, _)) if leader == self.id => Ok(()),
            Some((_, info)) => Err(Redirect::To(info)),
            None => Err(Redirect::Unknown),
        }
    }

    /// Admits a node whose certificate the cluster issued (it reached this
    /// node over mutual TLS) as a learner, brought up to date. A member of
    /// the same name or peer address under another id (the node before it
    /// was wiped) is removed first, when the voters left keep a quorum.
    async fn admit(&self, id: u64, node: NodeInfo) -> Result<ForwardResponse> {
        let Some((leader, info)) = self.leader().await else {
            return Err(MeshError::NoLeader);
        };
        if leader != self.id {
            let client = self.clients.get(&info.peer_addr)?;
            return call_forward(client, &ForwardRequest::Join { id, node }, JOIN_TIMEOUT).await;
        }
        let _one_change = self.changes.lock().await;
        let stale: Vec<u64> = self
            .member_nodes()
            .into_iter()
            .filter(|(other, info, _)| *other != id && (info.name == node.name || info.peer_addr == node.peer_addr))
            .map(|(other, _, _)| other)
            .collect();
        for old in stale {
            // The member answering at that address now is the new node,
            // which refuses calls addressed to the old id.
            let deadline = Instant::now() + 3 * REACHABLE_WITHIN;
            while self.reachable(old) && Instant::now() < deadline {
                tokio::time::sleep(LEADER_WAIT_INTERVAL).await;
            }
            if old == self.id || self.reachable(old) {
                return Err(MeshError::JoinRefused(format!(
                    "member {old:016x} of the same name or peer address as {} is live",
                    node.name
                )));
            }
            tracing::info!(old = %format!("{old:016x}"), new = %format!("{id:016x}"), name = %node.name, "removing a rejoining node's stale entry");
            self.remove_member(old).await.map_err(|e| MeshError::JoinRefused(format!("{} rejoins: {e}", node.name)))?;
        }
        let refused = |e: RaftError<u64, ClientWriteError<u64, NodeInfo>>| MeshError::JoinRefused(e.to_string());
        self.raft.add_learner(id, node, true).await.map_err(refused)?;
        Ok(ForwardResponse::Joined)
    }

    /// Every member: id, how to reach it, whether it votes.
    fn member_nodes(&self) -> Vec<(u64, NodeInfo, bool)> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        membership.nodes().map(|(&id, info)| (id, info.clone(), voters.contains(&id))).collect()
    }

    /// Whether raft reaches member `id` now (this node always).
    fn reachable(&self, id: u64) -> bool {
        id == self.id || self.contacts.last(id).is_some_and(|at| at.elapsed() < REACHABLE_WITHIN)
    }

    /// Removes member `id` from the group (a voter only where the voters
    /// raft reaches keep a quorum before and after). The caller holds
    /// [`Inner::changes`].
    async fn remove_member(&self, id: u64) -> Result<()> {
        let members = self.member_nodes();
        let voters: Vec<u64> = members.iter().filter(|(_, _, voter)| *voter).map(|(id, _, _)| *id).collect();
        let change = if voters.contains(&id) {
            let after: Vec<u64> = voters.iter().copied().filter(|v| *v != id).collect();
            if !engenho_autopilot::quorum_safe(&voters, &after, |v| self.reachable(v)) {
                return Err(MeshError::QuorumAtRisk(format!("removing voter {id:016x}")));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft.change_membership(change, false).await.map_err(|e| MeshError::Stopped(e.to_string()))?;
        Ok(())
    }
}

/// Checks a client's write, from this node or forwarded by another, as the
/// etcd facade checks a request before proposing it. A client's write is a
/// single command: the proposer groups writes into batches itself.
fn check_write(command: &Command) -> Result<(), engenho_store::StoreError> {
    if let Command::Batch(_) = command {
        return Err(engenho_store::StoreError::NestedBatch);
    }
    engenho_store::validate_command(command)
}

fn lease_answer(answer: ForwardResponse) -> Option<Option<i64>> {
    match answer {
        ForwardResponse::Lease(ttl) => Some(ttl),
        _ => None,
    }
}

/// A write waiting to be proposed, with where its answer goes.
type Pending = (Command, oneshot::Sender<Result<Applied, Redirect>>);

/// Groups queued writes into raft entries. A proposal is handed to raft as
/// soon as raft has written the previous one to its log, and takes every
/// write that queued meanwhile (within the bounds): writes reach the log
/// without waiting for earlier ones to commit, and each raft entry, log
/// write and sync serves many writes. At most [`PROPOSALS_IN_FLIGHT_MAX`]
/// proposals are in flight.
async fn propose_batches(raft: Raft, mut queue: mpsc::Receiver<Pending>, mut appended: watch::Receiver<u64>) {
    let permits = Arc::new(Semaphore::new(PROPOSALS_IN_FLIGHT_MAX));
    let mut carried: Option<Pending> = None;
    loop {
        let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let first = match carried.take() {
            Some(pending) => pending,
            None => match queue.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let mut bytes = first.0.payload_bytes();
        let mut batch = vec![first];
        while batch.len() < PROPOSAL_COMMANDS_MAX {
            let Ok(next) = queue.try_recv() else { break };
            bytes += next.0.payload_bytes();
            if bytes > PROPOSAL_BYTES_MAX {
                carried = Some(next);
                break;
            }
            batch.push(next);
        }
        appended.borrow_and_update();
        let (settled, answered) = oneshot::channel::<()>();
        let raft = raft.clone();
        tokio::spawn(async move {
            submit(&raft, batch).await;
            drop(settled);
            drop(permit);
        });
        // Raft has taken the proposal once its log grows; a proposal that
        // raft refuses (not the leader, stopping) settles instead.
        tokio::select! {
            _ = appended.changed() => {}
            _ = answered => {}
        }
    }
}

/// Proposes one batch and hands every writer its own answer.
async fn submit(raft: &Raft, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        let (command, reply) = batch.pop().expect("one pending write");
        let _ = reply.send(client_write(raft, command).await);
        return;
    }
    let (commands, replies): (Vec<Command>, Vec<_>) = batch.into_iter().unzip();
    let count = commands.len();
    match client_write(raft, Command::Batch(commands)).await {
        Ok(Applied { outcome: Ok(Outcome::Batch(outcomes)), .. }) => {
            assert_eq!(outcomes.len(), count, "a batch answers every command");
            for (reply, applied) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(applied));
            }
        }
        Ok(other) => unreachable!("a batch is never refused as a whole: {other:?}"),
        Err(redirect) => {
            for reply in replies {
                let _ = reply.send(Err(redirect.clone()));
            }
        }
    }
}

/// Proposes `command` and waits for it to apply. A leader that loses its
/// leadership meanwhile never hears of its pending entries again (the new
/// leader may commit or drop them), so losing it ends the wait with
/// [`MeshError::LeaderChanged`].
async fn client_write(raft: &Raft, command: Command) -> Result<Applied, Redirect> {
    // The server metrics change only with the vote, role, leader or
    // membership, not with every write, so waiting on them wakes nobody
    // per write.
    let mut server = raft.server_metrics();
    let (id, term, leading) = {
        let now = server.borrow_and_update();
        (now.id, now.vote.leader_id.term, now.current_leader == Some(now.id))
    };
    let written = if leading {
        let deposed = server.wait_for(|m| m.vote.leader_id.term != term || m.current_leader != Some(id));
        tokio::select! {
            biased;
            written = raft.client_write(command) => written,
            _ = deposed => return Err(Redirect::Failed(deposed_cause(raft))),
        }
    } else {
        // Raft answers at once with the leader to forward to.
        raft.client_write(command).await
    };
    match written {
        Ok(response) => Ok(response.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => Err(forward.into()),
        Err(RaftError::APIError(other)) => Err(Redirect::Failed(MeshError::Stopped(other.to_string()))),
        Err(RaftError::Fatal(fatal)) => Err(Redirect::Failed(MeshError::Stopped(fatal.to_string()))),
    }
}

/// Why a leader's wait for its write ended early: raft stopped (a storage
/// failure closes the metrics as it ends the write, and either may be seen
/// first), or leadership moved.
fn deposed_cause(raft: &Raft) -> MeshError {
    match &raft.metrics().borrow().running_state {
        Err(fatal) => MeshError::Stopped(fatal.to_string()),
        Ok(()) => MeshError::LeaderChanged,
    }
}

/// Sends a forwarded request and decodes the answer. A write whose call
/// failed after it may have reached the leader ends in
/// [`MeshError::LeaderLost`], never to be sent again: the leader may have
/// proposed it, and a second proposal would apply it twice. Only a call
/// that never connected is [`MeshError::LeaderUnreachable`], which the
/// caller tries again.
async fn call_forward(
    mut client: PeerClient<Channel>,
    request: &ForwardRequest,
    timeout: Duration,
) -> Result<ForwardResponse> {
    let mut grpc_request = tonic::Request::new(encode(request));
    grpc_request.set_timeout(timeout);
    let is_write = matches!(request, ForwardRequest::Write(_));
    let reply = client.forward(grpc_request).await.map_err(|status| match status.code() {
        tonic::Code::DeadlineExceeded => MeshError::TimedOut,
        _ if is_write && !never_connected(&status) => MeshError::LeaderLost(status.message().to_owned()),
        _ => MeshError::LeaderUnreachable(status.message().to_owned()),
    })?;
    let answer: Result<ForwardResponse> = decode(reply.get_ref())?;
    answer
}

/// Whether a failed call never reached its peer: its connection was
/// refused or could not be made.
fn never_connected(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            return matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::NotConnected
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::TimedOut
            );
        }
        source = error.source();
    }
    false
}

/// Revokes expired leases while this node leads.
async fn expire_leases(inner: std::sync::Weak<Inner>) {
    let mut interval = tokio::time::interval(LEASE_CHECK_INTERVAL);
    let mut was_leader = false;
    loop {
        interval.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let is_leader = inner.raft.metrics().borrow().state == ServerState::Leader;
        if !is_leader || !was_leader {
            // Clocks restart at full TTL under every new leadership.
            inner.leases.clear();
        }
        was_leader = is_leader;
        if !is_leader {
            continue;
        }
        for id in inner.leases.expired(&inner.store.leases()) {
            match inner.write_local(Command::LeaseRevoke { id }).await {
                Ok(applied) => tracing::debug!(id, outcome = ?applied.outcome, "lease expired"),
                Err(_) => break,
            }
        }
    }
}

/// Compacts history beyond the configured number of revisions while this
/// node leads.
async fn bound_history(inner: std::sync::Weak<Inner>) {
    let Some(period) = inner.upgrade().map(|inner| inner.config.compaction_interval) else { return };
    let mut interval = tokio::time::interval(period);
    loop {
        interval.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let keep = inner.config.history_revisions;
        if keep <= 0 || inner.raft.metrics().borrow().state != ServerState::Leader {
            continue;
        }
        let status = inner.store.status();
        let target = status.revision - keep;
        if target > status.compacted {
            match inner.write_local(Command::Compact { revision: target }).await {
                Ok(applied) => tracing::info!(revision = target, outcome = ?applied.outcome, "compacted history"),
                Err(_) => continue,
            }
        }
    }
}

/// Reads this node's id from the data directory, making one on first start.
fn node_id(dir: &std::path::Path) -> Result<u64> {
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            text.trim().parse().map_err(|_| MeshError::Malformed(format!("{} is not a node id", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = rand::rng().random_range(1..u64::MAX);
            std::fs::write(&path, id.to_string()).map_err(|e| storage(&e))?;
            Ok(id)
        }
        Err(e) => Err(storage(&e)),
    }
}

fn storage(error: &std::io::Error) -> MeshError {
    MeshError::Store(engenho_store::StoreError::Storage(error.to_string()))
}

#[cfg(test)]
mod tests {
    use engenho_pki::{ClusterCa, Profile};
    use engenho_store::StoreError;

    use super::*;

    async fn lone_node(dir: &std::path::Path) -> Node {
        let ca = ClusterCa::create(&dir.join("pki")).expect("CA");
        let identity =
            ca.issue(&Profile::Node { name: "n".into(), ip: "127.0.0.1".parse().expect("ip") }).expect("identity");
        let config = NodeConfig {
            data_dir: dir.to_owned(),
            name: "n".into(),
            peer_addr: "127.0.0.1:1".into(),
            client_addr: "127.0.0.1:2".into(),
            snapshot_logs: 1000,
            history_revisions: 0,
            compaction_interval: Duration::from_secs(60),
            credentials: PeerCredentials { ca: Arc::new(ca), identity },
            replicas_max: 7,
        };
        let node = Node::start(config).await.expect("start");
        node.bootstrap("secret").await.expect("bootstrap");
        node
    }

    /// A forwarded write that the etcd facade would refuse is refused before
    /// it is proposed, and the node goes on taking valid writes.
    #[tokio::test]
    async fn forwarded_writes_are_validated_before_proposing() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let node = lone_node(dir.path()).await;
        let applied_before = node.raft_status().applied_index;
        let lease_zero = ForwardRequest::Write(Command::LeaseGrant { id: 0, ttl: 60 });
        let refused = node.inner.serve_forward(lease_zero).await.expect_err("refused");
        assert_eq!(refused, MeshError::Store(StoreError::InvalidLeaseId { id: 0 }));
        let put =
            |key: &str| Command::Put(PutRequest { key: key.into(), value: b"v".to_vec(), ..PutRequest::default() });
        let batch = ForwardRequest::Write(Command::Batch(vec![put("a"), put("b")]));
        let refused = node.inner.serve_forward(batch).await.expect_err("refused");
        assert_eq!(refused, MeshError::Store(StoreError::NestedBatch));
        let empty_key = ForwardRequest::Write(put(""));
        assert_eq!(
            node.inner.serve_forward(empty_key).await.expect_err("refused"),
            MeshError::Store(StoreError::EmptyKey)
        );
        assert_eq!(node.raft_status().applied_index, applied_before, "nothing was proposed");
        let accepted = node.inner.serve_forward(ForwardRequest::Write(put("c"))).await.expect("a valid write");
        assert!(matches!(accepted, ForwardResponse::Written(Applied { outcome: Ok(_), .. })));
        node.shutdown().await.expect("shutdown");
    }
}
