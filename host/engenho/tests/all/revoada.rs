//! Goal: revoada's autopilot shifts roles on its own, within its
//! guardrails. A joining node is a learner (ROLES `standby`); the leader
//! promotes learners while the voters are short of the target (1 for 1–2
//! nodes, 3 for 3–6), replaces a voter killed with `kill -9` by promoting
//! a learner and demoting the dead one, leaves a dead learner alone, takes
//! a wiped node back as a new member (its stale entry removed), and
//! quarantines a node whose liveness flaps. Every assignment is a role
//! record (`engenho mesh status`), an Event on the Node and a ROLES label.
//! Method: real `engenho up` processes on loopback addresses, driven with
//! etcdctl, kubectl and `engenho mesh status --json`; a flapping node is
//! a real process stopped and continued with SIGSTOP and SIGCONT.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::support::{EngenhoNode, Kubectl, wait_for, wait_voters};

/// Time allowed for any one role change to show.
const SHIFT_DEADLINE: Duration = Duration::from_secs(60);

/// `engenho mesh status --json` through `node`'s kubeconfig.
pub fn mesh_status(node: &EngenhoNode) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_engenho"))
        .args(["mesh", "status", "--json"])
        .env("KUBECONFIG", node.dir.join("kubeconfig"))
        .output()
        .expect("run engenho mesh status");
    assert!(output.status.success(), "mesh status: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("mesh status JSON")
}

/// Exports the chain through `node`'s kubeconfig (`engenho mesh chain
/// export`) and checks it offline with the CA certificate alone (`engenho
/// mesh chain verify`); the chain file and what verify printed.
pub fn exported_chain_verifies(node: &EngenhoNode) -> (serde_json::Value, String) {
    let exported = Command::new(env!("CARGO_BIN_EXE_engenho"))
        .args(["mesh", "chain", "export"])
        .env("KUBECONFIG", node.dir.join("kubeconfig"))
        .output()
        .expect("run engenho mesh chain export");
    assert!(exported.status.success(), "export: {}", String::from_utf8_lossy(&exported.stderr));
    let file = node.dir.with_extension("chain.json");
    std::fs::write(&file, &exported.stdout).expect("write the chain file");
    let verified = Command::new(env!("CARGO_BIN_EXE_engenho"))
        .args(["mesh", "chain", "verify"])
        .arg(&file)
        .arg("--ca")
        .arg(node.pki().join("ca.crt"))
        .output()
        .expect("run engenho mesh chain verify");
    let said = String::from_utf8_lossy(&verified.stdout).into_owned();
    assert!(
        verified.status.success(),
        "the chain does not verify: {said}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    (serde_json::from_slice(&exported.stdout).expect("chain JSON"), said)
}

/// The chain's events as (kind, node, role or reason) triples.
fn chain_events(chain: &serde_json::Value) -> Vec<(String, String, String)> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    chain["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (text(&e["event"]["kind"]), text(&e["event"]["node"]), text(&e["event"]["role"])))
        .collect()
}

/// The members `node` lists, by name: (raft id, voter).
pub fn members(node: &EngenhoNode) -> BTreeMap<String, (String, bool)> {
    let listed = node.etcdctl_ok(&["member", "list"]);
    listed
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(", ").collect();
            (fields[2].to_owned(), (fields[0].to_owned(), fields[5] == "false"))
        })
        .collect()
}

/// The ROLES of each node as `kubectl get nodes` prints them.
fn roles(kubectl: &Kubectl) -> BTreeMap<String, String> {
    let table = kubectl.ok(&["get", "nodes", "--no-headers"]);
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            Some((cells.first()?.to_string(), cells.get(2)?.to_string()))
        })
        .collect()
}

/// The role transitions `node` reports, oldest first: (name, action).
fn transitions(node: &EngenhoNode) -> Vec<(String, String)> {
    let status = mesh_status(node);
    let mut listed: Vec<(String, String)> = status["transitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (t["name"].as_str().unwrap_or("").to_owned(), t["action"].as_str().unwrap_or("").to_owned()))
        .collect();
    listed.reverse();
    listed
}

/// Waits until the leader's autopilot has planned `rounds` more rounds
/// than when called (counted on every running node of `nodes`).
pub fn wait_rounds(nodes: &[EngenhoNode], rounds: u64) {
    let planned = || -> u64 {
        let running = nodes.iter().filter(|node| node.pid().is_some());
        running.map(|node| mesh_status(node)["autopilot"]["rounds"].as_u64().unwrap_or(0)).sum()
    };
    let start = planned();
    wait_for("autopilot rounds", SHIFT_DEADLINE, || planned() >= start + rounds);
}

/// A new cluster of one node, `name`, started.
fn bootstrapped(root: &std::path::Path, name: &str) -> Vec<EngenhoNode> {
    let mut first = EngenhoNode::new(root, name);
    first.start_ready(&[]);
    vec![first]
}

/// A node `name` joined to the cluster of `nodes`, started.
fn join(nodes: &[EngenhoNode], root: &std::path::Path, name: &str) -> EngenhoNode {
    let mut node = EngenhoNode::new(root, name);
    let args = nodes[0].join_args();
    node.start_ready(&args.iter().map(String::as_str).collect::<Vec<_>>());
    node
}

#[test]
fn the_autopilot_keeps_the_voter_target_and_replaces_a_killed_leader() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut nodes = bootstrapped(root.path(), "ap-1");
    nodes.push(join(&nodes, root.path(), "ap-2"));
    let kubectl = Kubectl::for_node(&nodes[0]);
    wait_for("ROLES of two nodes", SHIFT_DEADLINE, || {
        roles(&kubectl) == BTreeMap::from([("ap-1".into(), "control-plane".into()), ("ap-2".into(), "standby".into())])
    });
    assert_eq!(members(&nodes[0]).values().filter(|(_, voter)| *voter).count(), 1, "two nodes want one voter");

    nodes.push(join(&nodes, root.path(), "ap-3"));
    wait_voters(&nodes[0], 3);
    nodes.push(join(&nodes, root.path(), "ap-4"));
    wait_for("a fourth member", SHIFT_DEADLINE, || members(&nodes[0]).len() == 4);
    wait_rounds(&nodes, 8);
    let listed = members(&nodes[0]);
    assert!(!listed["ap-4"].1, "four nodes keep three voters: {listed:?}");
    wait_for("ROLES of four nodes", SHIFT_DEADLINE, || {
        roles(&kubectl).values().filter(|r| *r == "control-plane").count() == 3 && roles(&kubectl)["ap-4"] == "standby"
    });
    let events = kubectl.ok(&["get", "events", "--field-selector", "involvedObject.kind=Node", "-o", "json"]);
    let events: serde_json::Value = serde_json::from_str(&events).expect("events JSON");
    let promoted: Vec<&str> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == "Promoted")
        .filter_map(|e| e["involvedObject"]["name"].as_str())
        .collect();
    assert!(promoted.contains(&"ap-2") && promoted.contains(&"ap-3"), "Promoted Events: {events}");

    let leader = (0..4).find(|&i| nodes[i].is_leader()).expect("a leader");
    let dead = nodes[leader].name.clone();
    nodes[leader].kill();
    let survivor = (0..4).find(|&i| i != leader).expect("a survivor");
    wait_for("the learner promoted in the dead leader's place", SHIFT_DEADLINE, || {
        members(&nodes[survivor]).get("ap-4").is_some_and(|(_, voter)| *voter)
    });
    wait_for("the dead leader demoted", SHIFT_DEADLINE, || {
        members(&nodes[survivor]).get(&dead).is_some_and(|(_, voter)| !*voter)
    });
    let leader = (0..4).find(|&i| i != leader && nodes[i].is_leader()).expect("a new leader");
    let shifts = transitions(&nodes[leader]);
    assert!(shifts.contains(&("ap-4".into(), "promote".into())), "{shifts:?}");
    assert!(shifts.contains(&(dead.clone(), "demote".into())), "{shifts:?}");
    assert_eq!(members(&nodes[leader]).values().filter(|(_, voter)| *voter).count(), 3);
    // The chain records every transition, signed by the leader and
    // witnessed, and verifies offline with the CA certificate alone.
    wait_for("the chain to record the demotion", SHIFT_DEADLINE, || {
        let (chain, _) = exported_chain_verifies(&nodes[leader]);
        chain_events(&chain).contains(&("role".into(), dead.clone(), "learner".into()))
    });
    let (chain, said) = exported_chain_verifies(&nodes[leader]);
    let events = chain_events(&chain);
    assert_eq!(events[0].0, "genesis", "{events:?}");
    for name in ["ap-2", "ap-3", "ap-4"] {
        assert!(events.contains(&("joined".into(), name.into(), String::new())), "{events:?}");
        assert!(events.contains(&("role".into(), name.into(), "voter".into())), "{events:?}");
    }
    assert!(said.contains("voters at the end: ap-") && !said.contains(&format!("{dead},")), "{said}");
    // Plugin activations are in the chain too, with the digest the Plugin
    // reports active.
    let survivor_kubectl = Kubectl::for_node(&nodes[leader]);
    let active =
        survivor_kubectl.ok(&["get", "plugin", "deployment-controller", "-o", "jsonpath={.status.activeDigest}"]);
    let activated = chain["entries"].as_array().into_iter().flatten().any(|e| {
        e["event"]["kind"] == "pluginActivated"
            && e["event"]["name"] == "deployment-controller"
            && e["event"]["digest"] == active.as_str()
    });
    assert!(activated, "deployment-controller {active} activated in the chain: {events:?}");

    // A dead learner is left alone (it is removed only after
    // --remove-after, ten minutes).
    let before = members(&nodes[leader]);
    wait_rounds(&nodes, 12);
    assert_eq!(members(&nodes[leader]), before, "no role change for a dead learner");
    assert_eq!(transitions(&nodes[leader]), shifts);
}

#[test]
fn a_wiped_node_rejoins_as_a_new_member() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut nodes = bootstrapped(root.path(), "wipe-1");
    for name in ["wipe-2", "wipe-3"] {
        nodes.push(join(&nodes, root.path(), name));
    }
    wait_voters(&nodes[0], 3);
    let (old_id, _) = members(&nodes[0])["wipe-3"].clone();
    nodes[2].stop();
    std::fs::remove_dir_all(&nodes[2].dir).expect("wipe the data directory");
    let args = nodes[0].join_args();
    nodes[2].start_ready(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let listed = members(&nodes[0]);
    assert_eq!(listed.len(), 3, "the stale entry is gone: {listed:?}");
    assert_ne!(listed["wipe-3"].0, old_id, "the wiped node is a new member");
    wait_voters(&nodes[0], 3);
    wait_for("the stale entry recorded as removed", SHIFT_DEADLINE, || {
        let status = mesh_status(&nodes[0]);
        status["transitions"].as_array().into_iter().flatten().any(|t| {
            t["name"] == "wipe-3"
                && t["role"] == "removed"
                && u64::from_str_radix(&old_id, 16).ok() == t["id"].as_str().and_then(|id| id.parse().ok())
        })
    });
    wait_for("the chain to record the removal and the new join", SHIFT_DEADLINE, || {
        let (chain, _) = exported_chain_verifies(&nodes[0]);
        let events = chain_events(&chain);
        let removed = events.iter().position(|e| e.0 == "removed" && e.1 == "wipe-3");
        let joined = events.iter().rposition(|e| e.0 == "joined" && e.1 == "wipe-3");
        removed.zip(joined).is_some_and(|(removed, joined)| removed < joined)
    });
    nodes[2].etcdctl_ok(&["put", "after-wipe", "yes"]);
    assert_eq!(nodes[0].etcdctl_ok(&["get", "after-wipe", "--print-value-only"]), "yes\n");
}

#[test]
fn a_flapping_node_is_quarantined_and_never_promoted() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut nodes = bootstrapped(root.path(), "flap-1");
    nodes.push(join(&nodes, root.path(), "flap-2"));
    let pid = nodes[1].pid().expect("running").to_string();
    let signal = |name: &str| assert!(Command::new("kill").args([name, &pid]).status().expect("kill").success());
    let gossip_says = |status: &str| format!("gossip: flap-2 is {status}");
    let seen = |status: &str| nodes[0].log_text().matches(&gossip_says(status)).count();
    wait_for("gossip to see flap-2 live", SHIFT_DEADLINE, || seen("live") >= 1);
    for _ in 0..3 {
        let (dead_before, live_before) = (seen("dead"), seen("live"));
        signal("-STOP");
        wait_for("gossip to see flap-2 dead", SHIFT_DEADLINE, || seen("dead") > dead_before);
        // An outage the tracker counts lasts a second at least: six
        // rounds of the leader's autopilot.
        wait_rounds(&nodes[..1], 6);
        signal("-CONT");
        wait_for("gossip to see flap-2 live again", SHIFT_DEADLINE, || seen("live") > live_before);
    }
    wait_for("flap-2 quarantined", SHIFT_DEADLINE, || {
        let status = mesh_status(&nodes[0]);
        status["members"].as_array().into_iter().flatten().any(|m| m["name"] == "flap-2" && m["quarantined"] == true)
    });
    // Three nodes want three voters, but the quarantined one is not
    // promoted: the new node is, and the voters stay two.
    nodes.push(join(&nodes, root.path(), "flap-3"));
    wait_voters(&nodes[0], 2);
    wait_rounds(&nodes, 8);
    let listed = members(&nodes[0]);
    assert!(listed["flap-3"].1 && !listed["flap-2"].1, "{listed:?}");
    let kubectl = Kubectl::for_node(&nodes[0]);
    let events = kubectl.ok(&["get", "events", "--field-selector", "reason=Quarantined", "-o", "name"]);
    assert_eq!(events.lines().count(), 1, "one Quarantined Event: {events}");
}
