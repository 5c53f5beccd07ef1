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

/// The pods labeled `app=<app>` that are not being deleted.
fn live_pods(kubectl: &Kubectl, app: &str) -> Vec<Value> {
    let list = kubectl.json(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"]);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items.into_iter().filter(|pod| pod["metadata"]["deletionTimestamp"].is_null()).collect()
}

/// The Deployment's ReplicaSets.
fn replica_sets(kubectl: &Kubectl) -> Vec<Value> {
    let list = kubectl.json(&["get", "replicasets", "-l", "app=web", "-o", "json"]);
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until `count` live pods are labeled `app=<app>`, all Ready.
fn wait_ready_pods(kubectl: &Kubectl, app: &str, count: usize) {
    wait_for(&format!("{count} Ready pods of {app}"), DEADLINE, || {
        let pods = live_pods(kubectl, app);
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
        let pods = live_pods(&kubectl, "web");
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
    assert!(kubectl.rollout_status("web", "60s").contains("successfully rolled out"));
    let deployment = kubectl.json(&["get", "deployment", "web", "-o", "json"]);
    assert_eq!(deployment["status"]["readyReplicas"], 5, "{deployment}");
    assert_eq!(deployment["status"]["availableReplicas"], 5, "{deployment}");
    assert_eq!(deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1");

    kubectl.ok(&["scale", "deployment", "web", "--replicas=8"]);
    wait_ready_pods(&kubectl, "web", 8);
    kubectl.rollout_status("web", "60s");
    kubectl.ok(&["scale", "deployment", "web", "--replicas=2"]);
    wait_ready_pods(&kubectl, "web", 2);
    kubectl.rollout_status("web", "60s");
    assert_eq!(replica_sets(&kubectl).len(), 1);

    // The rolling update, watched from before it starts: with 2 replicas the
    // default 25% gives maxSurge 1 (rounded up) and maxUnavailable 0 (down).
    let mut watch = kubectl.spawn(&["get", "pods", "-l", "app=web", "--watch", "-o", "json", "--output-watch-events"]);
    wait_for("the watch to list the pods", DEADLINE, || events(&watch.output()).len() >= 2);
    kubectl.ok(&["set", "image", "deployment/web", "nginx=nginx:1.26"]);
    kubectl.rollout_status("web", "60s");
    wait_ready_pods(&kubectl, "web", 2);
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
    for pod in live_pods(&kubectl, "web") {
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
    kubectl.rollout_status("web", "60s");
    wait_ready_pods(&kubectl, "web", 2);
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
    for pod in live_pods(&kubectl, "web") {
        assert_eq!(pod["spec"]["containers"][0]["image"], "nginx:1.25", "{pod}");
    }

    // Restart: a new template (restartedAt), so a third ReplicaSet.
    kubectl.ok(&["rollout", "restart", "deployment/web"]);
    wait_for("a third ReplicaSet", DEADLINE, || replica_sets(&kubectl).len() == 3);
    kubectl.rollout_status("web", "60s");
    wait_ready_pods(&kubectl, "web", 2);

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
    kubectl.rollout_status("web", "60s");
    wait_ready_pods(&kubectl, "web", 2);

    let described = kubectl.ok(&["describe", "deployment", "web"]);
    assert!(described.contains("ScalingReplicaSet"), "{described}");
    assert!(described.contains(&format!("Scaled up replica set {first_name}")), "{described}");

    kubectl.ok(&["delete", "deployment", "web"]);
    wait_for("the ReplicaSets and pods to go with the Deployment", DEADLINE, || {
        kubectl.ok(&["get", "replicasets,pods", "-l", "app=web", "-o", "name"]).trim().is_empty()
    });
    node.stop();
}

/// A Deployment `name` (pods labeled `app=<name>`) of `replicas` pods with
/// the given strategy and extra spec fields.
fn deployment(name: &str, replicas: u32, strategy: &str, extra: &str) -> String {
    format!(
        r#"{{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {{"name": "{name}"}},
  "spec": {{"replicas": {replicas}, "strategy": {strategy}, {extra}
    "selector": {{"matchLabels": {{"app": "{name}"}}}},
    "template": {{"metadata": {{"labels": {{"app": "{name}"}}}},
      "spec": {{"containers": [{{"name": "main", "image": "nginx:1.25"}}]}}}}}}}}"#
    )
}

/// Goal: a rolling update with explicit `maxSurge: 2` and
/// `maxUnavailable: 1` over 6 replicas keeps within 8 pods and 5 Ready at
/// every step; a `Recreate` Deployment's new pods come only once every old
/// pod is gone; a Deployment whose pods never become Ready ends with
/// `Progressing` False `ProgressDeadlineExceeded` and
/// `kubectl rollout status` fails saying so.
/// Method: a real `engenho up` node; the kubelet stand-in marks Ready only
/// the pods of the first two Deployments; each update is judged at every
/// event of a `kubectl get pods --watch` that ran throughout it.
#[test]
fn rollouts_keep_explicit_bounds_recreate_waits_and_a_stuck_rollout_times_out() {
    let root = tempfile::tempdir().expect("temporary directory");
    let mut node = EngenhoNode::new(root.path(), "deployment-strategies");
    node.start_ready(&[]);
    let kubectl = Kubectl::for_node(&node);
    let _kubelet = Kubelet::start(
        Kubectl::for_node(&node),
        vec![Rule::labeled_ready("app", "api"), Rule::labeled_ready("app", "batch")],
    );

    let rolling = r#"{"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 1}}"#;
    kubectl.ok_with(&["apply", "-f", "-"], Some(&deployment("api", 6, rolling, "")));
    kubectl.ok_with(&["apply", "-f", "-"], Some(&deployment("batch", 3, r#"{"type": "Recreate"}"#, "")));
    let stuck = deployment("stuck", 2, rolling, r#""progressDeadlineSeconds": 3,"#);
    kubectl.ok_with(&["apply", "-f", "-"], Some(&stuck));
    kubectl.rollout_status("api", "60s");
    kubectl.rollout_status("batch", "60s");
    wait_ready_pods(&kubectl, "api", 6);
    wait_ready_pods(&kubectl, "batch", 3);

    let mut api = kubectl.spawn(&["get", "pods", "-l", "app=api", "--watch", "-o", "json", "--output-watch-events"]);
    let mut batch =
        kubectl.spawn(&["get", "pods", "-l", "app=batch", "--watch", "-o", "json", "--output-watch-events"]);
    wait_for("the watches to list the pods", DEADLINE, || {
        events(&api.output()).len() >= 6 && events(&batch.output()).len() >= 3
    });
    kubectl.ok(&["set", "image", "deployment/api", "main=nginx:1.26"]);
    kubectl.ok(&["set", "image", "deployment/batch", "main=nginx:1.26"]);
    kubectl.rollout_status("api", "60s");
    kubectl.rollout_status("batch", "60s");
    wait_ready_pods(&kubectl, "api", 6);
    wait_ready_pods(&kubectl, "batch", 3);
    wait_for("the watches to see the old pods go", DEADLINE, || {
        let deleted = |output: String| events(&output).iter().filter(|event| event.kind == "DELETED").count();
        deleted(api.output()) >= 6 && deleted(batch.output()) >= 3
    });

    let (violations, seen) = bound_violations(&api.output(), 8, 5);
    assert!(violations.is_empty(), "the rolling update left its bounds: {violations:#?}");
    assert!(seen >= 18, "the watch saw the rollout ({seen} events)");

    // Recreate: never an old pod and a new pod alive at once.
    let mut live: BTreeMap<String, String> = BTreeMap::new();
    let mut hashes = std::collections::BTreeSet::new();
    for event in events(&batch.output()) {
        let hash = event.object["metadata"]["labels"]["pod-template-hash"].as_str().unwrap_or_default().to_owned();
        hashes.insert(hash.clone());
        if event.kind == "DELETED" || !event.object["metadata"]["deletionTimestamp"].is_null() {
            live.remove(event.name());
        } else {
            live.insert(event.name().to_owned(), hash);
        }
        let templates: std::collections::BTreeSet<&String> = live.values().collect();
        assert!(
            templates.len() <= 1,
            "old and new pods alive together after {} {}: {live:?}",
            event.kind,
            event.name()
        );
    }
    assert_eq!(hashes.len(), 2, "the watch saw both templates");
    drop((api, batch));

    // The stuck rollout: its pods never become Ready.
    let failure = kubectl.fails(&["rollout", "status", "deployment/stuck", "--timeout=60s"], None);
    assert!(failure.contains("deployment \"stuck\" exceeded its progress deadline"), "{failure}");
    let stuck = kubectl.json(&["get", "deployment", "stuck", "-o", "json"]);
    let progressing = stuck["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Progressing"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(progressing["status"], "False", "{stuck}");
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded", "{stuck}");
    let message = progressing["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("ReplicaSet \"stuck-") && message.ends_with("\" has timed out progressing."),
        "{stuck}"
    );
    node.stop();
}
