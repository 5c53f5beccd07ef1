//! Integration tests that run real `engenho` processes and drive them with
//! the real `etcdctl`, the real `kubectl`, kube-rs and a gRPC client.

mod admission;
mod bad_input;
mod bench;
mod cluster;
mod crash;
mod disk;
mod etcdctl;
mod grpc;
mod kube_rs;
mod kubectl;
mod peer_port;
mod plugin_calls;
mod plugin_powers;
mod plugin_trust;
mod refusals;
mod support;
