//! Watches: newline-delimited JSON events (ADDED, MODIFIED, DELETED,
//! BOOKMARK, ERROR) from the store's change stream.

use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use engenho_store::{Event, EventKind, KeyRange, StoreError, Watcher};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::objects::ObjectStore;
use super::resources::ResourceType;
use super::selectors::Selector;
use super::status::ApiError;
use super::table;

/// Longest a watch stays open when the client names no `timeoutSeconds`.
pub const WATCH_TIMEOUT_MAX: Duration = Duration::from_secs(1800);

/// Interval of bookmarks to clients that allow them.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// Encoded events buffered for a slow client before the watch waits for it.
const WATCH_BUFFER_EVENTS: usize = 256;

/// What one watch request asked for.
pub struct WatchRequest {
    /// The kind watched.
    pub t: ResourceType,
    /// The namespace, if the watch is namespaced.
    pub namespace: Option<String>,
    /// Which objects.
    pub selector: Selector,
    /// The `resourceVersion` to start after; `None` or 0: send the current
    /// objects as ADDED first.
    pub resource_version: Option<i64>,
    /// Whether BOOKMARK events may be sent.
    pub bookmarks: bool,
    /// How long the watch stays open.
    pub timeout: Duration,
    /// Whether each object goes as a one-row `Table`.
    pub as_table: bool,
}

/// Starts a watch and answers with its event stream.
///
/// # Errors
/// Store failures reading the initial objects.
pub async fn start(objects: &ObjectStore, request: WatchRequest) -> Result<Response, ApiError> {
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(WATCH_BUFFER_EVENTS);
    let namespace = request.namespace.as_deref();
    let range = KeyRange::prefix(request.t.key_prefix(namespace));
    let (initial, start_revision) = match request.resource_version {
        Some(version) if version > 0 => (Vec::new(), version + 1),
        _ => {
            let listed = objects.list(&request.t, namespace).await?;
            let items: Vec<Value> = listed.items.into_iter().filter(|o| request.selector.matches(o)).collect();
            (items, listed.revision + 1)
        }
    };
    let watcher = Watcher::new(objects.store(), range, start_revision);
    tokio::spawn(stream_events(request, initial, watcher, sender));
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn stream_events(
    request: WatchRequest,
    initial: Vec<Value>,
    mut watcher: Watcher,
    sender: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let send = |kind: &str, object: Value| {
        let object = if request.as_table && kind != "ERROR" && kind != "BOOKMARK" {
            table::of(&request.t, std::slice::from_ref(&object), revision_of(&object), table::Include::Metadata)
        } else {
            object
        };
        let mut line = serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
        line.push(b'\n');
        sender.send(Ok(Bytes::from(line)))
    };
    for object in initial {
        if send("ADDED", object).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::Instant::now() + request.timeout;
    let mut bookmarks = tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL);
    loop {
        let batches = tokio::select! {
            batches = watcher.next() => batches,
            _ = bookmarks.tick(), if request.bookmarks => {
                let revision = watcher.next_revision() - 1;
                let bookmark = json!({
                    "kind": request.t.kind,
                    "apiVersion": request.t.api_version,
                    "metadata": {"resourceVersion": revision.to_string()},
                });
                if send("BOOKMARK", bookmark).await.is_err() {
                    return;
                }
                continue;
            }
            () = tokio::time::sleep_until(deadline) => return,
            () = sender.closed() => return,
        };
        let batches = match batches {
            Ok(batches) => batches,
            Err(error) => {
                let status = match error {
                    StoreError::Compacted { .. } => ApiError::gone(format!("too old resource version: {error}")),
                    other => ApiError::from(other),
                };
                let _ = send("ERROR", status.to_status()).await;
                return;
            }
        };
        for batch in batches {
            for event in batch.events {
                if let Some((kind, object)) = translate(&request.selector, event, batch.revision)
                    && send(kind, object).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

/// The watch event for a store event, as seen through `selector`: an
/// object that starts matching is ADDED, one that stops is DELETED.
fn translate(selector: &Selector, event: Event, revision: i64) -> Option<(&'static str, Value)> {
    let decode = |value: &[u8], version: i64| -> Option<Value> {
        let mut object: Value = serde_json::from_slice(value).ok()?;
        super::objects::metadata_mut(&mut object).insert("resourceVersion".into(), json!(version.to_string()));
        Some(object)
    };
    let before = event.prev_kv.as_ref().and_then(|kv| decode(&kv.value, revision)).filter(|o| selector.matches(o));
    match event.kind {
        EventKind::Put => {
            let after = decode(&event.kv.value, revision)?;
            match (before.is_some(), selector.matches(&after)) {
                (false, true) => Some(("ADDED", after)),
                (true, true) => Some(("MODIFIED", after)),
                (true, false) => Some(("DELETED", after)),
                (false, false) => None,
            }
        }
        EventKind::Delete => before.map(|object| ("DELETED", object)),
    }
}

fn revision_of(object: &Value) -> i64 {
    object.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resources::Registry;
    use engenho_store::KeyValue;

    fn kv(value: &Value, revision: i64) -> KeyValue {
        KeyValue {
            key: b"k".to_vec(),
            create_revision: 1,
            mod_revision: revision,
            version: 1,
            value: serde_json::to_vec(value).expect("json"),
            lease: 0,
        }
    }

    #[test]
    fn selectors_turn_modifications_into_arrivals_and_departures() {
        let registry = Registry::built_in();
        let pods = registry.find("", "v1", "pods").expect("pods");
        let selector = Selector::parse(pods, Some("app=web"), None).expect("selector");
        let web = json!({"metadata": {"name": "p", "labels": {"app": "web"}}});
        let other = json!({"metadata": {"name": "p", "labels": {"app": "db"}}});
        let put = |before: Option<&Value>, after: &Value| Event {
            kind: EventKind::Put,
            kv: kv(after, 5),
            prev_kv: before.map(|b| kv(b, 4)),
        };
        assert_eq!(translate(&selector, put(None, &web), 5).map(|e| e.0), Some("ADDED"));
        assert_eq!(translate(&selector, put(Some(&web), &web), 5).map(|e| e.0), Some("MODIFIED"));
        assert_eq!(translate(&selector, put(Some(&web), &other), 5).map(|e| e.0), Some("DELETED"));
        assert_eq!(translate(&selector, put(Some(&other), &web), 5).map(|e| e.0), Some("ADDED"));
        assert!(translate(&selector, put(None, &other), 5).is_none());
        let delete = Event { kind: EventKind::Delete, kv: KeyValue::default(), prev_kv: Some(kv(&web, 4)) };
        let (kind, object) = translate(&selector, delete, 6).expect("deleted");
        assert_eq!(kind, "DELETED");
        assert_eq!(object["metadata"]["resourceVersion"], "6");
    }
}
