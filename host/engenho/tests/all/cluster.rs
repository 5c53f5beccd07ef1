//! Goal: three real processes form one replicated store: writes on any
//! node replicate, the cluster survives the leader's `kill -9`, a restarted
//! node catches up, and a node added later catches up by snapshot. Method:
//! `engenho up` processes on loopback addresses of their own, driven with
//! etcdctl; snapshots are made frequent so the log is purged early.

use std::time::{Duration, Instant};

use crate::support::{EngenhoNode, wait_for, wait_voters};

const SNAPSHOT_LOGS: &str = "50";

fn start_cluster(root: &std::path::Path) -> Vec<EngenhoNode> {
    let mut first = EngenhoNode::new(root, "n1");
    first.start_ready(&["--snapshot-logs", SNAPSHOT_LOGS]);
    let mut nodes = vec![first];
    for name in ["n2", "n3"] {
        let mut node = EngenhoNode::new(root, name);
        let mut args = nodes[0].join_args();
        args.extend(["--snapshot-logs".into(), SNAPSHOT_LOGS.into()]);
        node.start_ready(&args.iter().map(String::as_str).collect::<Vec<_>>());
        nodes.push(node);
    }
    nodes
}

fn leader_index(nodes: &[EngenhoNode], alive: &[usize]) -> Option<usize> {
    alive.iter().copied().find(|&i| nodes[i].is_leader())
}

#[test]
fn three_nodes_replicate_fail_over_and_catch_up() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut nodes = start_cluster(root.path());
    wait_voters(&nodes[0], 3);

    let members = nodes[2].etcdctl_ok(&["member", "list"]);
    assert_eq!(members.lines().count(), 3, "{members}");
    assert!(members.lines().all(|line| line.ends_with("false")), "all three are voters: {members}");

    for (i, node) in nodes.iter().enumerate() {
        node.etcdctl_put(&format!("from/{i}"), &node.name);
    }
    for node in &nodes {
        let all = node.etcdctl_ok(&["get", "from/", "--prefix", "--print-value-only"]);
        assert_eq!(all, "n1\nn2\nn3\n", "linearizable read on {}", node.name);
    }
    wait_for("followers to apply", Duration::from_secs(5), || nodes.iter().all(|n| n.local_value("from/2").is_some()));

    let leader = leader_index(&nodes, &[0, 1, 2]).expect("a leader");
    nodes[leader].kill();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let killed_at = Instant::now();
    wait_for("a new leader", Duration::from_secs(10), || leader_index(&nodes, &survivors).is_some());
    let election = killed_at.elapsed();
    assert!(election < Duration::from_secs(10), "new leader after {election:?}");

    let writer = &nodes[survivors[0]];
    for i in 0..120 {
        writer.etcdctl_put(&format!("after/{i:03}"), &i.to_string());
    }
    assert_eq!(nodes[survivors[1]].etcdctl_ok(&["get", "after/119", "--print-value-only"]), "119\n");

    nodes[leader].start_ready(&["--snapshot-logs", SNAPSHOT_LOGS]);
    wait_for("the restarted node to catch up", Duration::from_secs(20), || {
        nodes[leader].local_value("after/119").as_deref() == Some("119")
    });
    let keys = nodes[leader].etcdctl_ok(&["get", "after/", "--prefix", "--keys-only", "--consistency=s"]);
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 120);

    // Every member must have dropped the start of its log, so that only a
    // snapshot can bring a new node up to date, whoever leads.
    wait_for("every member to purge its log", Duration::from_secs(20), || {
        nodes.iter().all(|node| node.log_text().contains("purged the raft log"))
    });
    let mut late = EngenhoNode::new(root.path(), "n4");
    let mut args = nodes[survivors[1]].join_args();
    args.extend(["--snapshot-logs".into(), SNAPSHOT_LOGS.into()]);
    late.start_ready(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        late.log_text().contains("installed a raft snapshot"),
        "the late node was brought up to date by a snapshot; its log:\n{}",
        late.log_text()
    );
    assert_eq!(late.local_value("after/119").as_deref(), Some("119"));
    assert_eq!(late.local_value("from/0").as_deref(), Some("n1"));
    assert_eq!(late.etcdctl_ok(&["member", "list"]).lines().count(), 4);
    late.etcdctl_put("from/late", "n4");
    for node in &nodes {
        assert_eq!(node.etcdctl_ok(&["get", "from/late", "--print-value-only"]), "n4\n");
    }
}
