//! Integration tests that run real `engenho` processes and drive them with
//! the real `etcdctl`, the real `kubectl` and a gRPC client.

mod bad_input;
mod cluster;
mod crash;
mod etcdctl;
mod grpc;
mod kubectl;
mod support;
