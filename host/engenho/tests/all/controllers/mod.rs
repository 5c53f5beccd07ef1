//! Controllers as components, run on the controller runtime of real
//! `engenho` nodes and judged with the installed kubectl.

mod containment;
mod service_accounts;
mod swap;
