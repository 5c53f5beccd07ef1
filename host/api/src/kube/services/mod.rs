//! Service networking: the cluster's service network, cluster IP and node
//! port allocation on Service writes, and the `kubernetes` Service that
//! points at every API server.

mod allocation;
mod apiservers;
mod network;
mod spec;

pub use apiservers::{ApiServerRegistration, KubernetesService, MANAGER};
pub use network::{NetworkError, Requested, SERVICE_NETWORK_KEY, ServiceNetwork};
pub use spec::{Plan, Refusal, held, settle};
