//! Goal: `engenho content push|list|inspect` store components in the
//! cluster by BLAKE3 digest through the kubeconfig, print the reference a
//! pod's image names, and read them back checked; bad references and
//! unknown digests get clear errors. Method: a real `engenho up`, the real
//! binary's CLI with `KUBECONFIG` set.

use std::process::{Command, Output};

use crate::support::EngenhoNode;

fn content(node: &EngenhoNode, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engenho"))
        .arg("content")
        .args(args)
        .env("KUBECONFIG", node.dir.join("kubeconfig"))
        .output()
        .expect("run engenho content")
}

fn ok(node: &EngenhoNode, args: &[&str]) -> String {
    let output = content(node, args);
    assert!(output.status.success(), "engenho content {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

fn fails(node: &EngenhoNode, args: &[&str]) -> String {
    let output = content(node, args);
    assert!(!output.status.success(), "engenho content {args:?} succeeded");
    String::from_utf8(output.stderr).expect("utf-8")
}

#[test]
fn components_are_pushed_listed_and_inspected_by_digest() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "content");
    node.start_ready(&[]);
    let bytes = engenho_plugin_artifacts::plugin("node-name").expect("a built component");
    let file = root.path().join("node-name.wasm");
    std::fs::write(&file, bytes).expect("write the component");
    let digest = engenho_wasm::digest_of(bytes);

    let pushed = ok(&node, &["push", file.to_str().expect("path")]);
    assert_eq!(pushed.trim(), format!("blake3:{digest}"));
    // Pushing again changes nothing.
    assert_eq!(ok(&node, &["push", file.to_str().expect("path")]), pushed);

    let listed = ok(&node, &["list"]);
    let row = listed.lines().find(|line| line.starts_with(pushed.trim())).unwrap_or_else(|| panic!("{listed}"));
    assert!(row.ends_with(&bytes.len().to_string()), "{row}");

    let inspected = ok(&node, &["inspect", &format!("hello@blake3:{digest}")]);
    assert!(inspected.contains(&format!("bytes:     {}", bytes.len())), "{inspected}");
    assert!(inspected.contains("engenho:plugins/scheduler"), "the exports named: {inspected}");

    let unknown = fails(&node, &["inspect", &format!("blake3:{}", "0".repeat(64))]);
    assert!(unknown.contains("not found"), "{unknown}");
    let malformed = fails(&node, &["inspect", "nginx:1.27"]);
    assert!(malformed.contains("\"nginx:1.27\" is not a content reference"), "{malformed}");
    let missing = fails(&node, &["push", root.path().join("absent.wasm").to_str().expect("path")]);
    assert!(missing.contains("absent.wasm"), "{missing}");
}
