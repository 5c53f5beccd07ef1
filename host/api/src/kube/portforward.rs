//! `pods/portforward`: what `kubectl port-forward` and client libraries
//! reach a pod's ports through, in the protocols a kubelet speaks.
//!
//! - kubectl upgrades the request to SPDY/3.1, tunnelled in WebSocket
//!   binary messages (`GET`, subprotocol `SPDY/3.1+portforward.k8s.io`) or
//!   directly (`POST`, `Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version:
//!   portforward.k8s.io`), and opens two streams per forwarded connection,
//!   an error stream and a data stream, each naming the port and the
//!   request they belong to.
//! - WebSocket clients such as kube-rs ask for the ports in the query
//!   (`?ports=80,443`) and speak the channel protocol
//!   (`v4.channel.k8s.io`): binary messages whose first byte is the
//!   channel, two per port (data `2i`, error `2i+1`), each opened by the
//!   server with the port's number (two bytes, little-endian); one
//!   connection per port for the whole session.
//!
//! Each data stream or channel is joined to a connection to its port made
//! by the node agent that runs the pod: here, or on its node over the
//! peer channel. A connection that cannot be made is answered on the
//! error stream or channel, in the kubelet's words.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
pub use engenho_mesh::Conduit;
use engenho_mesh::StreamRefusal;
use engenho_spdy::{SessionConfig, Stream};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::auth::UserInfo;
use super::handlers::ApiState;
use super::rbac::{Attributes, ResourceAttributes};
use super::status::ApiError;

/// The port-forward protocol Kubernetes' streaming servers speak.
pub const PROTOCOL: &str = "portforward.k8s.io";

/// The WebSocket subprotocol that tunnels it.
pub const WEBSOCKET_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// The WebSocket channel protocol.
pub const CHANNEL_PROTOCOL: &str = "v4.channel.k8s.io";

/// Ports one channel-protocol session may forward, at most.
const CHANNEL_PORTS_MAX: usize = 64;

/// Port-forward sessions one API server holds open at once, at most.
pub const SESSIONS_MAX: usize = 256;

/// Longest the second stream of a forwarded connection may be waited for
/// (the kubelet's stream creation timeout).
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest a connection to a pod's port may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a WebSocket client may take to answer the close of a session.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Bytes a WebSocket message or frame may hold, at most.
const WEBSOCKET_MESSAGE_BYTES_MAX: usize = 2 << 20;

/// Bytes the WebSocket tunnel buffers between its messages and the
/// session.
const TUNNEL_BUFFER_BYTES: usize = 128 << 10;

/// Opens connections to the ports of the pods a node runs.
pub trait PodPorts: Send + Sync {
    /// The node whose pods these are.
    fn node(&self) -> &str;

    /// A connection to `port` of `pod`, which this node runs.
    ///
    /// # Errors
    /// The pod does not run here, or nothing answers on the port: the
    /// reason, as the client is told it.
    fn connect(&self, pod: &Value, port: u16) -> BoxFuture<'static, Result<Box<dyn Conduit>, String>>;
}

/// How the client asked to upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    /// SPDY/3.1 in WebSocket binary messages.
    WebSocket,
    /// SPDY/3.1 on the connection itself.
    Spdy,
    /// The WebSocket channel protocol, named (`v4.channel.k8s.io`) or not
    /// (no subprotocol offered).
    Channels {
        /// Whether the client named the subprotocol.
        named: bool,
    },
}

/// Serves `pods/portforward` of pod `name`: checks the request and the
/// pod, answers `101 Switching Protocols`, and forwards the session's
/// streams until the client ends it.
///
/// # Errors
/// Not an upgrade to a protocol spoken here (400), a WebSocket upgrade by
/// a user who may not `create` port-forwards (403), a pod that is not
/// running (400), or too many sessions (429).
pub(super) async fn serve(
    state: &Arc<ApiState>,
    user: &UserInfo,
    namespace: Option<&str>,
    name: &str,
    mut request: Request,
) -> Result<Response, ApiError> {
    if request.version() != http::Version::HTTP_11 {
        return Err(ApiError::bad_request(format!(
            "unable to upgrade: pods/portforward is an HTTP/1.1 upgrade, not one over {:?}",
            request.version()
        )));
    }
    let upgrade = negotiate(request.method(), request.headers())?;
    let ports = match upgrade {
        Upgrade::Channels { .. } => query_ports(request.uri().query().unwrap_or_default())?,
        Upgrade::WebSocket | Upgrade::Spdy => Vec::new(),
    };
    if upgrade != Upgrade::Spdy {
        // A WebSocket upgrade is a GET, which RBAC saw as `get`; opening
        // streams into a pod takes `create`, as for the SPDY upgrade.
        authorize_create(state, user, namespace.unwrap_or_default(), name)?;
    }
    let registry = state.registry();
    let pods = registry.find_plural("", "pods").ok_or_else(|| ApiError::no_route("pods"))?;
    let pod = state.objects.get(pods, namespace, name).await?;
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
    if pod.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty) || phase != "Running" {
        return Err(ApiError::bad_request(format!(
            "unable to forward port because pod {name} is not running. Current status={phase}"
        )));
    }
    let permit = state.port_forwards.clone().try_acquire_owned().map_err(|_| {
        ApiError::too_many_requests(format!("this API server holds {SESSIONS_MAX} port-forward sessions already"))
    })?;
    let response = switching_protocols(upgrade, request.headers())?;
    let upgraded = hyper::upgrade::on(&mut request);
    let state = Arc::downgrade(state);
    tokio::spawn(async move {
        let _permit = permit;
        let io = match upgraded.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(error) => return tracing::debug!(%error, "a port-forward upgrade did not complete"),
        };
        let result = match upgrade {
            Upgrade::Spdy => spdy_session(io, state, pod).await,
            Upgrade::WebSocket => {
                let (session_end, tunnel_end) = tokio::io::duplex(TUNNEL_BUFFER_BYTES);
                let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(websocket_config())).await;
                tokio::join!(spdy_session(session_end, state, pod), websocket_tunnel(socket, tunnel_end)).0
            }
            Upgrade::Channels { .. } => {
                let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(websocket_config())).await;
                channel_session(state, pod, ports, socket).await;
                Ok(())
            }
        };
        if let Err(error) = result {
            tracing::debug!(%error, "a port-forward session ended");
        }
    });
    Ok(response)
}

/// Serves a SPDY/3.1 session over `io`, forwarding its streams to the
/// ports of `pod`.
async fn spdy_session<IO>(io: IO, state: Weak<ApiState>, pod: Value) -> Result<(), engenho_spdy::SessionError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (accepted, streams) = mpsc::channel(16);
    tokio::join!(engenho_spdy::serve(io, SessionConfig::default(), accepted), forward_streams(state, pod, streams)).0
}

fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(WEBSOCKET_MESSAGE_BYTES_MAX))
        .max_frame_size(Some(WEBSOCKET_MESSAGE_BYTES_MAX))
}

/// The ports a channel-protocol request names (`ports=80,443`, or
/// `ports` repeated).
fn query_ports(query: &str) -> Result<Vec<u16>, ApiError> {
    let mut ports = Vec::new();
    for pair in query.split('&') {
        let Some(value) = super::handlers::parse_query(pair).remove("ports") else { continue };
        for text in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match text.parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => return Err(ApiError::bad_request(format!("unable to parse {text:?} as a port"))),
            }
        }
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request("query parameter \"ports\" is required"));
    }
    if ports.len() > CHANNEL_PORTS_MAX {
        return Err(ApiError::bad_request(format!("at most {CHANNEL_PORTS_MAX} ports per request")));
    }
    Ok(ports)
}

/// Which upgrade the request asks for, when it is one spoken here.
fn negotiate(method: &Method, headers: &HeaderMap) -> Result<Upgrade, ApiError> {
    let values = |name: header::HeaderName| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_ascii_lowercase())
            .collect()
    };
    let upgrade = values(header::UPGRADE);
    if *method == Method::GET && upgrade.iter().any(|u| u == "websocket") {
        if headers.get(header::SEC_WEBSOCKET_KEY).is_none() {
            return Err(ApiError::bad_request("unable to upgrade: a WebSocket upgrade without Sec-WebSocket-Key"));
        }
        let offered = values(header::SEC_WEBSOCKET_PROTOCOL);
        if offered.iter().any(|p| p.eq_ignore_ascii_case(WEBSOCKET_PROTOCOL)) {
            return Ok(Upgrade::WebSocket);
        }
        if offered.iter().any(|p| p == CHANNEL_PROTOCOL) {
            return Ok(Upgrade::Channels { named: true });
        }
        if offered.is_empty() {
            return Ok(Upgrade::Channels { named: false });
        }
        return Err(ApiError::bad_request(format!(
            "unable to upgrade: the WebSocket subprotocols offered ({}) include neither {WEBSOCKET_PROTOCOL} nor \
             {CHANNEL_PROTOCOL}",
            offered.join(", ")
        )));
    }
    if *method == Method::POST && upgrade.iter().any(|u| u == "spdy/3.1") {
        let offered = values(header::HeaderName::from_static("x-stream-protocol-version"));
        if !offered.iter().any(|p| p == PROTOCOL) {
            return Err(ApiError::bad_request(format!(
                "unable to upgrade: unable to negotiate protocol: client supports [{}], server supports [{PROTOCOL}]",
                offered.join(" ")
            )));
        }
        return Ok(Upgrade::Spdy);
    }
    Err(ApiError::bad_request(format!(
        "unable to upgrade: pods/portforward is an upgrade to SPDY/3.1 (POST, X-Stream-Protocol-Version: \
         {PROTOCOL}) or to WebSocket (GET, subprotocol {WEBSOCKET_PROTOCOL})"
    )))
}

/// The `101 Switching Protocols` answer to `upgrade`.
fn switching_protocols(upgrade: Upgrade, headers: &HeaderMap) -> Result<Response, ApiError> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let answer = response.headers_mut();
    answer.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    match upgrade {
        Upgrade::WebSocket | Upgrade::Channels { .. } => {
            let key = headers.get(header::SEC_WEBSOCKET_KEY).map(HeaderValue::as_bytes).unwrap_or_default();
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key);
            answer.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            answer.insert(
                header::SEC_WEBSOCKET_ACCEPT,
                HeaderValue::from_str(&accept).map_err(|e| ApiError::internal(e.to_string()))?,
            );
            let subprotocol = match upgrade {
                Upgrade::WebSocket => Some(WEBSOCKET_PROTOCOL),
                Upgrade::Channels { named: true } => Some(CHANNEL_PROTOCOL),
                _ => None,
            };
            if let Some(subprotocol) = subprotocol {
                answer.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(subprotocol));
            }
        }
        Upgrade::Spdy => {
            answer.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
            answer.insert("x-stream-protocol-version", HeaderValue::from_static(PROTOCOL));
        }
    }
    Ok(response)
}

fn authorize_create(state: &ApiState, user: &UserInfo, namespace: &str, name: &str) -> Result<(), ApiError> {
    let attributes = Attributes {
        verb: "create".into(),
        resource: Some(ResourceAttributes {
            group: String::new(),
            resource: "pods".into(),
            subresource: "portforward".into(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        path: String::new(),
    };
    if state.authorizer.authorize(user, &attributes)?.is_none() {
        return Err(ApiError::forbidden_on(
            format!(
                "pods \"{name}\" is forbidden: User \"{}\" cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"{namespace}\"",
                user.name
            ),
            "",
            "pods",
            name,
        ));
    }
    Ok(())
}

/// Carries the session's bytes in WebSocket binary messages, each way,
/// until either side ends.
async fn websocket_tunnel<S>(socket: WebSocketStream<S>, session: DuplexStream)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut source) = socket.split();
    let (mut from_session, mut to_session) = tokio::io::split(session);
    let inbound = async move {
        while let Some(Ok(message)) = source.next().await {
            let bytes = match message {
                Message::Binary(bytes) => bytes,
                Message::Close(_) => break,
                Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            if to_session.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to_session.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0; 32 << 10];
        loop {
            match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    // Once the session has ended and the close is sent, the client has a
    // moment to answer it before the connection goes.
    tokio::pin!(inbound);
    tokio::select! {
        () = &mut inbound => {}
        () = outbound => { let _ = tokio::time::timeout(CLOSE_GRACE, inbound).await; }
    }
}

/// Serves a channel-protocol session: opens each of `ports` of `pod`
/// (announcing it on both its channels), carries each data channel to its
/// connection and back, and ends once the client closes or every
/// connection has ended.
async fn channel_session<S>(state: Weak<ApiState>, pod: Value, ports: Vec<u16>, socket: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = socket.split();
    let (frames, mut outbound) = mpsc::channel::<Message>(32);
    let writer = async move {
        while let Some(message) = outbound.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    };
    let forwarding = async move {
        let mut connections = Vec::with_capacity(ports.len());
        let mut pumps = tokio::task::JoinSet::new();
        for (index, port) in ports.iter().enumerate() {
            let data = u8::try_from(2 * index).unwrap_or(u8::MAX - 1);
            for channel in [data, data + 1] {
                let opening = [&[channel][..], &port.to_le_bytes()].concat();
                let _ = frames.send(Message::binary(opening)).await;
            }
            match connect(&state, &pod, *port).await {
                Ok(connection) => {
                    let (read, write) = tokio::io::split(connection);
                    connections.push(Some(write));
                    pumps.spawn(channel_pump(data, read, frames.clone()));
                }
                Err(message) => {
                    connections.push(None);
                    let message = forwarding_error(&pod, *port, &message);
                    let _ = frames.send(Message::binary([&[data + 1][..], message.as_bytes()].concat())).await;
                }
            }
        }
        let inbound = async {
            while let Some(Ok(message)) = source.next().await {
                let bytes = match message {
                    Message::Binary(bytes) => bytes,
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Some((&channel, data)) = bytes.split_first() else { continue };
                let index = usize::from(channel / 2);
                if channel % 2 == 1 || data.is_empty() {
                    continue;
                }
                if let Some(slot) = connections.get_mut(index)
                    && let Some(connection) = slot
                    && connection.write_all(data).await.is_err()
                {
                    *slot = None;
                }
            }
            for connection in connections.iter_mut().filter_map(Option::as_mut) {
                let _ = connection.shutdown().await;
            }
        };
        tokio::select! {
            () = inbound => {}
            () = async { while pumps.join_next().await.is_some() {} } => {}
        }
        pumps.shutdown().await;
        drop(frames);
    };
    tokio::join!(writer, forwarding);
}

/// Sends what `read` gives on channel `channel` until its end.
async fn channel_pump(channel: u8, mut read: tokio::io::ReadHalf<Box<dyn Conduit>>, frames: mpsc::Sender<Message>) {
    let mut buf = vec![0; 32 << 10];
    loop {
        match read.read(&mut buf[1..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                buf[0] = channel;
                if frames.send(Message::binary(buf[..=n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The kubelet's words for a port that could not be forwarded.
fn forwarding_error(pod: &Value, port: u16, message: &str) -> String {
    let text = |pointer: &str| pod.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (name, uid) = (text("/metadata/name"), text("/metadata/uid"));
    format!("error forwarding port {port} to pod {name}, uid {uid}: {message}")
}

/// The streams of one forwarded connection as they arrive.
struct Pair {
    port: Option<u16>,
    data: Option<Stream>,
    error: Option<Stream>,
    opened: Instant,
}

/// Pairs the session's streams by request and forwards each complete pair
/// to its port of `pod`; a pair whose second stream does not come within
/// [`PAIR_TIMEOUT`] is answered with an error.
async fn forward_streams(state: Weak<ApiState>, pod: Value, mut streams: mpsc::Receiver<Stream>) {
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    loop {
        let next_expiry = pairs.values().map(|pair| pair.opened + PAIR_TIMEOUT).min();
        let expired = async {
            match next_expiry {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            stream = streams.recv() => {
                let Some(stream) = stream else { return };
                let Some(pair) = admit(&mut pairs, stream).await else { continue };
                let (Some(port), Some(data), Some(error)) = (pair.port, pair.data, pair.error) else { continue };
                tokio::spawn(forward(state.clone(), pod.clone(), port, data, error));
            }
            () = expired => {
                let now = Instant::now();
                let late: Vec<String> =
                    pairs.iter().filter(|(_, pair)| pair.opened + PAIR_TIMEOUT <= now).map(|(id, _)| id.clone()).collect();
                for request in late {
                    if let Some(Pair { error: Some(mut error), .. }) = pairs.remove(&request) {
                        let message = format!("timed out waiting for the data stream of request {request}");
                        let _ = error.io.write_all(message.as_bytes()).await;
                        let _ = error.io.shutdown().await;
                    }
                }
            }
        }
    }
}

/// Files `stream` with its pair: the pair, no longer waiting, once it is
/// complete. A stream naming no valid port, or a second stream of one
/// type, ends its pair with the reason on the error stream.
async fn admit(pairs: &mut HashMap<String, Pair>, mut stream: Stream) -> Option<Pair> {
    let kind = stream.headers.get("streamtype").unwrap_or_default().to_owned();
    let request = match stream.headers.get("requestid") {
        Some(id) => id.to_owned(),
        None if kind == "error" => stream.id.to_string(),
        None => stream.id.saturating_sub(2).to_string(),
    };
    let port = stream.headers.get("port").map(|p| p.parse::<u16>().ok().filter(|p| *p > 0));
    let pair = pairs.entry(request.clone()).or_insert_with(|| Pair {
        port: None,
        data: None,
        error: None,
        opened: Instant::now(),
    });
    let problem = match (kind.as_str(), port) {
        (_, None) => Some("the port header is missing".to_owned()),
        (_, Some(None)) => Some(format!("invalid port header {:?}", stream.headers.get("port").unwrap_or_default())),
        ("data", _) if pair.data.is_some() => Some(format!("a second data stream for request {request}")),
        ("error", _) if pair.error.is_some() => Some(format!("a second error stream for request {request}")),
        ("data" | "error", Some(Some(port))) if pair.port.is_some_and(|p| p != port) => {
            Some(format!("the streams of request {request} name different ports"))
        }
        ("data" | "error", _) => None,
        (other, _) => Some(format!("invalid stream type {other:?}")),
    };
    if let Some(problem) = problem {
        let mut pair = pairs.remove(&request)?;
        let error = if kind == "error" { Some(&mut stream) } else { pair.error.as_mut() };
        if let Some(error) = error {
            let _ = error.io.write_all(problem.as_bytes()).await;
            let _ = error.io.shutdown().await;
        }
        return None;
    }
    pair.port = port.flatten();
    match kind.as_str() {
        "data" => pair.data = Some(stream),
        _ => pair.error = Some(stream),
    }
    if pair.data.is_some() && pair.error.is_some() {
        return pairs.remove(&request);
    }
    None
}

/// Joins `data` to `port` of `pod` until both sides are done; a connection
/// that cannot be made is told on `error`, which ends with the pair.
async fn forward(state: Weak<ApiState>, pod: Value, port: u16, mut data: Stream, mut error: Stream) {
    match connect(&state, &pod, port).await {
        Ok(mut connection) => {
            let _ = tokio::io::copy_bidirectional(&mut data.io, &mut connection).await;
        }
        Err(message) => {
            let _ = error.io.write_all(forwarding_error(&pod, port, &message).as_bytes()).await;
        }
    }
    let _ = error.io.shutdown().await;
    let _ = data.io.shutdown().await;
}

/// What a node asks of the node that runs a pod: a port of the pod (its
/// uid, so that a pod of the same name made since is not reached).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ForwardedPort {
    namespace: String,
    name: String,
    uid: String,
    port: u16,
}

/// A connection to `port` of `pod`: made by this node's agent when it runs
/// the pod, else through a tunnel to the node that does.
async fn connect(state: &Weak<ApiState>, pod: &Value, port: u16) -> Result<Box<dyn Conduit>, String> {
    let state = state.upgrade().ok_or("the API server is stopping")?;
    let text = |pointer: &str| pod.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
    let node = text("/spec/nodeName");
    if let Some(ports) = state.pod_ports.get().filter(|ports| ports.node() == node) {
        return ports.connect(pod, port).await;
    }
    let peer_addr = super::logs::node_peer_addr(&state, &node).await?;
    let asked = ForwardedPort {
        namespace: text("/metadata/namespace"),
        name: text("/metadata/name"),
        uid: text("/metadata/uid"),
        port,
    };
    let request = serde_json::to_vec(&asked).map_err(|e| e.to_string())?;
    let tunnel = state.objects.node().open_tunnel(&peer_addr, request).await.map_err(|refusal| refusal.message)?;
    Ok(Box::new(tunnel))
}

/// Serves the pod ports other nodes open on this one, from this node's
/// agent.
pub(super) struct PortTunnels {
    pub(super) pods: Arc<dyn super::logs::PodLookup>,
    pub(super) ports: Arc<dyn PodPorts>,
}

impl engenho_mesh::TunnelHandler for PortTunnels {
    fn open(&self, request: Vec<u8>) -> BoxFuture<'static, Result<Box<dyn Conduit>, StreamRefusal>> {
        let (pods, ports) = (self.pods.clone(), self.ports.clone());
        Box::pin(async move {
            let asked: ForwardedPort = serde_json::from_slice(&request)
                .map_err(|e| StreamRefusal::new(400, format!("a malformed port-forward request: {e}")))?;
            let pod =
                super::logs::asked_pod(pods.as_ref(), &asked.namespace, &asked.name, &asked.uid, ports.node()).await?;
            ports.connect(&pod, asked.port).await.map_err(|message| StreamRefusal::new(400, message))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(header::HeaderName::from_bytes(name.as_bytes()).expect("name"), value.parse().expect("value"));
        }
        map
    }

    #[test]
    fn the_upgrades_kubectl_asks_for_are_understood_and_others_refused() {
        // Goal: kubectl's WebSocket tunnel and its SPDY fallback are
        // accepted as it sends them; anything else gets a 400 that says
        // what is spoken here.
        let websocket = headers(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io"),
        ]);
        assert_eq!(negotiate(&Method::GET, &websocket).expect("websocket"), Upgrade::WebSocket);
        let answer = switching_protocols(Upgrade::WebSocket, &websocket).expect("answer");
        assert_eq!(answer.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(answer.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(answer.headers()["sec-websocket-protocol"], WEBSOCKET_PROTOCOL);

        let spdy = headers(&[("upgrade", "SPDY/3.1"), ("x-stream-protocol-version", "portforward.k8s.io")]);
        assert_eq!(negotiate(&Method::POST, &spdy).expect("spdy"), Upgrade::Spdy);
        let answer = switching_protocols(Upgrade::Spdy, &spdy).expect("answer");
        assert_eq!(answer.headers()["x-stream-protocol-version"], PROTOCOL);

        let channels = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-key", "x"),
            ("sec-websocket-protocol", "v5.channel.k8s.io, v4.channel.k8s.io"),
        ]);
        assert_eq!(negotiate(&Method::GET, &channels).expect("channels"), Upgrade::Channels { named: true });
        let answer = switching_protocols(Upgrade::Channels { named: true }, &channels).expect("answer");
        assert_eq!(answer.headers()["sec-websocket-protocol"], CHANNEL_PROTOCOL);
        let unnamed = headers(&[("upgrade", "websocket"), ("sec-websocket-key", "x")]);
        assert_eq!(negotiate(&Method::GET, &unnamed).expect("channels"), Upgrade::Channels { named: false });
        assert_eq!(query_ports("ports=80%2C443&ports=8080").expect("ports"), vec![80, 443, 8080]);
        for bad in ["", "ports=", "ports=0", "ports=http", "ports=70000"] {
            assert_eq!(query_ports(bad).expect_err("refused").code, 400, "{bad}");
        }

        let other_subprotocol = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-key", "x"),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        let other_version = headers(&[("upgrade", "SPDY/3.1"), ("x-stream-protocol-version", "v4.channel.k8s.io")]);
        for (method, headers) in [
            (Method::GET, other_subprotocol),
            (Method::POST, other_version),
            (Method::GET, HeaderMap::new()),
            (Method::POST, websocket),
        ] {
            let refused = negotiate(&method, &headers).expect_err("refused");
            assert_eq!(refused.code, 400, "{method} {headers:?}");
            assert!(refused.message.contains("unable to upgrade"), "{}", refused.message);
        }
    }
}
