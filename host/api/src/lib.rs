//! Client-facing APIs of an engenho node: the Kubernetes API server and the
//! etcd v3 gRPC facade, both over the replicated store.

pub mod etcd;
pub mod kube;
