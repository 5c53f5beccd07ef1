//! The replicated datastore of an engenho cluster.
//!
//! An etcd-compatible MVCC key-value store ([`Mvcc`]) kept on fjall, used as
//! the state machine of one openraft group. The raft log and vote live in the
//! same fjall database ([`LogStore`]), so that one journal orders every write
//! and a crash always recovers a consistent prefix. Changes fan out to
//! watchers through the [`WatchHub`].

mod codec;
mod error;
mod log_store;
mod model;
mod mvcc;
mod state_machine;
mod watch;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

pub use error::{Result, StoreError};
pub use log_store::LogStore;
pub use model::*;
pub use mvcc::{Mvcc, Status};
pub use state_machine::StateMachineStore;
pub use watch::{WatchBatch, WatchHub, Watcher};

/// A node of the cluster as raft knows it: its name and where to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Human-readable node name.
    pub name: String,
    /// Address of the peer (raft) endpoint, `host:port`.
    pub peer_addr: String,
    /// Address of the etcd v3 client endpoint, `host:port`.
    pub client_addr: String,
}

openraft::declare_raft_types!(
    /// The openraft type configuration of the engenho datastore.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The raft handle of the datastore.
pub type Raft = openraft::Raft<TypeConfig>;

/// Opens the fjall database at `path` with the settings the store relies on.
///
/// # Errors
/// Any I/O or recovery error of fjall.
pub fn open_database(path: &std::path::Path) -> Result<fjall::Database> {
    Ok(fjall::Database::builder(path).open()?)
}
