//! `pods/log`: a container's log, read by the node agent that runs the
//! pod. The API server parses what `kubectl logs` asks (`container`,
//! `follow`, `previous`, `tailLines`, `sinceSeconds`, `sinceTime`,
//! `timestamps`, `limitBytes`) and streams what the agent answers as
//! `text/plain`; for a pod of another node, it opens the stream on that
//! node over the peer channel, and that node's API server reads it from
//! its agent.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::handlers::ApiState;
use super::status::ApiError;

/// What a reader of a container's log asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// The container (none: the pod's only one).
    pub container: Option<String>,
    /// Whether to go on streaming what the container writes.
    pub follow: bool,
    /// Whether to read the container's previous run.
    pub previous: bool,
    /// Only the last this many lines.
    pub tail_lines: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Each line prefixed with the time it was written.
    pub timestamps: bool,
    /// At most this many bytes.
    pub limit_bytes: Option<usize>,
}

impl LogQuery {
    /// Parses a `pods/log` query, at `now` (for `sinceSeconds`).
    ///
    /// # Errors
    /// A value that is not of its field's type, or both `sinceSeconds`
    /// and `sinceTime`.
    pub fn parse(query: &HashMap<String, String>, now: DateTime<Utc>) -> Result<Self, ApiError> {
        let flag = |name: &str| -> Result<bool, ApiError> {
            match query.get(name).map(String::as_str) {
                None | Some("false") => Ok(false),
                Some("true" | "") => Ok(true),
                Some(other) => Err(ApiError::bad_request(format!("{name}: {other:?} is not a boolean"))),
            }
        };
        let number = |name: &str| -> Result<Option<i64>, ApiError> {
            query
                .get(name)
                .map(|text| {
                    text.parse::<i64>()
                        .map_err(|_| ApiError::bad_request(format!("{name}: {text:?} is not an integer")))
                })
                .transpose()
        };
        let positive = |name: &str| -> Result<Option<usize>, ApiError> {
            match number(name)? {
                Some(n) if n < 0 => Err(ApiError::bad_request(format!("{name}: must be greater than or equal to 0"))),
                Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
                None => Ok(None),
            }
        };
        let since = match (number("sinceSeconds")?, query.get("sinceTime")) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request("at most one of sinceTime or sinceSeconds may be specified"));
            }
            (Some(seconds), None) if seconds < 1 => {
                return Err(ApiError::bad_request("sinceSeconds: must be greater than 0"));
            }
            (Some(seconds), None) => Some(now - k8s_openapi::chrono::Duration::seconds(seconds)),
            (None, Some(time)) => Some(
                DateTime::parse_from_rfc3339(time)
                    .map_err(|e| ApiError::bad_request(format!("sinceTime: {time:?} is not an RFC 3339 time: {e}")))?
                    .with_timezone(&Utc),
            ),
            (None, None) => None,
        };
        let limit_bytes = match positive("limitBytes")? {
            Some(0) => return Err(ApiError::bad_request("limitBytes: must be greater than 0")),
            limit => limit,
        };
        Ok(Self {
            container: query.get("container").filter(|c| !c.is_empty()).cloned(),
            follow: flag("follow")?,
            previous: flag("previous")?,
            tail_lines: positive("tailLines")?,
            since,
            timestamps: flag("timestamps")?,
            limit_bytes,
        })
    }
}

/// The bytes of a log, as they are read.
pub type LogStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Reads the logs of the containers a node runs.
pub trait PodLogs: Send + Sync {
    /// The node whose pods' logs this reads.
    fn node(&self) -> &str;

    /// The log of the container of `pod` that `query` names.
    ///
    /// # Errors
    /// No such container, a container that has not started (or has no
    /// previous run), or a log that cannot be read: the kubelet's words,
    /// which the API server answers as a 400.
    fn open(&self, pod: &Value, query: &LogQuery) -> Result<LogStream, String>;
}

/// What a node asks of the node that runs a pod: the pod (its uid, so
/// that a pod of the same name made since is not read) and the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ForwardedLog {
    namespace: String,
    name: String,
    uid: String,
    container: Option<String>,
    follow: bool,
    previous: bool,
    tail_lines: Option<usize>,
    since: Option<String>,
    timestamps: bool,
    limit_bytes: Option<usize>,
}

impl ForwardedLog {
    fn new(pod: &Value, query: &LogQuery) -> Self {
        let text = |pointer: &str| pod.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
        Self {
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name"),
            uid: text("/metadata/uid"),
            container: query.container.clone(),
            follow: query.follow,
            previous: query.previous,
            tail_lines: query.tail_lines,
            since: query.since.map(|t| t.to_rfc3339()),
            timestamps: query.timestamps,
            limit_bytes: query.limit_bytes,
        }
    }

    fn query(&self) -> LogQuery {
        let since =
            self.since.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc));
        LogQuery {
            container: self.container.clone(),
            follow: self.follow,
            previous: self.previous,
            tail_lines: self.tail_lines,
            since,
            timestamps: self.timestamps,
            limit_bytes: self.limit_bytes,
        }
    }
}

/// The log `query` asks of `pod`, which node `node` runs: read here when
/// this node's agent runs it, else opened on that node over the peer
/// channel.
///
/// # Errors
/// The agent's refusal (400), a node that is not a member or cannot be
/// reached (503).
pub(super) async fn open(state: &ApiState, pod: &Value, node: &str, query: &LogQuery) -> Result<LogStream, ApiError> {
    if let Some(logs) = state.pod_logs.get().filter(|logs| logs.node() == node) {
        return logs.open(pod, query).map_err(ApiError::bad_request);
    }
    let peer_addr = node_peer_addr(state, node).await.map_err(ApiError::unavailable)?;
    let request = serde_json::to_vec(&ForwardedLog::new(pod, query)).map_err(|e| ApiError::internal(e.to_string()))?;
    let stream = state.objects.node().open_stream(&peer_addr, request).await.map_err(|refusal| {
        let mut error = ApiError::unavailable(refusal.message.clone());
        if refusal.code == 400 {
            error = ApiError::bad_request(refusal.message);
        }
        error
    })?;
    Ok(stream.map(|chunk| chunk.map_err(std::io::Error::other)).boxed())
}

/// How a node's stream and tunnel handlers read the pod another node asks
/// about: from this node's store, or (on a worker) through the API as the
/// node.
pub(super) trait PodLookup: Send + Sync + 'static {
    /// Pod `namespace/name` as stored now.
    fn pod(&self, namespace: &str, name: &str) -> BoxFuture<'static, Result<Value, engenho_mesh::StreamRefusal>>;
}

/// Reads pods from this node's store.
pub(super) struct StoredPods(pub(super) Weak<ApiState>);

impl PodLookup for StoredPods {
    fn pod(&self, namespace: &str, name: &str) -> BoxFuture<'static, Result<Value, engenho_mesh::StreamRefusal>> {
        use engenho_mesh::StreamRefusal;
        let (state, namespace, name) = (self.0.clone(), namespace.to_owned(), name.to_owned());
        Box::pin(async move {
            let state: Arc<ApiState> =
                state.upgrade().ok_or_else(|| StreamRefusal::new(503, "the node is stopping"))?;
            let registry = state.registry();
            let pods =
                registry.find_plural("", "pods").ok_or_else(|| StreamRefusal::new(503, "pods are not served"))?;
            state.objects.get(pods, Some(&namespace), &name).await.map_err(|e| StreamRefusal::new(e.code, e.message))
        })
    }
}

/// Reads pods through the cluster's API (a worker's agent, as its node).
pub(super) struct ApiPods(pub(super) super::client::ApiClient);

impl PodLookup for ApiPods {
    fn pod(&self, namespace: &str, name: &str) -> BoxFuture<'static, Result<Value, engenho_mesh::StreamRefusal>> {
        use engenho_mesh::StreamRefusal;
        let (client, path) = (self.0.clone(), format!("/api/v1/namespaces/{namespace}/pods/{name}"));
        Box::pin(async move {
            let body = client
                .send(axum::http::Method::GET, &path, "application/json", Vec::new())
                .await
                .map_err(|refused| StreamRefusal::new(refused.code, refused.message))?;
            serde_json::from_slice(&body)
                .map_err(|e| StreamRefusal::new(503, format!("a pod that does not decode: {e}")))
        })
    }
}

/// Serves the logs other nodes open on this one, from this node's agent.
pub(super) struct LogStreams {
    pub(super) pods: Arc<dyn PodLookup>,
    pub(super) logs: Arc<dyn PodLogs>,
}

impl engenho_mesh::StreamHandler for LogStreams {
    fn open(
        &self,
        request: Vec<u8>,
    ) -> BoxFuture<'static, Result<engenho_mesh::ByteStream, engenho_mesh::StreamRefusal>> {
        let (pods, logs) = (self.pods.clone(), self.logs.clone());
        Box::pin(async move {
            use engenho_mesh::StreamRefusal;
            let asked: ForwardedLog = serde_json::from_slice(&request)
                .map_err(|e| StreamRefusal::new(400, format!("a malformed log request: {e}")))?;
            let pod = asked_pod(pods.as_ref(), &asked.namespace, &asked.name, &asked.uid, logs.node()).await?;
            let stream = logs.open(&pod, &asked.query()).map_err(|message| StreamRefusal::new(400, message))?;
            Ok(stream.map(|chunk| chunk.map_err(|e| e.to_string())).boxed())
        })
    }
}

/// Pod `namespace/name` as stored, when it is still the pod `uid` another
/// node asked about (not one of the same name made since) and runs on
/// node `here`.
///
/// # Errors
/// No such pod (404), another pod of that name (404), a pod of another
/// node (400), or pods not readable (503).
pub(super) async fn asked_pod(
    pods: &dyn PodLookup,
    namespace: &str,
    name: &str,
    uid: &str,
    here: &str,
) -> Result<Value, engenho_mesh::StreamRefusal> {
    use engenho_mesh::StreamRefusal;
    let pod = pods.pod(namespace, name).await?;
    if pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
        return Err(StreamRefusal::new(404, format!("pod {name} is not the pod asked for")));
    }
    if pod.pointer("/spec/nodeName").and_then(Value::as_str) != Some(here) {
        return Err(StreamRefusal::new(400, format!("pod {name} does not run on this node")));
    }
    Ok(pod)
}

/// The peer address of node `node`, where its pods' logs and ports are
/// opened: a member's from the raft membership, a worker's from its Node
/// (its InternalIP and `daemonEndpoints.kubeletEndpoint.Port`).
///
/// # Errors
/// A node that is neither a member nor has a Node naming its address.
pub(super) async fn node_peer_addr(state: &ApiState, node: &str) -> Result<String, String> {
    let mesh = state.objects.node();
    if let Some(member) = mesh.members().into_iter().find(|m| m.info.name == node) {
        return Ok(member.info.peer_addr);
    }
    let registry = state.registry();
    let nodes = registry.find_plural("", "nodes").ok_or("nodes are not served")?;
    let object = state.objects.get(nodes, None, node).await.map_err(|_| {
        format!(
            "node \"{node}\" is neither a member of the cluster nor a registered Node, so its pods cannot be reached"
        )
    })?;
    let address = object
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|addresses| {
            addresses.iter().find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))?.get("address")
        })
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
    let port = object.pointer("/status/daemonEndpoints/kubeletEndpoint/Port").and_then(Value::as_u64);
    match (address, port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0)) {
        (Some(ip), Some(port)) => Ok(std::net::SocketAddr::new(ip, port).to_string()),
        _ => Err(format!(
            "node \"{node}\" is not a member of the cluster and its Node reports no InternalIP and agent port, so its \
             pods cannot be reached"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<LogQuery, ApiError> {
        let query = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        LogQuery::parse(&query, DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z").expect("time").with_timezone(&Utc))
    }

    #[test]
    fn the_query_kubectl_sends_is_understood() {
        // Goal: every option of kubectl logs, and precise refusals.
        let query = parse(&[
            ("container", "app"),
            ("follow", "true"),
            ("previous", "true"),
            ("tailLines", "5"),
            ("sinceSeconds", "60"),
            ("timestamps", "true"),
            ("limitBytes", "100"),
        ])
        .expect("parses");
        assert_eq!(query.container.as_deref(), Some("app"));
        assert!(query.follow && query.previous && query.timestamps);
        assert_eq!((query.tail_lines, query.limit_bytes), (Some(5), Some(100)));
        assert_eq!(query.since.map(|t| t.to_rfc3339()), Some("2026-12-06T11:59:00+00:00".to_owned()));
        assert_eq!(parse(&[]).expect("empty"), LogQuery::default());
        let since = parse(&[("sinceTime", "2026-12-06T10:00:00Z")]).expect("sinceTime");
        assert_eq!(since.since.map(|t| t.to_rfc3339()), Some("2026-12-06T10:00:00+00:00".to_owned()));
        for bad in [
            &[("tailLines", "x")][..],
            &[("tailLines", "-1")],
            &[("follow", "maybe")],
            &[("sinceSeconds", "5"), ("sinceTime", "2026-12-06T10:00:00Z")],
            &[("sinceSeconds", "0")],
            &[("limitBytes", "0")],
        ] {
            assert_eq!(parse(bad).expect_err("refused").code, 400, "{bad:?}");
        }
    }
}
