//! Events a control loop records about objects: written in the background
//! as core/v1 Events through the loop's client, a repeat of one recorded
//! before (same object, type, reason and message) raising its count and
//! last time instead of adding another, as Kubernetes' event recorder does.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::super::client::{ApiClient, PatchType};
use super::super::objects::now;
use super::super::resources::SharedRegistry;

/// Events waiting to be written, at most; past this, new ones are dropped
/// (as Kubernetes' broadcaster drops them) and counted in the log.
const PENDING_MAX: usize = 1024;

/// Recorded events remembered for counting repeats, at most.
const REMEMBERED_MAX: usize = 4096;

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Regarding {
    /// API group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace, or empty.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Event {
    /// What it is about.
    pub regarding: Regarding,
    /// Whether it is a warning (else normal).
    pub warning: bool,
    /// Machine-readable reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

/// Events dropped between two log lines about them.
const DROPS_PER_LOG_LINE: u64 = 1000;

/// Sends events to the writer of one loop.
#[derive(Clone)]
pub struct EventRecorder {
    sender: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

impl EventRecorder {
    /// A recorder whose events `client` writes, reported by `component`;
    /// its writer runs until every recorder clone is dropped.
    pub fn start(client: ApiClient, registry: SharedRegistry, component: &str) -> Self {
        let (sender, receiver) = mpsc::channel(PENDING_MAX);
        tokio::spawn(write_events(receiver, client, registry, component.to_owned()));
        Self { sender, dropped: Arc::new(AtomicU64::new(0)) }
    }

    /// Records `event` in the background; dropped when too many wait (the
    /// first drop logged, then one line per [`DROPS_PER_LOG_LINE`]: a
    /// rollout of thousands of pods drops thousands).
    pub fn record(&self, event: Event) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.sender.try_send(event) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped % DROPS_PER_LOG_LINE == 1 {
                tracing::warn!(
                    dropped,
                    reason = event.reason,
                    object = event.regarding.name,
                    "too many events wait; dropping events"
                );
            }
        }
    }
}

/// A recorded event: its name and namespace, and how often it happened.
struct Recorded {
    namespace: String,
    name: String,
    count: u64,
}

async fn write_events(
    mut receiver: mpsc::Receiver<Event>,
    client: ApiClient,
    registry: SharedRegistry,
    component: String,
) {
    let mut recorded: HashMap<Event, Recorded> = HashMap::new();
    let mut order: VecDeque<Event> = VecDeque::new();
    let registry_events = || registry.current().find("", "v1", "events").cloned();
    while let Some(event) = receiver.recv().await {
        let Some(events) = registry_events() else { continue };
        let timestamp = now();
        if let Some(seen) = recorded.get_mut(&event) {
            seen.count += 1;
            let patch = json!({"count": seen.count, "lastTimestamp": timestamp});
            let answer = client
                .patch(
                    &events,
                    Some(&seen.namespace),
                    &seen.name,
                    None,
                    (PatchType::Merge, patch.to_string().into_bytes()),
                )
                .await;
            match answer {
                Ok(_) => continue,
                // Gone meanwhile (its namespace, or a cleanup): record anew.
                Err(refused) if refused.code == 404 => {
                    recorded.remove(&event);
                }
                Err(refused) => {
                    tracing::debug!(%refused, reason = event.reason, "an event's count was not raised");
                    continue;
                }
            }
        }
        let Some(written) = create(&client, &registry, &events, &event, &component, &timestamp).await else { continue };
        if order.len() >= REMEMBERED_MAX
            && let Some(oldest) = order.pop_front()
        {
            recorded.remove(&oldest);
        }
        order.push_back(event.clone());
        recorded.insert(event, written);
    }
}

/// Writes `event` as a new Event; where it was written.
async fn create(
    client: &ApiClient,
    registry: &SharedRegistry,
    events: &super::super::resources::ResourceType,
    event: &Event,
    component: &str,
    timestamp: &str,
) -> Option<Recorded> {
    let regarding = &event.regarding;
    let kind = registry
        .current()
        .find(&regarding.group, &regarding.version, &regarding.plural)
        .map_or_else(|| regarding.plural.clone(), |t| t.kind.to_owned());
    let api_version = if regarding.group.is_empty() {
        regarding.version.clone()
    } else {
        format!("{}/{}", regarding.group, regarding.version)
    };
    // Events about cluster-scoped objects live in `default`, as
    // Kubernetes writes them.
    let namespace = if regarding.namespace.is_empty() { "default".to_owned() } else { regarding.namespace.clone() };
    let name = format!("{}.{:016x}", regarding.name, rand::random::<u64>());
    let mut involved = json!({"apiVersion": api_version, "kind": kind, "name": regarding.name, "uid": regarding.uid});
    if !regarding.namespace.is_empty() {
        involved["namespace"] = json!(regarding.namespace);
    }
    let object = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": involved,
        "reason": event.reason,
        "message": event.message,
        "type": if event.warning { "Warning" } else { "Normal" },
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": component,
        "count": 1,
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "eventTime": Value::Null,
    });
    match client.create(events, Some(&namespace), object.to_string().into_bytes()).await {
        Ok(_) => Some(Recorded { namespace, name, count: 1 }),
        Err(refused) => {
            tracing::debug!(%refused, reason = event.reason, "an event was not recorded");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_past_the_queue_are_dropped_and_counted() {
        // Goal: a full queue never blocks the loop recording; each event
        // that finds no room is counted (the count paces the log lines).
        let (sender, mut receiver) = mpsc::channel(2);
        let recorder = EventRecorder { sender, dropped: Arc::new(AtomicU64::new(0)) };
        let event = |name: &str| Event {
            regarding: Regarding {
                group: String::new(),
                version: "v1".into(),
                plural: "pods".into(),
                namespace: "default".into(),
                name: name.into(),
                uid: format!("uid-{name}"),
            },
            warning: false,
            reason: "Scheduled".into(),
            message: format!("placed {name}"),
        };
        for name in ["a", "b", "c", "d", "e"] {
            recorder.record(event(name));
        }
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(receiver.try_recv().map(|e| e.regarding.name), Ok("a".to_owned()));
        assert_eq!(receiver.try_recv().map(|e| e.regarding.name), Ok("b".to_owned()));
        assert!(receiver.try_recv().is_err(), "the dropped events never reach the writer");
    }
}
