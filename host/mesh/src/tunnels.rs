//! Tunnels one node opens on another over the peer channel (mutual TLS
//! with node certificates of the cluster): an opaque request, then a byte
//! pipe both ways. What a tunnel reaches (a port of a pod the other node
//! runs) is the business of the handler the node registers.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{self, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tonic::{Status, Streaming};

use crate::proto::Payload;
use crate::streams::{OPEN_TIMEOUT, PayloadStream, STREAM_REQUEST_BYTES_MAX, StreamRefusal};

/// Bytes a tunnel's end buffers, and sends in one message at most.
const TUNNEL_CHUNK_BYTES: usize = 32 << 10;

/// A byte pipe both ways.
pub trait Conduit: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Conduit for T {}

/// Opens the tunnels other nodes ask this one for.
pub trait TunnelHandler: Send + Sync {
    /// The pipe `request` asks for.
    fn open(&self, request: Vec<u8>) -> BoxFuture<'static, Result<Box<dyn Conduit>, StreamRefusal>>;
}

/// Serves a tunnel with `handler`: its first message is the request, the
/// rest are written into the pipe the handler opens, and what the pipe
/// gives is answered.
pub(crate) async fn serve(
    handler: Option<Arc<dyn TunnelHandler>>,
    mut incoming: Streaming<Payload>,
) -> Result<PayloadStream, Status> {
    let handler = handler.ok_or_else(|| Status::unavailable("this node serves no tunnels yet"))?;
    let request = match tokio::time::timeout(OPEN_TIMEOUT, incoming.message()).await {
        Ok(Ok(Some(request))) => request.data,
        Ok(Ok(None)) => return Err(Status::invalid_argument("a tunnel opened without a request")),
        Ok(Err(status)) => return Err(status),
        Err(_) => return Err(Status::deadline_exceeded(format!("no tunnel request within {OPEN_TIMEOUT:?}"))),
    };
    if request.len() > STREAM_REQUEST_BYTES_MAX {
        return Err(Status::invalid_argument(format!("a tunnel request is at most {STREAM_REQUEST_BYTES_MAX} bytes")));
    }
    let conduit = handler.open(request).await.map_err(|refusal| refusal.status())?;
    let (read, mut write) = tokio::io::split(conduit);
    tokio::spawn(async move {
        while let Ok(Some(payload)) = incoming.message().await {
            if write.write_all(&payload.data).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    });
    Ok(Box::pin(chunks(read).map(|data| Ok(Payload { data }))))
}

/// Opens, on the node at `peer_addr` reached with `client`, the tunnel
/// `request` asks for: this node's end of the pipe.
pub(crate) async fn open(
    mut client: crate::proto::peer_client::PeerClient<tonic::transport::Channel>,
    peer_addr: &str,
    request: Vec<u8>,
) -> Result<DuplexStream, StreamRefusal> {
    let (ours, theirs) = tokio::io::duplex(TUNNEL_CHUNK_BYTES);
    let (their_read, mut their_write) = tokio::io::split(theirs);
    let outgoing =
        stream::once(async { Payload { data: request } }).chain(chunks(their_read).map(|data| Payload { data }));
    let response = match tokio::time::timeout(OPEN_TIMEOUT, client.open_tunnel(outgoing)).await {
        Ok(Ok(response)) => response,
        Ok(Err(status)) => return Err(StreamRefusal::from_status(&status)),
        Err(_) => {
            return Err(StreamRefusal::new(503, format!("node {peer_addr} did not answer within {OPEN_TIMEOUT:?}")));
        }
    };
    let mut incoming = response.into_inner();
    tokio::spawn(async move {
        while let Ok(Some(payload)) = incoming.message().await {
            if their_write.write_all(&payload.data).await.is_err() {
                return;
            }
        }
        let _ = their_write.shutdown().await;
    });
    Ok(ours)
}

/// What `read` gives, chunk by chunk, until its end or an error.
fn chunks<R: AsyncRead + Send + Unpin + 'static>(read: R) -> impl Stream<Item = Vec<u8>> + Send + 'static {
    stream::unfold(read, |mut read| async move {
        let mut chunk = vec![0; TUNNEL_CHUNK_BYTES];
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((chunk, read))
            }
        }
    })
}
