//! Goal: a worker (`engenho up --worker`) holds no replica of the store
//! and no CA key, and still is a node as any other: its Node (ROLES
//! `worker`) registered and kept Ready by its agent, its pods run, their
//! logs read and their ports forwarded through any API server, all through
//! a control-plane API server as `system:node:<name>` (its certificate).
//! A worker that dies changes no role; one that starts again finds the
//! control plane by itself; when the API server it uses dies, it moves to
//! another; and when the control plane loses a replica with no standby to
//! promote, the autopilot raises the worker to standby: it obtains a
//! replica's credentials with its own certificate, joins as a learner and
//! is promoted (its Node's ROLES, an Event and the chain say so). Method: three real replicas and a real worker on loopback
//! addresses; kubectl, etcdctl, curl with the worker's own certificate,
//! `engenho mesh status --json`.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::pods::{RUNS_PODS, forwards_in_both_protocols, pod, push, push_toolbox, wait_pod};
use crate::revoada::{exported_chain_verifies, members, mesh_status, wait_rounds};
use crate::support::{EngenhoNode, Kubectl, wait_for, wait_voters};

/// Time allowed for the worker to show a change (its Node, its API server).
const WORKER_DEADLINE: Duration = Duration::from_secs(60);

/// What `curl` got from `path` on `node`'s API server with the client
/// certificate `name` of `pki` (`<name>.crt`, `<name>.key`): the status
/// code and the body.
fn curl_with_certificate(node: &EngenhoNode, pki: &std::path::Path, name: &str, path: &str) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", "--cacert"])
        .arg(pki.join("ca.crt"))
        .arg("--cert")
        .arg(pki.join(format!("{name}.crt")))
        .arg("--key")
        .arg(pki.join(format!("{name}.key")))
        .arg(format!("https://{}{path}", node.api))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("curl prints the status code last");
    (code.trim().parse().expect("a status code"), body.to_owned())
}

/// Whether Node `name` is Ready.
fn ready(kubectl: &Kubectl, name: &str) -> bool {
    let node = kubectl.run(&["get", "node", name, "-o", "json"], None);
    let node: Value = serde_json::from_slice(&node.stdout).unwrap_or_default();
    node["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The API server addresses the worker's log says it reached the cluster
/// through, in order.
fn servers_used(worker: &EngenhoNode) -> Vec<String> {
    worker
        .log_text()
        .lines()
        .filter_map(|line| line.split("reaching the cluster's API through ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_worker_runs_pods_through_the_control_plane_without_a_replica() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut replicas: Vec<EngenhoNode> =
        ["cp-a", "cp-b", "cp-c"].iter().map(|name| EngenhoNode::new(root.path(), name)).collect();
    replicas[0].start_ready(&[]);
    let join = replicas[0].join_args();
    for replica in &mut replicas[1..] {
        replica.start_ready(&join.iter().map(String::as_str).collect::<Vec<_>>());
    }
    wait_voters(&replicas[0], 3);

    // A worker's first start needs a cluster to join.
    let mut worker = EngenhoNode::new(root.path(), "wk");
    worker.start(&["--worker"]);
    assert!(!worker.wait_exit().success());
    assert!(worker.log_text().contains("a worker's first start needs --join"), "{}", worker.log_text());

    let mut args = join.clone();
    args.extend(RUNS_PODS.iter().map(|a| (*a).to_owned()));
    worker.start_worker(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let kubectl = Kubectl::for_node(&replicas[0]);
    wait_for("the worker's Node Ready", WORKER_DEADLINE, || ready(&kubectl, "wk"));
    let node = kubectl.json(&["get", "node", "wk", "-o", "json"]);
    assert_eq!(node["metadata"]["labels"]["node-role.kubernetes.io/worker"], "", "ROLES worker");
    assert!(node["metadata"]["labels"].get("node-role.kubernetes.io/control-plane").is_none());
    let listed = kubectl.ok(&["get", "nodes"]);
    assert!(listed.lines().any(|l| l.starts_with("wk ") && l.contains(" worker ")), "{listed}");

    // No replica: not a raft member, no store, no CA key; in gossip as a
    // worker.
    assert!(!members(&replicas[0]).contains_key("wk"), "a worker is no raft member");
    assert!(!worker.dir.join("db").exists(), "a worker keeps no store");
    assert!(!worker.pki().join("ca.key").exists(), "a worker holds no CA key");
    wait_for("the worker in gossip", WORKER_DEADLINE, || {
        mesh_status(&replicas[0])["gossipOnly"]
            .as_array()
            .is_some_and(|g| g.iter().any(|m| m["name"] == "wk" && m["gossip"]["state"]["role"] == "worker"))
    });

    // Its certificate is its identity to the API: system:node:wk, held to
    // what a node may do. A certificate of the CA that is not a node's
    // names no one.
    let (code, body) = curl_with_certificate(&replicas[0], &worker.pki(), "node", "/api/v1/nodes/wk");
    assert_eq!(code, 200, "{body}");
    let (code, body) =
        curl_with_certificate(&replicas[0], &worker.pki(), "node", "/apis/rbac.authorization.k8s.io/v1/clusterroles");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("system:node:wk"), "{body}");
    let (code, _) = curl_with_certificate(&replicas[0], &replicas[0].pki(), "etcd-client", "/api/v1/nodes");
    assert_eq!(code, 401, "the etcd client certificate is no node's");

    // Its pods run; their logs and ports are reached through any API
    // server, over the worker's peer port.
    let toolbox = push_toolbox(&replicas[0]);
    let ticking = pod("far", "wk", &toolbox, &["tick", "100", "30"], serde_json::json!({"restartPolicy": "Never"}));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&ticking));
    wait_pod(&kubectl, "far", "Running", |p| p["status"]["phase"] == "Running");
    let followed = Kubectl::for_node(&replicas[1]).ok(&["logs", "-f", "far"]);
    assert_eq!(followed.lines().count(), 30, "every line once: {followed}");
    assert_eq!(followed.lines().last(), Some("tick 30"), "{followed}");
    let hello = push(&replicas[0], "hello-http", engenho_plugin_artifacts::pod_component("hello-http").expect("built"));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&pod("web", "wk", &hello, &[], serde_json::json!({}))));
    wait_pod(&kubectl, "web", "Running", |p| p["status"]["phase"] == "Running");
    forwards_in_both_protocols(&kubectl, "pod/web", "8080", "hello from wasm (GET /forwarded)");

    // A worker that dies changes no role.
    let transitions = mesh_status(&replicas[0])["transitions"].clone();
    worker.kill();
    wait_for("gossip to notice the dead worker", WORKER_DEADLINE, || {
        replicas[0].log_text().contains("gossip: wk is dead")
    });
    wait_rounds(&replicas, 8);
    let status = mesh_status(&replicas[0]);
    assert_eq!(status["transitions"], transitions, "no role changed for a dead worker");
    assert_eq!(members(&replicas[0]).values().filter(|(_, voter)| *voter).count(), 3);

    // Started again without --worker or --join, it runs as the worker its
    // directory holds, finds the control plane from what it knew, and its
    // Node is Ready again.
    let used_before = servers_used(&worker).len();
    worker.start(&RUNS_PODS);
    worker.wait_ready();
    assert!(!members(&replicas[0]).contains_key("wk"), "still a worker");
    wait_for("the restarted worker to reach an API server", WORKER_DEADLINE, || {
        servers_used(&worker).len() > used_before
    });
    wait_for("the restarted worker's Node Ready", WORKER_DEADLINE, || ready(&kubectl, "wk"));

    // The API server it uses dies: it moves to another; and with one of
    // three replicas dead and no standby to promote, the autopilot raises
    // the worker to standby, which joins as a learner and is promoted.
    let used = servers_used(&worker);
    let through = used.last().expect("an API server").clone();
    let doomed = replicas.iter().position(|r| r.api == through).expect("a replica's API server");
    replicas[doomed].kill();
    let live = replicas.iter().position(|r| r.api != through).expect("a live replica");
    wait_for("the worker to move to another API server", WORKER_DEADLINE, || {
        servers_used(&worker).last().is_some_and(|now| *now != through)
    });
    let kubectl = Kubectl::for_node(&replicas[live]);
    let after = pod("after", "wk", &toolbox, &["echo", "still here"], serde_json::json!({"restartPolicy": "Never"}));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&after));
    wait_pod(&kubectl, "after", "Succeeded", |p| p["status"]["phase"] == "Succeeded");
    assert_eq!(kubectl.ok(&["logs", "after"]), "still here\n");
    wait_for("the raised worker a voter, the dead replica not", Duration::from_secs(120), || {
        let now = members(&replicas[live]);
        now.get("wk").is_some_and(|(_, voter)| *voter)
            && !now.get(&replicas[doomed].name).is_some_and(|(_, voter)| *voter)
    });
    assert!(worker.log_text().contains("raised to standby: joining as a replica"), "{}", worker.log_text());
    assert!(worker.pki().join("ca.key").exists(), "a replica holds the CA key");
    wait_for("ROLES control-plane on the raised node", WORKER_DEADLINE, || {
        let node = kubectl.json(&["get", "node", "wk", "-o", "json"]);
        node["metadata"]["labels"].get("node-role.kubernetes.io/control-plane").is_some()
            && node["metadata"]["labels"].get("node-role.kubernetes.io/worker").is_none()
            && node["metadata"]["annotations"].get("engenho.io/raise").is_none()
    });
    let events = kubectl.ok(&["get", "events", "--field-selector", "involvedObject.name=wk"]);
    assert!(events.contains("Raised") && events.contains("raised from worker to standby"), "{events}");
    let (chain, _) = exported_chain_verifies(&replicas[live]);
    let raised = chain["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .any(|e| e["event"]["kind"] == "raised" && e["event"]["node"] == "wk");
    assert!(raised, "the raise is in the chain: {chain}");
    // The logs of a pod it ran as a worker are still read through it.
    assert_eq!(kubectl.ok(&["logs", "after"]), "still here\n");

    // Started again with --worker, a raised node runs as the replica it is.
    worker.stop();
    worker.start(&["--worker", "--register-with-taints", "", "--eviction-hard", "nodefs.available<1%"]);
    worker.wait_ready();
    assert!(worker.log_text().contains("it runs as the replica it is"));
}

#[test]
fn a_node_joining_a_cluster_that_keeps_all_its_replicas_is_a_worker() {
    // One voter and no standby wanted: the second node to join is a
    // worker, without asking to be one.
    let root = tempfile::tempdir().expect("temporary directory");
    let mut first = EngenhoNode::new(root.path(), "keeper");
    first.start_ready(&["--voters", "1", "--standbys", "0"]);
    let mut second = EngenhoNode::new(root.path(), "second");
    let join = first.join_args();
    second.start(&join.iter().map(String::as_str).collect::<Vec<_>>());
    second.wait_ready();
    assert!(second.log_text().contains("this node joins as a worker"), "{}", second.log_text());
    assert!(second.log_text().contains("engenho worker ready"));
    assert!(!second.pki().join("ca.key").exists(), "a worker holds no CA key");
    assert_eq!(members(&first).len(), 1, "the cluster keeps one replica");
    let kubectl = Kubectl::for_node(&first);
    wait_for("the worker's Node Ready", WORKER_DEADLINE, || ready(&kubectl, "second"));
    let node = kubectl.json(&["get", "node", "second", "-o", "json"]);
    assert_eq!(node["metadata"]["labels"]["node-role.kubernetes.io/worker"], "");
}

#[test]
fn a_surplus_standby_is_lowered_to_a_worker() {
    // The leader keeps one voter and one standby. A third replica (joined
    // through a node that keeps more) is one standby too many: one of the
    // two learners gives up its replica and goes on as a worker.
    let root = tempfile::tempdir().expect("temporary directory");
    let mut nodes: Vec<EngenhoNode> =
        ["low-a", "low-b", "low-c"].iter().map(|name| EngenhoNode::new(root.path(), name)).collect();
    nodes[0].start_ready(&["--voters", "1", "--standbys", "1"]);
    for (index, through) in [(1, 0), (2, 1)] {
        let mut args = nodes[through].join_args();
        args.extend(RUNS_PODS.iter().map(|a| (*a).to_owned()));
        nodes[index].start_ready(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    wait_for("one of the learners lowered and removed", Duration::from_secs(90), || members(&nodes[0]).len() == 2);
    let kept = members(&nodes[0]);
    let lowered = (1..3).find(|&i| !kept.contains_key(&nodes[i].name)).expect("a lowered node");
    let name = nodes[lowered].name.clone();
    wait_for("the lowered node running as a worker", WORKER_DEADLINE, || {
        let log = nodes[lowered].log_text();
        log.contains("going on as a worker") && log.contains("engenho worker ready")
    });
    assert!(!nodes[lowered].dir.join("db").exists(), "the replica is given up");
    assert!(!nodes[lowered].pki().join("ca.key").exists(), "and the CA key with it");
    let kubectl = Kubectl::for_node(&nodes[0]);
    wait_for("ROLES worker on the lowered node", WORKER_DEADLINE, || {
        let node = kubectl.json(&["get", "node", &name, "-o", "json"]);
        node["metadata"]["labels"].get("node-role.kubernetes.io/worker").is_some()
            && node["metadata"]["labels"].get("node-role.kubernetes.io/standby").is_none()
    });
    wait_for("the lowered node's Node Ready", WORKER_DEADLINE, || ready(&kubectl, &name));
    let toolbox = push_toolbox(&nodes[0]);
    let echo =
        pod("lowered", &name, &toolbox, &["echo", "a worker now"], serde_json::json!({"restartPolicy": "Never"}));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&echo));
    wait_pod(&kubectl, "lowered", "Succeeded", |p| p["status"]["phase"] == "Succeeded");
    assert_eq!(kubectl.ok(&["logs", "lowered"]), "a worker now\n");
    let (chain, _) = exported_chain_verifies(&nodes[0]);
    let events: Vec<(String, String)> = chain["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["event"]["node"] == name.as_str())
        .map(|e| (e["event"]["kind"].as_str().unwrap_or("").to_owned(), e["event"]["reason"].to_string()))
        .collect();
    assert!(events.iter().any(|(kind, reason)| kind == "role" && reason.contains("lower")), "{events:?}");
    assert!(events.iter().any(|(kind, reason)| kind == "removed" && reason.contains("lowered")), "{events:?}");
}
