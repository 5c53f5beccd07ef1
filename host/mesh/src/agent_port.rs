//! A worker's peer port: the control plane's API servers open on it, over
//! mutual TLS, the streams (pod logs) and tunnels (port-forward) of the
//! worker's pods. Only nodes that hold a replica are served (a worker's
//! certificate is refused at the handshake's end), and only streams and
//! tunnels: a worker has no raft, store or chain to offer.

use std::sync::Arc;

use engenho_pki::{HTTP2_ALPN, Identity, TlsConnection};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use crate::error::{MeshError, Result};
use crate::network::PEER_MESSAGE_BYTES_MAX;
use crate::proto::Payload;
use crate::proto::peer_server::{Peer, PeerServer};
use crate::streams::StreamHandler;
use crate::tls::{PEER_HANDSHAKE_LIMITS, is_from_node};
use crate::tunnels::TunnelHandler;

/// What a worker's peer port serves.
#[derive(Clone)]
pub struct AgentPort {
    streams: Arc<dyn StreamHandler>,
    tunnels: Arc<dyn TunnelHandler>,
}

impl AgentPort {
    /// Serves `streams` and `tunnels`.
    pub fn new(streams: Arc<dyn StreamHandler>, tunnels: Arc<dyn TunnelHandler>) -> Self {
        Self { streams, tunnels }
    }

    /// The gRPC service, with peer message limits applied.
    pub fn server(self) -> PeerServer<Self> {
        PeerServer::new(self)
            .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX)
    }
}

/// Accepts connections on a worker's peer port under TLS presenting
/// `identity`: only clients with a node certificate of `ca` that is not a
/// worker's are handed on.
///
/// # Errors
/// The identity or CA is unusable.
pub fn agent_port_connections(
    listener: TcpListener,
    identity: &Identity,
    ca: &CertificateDer<'static>,
) -> Result<impl tokio_stream::Stream<Item = std::io::Result<TlsConnection>> + use<>> {
    let config =
        engenho_pki::mutual_server_config(identity, ca, &[HTTP2_ALPN]).map_err(|e| MeshError::Tls(e.to_string()))?;
    let connections = engenho_pki::accept_tls(listener, Arc::new(move |_| Some(config.clone())), PEER_HANDSHAKE_LIMITS);
    Ok(connections.filter(|connection| match connection {
        Ok(connection) if !is_from_node(connection) => {
            tracing::warn!(remote = ?connection.remote_addr(), "refused a peer connection: not a control-plane node");
            false
        }
        _ => true,
    }))
}

fn no_replica() -> Status {
    Status::failed_precondition("a worker holds no replica of the store")
}

#[tonic::async_trait]
impl Peer for AgentPort {
    type OpenStreamStream = crate::streams::PayloadStream;

    async fn open_stream(&self, request: Request<Payload>) -> Result<Response<Self::OpenStreamStream>, Status> {
        let stream = crate::streams::serve(Some(self.streams.clone()), request.into_inner().data).await?;
        Ok(Response::new(stream))
    }

    type OpenTunnelStream = crate::streams::PayloadStream;

    async fn open_tunnel(
        &self,
        request: Request<tonic::Streaming<Payload>>,
    ) -> Result<Response<Self::OpenTunnelStream>, Status> {
        let stream = crate::tunnels::serve(Some(self.tunnels.clone()), request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn witness(&self, _: Request<Payload>) -> Result<Response<Payload>, Status> {
        Err(no_replica())
    }

    async fn forward(&self, _: Request<Payload>) -> Result<Response<Payload>, Status> {
        Err(no_replica())
    }
}
