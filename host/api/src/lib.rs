//! Client-facing APIs of an engenho node: the etcd v3 gRPC facade over the
//! replicated store.

pub mod etcd;
