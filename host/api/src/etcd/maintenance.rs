//! etcd's Cluster and Maintenance services.

use tonic::{Request, Response, Status};

use super::proto::etcdserverpb::{self as pb, cluster_server::Cluster, maintenance_server::Maintenance};
use super::{ETCD_API_VERSION, Facade};

#[tonic::async_trait]
impl Cluster for Facade {
    async fn member_list(
        &self,
        _request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let members = self
            .node()
            .members()
            .into_iter()
            .map(|member| pb::Member {
                id: member.id,
                name: member.info.name,
                peer_ur_ls: vec![format!("https://{}", member.info.peer_addr)],
                client_ur_ls: vec![format!("https://{}", member.info.client_addr)],
                is_learner: member.is_learner,
            })
            .collect();
        let revision = self.node().store().revision();
        Ok(Response::new(pb::MemberListResponse { header: self.header(revision), members }))
    }
}

#[tonic::async_trait]
impl Maintenance for Facade {
    async fn alarm(&self, request: Request<pb::AlarmRequest>) -> Result<Response<pb::AlarmResponse>, Status> {
        if request.get_ref().action() != pb::alarm_request::AlarmAction::Get {
            return Err(Status::unimplemented("engenho raises no alarms to activate or deactivate"));
        }
        let revision = self.node().store().revision();
        Ok(Response::new(pb::AlarmResponse { header: self.header(revision), alarms: Vec::new() }))
    }

    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let store = self.node().store().status();
        let raft = self.node().raft_status();
        let db_size = i64::try_from(store.disk_bytes).unwrap_or(i64::MAX);
        Ok(Response::new(pb::StatusResponse {
            header: self.header(store.revision),
            version: ETCD_API_VERSION.into(),
            db_size,
            leader: raft.leader.unwrap_or(0),
            raft_index: raft.last_log_index,
            raft_term: raft.term,
            raft_applied_index: raft.applied_index,
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: raft.is_learner,
        }))
    }
}
