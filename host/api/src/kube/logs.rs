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
    let mesh = state.objects.node();
    let member = mesh.members().into_iter().find(|m| m.info.name == node).ok_or_else(|| {
        ApiError::unavailable(format!(
            "node \"{node}\" is not a member of the cluster, so its pods' logs cannot be read"
        ))
    })?;
    let request = serde_json::to_vec(&ForwardedLog::new(pod, query)).map_err(|e| ApiError::internal(e.to_string()))?;
    let stream = mesh.open_stream(&member.info.peer_addr, request).await.map_err(|refusal| {
        let mut error = ApiError::unavailable(refusal.message.clone());
        if refusal.code == 400 {
            error = ApiError::bad_request(refusal.message);
        }
        error
    })?;
    Ok(stream.map(|chunk| chunk.map_err(std::io::Error::other)).boxed())
}

/// Serves the logs other nodes open on this one, from this node's agent.
pub(super) struct LogStreams {
    pub(super) state: Weak<ApiState>,
}

impl engenho_mesh::StreamHandler for LogStreams {
    fn open(
        &self,
        request: Vec<u8>,
    ) -> BoxFuture<'static, Result<engenho_mesh::ByteStream, engenho_mesh::StreamRefusal>> {
        let state = self.state.clone();
        Box::pin(async move {
            use engenho_mesh::StreamRefusal;
            let state: Arc<ApiState> =
                state.upgrade().ok_or_else(|| StreamRefusal::new(503, "the node is stopping"))?;
            let asked: ForwardedLog = serde_json::from_slice(&request)
                .map_err(|e| StreamRefusal::new(400, format!("a malformed log request: {e}")))?;
            let (pod, node) = asked_pod(&state, &asked.namespace, &asked.name, &asked.uid).await?;
            let logs = state
                .pod_logs
                .get()
                .filter(|logs| logs.node() == node)
                .ok_or_else(|| StreamRefusal::new(400, format!("pod {} does not run on this node", asked.name)))?;
            let stream = logs.open(&pod, &asked.query()).map_err(|message| StreamRefusal::new(400, message))?;
            Ok(stream.map(|chunk| chunk.map_err(|e| e.to_string())).boxed())
        })
    }
}

/// Pod `namespace/name` as stored and the node it is bound to, when it is
/// still the pod `uid` another node asked about (not one of the same name
/// made since).
///
/// # Errors
/// No such pod (404), another pod of that name (404), or pods not served.
pub(super) async fn asked_pod(
    state: &ApiState,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<(Value, String), engenho_mesh::StreamRefusal> {
    use engenho_mesh::StreamRefusal;
    let registry = state.registry();
    let pods = registry.find_plural("", "pods").ok_or_else(|| StreamRefusal::new(503, "pods are not served"))?;
    let pod =
        state.objects.get(pods, Some(namespace), name).await.map_err(|e| StreamRefusal::new(e.code, e.message))?;
    if pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
        return Err(StreamRefusal::new(404, format!("pod {name} is not the pod asked for")));
    }
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok((pod, node))
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
