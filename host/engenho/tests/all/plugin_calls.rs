//! Goal: plugin calls never run on the API server's async workers: a plugin
//! that uses WASI's blocking calls works, and a slow plugin delays only the
//! requests it decides.
//! Method: a real node driven by the real kubectl, with the misbehaving
//! test component signed by the node's bootstrap signer.

use std::time::{Duration, Instant};

use engenho_api::kube::plugins::SigningKey;

use crate::admission::signed;
use crate::plugin_trust::{readiness, upload_test_component};
use crate::support::{EngenhoNode, Kubectl, wait_for};

/// How long a new plugin may take to become active.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// The deadline of the slow plugin: every call it decides takes this long.
const SLOW_DEADLINE_MILLIS: u64 = 4000;

fn bootstrap_signer(node: &EngenhoNode) -> SigningKey {
    SigningKey::load_or_create(&node.dir.join("pki").join("plugin-signer.key")).expect("the bootstrap signer")
}

/// Applies a signed Plugin of the misbehaving component deciding creates
/// of `resource`, and waits until it is active.
fn activate(kubectl: &Kubectl, node: &EngenhoNode, name: &str, resource: &str, spec: serde_json::Value) {
    let digest = upload_test_component(kubectl);
    let mut plugin = serde_json::json!({"apiVersion": "engenho.io/v1alpha1", "kind": "Plugin",
        "metadata": {"name": name},
        "spec": {"world": "admission-policy", "digest": digest,
            "admission": {"rules": [{"apiGroups": [""], "resources": [resource], "operations": ["CREATE"]}]}}});
    plugin["spec"].as_object_mut().expect("spec").extend(spec.as_object().cloned().unwrap_or_default());
    kubectl.ok_with(&["apply", "-f", "-"], Some(&signed(&bootstrap_signer(node), &plugin.to_string())));
    wait_for("the plugin to be active", SETTLE_TIMEOUT, || readiness(kubectl, name).starts_with("True"));
}

/// Goal: a plugin that writes to stdout, reads a granted directory and
/// connects to a granted address works in the API server.
/// Method: the `reach` mode granted a directory with a file and a TCP
/// listener of the test's; its warnings on a service create say what it
/// reached.
#[test]
fn granted_plugins_write_read_and_connect() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "calls-granted");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let shared = root.path().join("shared");
    std::fs::create_dir_all(&shared).expect("granted directory");
    std::fs::write(shared.join("greeting.txt"), "hello from the host\n").expect("file");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let peer = listener.local_addr().expect("address").to_string();
    let spec = serde_json::json!({"config": {"mode": "reach", "peer": peer},
        "grants": {"directories": [{"hostPath": shared, "path": "/data"}], "tcpConnect": [peer]}});
    activate(&kubectl, &node, "reacher", "services", spec);
    let output = kubectl.run(&["create", "service", "clusterip", "reached", "--tcp=80:80"], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for warning in ["stdout: written", "file: hello from the host", "network: connected"] {
        assert!(stderr.contains(&format!("Warning: reacher: {warning}")), "{warning}: {stderr}");
    }
    node.stop();
}

/// Goal: a plugin that runs to its deadline delays only the requests it
/// decides, however many of them are in flight.
/// Method: a looping plugin (4 s deadline, failure policy Ignore) decides
/// configmap creates; 8 of them start at once, and while they run, a
/// secret create and a namespace list (matched by no plugin) must answer
/// in well under the deadline.
#[test]
fn a_slow_plugin_delays_only_the_requests_it_decides() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "calls-slow");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let spec = serde_json::json!({"config": {"mode": "loop"}, "failurePolicy": "Ignore",
        "limits": {"deadlineMillis": SLOW_DEADLINE_MILLIS}});
    activate(&kubectl, &node, "slowpoke", "configmaps", spec);

    let started = Instant::now();
    let probes = std::thread::scope(|scope| {
        let slow: Vec<_> = (0..8)
            .map(|i| {
                let kubectl = &kubectl;
                scope.spawn(move || kubectl.run(&["create", "configmap", &format!("slow-{i}")], None))
            })
            .collect();
        // Probe for as long as the slow creates are in flight.
        let mut probes = Vec::new();
        while !slow.iter().all(std::thread::ScopedJoinHandle::is_finished) {
            let probe = Instant::now();
            kubectl.ok(&["create", "secret", "generic", &format!("quick-{}", probes.len()), "--from-literal=a=b"]);
            kubectl.ok(&["get", "namespaces"]);
            probes.push(probe.elapsed());
        }
        for create in slow {
            assert!(create.join().expect("a slow create").status.success());
        }
        probes
    });
    assert!(probes.len() >= 3, "the probes overlapped the slow creates: {probes:?}");
    let slowest = probes.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_millis(SLOW_DEADLINE_MILLIS / 2),
        "requests no plugin decides waited {slowest:?} behind the slow plugin: {probes:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(SLOW_DEADLINE_MILLIS), "the slow plugin ran to its deadline");
    assert_eq!(
        kubectl.ok(&["get", "configmaps", "-o", "name"]).lines().filter(|l| l.contains("slow-")).count(),
        8,
        "failure policy Ignore: the slow creates went on"
    );
    node.stop();
}
