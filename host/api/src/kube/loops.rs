//! What the API server's own loops share: informers of its kinds, and how
//! each loop is started on the controller runtime.

use std::sync::Arc;
use std::time::Duration;

use engenho_control::controller::{Settings, run};
use engenho_control::{Informer, Informers, Reconciler};
use serde_json::json;
use tokio::sync::watch;

use super::handlers::ApiState;
use super::resources::ResourceType;

/// How often the loops that keep a node's own serving current look again
/// without a change.
pub const SERVING_RESYNC: Duration = Duration::from_secs(30);

/// The informer of kind `t` on this node.
pub fn informer_of(informers: &Informers, t: &ResourceType) -> Arc<Informer> {
    let prefix = t.key_prefix(None);
    informers.informer(t.plural, &prefix, || {
        let t = t.clone();
        Arc::new(move |kv| super::objects::decode(&t, kv).map_err(|e| e.message))
    })
}

/// An informer of the keys under `prefix` that hold no objects (component
/// bytes): each is cached by its key alone, for loops that only need to
/// hear that something there changed.
pub fn keys_informer(informers: &Informers, name: &str, prefix: &str) -> Arc<Informer> {
    informers.head_informer(name, prefix, || {
        Arc::new(|kv| Ok(json!({"metadata": {"name": String::from_utf8_lossy(&kv.key)}})))
    })
}

/// Runs `reconciler` as loop `name` with `workers` workers and a resync
/// every `resync`, while `leadership` holds, until `stop` turns true.
pub async fn run_loop<R: Reconciler>(
    state: &ApiState,
    reconciler: Arc<R>,
    (name, workers, resync): (&str, usize, Duration),
    leadership: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) {
    let metrics = state.controller_metrics.controller(name);
    run(reconciler, Settings::new(name, workers, resync), metrics, leadership, stop).await;
}
