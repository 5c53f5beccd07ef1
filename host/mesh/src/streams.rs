//! Streams one node opens on another over the peer channel (mutual TLS
//! with node certificates of the cluster): an opaque request, answered
//! with chunks of bytes or a refusal. What a stream carries (a pod's log)
//! is the business of the handler the node registers.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, Stream, StreamExt};
use tonic::{Code, Status};

use crate::proto::Payload;

/// Longest opening a stream on another node may take.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of a request to open a stream, at most.
pub const STREAM_REQUEST_BYTES_MAX: usize = 64 << 10;

/// The chunks of a stream, or why it broke off.
pub type ByteStream = BoxStream<'static, Result<Bytes, String>>;

/// Why a stream was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StreamRefusal {
    /// What kind of refusal, as an HTTP status (400, 404, 503).
    pub code: u16,
    /// Why.
    pub message: String,
}

impl StreamRefusal {
    /// A refusal of kind `code`.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub(crate) fn status(&self) -> Status {
        let code = match self.code {
            400 => Code::InvalidArgument,
            404 => Code::NotFound,
            403 => Code::PermissionDenied,
            _ => Code::Unavailable,
        };
        Status::new(code, self.message.clone())
    }

    pub(crate) fn from_status(status: &Status) -> Self {
        let code = match status.code() {
            Code::InvalidArgument => 400,
            Code::NotFound => 404,
            Code::PermissionDenied => 403,
            _ => 503,
        };
        Self::new(code, status.message())
    }
}

/// Opens the streams other nodes ask this one for.
pub trait StreamHandler: Send + Sync {
    /// The stream `request` asks for.
    fn open(&self, request: Vec<u8>) -> BoxFuture<'static, Result<ByteStream, StreamRefusal>>;
}

/// The chunks of a served stream, as gRPC sends them.
pub(crate) type PayloadStream = Pin<Box<dyn Stream<Item = Result<Payload, Status>> + Send>>;

/// Serves a stream with `handler`.
pub(crate) async fn serve(handler: Option<Arc<dyn StreamHandler>>, request: Vec<u8>) -> Result<PayloadStream, Status> {
    if request.len() > STREAM_REQUEST_BYTES_MAX {
        return Err(Status::invalid_argument(format!("a stream request is at most {STREAM_REQUEST_BYTES_MAX} bytes")));
    }
    let handler = handler.ok_or_else(|| Status::unavailable("this node serves no streams yet"))?;
    let stream = handler.open(request).await.map_err(|refusal| refusal.status())?;
    Ok(Box::pin(stream.map(|chunk| match chunk {
        Ok(data) => Ok(Payload { data: data.to_vec() }),
        Err(message) => Err(Status::aborted(message)),
    })))
}

/// Opens, on the node at `peer_addr` reached with `client`, the stream
/// `request` asks for.
pub(crate) async fn open(
    mut client: crate::proto::peer_client::PeerClient<tonic::transport::Channel>,
    peer_addr: &str,
    request: Vec<u8>,
) -> Result<ByteStream, StreamRefusal> {
    let opening = client.open_stream(Payload { data: request });
    let response = match tokio::time::timeout(OPEN_TIMEOUT, opening).await {
        Ok(Ok(response)) => response,
        Ok(Err(status)) => return Err(StreamRefusal::from_status(&status)),
        Err(_) => {
            return Err(StreamRefusal::new(503, format!("node {peer_addr} did not answer within {OPEN_TIMEOUT:?}")));
        }
    };
    Ok(response
        .into_inner()
        .map(|chunk| chunk.map(|payload| Bytes::from(payload.data)).map_err(|status| status.message().to_owned()))
        .boxed())
}
