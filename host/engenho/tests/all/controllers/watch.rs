//! Reading what `kubectl get --watch -o json --output-watch-events` printed:
//! a stream of `{"type": …, "object": …}` documents.

use serde_json::Value;

/// One watch event: its type (`ADDED`, `MODIFIED`, `DELETED`) and object.
pub struct WatchEvent {
    /// The event's type.
    pub kind: String,
    /// The object as the event carried it.
    pub object: Value,
}

impl WatchEvent {
    /// The object's name.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// The complete events in `output`, in order (a document still being
/// printed at the end is left out).
pub fn events(output: &str) -> Vec<WatchEvent> {
    serde_json::Deserializer::from_str(output)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .map(|mut event| WatchEvent {
            kind: event["type"].as_str().unwrap_or_default().to_owned(),
            object: event["object"].take(),
        })
        .collect()
}

/// Whether `pod` has the `Ready` condition true.
pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}
