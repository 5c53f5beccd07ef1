//! The server side of the peer gRPC service.

use std::sync::Weak;

use tonic::{Request, Response, Status};

use crate::error::MeshError;
use crate::forward::ForwardRequest;
use crate::network::{PEER_MESSAGE_BYTES_MAX, decode, encode};
use crate::node::{Inner, Node};
use crate::proto::Payload;
use crate::proto::peer_server::{Peer, PeerServer};

/// Serves the requests other nodes forward to this one.
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
    type OpenStreamStream = crate::streams::PayloadStream;

    async fn open_stream(&self, request: Request<Payload>) -> Result<Response<Self::OpenStreamStream>, Status> {
        let handler = self.node()?.stream_handler();
        let stream = crate::streams::serve(handler, request.into_inner().data).await?;
        Ok(Response::new(stream))
    }

    type OpenTunnelStream = crate::streams::PayloadStream;

    async fn open_tunnel(
        &self,
        request: Request<tonic::Streaming<Payload>>,
    ) -> Result<Response<Self::OpenTunnelStream>, Status> {
        let handler = self.node()?.tunnel_handler();
        let stream = crate::tunnels::serve(handler, request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn witness(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let handler = self.node()?.witness_handler();
        crate::witness::serve(handler, request.into_inner().data).await.map(Response::new)
    }

    async fn forward(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        let forwarded: ForwardRequest = decode(request.get_ref()).map_err(malformed)?;
        let answer = self.node()?.serve_forward(forwarded).await;
        Ok(Response::new(encode(&answer)))
    }
}
