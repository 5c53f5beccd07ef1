//! The raft network (openraft RPCs over [`crate::raft_wire`]) and the gRPC
//! clients that forward leader-only requests, both over TLS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engenho_store::{NodeInfo, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::Channel;

use crate::error::MeshError;
use crate::proto::Payload;
use crate::proto::peer_client::PeerClient;
use crate::raft_wire::{RAFT_FRAME_BYTES_MAX, RaftCall, RaftRequest, WireError, read_frame, write_frame};
use crate::tls::PeerTls;

/// Longest a raft connection is reused after its last call: well within
/// [`crate::raft_wire::RAFT_IDLE_TIMEOUT`], after which the peer closes it.
const RAFT_REUSE_WINDOW: Duration = Duration::from_secs(3);

/// Largest forwarded request or answer, in either direction: room for the
/// largest client request.
pub(crate) const PEER_MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Encodes a peer message.
pub(crate) fn encode<T: Serialize>(value: &T) -> Payload {
    Payload { data: bincode::serialize(value).expect("in-memory serialization cannot fail") }
}

/// Decodes a peer message, allocating no more than it holds.
pub(crate) fn decode<T: DeserializeOwned>(payload: &Payload) -> Result<T, MeshError> {
    engenho_store::decode_bounded(&payload.data).map_err(|e| MeshError::Malformed(e.to_string()))
}

/// Lazily connected gRPC clients, one per peer address.
pub(crate) struct PeerClients {
    tls: Arc<PeerTls>,
    clients: Mutex<HashMap<String, PeerClient<Channel>>>,
}

impl PeerClients {
    pub(crate) fn new(tls: Arc<PeerTls>) -> Self {
        Self { tls, clients: Mutex::default() }
    }

    /// The client for `addr`, connecting (over TLS, as this node) lazily on
    /// first use.
    pub(crate) fn get(&self, addr: &str) -> Result<PeerClient<Channel>, MeshError> {
        let mut clients = self.clients.lock().expect("peer client lock poisoned by a panic");
        if let Some(client) = clients.get(addr) {
            return Ok(client.clone());
        }
        let client = PeerClient::new(self.tls.grpc_channel(addr)?)
            .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX);
        clients.insert(addr.to_owned(), client.clone());
        Ok(client)
    }
}

/// When each peer last answered a raft call of this node: raft's own
/// view of which members are reachable.
#[derive(Default)]
pub(crate) struct Contacts(Mutex<HashMap<u64, Instant>>);

impl Contacts {
    fn answered(&self, target: u64) {
        self.0.lock().expect("contacts lock").insert(target, Instant::now());
    }

    /// When `target` last answered, if it ever did.
    pub(crate) fn last(&self, target: u64) -> Option<Instant> {
        self.0.lock().expect("contacts lock").get(&target).copied()
    }
}

/// Creates raft connections to peers.
#[derive(Clone)]
pub(crate) struct PeerNetwork {
    pub(crate) tls: Arc<PeerTls>,
    pub(crate) contacts: Arc<Contacts>,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &NodeInfo) -> Self::Network {
        PeerConnection {
            target,
            addr: node.peer_addr.clone(),
            tls: self.tls.clone(),
            contacts: self.contacts.clone(),
            connection: None,
        }
    }
}

/// A raft connection to one peer, opened on first use, reopened after any
/// failure (a late answer must never be taken for the next call's) and
/// after [`RAFT_REUSE_WINDOW`] without a call.
pub(crate) struct PeerConnection {
    target: u64,
    addr: String,
    tls: Arc<PeerTls>,
    contacts: Arc<Contacts>,
    connection: Option<(BufReader<TlsStream<TcpStream>>, Instant)>,
}

/// Why a raft call failed before the peer answered.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error(transparent)]
    Wire(#[from] WireError),
}

impl PeerConnection {
    async fn call<Resp, E>(
        &mut self,
        request: RaftRequest,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, NodeInfo, RaftError<u64, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let deadline = option.hard_ttl();
        let call = RaftCall { to: self.target, request };
        let answer = match tokio::time::timeout(deadline, self.exchange(&call)).await {
            Ok(answer) => answer,
            Err(_) => Err(CallError::TimedOut(deadline)),
        };
        let answer: Result<Resp, RaftError<u64, E>> = answer.map_err(|error| {
            self.connection = None;
            match error {
                CallError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&error)),
                CallError::TimedOut(_) | CallError::Wire(_) => RPCError::Network(NetworkError::new(&error)),
            }
        })?;
        self.contacts.answered(self.target);
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn exchange<T: DeserializeOwned>(&mut self, request: &RaftCall) -> Result<T, CallError> {
        let fresh = self.connection.as_ref().is_some_and(|(_, used)| used.elapsed() < RAFT_REUSE_WINDOW);
        if !fresh {
            let failed = |source| CallError::Connect { addr: self.addr.clone(), source };
            let stream = self.tls.dial_raft(&self.addr).await.map_err(failed)?;
            self.connection = Some((BufReader::new(stream), Instant::now()));
        }
        let (connection, used) = self.connection.as_mut().expect("connected above");
        write_frame(connection.get_mut(), request).await?;
        let answer = read_frame(connection, RAFT_FRAME_BYTES_MAX).await?;
        *used = Instant::now();
        Ok(answer)
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, NodeInfo, RaftError<u64>>> {
        self.call(RaftRequest::AppendEntries(rpc), &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, NodeInfo, RaftError<u64, InstallSnapshotError>>> {
        self.call(RaftRequest::InstallSnapshot(rpc), &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, NodeInfo, RaftError<u64>>> {
        self.call(RaftRequest::Vote(rpc), &option).await
    }
}
