//! etcd's Lease service.

use std::pin::Pin;

use engenho_store::{Command, Outcome};
use futures::Stream;
use rand::Rng;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::proto::etcdserverpb::{self as pb, lease_server::Lease};
use super::{Facade, mesh_status};

/// Shortest lease etcd grants with its default timing (1.5 election
/// timeouts, rounded up), in seconds.
pub const LEASE_TTL_MIN: i64 = 2;

/// Keep-alive answers buffered per stream before the stream applies
/// backpressure.
const KEEP_ALIVE_BUFFER: usize = 16;

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for Facade {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let request = request.into_inner();
        let id = if request.id != 0 { request.id } else { rand::rng().random_range(1..i64::MAX) };
        let ttl = request.ttl.max(LEASE_TTL_MIN);
        match self.propose(Command::LeaseGrant { id, ttl }).await? {
            (revision, Outcome::LeaseGranted { id, ttl }) => Ok(Response::new(pb::LeaseGrantResponse {
                header: self.header(revision),
                id,
                ttl,
                error: String::new(),
            })),
            (_, other) => Err(Status::internal(format!("unexpected outcome {other:?}"))),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let id = request.into_inner().id;
        let (revision, _) = self.propose(Command::LeaseRevoke { id }).await?;
        Ok(Response::new(pb::LeaseRevokeResponse { header: self.header(revision) }))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut requests = request.into_inner();
        let (sender, receiver) = tokio::sync::mpsc::channel(KEEP_ALIVE_BUFFER);
        let facade = self.clone();
        tokio::spawn(async move {
            while let Some(Ok(request)) = requests.next().await {
                let answer = match facade.node().lease_keep_alive(request.id).await {
                    Ok(ttl) => Ok(pb::LeaseKeepAliveResponse {
                        header: facade.header(facade.node().store().revision()),
                        id: request.id,
                        // etcd answers a missing lease with a zero time to live.
                        ttl: ttl.unwrap_or(0),
                    }),
                    Err(error) => Err(mesh_status(error)),
                };
                if sender.send(answer).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let request = request.into_inner();
        let remaining = self.node().lease_remaining(request.id).await.map_err(mesh_status)?;
        let lease = self.node().store().lease(request.id);
        let revision = self.node().store().revision();
        let (ttl, granted_ttl, keys) = match (remaining, lease) {
            (Some(remaining), Some(lease)) => {
                (remaining, lease.ttl, if request.keys { lease.keys } else { Vec::new() })
            }
            // etcd answers a missing (or just expired) lease with TTL -1.
            _ => (-1, 0, Vec::new()),
        };
        Ok(Response::new(pb::LeaseTimeToLiveResponse {
            header: self.header(revision),
            id: request.id,
            ttl,
            granted_ttl,
            keys,
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        self.node().linearize().await.map_err(mesh_status)?;
        let leases = self.node().store().leases().into_iter().map(|(id, _)| pb::LeaseStatus { id }).collect();
        let revision = self.node().store().revision();
        Ok(Response::new(pb::LeaseLeasesResponse { header: self.header(revision), leases }))
    }
}
