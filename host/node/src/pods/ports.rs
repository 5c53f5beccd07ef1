//! The ports of the pods this node runs, as `pods/portforward` reaches
//! them: a TCP connection to the pod's address, on the port asked for.

use std::net::Ipv4Addr;
use std::sync::Arc;

use engenho_api::kube::portforward::{CONNECT_TIMEOUT, Conduit, PodPorts};
use futures::future::BoxFuture;
use serde_json::Value;

use super::addresses::PodAddresses;

/// The ports of node `node`'s pods, at the addresses it gave them.
pub struct NodePorts {
    node: String,
    addresses: Arc<PodAddresses>,
}

impl NodePorts {
    /// The ports of `node`'s pods, at `addresses`.
    pub fn new(node: String, addresses: Arc<PodAddresses>) -> Self {
        Self { node, addresses }
    }
}

impl PodPorts for NodePorts {
    fn node(&self) -> &str {
        &self.node
    }

    fn connect(&self, pod: &Value, port: u16) -> BoxFuture<'static, Result<Box<dyn Conduit>, String>> {
        let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
        let address: Option<Ipv4Addr> = self.addresses.held_by(uid);
        Box::pin(async move {
            let ip = address.ok_or("the pod has no address on its node: none of its containers is running")?;
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((ip, port))).await {
                Ok(Ok(connection)) => Ok(Box::new(connection) as Box<dyn Conduit>),
                Ok(Err(error)) => Err(format!("dial tcp {ip}:{port}: {error}")),
                Err(_) => Err(format!("dial tcp {ip}:{port}: no answer within {CONNECT_TIMEOUT:?}")),
            }
        })
    }
}
