//! The Kubernetes API server: HTTPS (HTTP/2 and HTTP/1.1) with bearer
//! tokens, discovery, and one generic, registry-driven path for every kind,
//! kept in the replicated store.

mod apply;
mod discovery;
mod handlers;
mod objects;
mod openapi;
mod patch;
pub mod pki;
mod protobuf;
mod resources;
mod scale;
mod selectors;
mod status;
mod table;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use engenho_mesh::Node;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use discovery::KUBERNETES_MINOR;
pub use handlers::REQUEST_BODY_BYTES_MAX;
pub use pki::{Credentials, PkiError};
pub use status::{ApiError, Cause};

use handlers::ApiState;
use objects::{ObjectStore, WriteOptions};
use resources::Registry;

/// Time a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; more wait in the listen backlog.
const CONNECTIONS_MAX: usize = 1024;

/// Times the creation of a default namespace is tried while the cluster
/// cannot take writes.
const DEFAULT_NAMESPACE_ATTEMPTS: u32 = 5;

/// Namespaces every cluster has from its first start.
pub const DEFAULT_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The API server of one node.
#[derive(Clone)]
pub struct KubeApi {
    state: Arc<ApiState>,
}

impl KubeApi {
    /// An API server over `node`, accepting `admin_token`.
    pub fn new(node: Node, admin_token: String) -> Self {
        let state = ApiState {
            registry: Registry::built_in(),
            objects: ObjectStore::new(node),
            admin_token,
            watch_events: Arc::default(),
            openapi: std::sync::OnceLock::new(),
        };
        Self { state: Arc::new(state) }
    }

    /// Creates the default namespaces that do not exist yet.
    ///
    /// # Errors
    /// The store refused or could not take the writes.
    pub async fn ensure_default_namespaces(&self) -> Result<(), ApiError> {
        let namespaces = self.state.registry.find("", "v1", "namespaces").expect("namespaces are built in").clone();
        for name in DEFAULT_NAMESPACES {
            let namespace = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            let mut attempt = 1;
            loop {
                match self.state.objects.create(&namespaces, None, namespace.clone(), &WriteOptions::default()).await {
                    Ok(_) => tracing::info!(namespace = name, "created a default namespace"),
                    Err(error) if error.reason == "AlreadyExists" => {}
                    // A leadership change (as when a restarted node steps
                    // down) leaves the outcome unknown: try again.
                    Err(error) if matches!(error.code, 503 | 504) && attempt < DEFAULT_NAMESPACE_ATTEMPTS => {
                        tracing::info!(namespace = name, %error, "retrying a default namespace");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    Err(error) => return Err(error),
                }
                break;
            }
        }
        Ok(())
    }

    /// The HTTP routes, behind bearer-token authentication.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/version", axum::routing::get(handlers::version))
            .route("/openapi/v3", axum::routing::get(handlers::openapi_index))
            .route("/openapi/v3/{*path}", axum::routing::get(handlers::openapi_document))
            .route("/api", axum::routing::any(handlers::serve))
            .route("/api/{*rest}", axum::routing::any(handlers::serve))
            .route("/apis", axum::routing::any(handlers::serve))
            .route("/apis/{*rest}", axum::routing::any(handlers::serve))
            .fallback(|request: Request| async move { ApiError::no_route(request.uri().path()).into_response() })
            .layer(axum::middleware::from_fn_with_state(self.state.clone(), authenticate))
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route("/livez", axum::routing::get(|| async { "ok" }))
            .route("/readyz", axum::routing::get(|| async { "ok" }))
            .with_state(self.state.clone())
    }

    /// Serves HTTPS on `listener` until `stop` turns true.
    pub async fn serve(
        &self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let acceptor = TlsAcceptor::from(tls);
        let router = self.router();
        let connections = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
        loop {
            let permit = tokio::select! {
                permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                _ = stop.wait_for(|stopped| *stopped) => return,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, "accepting an API connection");
                        continue;
                    }
                },
                _ = stop.wait_for(|stopped| *stopped) => return,
            };
            let _ = stream.set_nodelay(true);
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let _permit = permit;
                serve_connection(stream, peer, acceptor, router).await;
            });
        }
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, router: Router) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let router = router.clone();
        async move {
            use tower::ServiceExt;
            router.oneshot(request.map(axum::body::Body::new)).await
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(error) = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await {
        tracing::debug!(%peer, %error, "API connection ended");
    }
}

/// Lets requests with the admin bearer token through; 401 otherwise.
async fn authenticate(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), state.admin_token.as_bytes()) => next.run(request).await,
        _ => ApiError::unauthorized().into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
