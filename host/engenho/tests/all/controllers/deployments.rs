//! Goal: the built-in deployment and replicaset controllers roll a
//! Deployment out as Kubernetes does, driven by the installed kubectl:
//! one ReplicaSet owning the pods, `kubectl rollout status` done once the
//! pods are Ready, `kubectl scale` both ways, a rolling update by
//! `kubectl set image` that never has more pods than replicas + maxSurge
//! nor fewer Ready than replicas − maxUnavailable, `rollout history`,
//! `undo` (back to the first ReplicaSet), `restart`, `pause`/`resume`,
//! `ScalingReplicaSet` events, and the garbage collector removing the
//! ReplicaSets and pods with the Deployment.
//! Method: a real `engenho up` node and the kubelet stand-in marking every
//! pod Ready; each step waits (with a deadline) on what kubectl shows;
//! the rolling update is judged at every event of a
//! `kubectl get pods --watch` that ran throughout it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::kubelet::{Kubelet, Rule};
use super::watch::{events, is_ready};
use crate::support::{EngenhoNode, Kubectl, wait_for};

const DEADLINE: Duration = Duration::from_secs(60);

/// The pods of the Deployment that are not being deleted.
fn live_pods(kubectl: &Kubectl) -> Vec<Value> {
    let list = kubectl.json(&["get", "pods", "-l", "app=web", "-o", "json"]);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items.into_iter().filter(|pod| pod["metadata"]["deletionTimestamp"].is_null()).collect()
}

/// The Deployment's ReplicaSets.
fn replica_sets(kubectl: &Kubectl) -> Vec<Value> {
    let list = kubectl.json(&["get", "replicasets", "-l", "app=web", "-o", "json"]);
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Runs `kubectl rollout status` to its end (it must succeed).
fn rollout_status(kubectl: &Kubectl) -> String {
    kubectl.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
}

/// Waits until the Deployment has `count` live pods, all Ready.
fn wait_ready_pods(kubectl: &Kubectl, count: usize) {
    wait_for(&format!("{count} Ready pods"), DEADLINE, || {
        let pods = live_pods(kubectl);
        pods.len() == count && pods.iter().all(is_ready)
    });
}

/// What the watch saw that broke the rolling update's bounds: more than
/// `most` live pods, or (once `least` pods had been Ready) fewer than
/// `least` Ready ones.
fn bound_violations(output: &str, most: usize, least: usize) -> (Vec<String>, usize) {
    let mut pods: BTreeMap<String, bool> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut settled = false;
    let stream = events(output);
    for event in &stream {
        let deleting = !event.object["metadata"]["deletionTimestamp"].is_null();
        if event.kind == "DELETED" || deleting {
            pods.remove(event.name());
        } else {
            pods.insert(event.name().to_owned(), is_ready(&event.object));
        }
        let ready = pods.values().filter(|ready| **ready).count();
        settled |= ready >= least;
        if pods.len() > most {
            violations.push(format!("{} pods after {} {}: {pods:?}", pods.len(), event.kind, event.name()));
        }
        if settled && ready < least {
            violations.push(format!("{ready} Ready after {} {}: {pods:?}", event.kind, event.name()));
        }
    }
    (violations, stream.len())
}

#[test]
fn a_deployment_rolls_out_scales_rolls_back_and_goes_with_its_replica_sets() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "deployments");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let _kubelet = Kubelet::start(Kubectl::for_node(&node), vec![Rule::every_pod_ready()]);

    kubectl.ok(&["create", "deployment", "web", "--image=nginx:1.25", "--replicas=5"]);
    wait_for("one ReplicaSet owning 5 pods", DEADLINE, || {
        let sets = replica_sets(&kubectl);
        let pods = live_pods(&kubectl);
        sets.len() == 1
            && pods.len() == 5
            && pods.iter().all(|pod| {
                let owner = &pod["metadata"]["ownerReferences"][0];
                owner["uid"] == sets[0]["metadata"]["uid"]
                    && owner["kind"] == "ReplicaSet"
                    && owner["controller"] == true
            })
    });
    let first = replica_sets(&kubectl).remove(0);
    let first_name = first["metadata"]["name"].as_str().expect("a name").to_owned();
    assert_eq!(first["metadata"]["ownerReferences"][0]["name"], "web", "{first}");
    let hash = first["metadata"]["labels"]["pod-template-hash"].as_str().expect("pod-template-hash label");
    assert_eq!(first_name, format!("web-{hash}"));
    assert!(rollout_status(&kubectl).contains("successfully rolled out"));
    let deployment = kubectl.json(&["get", "deployment", "web", "-o", "json"]);
    assert_eq!(deployment["status"]["readyReplicas"], 5, "{deployment}");
    assert_eq!(deployment["status"]["availableReplicas"], 5, "{deployment}");
    assert_eq!(deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1");

    kubectl.ok(&["scale", "deployment", "web", "--replicas=8"]);
    wait_ready_pods(&kubectl, 8);
    rollout_status(&kubectl);
    kubectl.ok(&["scale", "deployment", "web", "--replicas=2"]);
    wait_ready_pods(&kubectl, 2);
    rollout_status(&kubectl);
    assert_eq!(replica_sets(&kubectl).len(), 1);

    // The rolling update, watched from before it starts: with 2 replicas the
    // default 25% gives maxSurge 1 (rounded up) and maxUnavailable 0 (down).
    let mut watch = kubectl.spawn(&["get", "pods", "-l", "app=web", "--watch", "-o", "json", "--output-watch-events"]);
    wait_for("the watch to list the pods", DEADLINE, || events(&watch.output()).len() >= 2);
    kubectl.ok(&["set", "image", "deployment/web", "nginx=nginx:1.26"]);
    rollout_status(&kubectl);
    wait_ready_pods(&kubectl, 2);
    wait_for("the watch to see the old pods go", DEADLINE, || {
        let output = watch.output();
        events(&output).iter().filter(|event| event.kind == "DELETED").count() >= 2
    });
    let (violations, seen) = bound_violations(&watch.output(), 3, 2);
    drop(watch);
    assert!(violations.is_empty(), "the rolling update left its bounds: {violations:#?}");
    assert!(seen >= 6, "the watch saw the rollout ({seen} events)");
    let sets = replica_sets(&kubectl);
    assert_eq!(sets.len(), 2, "a second ReplicaSet");
    for pod in live_pods(&kubectl) {
        assert_eq!(pod["spec"]["containers"][0]["image"], "nginx:1.26", "{pod}");
    }
    let history = kubectl.ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    // Undo goes back to the first ReplicaSet, which becomes revision 3.
    kubectl.ok(&["rollout", "undo", "deployment/web"]);
    rollout_status(&kubectl);
    wait_ready_pods(&kubectl, 2);
    wait_for("the first ReplicaSet to hold the pods again", DEADLINE, || {
        let sets = replica_sets(&kubectl);
        sets.len() == 2
            && sets.iter().all(|set| {
                let own = set["metadata"]["name"] == first_name.as_str();
                set["spec"]["replicas"] == if own { 2 } else { 0 }
            })
    });
    let first = kubectl.json(&["get", "replicaset", &first_name, "-o", "json"]);
    assert_eq!(first["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3", "{first}");
    for pod in live_pods(&kubectl) {
        assert_eq!(pod["spec"]["containers"][0]["image"], "nginx:1.25", "{pod}");
    }

    // Restart: a new template (restartedAt), so a third ReplicaSet.
    kubectl.ok(&["rollout", "restart", "deployment/web"]);
    wait_for("a third ReplicaSet", DEADLINE, || replica_sets(&kubectl).len() == 3);
    rollout_status(&kubectl);
    wait_ready_pods(&kubectl, 2);

    // Paused, a new image makes no ReplicaSet; resumed, it does.
    kubectl.ok(&["rollout", "pause", "deployment/web"]);
    kubectl.ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"]);
    wait_for("the paused Deployment to be observed", DEADLINE, || {
        let deployment = kubectl.json(&["get", "deployment", "web", "-o", "json"]);
        deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"]
            && deployment["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Progressing" && c["reason"] == "DeploymentPaused"))
    });
    assert_eq!(replica_sets(&kubectl).len(), 3, "no rollout while paused");
    kubectl.ok(&["rollout", "resume", "deployment/web"]);
    wait_for("a fourth ReplicaSet", DEADLINE, || replica_sets(&kubectl).len() == 4);
    rollout_status(&kubectl);
    wait_ready_pods(&kubectl, 2);

    let described = kubectl.ok(&["describe", "deployment", "web"]);
    assert!(described.contains("ScalingReplicaSet"), "{described}");
    assert!(described.contains(&format!("Scaled up replica set {first_name}")), "{described}");

    kubectl.ok(&["delete", "deployment", "web"]);
    wait_for("the ReplicaSets and pods to go with the Deployment", DEADLINE, || {
        kubectl.ok(&["get", "replicasets,pods", "-l", "app=web", "-o", "name"]).trim().is_empty()
    });
    node.stop();
}
