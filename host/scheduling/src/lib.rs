//! The scheduler framework, as kube-scheduler's: a node table of every node
//! and the pods placed on it ([`table`]), a queue of pods waiting for a
//! node ([`queue`]), the cycle that asks a profile's plugins where a pod
//! goes ([`cycle`]), and the loop that binds it ([`scheduler`]). The
//! plugins are components of the `scheduler-plugin` world, each instance
//! keeping its own copy of the table; Pods and Nodes become their records in
//! [`view`]. A [`trial`] places a snapshot's pods with a candidate profile
//! and binds nothing.

pub mod cycle;
pub mod preemption;
pub mod queue;
pub mod scheduler;
pub mod table;
pub mod trial;
pub mod view;

pub use cycle::{Cycle, CycleError, Decision, FitError, PluginRun, PluginScores, PluginTime, PluginVerdicts, Runner};
pub use queue::SchedulingQueue;
pub use scheduler::{
    Binder, BudgetReader, DefaultSpreadSelector, Failed, FailedProfiles, Inbox, Lookups, NativePlugin, NativePlugins,
    PodRef, ProfilePlugin, ProfileSpec, Profiles, Scheduler, Source,
};
pub use table::Table;
pub use trial::{Report, Snapshot, TrialError, TrialRequest, trial};
