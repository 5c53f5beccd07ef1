//! The raft transport: openraft's RPCs as length-prefixed bincode frames on
//! plain TCP connections that share the peer port with the gRPC service.
//!
//! A raft connection opens with [`RAFT_PREFACE`]; the peer listener tells it
//! from an HTTP/2 (gRPC) connection by its first bytes. Each raft stream of
//! openraft (one per follower, plus one per vote round) owns one connection
//! and makes one call at a time on it: a request frame, then its answer
//! frame. The caller writes and reads the socket itself, so a call costs no
//! task hand-offs beyond the network.

use std::sync::{Arc, Weak};
use std::time::Duration;

use engenho_store::TypeConfig;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

use crate::node::Inner;

/// First bytes a raft connection sends. gRPC connections start with the
/// HTTP/2 preface (`PRI * HTTP/2.0`), which never matches.
pub(crate) const RAFT_PREFACE: &[u8; 8] = b"engraft1";

/// Largest raft frame, in either direction: room for a batch of
/// [`crate::node::RAFT_PAYLOAD_ENTRIES_MAX`] entries of the largest proposal.
pub(crate) const RAFT_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Time a new peer connection has to send its first bytes.
const PREFACE_TIMEOUT: Duration = Duration::from_secs(5);

/// Time to receive the rest of a frame once its length has arrived.
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Why a frame could not be exchanged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// The socket failed or closed.
    #[error("raft connection: {0}")]
    Io(#[from] std::io::Error),
    /// The frame announced more bytes than a frame may hold.
    #[error("raft frame of {0} bytes exceeds the {RAFT_FRAME_BYTES_MAX}-byte limit")]
    TooLarge(usize),
    /// The frame did not decode.
    #[error("malformed raft frame: {0}")]
    Malformed(String),
    /// The rest of a frame did not arrive in time.
    #[error("raft frame incomplete after {FRAME_TIMEOUT:?}")]
    Stalled,
}

/// Writes one frame: its length (u32, big endian), then `value` in bincode.
pub(crate) async fn write_frame<T: Serialize>(stream: &mut TcpStream, value: &T) -> Result<(), WireError> {
    let size = bincode::serialized_size(value).map_err(|e| WireError::Malformed(e.to_string()))?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > RAFT_FRAME_BYTES_MAX {
        return Err(WireError::TooLarge(size));
    }
    let mut frame = Vec::with_capacity(4 + size);
    frame.extend_from_slice(&u32::try_from(size).expect("bounded by the frame limit").to_be_bytes());
    bincode::serialize_into(&mut frame, value).map_err(|e| WireError::Malformed(e.to_string()))?;
    stream.write_all(&frame).await?;
    Ok(())
}

/// Reads one frame written by [`write_frame`]. Waits as long as it takes for
/// a frame to begin; once it has, the rest must come within [`FRAME_TIMEOUT`].
pub(crate) async fn read_frame<T: DeserializeOwned>(stream: &mut BufReader<TcpStream>) -> Result<T, WireError> {
    let size = stream.read_u32().await?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > RAFT_FRAME_BYTES_MAX {
        return Err(WireError::TooLarge(size));
    }
    let mut body = vec![0; size];
    tokio::time::timeout(FRAME_TIMEOUT, stream.read_exact(&mut body)).await.map_err(|_| WireError::Stalled)??;
    bincode::deserialize(&body).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Accepts peer connections: raft connections are served here, one task
/// each; the others (gRPC) are handed on through the returned stream. Stops
/// accepting when the stream is dropped.
pub fn split_peer_connections(
    listener: TcpListener,
    node: &crate::Node,
) -> impl tokio_stream::Stream<Item = std::io::Result<TcpStream>> + use<> {
    let (grpc, incoming) = mpsc::channel(GRPC_BACKLOG_MAX);
    tokio::spawn(accept(listener, Arc::downgrade(node.inner()), grpc));
    tokio_stream::wrappers::ReceiverStream::new(incoming)
}

async fn accept(listener: TcpListener, node: Weak<Inner>, grpc: mpsc::Sender<std::io::Result<TcpStream>>) {
    let raft_connections = Arc::new(Semaphore::new(RAFT_CONNECTIONS_MAX));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = grpc.closed() => return,
        };
        let stream = match accepted.and_then(|(stream, _)| stream.set_nodelay(true).map(|()| stream)) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "accepting a peer connection");
                continue;
            }
        };
        let (node, grpc, raft_connections) = (node.clone(), grpc.clone(), raft_connections.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(PREFACE_TIMEOUT, starts_with_preface(&stream)).await {
                Ok(Ok(true)) => {
                    let Ok(_permit) = raft_connections.try_acquire() else {
                        tracing::warn!("closing a raft connection: {RAFT_CONNECTIONS_MAX} already open");
                        return;
                    };
                    if let Err(error) = serve_raft(stream, node).await {
                        tracing::debug!(%error, "raft connection closed");
                    }
                }
                Ok(Ok(false)) => {
                    let _ = grpc.send(Ok(stream)).await;
                }
                Ok(Err(error)) => tracing::debug!(%error, "reading a peer connection's first bytes"),
                Err(_) => tracing::debug!("a peer connection sent nothing for {PREFACE_TIMEOUT:?}"),
            }
        });
    }
}

/// Whether the connection opens with [`RAFT_PREFACE`], without consuming
/// anything: a gRPC connection must reach the gRPC server whole.
async fn starts_with_preface(stream: &TcpStream) -> std::io::Result<bool> {
    let mut first = [0; RAFT_PREFACE.len()];
    loop {
        let seen = stream.peek(&mut first).await?;
        if seen == 0 || first[..seen] != RAFT_PREFACE[..seen] {
            return Ok(false);
        }
        if seen == RAFT_PREFACE.len() {
            return Ok(true);
        }
        stream.readable().await?;
    }
}

/// Answers the raft requests of one connection, one at a time, until the
/// peer closes it or sends something malformed.
async fn serve_raft(stream: TcpStream, node: Weak<Inner>) -> Result<(), WireError> {
    let mut stream = BufReader::new(stream);
    let mut preface = [0; RAFT_PREFACE.len()];
    stream.read_exact(&mut preface).await?;
    loop {
        let request = match read_frame::<RaftRequest>(&mut stream).await {
            Err(WireError::Io(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            other => other?,
        };
        let Some(node) = node.upgrade() else { return Ok(()) };
        let socket = stream.get_mut();
        match request {
            RaftRequest::AppendEntries(rpc) => write_frame(socket, &node.raft.append_entries(rpc).await).await?,
            RaftRequest::Vote(rpc) => write_frame(socket, &node.raft.vote(rpc).await).await?,
            RaftRequest::InstallSnapshot(rpc) => write_frame(socket, &node.raft.install_snapshot(rpc).await).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let received: (u64, String) = read_frame(&mut reader).await.expect("read");
            assert_eq!(&received, value);
        }
    }

    #[tokio::test]
    async fn an_announced_size_over_the_limit_is_refused_before_reading_it() {
        let (mut writer, mut reader) = connected_pair().await;
        let announced = u32::try_from(RAFT_FRAME_BYTES_MAX + 1).expect("fits u32");
        writer.write_all(&announced.to_be_bytes()).await.expect("write");
        let error = read_frame::<u64>(&mut reader).await.expect_err("refused");
        assert!(matches!(error, WireError::TooLarge(size) if size == RAFT_FRAME_BYTES_MAX + 1), "{error}");
    }

    #[tokio::test]
    async fn undecodable_and_truncated_frames_are_errors() {
        let (mut writer, mut reader) = connected_pair().await;
        writer.write_all(&3u32.to_be_bytes()).await.expect("write");
        writer.write_all(&[0xff, 0xff, 0xff]).await.expect("write");
        let error = read_frame::<(u64, String)>(&mut reader).await.expect_err("undecodable");
        assert!(matches!(error, WireError::Malformed(_)), "{error}");
        writer.write_all(&100u32.to_be_bytes()).await.expect("write");
        writer.write_all(&[0; 10]).await.expect("write");
        drop(writer);
        let error = read_frame::<(u64, String)>(&mut reader).await.expect_err("truncated");
        assert!(matches!(error, WireError::Io(_)), "{error}");
    }

    #[tokio::test]
    async fn the_preface_is_recognised_without_being_consumed() {
        let (mut writer, reader) = connected_pair().await;
        writer.write_all(&RAFT_PREFACE[..3]).await.expect("write");
        let (raft, ()) = tokio::join!(starts_with_preface(reader.get_ref()), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            writer.write_all(&RAFT_PREFACE[3..]).await.expect("write");
        });
        assert!(raft.expect("peek"));
        let mut reader = reader;
        let mut preface = [0; RAFT_PREFACE.len()];
        reader.read_exact(&mut preface).await.expect("still readable");
        assert_eq!(&preface, RAFT_PREFACE);

        let (mut writer, reader) = connected_pair().await;
        writer.write_all(b"PRI * HTTP/2.0\r\n").await.expect("write");
        assert!(!starts_with_preface(reader.get_ref()).await.expect("peek"));
    }
}
