//! TLS on the peer port. Every connection is TLS under the cluster CA and
//! says what it carries by ALPN: raft frames ([`RAFT_ALPN`]) and gRPC
//! (`h2`) only from a client presenting a node certificate of the cluster,
//! and one join exchange ([`JOIN_ALPN`]) from a node that has no
//! certificate yet and proves itself with the join secret.

use std::sync::Arc;
use std::time::Duration;

use engenho_pki::{ClusterCa, HTTP2_ALPN, HandshakeLimits, Identity, TlsConnection};
use rustls::server::ClientHello;
use rustls::{ClientConfig, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::Channel;

use crate::error::MeshError;

/// ALPN name of a raft connection.
pub(crate) const RAFT_ALPN: &[u8] = b"engenho-raft/1";

/// ALPN name of a join connection.
pub(crate) const JOIN_ALPN: &[u8] = b"engenho-join/1";

/// Time allowed to open a connection to a peer, TLS handshake included.
pub(crate) const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Bounds on the peer port's handshakes: a client that connects and stays
/// silent is closed after a few seconds.
pub(crate) const PEER_HANDSHAKE_LIMITS: HandshakeLimits =
    HandshakeLimits { timeout: Duration::from_secs(5), in_flight_max: 1024 };

/// What a node proves itself with on the peer port, and the CA it issues
/// joining nodes' certificates from.
#[derive(Clone, Debug)]
pub struct PeerCredentials {
    /// The cluster CA, with its key.
    pub ca: Arc<ClusterCa>,
    /// This node's certificate (common name `system:node:<name>`, its peer
    /// address as subject alternative name) and key.
    pub identity: Identity,
}

/// The TLS configurations of a node's peer port, as server and as client.
pub(crate) struct PeerTls {
    mutual_server: Arc<ServerConfig>,
    join_server: Arc<ServerConfig>,
    raft_client: TlsConnector,
    grpc_client: Arc<ClientConfig>,
    credentials: PeerCredentials,
}

impl PeerTls {
    pub(crate) fn new(credentials: PeerCredentials) -> Result<Self, MeshError> {
        let (identity, ca) = (&credentials.identity, credentials.ca.certificate_der());
        let refused = |e: engenho_pki::PkiError| MeshError::Tls(e.to_string());
        Ok(Self {
            mutual_server: engenho_pki::mutual_server_config(identity, ca, &[RAFT_ALPN, HTTP2_ALPN])
                .map_err(refused)?,
            join_server: engenho_pki::optional_client_server_config(identity, ca, &[JOIN_ALPN]).map_err(refused)?,
            raft_client: engenho_pki::mutual_client_config(identity, ca, &[RAFT_ALPN]).map_err(refused)?.into(),
            grpc_client: engenho_pki::mutual_client_config(identity, ca, &[HTTP2_ALPN]).map_err(refused)?,
            credentials,
        })
    }

    /// The CA this node signs joining nodes' certificates with.
    pub(crate) fn ca(&self) -> &ClusterCa {
        &self.credentials.ca
    }

    /// The server configuration for a client: the join configuration when
    /// it asks for nothing but a join, the mutual one otherwise.
    pub(crate) fn select(&self, hello: &ClientHello<'_>) -> Option<Arc<ServerConfig>> {
        let mut protocols = hello.alpn().into_iter().flatten();
        let join_only = protocols.next() == Some(JOIN_ALPN) && protocols.next().is_none();
        Some(if join_only { self.join_server.clone() } else { self.mutual_server.clone() })
    }

    /// Opens a raft connection to `addr`.
    pub(crate) async fn dial_raft(&self, addr: &str) -> std::io::Result<TlsStream<TcpStream>> {
        engenho_pki::dial_tls(&self.raft_client, addr, PEER_CONNECT_TIMEOUT).await
    }

    /// A gRPC channel to `addr`, connecting on first use.
    pub(crate) fn grpc_channel(&self, addr: &str) -> Result<Channel, MeshError> {
        let endpoint = engenho_pki::grpc_endpoint(addr).map_err(|e| MeshError::LeaderUnreachable(e.to_string()))?;
        Ok(engenho_pki::grpc_channel(&endpoint.connect_timeout(PEER_CONNECT_TIMEOUT), self.grpc_client.clone()))
    }
}

/// Whether a connection that finished its handshake may carry raft or gRPC:
/// its client presented a node certificate of the cluster that is not a
/// worker's (a worker holds no replica and reaches the store only through
/// the API).
pub(crate) fn is_from_node(connection: &TlsConnection) -> bool {
    connection.peer_certificate().is_some_and(|certificate| {
        engenho_pki::node_name_of(certificate).is_some() && !engenho_pki::is_worker_certificate(certificate)
    })
}
