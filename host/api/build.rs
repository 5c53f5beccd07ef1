//! Generates the etcd v3 gRPC services from `proto/etcd`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/etcd");
    tonic_prost_build::configure().compile_protos(&["proto/etcd/rpc.proto"], &["proto/etcd"])?;
    Ok(())
}
