//! Controllers as components, run on the controller runtime of real
//! `engenho` nodes and judged with the installed kubectl.

mod containment;
mod endpoint_slices;
mod node_lifecycle;
mod service_accounts;
mod swap;
