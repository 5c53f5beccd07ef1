//! Controllers as components, run on the controller runtime of real
//! `engenho` nodes and judged with the installed kubectl.

mod containment;
mod cron_jobs;
mod daemon_sets;
mod deployments;
mod endpoint_slices;
mod failover;
mod jobs;
mod kubelet;
mod node_lifecycle;
mod replica_sets;
mod service_accounts;
mod stateful_sets;
mod swap;
mod watch;
