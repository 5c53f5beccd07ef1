//! A TLS listener with bounded, timed handshakes: a client that connects and
//! never completes its handshake holds a slot for at most the handshake
//! timeout, and the accept loop never waits on any one client.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::CertificateDer;
use rustls::server::ClientHello;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

/// Finished connections waiting to be taken by the server.
const READY_BACKLOG_MAX: usize = 64;

/// Bounds on handshakes in progress.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeLimits {
    /// Time from accepting a connection to a finished handshake.
    pub timeout: Duration,
    /// Handshakes in progress at once; a connection arriving past this is
    /// closed at once.
    pub in_flight_max: usize,
}

/// A server-side TLS connection whose handshake finished.
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
    remote_addr: Option<SocketAddr>,
}

impl TlsConnection {
    /// The application protocol the handshake agreed on.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.stream.get_ref().1.alpn_protocol()
    }

    /// The certificate the client presented, verified by the server's
    /// configuration.
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.stream.get_ref().1.peer_certificates().and_then(<[_]>::first)
    }

    /// Where the client connected from.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// What a gRPC handler learns of the connection a request came on.
#[derive(Debug, Clone)]
pub struct TlsConnectInfo {
    /// Where the client connected from.
    pub remote_addr: Option<SocketAddr>,
    /// The client's verified certificate, if it presented one.
    pub peer_certificate: Option<CertificateDer<'static>>,
}

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = TlsConnectInfo;

    fn connect_info(&self) -> TlsConnectInfo {
        TlsConnectInfo { remote_addr: self.remote_addr, peer_certificate: self.peer_certificate().cloned() }
    }
}

/// Chooses the configuration for a client by its hello, or `None` to close
/// the connection.
pub type SelectConfig = dyn Fn(&ClientHello<'_>) -> Option<Arc<ServerConfig>> + Send + Sync;

/// Accepts connections on `listener` and yields them once their TLS
/// handshake has finished, each under the configuration `select` picks
/// from its hello. Connections that fail the handshake or exceed `limits`
/// are closed. Stops accepting when the stream is dropped.
pub fn accept_tls(
    listener: TcpListener,
    select: Arc<SelectConfig>,
    limits: HandshakeLimits,
) -> impl tokio_stream::Stream<Item = io::Result<TlsConnection>> + use<> {
    assert!(limits.in_flight_max > 0, "a listener allows at least one handshake");
    let (ready, incoming) = mpsc::channel(READY_BACKLOG_MAX);
    tokio::spawn(accept(listener, select, limits, ready));
    tokio_stream::wrappers::ReceiverStream::new(incoming)
}

async fn accept(
    listener: TcpListener,
    select: Arc<SelectConfig>,
    limits: HandshakeLimits,
    ready: mpsc::Sender<io::Result<TlsConnection>>,
) {
    let handshakes = Arc::new(Semaphore::new(limits.in_flight_max));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = ready.closed() => return,
        };
        let (stream, remote_addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors or a connection reset before it
                // was taken: keep serving the others.
                tracing::debug!(%error, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            // Logged quietly: whoever floods the port must not flood the log.
            tracing::debug!(%remote_addr, "closing a connection: {} handshakes already in progress", limits.in_flight_max);
            continue;
        };
        let (select, ready) = (select.clone(), ready.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(limits.timeout, handshake(stream, &*select)).await;
            drop(permit);
            match handshake {
                Ok(Ok(stream)) => {
                    let _ = ready.send(Ok(TlsConnection { stream, remote_addr: Some(remote_addr) })).await;
                }
                Ok(Err(error)) => tracing::debug!(%remote_addr, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote_addr, "no TLS handshake within {:?}", limits.timeout),
            }
        });
    }
}

async fn handshake(stream: TcpStream, select: &SelectConfig) -> io::Result<TlsStream<TcpStream>> {
    stream.set_nodelay(true)?;
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
    let config = select(&start.client_hello())
        .ok_or_else(|| io::Error::new(io::ErrorKind::PermissionDenied, "no configuration serves this client"))?;
    start.into_stream(config).await
}
