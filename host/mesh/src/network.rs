//! The raft network (openraft RPCs over [`crate::raft_wire`]) and the gRPC
//! clients that forward leader-only requests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use engenho_store::{NodeInfo, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use crate::error::MeshError;
use crate::proto::Payload;
use crate::proto::peer_client::PeerClient;
use crate::raft_wire::{RAFT_PREFACE, RaftRequest, WireError, read_frame, write_frame};

/// Time allowed to open a connection to a peer.
pub(crate) const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest forwarded request or answer, in either direction: room for the
/// largest client request.
pub(crate) const PEER_MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Encodes a peer message.
pub(crate) fn encode<T: Serialize>(value: &T) -> Payload {
    Payload { data: bincode::serialize(value).expect("in-memory serialization cannot fail") }
}

/// Decodes a peer message.
pub(crate) fn decode<T: DeserializeOwned>(payload: &Payload) -> Result<T, MeshError> {
    bincode::deserialize(&payload.data).map_err(|e| MeshError::Malformed(e.to_string()))
}

/// Lazily connected gRPC clients, one per peer address.
#[derive(Debug, Default)]
pub(crate) struct PeerClients {
    clients: Mutex<HashMap<String, PeerClient<Channel>>>,
}

impl PeerClients {
    /// The client for `addr`, connecting lazily on first use.
    pub(crate) fn get(&self, addr: &str) -> Result<PeerClient<Channel>, MeshError> {
        let mut clients = self.clients.lock().expect("peer client lock poisoned by a panic");
        if let Some(client) = clients.get(addr) {
            return Ok(client.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| MeshError::LeaderUnreachable(format!("bad peer address {addr}: {e}")))?
            .connect_timeout(PEER_CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let client = PeerClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX);
        clients.insert(addr.to_owned(), client.clone());
        Ok(client)
    }
}

/// Creates raft connections to peers.
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerNetwork;

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &NodeInfo) -> Self::Network {
        PeerConnection { target, addr: node.peer_addr.clone(), connection: None }
    }
}

/// A raft connection to one peer, opened on first use and reopened after
/// any failure (a late answer must never be taken for the next call's).
pub(crate) struct PeerConnection {
    target: u64,
    addr: String,
    connection: Option<BufReader<TcpStream>>,
}

/// Why a raft call failed before the peer answered.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("connecting to {addr}: no answer within {PEER_CONNECT_TIMEOUT:?}")]
    ConnectTimedOut { addr: String },
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
        let answer = match tokio::time::timeout(deadline, self.exchange(&request)).await {
            Ok(answer) => answer,
            Err(_) => Err(CallError::TimedOut(deadline)),
        };
        let answer: Result<Resp, RaftError<u64, E>> = answer.map_err(|error| {
            self.connection = None;
            match error {
                CallError::Connect { .. } | CallError::ConnectTimedOut { .. } => {
                    RPCError::Unreachable(Unreachable::new(&error))
                }
                CallError::TimedOut(_) | CallError::Wire(_) => RPCError::Network(NetworkError::new(&error)),
            }
        })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn exchange<T: DeserializeOwned>(&mut self, request: &RaftRequest) -> Result<T, CallError> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => self.connection.insert(connect(&self.addr).await?),
        };
        write_frame(connection.get_mut(), request).await?;
        Ok(read_frame(connection).await?)
    }
}

async fn connect(addr: &str) -> Result<BufReader<TcpStream>, CallError> {
    let failed = |source| CallError::Connect { addr: addr.to_owned(), source };
    let mut stream = tokio::time::timeout(PEER_CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| CallError::ConnectTimedOut { addr: addr.to_owned() })?
        .map_err(failed)?;
    stream.set_nodelay(true).map_err(failed)?;
    stream.write_all(RAFT_PREFACE).await.map_err(failed)?;
    Ok(BufReader::new(stream))
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
