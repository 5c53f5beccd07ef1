//! Goal: bad requests get etcd's errors and leave the store intact.
//! Method: send oversized values, invalid ranges, unknown leases and
//! malformed protobuf to a real node; then check it still serves and holds
//! exactly the data written before.

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
    let refused = etcdctl(&node, &["put", "big"], Some(&big));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("request is too large"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let huge = vec![b'x'; 3 * 1024 * 1024];
    let refused = etcdctl(&node, &["put", "huge"], Some(&huge));
    assert!(!refused.status.success(), "a message over the gRPC limit is refused");

    let fits = vec![b'y'; 1024 * 1024];
    assert!(etcdctl(&node, &["put", "fits"], Some(&fits)).status.success());

    let no_lease = node.etcdctl(&["put", "k", "v", "--lease=1234abcd"]);
    assert!(String::from_utf8_lossy(&no_lease.stderr).contains("requested lease not found"));
    let empty_key = node.etcdctl(&["put", "", "v"]);
    assert!(!empty_key.status.success());
    let revoke_missing = node.etcdctl(&["lease", "revoke", "77"]);
    assert!(String::from_utf8_lossy(&revoke_missing.stderr).contains("requested lease not found"));

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let status = runtime.block_on(send_raw(&node, "/etcdserverpb.KV/Put", vec![0xff, 0xff, 0xff, 0x0f, 0x01]));
    assert_eq!(status.code(), tonic::Code::Internal, "malformed protobuf: {status:?}");
    let status = runtime.block_on(send_raw(&node, "/etcdserverpb.KV/Nope", vec![]));
    assert_eq!(status.code(), tonic::Code::Unimplemented);

    assert_eq!(
        node.etcdctl_ok(&["get", "", "--prefix", "--keys-only"])
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("/registry/") && !l.starts_with("/engenho/"))
            .collect::<Vec<_>>(),
        ["fits", "keep"]
    );
    node.stop();
    node.start_ready(&[]);
    assert_eq!(node.local_value("keep").as_deref(), Some("me"));
}

/// Sends raw bytes as a unary gRPC request to the node's etcd endpoint and
/// returns the status.
async fn send_raw(node: &EngenhoNode, path: &'static str, body: Vec<u8>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(node.etcd_channel());
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

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(path).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root (the test suite runs as root)");
        Self { path: path.to_owned() }
    }

    fn grow(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .expect("run mount");
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Goal: a full disk stops writes with a clear error and corrupts nothing.
/// Method: a node on a 64 MiB tmpfs (its 23 precompiled built-in plugins
/// take about half; its log is written there too, so logging fails as the
/// store does) takes 400 KB values until a write fails; the failure must be
/// a clean gRPC status, later writes must be refused too (by a node still
/// running), and after the disk grows and the node restarts every
/// acknowledged write must read back intact.
#[test]
fn a_full_disk_refuses_writes_and_loses_nothing() {
    let root = tempfile::tempdir().expect("temporary directory");
    let disk = SmallDisk::mount(&root.path().join("disk"), "64m");
    let mut node = EngenhoNode::new(&disk.path, "cramped");
    node.start_ready(&[]);
    let value: Vec<u8> = (0..400_000u32).map(|i| b'a' + u8::try_from(i % 26).expect("letter")).collect();
    let mut acknowledged = Vec::new();
    let mut refusal = String::new();
    for i in 0..200 {
        let key = format!("fill/{i:03}");
        let output = etcdctl(&node, &["put", &key], Some(&value));
        if !output.status.success() {
            refusal = String::from_utf8_lossy(&output.stderr).into_owned();
            break;
        }
        acknowledged.push(key);
    }
    let names_the_disk = refusal.contains("No space left on device") || refusal.contains("bytes free on");
    assert!(names_the_disk, "a clear error: {refusal}\nnode log:\n{}", node.log_text());
    assert!(acknowledged.len() > 5, "some writes fit before the disk filled");
    let later = node.etcdctl(&["put", "later", "x"]);
    assert!(!later.status.success(), "writes stay refused once the store has stopped");
    let later_refusal = String::from_utf8_lossy(&later.stderr);
    assert!(later_refusal.contains("raft stopped"), "{later_refusal}\nnode log:\n{}", node.log_text());

    node.kill();
    disk.grow("256m");
    node.start_ready(&[]);
    for key in &acknowledged {
        let stored = node.etcdctl_ok(&["get", key, "--print-value-only"]);
        assert_eq!(stored.trim_end().as_bytes(), value.as_slice(), "{key} intact after the full disk");
    }
    assert_eq!(node.etcdctl_ok(&["put", "after", "ok"]), "OK\n", "writes resume once there is space");
}
