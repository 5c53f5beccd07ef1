//! Accepting and keeping API connections: every stage of a connection has a
//! deadline, so that clients which connect and never speak (or stop
//! speaking) give their place back within seconds, and the accept loop never
//! waits behind them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use super::access::ClientCertificate;

/// Time a client has to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Time a client has, once TLS is up, to send the headers of its first
/// request.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Time a connection may stay open with no request in flight (HTTP/1.1
/// keep-alive between requests, the next request's headers included;
/// HTTP/2 with no open stream) before the server closes it (gracefully:
/// HTTP/2 sends GOAWAY). Longer than the 90 s that Go's and hyper's
/// clients (kubectl, client-go, kube-rs) keep an idle connection pooled:
/// a client lets an idle connection go before the server closes it, and
/// never sends a request on one that is being closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Interval of HTTP/2 PINGs on a connection, so that a peer that vanished
/// without closing (its streams held open, as a watch's) is found.
pub const PING_INTERVAL: Duration = Duration::from_secs(30);

/// Time a peer has to answer a PING before its connection is closed.
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Time a connection that is being closed for idleness has to wind down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Connections in the TLS handshake at once. Past this the oldest pending
/// handshake is dropped for the newest, so a flood of silent connections
/// cannot keep a real client from being accepted and served.
pub const HANDSHAKES_MAX: usize = 1024;

/// Connections with TLS established, served at once. Past this a new
/// connection is closed right after its handshake.
pub const CONNECTIONS_MAX: usize = 4096;

/// Pause after a failed accept (as when the process is out of file
/// descriptors), so the loop does not spin while nothing can be accepted.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` and serves `router` over TLS on each
/// until `stop` turns true.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, router: Router, mut stop: watch::Receiver<bool>) {
    let handshakes = Arc::new(PendingHandshakes::default());
    let established = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting an API connection");
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let evicted = handshakes.admit();
        let connection =
            Connection { peer, acceptor: acceptor.clone(), router: router.clone(), established: established.clone() };
        tokio::spawn(connection.run(stream, evicted));
    }
}

/// The handshakes under way, oldest first, each with the sender whose drop
/// tells its task to give up.
#[derive(Default)]
struct PendingHandshakes {
    pending: Mutex<(u64, BTreeMap<u64, oneshot::Sender<()>>)>,
}

/// A place among the pending handshakes, given back on drop.
struct HandshakeSlot {
    id: u64,
    handshakes: Arc<PendingHandshakes>,
    evicted: oneshot::Receiver<()>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut pending = self.handshakes.pending.lock().expect("the handshake list is never poisoned");
        pending.1.remove(&self.id);
    }
}

impl PendingHandshakes {
    /// Takes a place for a new handshake, dropping the oldest one if all
    /// places are taken.
    fn admit(self: &Arc<Self>) -> HandshakeSlot {
        let (sender, evicted) = oneshot::channel();
        let mut pending = self.pending.lock().expect("the handshake list is never poisoned");
        let (next, slots) = &mut *pending;
        if slots.len() >= HANDSHAKES_MAX {
            slots.pop_first();
        }
        let id = *next;
        *next += 1;
        slots.insert(id, sender);
        debug_assert!(slots.len() <= HANDSHAKES_MAX);
        HandshakeSlot { id, handshakes: self.clone(), evicted }
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    established: Arc<Semaphore>,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut slot: HandshakeSlot) {
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream));
        let tls = tokio::select! {
            finished = handshake => match finished {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => return tracing::debug!(peer = %self.peer, %error, "TLS handshake failed"),
                Err(_) => return tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
            },
            _ = &mut slot.evicted => return tracing::debug!(peer = %self.peer, "TLS handshake dropped for a newer one"),
        };
        drop(slot);
        let Ok(permit) = self.established.clone().try_acquire_owned() else {
            return tracing::warn!(peer = %self.peer, "API connections at their limit; closing a new one");
        };
        self.serve_http(tls, permit).await;
    }

    async fn serve_http(self, tls: tokio_rustls::server::TlsStream<TcpStream>, _permit: OwnedSemaphorePermit) {
        let (activity, watched) = watch::channel(Activity::default());
        let activity = Arc::new(activity);
        let router = self.router;
        let certificate = ClientCertificate::of(tls.get_ref().1.peer_certificates());
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let (router, guard) = (router.clone(), InFlight::begin(activity.clone()));
            let mut request = request.map(Body::new);
            if let Some(certificate) = &certificate {
                request.extensions_mut().insert(certificate.clone());
            }
            async move {
                use tower::ServiceExt;
                let response = router.oneshot(request).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| Body::new(TrackedBody { body, _guard: guard })))
            }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // hyper's header-read timer runs from the end of the previous
        // response, so on a keep-alive connection it bounds the idle wait
        // too: it is the idle limit; the first request's headers are
        // bounded by `idle` below.
        builder.http1().timer(TokioTimer::new()).header_read_timeout(IDLE_TIMEOUT);
        builder.http2().timer(TokioTimer::new()).keep_alive_interval(PING_INTERVAL).keep_alive_timeout(PING_TIMEOUT);
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = idle(watched) => {
                tracing::debug!(peer = %self.peer, "closing an idle API connection");
                connection.as_mut().graceful_shutdown();
                tokio::time::timeout(SHUTDOWN_GRACE, connection).await.unwrap_or(Ok(()))
            }
        };
        if let Err(error) = result {
            tracing::debug!(peer = %self.peer, %error, "API connection ended");
        }
    }
}

/// What a connection is doing: requests in flight (a response whose body is
/// still being sent counts) and whether it has begun any request yet.
#[derive(Clone, Copy, Default)]
struct Activity {
    in_flight: u32,
    begun: u64,
}

/// One request in flight, counted until its response body is done or
/// dropped.
struct InFlight {
    activity: Arc<watch::Sender<Activity>>,
}

impl InFlight {
    fn begin(activity: Arc<watch::Sender<Activity>>) -> Self {
        activity.send_modify(|state| {
            state.in_flight += 1;
            state.begun += 1;
        });
        Self { activity }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.send_modify(|state| {
            debug_assert!(state.in_flight > 0);
            state.in_flight = state.in_flight.saturating_sub(1);
        });
    }
}

/// Completes once the connection has had no request in flight for its
/// limit: [`HEADER_READ_TIMEOUT`] before its first request, [`IDLE_TIMEOUT`]
/// after.
async fn idle(mut watched: watch::Receiver<Activity>) {
    loop {
        let state = *watched.borrow_and_update();
        let changed = watched.changed();
        if state.in_flight > 0 {
            if changed.await.is_err() {
                return std::future::pending().await;
            }
            continue;
        }
        let limit = if state.begun == 0 { HEADER_READ_TIMEOUT } else { IDLE_TIMEOUT };
        match tokio::time::timeout(limit, changed).await {
            Err(_) => return,
            Ok(Ok(())) => {}
            Ok(Err(_)) => return std::future::pending().await,
        }
    }
}

/// A response body that keeps its request counted as in flight until it
/// is sent or dropped.
struct TrackedBody {
    body: Body,
    _guard: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_handshake_past_the_bound_drops_the_oldest() {
        let handshakes = Arc::new(PendingHandshakes::default());
        let mut slots: Vec<HandshakeSlot> = (0..HANDSHAKES_MAX).map(|_| handshakes.admit()).collect();
        assert!(
            slots
                .iter_mut()
                .all(|slot| slot.evicted.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Empty))
        );
        let newest = handshakes.admit();
        let oldest = slots.first_mut().expect("a slot");
        assert_eq!(oldest.evicted.try_recv(), Err(oneshot::error::TryRecvError::Closed), "the oldest is told to go");
        assert!(slots[1..].iter_mut().all(|slot| slot.evicted.try_recv() == Err(oneshot::error::TryRecvError::Empty)));
        drop(slots);
        assert_eq!(handshakes.pending.lock().expect("lock").1.len(), 1, "finished handshakes give their place back");
        drop(newest);
        assert!(handshakes.pending.lock().expect("lock").1.is_empty());
    }
}
