//! Conversions between etcd's wire messages and the store's model.

use engenho_store as model;
use tonic::Status;

use super::proto::etcdserverpb as pb;
use super::proto::mvccpb;

pub(crate) fn key_value(kv: model::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

pub(crate) fn event(event: model::Event, with_prev: bool) -> mvccpb::Event {
    let kind = match event.kind {
        model::EventKind::Put => mvccpb::event::EventType::Put,
        model::EventKind::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(key_value(event.kv)),
        prev_kv: event.prev_kv.filter(|_| with_prev).map(key_value),
    }
}

fn key_range(key: Vec<u8>, end: Vec<u8>) -> model::KeyRange {
    model::KeyRange { key, end }
}

pub(crate) fn range_request(request: pb::RangeRequest) -> model::RangeRequest {
    use pb::range_request::{SortOrder, SortTarget};
    let sort_order = match request.sort_order() {
        SortOrder::None => model::SortOrder::None,
        SortOrder::Ascend => model::SortOrder::Ascend,
        SortOrder::Descend => model::SortOrder::Descend,
    };
    let sort_target = match request.sort_target() {
        SortTarget::Key => model::SortTarget::Key,
        SortTarget::Version => model::SortTarget::Version,
        SortTarget::Create => model::SortTarget::Create,
        SortTarget::Mod => model::SortTarget::Mod,
        SortTarget::Value => model::SortTarget::Value,
    };
    model::RangeRequest {
        range: key_range(request.key, request.range_end),
        limit: request.limit,
        revision: request.revision,
        sort_order,
        sort_target,
        keys_only: request.keys_only,
        count_only: request.count_only,
        min_mod_revision: request.min_mod_revision,
        max_mod_revision: request.max_mod_revision,
        min_create_revision: request.min_create_revision,
        max_create_revision: request.max_create_revision,
    }
}

pub(crate) fn range_response(header: Option<pb::ResponseHeader>, result: model::RangeResult) -> pb::RangeResponse {
    pb::RangeResponse {
        header,
        kvs: result.kvs.into_iter().map(key_value).collect(),
        more: result.more,
        count: result.count,
    }
}

pub(crate) fn put_request(request: pb::PutRequest) -> model::PutRequest {
    model::PutRequest {
        key: request.key,
        value: request.value,
        lease: request.lease,
        prev_kv: request.prev_kv,
        ignore_value: request.ignore_value,
        ignore_lease: request.ignore_lease,
    }
}

pub(crate) fn put_response(header: Option<pb::ResponseHeader>, result: model::PutResult) -> pb::PutResponse {
    pb::PutResponse { header, prev_kv: result.prev_kv.map(key_value) }
}

pub(crate) fn delete_request(request: pb::DeleteRangeRequest) -> model::DeleteRequest {
    model::DeleteRequest { range: key_range(request.key, request.range_end), prev_kv: request.prev_kv }
}

pub(crate) fn delete_response(
    header: Option<pb::ResponseHeader>,
    result: model::DeleteResult,
) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header,
        deleted: result.deleted,
        prev_kvs: result.prev_kvs.into_iter().map(key_value).collect(),
    }
}

fn compare(compare: pb::Compare) -> Result<model::Compare, Status> {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let result = match compare.result() {
        CompareResult::Equal => model::CompareResult::Equal,
        CompareResult::Greater => model::CompareResult::Greater,
        CompareResult::Less => model::CompareResult::Less,
        CompareResult::NotEqual => model::CompareResult::NotEqual,
    };
    let declared = compare.target();
    let target = match (declared, compare.target_union) {
        (CompareTarget::Version, Some(TargetUnion::Version(v))) => model::CompareTarget::Version(v),
        (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => model::CompareTarget::Create(v),
        (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => model::CompareTarget::Mod(v),
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => model::CompareTarget::Value(v),
        (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => model::CompareTarget::Lease(v),
        // proto3 drops zero values: an absent operand is the zero of its target.
        (CompareTarget::Version, None) => model::CompareTarget::Version(0),
        (CompareTarget::Create, None) => model::CompareTarget::Create(0),
        (CompareTarget::Mod, None) => model::CompareTarget::Mod(0),
        (CompareTarget::Value, None) => model::CompareTarget::Value(Vec::new()),
        (CompareTarget::Lease, None) => model::CompareTarget::Lease(0),
        (declared, Some(_)) => {
            return Err(Status::invalid_argument(format!("compare target {declared:?} does not match its operand")));
        }
    };
    Ok(model::Compare { range: key_range(compare.key, compare.range_end), result, target })
}

fn operation(operation: pb::RequestOp) -> Result<model::Operation, Status> {
    use pb::request_op::Request;
    match operation.request {
        Some(Request::RequestRange(range)) => Ok(model::Operation::Range(range_request(range))),
        Some(Request::RequestPut(put)) => Ok(model::Operation::Put(put_request(put))),
        Some(Request::RequestDeleteRange(delete)) => Ok(model::Operation::Delete(delete_request(delete))),
        Some(Request::RequestTxn(txn)) => Ok(model::Operation::Txn(txn_request(txn)?)),
        None => Err(Status::invalid_argument("etcdserver: a transaction operation is empty")),
    }
}

pub(crate) fn txn_request(request: pb::TxnRequest) -> Result<model::TxnRequest, Status> {
    Ok(model::TxnRequest {
        compare: request.compare.into_iter().map(compare).collect::<Result<_, _>>()?,
        success: request.success.into_iter().map(operation).collect::<Result<_, _>>()?,
        failure: request.failure.into_iter().map(operation).collect::<Result<_, _>>()?,
    })
}

pub(crate) fn txn_response(header: Option<pb::ResponseHeader>, result: model::TxnResult) -> pb::TxnResponse {
    use pb::response_op::Response;
    let responses = result
        .responses
        .into_iter()
        .map(|answer| pb::ResponseOp {
            response: Some(match answer {
                model::OperationResult::Range(r) => Response::ResponseRange(range_response(header, r)),
                model::OperationResult::Put(r) => Response::ResponsePut(put_response(header, r)),
                model::OperationResult::Delete(r) => Response::ResponseDeleteRange(delete_response(header, r)),
                model::OperationResult::Txn(r) => Response::ResponseTxn(txn_response(header, r)),
            }),
        })
        .collect();
    pb::TxnResponse { header, succeeded: result.succeeded, responses }
}
