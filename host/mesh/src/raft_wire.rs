//! The raft transport: openraft's RPCs as length-prefixed bincode frames on
//! TLS connections that share the peer port with the gRPC service and
//! joins (see [`crate::tls`]).
//!
//! Each raft stream of openraft (one per follower, plus one per vote round)
//! owns one connection and makes one call at a time on it: a request
//! frame, then its answer frame. The caller writes and reads the socket
//! itself, so a call costs no task hand-offs beyond the network.

use std::sync::{Arc, Weak};
use std::time::Duration;

use engenho_pki::{HTTP2_ALPN, TlsConnection};
use engenho_store::TypeConfig;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::StreamExt;

use crate::node::Inner;
use crate::tls::{JOIN_ALPN, PEER_HANDSHAKE_LIMITS, RAFT_ALPN, is_from_node};

/// Largest raft frame, in either direction: room for a batch of
/// [`crate::node::RAFT_PAYLOAD_ENTRIES_MAX`] entries of the largest proposal.
pub(crate) const RAFT_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Time a served raft connection may stay without a frame beginning; the
/// leader's heartbeats keep a follower's connection busier than this.
pub(crate) const RAFT_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Time to receive the rest of a frame once its first bytes have arrived.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes a frame's buffer grows by before more of the frame arrives.
const FRAME_READ_CHUNK: usize = 64 * 1024;

/// Raft connections one node serves at once; more are closed at accept.
const RAFT_CONNECTIONS_MAX: usize = 256;

/// gRPC connections accepted but not yet taken by the gRPC server.
const GRPC_BACKLOG_MAX: usize = 64;

/// A raft RPC as it travels to a peer.
#[derive(Serialize, Deserialize)]
pub(crate) enum RaftRequest {
    /// AppendEntries (replication and heartbeats).
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// RequestVote.
    Vote(VoteRequest<u64>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

/// A raft RPC addressed to one member: a node refuses calls addressed to
/// another id (a node wiped and rejoined at the same address must not
/// answer for the member it was).
#[derive(Serialize, Deserialize)]
pub(crate) struct RaftCall {
    /// The raft id of the member called.
    pub(crate) to: u64,
    /// The RPC.
    pub(crate) request: RaftRequest,
}

/// Why a frame could not be exchanged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// The socket failed or closed.
    #[error("peer connection: {0}")]
    Io(#[from] std::io::Error),
    /// The frame announced more bytes than a frame may hold.
    #[error("frame of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Bytes announced.
        size: usize,
        /// Bytes allowed.
        limit: usize,
    },
    /// The frame did not decode.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A raft call addressed to another member.
    #[error("a raft call for member {to:016x} reached member {this:016x}")]
    Misaddressed {
        /// The member called.
        to: u64,
        /// This member.
        this: u64,
    },
    /// The rest of a frame did not arrive in time.
    #[error("frame incomplete after {FRAME_TIMEOUT:?}")]
    Stalled,
}

/// Writes one frame: its length (u32, big endian), then `value` in bincode.
pub(crate) async fn write_frame<W, T>(stream: &mut W, value: &T) -> Result<(), WireError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let size = bincode::serialized_size(value).map_err(|e| WireError::Malformed(e.to_string()))?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > RAFT_FRAME_BYTES_MAX {
        return Err(WireError::TooLarge { size, limit: RAFT_FRAME_BYTES_MAX });
    }
    let mut frame = Vec::with_capacity(4 + size);
    frame.extend_from_slice(&u32::try_from(size).expect("bounded by the frame limit").to_be_bytes());
    bincode::serialize_into(&mut frame, value).map_err(|e| WireError::Malformed(e.to_string()))?;
    stream.write_all(&frame).await?;
    stream.flush().await?;
    Ok(())
}

/// Reads one frame written by [`write_frame`] of at most `limit` bytes.
/// Waits as long as it takes for a frame to begin; once it has, the rest
/// must come within [`FRAME_TIMEOUT`]. The buffer grows only as bytes
/// arrive, and decoding allocates no more than the frame holds.
pub(crate) async fn read_frame<R, T>(stream: &mut R, limit: usize) -> Result<T, WireError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let size = stream.read_u32().await?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > limit {
        return Err(WireError::TooLarge { size, limit });
    }
    let mut body = Vec::with_capacity(size.min(FRAME_READ_CHUNK));
    let announced = u64::try_from(size).expect("usize fits u64");
    tokio::time::timeout(FRAME_TIMEOUT, (&mut *stream).take(announced).read_to_end(&mut body))
        .await
        .map_err(|_| WireError::Stalled)??;
    if body.len() != size {
        return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    engenho_store::decode_bounded(&body).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Accepts peer connections under TLS: raft and join connections are
/// served here, one task each; gRPC connections from nodes are handed on
/// through the returned stream. A connection whose client presented no
/// node certificate of the cluster carries nothing but a join. Stops
/// accepting when the stream is dropped.
pub fn split_peer_connections(
    listener: TcpListener,
    node: &crate::Node,
) -> impl tokio_stream::Stream<Item = std::io::Result<TlsConnection>> + use<> {
    let tls = node.inner().tls.clone();
    let connections =
        engenho_pki::accept_tls(listener, Arc::new(move |hello| tls.select(hello)), PEER_HANDSHAKE_LIMITS);
    let (grpc, incoming) = mpsc::channel(GRPC_BACKLOG_MAX);
    tokio::spawn(dispatch(connections, Arc::downgrade(node.inner()), grpc));
    tokio_stream::wrappers::ReceiverStream::new(incoming)
}

async fn dispatch(
    connections: impl tokio_stream::Stream<Item = std::io::Result<TlsConnection>>,
    node: Weak<Inner>,
    grpc: mpsc::Sender<std::io::Result<TlsConnection>>,
) {
    let raft_connections = Arc::new(Semaphore::new(RAFT_CONNECTIONS_MAX));
    let mut connections = std::pin::pin!(connections);
    loop {
        let next = tokio::select! {
            next = connections.next() => next,
            () = grpc.closed() => return,
        };
        let connection = match next {
            Some(Ok(connection)) => connection,
            Some(Err(error)) => {
                tracing::debug!(%error, "accepting a peer connection");
                continue;
            }
            None => return,
        };
        match connection.alpn() {
            Some(JOIN_ALPN) => {
                tokio::spawn(crate::join::serve_join(connection, node.clone()));
            }
            Some(RAFT_ALPN) if is_from_node(&connection) => {
                let Ok(permit) = raft_connections.clone().try_acquire_owned() else {
                    tracing::warn!("closing a raft connection: {RAFT_CONNECTIONS_MAX} already open");
                    continue;
                };
                let node = node.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve_raft(connection, node).await {
                        tracing::debug!(%error, "raft connection closed");
                    }
                    drop(permit);
                });
            }
            Some(HTTP2_ALPN) if is_from_node(&connection) => {
                let _ = grpc.send(Ok(connection)).await;
            }
            _ => tracing::warn!(
                remote = ?connection.remote_addr(),
                "closing a peer connection whose client certificate is not a node's, or is a worker's"
            ),
        }
    }
}

/// Answers the raft requests of one connection, one at a time, until the
/// peer closes it, stays idle for [`RAFT_IDLE_TIMEOUT`] or sends something
/// malformed.
async fn serve_raft(connection: TlsConnection, node: Weak<Inner>) -> Result<(), WireError> {
    let mut stream = BufReader::new(connection);
    loop {
        match tokio::time::timeout(RAFT_IDLE_TIMEOUT, stream.fill_buf()).await {
            Err(_) => return Ok(()),
            Ok(Ok([])) => return Ok(()),
            Ok(filled) => filled?,
        };
        let call = read_frame::<_, RaftCall>(&mut stream, RAFT_FRAME_BYTES_MAX).await?;
        let Some(node) = node.upgrade() else { return Ok(()) };
        if call.to != node.id() {
            return Err(WireError::Misaddressed { to: call.to, this: node.id() });
        }
        let socket = stream.get_mut();
        match call.request {
            RaftRequest::AppendEntries(rpc) => write_frame(socket, &node.raft.append_entries(rpc).await).await?,
            RaftRequest::Vote(rpc) => write_frame(socket, &node.raft.vote(rpc).await).await?,
            RaftRequest::InstallSnapshot(rpc) => write_frame(socket, &node.raft.install_snapshot(rpc).await).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    async fn connected_pair() -> (TcpStream, BufReader<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.expect("connect"), BufReader::new(accepted.expect("accept").0))
    }

    #[tokio::test]
    async fn frames_round_trip_in_order() {
        let (mut writer, mut reader) = connected_pair().await;
        let sent = vec![(1u64, "first".to_owned()), (2, String::new()), (3, "x".repeat(100_000))];
        for value in &sent {
            write_frame(&mut writer, value).await.expect("write");
        }
        for value in &sent {
            let received: (u64, String) = read_frame(&mut reader, RAFT_FRAME_BYTES_MAX).await.expect("read");
            assert_eq!(&received, value);
        }
    }

    #[tokio::test]
    async fn an_announced_size_over_the_limit_is_refused_before_reading_it() {
        let (mut writer, mut reader) = connected_pair().await;
        let announced = u32::try_from(RAFT_FRAME_BYTES_MAX + 1).expect("fits u32");
        writer.write_all(&announced.to_be_bytes()).await.expect("write");
        let error = read_frame::<_, u64>(&mut reader, RAFT_FRAME_BYTES_MAX).await.expect_err("refused");
        assert!(matches!(error, WireError::TooLarge { size, .. } if size == RAFT_FRAME_BYTES_MAX + 1), "{error}");
    }

    #[tokio::test]
    async fn undecodable_and_truncated_frames_are_errors() {
        let (mut writer, mut reader) = connected_pair().await;
        writer.write_all(&3u32.to_be_bytes()).await.expect("write");
        writer.write_all(&[0xff, 0xff, 0xff]).await.expect("write");
        let error = read_frame::<_, (u64, String)>(&mut reader, RAFT_FRAME_BYTES_MAX).await.expect_err("undecodable");
        assert!(matches!(error, WireError::Malformed(_)), "{error}");
        writer.write_all(&100u32.to_be_bytes()).await.expect("write");
        writer.write_all(&[0; 10]).await.expect("write");
        drop(writer);
        let error = read_frame::<_, (u64, String)>(&mut reader, RAFT_FRAME_BYTES_MAX).await.expect_err("truncated");
        assert!(matches!(error, WireError::Io(_)), "{error}");
    }

    #[tokio::test]
    async fn a_frame_claiming_a_huge_collection_allocates_only_what_arrived() {
        // Twelve bytes that announce a vector of 2^60 strings: decoding must
        // fail on the missing bytes, not try to reserve room for them.
        let (mut writer, mut reader) = connected_pair().await;
        let mut body = (1u64 << 60).to_le_bytes().to_vec();
        body.extend_from_slice(&[0; 4]);
        writer.write_all(&u32::try_from(body.len()).expect("small").to_be_bytes()).await.expect("write");
        writer.write_all(&body).await.expect("write");
        let error = read_frame::<_, Vec<String>>(&mut reader, RAFT_FRAME_BYTES_MAX).await.expect_err("refused");
        assert!(matches!(error, WireError::Malformed(_)), "{error}");
    }
}
