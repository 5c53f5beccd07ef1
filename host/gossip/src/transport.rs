//! chitchat's transport over UDP with every message sealed
//! ([`crate::seal`]): what chitchat sends is sealed by this node, what it
//! receives has been opened and verified; refused datagrams are counted
//! and dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport};

use crate::seal::{DATAGRAM_BYTES_MAX, Opened, Opener, Refusal, Sealer};

/// What a node learned of its peers through the transport: datagrams
/// refused, and each verified sender's key.
#[derive(Default)]
pub struct Seen {
    /// Datagrams refused since start.
    pub refused: AtomicU64,
    /// Bytes of datagrams sent since start.
    pub sent_bytes: AtomicU64,
    /// The Ed25519 key of each node a verified message came from.
    pub keys: std::sync::Mutex<std::collections::HashMap<String, [u8; 32]>>,
}

/// Opens sealed UDP sockets.
pub struct SealedUdp {
    pub(crate) sealer: Arc<Sealer>,
    pub(crate) ca: Vec<u8>,
    pub(crate) seen: Arc<Seen>,
}

#[async_trait]
impl Transport for SealedUdp {
    async fn open(&self, listen: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = tokio::net::UdpSocket::bind(listen).await?;
        let local = socket.local_addr()?;
        Ok(Box::new(SealedSocket {
            socket,
            sealer: self.sealer.clone(),
            opener: Opener::new(self.ca.clone(), local),
            seen: self.seen.clone(),
            buf: vec![0; DATAGRAM_BYTES_MAX],
        }))
    }
}

struct SealedSocket {
    socket: tokio::net::UdpSocket,
    sealer: Arc<Sealer>,
    opener: Opener,
    seen: Arc<Seen>,
    buf: Vec<u8>,
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    async fn send(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<SendOutcome> {
        let mut payload = Vec::new();
        envelope.serialize(&mut payload);
        let mut sent = 0;
        for datagram in self.sealer.seal(&payload, to) {
            match self.socket.send_to(&datagram, to).await {
                Ok(bytes) => {
                    sent += bytes;
                    self.seen.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                }
                // A peer that is gone is for the failure detector to see.
                Err(error) => tracing::debug!(%to, %error, "a gossip datagram was not sent"),
            }
        }
        Ok(SendOutcome { num_bytes_sent: sent })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let (length, from) = match self.socket.recv_from(&mut self.buf).await {
                Ok(received) => received,
                Err(error) if is_transient(&error) => continue,
                Err(error) => return Err(error.into()),
            };
            let opened = self.opener.open(&self.buf[..length], from);
            match opened {
                Ok(Opened { node, key, payload }) => {
                    let mut bytes = payload.as_slice();
                    match ChitchatEnvelope::deserialize(&mut bytes) {
                        Ok(envelope) => {
                            self.seen.keys.lock().expect("gossip keys lock").insert(node, key);
                            return Ok(RecvOutcome { from_addr: from, envelope, num_bytes_received: length });
                        }
                        Err(error) => {
                            self.seen.refused.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%from, %node, %error, "a verified gossip message chitchat cannot read");
                        }
                    }
                }
                Err(Refusal::Incomplete) => {}
                Err(refusal) => {
                    self.seen.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%from, %refusal, "a gossip datagram refused");
                }
            }
        }
    }
}

fn is_transient(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::OutOfMemory
    )
}
