//! One plugin's configured instances, kept idle between calls for reuse.

use std::sync::{Arc, Mutex};

use wasmtime::Store;

use super::{CallState, IdleInstances};

/// Calls an instance serves before it is replaced by a fresh one, so that
/// whatever a plugin leaves behind in its memory stays bounded.
const CALLS_PER_INSTANCE_MAX: u32 = 10_000;

/// A configured instance between calls: its store, its bindings and the
/// calls it has served.
pub(crate) struct Pooled<T> {
    /// The instance's store.
    pub(crate) store: Store<CallState>,
    /// The instance's exports.
    pub(crate) instance: T,
    /// Calls it has served.
    pub(crate) calls: u32,
}

impl<T> Pooled<T> {
    /// A fresh instance, yet to serve a call.
    pub(crate) fn new(store: Store<CallState>, instance: T) -> Self {
        Self { store, instance, calls: 0 }
    }
}

/// The idle instances of one plugin: at most `most`, and only while the
/// host's budget of idle instances across plugins has room.
pub(crate) struct InstancePool<T> {
    idle: Mutex<Vec<Pooled<T>>>,
    most: usize,
    budget: Arc<IdleInstances>,
}

impl<T> InstancePool<T> {
    /// A pool keeping up to `most` instances, within `budget`.
    pub(crate) fn new(most: usize, budget: Arc<IdleInstances>) -> Self {
        Self { idle: Mutex::default(), most, budget }
    }

    /// An idle instance, if one is kept.
    pub(crate) fn take(&self) -> Option<Pooled<T>> {
        let pooled = self.idle.lock().expect("instance pool lock").pop()?;
        self.budget.give_back(1);
        Some(pooled)
    }

    /// Keeps `pooled` for the next call, unless it has served its calls or
    /// neither this pool nor the host has room; drops it otherwise. An
    /// instance whose call failed is never given back: it may be stuck in
    /// any state.
    pub(crate) fn keep(&self, pooled: Pooled<T>) {
        if pooled.calls >= CALLS_PER_INSTANCE_MAX {
            return;
        }
        let mut idle = self.idle.lock().expect("instance pool lock");
        if idle.len() < self.most && self.budget.take() {
            idle.push(pooled);
        }
    }
}

impl<T> Drop for InstancePool<T> {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().map_or(0, |idle| idle.len());
        self.budget.give_back(u32::try_from(idle).expect("a pool keeps a few idle instances"));
    }
}
