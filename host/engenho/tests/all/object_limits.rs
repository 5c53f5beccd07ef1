//! Goal: no write can make an object larger than the store keeps, and no
//! patch can make the server build one: JSON patch copies that double the
//! object, merge and strategic patches, server-side apply and plain create
//! are all refused with a 422 `Invalid` Status, and nothing is stored.
//! Method: a real node driven by the real kubectl with patch files.

use crate::support::{EngenhoNode, Kubectl};

/// Kubernetes' wording for an object over its size limit (the store's
/// 1.5 MiB less room for the key).
const TOO_LONG: &str = "is invalid: []: Too long: may not be more than 1568768 bytes";

/// Bytes in the value of the too-large objects: over the 1.5 MiB the store
/// keeps, under the 3 MiB request limit.
const OVERSIZED_VALUE_BYTES: usize = 1_700_000;

fn write_file(dir: &std::path::Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write a patch file");
    path.to_str().expect("a UTF-8 path").to_owned()
}

fn oversized_configmap(name: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"huge": "h".repeat(OVERSIZED_VALUE_BYTES)},
    })
    .to_string()
}

/// Asserts that `stderr` is kubectl's report of a 422 for an oversized
/// object.
fn assert_too_long(stderr: &str, what: &str) {
    assert!(stderr.contains(TOO_LONG), "{what}: {stderr}");
}

#[test]
fn patches_and_writes_past_the_object_size_are_refused_before_they_are_built() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "object-limits");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let files = root.path();
    let seed = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seed"}, "data": {"seed": "s".repeat(1024)},
    });
    kubectl.ok_with(&["create", "-f", "-"], Some(&seed.to_string()));
    let before = kubectl.ok(&["get", "configmap", "seed", "-o", "jsonpath={.metadata.resourceVersion}"]);

    // Each copy of `data` into itself doubles it: 1 KiB becomes 16 MiB.
    let doubling: Vec<_> =
        (0..14).map(|i| serde_json::json!({"op": "copy", "from": "/data", "path": format!("/data/copy{i}")})).collect();
    let doubling = write_file(files, "doubling.json", &serde_json::Value::Array(doubling).to_string());
    let refused = kubectl.fails(&["patch", "configmap", "seed", "--type=json", "--patch-file", &doubling], None);
    assert_too_long(&refused, "doubling JSON patch");

    let big_merge = serde_json::json!({"data": {"huge": "m".repeat(OVERSIZED_VALUE_BYTES)}}).to_string();
    let big_merge = write_file(files, "merge.json", &big_merge);
    for kind in ["merge", "strategic"] {
        let refused =
            kubectl.fails(&["patch", "configmap", "seed", &format!("--type={kind}"), "--patch-file", &big_merge], None);
        assert_too_long(&refused, kind);
    }

    let too_many: Vec<_> =
        (0..10_001).map(|_| serde_json::json!({"op": "test", "path": "/metadata/name", "value": "seed"})).collect();
    let too_many = write_file(files, "too-many.json", &serde_json::Value::Array(too_many).to_string());
    let refused = kubectl.fails(&["patch", "configmap", "seed", "--type=json", "--patch-file", &too_many], None);
    assert!(
        refused
            .contains("Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"),
        "{refused}"
    );

    let failing = r#"[{"op": "test", "path": "/data/seed", "value": "other"}]"#;
    let refused = kubectl.fails(&["patch", "configmap", "seed", "--type=json", "-p", failing], None);
    assert!(
        refused.contains(
            "ConfigMap \"seed\" is invalid: the patch does not apply: operation 0 (test /data/seed): the value differs"
        ),
        "{refused}"
    );

    let applied = write_file(files, "seed-applied.json", &oversized_configmap("seed"));
    let refused = kubectl.fails(&["apply", "--server-side", "-f", &applied], None);
    assert_too_long(&refused, "server-side apply");
    let created = write_file(files, "created.json", &oversized_configmap("created"));
    let refused = kubectl.fails(&["create", "-f", &created], None);
    assert_too_long(&refused, "create");

    let over_request =
        write_file(files, "over-request.json", &serde_json::json!({"data": {"x": "r".repeat(3 << 20)}}).to_string());
    let refused = kubectl.fails(&["patch", "configmap", "seed", "--type=merge", "--patch-file", &over_request], None);
    assert!(refused.contains("Request entity too large: limit is 3145728"), "{refused}");

    let after = kubectl.ok(&["get", "configmap", "seed", "-o", "jsonpath={.metadata.resourceVersion}"]);
    assert_eq!(before, after, "a refused patch changed the object");
    let names = kubectl.ok(&["get", "configmaps", "-o", "name"]);
    assert!(!names.contains("configmap/created"), "{names}");
    node.stop();
}
