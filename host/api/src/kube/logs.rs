//! `pods/log`: a container's log, read by the node agent that runs the
//! pod. The API server parses what `kubectl logs` asks (`container`,
//! `follow`, `previous`, `tailLines`, `sinceSeconds`, `sinceTime`,
//! `timestamps`, `limitBytes`) and streams what the agent answers as
//! `text/plain`.

use std::collections::HashMap;

use bytes::Bytes;
use futures::stream::BoxStream;
use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::Value;

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
