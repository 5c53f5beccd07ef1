//! Integration tests that run real `engenho` processes and drive them with
//! the real `etcdctl`, the real `kubectl`, kube-rs and a gRPC client.

pub mod admission;
mod bad_input;
mod bench;
mod cluster;
mod columns;
mod connections;
mod content;
mod controllers;
mod crash;
mod crd_groups;
mod disk;
mod disruption;
mod etcdctl;
mod grpc;
mod kinds;
mod kube_rs;
mod kubectl;
mod lists_and_watches;
mod node_agent;
mod object_limits;
mod peer_port;
mod plugin_calls;
mod plugin_powers;
mod plugin_trust;
mod preemption;
mod quota;
mod rbac_escalation;
mod refusals;
mod scheduler;
mod scheduler_containment;
mod scheduler_swaps;
mod services;
mod subresource_admission;
mod support;
mod token_claims;
mod workload_validation;
