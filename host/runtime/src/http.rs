//! A `wasi:http/proxy` container: the node serves the container's ports
//! (HTTP/1.1) and runs one instance of the component per request, from
//! the component pre-instantiated once, under the container's limits. A
//! request that traps gets a 500 and its trap in the container's log; the
//! container serves on until it is stopped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{Semaphore, oneshot, watch};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::container::{ContainerState, STOPPED_EXIT_CODE};
use super::logs::{ContainerLog, Output};
use super::{Container, ContainerSpec, Exit, ExitReason, Image, PodRuntime, RuntimeError, Stopper};

/// Requests one container handles at once; more are answered 503.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 1024;

/// Longest a request may take to get its response head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What every request of one container shares.
struct Server {
    runtime: Arc<PodRuntime>,
    pre: ProxyPre<ContainerState>,
    spec: ContainerSpec,
    log: ContainerLog,
    in_flight: Arc<Semaphore>,
}

impl PodRuntime {
    /// Serves `image` (a `wasi:http/proxy`) on `addresses` as `spec`
    /// describes, its output to `log`, until stopped.
    ///
    /// # Errors
    /// An address that cannot be listened on; an image of another world.
    pub fn serve(
        self: &Arc<Self>,
        image: &Image,
        spec: &ContainerSpec,
        log: &ContainerLog,
        addresses: &[SocketAddr],
    ) -> Result<Container, RuntimeError> {
        let pre = ProxyPre::new(image.pre.clone()).map_err(|e| RuntimeError::Setup(format!("{e:#}")))?;
        let mut listeners = Vec::with_capacity(addresses.len());
        for address in addresses {
            let listener = std::net::TcpListener::bind(address)
                .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
                .and_then(tokio::net::TcpListener::from_std)
                .map_err(|e| RuntimeError::Setup(format!("listening on {address}: {e}")))?;
            listeners.push(listener);
        }
        let server = Arc::new(Server {
            runtime: self.clone(),
            pre,
            spec: spec.clone(),
            log: log.clone(),
            in_flight: Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT_MAX)),
        });
        let (done, exited) = oneshot::channel();
        let stop = Stopper::default();
        let stopped = stop.clone();
        let (shutdown, closing) = watch::channel(false);
        tokio::spawn(async move {
            for listener in listeners {
                tokio::spawn(accept(server.clone(), listener, closing.clone()));
            }
            stopped.0.notified().await;
            let _ = shutdown.send(true);
            server.log.finish();
            let _ = done.send(Exit { code: STOPPED_EXIT_CODE, reason: ExitReason::Stopped, message: None });
        });
        Ok(Container::new(stop, exited))
    }
}

/// Accepts connections on `listener` until `closing`.
async fn accept(server: Arc<Server>, listener: tokio::net::TcpListener, mut closing: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::debug!(%error, "a pod's listener failed to accept");
                    continue;
                }
            },
            _ = closing.changed() => return,
        };
        let (server, mut closing) = (server.clone(), closing.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.handle(request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = closing.changed() => {}
            }
        });
    }
}

impl Server {
    /// The response to `request`: the component's, or the node's when the
    /// component fails, is busy or takes too long.
    async fn handle(&self, request: hyper::Request<Incoming>) -> hyper::Response<HyperOutgoingBody> {
        let Ok(_turn) = self.in_flight.clone().try_acquire_owned() else {
            return plain(503, "the pod has as many requests in flight as it takes");
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, self.respond(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                self.log.write(Output::Stderr, format!("the request failed: {error:?}\n").as_bytes());
                plain(500, "the component failed to answer the request (see the pod's log)")
            }
            Err(_) => plain(504, "the component did not answer in time"),
        }
    }

    async fn respond(&self, request: hyper::Request<Incoming>) -> wasmtime::Result<hyper::Response<HyperOutgoingBody>> {
        let mut store = self.runtime.store(&self.spec, &self.log)?;
        let (sender, receiver) = oneshot::channel();
        let request = store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = self.pre.clone();
        // The instance runs on its own task, so that it can go on writing
        // the body after the head is answered.
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy.wasi_http_incoming_handler().call_handle(&mut store, request, out).await
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(wasmtime::Error::msg(format!("the component answered the error {code:?}"))),
            Err(_) => match task.await {
                Ok(Ok(())) => Err(wasmtime::Error::msg("the component never set a response")),
                Ok(Err(error)) => Err(error),
                Err(error) => Err(wasmtime::Error::msg(format!("the request's task: {error}"))),
            },
        }
    }
}

/// A plain-text response of the node's own.
fn plain(status: u16, text: &'static str) -> hyper::Response<HyperOutgoingBody> {
    let body =
        http_body_util::Full::new(Bytes::from_static(text.as_bytes())).map_err(|never| match never {}).boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
}
