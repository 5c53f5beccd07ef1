//! The server side of the peer gRPC service.

use std::sync::Weak;

use engenho_store::TypeConfig;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status};

use crate::error::MeshError;
use crate::forward::ForwardRequest;
use crate::network::{PEER_MESSAGE_BYTES_MAX, decode, encode};
use crate::node::{Inner, Node};
use crate::proto::Payload;
use crate::proto::peer_server::{Peer, PeerServer};

/// Serves raft traffic and forwarded requests for one node.
#[derive(Clone)]
pub struct PeerService {
    node: Weak<Inner>,
}

impl PeerService {
    /// The gRPC service of `node`, with peer message limits applied.
    pub fn server(node: &Node) -> PeerServer<Self> {
        PeerServer::new(Self { node: std::sync::Arc::downgrade(node.inner()) })
            .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX)
    }

    fn node(&self) -> Result<std::sync::Arc<Inner>, Status> {
        self.node.upgrade().ok_or_else(|| Status::unavailable("node is shutting down"))
    }
}

fn malformed(error: MeshError) -> Status {
    Status::invalid_argument(error.to_string())
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(request.get_ref()).map_err(malformed)?;
        let answer = self.node()?.raft.append_entries(rpc).await;
        Ok(Response::new(encode(&answer)))
    }

    async fn vote(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: VoteRequest<u64> = decode(request.get_ref()).map_err(malformed)?;
        let answer = self.node()?.raft.vote(rpc).await;
        Ok(Response::new(encode(&answer)))
    }

    async fn install_snapshot(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(request.get_ref()).map_err(malformed)?;
        let answer = self.node()?.raft.install_snapshot(rpc).await;
        Ok(Response::new(encode(&answer)))
    }

    async fn forward(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let forwarded: ForwardRequest = decode(request.get_ref()).map_err(malformed)?;
        let answer = self.node()?.serve_forward(forwarded).await;
        Ok(Response::new(encode(&answer)))
    }
}
