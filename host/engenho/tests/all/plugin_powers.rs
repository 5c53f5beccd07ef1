//! Goal: what a plugin may reach is signed and bounded: a grant changed
//! without a new signature is refused while the version before it keeps
//! running, and grants of the node's own files and ports are refused.
//! Method: a real node driven by the real kubectl and `engenho plugin
//! sign`, with the misbehaving test component in its `reach` mode.

use std::path::Path;
use std::time::Duration;

use engenho_api::kube::plugins::SigningKey;

use crate::admission::signed;
use crate::plugin_trust::{readiness, upload_test_component};
use crate::support::{EngenhoNode, Kubectl, wait_for};

/// How long a change of a plugin may take to reach admission.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

fn bootstrap_signer(node: &EngenhoNode) -> SigningKey {
    SigningKey::load_or_create(&node.dir.join("pki").join("plugin-signer.key")).expect("the bootstrap signer")
}

/// A `reach` Plugin named `name` deciding creates of services, with
/// `grants` and `config` added to its configuration.
fn reacher(name: &str, digest: &str, grants: serde_json::Value, config: serde_json::Value) -> String {
    let mut configuration = serde_json::json!({"mode": "reach"});
    configuration.as_object_mut().expect("object").extend(config.as_object().cloned().unwrap_or_default());
    serde_json::json!({"apiVersion": "engenho.io/v1alpha1", "kind": "Plugin", "metadata": {"name": name},
        "spec": {"world": "admission-policy", "digest": digest, "config": configuration, "grants": grants,
            "failurePolicy": "Fail",
            "admission": {"rules": [{"apiGroups": [""], "resources": ["services"], "operations": ["CREATE"]}]}}})
    .to_string()
}

/// The warnings kubectl prints when it creates service `name`, which must
/// succeed.
fn service_warnings(kubectl: &Kubectl, name: &str) -> String {
    let output = kubectl.run(&["create", "service", "clusterip", name, "--tcp=80:80"], None);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "creating service {name}: {stderr}");
    stderr
}

fn engenho(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_engenho"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run engenho");
    assert!(output.status.success(), "engenho {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Goal: the signature covers the grants, not the configuration; a
/// changed grant without a new signature is refused on the status and the
/// version before it keeps deciding; `engenho plugin sign` signs grants.
/// Method: a plugin granted `GREETING=hi` reports it in a warning; its
/// configuration changes (accepted), then its grant (refused, the old
/// grant still reported), then the grant with a signature from the CLI.
#[test]
fn a_changed_grant_needs_a_new_signature() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "powers-signed");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let digest = upload_test_component(&kubectl);
    let greeting = |value: &str| serde_json::json!({"environment": {"GREETING": value}});
    let plugin = reacher("reacher", &digest, greeting("hi"), serde_json::json!({}));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&signed(&bootstrap_signer(&node), &plugin)));
    wait_for("the plugin to be active", SETTLE_TIMEOUT, || readiness(&kubectl, "reacher").starts_with("True"));
    assert!(service_warnings(&kubectl, "first").contains("Warning: reacher: environment: hi"));

    let mode = |mode: &str, shows: &str| {
        let configured = format!(r#"{{"spec": {{"config": {{"mode": "{mode}"}}}}}}"#);
        kubectl.ok(&["patch", "plugin", "reacher", "--type=merge", "-p", &configured]);
        wait_for("the new configuration to decide", SETTLE_TIMEOUT, || {
            service_warnings(&kubectl, &format!("probe-{}", probe_number())).contains(shows)
        });
        assert!(readiness(&kubectl, "reacher").starts_with("True"), "the configuration is not signed");
    };
    mode("warn", "looks risky");
    mode("reach", "Warning: reacher: environment: hi");

    let regranted = r#"{"spec": {"grants": {"environment": {"GREETING": "bye"}}}}"#;
    kubectl.ok(&["patch", "plugin", "reacher", "--type=merge", "-p", regranted]);
    wait_for("the unsigned grant's refusal", SETTLE_TIMEOUT, || readiness(&kubectl, "reacher").starts_with("False"));
    assert_eq!(
        readiness(&kubectl, "reacher"),
        "False the signature over the name, world, digest, mutating flag, limits and grants of reacher does not \
         verify against any trusted signer"
    );
    assert!(
        service_warnings(&kubectl, "second").contains("Warning: reacher: environment: hi"),
        "the version before the refused change keeps running"
    );

    let component = root.path().join("misbehaving.wasm");
    std::fs::write(&component, engenho_plugin_artifacts::plugin("misbehaving").expect("built")).expect("write");
    let key = node.dir.join("pki").join("plugin-signer.key");
    let signature = engenho(
        root.path(),
        &[
            "plugin",
            "sign",
            "--key",
            key.to_str().expect("path"),
            "--name",
            "reacher",
            "--env",
            "GREETING=bye",
            component.to_str().expect("path"),
        ],
    );
    let resigned = format!(r#"{{"spec": {{"signature": "{}"}}}}"#, signature.trim());
    kubectl.ok(&["patch", "plugin", "reacher", "--type=merge", "-p", &resigned]);
    wait_for("the signed grant to be active", SETTLE_TIMEOUT, || readiness(&kubectl, "reacher").starts_with("True"));
    assert!(service_warnings(&kubectl, "third").contains("Warning: reacher: environment: bye"));
    node.stop();
}

/// A number that makes a probe's name unique within the test process.
fn probe_number() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Goal: a plugin is never granted the node's data directory, the root
/// directory, `/proc`, `/sys` or `/etc`, nor a connection to the node's own
/// etcd, peer or API address; each refusal is on its status, precisely, and
/// the node keeps serving.
/// Method: signed plugins with each forbidden grant; their statuses; a
/// create that they would have decided.
#[test]
fn grants_of_the_nodes_own_files_and_ports_are_refused() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "powers-bounded");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let digest = upload_test_component(&kubectl);
    let data_dir = std::fs::canonicalize(&node.dir).expect("the data directory");
    let directory = |host: &str| serde_json::json!({"directories": [{"hostPath": host, "path": "/data"}]});
    let connect = |address: &str| serde_json::json!({"tcpConnect": [address]});
    let cases = [
        (
            "data-dir",
            directory(data_dir.join("pki").to_str().expect("path")),
            format!("lies within the node's data directory {}", data_dir.display()),
        ),
        ("root", directory("/"), "grants.directories: / is the root directory, which no plugin may read".into()),
        ("proc", directory("/proc/self"), "is within /proc, which no plugin may read".into()),
        ("sys", directory("/sys"), "grants.directories: /sys is within /sys, which no plugin may read".into()),
        ("etc", directory("/etc"), "grants.directories: /etc is within /etc, which no plugin may read".into()),
        ("api", connect(&node.api), format!("{} is the node's own API address", node.api)),
        ("etcd", connect(&node.etcd), format!("{} is the node's own etcd address", node.etcd)),
        ("peer", connect(&node.peer), format!("{} is the node's own peer address", node.peer)),
    ];
    for (name, grants, _) in &cases {
        let plugin = reacher(name, &digest, grants.clone(), serde_json::json!({}));
        kubectl.ok_with(&["apply", "-f", "-"], Some(&signed(&bootstrap_signer(&node), &plugin)));
    }
    for (name, _, expected) in &cases {
        wait_for("the grant's refusal", SETTLE_TIMEOUT, || readiness(&kubectl, name).starts_with("False"));
        let status = readiness(&kubectl, name);
        assert!(status.starts_with(&format!("False plugin {name} was refused a grant: ")), "{status}");
        assert!(status.contains(expected.as_str()), "{name}: {status}");
    }
    let warnings = service_warnings(&kubectl, "served");
    assert!(!warnings.contains("environment"), "no refused plugin runs: {warnings}");
    node.stop();
}
