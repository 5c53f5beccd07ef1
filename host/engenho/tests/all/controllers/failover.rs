//! Goal: the controllers run on the raft leader and follow leadership:
//! when the leader dies, the node elected next takes the loops over from
//! its own caches and finishes the work, and only one node reconciles at
//! a time (a Deployment scaled across the failover ends with exactly its
//! replicas, none created twice).
//! Method: three real `engenho up` processes on loopback addresses; a
//! Deployment of 3 created through the first node; the leader killed
//! (`kill -9`); the Deployment scaled to 9 through a survivor; its pods
//! counted with kubectl on the survivors, and the ReplicaSet's events
//! checked for deletions (a pod made twice would be deleted as surplus).

use std::time::Duration;

use crate::support::{EngenhoNode, Kubectl, wait_for};

#[test]
fn a_new_leader_takes_the_controllers_over() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut first = EngenhoNode::new(root.path(), "c1");
    first.start_ready(&[]);
    let mut nodes = vec![first];
    for name in ["c2", "c3"] {
        let mut node = EngenhoNode::new(root.path(), name);
        let args = nodes[0].join_args();
        node.start_ready(&args.iter().map(String::as_str).collect::<Vec<_>>());
        nodes.push(node);
    }
    crate::support::wait_voters(&nodes[0], 3);
    let kubectls: Vec<Kubectl> = nodes.iter().map(Kubectl::for_node).collect();
    let active = |kubectl: &Kubectl, plugin: &str| {
        let output = kubectl.run(&["get", "plugin", plugin, "-o", "jsonpath={.status.conditions[0].status}"], None);
        String::from_utf8_lossy(&output.stdout) == "True"
    };
    wait_for("the controllers to be active", Duration::from_secs(60), || {
        active(&kubectls[0], "deployment-controller") && active(&kubectls[0], "replicaset-controller")
    });
    kubectls[0].ok(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3"]);
    let pods = |kubectl: &Kubectl| {
        let output = kubectl.run(&["get", "pods", "-l", "app=web", "-o", "name"], None);
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).lines().count())
    };
    wait_for("3 pods", Duration::from_secs(30), || pods(&kubectls[0]) == Some(3));

    let leader = (0..3).find(|&i| nodes[i].is_leader()).expect("a leader");
    nodes[leader].kill();
    let survivor = (0..3).find(|&i| i != leader).expect("a survivor");
    let kubectl = &kubectls[survivor];
    wait_for("a new leader", Duration::from_secs(20), || (0..3).any(|i| i != leader && nodes[i].is_leader()));
    wait_for("the scale to be taken", Duration::from_secs(30), || {
        kubectl.run(&["scale", "deployment", "web", "--replicas=9"], None).status.success()
    });
    wait_for("9 pods made by the new leader's controllers", Duration::from_secs(60), || pods(kubectl) == Some(9));
    let replica_set = kubectl.ok(&["get", "rs", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]);
    wait_for("the ReplicaSet's status to count 9", Duration::from_secs(30), || {
        kubectl.ok(&["get", "rs", &replica_set, "-o", "jsonpath={.status.replicas}"]) == "9"
    });
    let deletions = kubectl.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={replica_set},reason=SuccessfulDelete"),
        "-o",
        "name",
    ]);
    assert!(deletions.trim().is_empty(), "no pod was made twice: {deletions}");
    assert_eq!(pods(kubectl), Some(9));
    for (i, node) in nodes.iter_mut().enumerate() {
        if i != leader {
            node.stop();
        }
    }
}
