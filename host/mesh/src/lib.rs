//! revoada, the distribution layer of engenho: the raft node that
//! replicates the datastore, its peer transport (raft frames, gRPC and joins
//! on one mutually authenticated TLS port), the forwarding of leader-only
//! requests (writes, read indexes, lease renewals, joins) from any node to
//! the leader, the membership changes the leader's autopilot makes, and
//! the witnessing of chain entries between voters.

mod agent_port;
mod error;
mod forward;
mod join;
mod leases;
mod network;
mod node;
mod raft_wire;
mod service;
mod streams;
mod tls;
mod tunnels;
mod witness;

/// Generated gRPC types of the peer service.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("engenho.mesh.v1");
}

pub use agent_port::{AgentPort, agent_port_connections};
pub use error::{MeshError, Result};
pub use join::{
    ClusterSettings, JoinCheck, JoinRequest, Joined, RAISES_PREFIX, RaiseRequest, WorkerCredentials, fetch_credentials,
    fetch_raised_credentials, fetch_worker_credentials, raise_key,
};
pub use node::{
    JOIN_TOKEN_HASH_KEY, LeaderView, Member, MemberProgress, MembershipChange, Node, NodeConfig, RaftStatus,
};
pub use raft_wire::split_peer_connections;
pub use service::PeerService;
pub use streams::{ByteStream, OPEN_TIMEOUT, STREAM_REQUEST_BYTES_MAX, StreamHandler, StreamRefusal};
pub use tls::PeerCredentials;
pub use tunnels::{Conduit, TunnelHandler};
pub use witness::{WITNESS_MESSAGE_BYTES_MAX, WITNESS_TIMEOUT, WitnessHandler};
