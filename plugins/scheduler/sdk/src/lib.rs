//! What engenho's scheduler plugin components are written with: the
//! scheduler-plugin world's records (`wit/scheduler.wit`) as plain Rust.

pub mod types;

pub use types::*;
