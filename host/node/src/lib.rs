//! engenho's node agent, the kubelet's role on every node: it registers
//! the node's Node object (capacity, allocatable, addresses, the standard
//! labels, its runtime handlers), renews the node's Lease in
//! `kube-node-lease`, keeps the node's conditions true to the machine and
//! reports the pods bound to the node that it cannot run.
//! It writes through the node's own API server as `system:node:<name>`.

mod agent;
pub mod machine;
pub mod pods;
pub mod status;

pub use agent::{
    AgentError, LEASE_DURATION_SECONDS, LEASE_RENEW_INTERVAL, NodeAgent, RoleCheck, STATUS_REPORT_INTERVAL,
};
pub use machine::{Machine, ProbeError};
pub use pods::PodLoop;
pub use status::{
    EvictionError, EvictionHard, NodeRole, NodeSettings, RegisterTaints, Reserved, ReservedError, TaintError, Threshold,
};
