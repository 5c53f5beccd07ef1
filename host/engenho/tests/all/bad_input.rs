//! Goal: bad requests get etcd's errors and leave the store intact.
//! Method: send oversized values, invalid ranges, unknown leases and
//! malformed protobuf to a real node; then check it still serves and holds
//! exactly the data written before.

use std::time::Duration;

use bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::support::{EngenhoNode, etcdctl};

#[test]
fn oversized_invalid_and_unknown_inputs_are_refused() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "strict");
    node.start_ready(&[]);
    node.etcdctl_ok(&["put", "keep", "me"]);

    let big = vec![b'x'; 1536 * 1024 + 1];
    let refused = etcdctl(&node.etcd, &["put", "big"], Some(&big));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("request is too large"), "{}", String::from_utf8_lossy(&refused.stderr));
    let huge = vec![b'x'; 3 * 1024 * 1024];
    let refused = etcdctl(&node.etcd, &["put", "huge"], Some(&huge));
    assert!(!refused.status.success(), "a message over the gRPC limit is refused");

    let fits = vec![b'y'; 1024 * 1024];
    assert!(etcdctl(&node.etcd, &["put", "fits"], Some(&fits)).status.success());

    let no_lease = node.etcdctl(&["put", "k", "v", "--lease=1234abcd"]);
    assert!(String::from_utf8_lossy(&no_lease.stderr).contains("requested lease not found"));
    let empty_key = node.etcdctl(&["put", "", "v"]);
    assert!(!empty_key.status.success());
    let revoke_missing = node.etcdctl(&["lease", "revoke", "77"]);
    assert!(String::from_utf8_lossy(&revoke_missing.stderr).contains("requested lease not found"));

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let status = runtime.block_on(send_raw(&node.etcd, "/etcdserverpb.KV/Put", vec![0xff, 0xff, 0xff, 0x0f, 0x01]));
    assert_eq!(status.code(), tonic::Code::Internal, "malformed protobuf: {status:?}");
    let status = runtime.block_on(send_raw(&node.etcd, "/etcdserverpb.KV/Nope", vec![]));
    assert_eq!(status.code(), tonic::Code::Unimplemented);

    assert_eq!(node.etcdctl_ok(&["get", "", "--prefix", "--keys-only"]).lines().filter(|l| !l.is_empty()).collect::<Vec<_>>(),
        ["/engenho/mesh/join-token-hash", "fits", "keep"]);
    node.stop();
    node.start_ready(&[]);
    assert_eq!(node.local_value("keep").as_deref(), Some("me"));
}

/// Sends raw bytes as a unary gRPC request and returns the status.
async fn send_raw(endpoint: &str, path: &'static str, body: Vec<u8>) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
        .expect("endpoint")
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    match grpc.unary::<Vec<u8>, Vec<u8>, RawCodec>(tonic::Request::new(body), path, RawCodec).await {
        Ok(_) => tonic::Status::ok("unexpectedly accepted"),
        Err(status) => status,
    }
}

/// A codec that passes bytes through unchanged.
#[derive(Default, Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining()).to_vec();
        Ok(Some(bytes))
    }
}
