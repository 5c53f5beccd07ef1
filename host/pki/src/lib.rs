//! The trust of an engenho cluster: its certificate authority and the
//! certificates it issues (node identities, serving and client
//! certificates), join tokens that pin the authority, and the TLS
//! configurations and listener that every port of a node uses.
//!
//! Every port a node opens speaks TLS under the cluster CA: the peer port
//! (raft frames, forwarded requests and joins) and the etcd endpoint require
//! a client certificate the CA issued; the Kubernetes API presents a
//! certificate the CA issued and authenticates callers by token.

mod ca;
mod dial;
mod error;
mod files;
mod listener;
mod tls;
mod token;

pub use ca::{CaHash, ClusterCa, Identity, NODE_ORGANIZATION, Profile, is_worker_certificate, node_name_of};
pub use dial::{
    CA_CERTIFICATE_FILE, DIAL_TIMEOUT, ETCD_CLIENT_CERTIFICATE_FILE, ETCD_CLIENT_KEY_FILE, dial_tls,
    etcd_admin_client_config, grpc_channel, grpc_endpoint, load_certificate,
};
pub use error::{PkiError, Result};
pub use files::{read_optional, write_private};
pub use listener::{HandshakeLimits, TlsConnectInfo, TlsConnection, accept_tls};
pub use tls::{
    HTTP2_ALPN, mutual_client_config, mutual_server_config, optional_client_server_config, pinned_client_config,
};
pub use token::{JoinToken, random_secret};
