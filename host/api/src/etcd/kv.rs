//! etcd's KV service.

use engenho_store::{Command, Outcome};
use tonic::{Request, Response, Status};

use super::proto::etcdserverpb::{self as pb, kv_server::Kv};
use super::{Facade, convert, mesh_status, store_status};

impl Facade {
    /// Proposes a command and returns the revision and outcome, mapping
    /// refusals to etcd's statuses. The node checks every write as etcd
    /// checks a client's request before proposing it
    /// ([`engenho_store::validate_command`]), once, at the leader.
    pub(crate) async fn propose(&self, command: Command) -> Result<(i64, Outcome), Status> {
        let applied = self.node().write(command).await.map_err(mesh_status)?;
        let outcome = applied.outcome.map_err(store_status)?;
        Ok((applied.revision, outcome))
    }
}

fn unexpected(outcome: &Outcome) -> Status {
    Status::internal(format!("the store answered with an unexpected outcome: {outcome:?}"))
}

#[tonic::async_trait]
impl Kv for Facade {
    async fn range(&self, request: Request<pb::RangeRequest>) -> Result<Response<pb::RangeResponse>, Status> {
        let request = request.into_inner();
        if !request.serializable {
            self.node().linearize().await.map_err(mesh_status)?;
        }
        let store = self.node().store().clone();
        let model = convert::range_request(request);
        // A point read takes microseconds: serve it in place. Ranges may
        // scan many keys and go to the blocking pool.
        let answer = if model.range.is_single() {
            store.range(&model)
        } else {
            tokio::task::spawn_blocking(move || store.range(&model))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
        };
        let (revision, result) = answer.map_err(store_status)?;
        Ok(Response::new(convert::range_response(self.header(revision), result)))
    }

    async fn put(&self, request: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let request = request.into_inner();
        match self.propose(Command::Put(convert::put_request(request))).await? {
            (revision, Outcome::Put(result)) => Ok(Response::new(convert::put_response(self.header(revision), result))),
            (_, other) => Err(unexpected(&other)),
        }
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let request = request.into_inner();
        match self.propose(Command::Delete(convert::delete_request(request))).await? {
            (revision, Outcome::Delete(result)) => {
                Ok(Response::new(convert::delete_response(self.header(revision), result)))
            }
            (_, other) => Err(unexpected(&other)),
        }
    }

    async fn txn(&self, request: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let request = request.into_inner();
        match self.propose(Command::Txn(convert::txn_request(request)?)).await? {
            (revision, Outcome::Txn(result)) => Ok(Response::new(convert::txn_response(self.header(revision), result))),
            (_, other) => Err(unexpected(&other)),
        }
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let revision = request.into_inner().revision;
        match self.propose(Command::Compact { revision }).await? {
            (revision, Outcome::Compacted) => {
                Ok(Response::new(pb::CompactionResponse { header: self.header(revision) }))
            }
            (_, other) => Err(unexpected(&other)),
        }
    }
}
