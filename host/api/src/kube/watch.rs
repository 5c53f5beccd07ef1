//! Watches: newline-delimited JSON events (ADDED, MODIFIED, DELETED,
//! BOOKMARK, ERROR) from the store's change stream.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use engenho_store::{Event, EventKind, KeyRange, StoreError, Watcher};
use serde_json::{Value, json};

use super::objects::{Chunk, ObjectStore};
use super::resources::ResourceType;
use super::selectors::Selector;
use super::status::ApiError;
use super::table;

/// Longest a watch stays open when the client names no `timeoutSeconds`.
pub const WATCH_TIMEOUT_MAX: Duration = Duration::from_secs(1800);

/// Interval of bookmarks to clients that allow them.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// Initial ADDED events sent in one chunk.
const INITIAL_EVENTS_PER_CHUNK: usize = 64;

/// What one watch request asked for.
pub struct WatchRequest {
    /// The watch's place among its user's open watches, held while the
    /// watch is open.
    #[expect(dead_code, reason = "held, never read: dropping it with the watch frees the place")]
    pub slot: super::quota::WatchSlot,
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
pub async fn start(
    objects: &ObjectStore,
    shared: &Arc<SharedEvents>,
    request: WatchRequest,
) -> Result<Response, ApiError> {
    let namespace = request.namespace.as_deref();
    let range = KeyRange::prefix(request.t.key_prefix(namespace));
    let (initial, start_revision) = match request.resource_version {
        Some(version) if version > 0 => (Initial::none(objects), version + 1),
        _ => {
            objects.read_barrier().await?;
            let first = objects.list_chunk(&request.t, namespace, 0, None)?;
            let revision = first.revision;
            (Initial::starting_with(objects, first, &request.selector), revision + 1)
        }
    };
    let now = tokio::time::Instant::now();
    let events = EventStream {
        shared: shared.clone(),
        watcher: Watcher::new(objects.store(), range, start_revision),
        initial,
        deadline: now + request.timeout,
        bookmarks: tokio::time::interval_at(now + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL),
        request,
        ended: false,
    };
    // The response body pulls events straight from the store's change
    // stream: no task or channel of its own between the store and the
    // connection.
    let body = Body::from_stream(futures::stream::unfold(events, |mut events| async move {
        let chunk = events.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), events))
    }));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The current objects a watch from "now" sends first as ADDED: read from
/// the store a bounded chunk at a time, all at the revision the watch
/// starts after, so that no watch holds a whole collection.
struct Initial {
    objects: ObjectStore,
    pending: std::vec::IntoIter<Value>,
    /// The revision and the store key after which the next chunk is read.
    next: Option<(i64, String)>,
}

impl Initial {
    /// Nothing to send first (the watch starts after a given version).
    fn none(objects: &ObjectStore) -> Self {
        Self { objects: objects.clone(), pending: Vec::new().into_iter(), next: None }
    }

    /// The selected objects of `first`, and of the chunks after it.
    fn starting_with(objects: &ObjectStore, first: Chunk, selector: &Selector) -> Self {
        let mut initial = Self::none(objects);
        initial.take(first, selector);
        initial
    }

    fn take(&mut self, chunk: Chunk, selector: &Selector) {
        self.next = chunk.last_key.filter(|_| chunk.more).map(|after| (chunk.revision, after));
        let selected: Vec<Value> =
            chunk.items.into_iter().map(|(_, object, _)| object).filter(|o| selector.matches(o)).collect();
        self.pending = selected.into_iter();
    }

    /// Up to [`INITIAL_EVENTS_PER_CHUNK`] more objects; none once all are
    /// sent.
    fn next(&mut self, t: &ResourceType, namespace: Option<&str>, selector: &Selector) -> Result<Vec<Value>, ApiError> {
        let mut objects: Vec<Value> = self.pending.by_ref().take(INITIAL_EVENTS_PER_CHUNK).collect();
        while objects.len() < INITIAL_EVENTS_PER_CHUNK {
            let Some((revision, after)) = self.next.take() else { break };
            let chunk = self.objects.list_chunk(t, namespace, revision, Some(&after))?;
            self.take(chunk, selector);
            objects.extend(self.pending.by_ref().take(INITIAL_EVENTS_PER_CHUNK - objects.len()));
        }
        Ok(objects)
    }
}

/// The events of one watch, as chunks of encoded lines.
struct EventStream {
    shared: Arc<SharedEvents>,
    request: WatchRequest,
    watcher: Watcher,
    initial: Initial,
    deadline: tokio::time::Instant,
    bookmarks: tokio::time::Interval,
    ended: bool,
}

impl EventStream {
    /// The next lines to send; `None` when the watch is over.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        let mut chunk = Vec::new();
        let namespace = self.request.namespace.clone();
        let initial = match self.initial.next(&self.request.t, namespace.as_deref(), &self.request.selector) {
            Ok(initial) => initial,
            Err(error) => {
                self.ended = true;
                return Some(self.encode("ERROR", error.to_status()));
            }
        };
        for object in initial {
            chunk.extend_from_slice(&self.encode("ADDED", object));
        }
        if !chunk.is_empty() {
            return Some(Bytes::from(chunk));
        }
        loop {
            let batches = tokio::select! {
                batches = self.watcher.next() => batches,
                _ = self.bookmarks.tick(), if self.request.bookmarks => {
                    let revision = self.watcher.next_revision() - 1;
                    let bookmark = json!({
                        "kind": self.request.t.kind,
                        "apiVersion": self.request.t.api_version,
                        "metadata": {"resourceVersion": revision.to_string()},
                    });
                    return Some(self.encode("BOOKMARK", bookmark));
                }
                () = tokio::time::sleep_until(self.deadline) => return None,
            };
            let batches = match batches {
                Ok(batches) => batches,
                Err(error) => {
                    let status = match error {
                        StoreError::Compacted { .. } => ApiError::gone(format!("too old resource version: {error}")),
                        other => ApiError::from(other),
                    };
                    self.ended = true;
                    return Some(self.encode("ERROR", status.to_status()));
                }
            };
            for batch in batches {
                for event in &batch.events {
                    let decoded = self.shared.get(event, batch.revision);
                    let Some((kind, object)) = decoded.through(&self.request.selector) else { continue };
                    let t = &self.request.t;
                    if self.request.as_table {
                        let mut object = object.clone();
                        t.present(&mut object);
                        chunk.extend_from_slice(&self.encode(kind, object));
                    } else if object.get("apiVersion").and_then(Value::as_str) == Some(t.api_version) {
                        chunk.extend_from_slice(&decoded.line(kind, object));
                    } else {
                        let mut object = object.clone();
                        t.present(&mut object);
                        chunk.extend_from_slice(&encode_line(kind, &object));
                    }
                }
            }
            if !chunk.is_empty() {
                return Some(Bytes::from(chunk));
            }
        }
    }

    /// One event line, the object as a one-row table if the watch asked.
    fn encode(&self, kind: &str, object: Value) -> Bytes {
        let object = if self.request.as_table && kind != "ERROR" && kind != "BOOKMARK" {
            table::of(&self.request.t, std::slice::from_ref(&object), revision_of(&object), table::Include::Metadata)
        } else {
            object
        };
        encode_line(kind, &object)
    }
}

/// A store event decoded once for every watch of the process: the object
/// before and after (resourceVersion set to the event's revision), and the
/// encoded plain-JSON watch lines, made on first use.
struct Decoded {
    deleted: bool,
    before: Option<Value>,
    after: Option<Value>,
    lines: [std::sync::OnceLock<Bytes>; 3],
}

impl Decoded {
    fn new(event: &Event, revision: i64) -> Self {
        let decode = |value: &[u8]| -> Option<Value> {
            let mut object: Value = serde_json::from_slice(value).ok()?;
            super::objects::metadata_mut(&mut object).insert("resourceVersion".into(), json!(revision.to_string()));
            Some(object)
        };
        let deleted = event.kind == EventKind::Delete;
        Self {
            deleted,
            before: event.prev_kv.as_ref().and_then(|kv| decode(&kv.value)),
            after: if deleted { None } else { decode(&event.kv.value) },
            lines: Default::default(),
        }
    }

    /// The watch event as seen through `selector`: an object that starts
    /// matching is ADDED, one that stops is DELETED.
    fn through(&self, selector: &Selector) -> Option<(&'static str, &Value)> {
        let before = self.before.as_ref().filter(|o| selector.matches(o));
        if self.deleted {
            return before.map(|object| ("DELETED", object));
        }
        let after = self.after.as_ref()?;
        match (before.is_some(), selector.matches(after)) {
            (false, true) => Some(("ADDED", after)),
            (true, true) => Some(("MODIFIED", after)),
            (true, false) => Some(("DELETED", after)),
            (false, false) => None,
        }
    }

    /// The encoded line of the event as `kind`, for watches without tables.
    fn line(&self, kind: &'static str, object: &Value) -> Bytes {
        let slot = match kind {
            "ADDED" => 0,
            "MODIFIED" => 1,
            _ => 2,
        };
        self.lines[slot].get_or_init(|| encode_line(kind, object)).clone()
    }
}

/// Store events decoded recently, shared between the watches of one API
/// server: each event is decoded, and its plain-JSON line encoded, once.
#[derive(Default)]
pub struct SharedEvents {
    recent: Mutex<RecentEvents>,
}

/// A decoded event and the key it changed.
type KeyedEvent = (Vec<u8>, Arc<Decoded>);

/// Decoded events by revision, then by key (a revision has few events).
#[derive(Default)]
struct RecentEvents {
    by_revision: HashMap<i64, Vec<KeyedEvent>>,
    order: VecDeque<i64>,
}

/// Revisions whose decoded events are kept for sharing; a watch further
/// behind decodes its own.
const SHARED_REVISIONS_MAX: usize = 1024;

impl SharedEvents {
    /// The decoded form of `event`, decoding it only if no watch has yet.
    fn get(&self, event: &Event, revision: i64) -> Arc<Decoded> {
        let find = |recent: &RecentEvents| {
            let events = recent.by_revision.get(&revision)?;
            events.iter().find(|(key, _)| *key == event.kv.key).map(|(_, decoded)| decoded.clone())
        };
        if let Some(decoded) = find(&self.recent.lock().expect("shared events lock")) {
            return decoded;
        }
        let decoded = Arc::new(Decoded::new(event, revision));
        let mut recent = self.recent.lock().expect("shared events lock");
        if let Some(raced) = find(&recent) {
            return raced;
        }
        if !recent.by_revision.contains_key(&revision) {
            if recent.order.len() >= SHARED_REVISIONS_MAX
                && let Some(oldest) = recent.order.pop_front()
            {
                recent.by_revision.remove(&oldest);
            }
            recent.order.push_back(revision);
        }
        recent.by_revision.entry(revision).or_default().push((event.kv.key.clone(), decoded.clone()));
        decoded
    }
}

fn encode_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
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
        let kind_of = |event: Event| Decoded::new(&event, 5).through(&selector).map(|e| e.0);
        assert_eq!(kind_of(put(None, &web)), Some("ADDED"));
        assert_eq!(kind_of(put(Some(&web), &web)), Some("MODIFIED"));
        assert_eq!(kind_of(put(Some(&web), &other)), Some("DELETED"));
        assert_eq!(kind_of(put(Some(&other), &web)), Some("ADDED"));
        assert_eq!(kind_of(put(None, &other)), None);
        let delete = Event { kind: EventKind::Delete, kv: KeyValue::default(), prev_kv: Some(kv(&web, 4)) };
        let decoded = Decoded::new(&delete, 6);
        let (kind, object) = decoded.through(&selector).expect("deleted");
        assert_eq!(kind, "DELETED");
        assert_eq!(object["metadata"]["resourceVersion"], "6");
        let line = decoded.line(kind, object);
        assert!(line.starts_with(b"{\"object\":") || line.starts_with(b"{\"type\":"));
        assert!(line.ends_with(b"\n"));
        assert_eq!(decoded.line(kind, object), line, "encoded once, shared after");
    }
}
