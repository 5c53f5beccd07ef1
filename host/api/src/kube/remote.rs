//! The way to the cluster's API from a node that holds no replica of the
//! store (a worker): requests go over HTTP/2 with mutual TLS to one of the
//! control plane's API servers, as this node (its node certificate names
//! it `system:node:<name>`), so they pass the same authentication, RBAC,
//! admission and validation as any client's. One connection carries every
//! request; when its server stops answering, the next request connects to
//! the next control-plane server that answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Uri};
use axum::response::Response;
use bytes::Bytes;
use engenho_control::{Listed, RemoteError, RemoteSource, Seen};
use engenho_pki::{HTTP2_ALPN, Identity, PkiError};
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use tokio_rustls::TlsConnector;

use super::client::{ApiClient, Refused, collection_path};
use super::resources::{Registry, ResourceType};

/// Longest a connection to one API server takes, TLS handshake included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest a request waits for its response to begin (a watch's body then
/// streams for as long as the watch lasts).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often an idle connection is pinged, and how long a ping may go
/// unanswered before the connection is taken for dead.
const PING_INTERVAL: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Objects a list asks for per page.
const LIST_PAGE: usize = 500;

/// How long a watch asks the server to stay open; it is then resumed from
/// the last revision seen.
const WATCH_SECONDS: u64 = 300;

/// How long a watch may go without an event or bookmark (the server sends
/// a bookmark every minute) before it is taken for dead.
const WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(150);

/// Longest line of a watch: an object at the store's limit, with room for
/// its envelope.
const WATCH_LINE_BYTES_MAX: usize = 4 << 20;

/// The control plane's API server addresses as this node knows them now,
/// the preferred first.
pub type ApiServers = Arc<dyn Fn() -> Vec<SocketAddr> + Send + Sync>;

/// Requests to the control plane's API servers, as this node.
pub struct RemoteApi {
    connector: TlsConnector,
    servers: ApiServers,
    connection: tokio::sync::Mutex<Option<Connection>>,
}

/// The connection requests go over now.
struct Connection {
    server: SocketAddr,
    sender: http2::SendRequest<Body>,
}

impl RemoteApi {
    /// A client presenting `identity` (a node certificate), trusting API
    /// servers whose certificate `ca` issued, reaching whichever of
    /// `servers` answers.
    ///
    /// # Errors
    /// The identity or CA is unusable.
    pub fn new(identity: &Identity, ca: &CertificateDer<'static>, servers: ApiServers) -> Result<Self, PkiError> {
        let config = engenho_pki::mutual_client_config(identity, ca, &[HTTP2_ALPN])?;
        Ok(Self { connector: TlsConnector::from(config), servers, connection: tokio::sync::Mutex::default() })
    }

    /// Sends `request` (its URI a path) to the API server this node is
    /// connected to, connecting first when it is not. A request is sent
    /// again on another connection only if the first never took it.
    pub(super) async fn send(&self, request: Request<Body>) -> Result<Response, Refused> {
        let (server, mut sender) = self.sender().await?;
        if sender.ready().await.is_err() {
            self.forget(server).await;
            let (_, fresh) = self.sender().await?;
            sender = fresh;
        }
        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = Uri::try_from(format!("https://{server}{path}"))
            .map_err(|e| Refused::internal(format!("the request's path {path}: {e}")))?;
        let sent = tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(Request::from_parts(parts, body))).await;
        match sent {
            Ok(Ok(response)) => Ok(response.map(Body::new)),
            Ok(Err(error)) => {
                self.forget(server).await;
                Err(unreachable(server, &error.to_string()))
            }
            Err(_) => {
                self.forget(server).await;
                Err(unreachable(server, &format!("no answer within {RESPONSE_TIMEOUT:?}")))
            }
        }
    }

    /// The connection to use: the current one while its server is still
    /// a control-plane server and the connection is open, else a new one
    /// to the first server that answers.
    async fn sender(&self) -> Result<(SocketAddr, http2::SendRequest<Body>), Refused> {
        let mut connection = self.connection.lock().await;
        let servers = (self.servers)();
        if let Some(current) = connection.as_ref()
            && !current.sender.is_closed()
            && servers.contains(&current.server)
        {
            return Ok((current.server, current.sender.clone()));
        }
        *connection = None;
        let mut failures = Vec::new();
        for server in servers {
            match self.connect(server).await {
                Ok(sender) => {
                    tracing::info!(%server, "reaching the cluster's API through {server}");
                    *connection = Some(Connection { server, sender: sender.clone() });
                    return Ok((server, sender));
                }
                Err(reason) => failures.push(format!("{server}: {reason}")),
            }
        }
        let reason = match failures.is_empty() {
            true => "no control-plane API server is known yet".to_owned(),
            false => failures.join("; "),
        };
        Err(Refused { code: 503, reason: "ServiceUnavailable".into(), message: format!("the control plane: {reason}") })
    }

    async fn connect(&self, server: SocketAddr) -> Result<http2::SendRequest<Body>, String> {
        let tls = engenho_pki::dial_tls(&self.connector, &server.to_string(), CONNECT_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new()).keep_alive_interval(PING_INTERVAL).keep_alive_timeout(PING_TIMEOUT);
        builder.keep_alive_while_idle(true);
        let (sender, connection) = tokio::time::timeout(CONNECT_TIMEOUT, builder.handshake(TokioIo::new(tls)))
            .await
            .map_err(|_| format!("no HTTP/2 handshake within {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%server, %error, "the connection to the API server ended");
            }
        });
        Ok(sender)
    }

    /// Drops the connection to `server`, if it is the current one.
    async fn forget(&self, server: SocketAddr) {
        let mut connection = self.connection.lock().await;
        if connection.as_ref().is_some_and(|c| c.server == server) {
            *connection = None;
        }
    }
}

fn unreachable(server: SocketAddr, reason: &str) -> Refused {
    Refused {
        code: 503,
        reason: "ServiceUnavailable".into(),
        message: format!("the API server at {server} did not answer: {reason}"),
    }
}

/// A list and watch of one built-in kind served by the control plane's API
/// servers: what a worker's informers read.
pub struct ApiSource {
    client: ApiClient,
    kind: ResourceType,
    selector: String,
}

impl ApiSource {
    /// The objects of built-in kind `group`/`plural` that `field_selector`
    /// (e.g. `spec.nodeName=w1`; empty for all) admits, read through
    /// `client`; `None` for a kind that is not built in.
    pub fn new(client: ApiClient, group: &str, plural: &str, field_selector: &str) -> Option<Self> {
        let kind = Registry::built_in().find_plural(group, plural)?.clone();
        let selector = match field_selector.is_empty() {
            true => String::new(),
            false => format!("&fieldSelector={}", percent_encode(field_selector)),
        };
        Some(Self { client, kind, selector })
    }

    fn listed(&self, mut object: serde_json::Value) -> Result<Listed, RemoteError> {
        let field = |pointer: &str| object.pointer(pointer).and_then(serde_json::Value::as_str).map(str::to_owned);
        let name = field("/metadata/name").ok_or_else(|| failed("an object without a name"))?;
        let namespace = field("/metadata/namespace");
        let revision = revision_of(&object, "/metadata/resourceVersion")?;
        object["apiVersion"] = self.kind.api_version.into();
        object["kind"] = self.kind.kind.into();
        Ok(Listed { key: self.kind.key(namespace.as_deref(), &name), revision, object })
    }

    async fn list_all(&self) -> Result<(i64, Vec<Listed>), RemoteError> {
        let collection = collection_path(&self.kind, None);
        let (mut objects, mut next) = (Vec::new(), String::new());
        loop {
            let path = format!("{collection}?limit={LIST_PAGE}{}{next}", self.selector);
            let body = self.client.send(axum::http::Method::GET, &path, "application/json", Vec::new()).await;
            let body = body.map_err(|refused| match refused.code {
                410 => RemoteError::Gone,
                _ => failed(&format!("listing {}: {refused}", self.kind.plural)),
            })?;
            let mut list: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| failed(&format!("a list that does not decode: {e}")))?;
            let revision = revision_of(&list, "/metadata/resourceVersion")?;
            let items = match list.get_mut("items").map(serde_json::Value::take) {
                Some(serde_json::Value::Array(items)) => items,
                _ => Vec::new(),
            };
            for item in items {
                objects.push(self.listed(item)?);
            }
            match list.pointer("/metadata/continue").and_then(serde_json::Value::as_str).filter(|c| !c.is_empty()) {
                Some(token) => next = format!("&continue={}", percent_encode(token)),
                None => return Ok((revision, objects)),
            }
        }
    }

    async fn open_watch(&self, revision: i64) -> Result<Body, RemoteError> {
        let path = format!(
            "{}?watch=true&allowWatchBookmarks=true&resourceVersion={revision}&timeoutSeconds={WATCH_SECONDS}{}",
            collection_path(&self.kind, None),
            self.selector
        );
        let response = self
            .client
            .open(axum::http::Method::GET, &path, "application/json", Vec::new())
            .await
            .map_err(|refused| failed(&refused.to_string()))?;
        match response.status().as_u16() {
            200 => Ok(response.into_body()),
            410 => Err(RemoteError::Gone),
            code => Err(failed(&format!("watching {} answered {code}", self.kind.plural))),
        }
    }

    /// One line of a watch, read.
    fn seen(&self, line: &[u8]) -> Result<Seen, RemoteError> {
        let mut event: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| failed(&format!("a watch event that does not decode: {e}")))?;
        let object = event.get_mut("object").map(serde_json::Value::take).unwrap_or_default();
        match event.get("type").and_then(serde_json::Value::as_str) {
            Some("ADDED" | "MODIFIED") => Ok(Seen::Put(self.listed(object)?)),
            Some("DELETED") => Ok(Seen::Delete(self.listed(object)?)),
            Some("BOOKMARK") => Ok(Seen::Progress(revision_of(&object, "/metadata/resourceVersion")?)),
            Some("ERROR") if object.get("code").and_then(serde_json::Value::as_u64) == Some(410) => {
                Err(RemoteError::Gone)
            }
            other => Err(failed(&format!("watch event {other:?}: {object}"))),
        }
    }
}

impl RemoteSource for ApiSource {
    fn list(&self) -> BoxFuture<'_, Result<(i64, Vec<Listed>), RemoteError>> {
        Box::pin(self.list_all())
    }

    fn watch(&self, revision: i64) -> BoxStream<'_, Result<Seen, RemoteError>> {
        enum Watching {
            Opening,
            Reading(futures::stream::BoxStream<'static, Result<Bytes, axum::Error>>, Vec<u8>),
            Over,
        }
        futures::stream::unfold(Watching::Opening, move |mut watching| async move {
            loop {
                match watching {
                    Watching::Over => return None,
                    Watching::Opening => match self.open_watch(revision).await {
                        Ok(body) => watching = Watching::Reading(body.into_data_stream().boxed(), Vec::new()),
                        Err(error) => return Some((Err(error), Watching::Over)),
                    },
                    Watching::Reading(mut body, mut buffer) => {
                        if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = buffer.drain(..=end).collect();
                            if line.iter().all(u8::is_ascii_whitespace) {
                                watching = Watching::Reading(body, buffer);
                                continue;
                            }
                            let seen = self.seen(&line);
                            let next = if seen.is_ok() { Watching::Reading(body, buffer) } else { Watching::Over };
                            return Some((seen, next));
                        }
                        if buffer.len() > WATCH_LINE_BYTES_MAX {
                            return Some((Err(failed("a watch event past the size limit")), Watching::Over));
                        }
                        match tokio::time::timeout(WATCH_IDLE_TIMEOUT, body.next()).await {
                            Ok(Some(Ok(chunk))) => {
                                buffer.extend_from_slice(&chunk);
                                watching = Watching::Reading(body, buffer);
                            }
                            Ok(Some(Err(error))) => {
                                return Some((Err(failed(&format!("the watch broke: {error}"))), Watching::Over));
                            }
                            Ok(None) => return None,
                            Err(_) => {
                                let idle = format!("no event or bookmark within {WATCH_IDLE_TIMEOUT:?}");
                                return Some((Err(failed(&idle)), Watching::Over));
                            }
                        }
                    }
                }
            }
        })
        .boxed()
    }
}

fn failed(reason: &str) -> RemoteError {
    RemoteError::Failed(reason.to_owned())
}

/// The revision in `object` at `pointer` (a `resourceVersion`).
fn revision_of(object: &serde_json::Value, pointer: &str) -> Result<i64, RemoteError> {
    object
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| failed(&format!("no resourceVersion at {pointer}")))
}

/// `text` with everything but unreserved URL characters percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a worker serves on its peer port: the logs and ports of its pods,
/// each pod asked about read through the API as the worker's node.
pub fn agent_port(
    client: ApiClient,
    logs: Arc<dyn super::logs::PodLogs>,
    ports: Arc<dyn super::portforward::PodPorts>,
) -> engenho_mesh::AgentPort {
    let pods: Arc<dyn super::logs::PodLookup> = Arc::new(super::logs::ApiPods(client));
    let streams = super::logs::LogStreams { pods: pods.clone(), logs };
    let tunnels = super::portforward::PortTunnels { pods, ports };
    engenho_mesh::AgentPort::new(Arc::new(streams), Arc::new(tunnels))
}
