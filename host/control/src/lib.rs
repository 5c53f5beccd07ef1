//! The controller runtime every control loop of a node stands on:
//! informer caches of the store with indexes ([`informer`]), rate-limited
//! work queues ([`queue`]), loops that run only while the node leads the
//! cluster ([`controller`]), label selectors ([`labels`]), resource
//! quantities ([`quantity`]) and per-loop metrics ([`metrics`]).

pub mod controller;
pub mod informer;
pub mod labels;
pub mod metrics;
pub mod quantity;
pub mod queue;

pub use controller::{Action, Reconciler, Settings, Whole, everywhere};
pub use informer::{
    Cached, Change, Filter, Informer, Informers, Listed, RemoteError, RemoteSource, Seen, Source, Subscription,
};
pub use labels::LabelSelector;
pub use queue::WorkQueue;
