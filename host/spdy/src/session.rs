//! The server side of a SPDY/3.1 session: every stream the client opens
//! is replied to and handed over as a byte pipe; pings are echoed;
//! resets, half-closes and the end of the session reach the pipes.
//!
//! As Kubernetes' own peers (spdystream) do, flow control is not used:
//! a stream's bytes are written into its pipe as they arrive, so a reader
//! that does not keep up holds back the whole session (the pipe's buffer
//! and the transport's are the bounds).

use std::collections::HashMap;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use crate::frame::{Decoder, Encoder, Frame, FrameError, Headers, reset};

/// Frames queued for the transport, at most.
const OUTBOUND_FRAMES: usize = 64;

/// Bytes a stream's pipe buffers each way.
const STREAM_BUFFER_BYTES: usize = 128 << 10;

/// Bytes read from a stream's pipe into one DATA frame, at most.
const DATA_CHUNK_BYTES: usize = 32 << 10;

/// Longest the frames still queued may take to be written once the
/// session ends.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What a session allows.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Streams open at once, at most; more are refused (`REFUSED_STREAM`).
    pub streams_max: usize,
    /// The session ends when the client sends nothing for this long.
    pub idle_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self { streams_max: 256, idle_timeout: Duration::from_secs(4 * 60 * 60) }
    }
}

/// A stream the client opened, replied to.
#[derive(Debug)]
pub struct Stream {
    /// Its id.
    pub id: u32,
    /// The headers it was opened with.
    pub headers: Headers,
    /// Its bytes: what the client sends is read here (end of file when it
    /// half-closes); what is written here is sent, and shutting down the
    /// write side (or dropping the pipe) half-closes the stream. When the
    /// client resets the stream or the session ends, reads end and writes
    /// fail.
    pub io: DuplexStream,
}

/// Why a session ended other than by the client's close.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The client sent what is not SPDY/3.1.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The transport failed.
    #[error("transport: {0}")]
    Io(#[from] std::io::Error),
    /// The client sent nothing for the idle timeout.
    #[error("no frame for {0:?}")]
    Idle(Duration),
}

/// Serves the server side of a session over `io` until the client ends
/// it (GOAWAY or closing the transport), handing every stream it opens to
/// `accepted`. When this returns, every stream's pipe is closed.
///
/// # Errors
/// The client broke the protocol, the transport failed, or the session
/// sat idle.
pub async fn serve<IO>(io: IO, config: SessionConfig, accepted: mpsc::Sender<Stream>) -> Result<(), SessionError>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (frames, outbound) = mpsc::channel(OUTBOUND_FRAMES);
    let writer = tokio::spawn(write_frames(write, outbound));
    let mut session = Session { config, frames, accepted, streams: HashMap::new(), pumps: JoinSet::new(), last_id: 0 };
    let result = session.run(read).await;
    session.pumps.shutdown().await;
    drop(session);
    let written = match tokio::time::timeout(CLOSE_GRACE, writer).await {
        Ok(Ok(written)) => written,
        Ok(Err(_)) | Err(_) => Ok(()),
    };
    result.and(written.map_err(SessionError::from))
}

/// One open stream: where its incoming bytes go, and whether its outgoing
/// side is still being sent.
struct Open {
    inbound: Option<WriteHalf<DuplexStream>>,
    outbound: Option<AbortHandle>,
}

struct Session {
    config: SessionConfig,
    frames: mpsc::Sender<Frame>,
    accepted: mpsc::Sender<Stream>,
    streams: HashMap<u32, Open>,
    pumps: JoinSet<u32>,
    last_id: u32,
}

impl Session {
    async fn run<R: AsyncRead + Unpin>(&mut self, mut read: R) -> Result<(), SessionError> {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::with_capacity(16 << 10);
        loop {
            while let Some(frame) = decoder.decode(&mut buf)? {
                if !self.handle(frame).await {
                    return Ok(());
                }
            }
            tokio::select! {
                read = tokio::time::timeout(self.config.idle_timeout, read.read_buf(&mut buf)) => {
                    match read {
                        Err(_) => return Err(SessionError::Idle(self.config.idle_timeout)),
                        Ok(Ok(0)) => return Ok(()),
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => return Err(error.into()),
                    }
                }
                Some(Ok(id)) = self.pumps.join_next(), if !self.pumps.is_empty() => {
                    if let Some(open) = self.streams.get_mut(&id) {
                        open.outbound = None;
                    }
                    self.forget_if_done(id);
                }
            }
        }
    }

    /// Acts on one frame; `false` when the session is over.
    async fn handle(&mut self, frame: Frame) -> bool {
        match frame {
            Frame::SynStream { stream, fin, unidirectional, headers, .. } => {
                return self.open(stream, fin, unidirectional, headers).await;
            }
            Frame::Data { stream, fin, data } => {
                let Some(inbound) = self.streams.get_mut(&stream).and_then(|open| open.inbound.as_mut()) else {
                    return true;
                };
                let delivered = data.is_empty() || inbound.write_all(&data).await.is_ok();
                if fin && delivered {
                    let _ = inbound.shutdown().await;
                }
                if (fin || !delivered)
                    && let Some(open) = self.streams.get_mut(&stream)
                {
                    open.inbound = None;
                }
                self.forget_if_done(stream);
            }
            Frame::RstStream { stream, .. } => {
                if let Some(Open { outbound: Some(pump), .. }) = self.streams.remove(&stream) {
                    pump.abort();
                }
            }
            Frame::Ping { id } => return self.send(Frame::Ping { id }).await,
            Frame::GoAway { .. } => return false,
            Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Settings { .. } | Frame::WindowUpdate { .. } => {}
        }
        true
    }

    /// Opens stream `id`: replies, starts sending what its pipe is given,
    /// and hands it over.
    async fn open(&mut self, id: u32, fin: bool, unidirectional: bool, headers: Headers) -> bool {
        if id.is_multiple_of(2) || id <= self.last_id {
            return self.send(Frame::RstStream { stream: id, status: reset::PROTOCOL_ERROR }).await;
        }
        self.last_id = id;
        if self.streams.len() >= self.config.streams_max {
            tracing::debug!(stream = id, streams = self.streams.len(), "refusing a stream past the limit");
            return self.send(Frame::RstStream { stream: id, status: reset::REFUSED_STREAM }).await;
        }
        if !self.send(Frame::SynReply { stream: id, fin: unidirectional, headers: Headers::new() }).await {
            return false;
        }
        let (theirs, ours) = tokio::io::duplex(STREAM_BUFFER_BYTES);
        let (read, mut write) = tokio::io::split(ours);
        let inbound = if fin {
            let _ = write.shutdown().await;
            None
        } else {
            Some(write)
        };
        let outbound = (!unidirectional).then(|| self.pumps.spawn(send_stream(id, read, self.frames.clone())));
        self.streams.insert(id, Open { inbound, outbound });
        self.accepted.send(Stream { id, headers, io: theirs }).await.is_ok()
    }

    async fn send(&self, frame: Frame) -> bool {
        self.frames.send(frame).await.is_ok()
    }

    /// Forgets stream `id` once neither side of it is open.
    fn forget_if_done(&mut self, id: u32) {
        if self.streams.get(&id).is_some_and(|open| open.inbound.is_none() && open.outbound.is_none()) {
            self.streams.remove(&id);
        }
    }
}

/// Sends what stream `id`'s pipe is given, as DATA frames, then its end
/// (FIN) once the pipe's write side is shut down or dropped.
async fn send_stream(id: u32, mut read: ReadHalf<DuplexStream>, frames: mpsc::Sender<Frame>) -> u32 {
    let mut buf = BytesMut::with_capacity(DATA_CHUNK_BYTES);
    loop {
        buf.reserve(DATA_CHUNK_BYTES);
        let fin = match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => true,
            Ok(_) => false,
        };
        let data = buf.split().freeze();
        if frames.send(Frame::Data { stream: id, fin, data }).await.is_err() || fin {
            return id;
        }
    }
}

/// Writes queued frames to the transport, flushing whenever the queue
/// runs dry, until every sender is gone.
async fn write_frames<W: AsyncWrite>(write: W, mut frames: mpsc::Receiver<Frame>) -> std::io::Result<()> {
    tokio::pin!(write);
    let mut encoder = Encoder::new();
    let mut out = BytesMut::with_capacity(DATA_CHUNK_BYTES + 64);
    while let Some(frame) = frames.recv().await {
        encode(&mut encoder, &frame, &mut out);
        while let Ok(frame) = frames.try_recv() {
            encode(&mut encoder, &frame, &mut out);
            if out.len() >= DATA_CHUNK_BYTES {
                break;
            }
        }
        write.write_all(&out).await?;
        out.clear();
        if frames.is_empty() {
            write.flush().await?;
        }
    }
    write.shutdown().await
}

fn encode(encoder: &mut Encoder, frame: &Frame, out: &mut BytesMut) {
    if let Err(error) = encoder.encode(frame, out) {
        tracing::warn!(%error, "a frame this side made could not be encoded");
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// The client side of a session under test: frames out, frames in.
    struct Client {
        io: DuplexStream,
        encoder: Encoder,
        decoder: Decoder,
        buf: BytesMut,
    }

    impl Client {
        async fn send(&mut self, frame: Frame) {
            let mut out = BytesMut::new();
            self.encoder.encode(&frame, &mut out).expect("encodes");
            self.io.write_all(&out).await.expect("sends");
        }

        async fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(frame) = self.decoder.decode(&mut self.buf).expect("decodes") {
                    return Some(frame);
                }
                let read = tokio::time::timeout(Duration::from_secs(10), self.io.read_buf(&mut self.buf));
                if read.await.expect("a frame in time").expect("reads") == 0 {
                    return None;
                }
            }
        }

        async fn open(&mut self, stream: u32, kind: &str) {
            let headers = Headers::new().with("streamType", kind);
            let frame =
                Frame::SynStream { stream, associated: 0, priority: 0, fin: false, unidirectional: false, headers };
            self.send(frame).await;
        }
    }

    fn start(
        config: SessionConfig,
    ) -> (Client, mpsc::Receiver<Stream>, tokio::task::JoinHandle<Result<(), SessionError>>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (accepted, streams) = mpsc::channel(8);
        let session = tokio::spawn(serve(server, config, accepted));
        let client = Client { io: client, encoder: Encoder::new(), decoder: Decoder::new(), buf: BytesMut::new() };
        (client, streams, session)
    }

    #[tokio::test]
    async fn streams_carry_bytes_both_ways_and_end_as_the_client_says() {
        // Goal: a stream is replied to and handed over with its headers;
        // bytes cross both ways; half-closes cross both ways; pings are
        // echoed; a reset ends the pipe; GOAWAY ends the session.
        let (mut client, mut streams, session) = start(SessionConfig::default());
        client.open(1, "data").await;
        assert_eq!(client.next().await, Some(Frame::SynReply { stream: 1, fin: false, headers: Headers::new() }));
        let mut stream = streams.recv().await.expect("a stream");
        assert_eq!((stream.id, stream.headers.get("streamtype")), (1, Some("data")));

        client.send(Frame::Data { stream: 1, fin: false, data: Bytes::from_static(b"hello") }).await;
        let mut got = [0u8; 5];
        stream.io.read_exact(&mut got).await.expect("reads");
        assert_eq!(&got, b"hello");
        stream.io.write_all(b"world").await.expect("writes");
        assert_eq!(
            client.next().await,
            Some(Frame::Data { stream: 1, fin: false, data: Bytes::from_static(b"world") })
        );

        client.send(Frame::Ping { id: 7 }).await;
        assert_eq!(client.next().await, Some(Frame::Ping { id: 7 }));

        client.send(Frame::Data { stream: 1, fin: true, data: Bytes::new() }).await;
        assert_eq!(stream.io.read(&mut got).await.expect("reads"), 0, "the client's FIN ends the reads");
        stream.io.shutdown().await.expect("shuts down");
        assert_eq!(client.next().await, Some(Frame::Data { stream: 1, fin: true, data: Bytes::new() }));

        client.open(3, "data").await;
        assert!(matches!(client.next().await, Some(Frame::SynReply { stream: 3, .. })));
        let mut reset = streams.recv().await.expect("a stream");
        client.send(Frame::RstStream { stream: 3, status: reset::CANCEL }).await;
        assert_eq!(reset.io.read(&mut got).await.expect("reads"), 0, "a reset ends the reads");

        client.open(5, "error").await;
        assert!(matches!(client.next().await, Some(Frame::SynReply { stream: 5, .. })));
        let mut open = streams.recv().await.expect("a stream");
        client.send(Frame::GoAway { last_good: 5, status: 0 }).await;
        session.await.expect("joins").expect("a clean end");
        assert_eq!(open.io.read(&mut got).await.expect("reads"), 0, "the end of the session ends the reads");
        assert_eq!(client.next().await, None, "the transport is closed");
    }

    #[tokio::test]
    async fn streams_past_the_limit_or_out_of_order_are_refused_and_garbage_ends_the_session() {
        // Goal: the stream limit and id rules hold with precise resets; a
        // frame that is not SPDY/3 ends the session with the reason.
        let (mut client, mut streams, session) = start(SessionConfig { streams_max: 1, ..SessionConfig::default() });
        client.open(1, "data").await;
        assert!(matches!(client.next().await, Some(Frame::SynReply { stream: 1, .. })));
        let _held = streams.recv().await.expect("a stream");
        client.open(3, "data").await;
        assert_eq!(client.next().await, Some(Frame::RstStream { stream: 3, status: reset::REFUSED_STREAM }));
        client.open(2, "data").await;
        assert_eq!(client.next().await, Some(Frame::RstStream { stream: 2, status: reset::PROTOCOL_ERROR }));
        client.open(1, "data").await;
        assert_eq!(client.next().await, Some(Frame::RstStream { stream: 1, status: reset::PROTOCOL_ERROR }));
        client.io.write_all(&[0x80, 0x02, 0, 1, 0, 0, 0, 0]).await.expect("sends");
        let ended = session.await.expect("joins");
        assert!(matches!(ended, Err(SessionError::Frame(FrameError::UnsupportedVersion(2)))), "{ended:?}");
    }

    #[tokio::test]
    async fn an_idle_session_ends() {
        // Goal: a client that sends nothing for the idle timeout is let go.
        let (_client, _streams, session) =
            start(SessionConfig { idle_timeout: Duration::from_millis(50), ..SessionConfig::default() });
        assert!(matches!(session.await.expect("joins"), Err(SessionError::Idle(_))));
    }
}
