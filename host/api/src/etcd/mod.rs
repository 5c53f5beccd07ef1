//! The etcd v3 gRPC facade: etcd's KV, Watch, Lease, Cluster and
//! Maintenance services served from the replicated store, so that
//! `etcdctl` and etcd client libraries work against an engenho node.

mod convert;
mod kv;
mod lease;
mod maintenance;
mod watch;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use engenho_mesh::{MeshError, Node};
use engenho_store::{KeyRange, RangeRequest, StoreError};
use tonic::Status;

/// Generated gRPC types of etcd's API.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    /// etcd's MVCC records.
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    /// etcd's client API.
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
}

use proto::etcdserverpb::{
    ResponseHeader, cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};

/// The etcd API level this facade speaks, reported by `Status`.
pub const ETCD_API_VERSION: &str = "3.4.0";

/// Largest gRPC message the facade accepts: the largest request plus room
/// for framing, as etcd allows.
pub const GRPC_MESSAGE_BYTES_MAX: usize = engenho_store::MAX_REQUEST_BYTES + 512 * 1024;

/// Settings of the facade.
#[derive(Debug, Clone)]
pub struct FacadeConfig {
    /// Interval of progress notifications to watchers that ask for them.
    pub watch_progress_interval: Duration,
}

impl Default for FacadeConfig {
    fn default() -> Self {
        Self { watch_progress_interval: Duration::from_secs(600) }
    }
}

/// The etcd facade of one node; cheap to clone.
#[derive(Clone)]
pub struct Facade {
    inner: Arc<FacadeInner>,
}

struct FacadeInner {
    node: Node,
    config: FacadeConfig,
    cluster_id: OnceLock<u64>,
}

impl Facade {
    /// A facade over `node`.
    pub fn new(node: Node, config: FacadeConfig) -> Self {
        Self { inner: Arc::new(FacadeInner { node, config, cluster_id: OnceLock::new() }) }
    }

    /// The gRPC services, ready to be added to a tonic server.
    pub fn routes(&self) -> tonic::service::Routes {
        let limit = GRPC_MESSAGE_BYTES_MAX;
        tonic::service::Routes::new(KvServer::new(self.clone()).max_decoding_message_size(limit))
            .add_service(WatchServer::new(self.clone()).max_decoding_message_size(limit))
            .add_service(LeaseServer::new(self.clone()).max_decoding_message_size(limit))
            .add_service(ClusterServer::new(self.clone()).max_decoding_message_size(limit))
            .add_service(MaintenanceServer::new(self.clone()).max_decoding_message_size(limit))
    }

    fn node(&self) -> &Node {
        &self.inner.node
    }

    /// An identifier of the cluster, the same on every node: derived from
    /// the replicated join-token hash.
    fn cluster_id(&self) -> u64 {
        if let Some(id) = self.inner.cluster_id.get() {
            return *id;
        }
        let request =
            RangeRequest { range: KeyRange::single(engenho_mesh::JOIN_TOKEN_HASH_KEY), ..RangeRequest::default() };
        let Ok((_, found)) = self.node().store().range(&request) else { return 0 };
        let Some(kv) = found.kvs.first() else { return 0 };
        let digest = blake3::hash(&kv.value);
        let id = u64::from_be_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"));
        *self.inner.cluster_id.get_or_init(|| id)
    }

    /// A response header at `revision`.
    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.cluster_id(),
            member_id: self.node().id(),
            revision,
            raft_term: self.node().term(),
        })
    }
}

/// Maps a store refusal to the gRPC status etcd would answer.
pub(crate) fn store_status(error: StoreError) -> Status {
    let message = error.to_string();
    match error {
        StoreError::Compacted { .. } | StoreError::FutureRevision { .. } | StoreError::LeaseTtlTooLarge { .. } => {
            Status::out_of_range(message)
        }
        StoreError::LeaseNotFound { .. } => Status::not_found(message),
        StoreError::LeaseExists { .. } => Status::failed_precondition(message),
        StoreError::Storage(_) | StoreError::Corrupt { .. } => Status::internal(message),
        StoreError::EmptyKey
        | StoreError::KeyNotFound
        | StoreError::ValueProvided
        | StoreError::LeaseProvided
        | StoreError::DuplicateKey
        | StoreError::TooManyOperations { .. }
        | StoreError::RequestTooLarge { .. }
        | StoreError::InvalidLeaseId { .. }
        | StoreError::NestedBatch
        | StoreError::TxnTooDeep { .. } => Status::invalid_argument(message),
    }
}

/// Maps a cluster failure to the gRPC status etcd would answer.
pub(crate) fn mesh_status(error: MeshError) -> Status {
    match error {
        MeshError::Store(store) => store_status(store),
        MeshError::Malformed(_) | MeshError::JoinRefused(_) | MeshError::QuorumAtRisk(_) | MeshError::Tls(_) => {
            Status::internal(error.to_string())
        }
        MeshError::NoLeader
        | MeshError::LeaderUnreachable(_)
        | MeshError::LeaderLost(_)
        | MeshError::LeaderChanged
        | MeshError::TimedOut
        | MeshError::Stopped(_) => Status::unavailable(error.to_string()),
    }
}
