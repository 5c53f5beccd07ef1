//! The raft network: openraft RPCs carried over the peer gRPC service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engenho_store::{NodeInfo, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::{Serialize, de::DeserializeOwned};
use tonic::transport::{Channel, Endpoint};

use crate::error::MeshError;
use crate::proto::Payload;
use crate::proto::peer_client::PeerClient;

/// Time allowed to open a connection to a peer.
pub(crate) const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest peer message, in either direction: room for a batch of
/// [`crate::node::RAFT_PAYLOAD_ENTRIES_MAX`] entries of the largest request.
pub(crate) const PEER_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

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
#[derive(Clone, Debug)]
pub(crate) struct PeerNetwork {
    pub(crate) clients: Arc<PeerClients>,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &NodeInfo) -> Self::Network {
        PeerConnection { target, client: self.clients.get(&node.peer_addr) }
    }
}

/// A raft connection to one peer.
pub(crate) struct PeerConnection {
    target: u64,
    client: Result<PeerClient<Channel>, MeshError>,
}

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, NodeInfo, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = self.client.as_mut().map_err(|e| RPCError::Unreachable(Unreachable::new(&*e)))?;
        let mut grpc_request = tonic::Request::new(encode(request));
        grpc_request.set_timeout(option.hard_ttl());
        let reply = match method {
            Method::AppendEntries => client.append_entries(grpc_request).await,
            Method::Vote => client.vote(grpc_request).await,
            Method::InstallSnapshot => client.install_snapshot(grpc_request).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        let answer: Result<Resp, RaftError<u64, E>> =
            decode(reply.get_ref()).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, NodeInfo, RaftError<u64>>> {
        self.call(Method::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, NodeInfo, RaftError<u64, InstallSnapshotError>>> {
        self.call(Method::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, NodeInfo, RaftError<u64>>> {
        self.call(Method::Vote, &rpc, &option).await
    }
}
