//! Dialing TLS servers: raw TLS connections and gRPC channels.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::ca::Identity;
use crate::error::{PkiError, Result};
use crate::tls::{HTTP2_ALPN, mutual_client_config};

/// Longest a gRPC channel's connection attempt takes, TLS handshake
/// included, when its endpoint sets no shorter connect timeout.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// File of the CA certificate in a node's `pki/` directory.
pub const CA_CERTIFICATE_FILE: &str = "ca.crt";

/// File of the etcd endpoint's admin client certificate in `pki/`.
pub const ETCD_CLIENT_CERTIFICATE_FILE: &str = "etcd-client.crt";

/// File of the etcd endpoint's admin client key in `pki/`.
pub const ETCD_CLIENT_KEY_FILE: &str = "etcd-client.key";

/// Opens a TLS connection to `addr` (`host:port`) within `timeout`; the
/// server's certificate must name `host`.
///
/// # Errors
/// The address is malformed, the connection or handshake failed, or did
/// not finish in time.
pub async fn dial_tls(connector: &TlsConnector, addr: &str, timeout: Duration) -> io::Result<TlsStream<TcpStream>> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {addr}"));
    let (host, _) = addr.rsplit_once(':').ok_or_else(|| invalid("an address is host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned()).map_err(|_| invalid("not a host name or address"))?;
    let connect = async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        connector.connect(name, stream).await
    };
    tokio::time::timeout(timeout, connect).await.map_err(|_| {
        io::Error::new(io::ErrorKind::TimedOut, format!("no TLS connection to {addr} within {timeout:?}"))
    })?
}

/// A gRPC endpoint for `addr` (`host:port`), to be configured (timeouts,
/// keep-alives) and then connected over TLS by [`grpc_channel`]. Its scheme
/// is `http` because the connector makes the TLS connection itself.
///
/// # Errors
/// The address is not a valid authority.
pub fn grpc_endpoint(addr: &str) -> Result<Endpoint> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map(|endpoint| endpoint.tcp_nodelay(true))
        .map_err(|e| PkiError::Address(format!("{addr}: {e}")))
}

/// A gRPC channel over TLS under `config` to the address of `endpoint`
/// (made by [`grpc_endpoint`]), which connects on first use and reconnects
/// after failures; each connection attempt is bounded by the endpoint's
/// connect timeout, or by [`DIAL_TIMEOUT`].
pub fn grpc_channel(endpoint: &Endpoint, config: Arc<ClientConfig>) -> Channel {
    let target = endpoint.uri().authority().map(ToString::to_string).unwrap_or_default();
    let connector = TlsConnector::from(config);
    let connect = tower::service_fn(move |_: Uri| {
        let (connector, target) = (connector.clone(), target.clone());
        async move { dial_tls(&connector, &target, DIAL_TIMEOUT).await.map(hyper_util::rt::TokioIo::new) }
    });
    endpoint.connect_with_connector_lazy(connect)
}

/// Reads a PEM certificate.
///
/// # Errors
/// The file is unreadable or holds no PEM certificate.
pub fn load_certificate(path: &Path) -> Result<CertificateDer<'static>> {
    let pem = std::fs::read(path).map_err(|source| PkiError::Io { path: path.to_owned(), source })?;
    CertificateDer::from_pem_slice(&pem)
        .map_err(|e| PkiError::Invalid { path: path.to_owned(), reason: format!("not a PEM certificate: {e}") })
}

/// The client configuration of a node's etcd administrator: the admin
/// client certificate in `pki/`, trusting the cluster CA (HTTP/2).
///
/// # Errors
/// The files are missing or malformed.
pub fn etcd_admin_client_config(pki: &Path) -> Result<Arc<ClientConfig>> {
    let certificate = pki.join(ETCD_CLIENT_CERTIFICATE_FILE);
    let identity = Identity::load(&certificate, &pki.join(ETCD_CLIENT_KEY_FILE))?
        .ok_or_else(|| PkiError::Invalid { path: certificate, reason: "missing".into() })?;
    mutual_client_config(&identity, &load_certificate(&pki.join(CA_CERTIFICATE_FILE))?, &[HTTP2_ALPN])
}
