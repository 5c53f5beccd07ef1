//! Goal: the etcd facade refuses before proposing what the store's one
//! validation rule refuses: lease ids that are not positive, transactions
//! with too many operations at any nesting level, and invalid operations or
//! a key written twice in a branch that would not run. Method: send those requests to a real node
//! with the generated etcd gRPC client, expect etcd's status codes and
//! messages, then check the node still serves and holds only what was
//! written before.

use engenho_api::etcd::proto::etcdserverpb::{
    LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, kv_client::KvClient, lease_client::LeaseClient,
    request_op::Request,
};
use tonic::Code;

use crate::support::EngenhoNode;

fn put(key: &str) -> RequestOp {
    let put = PutRequest { key: key.as_bytes().to_vec(), value: b"v".to_vec(), ..PutRequest::default() };
    RequestOp { request: Some(Request::RequestPut(put)) }
}

fn refused<T: std::fmt::Debug>(answer: Result<T, tonic::Status>, code: Code, message: &str) {
    let status = answer.expect_err("the request is refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(message), "{status:?}");
}

#[test]
fn the_facade_refuses_what_the_store_refuses_before_proposing() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "refusing");
    node.start_ready(&[]);
    node.etcdctl_ok(&["put", "keep", "me"]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let channel = runtime.block_on(async { node.etcd_channel() });
    runtime.block_on(async move {
        let mut leases = LeaseClient::new(channel.clone());
        let negative = leases.lease_grant(LeaseGrantRequest { id: -5, ttl: 60 }).await;
        refused(negative, Code::InvalidArgument, "etcdserver: lease id must be positive");
        let chosen = leases.lease_grant(LeaseGrantRequest { id: 0, ttl: 60 }).await.expect("grant").into_inner();
        assert!(chosen.id > 0, "the facade chooses a positive id for id 0");

        let mut kv = KvClient::new(channel);
        let wide = TxnRequest { success: (0..129).map(|i| put(&format!("w{i}"))).collect(), ..TxnRequest::default() };
        let nested = TxnRequest {
            success: vec![RequestOp { request: Some(Request::RequestTxn(wide)) }],
            ..TxnRequest::default()
        };
        refused(kv.txn(nested).await, Code::InvalidArgument, "etcdserver: too many operations in txn request");
        let empty_key_unrun = TxnRequest { success: vec![put("ran")], failure: vec![put("")], ..TxnRequest::default() };
        refused(kv.txn(empty_key_unrun).await, Code::InvalidArgument, "etcdserver: key is not provided");
        let twice_unrun =
            TxnRequest { success: vec![put("ran")], failure: vec![put("x"), put("x")], ..TxnRequest::default() };
        refused(kv.txn(twice_unrun).await, Code::InvalidArgument, "etcdserver: duplicate key given in txn request");

        let everything = RangeRequest { key: b"0".to_vec(), range_end: vec![0], ..RangeRequest::default() };
        let kvs = kv.range(everything).await.expect("range").into_inner().kvs;
        let keys: Vec<&[u8]> = kvs.iter().map(|kv| kv.key.as_slice()).filter(|key| !key.starts_with(b"/")).collect();
        assert_eq!(keys, [b"keep".as_slice()], "nothing of a refused request was written");
    });
}
