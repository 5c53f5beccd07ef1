//! Witnessing: the leader asks other voters to sign an entry of the
//! attested chain over the peer channel (mutual TLS with node
//! certificates). What an entry is, and what a voter checks before it
//! signs, is the business of the handler the node registers.

use std::time::Duration;

use futures::future::BoxFuture;
use tonic::Status;

use crate::proto::Payload;
use crate::proto::peer_client::PeerClient;

/// Longest a witness may take to answer.
pub const WITNESS_TIMEOUT: Duration = Duration::from_secs(3);

/// Bytes of a witness request or answer, at most.
pub const WITNESS_MESSAGE_BYTES_MAX: usize = 64 << 10;

/// Signs what the leader asks this node to witness.
pub trait WitnessHandler: Send + Sync {
    /// The signature of `request`, or why this node refuses to give it.
    fn witness(&self, request: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>>;
}

pub(crate) async fn serve(
    handler: Option<std::sync::Arc<dyn WitnessHandler>>,
    request: Vec<u8>,
) -> Result<Payload, Status> {
    let handler = handler.ok_or_else(|| Status::unavailable("this node witnesses nothing yet"))?;
    if request.len() > WITNESS_MESSAGE_BYTES_MAX {
        return Err(Status::invalid_argument(format!("a witness request over {WITNESS_MESSAGE_BYTES_MAX} bytes")));
    }
    let signature = handler.witness(request).await.map_err(Status::failed_precondition)?;
    Ok(Payload { data: signature })
}

pub(crate) async fn ask(
    mut client: PeerClient<tonic::transport::Channel>,
    request: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let mut call = tonic::Request::new(Payload { data: request });
    call.set_timeout(WITNESS_TIMEOUT);
    match tokio::time::timeout(WITNESS_TIMEOUT, client.witness(call)).await {
        Ok(Ok(answer)) => Ok(answer.into_inner().data),
        Ok(Err(status)) => Err(status.message().to_owned()),
        Err(_) => Err(format!("no answer within {WITNESS_TIMEOUT:?}")),
    }
}
